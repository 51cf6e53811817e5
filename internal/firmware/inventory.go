package firmware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/hostexec"
)

// MechanismUpdateFlash is the archspec HostRules.FirmwareUpdate value of
// architectures whose system firmware is read with lsmcode and updated with
// update_flash (POWER).
const MechanismUpdateFlash = "update_flash"

// Source is where an inventory is read from.
type Source struct {
	// Arch is the host's architecture; it decides, through archspec,
	// whether lsmcode is run.
	Arch arch.Arch
	// Root is the host's root filesystem ("/" on a real host).
	Root fs.FS
	// Runner runs lsmcode; nil skips it (a Problem says so).
	Runner hostexec.Runner
	// Lsmcode is the program name; empty means "lsmcode".
	Lsmcode string
	// Timeout bounds one lsmcode run; zero means one minute.
	Timeout time.Duration
}

// Paths under the root.
const (
	DeviceTreePath = "proc/device-tree"
	DMIPath        = "sys/class/dmi/id"
	CPUInfoPath    = "proc/cpuinfo"
	BootIDPath     = "proc/sys/kernel/random/boot_id"
)

// maxAttr bounds one device tree property or DMI attribute.
const maxAttr = 4096

// ReadInventory reads the firmware inventory of a host: the machine
// identity and the levels every source present on it carries — the device
// tree (ibm,opal/firmware/*, ibm,firmware-versions/*), DMI (BIOS vendor,
// version, date) — and, where the architecture's mechanism is update_flash,
// lsmcode's temporary, permanent and booted levels. A source that is absent
// is skipped; one that cannot be read is a Problem. The error is for an
// architecture archspec does not know.
func ReadInventory(ctx context.Context, src Source) (agentapi.FirmwareInventory, error) {
	spec, err := archspec.For(src.Arch)
	if err != nil {
		return agentapi.FirmwareInventory{}, &api.Error{Code: api.CodeNotSupportedOnArch, Field: "arch", Message: err.Error(), Err: err}
	}
	inv := agentapi.FirmwareInventory{Arch: src.Arch, Mechanism: spec.Host.FirmwareUpdate}
	if src.Root != nil {
		id := ReadIdentity(src.Root)
		inv.TypeModel, inv.Serial, inv.ModelName, inv.Vendor = id.TypeModel, id.Serial, id.ModelName, id.Vendor
		inv.Problems = append(inv.Problems, id.Problems...)
		comps, probs := readDeviceTreeFirmware(src.Root)
		inv.Components = append(inv.Components, comps...)
		inv.Problems = append(inv.Problems, probs...)
		if bios, ok, probs := readDMIBIOS(src.Root); ok {
			inv.Components = append(inv.Components, bios)
			inv.Problems = append(inv.Problems, probs...)
		} else {
			inv.Problems = append(inv.Problems, probs...)
		}
	} else {
		inv.Problems = append(inv.Problems, "no host root to read the device tree or DMI from")
	}
	if inv.Mechanism == MechanismUpdateFlash {
		if src.Runner == nil {
			inv.Problems = append(inv.Problems, "lsmcode: no command runner")
		} else {
			sf, err := RunLsmcode(ctx, src.Runner, src.Lsmcode, src.Timeout)
			if err != nil {
				// "CODE: message", the tool named once.
				inv.Problems = append(inv.Problems, codeOf(err)+": "+messageOf(err))
			} else {
				inv.System = &sf
			}
		}
	}
	return inv, nil
}

