package vmspec

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
)

// Options are what Validate knows besides the definition.
type Options struct {
	// Arch is the architecture to use when the definition names none (the
	// CLI's --arch); a definition naming another one is refused.
	Arch arch.Arch
	// Host, when set, is the target host's capabilities report: the
	// definition is also checked against what that host offers, and its
	// effective architecture is the default architecture.
	Host *hostreport.Report
	// HostConsole says that the host names the files of the serial
	// console (the agent, in its own directory): the definition may name
	// none (console.path and console.log are refused with
	// PATH_NOT_ALLOWED), and a file console needs no path.
	HostConsole bool
}

// Valid is a definition that passed validation, with every default filled
// in, together with the rules of its architecture. Only Validate makes one,
// so a Valid is always renderable.
type Valid struct {
	vm   *VM
	spec *archspec.Spec
	host *hostreport.Report
}

// VM is the completed definition. It is shared: do not modify it.
func (v *Valid) VM() *VM { return v.vm }

// Spec is the architecture's rules.
func (v *Valid) Spec() *archspec.Spec { return v.spec }

// Host is the host report the definition was checked against, or nil.
func (v *Valid) Host() *hostreport.Report { return v.host }

// Limits on the number of devices of one VM.
const (
	MaxDisks  = 64
	MaxNICs   = 32
	MaxInputs = 16
	maxIDE    = 4
)

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	uuidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)
	wordRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$`)
	metaKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)
	macRE     = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)
	bridgeRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$`)
	networkRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)
	targetRE  = regexp.MustCompile(`^(vd|sd|hd|fd)([a-z]{1,3})$`)
)

// Validate checks a definition and completes it with its architecture's
// defaults. It reports every violation at once as Errors; the definition
// given is not modified.
func Validate(in *VM, opts Options) (*Valid, error) {
	if in == nil {
		return nil, api.Errors{{Code: api.CodeDefinitionEmpty, Message: "no definition given"}}
	}
	vm := in.Clone()
	var errs api.Errors
	checkStrings(reflect.ValueOf(vm).Elem(), "", "", &errs)
	checkIdentity(vm, &errs)
	spec := resolveArch(vm, opts, &errs)
	checkPaths(vm, &errs)
	if opts.HostConsole {
		checkHostConsole(vm, &errs)
	}
	if spec != nil {
		applyDefaults(vm, spec)
		checkPlatform(vm, spec, &errs)
		checkCPU(vm, spec, &errs)
		checkMemory(vm, spec, &errs)
		checkDisks(vm, spec, &errs)
		checkNICs(vm, spec, &errs)
		checkBootOrder(vm, &errs)
		checkDisplay(vm, spec, &errs)
		checkInputs(vm, spec, &errs)
		checkOtherDevices(vm, spec, opts.HostConsole, &errs)
		if opts.Host != nil {
			checkHost(vm, spec, opts.Host, &errs)
		}
	}
	if len(errs) > 0 {
		return nil, dedupe(errs)
	}
	AssignTargets(vm)
	return &Valid{vm: vm, spec: spec, host: opts.Host}, nil
}

// dedupe drops a repeated (code, field) pair, and any later violation of
// a field whose value was already refused as text (too long, control
// characters): one clear reason per bad value.
func dedupe(errs api.Errors) api.Errors {
	seen := make(map[string]bool, len(errs))
	badText := map[string]bool{}
	out := errs[:0]
	for _, e := range errs {
		k := e.Code + "\x00" + e.Field
		if seen[k] || badText[e.Field] {
			continue
		}
		seen[k] = true
		if e.Code == api.CodeTooLong || e.Code == api.CodeControlChars || e.Code == api.CodeFormatChars ||
			((e.Code == api.CodePathInvalid || e.Code == api.CodePathNotAllowed) && e.Field != "") {
			badText[e.Field] = true
		}
		out = append(out, e)
	}
	return out
}

