package domxml

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
)

// Fake describes the host of a fake-KVM run.
type Fake struct {
	// HostArch is the real architecture of the host.
	HostArch arch.Arch
	// MemoryCapMiB, when not zero, caps the memory (rounded up to the
	// architecture's granule: 256 MiB on POWER).
	MemoryCapMiB uint64
}

// FakeKVM rewrites a domain to run under TCG on a host of f.HostArch, in
// place — VDSM's faqemu hook, made safe: every element it touches may be
// missing.
//
//   - Always: domain type qemu; a CPU mode TCG cannot give (host-model,
//     host-passthrough) or a named model TCG does not emulate becomes the
//     architecture's TCG model, a model or compatibility level TCG has is
//     kept (POWER8, POWER9); the memory is capped when asked.
//   - A VM of an architecture the host runs natively, or emulates unchanged
//     (archspec Host.TCGGuests: a pseries VM on an x86_64 host runs in
//     qemu-system-ppc64), keeps its machine.
//   - A VM of any other architecture (an x86_64 VM on a POWER host) is
//     rewritten for the host's architecture: its machine, no loader, no
//     SMBIOS, the host's features and timers, VNC instead of SPICE, an
//     allowed video model, no sound, smartcard or SPICE channels, disks
//     moved off buses the host lacks (IDE, SATA), allowed NIC, USB, SCSI,
//     input, console, watchdog, panic and RNG models, memory on the
//     granule, and every device address dropped for libvirt to assign.
func FakeKVM(dom *libvirtxml.Domain, f Fake) error {
	if dom == nil {
		return fmt.Errorf("fake KVM: no domain")
	}
	host, err := archspec.For(f.HostArch)
	if err != nil {
		return fmt.Errorf("fake KVM: host: %v", err)
	}
	dom.Type = "qemu"
	vmArch := host.Arch
	if dom.OS != nil && dom.OS.Type != nil && dom.OS.Type.Arch != "" {
		if a, err := arch.Parse(dom.OS.Type.Arch); err == nil {
			vmArch = a
		}
	}
	target, err := archspec.For(vmArch)
	if err != nil {
		// No rules for the VM's architecture: run it as the host's.
		target = host
	}
	if target != host && !host.RunsNatively(vmArch) && !host.RunsEmulated(vmArch) {
		retarget(dom, target, host)
		target = host
	}
	if dom.Devices != nil && dom.Devices.Emulator == "" {
		dom.Devices.Emulator = target.Emulator
	}
	tcgCPU(dom, target)
	capMemory(dom, target, f.MemoryCapMiB)
	return nil
}

// tcgCPU turns the CPU into one TCG can give.
func tcgCPU(dom *libvirtxml.Domain, s *archspec.Spec) {
	cpu := dom.CPU
	if cpu == nil {
		return
	}
	model := ""
	if cpu.Model != nil {
		model = strings.TrimSpace(cpu.Model.Value)
	}
	switch cpu.Mode {
	case "maximum":
		return // -cpu max exists under TCG
	case "", "custom":
		if model == "" {
			return
		}
	case "host-model":
		// model, if any, is a compatibility level (power9)
	default: // host-passthrough
		model = ""
	}
	tcg := s.TCGCPUModel(model)
	if tcg == model && cpu.Mode != "host-model" {
		return
	}
	cpu.Mode = "custom"
	cpu.Match = "exact"
	cpu.Check = ""
	cpu.Migratable = ""
	cpu.Model = &libvirtxml.DomainCPUModel{Value: tcg}
	cpu.Vendor = ""
	cpu.Features = nil
}