// RunLsmcode runs `lsmcode -A` and reads the system firmware levels; when
// its output has no system line it tries plain `lsmcode`. The error is an
// *Error: CodeToolNotFound, CodeToolTimeout, CodePermission,
// CodeUnsupported, CodeVPDMissing, CodeToolFailed or CodeToolOutput.
func RunLsmcode(ctx context.Context, r hostexec.Runner, program string, timeout time.Duration) (agentapi.SystemFirmware, error) {
	if program == "" {
		program = "lsmcode"
	}
	if timeout <= 0 {
		timeout = time.Minute
	}
	res, err := r.Run(ctx, hostexec.Command{Name: program, Args: []string{"-A"}, Timeout: timeout})
	if err != nil {
		return agentapi.SystemFirmware{}, lsmcodeRunError(program+" -A", res, err)
	}
	sf, perr := ParseLsmcodeA(res.Stdout)
	if perr == nil {
		return sf, nil
	}
	res2, err := r.Run(ctx, hostexec.Command{Name: program, Timeout: timeout})
	if err != nil {
		return agentapi.SystemFirmware{}, lsmcodeRunError(program, res2, err)
	}
	sf, err2 := ParseLsmcode(res2.Stdout)
	if err2 != nil {
		return agentapi.SystemFirmware{}, &api.Error{Code: api.CodeFirmwareToolOutput, Field: "lsmcode", Message: perr.Error() + "; " + err2.Error(), Err: perr}
	}
	return sf, nil
}

func lsmcodeRunError(cmd string, res hostexec.Result, err error) error {
	switch {
	case errors.Is(err, hostexec.ErrNotFound):
		return &api.Error{Code: api.CodeFirmwareToolNotFound, Field: "lsmcode", Message: "lsmcode is not installed (package lsvpd)", Err: err}
	case errors.Is(err, hostexec.ErrTimeout):
		return &api.Error{Code: api.CodeFirmwareToolTimeout, Field: "lsmcode", Message: err.Error(), Err: err}
	case errors.Is(err, hostexec.ErrCanceled):
		return &api.Error{Code: api.CodeFirmwareAborted, Field: "lsmcode", Message: "the request was canceled while lsmcode ran", Err: err}
	}
	if code, msg, ok := LsmcodeFailure(res.Stdout); ok {
		return &api.Error{Code: code, Field: "lsmcode", Message: cmd + ": " + msg, Err: err}
	}
	return &api.Error{Code: api.CodeFirmwareToolFailed, Field: "lsmcode", Message: err.Error(), Err: err}
}

// Identity is the machine's identity as the host root shows it.
type Identity struct {
	// TypeModel ("8247-22L"), Serial, ModelName and Vendor identify the
	// machine.
	TypeModel string
	Serial    string
	ModelName string
	Vendor    string
	// Source is "device-tree", "cpuinfo", "dmi" or "" when none.
	Source string
	// Problems are what could not be read.
	Problems []string
}

var typeModelExact = regexp.MustCompile(`^[0-9]{4}-[0-9A-Z]{3}$`)

// ReadIdentity reads the machine identity: the device tree's model
// (type-model, "IBM," prefix dropped), system-id, model-name and vendor;
// else the /proc/cpuinfo "model" line when it is a type-model (a POWER
// host without a device tree); else DMI (product name, serial, vendor; no
// type-model).
func ReadIdentity(root fs.FS) Identity {
	var id Identity
	if _, err := fs.Stat(root, DeviceTreePath); err == nil {
		get := func(name string) string {
			v, err := readStrings(root, DeviceTreePath+"/"+name)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				id.Problems = append(id.Problems, fmt.Sprintf("%s/%s: %v", DeviceTreePath, name, err))
			}
			return strings.Join(v, " ")
		}
		model := strings.TrimPrefix(get("model"), "IBM,")
		if typeModelExact.MatchString(model) {
			id.TypeModel = model
		} else if model != "" && id.ModelName == "" {
			id.ModelName = model
		}
		id.Serial = strings.TrimPrefix(get("system-id"), "IBM,")
		if mn := get("model-name"); mn != "" {
			id.ModelName = mn
		}
		id.Vendor = get("vendor")
		if id.TypeModel != "" || id.Serial != "" {
			id.Source = "device-tree"
		}
	}
	if id.TypeModel == "" {
		if data, err := readLimited(root, CPUInfoPath, 4<<20); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				k, v, ok := strings.Cut(line, ":")
				if ok && strings.TrimSpace(k) == "model" && typeModelExact.MatchString(strings.TrimSpace(v)) {
					id.TypeModel = strings.TrimSpace(v)
					if id.Source == "" {
						id.Source = "cpuinfo"
					}
				}
			}
		}
	}
	if id.Source == "" {
		if _, err := fs.Stat(root, DMIPath); err == nil {
			id.ModelName = dmiAttr(root, "product_name", &id.Problems)
			id.Serial = dmiAttr(root, "product_serial", &id.Problems)
			id.Vendor = dmiAttr(root, "sys_vendor", &id.Problems)
			id.Source = "dmi"
		}
	}
	return id
}