func checkIdentity(vm *VM, errs *api.Errors) {
	switch {
	case vm.Name == "":
		errs.Add(api.CodeNameRequired, "name", "every VM needs a name, for example \"web-1\"")
	case !nameRE.MatchString(vm.Name):
		errs.Add(api.CodeNameInvalid, "name", "%q is not a valid name; use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", clip(vm.Name))
	}
	if vm.UUID != "" {
		if !uuidRE.MatchString(vm.UUID) || strings.Trim(strings.ReplaceAll(vm.UUID, "-", ""), "0") == "" {
			errs.Add(api.CodeUUIDInvalid, "uuid", "%q is not a UUID; write 32 hex digits as 8-4-4-4-12, or leave it out and libvirt makes one", clip(vm.UUID))
		} else {
			vm.UUID = canonicalUUID(vm.UUID)
		}
	}
	if len(vm.Metadata) > maxMetadata {
		errs.Add(api.CodeMetadataTooMany, "metadata", "%d entries; keep at most %d", len(vm.Metadata), maxMetadata)
	}
	for _, k := range sortedStringKeys(vm.Metadata) {
		if !metaKeyRE.MatchString(k) {
			errs.Add(api.CodeMetadataKey, mapPath("metadata", k), "%q is not a valid key; use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter", clip(k))
		}
	}
}

func canonicalUUID(s string) string {
	h := strings.ToLower(strings.ReplaceAll(s, "-", ""))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// resolveArch settles the architecture: the definition's, else the
// option's, else the host's effective one.
func resolveArch(vm *VM, opts Options, errs *api.Errors) *archspec.Spec {
	a := vm.Arch
	if a == arch.Unknown {
		a = opts.Arch
	}
	if a == arch.Unknown && opts.Host != nil {
		a = opts.Host.Effective()
	}
	if a == arch.Unknown {
		errs.Add(api.CodeArchRequired, "arch", "the VM has no architecture; name one (%s), or pass --arch", knownArches())
		return nil
	}
	if !a.Known() {
		errs.Add(api.CodeArchUnknown, "arch", "unknown architecture %q; use one of %s", clip(a.String()), knownArches())
		return nil
	}
	if opts.Arch != arch.Unknown && vm.Arch != arch.Unknown && a != opts.Arch {
		errs.Add(api.CodeArchConflict, "arch", "the definition is for %s but %s was asked for; remove one of them", a, opts.Arch)
		return nil
	}
	spec, err := archspec.For(a)
	if err != nil {
		errs.Add(api.CodeArchUnknown, "arch", "polyvirt has no rules for %s; use one of %s", a, knownArches())
		return nil
	}
	vm.Arch = a
	return spec
}

func knownArches() string { return arch.Join(archspec.Arches(), ", ") }

// checkPaths checks the host paths: absolute, no "..", clean.
func checkPaths(vm *VM, errs *api.Errors) {
	for i, d := range vm.Disks {
		checkPath(fmt.Sprintf("disks[%d].source", i), d.Source, errs)
	}
	if c := vm.Console; c != nil {
		checkPath("console.path", c.Path, errs)
		checkPath("console.log", c.Log, errs)
	}
	if r := vm.RNG; r != nil {
		checkPath("rng.backend", r.Backend, errs)
	}
	if k := vm.Kernel; k != nil {
		checkPath("kernel.path", k.Path, errs)
		checkPath("kernel.initrd", k.Initrd, errs)
	}
}

// checkHostConsole refuses console files named by the definition where
// the host names them.
func checkHostConsole(vm *VM, errs *api.Errors) {
	c := vm.Console
	if c == nil {
		return
	}
	if c.Path != "" {
		errs.Add(api.CodePathNotAllowed, "console.path", "%q: the host names the file of a file console (in its agent's directory, one per VM); remove path", clip(c.Path))
	}
	if c.Log != "" {
		errs.Add(api.CodePathNotAllowed, "console.log", "%q: the host keeps the log of every pty console itself (in its agent's directory, one per VM); remove log", clip(c.Log))
	}
}

func checkPath(field, p string, errs *api.Errors) {
	if p == "" {
		return
	}
	if bad, _ := badRune(p, false); bad {
		return // reported by checkStrings
	}
	if !strings.HasPrefix(p, "/") {
		errs.Add(api.CodePathInvalid, field, "%q is not an absolute path; start it with /", clip(p))
		return
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			errs.Add(api.CodePathInvalid, field, "%q climbs up with \"..\"; give the path without it", clip(p))
			return
		}
	}
	if strings.HasSuffix(p, "/") {
		errs.Add(api.CodePathInvalid, field, "%q names a directory; give a file", clip(p))
	}
}