// capMemory lowers the memory to at most capMiB (on the granule) and keeps
// the NUMA cells summing to it.
func capMemory(dom *libvirtxml.Domain, s *archspec.Spec, capMiB uint64) {
	if capMiB == 0 {
		return
	}
	limit := s.RoundMemory(capMiB)
	if dom.Memory != nil {
		if mib, ok := toMiB(uint64(dom.Memory.Value), dom.Memory.Unit); ok && mib > limit {
			dom.Memory.Value, dom.Memory.Unit = uint(limit), "MiB"
		}
	}
	if dom.CurrentMemory != nil {
		if mib, ok := toMiB(uint64(dom.CurrentMemory.Value), dom.CurrentMemory.Unit); ok && mib > limit {
			dom.CurrentMemory.Value, dom.CurrentMemory.Unit = uint(limit), "MiB"
		}
	}
	if dom.CPU == nil || dom.CPU.Numa == nil || len(dom.CPU.Numa.Cell) == 0 {
		return
	}
	cells := dom.CPU.Numa.Cell
	var total uint64
	for _, c := range cells {
		mib, ok := toMiB(uint64(c.Memory), c.Unit)
		if !ok {
			return
		}
		total += mib
	}
	if total <= limit {
		return
	}
	per := s.RoundMemory(limit / uint64(len(cells)))
	if per == 0 {
		per = s.RoundMemory(1)
	}
	for i := range cells {
		cells[i].Memory, cells[i].Unit = uint(per), "MiB"
	}
	if dom.Memory != nil {
		dom.Memory.Value, dom.Memory.Unit = uint(per*uint64(len(cells))), "MiB"
	}
	if dom.CurrentMemory != nil {
		if mib, ok := toMiB(uint64(dom.CurrentMemory.Value), dom.CurrentMemory.Unit); !ok || mib > per*uint64(len(cells)) {
			dom.CurrentMemory.Value, dom.CurrentMemory.Unit = uint(per*uint64(len(cells))), "MiB"
		}
	}
}

// toMiB converts a libvirt memory value to MiB (rounded up).
func toMiB(v uint64, unit string) (uint64, bool) {
	var bytesPer uint64
	switch unit {
	case "b", "bytes":
		bytesPer = 1
	case "KB":
		bytesPer = 1000
	case "", "k", "KiB":
		bytesPer = 1024
	case "MB":
		bytesPer = 1000 * 1000
	case "M", "MiB":
		return v, true
	case "GB":
		bytesPer = 1000 * 1000 * 1000
	case "G", "GiB":
		return v * 1024, v < 1<<40
	case "TB":
		bytesPer = 1000 * 1000 * 1000 * 1000
	case "T", "TiB":
		return v * 1024 * 1024, v < 1<<30
	default:
		return 0, false
	}
	if v > (1<<63)/bytesPer {
		return 0, false
	}
	b := v * bytesPer
	return (b + (1<<20 - 1)) >> 20, true
}

// retarget rewrites a domain of architecture from for a host of
// architecture to that cannot run it.
func retarget(dom *libvirtxml.Domain, from, to *archspec.Spec) {
	machine := to.Machine.Default
	if dom.OS == nil {
		dom.OS = &libvirtxml.DomainOS{}
	}
	if dom.OS.Type == nil {
		dom.OS.Type = &libvirtxml.DomainOSType{Type: "hvm"}
	}
	dom.OS.Type.Arch, dom.OS.Type.Machine = string(to.Arch), machine
	if !to.Firmware.Loader {
		dom.OS.Loader, dom.OS.NVRam, dom.OS.Firmware, dom.OS.FirmwareInfo = nil, nil, "", nil
	}
	if from.Firmware.Kind != to.Firmware.Kind {
		dom.OS.BIOS = nil
	}
	if dom.OS.Firmware == "efi" && !to.FirmwareAllowed("efi") {
		dom.OS.Firmware = ""
	}
	if !to.Platform.SMBIOS {
		dom.OS.SMBios, dom.SysInfo = nil, nil
	}
	dom.Features = features(to)
	if dom.Clock != nil {
		dom.Clock.Timer = timers(to)
	}
	roundMemory(dom, to)

	d := dom.Devices
	if d == nil {
		return
	}
	d.Emulator = to.Emulator
	retargetDisks(d, to, machine)
	retargetControllers(d, to)
	for i := range d.Interfaces {
		in := &d.Interfaces[i]
		if in.Model == nil || !to.NIC.Allows(in.Model.Type) {
			in.Model = &libvirtxml.DomainInterfaceModel{Type: to.NIC.Default}
		}
		in.Address, in.ROM = nil, nil
	}
	retargetDisplay(d, to)
	retargetConsole(d, to)
	d.Sounds = filter(d.Sounds, func(s libvirtxml.DomainSound) bool { return to.Sound.Allows(s.Model) })
	d.Smartcards = nil
	d.Channels = filter(d.Channels, func(c libvirtxml.DomainChannel) bool {
		return c.Source == nil || (c.Source.SpiceVMC == nil && c.Source.SpicePort == nil)
	})
	d.RedirDevs = filter(d.RedirDevs, func(r libvirtxml.DomainRedirDev) bool {
		return r.Source == nil || r.Source.SpiceVMC == nil
	})
	if len(d.RedirDevs) == 0 {
		d.RedirFilters = nil
	}
	d.Watchdogs = filter(d.Watchdogs, func(w libvirtxml.DomainWatchdog) bool { return to.Watchdog.Allows(w.Model) })
	d.RNGs = filter(d.RNGs, func(r libvirtxml.DomainRNG) bool { return to.RNG.Allows(r.Model) })
	d.Panics = nil
	if to.Panic != "" {
		d.Panics = []libvirtxml.DomainPanic{{Model: to.Panic}}
	}
	d.Hostdevs, d.Shmems, d.Memorydevs = nil, nil, nil
	d.TPMs, d.IOMMU, d.IOMMUs, d.VSock, d.PStore = nil, nil, nil, nil, nil
	d.Parallels = nil
	for i := range d.Videos {
		d.Videos[i].Address = nil
	}
	for i := range d.Channels {
		d.Channels[i].Address = nil
	}
	for i := range d.Watchdogs {
		d.Watchdogs[i].Address = nil
	}
	for i := range d.RNGs {
		d.RNGs[i].Address = nil
	}
	for i := range d.Filesystems {
		d.Filesystems[i].Address = nil
	}
	if d.MemBalloon != nil {
		d.MemBalloon.Address = nil
	}
}