// readDeviceTreeFirmware reads ibm,opal/firmware/{version,mi-version,
// ml-version} and every property of ibm,firmware-versions.
func readDeviceTreeFirmware(root fs.FS) ([]agentapi.FirmwareComponent, []string) {
	var out []agentapi.FirmwareComponent
	var probs []string
	opal := DeviceTreePath + "/ibm,opal/firmware"
	for _, f := range []struct{ file, name string }{
		{"version", "opal"}, {"mi-version", "opal-mi"}, {"ml-version", "opal-ml"},
	} {
		v, err := readStrings(root, opal+"/"+f.file)
		switch {
		case err == nil && len(v) > 0:
			out = append(out, agentapi.FirmwareComponent{Name: f.name, Version: strings.Join(v, " "), Source: "device-tree"})
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			probs = append(probs, fmt.Sprintf("%s/%s: %v", opal, f.file, err))
		}
	}
	dir := DeviceTreePath + "/ibm,firmware-versions"
	ents, err := fs.ReadDir(root, dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			probs = append(probs, fmt.Sprintf("%s: %v", dir, err))
		}
		return out, probs
	}
	for _, e := range ents {
		switch e.Name() {
		case "name", "phandle", "linux,phandle", "ibm,phandle":
			continue
		}
		if e.IsDir() {
			continue
		}
		v, err := readStrings(root, dir+"/"+e.Name())
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s/%s: %v", dir, e.Name(), err))
			continue
		}
		if len(v) > 0 {
			out = append(out, agentapi.FirmwareComponent{Name: e.Name(), Version: strings.Join(v, " "), Source: "device-tree"})
		}
	}
	return out, probs
}

// readDMIBIOS reads the DMI BIOS vendor, version and date; ok is false
// when the host has no DMI table.
func readDMIBIOS(root fs.FS) (agentapi.FirmwareComponent, bool, []string) {
	if _, err := fs.Stat(root, DMIPath); err != nil {
		return agentapi.FirmwareComponent{}, false, nil
	}
	var probs []string
	c := agentapi.FirmwareComponent{
		Name:    "bios",
		Vendor:  dmiAttr(root, "bios_vendor", &probs),
		Version: dmiAttr(root, "bios_version", &probs),
		Date:    dmiAttr(root, "bios_date", &probs),
		Source:  "dmi",
	}
	if c.Vendor == "" && c.Version == "" && c.Date == "" {
		return agentapi.FirmwareComponent{}, false, probs
	}
	return c, true, probs
}

// dmiAttr reads one DMI attribute; "Not Specified" and the like are empty.
func dmiAttr(root fs.FS, key string, probs *[]string) string {
	data, err := readLimited(root, DMIPath+"/"+key, maxAttr)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			*probs = append(*probs, fmt.Sprintf("%s/%s: %v", DMIPath, key, err))
		}
		return ""
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	v := strings.ToValidUTF8(strings.TrimSpace(string(data)), "?")
	switch strings.ToLower(v) {
	case "not specified", "to be filled by o.e.m.", "default string", "none":
		return ""
	}
	return v
}

// readStrings reads a device tree property holding NUL-terminated strings.
func readStrings(root fs.FS, name string) ([]string, error) {
	data, err := readLimited(root, name, maxAttr)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range bytes.Split(data, []byte{0}) {
		v := strings.TrimSpace(string(s))
		if v == "" {
			continue
		}
		for _, r := range v {
			if r < 0x20 || r == 0x7f {
				return nil, fmt.Errorf("not a string property (control byte %#x)", r)
			}
		}
		out = append(out, strings.ToValidUTF8(v, "?"))
	}
	return out, nil
}

// readLimited reads at most max bytes of a file; a longer file is an error.
func readLimited(root fs.FS, name string, max int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("longer than %d bytes", max)
	}
	return data, nil
}