func checkPlatform(vm *VM, spec *archspec.Spec, errs *api.Errors) {
	if !spec.GuestOSAllowed(vm.OSType) {
		errs.Add(api.CodeOSType, "osType", "guest OS type %q does not run on %s; use one of %s", clip(vm.OSType), spec.Arch, list(spec.GuestOS.Allowed))
	}
	if !wordRE.MatchString(vm.Machine) || !spec.AcceptsMachine(vm.Machine) {
		errs.Add(api.CodeMachineNotForArch, "machine", "%q is not an emulated machine of %s; use %s (or a versioned one the host lists), or leave it out",
			clip(vm.Machine), spec.Arch, list(spec.Machine.Families))
	}
	if vm.Firmware != "" && !spec.FirmwareAllowed(vm.Firmware) {
		if len(spec.Firmware.Allowed) == 0 {
			errs.Add(api.CodeGuestFirmware, "firmware", "%s has no firmware to choose; remove firmware", spec.Arch)
		} else {
			errs.Add(api.CodeGuestFirmware, "firmware", "firmware %q does not exist on %s; use %s", clip(vm.Firmware), spec.Arch, list(spec.Firmware.Allowed))
		}
	}
	if k := vm.Kernel; k != nil && k.Path == "" {
		errs.Add(api.CodeKernelRequired, "kernel.path", "a direct kernel boot needs the kernel image; give kernel.path or remove kernel")
	}
}

var cpuModes = []string{"custom", "host-model", "host-passthrough", "maximum"}

func checkCPU(vm *VM, spec *archspec.Spec, errs *api.Errors) {
	c := vm.CPU
	for _, f := range []struct {
		name string
		n    int
	}{{"sockets", c.Sockets}, {"cores", c.Cores}, {"threads", c.Threads}} {
		if f.n < 1 {
			errs.Add(api.CodeCPUTopology, "cpu."+f.name, "%d %s; give at least 1", f.n, f.name)
		}
	}
	total := int64(c.Sockets) * int64(c.Cores) * int64(c.Threads)
	if c.Sockets >= 1 && c.Cores >= 1 && c.Threads >= 1 && total > int64(spec.CPU.MaxVCPUs) {
		errs.Add(api.CodeMaxVCPUs, "cpu", "%d vCPUs (sockets × cores × threads); %s allows at most %d", total, spec.Arch, spec.CPU.MaxVCPUs)
	}
	switch {
	case !contains(cpuModes, c.Mode):
		errs.Add(api.CodeCPUMode, "cpu.mode", "unknown CPU mode %q; use %s", clip(c.Mode), list(spec.CPU.Modes))
		return
	case c.Mode == "host-passthrough" && !spec.CPUModeAllowed(c.Mode):
		errs.Add(api.CodeUseHostCPU, "cpu.mode", "host-passthrough is not available on %s; use %s", spec.Arch, list(spec.CPU.Modes))
		return
	case !spec.CPUModeAllowed(c.Mode):
		errs.Add(api.CodeCPUMode, "cpu.mode", "CPU mode %s is not available on %s; use %s", c.Mode, spec.Arch, list(spec.CPU.Modes))
		return
	}
	switch c.Mode {
	case "custom":
		switch {
		case c.Model == "":
			hint := "a named model"
			if len(spec.CPU.Models) > 0 {
				hint = list(spec.CPU.Models)
			}
			errs.Add(api.CodeCPUModelMissing, "cpu.model", "custom mode needs a model (%s); or use mode %s", hint, spec.CPU.DefaultMode)
		case !wordRE.MatchString(c.Model) || !spec.CPUModelAllowed(c.Model):
			errs.Add(api.CodeCPUModel, "cpu.model", "CPU model %q does not exist on %s; use %s", clip(c.Model), spec.Arch, orAny(spec.CPU.Models))
		default:
			c.Model = spec.CanonicalCPUModel(c.Model)
		}
	case "host-model":
		if c.Model == "" {
			break
		}
		if _, ok := spec.HostModelCompat(c.Model); ok {
			c.Model = spec.CanonicalCPUModel(c.Model)
		} else if len(spec.CPU.CompatLadder) > 0 {
			errs.Add(api.CodeCPUCompat, "cpu.model", "%q is not a compatibility level of %s; use %s", clip(c.Model), spec.Arch, list(spec.CPU.CompatLadder))
		} else {
			errs.Add(api.CodeCPUCompat, "cpu.model", "host-model takes no model on %s; use mode custom to name a model", spec.Arch)
		}
	default:
		if c.Model != "" {
			errs.Add(api.CodeCPUModelForMode, "cpu.model", "mode %s takes no model; remove it or use mode custom", c.Mode)
		}
	}
}