// roundMemory puts the memory sizes on the target's granule.
func roundMemory(dom *libvirtxml.Domain, s *archspec.Spec) {
	if s.Memory.MultipleMiB == 0 {
		return
	}
	if m := dom.Memory; m != nil {
		if mib, ok := toMiB(uint64(m.Value), m.Unit); ok {
			m.Value, m.Unit = uint(s.RoundMemory(mib)), "MiB"
		}
	}
	if m := dom.CurrentMemory; m != nil {
		if mib, ok := toMiB(uint64(m.Value), m.Unit); ok {
			m.Value, m.Unit = uint(s.RoundMemory(mib)), "MiB"
		}
	}
	if m := dom.MaximumMemory; m != nil {
		if mib, ok := toMiB(uint64(m.Value), m.Unit); ok {
			m.Value, m.Unit = uint(s.RoundMemory(mib)), "MiB"
		}
	}
	if dom.CPU != nil && dom.CPU.Numa != nil {
		for i := range dom.CPU.Numa.Cell {
			c := &dom.CPU.Numa.Cell[i]
			if mib, ok := toMiB(uint64(c.Memory), c.Unit); ok {
				c.Memory, c.Unit = uint(s.RoundMemory(mib)), "MiB"
			}
		}
	}
}

// retargetDisks moves disks off buses the target lacks, renames their
// targets for the new bus and drops every address.
func retargetDisks(d *libvirtxml.DomainDeviceList, to *archspec.Spec, machine string) {
	var kept []libvirtxml.DomainDisk
	taken := map[string]bool{}
	for i := range d.Disks {
		disk := d.Disks[i]
		if disk.Device == "floppy" && !to.Floppy {
			continue
		}
		disk.Address = nil
		if disk.Target == nil {
			disk.Target = &libvirtxml.DomainDiskTarget{}
		}
		if !to.DiskBusAllowed(disk.Target.Bus, machine) || (disk.Device == "cdrom" && disk.Target.Bus == "virtio") {
			if disk.Device == "cdrom" {
				disk.Target.Bus = to.CDROMBus(machine)
			} else {
				disk.Target.Bus = to.Disk.DefaultBus
			}
			disk.Target.Dev = ""
		}
		if disk.Target.Dev != "" {
			if taken[disk.Target.Dev] {
				disk.Target.Dev = ""
			} else {
				taken[disk.Target.Dev] = true
			}
		}
		kept = append(kept, disk)
	}
	next := map[string]int{}
	for i := range kept {
		t := kept[i].Target
		if t.Dev != "" {
			continue
		}
		prefix := busPrefix[t.Bus]
		if prefix == "" {
			prefix = "sd"
		}
		for {
			name := prefix + driveLetters(next[prefix])
			next[prefix]++
			if !taken[name] {
				t.Dev, taken[name] = name, true
				break
			}
		}
	}
	d.Disks = kept
}

// busPrefix is libvirt's device name stem per disk bus.
var busPrefix = map[string]string{"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd", "fdc": "fd"}

// driveLetters is libvirt's disk suffix: 0 → a, 25 → z, 26 → aa.
func driveLetters(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('a' + n%26)}, b...)
		n = n/26 - 1
		if n < 0 {
			return string(b)
		}
	}
}

