package hostinfo

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf8"
)

// DeviceTreePath is where the root holds /proc/device-tree.
const DeviceTreePath = "proc/device-tree"

// DeviceTree is what the root node of /proc/device-tree says of a POWER
// machine (or of a pseries guest), with the firmware levels the tree
// carries.
type DeviceTree struct {
	// Found reports whether proc/device-tree exists.
	Found bool
	// Vendor, Model, ModelName and SystemID are the root properties
	// vendor ("IBM"), model ("8247-22L", "IBM,8233-E8B", "IBM pSeries
	// (emulated by qemu)"), model-name ("IBM Power System S822L") and
	// system-id (the serial, "TU00163" or "IBM,03061C14A").
	Vendor string
	// Model is the root "model" property.
	Model string
	// ModelName is the root "model-name" property.
	ModelName string
	// SystemID is the root "system-id" property.
	SystemID string
	// Compatible lists the root's compatible strings ("ibm,powernv",
	// "qemu,pseries").
	Compatible []string
	// VMUUID is the "vm,uuid" property QEMU gives a pseries guest.
	VMUUID string
	// ThreadsPerCore is the hardware threads of one core: the number of
	// cells of the first cpus/PowerPC,* node's ibm,ppc-interrupt-server#s
	// (0 when absent).
	ThreadsPerCore int
	// Firmware lists ibm,opal/firmware/version as "opal" (and its
	// mi-version/ml-version as "opal-mi"/"opal-ml" on FSP machines), then
	// every property of ibm,firmware-versions under its own name.
	Firmware []Firmware
}

// ReadDeviceTree reads the root of proc/device-tree under fsys. Missing
// properties are left empty; unreadable or binary ones are returned as
// Problems naming the file. A tree that does not exist gives Found false and
// no Problem.
//
// Device-tree string properties end with a NUL and may hold several
// NUL-separated strings. A property without its final NUL (as a snapshot made
// with echo or an editor has) is read as if it had one: the kernel always
// writes it, and the value is not ambiguous without it.
func ReadDeviceTree(fsys fs.FS) (DeviceTree, []Problem) {
	var p problems
	dt := DeviceTree{}
	if _, err := fs.Stat(fsys, DeviceTreePath); err != nil {
		p.addErr("identity", DeviceTreePath, err, true)
		return dt, p.list
	}
	dt.Found = true
	str := func(name string) string {
		v := dtStrings(fsys, &p, "identity", DeviceTreePath+"/"+name)
		if len(v) == 0 {
			return ""
		}
		return v[0]
	}
	dt.Vendor = str("vendor")
	dt.Model = str("model")
	dt.ModelName = str("model-name")
	dt.SystemID = str("system-id")
	dt.Compatible = dtStrings(fsys, &p, "identity", DeviceTreePath+"/compatible")
	dt.VMUUID = str("vm,uuid")
	dt.ThreadsPerCore = dtThreadsPerCore(fsys, &p)
	dt.Firmware = dtFirmware(fsys, &p)
	return dt, p.list
}

// dtStrings reads a string property; nil when missing or unreadable.
func dtStrings(fsys fs.FS, p *problems, field, name string) []string {
	data, err := readFile(fsys, name, MaxAttrBytes)
	if err != nil {
		p.addErr(field, name, err, true)
		return nil
	}
	v, err := ParseDTStrings(data)
	if err != nil {
		p.add(field, name, err.Error())
		return nil
	}
	return v
}

// ParseDTStrings decodes a device-tree string property: NUL-terminated
// strings, possibly several ("ibm,powernv\x00ibm,firenze\x00"). The final
// NUL may be missing. Empty strings at the end (padding) are dropped. Bytes
// that no string holds (control characters, invalid UTF-8, a leading NUL: a
// numeric property read as a string) are an error.
func ParseDTStrings(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s := string(b)
	s = strings.TrimSuffix(s, "\x00")
	parts := strings.Split(s, "\x00")
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 1 && parts[0] == "" {
		return nil, errors.New("binary property (starts with a NUL byte), not a string")
	}
	for _, part := range parts {
		if !utf8.ValidString(part) {
			return nil, errors.New("binary property (invalid UTF-8), not a string")
		}
		for _, r := range part {
			if r < 0x20 || r == 0x7f {
				return nil, fmt.Errorf("binary property (byte 0x%02x), not a string", r)
			}
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	return parts, nil
}

// dtThreadsPerCore counts the cells of ibm,ppc-interrupt-server#s of the
// first cpus/PowerPC,* node: one interrupt server per hardware thread.
func dtThreadsPerCore(fsys fs.FS, p *problems) int {
	dir := DeviceTreePath + "/cpus"
	ents, err := readDir(fsys, dir)
	if err != nil {
		p.addErr("topology", dir, err, true)
		return 0
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "PowerPC,") {
			continue
		}
		name := dir + "/" + e.Name() + "/ibm,ppc-interrupt-server#s"
		data, err := readFile(fsys, name, MaxAttrBytes)
		if err != nil {
			p.addErr("topology", name, err, true)
			return 0
		}
		if len(data) == 0 || len(data)%4 != 0 || len(data)/4 > 64 {
			p.add("topology", name, fmt.Sprintf("%d bytes: not 1 to 64 32-bit cells", len(data)))
			return 0
		}
		return len(data) / 4
	}
	return 0
}

// dtFirmware reads the firmware levels the device tree carries.
func dtFirmware(fsys fs.FS, p *problems) []Firmware {
	var out []Firmware
	opal := DeviceTreePath + "/ibm,opal/firmware"
	for _, f := range []struct{ file, component string }{
		{"version", "opal"}, {"mi-version", "opal-mi"}, {"ml-version", "opal-ml"},
	} {
		if v := dtStrings(fsys, p, "firmware", opal+"/"+f.file); len(v) > 0 {
			out = append(out, Firmware{Component: f.component, Version: strings.Join(v, " ")})
		}
	}
	dir := DeviceTreePath + "/ibm,firmware-versions"
	ents, err := readDir(fsys, dir)
	if err != nil {
		p.addErr("firmware", dir, err, true)
		return out
	}
	for _, e := range ents {
		switch e.Name() {
		case "name", "phandle", "linux,phandle", "ibm,phandle":
			continue
		}
		if e.IsDir() {
			continue
		}
		if v := dtStrings(fsys, p, "firmware", dir+"/"+e.Name()); len(v) > 0 {
			out = append(out, Firmware{Component: e.Name(), Version: strings.Join(v, " ")})
		}
	}
	return out
}