func checkMemory(vm *VM, spec *archspec.Spec, errs *api.Errors) {
	m := vm.Memory
	r := spec.Memory
	sizeOK := true
	if m.SizeMiB < int64(r.MinMiB) || uint64(m.SizeMiB) > r.MaxMiB {
		errs.Add(api.CodeMemoryRange, "memory.sizeMiB", "%d MiB; %s takes %d MiB to %d MiB", m.SizeMiB, spec.Arch, r.MinMiB, r.MaxMiB)
		sizeOK = false
	} else if r.MultipleMiB != 0 && uint64(m.SizeMiB)%r.MultipleMiB != 0 {
		errs.Add(r.MultipleCode, "memory.sizeMiB", "%d MiB is not a multiple of %d MiB on %s; use %d", m.SizeMiB, r.MultipleMiB, spec.Arch, spec.RoundMemory(uint64(m.SizeMiB)))
	}
	if m.MaxMiB == 0 {
		return
	}
	switch {
	case m.MaxMiB < 0 || uint64(m.MaxMiB) > r.MaxMiB:
		errs.Add(api.CodeMemoryRange, "memory.maxMiB", "%d MiB; %s takes at most %d MiB", m.MaxMiB, spec.Arch, r.MaxMiB)
	case sizeOK && m.MaxMiB < m.SizeMiB:
		errs.Add(api.CodeMaxMemory, "memory.maxMiB", "%d MiB is below the memory size %d MiB; raise it or remove maxMiB", m.MaxMiB, m.SizeMiB)
	case m.MaxMiB > m.SizeMiB && !r.HotPlug:
		errs.Add(api.CodeHotPlugMemory, "memory.maxMiB", "%s has no memory hot plug; remove maxMiB", spec.Arch)
	case r.MultipleMiB != 0 && uint64(m.MaxMiB)%r.MultipleMiB != 0:
		errs.Add(r.MultipleCode, "memory.maxMiB", "%d MiB is not a multiple of %d MiB on %s; use %d", m.MaxMiB, r.MultipleMiB, spec.Arch, spec.RoundMemory(uint64(m.MaxMiB)))
	}
}

var (
	diskDevices = []string{"disk", "cdrom", "floppy"}
	diskTypes   = []string{"file", "block"}
	diskFormats = []string{"raw", "qcow2"}
	diskBuses   = []string{"virtio", "scsi", "sata", "ide", "usb", "fdc"}
	// targetPrefix is the guest device name stem libvirt uses per bus.
	targetPrefix = map[string]string{"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd", "fdc": "fd"}
)