// libvirtSCSI maps libvirt SCSI controller models back to polyvirt's names.
var libvirtSCSI = map[string]string{"ibmvscsi": "spapr-vscsi", "virtio-scsi": "virtio-scsi", "lsilogic": "lsilogic"}

// retargetControllers keeps the controllers the target has, with models
// it allows; libvirt adds the PCI topology and defaults it needs.
func retargetControllers(d *libvirtxml.DomainDeviceList, to *archspec.Spec) {
	var out []libvirtxml.DomainController
	for _, c := range d.Controllers {
		c.Address = nil
		switch c.Type {
		case "usb":
			if c.Model == "none" {
				break
			}
			if !to.USB.Allows(c.Model) {
				if to.USB.Default == "" {
					continue
				}
				c.Model, c.USB = to.USB.Default, nil
			}
		case "scsi":
			if !to.SCSIControllerAllowed(libvirtSCSI[c.Model]) {
				def := to.DefaultSCSIController()
				if def == "" {
					continue
				}
				c.Model = scsiModels[def]
			}
		case "virtio-serial", "ccid":
		default: // pci, ide, sata, fdc, xenbus, ...: the target's own come by default
			continue
		}
		out = append(out, c)
	}
	d.Controllers = out
}

// retargetDisplay gives VNC for SPICE, an allowed video model and the
// target's inputs.
func retargetDisplay(d *libvirtxml.DomainDeviceList, to *archspec.Spec) {
	var gs []libvirtxml.DomainGraphic
	graphics := ""
	for _, g := range d.Graphics {
		typ, listen, pw := "", "", ""
		switch {
		case g.VNC != nil:
			typ, listen, pw = "vnc", g.VNC.Listen, g.VNC.Passwd
		case g.Spice != nil:
			typ, listen, pw = "spice", g.Spice.Listen, g.Spice.Passwd
		default:
			continue
		}
		if !to.GraphicsAllowed(typ) {
			typ = to.Display.Default.Graphics
			if typ == "" {
				continue
			}
			if len(pw) > 8 {
				pw = pw[:8]
			}
		}
		if listen == "" {
			listen = "127.0.0.1"
		}
		if graphics == "" {
			graphics = typ
		}
		gs = append(gs, graphic(typ, listen, pw))
		break // one display is enough for a fake VM
	}
	d.Graphics = gs
	for i := range d.Videos {
		m := &d.Videos[i].Model
		if graphics == "" || !to.DisplayAllowed(graphics, m.Type) {
			video := to.DefaultVideo(graphics)
			if video == "" {
				video = to.Display.Default.Video
			}
			*m = libvirtxml.DomainVideoModel{Type: video, Heads: m.Heads, Primary: m.Primary}
		}
		if int(m.Heads) > to.Display.MaxMonitors {
			m.Heads = uint(to.Display.MaxMonitors)
		}
	}
	var ins []libvirtxml.DomainInput
	for _, in := range d.Inputs {
		if to.InputBusAllowed(in.Bus) {
			in.Address = nil
			ins = append(ins, in)
		}
	}
	noUSB := false
	for _, c := range d.Controllers {
		noUSB = noUSB || (c.Type == "usb" && c.Model == "none")
	}
	if graphics != "" {
		// Add the target's default inputs of a type the VM lost (the PS/2
		// keyboard an x86 VM has implicitly).
		for _, def := range to.Input.Defaults {
			have := false
			for _, in := range ins {
				have = have || in.Type == def.Type
			}
			if !have && !(noUSB && def.Bus == "usb") {
				ins = append(ins, libvirtxml.DomainInput{Type: def.Type, Bus: def.Bus})
			}
		}
	}
	d.Inputs = ins
}

// retargetConsole keeps the first serial console's source and writes it as
// the target's console.
func retargetConsole(d *libvirtxml.DomainDeviceList, to *archspec.Spec) {
	var src *libvirtxml.DomainChardevSource
	var log *libvirtxml.DomainChardevLog
	switch {
	case len(d.Serials) > 0:
		src, log = d.Serials[0].Source, d.Serials[0].Log
	case len(d.Consoles) > 0:
		src, log = d.Consoles[0].Source, d.Consoles[0].Log
	default:
		return
	}
	if src == nil {
		src = &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}}
	}
	d.Serials, d.Consoles = consoleDevices(to, src, log)
}

func filter[T any](in []T, keep func(T) bool) []T {
	var out []T
	for _, x := range in {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}