func checkDisks(vm *VM, spec *archspec.Spec, errs *api.Errors) {
	if len(vm.Disks) > MaxDisks {
		errs.Add(api.CodeTooManyDevices, "disks", "%d disks; give at most %d", len(vm.Disks), MaxDisks)
		return
	}
	targets := map[string]int{}
	sources := map[string]int{}
	perController := map[string]int{}
	ide := 0
	for i, d := range vm.Disks {
		p := fmt.Sprintf("disks[%d]", i)
		if !contains(diskDevices, d.Device) {
			errs.Add(api.CodeDiskDevice, p+".device", "unknown device %q; use disk, cdrom or floppy", clip(d.Device))
			continue
		}
		if d.Device == "floppy" && !spec.Floppy {
			errs.Add(api.CodeFloppy, p+".device", "%s has no floppy drive; attach the image as a cdrom or a disk instead", spec.Arch)
			continue
		}
		if !contains(diskTypes, d.Type) {
			errs.Add(api.CodeDiskType, p+".type", "unknown source type %q; use file or block", clip(d.Type))
		}
		if !contains(diskFormats, d.Format) {
			errs.Add(api.CodeDiskFormat, p+".format", "unknown image format %q; use raw or qcow2", clip(d.Format))
		}
		if d.Source == "" && d.Volume == "" && d.Device == "disk" {
			errs.Add(api.CodeDiskSource, p+".source", "a disk needs a volume of a pool, an image file or a block device; only a cdrom or floppy may be empty")
		}
		checkDiskVolume(p, d, errs)
		checkDiskBus(p, d, vm.Machine, spec, errs)
		if d.Bus == "ide" {
			ide++
		}
		if d.Bus == "scsi" {
			perController[d.Controller]++
		}
		if d.Target != "" {
			m := targetRE.FindStringSubmatch(d.Target)
			if m == nil || (targetPrefix[d.Bus] != "" && m[1] != targetPrefix[d.Bus]) {
				errs.Add(api.CodeDiskTarget, p+".target", "%q is not a device name for bus %s; use %sa, %sb, ... or leave it out", clip(d.Target), d.Bus, targetPrefix[d.Bus], targetPrefix[d.Bus])
			} else if j, dup := targets[d.Target]; dup {
				errs.Add(api.CodeDiskTargetDup, p+".target", "%s is already the target of disks[%d]; give each disk its own or leave it out", d.Target, j)
			} else {
				targets[d.Target] = i
			}
		}
		if d.Volume != "" && d.Source == "" {
			key := "volume:" + d.Pool + "/" + d.Volume
			if j, dup := sources[key]; dup && !(d.ReadOnly && vm.Disks[j].ReadOnly) {
				errs.Add(api.CodeDiskSourceDup, p+".volume", "volume %s of pool %s is already attached as disks[%d]; attach a volume once, or read-only everywhere", clip(d.Volume), clip(d.Pool), j)
			} else if !dup {
				sources[key] = i
			}
		}
		if d.Source != "" {
			if j, dup := sources[d.Source]; dup && !(d.ReadOnly && vm.Disks[j].ReadOnly) {
				errs.Add(api.CodeDiskSourceDup, p+".source", "%s is already attached as disks[%d]; attach an image once, or read-only everywhere", clip(d.Source), j)
			} else if !dup {
				sources[d.Source] = i
			}
		}
	}
	if ide > maxIDE {
		errs.Add(api.CodeTooManyDevices, "disks", "%d IDE devices; the IDE bus takes at most %d, put the others on sata or virtio", ide, maxIDE)
	}
	if max := spec.Disk.MaxSPAPRVSCSIDisks; max > 0 && perController["spapr-vscsi"] > max {
		errs.Add(api.CodeSPAPRVSCSIMax, "disks", "%d disks on the sPAPR VSCSI controller; it takes at most %d, put the others on virtio or virtio-scsi", perController["spapr-vscsi"], max)
	}
}

func checkDiskBus(p string, d Disk, machine string, spec *archspec.Spec, errs *api.Errors) {
	switch {
	case !contains(diskBuses, d.Bus):
		errs.Add(api.CodeDiskBus, p+".bus", "unknown bus %q; use %s", clip(d.Bus), list(spec.Disk.Buses))
		return
	case !contains(spec.Disk.Buses, d.Bus):
		errs.Add(api.CodeDiskBus, p+".bus", "there is no %s bus on %s; use %s", d.Bus, spec.Arch, list(spec.Disk.Buses))
		return
	case !spec.DiskBusAllowed(d.Bus, machine):
		errs.Add(api.CodeDiskBusMachine, p+".bus", "the %s machine has no %s bus; use another bus or machine", machine, d.Bus)
		return
	case (d.Device == "floppy") != (d.Bus == "fdc"):
		errs.Add(api.CodeDiskBusDevice, p+".bus", "a floppy goes on the fdc bus and nothing else does; fix device or bus")
		return
	case d.Device == "cdrom" && d.Bus == "virtio":
		errs.Add(api.CodeDiskBusDevice, p+".bus", "a CD-ROM cannot be on virtio; use %s", spec.CDROMBus(machine))
		return
	}
	if d.Controller == "" {
		return
	}
	if d.Bus != "scsi" {
		errs.Add(api.CodeControllerNoBus, p+".controller", "a SCSI controller is only for bus scsi; remove controller or set bus: scsi")
	} else if !spec.SCSIControllerAllowed(d.Controller) {
		errs.Add(api.CodeSCSIController, p+".controller", "there is no %q SCSI controller on %s; use %s", clip(d.Controller), spec.Arch, list(spec.Disk.SCSIControllers))
	}
}

func checkNICs(vm *VM, spec *archspec.Spec, errs *api.Errors) {
	if len(vm.NICs) > MaxNICs {
		errs.Add(api.CodeTooManyDevices, "nics", "%d NICs; give at most %d", len(vm.NICs), MaxNICs)
		return
	}
	macs := map[string]int{}
	for i, n := range vm.NICs {
		p := fmt.Sprintf("nics[%d]", i)
		if !spec.NIC.Allows(n.Model) {
			errs.Add(api.CodeNICModel, p+".model", "NIC model %q does not exist on %s; use %s", clip(n.Model), spec.Arch, list(spec.NIC.Allowed))
		}
		if n.Bridge != "" && n.Network != "" {
			errs.Add(api.CodeNICSource, p, "give a bridge or a network, not both")
		}
		if n.Bridge != "" && !bridgeRE.MatchString(n.Bridge) {
			errs.Add(api.CodeNICName, p+".bridge", "%q is not a bridge name; use up to 15 letters, digits, '.', '_', ':' or '-'", clip(n.Bridge))
		}
		if n.Network != "" && !networkRE.MatchString(n.Network) {
			errs.Add(api.CodeNICName, p+".network", "%q is not a libvirt network name; use up to 64 letters, digits, '.', '_', ':' or '-'", clip(n.Network))
		}
		if n.MAC == "" {
			continue
		}
		mac := strings.ToLower(n.MAC)
		switch {
		case !macRE.MatchString(mac):
			errs.Add(api.CodeMACInvalid, p+".mac", "%q is not a MAC address; write six hex pairs such as 52:54:00:12:34:56", clip(n.MAC))
		case hexByte(mac[:2])&1 == 1 || mac == "00:00:00:00:00:00":
			errs.Add(api.CodeMACInvalid, p+".mac", "%s is a multicast or null address; use a unicast one such as 52:54:00:12:34:56", mac)
		default:
			if j, dup := macs[mac]; dup {
				errs.Add(api.CodeMACDuplicate, p+".mac", "%s is already the MAC of nics[%d]; give each NIC its own", mac, j)
			} else {
				macs[mac] = i
			}
			vm.NICs[i].MAC = mac
		}
	}
}

func hexByte(s string) int {
	var n int
	fmt.Sscanf(s, "%x", &n)
	return n
}

func checkBootOrder(vm *VM, errs *api.Errors) {
	seen := map[int]string{}
	check := func(p string, order int) {
		if order == 0 {
			return
		}
		if order < 0 || order > 1000 {
			errs.Add(api.CodeBootOrder, p, "boot order %d; use 1 to 1000, or leave it out", order)
			return
		}
		if other, dup := seen[order]; dup {
			errs.Add(api.CodeBootOrderDup, p, "boot order %d is already taken by %s; give each device its own place", order, other)
			return
		}
		seen[order] = p
	}
	for i, d := range vm.Disks {
		check(fmt.Sprintf("disks[%d].bootOrder", i), d.BootOrder)
	}
	for i, n := range vm.NICs {
		check(fmt.Sprintf("nics[%d].bootOrder", i), n.BootOrder)
	}
}

var displayTypes = []string{"vnc", "spice", "none"}

func checkDisplay(vm *VM, spec *archspec.Spec, errs *api.Errors) {
	d := vm.Display
	switch {
	case !contains(displayTypes, d.Type):
		errs.Add(api.CodeDisplayUnknown, "display.type", "unknown display %q; use %s or none", clip(d.Type), list(spec.GraphicsProtocols()))
		return
	case d.Type == "none":
		if d.Video != "" || d.Monitors != 0 || d.Listen != "" || d.Password != "" {
			errs.Add(api.CodeHeadlessField, "display", "a VM without a display takes no video, monitors, listen or password; remove them or choose %s", spec.Display.Default.Graphics)
		}
		return
	case !spec.GraphicsAllowed(d.Type):
		errs.Add(api.CodeDisplayType, "display.type", "%s is not available on %s; use %s", strings.ToUpper(d.Type), spec.Arch, strings.ToUpper(list(spec.GraphicsProtocols())))
		return
	}
	if !spec.DisplayAllowed(d.Type, d.Video) {
		errs.Add(api.CodeVideoModel, "display.video", "video %q cannot go with %s on %s; use %s", clip(d.Video), d.Type, spec.Arch, list(spec.VideoModels(d.Type)))
	}
	if d.Monitors < 1 || d.Monitors > spec.Display.MaxMonitors {
		errs.Add(api.CodeMonitors, "display.monitors", "%d monitors; %s takes 1 to %d", d.Monitors, spec.Arch, spec.Display.MaxMonitors)
	}
	if net.ParseIP(d.Listen) == nil {
		errs.Add(api.CodeListen, "display.listen", "%q is not an IP address; use 127.0.0.1 (local only), 0.0.0.0 or ::", clip(d.Listen))
	}
	if max := passwordMax[d.Type]; len(d.Password) > max {
		errs.Add(api.CodePassword, "display.password", "%s takes a password of at most %d characters; shorten it", strings.ToUpper(d.Type), max)
	}
}

// passwordMax is the longest password of each protocol (VNC uses 8 bytes).
var passwordMax = map[string]int{"vnc": 8, "spice": 60}

// MaxPasswordLen is the longest password, in bytes, a graphics protocol
// takes (VNC 8, SPICE 60; 0 for a protocol polyvirt does not know).
func MaxPasswordLen(protocol string) int { return passwordMax[protocol] }

var inputTypes = []string{"tablet", "mouse", "keyboard"}

func checkInputs(vm *VM, spec *archspec.Spec, errs *api.Errors) {
	if len(vm.Inputs) > MaxInputs {
		errs.Add(api.CodeTooManyDevices, "inputs", "%d inputs; give at most %d", len(vm.Inputs), MaxInputs)
		return
	}
	seen := map[Input]int{}
	for i, in := range vm.Inputs {
		p := fmt.Sprintf("inputs[%d]", i)
		if !contains(inputTypes, in.Type) {
			errs.Add(api.CodeInputType, p+".type", "unknown input %q; use tablet, mouse or keyboard", clip(in.Type))
			continue
		}
		if !spec.InputBusAllowed(in.Bus) {
			errs.Add(api.CodeInputBus, p+".bus", "there is no %q input bus on %s; use %s", clip(in.Bus), spec.Arch, list(spec.Input.Buses))
			continue
		}
		if j, dup := seen[in]; dup {
			errs.Add(api.CodeInputDup, p, "a %s on %s is already inputs[%d]; remove one", in.Type, in.Bus, j)
			continue
		}
		seen[in] = i
	}
}

var watchdogActions = []string{"reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi"}
var consoleTypes = []string{"pty", "file", "none"}

func checkOtherDevices(vm *VM, spec *archspec.Spec, hostConsole bool, errs *api.Errors) {
	usb := vm.USB.Model != "" && vm.USB.Model != "none"
	if usb && !spec.USB.Allows(vm.USB.Model) {
		if len(spec.USB.Allowed) == 0 {
			errs.Add(api.CodeUSBModel, "usb.model", "%s has no USB; remove usb", spec.Arch)
		} else {
			errs.Add(api.CodeUSBModel, "usb.model", "there is no %q USB controller on %s; use %s", clip(vm.USB.Model), spec.Arch, list(spec.USB.Allowed))
		}
	}
	if !usb {
		for i, in := range vm.Inputs {
			if in.Bus == "usb" {
				errs.Add(api.CodeUSBMissing, fmt.Sprintf("inputs[%d].bus", i), "a USB input needs a USB controller; remove usb.model none or use another bus")
			}
		}
		for i, d := range vm.Disks {
			if d.Bus == "usb" {
				errs.Add(api.CodeUSBMissing, fmt.Sprintf("disks[%d].bus", i), "a USB disk needs a USB controller; remove usb.model none or use another bus")
			}
		}
	}

	c := vm.Console
	switch {
	case !contains(consoleTypes, c.Type):
		errs.Add(api.CodeConsoleType, "console.type", "unknown console %q; use pty, file or none", clip(c.Type))
	case c.Type == "file" && c.Path == "" && !hostConsole:
		errs.Add(api.CodeConsolePath, "console.path", "a file console needs the path of its file")
	case c.Type != "file" && c.Path != "":
		errs.Add(api.CodeConsoleField, "console.path", "path is for a file console; use log to keep a pty console's output")
	case c.Type != "pty" && c.Log != "":
		errs.Add(api.CodeConsoleField, "console.log", "log is for a pty console; a file console writes to its path")
	}

	if s := vm.Sound; s != nil && s.Model != "none" {
		switch {
		case len(spec.Sound.Allowed) == 0:
			errs.Add(api.CodeSoundArch, "sound", "%s has no sound card; remove sound", spec.Arch)
		case !spec.Sound.Allows(s.Model):
			errs.Add(api.CodeSoundModel, "sound.model", "there is no %q sound card on %s; use %s", clip(s.Model), spec.Arch, list(spec.Sound.Allowed))
		}
	}
	if w := vm.Watchdog; w != nil && w.Model != "none" {
		switch {
		case len(spec.Watchdog.Allowed) == 0:
			errs.Add(api.CodeWatchdogArch, "watchdog", "%s has no watchdog device; remove watchdog", spec.Arch)
		case !spec.Watchdog.Allows(w.Model):
			errs.Add(api.CodeWatchdogModel, "watchdog.model", "there is no %q watchdog on %s; use %s", clip(w.Model), spec.Arch, list(spec.Watchdog.Allowed))
		}
		if !contains(watchdogActions, w.Action) {
			errs.Add(api.CodeWatchdogAct, "watchdog.action", "unknown action %q; use %s", clip(w.Action), list(watchdogActions))
		}
	}
	if r := vm.RNG; r.Model != "" && r.Model != "none" && !spec.RNG.Allows(r.Model) {
		errs.Add(api.CodeRNGModel, "rng.model", "there is no %q RNG on %s; use %s or none", clip(r.Model), spec.Arch, list(spec.RNG.Allowed))
	}
}

func contains(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func list(l []string) string {
	switch len(l) {
	case 0:
		return "nothing"
	case 1:
		return l[0]
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

func orAny(l []string) string {
	if len(l) == 0 {
		return "a model the host's libvirt lists"
	}
	return list(l)
}

// clip shortens a user value quoted in a message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func sortedStringKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
