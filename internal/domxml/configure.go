package domxml

import (
	"fmt"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

// SMBIOS identity written into <sysinfo> where the architecture has SMBIOS.
const (
	SMBIOSManufacturer = "polyvirt"
	SMBIOSProduct      = "polyvirt VM"
)

func uintp(v uint) *uint { return &v }

func configureIdentity(b *builder) {
	b.dom.Type = b.set.domainType
	b.dom.Name = b.vm.Name
	b.dom.UUID = b.vm.UUID
	b.dom.OnPoweroff = "destroy"
	b.dom.OnReboot = "restart"
	b.dom.OnCrash = "destroy"
	b.dom.Devices.Emulator = b.spec.Emulator
}

// configureOS writes <os>: the machine, the firmware choice, a direct
// kernel boot, the boot devices, and SMBIOS where it exists.
func configureOS(b *builder) {
	vm, s := b.vm, b.spec
	os := &libvirtxml.DomainOS{
		Type: &libvirtxml.DomainOSType{Arch: vm.Arch.String(), Machine: vm.Machine, Type: "hvm"},
	}
	if vm.Firmware == "efi" && s.Firmware.Loader {
		os.Firmware = "efi"
	}
	if k := vm.Kernel; k != nil {
		os.Kernel, os.Initrd, os.Cmdline = k.Path, k.Initrd, k.Cmdline
	} else if !hasBootOrder(vm) {
		os.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
		for _, d := range vm.Disks {
			if d.Device == "cdrom" {
				os.BootDevices = append(os.BootDevices, libvirtxml.DomainBootDevice{Dev: "cdrom"})
				break
			}
		}
	}
	if s.Platform.SMBIOS {
		os.SMBios = &libvirtxml.DomainSMBios{Mode: "sysinfo"}
		sys := &libvirtxml.DomainSysInfoSystem{Entry: []libvirtxml.DomainSysInfoEntry{
			{Name: "manufacturer", Value: SMBIOSManufacturer},
			{Name: "product", Value: SMBIOSProduct},
		}}
		if vm.UUID != "" {
			sys.Entry = append(sys.Entry, libvirtxml.DomainSysInfoEntry{Name: "uuid", Value: vm.UUID})
		}
		b.dom.SysInfo = []libvirtxml.DomainSysInfo{{SMBIOS: &libvirtxml.DomainSysInfoSMBIOS{System: sys}}}
	}
	b.dom.OS = os
}

func hasBootOrder(vm *vmspec.VM) bool {
	for _, d := range vm.Disks {
		if d.BootOrder > 0 {
			return true
		}
	}
	for _, n := range vm.NICs {
		if n.BootOrder > 0 {
			return true
		}
	}
	return false
}

// configurePlatform writes <features> and <clock>.
func configurePlatform(b *builder) {
	b.dom.Features = features(b.spec)
	offset := "utc"
	if b.vm.OSType == "windows" {
		offset = "localtime" // Windows keeps the RTC in local time
	}
	b.dom.Clock = &libvirtxml.DomainClock{Offset: offset, Timer: timers(b.spec)}
}

// features are the machine-wide features of an architecture (nil when it
// has none: pseries has no ACPI, APIC or vmport).
func features(s *archspec.Spec) *libvirtxml.DomainFeatureList {
	p := s.Platform
	f := &libvirtxml.DomainFeatureList{}
	any := false
	if p.ACPI {
		f.ACPI, any = &libvirtxml.DomainFeature{}, true
	}
	if p.APIC {
		f.APIC, any = &libvirtxml.DomainFeatureAPIC{}, true
	}
	if p.GIC {
		f.GIC, any = &libvirtxml.DomainFeatureGIC{}, true
	}
	if p.HasVMPort {
		state := "off"
		if p.VMPort {
			state = "on"
		}
		f.VMPort, any = &libvirtxml.DomainFeatureState{State: state}, true
	}
	if !any {
		return nil
	}
	return f
}

func timers(s *archspec.Spec) []libvirtxml.DomainTimer {
	if len(s.Clock.Timers) == 0 {
		return nil
	}
	out := make([]libvirtxml.DomainTimer, len(s.Clock.Timers))
	for i, t := range s.Clock.Timers {
		out[i] = libvirtxml.DomainTimer{Name: t.Name, TickPolicy: t.TickPolicy, Present: t.Present}
	}
	return out
}

// configureCPU writes <vcpu> and <cpu>: mode, model or compatibility
// level (under TCG the one TCG emulates), topology, and one NUMA cell when
// memory hot plug needs it.
func configureCPU(b *builder) {
	c := b.vm.CPU
	b.dom.VCPU = &libvirtxml.DomainVCPU{Placement: "static", Value: uint(c.VCPUs())}
	mode, model := c.Mode, c.Model
	if b.set.tcg {
		mode, model = b.spec.TCGCPU(mode, model)
	}
	cpu := &libvirtxml.DomainCPU{
		Mode:     mode,
		Topology: &libvirtxml.DomainCPUTopology{Sockets: c.Sockets, Cores: c.Cores, Threads: c.Threads},
	}
	switch mode {
	case "custom":
		cpu.Match = "exact"
		cpu.Model = &libvirtxml.DomainCPUModel{Value: model}
	case "host-model":
		if compat, ok := b.spec.HostModelCompat(model); ok {
			cpu.Model = &libvirtxml.DomainCPUModel{Value: compat}
		}
	}
	if b.hotPlugMemory() {
		cpu.Numa = &libvirtxml.DomainNuma{Cell: []libvirtxml.DomainCell{{
			ID: uintp(0), CPUs: fmt.Sprintf("0-%d", c.VCPUs()-1), Memory: uint(b.memoryMiB()), Unit: "MiB",
		}}}
	}
	b.dom.CPU = cpu
}

// MemorySlots is the number of hot plug slots of a VM with maxMiB.
const MemorySlots = 16

// configureMemory writes the memory at start (capped when the settings
// say so) and the most hot plug may reach.
func configureMemory(b *builder) {
	size := uint(b.memoryMiB())
	b.dom.Memory = &libvirtxml.DomainMemory{Value: size, Unit: "MiB"}
	b.dom.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: size, Unit: "MiB"}
	if b.hotPlugMemory() {
		b.dom.MaximumMemory = &libvirtxml.DomainMaxMemory{Value: uint(b.vm.Memory.MaxMiB), Unit: "MiB", Slots: MemorySlots}
	}
}

// memoryMiB is the memory at start: the definition's, at most the cap.
func (b *builder) memoryMiB() uint64 {
	size := uint64(b.vm.Memory.SizeMiB)
	if c := b.set.memoryCapMiB; c != 0 && size > c {
		return c
	}
	return size
}

// hotPlugMemory tells whether the definition asks for memory hot plug (a
// cap lowers the memory at start, not the maximum).
func (b *builder) hotPlugMemory() bool {
	m := b.vm.Memory
	return m.MaxMiB > m.SizeMiB
}

// scsiModels maps polyvirt's SCSI controller names to libvirt's models.
var scsiModels = map[string]string{
	"spapr-vscsi": "ibmvscsi",
	"virtio-scsi": "virtio-scsi",
	"lsilogic":    "lsilogic",
}

// configureDisks writes the disks; SCSI disks get an explicit drive
// address on the controller of their model (unless the settings leave
// addresses to libvirt).
func configureDisks(b *builder) {
	if len(b.vm.Disks) == 0 {
		return
	}
	disks := make([]libvirtxml.DomainDisk, len(b.vm.Disks))
	units := map[string]uint{}
	for i, d := range b.vm.Disks {
		disk := libvirtxml.DomainDisk{
			Device: d.Device,
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: d.Format},
			Target: &libvirtxml.DomainDiskTarget{Dev: d.Target, Bus: d.Bus},
		}
		switch {
		case d.Source == "":
			// An empty tray: a file disk without a file (type='file'
			// written, as libvirt reads it back).
			disk.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{}}
		default:
			if d.Type == "block" {
				disk.Source = &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: d.Source}}
			} else {
				disk.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: d.Source}}
			}
		}
		if d.ReadOnly {
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
		if d.BootOrder > 0 {
			disk.Boot = &libvirtxml.DomainDeviceBoot{Order: uint(d.BootOrder)}
		}
		// A SCSI disk that names no controller (a retargeted VM's disk
		// moved onto SCSI) goes where libvirt puts it: its first SCSI
		// controller, or a default one it adds.
		if d.Bus == "scsi" && d.Controller != "" {
			idx := b.scsiIndex(d.Controller)
			if !b.set.libvirtAddresses {
				unit := units[d.Controller]
				units[d.Controller]++
				disk.Address = &libvirtxml.DomainAddress{Drive: &libvirtxml.DomainAddressDrive{
					Controller: uintp(idx), Bus: uintp(0), Target: uintp(0), Unit: uintp(unit),
				}}
			}
		}
		disks[i] = disk
	}
	b.dom.Devices.Disks = disks
}

func (b *builder) scsiIndex(model string) uint {
	for i, m := range b.scsi {
		if m == model {
			return uint(i)
		}
	}
	b.scsi = append(b.scsi, model)
	return uint(len(b.scsi) - 1)
}

// configureControllers writes the SCSI controllers the disks use and the
// USB controller (model none tells libvirt to add no default one).
func configureControllers(b *builder) {
	var cs []libvirtxml.DomainController
	for i, m := range b.scsi {
		cs = append(cs, libvirtxml.DomainController{Type: "scsi", Index: uintp(uint(i)), Model: scsiModels[m]})
	}
	if u := b.vm.USB.Model; u != "" {
		cs = append(cs, libvirtxml.DomainController{Type: "usb", Index: uintp(0), Model: u})
	}
	b.dom.Devices.Controllers = cs
}

func configureNICs(b *builder) {
	if len(b.vm.NICs) == 0 {
		return
	}
	ifs := make([]libvirtxml.DomainInterface, len(b.vm.NICs))
	for i, n := range b.vm.NICs {
		in := libvirtxml.DomainInterface{Model: &libvirtxml.DomainInterfaceModel{Type: n.Model}}
		switch {
		case n.Bridge != "":
			in.Source = &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: n.Bridge}}
		case n.Network != "":
			in.Source = &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: n.Network}}
		default:
			in.Source = &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
		}
		if n.MAC != "" {
			in.MAC = &libvirtxml.DomainInterfaceMAC{Address: n.MAC}
		}
		if n.BootOrder > 0 {
			in.Boot = &libvirtxml.DomainDeviceBoot{Order: uint(n.BootOrder)}
		}
		ifs[i] = in
	}
	b.dom.Devices.Interfaces = ifs
}

func configureGraphics(b *builder) {
	d := b.vm.Display
	if d.Type == "none" {
		return
	}
	b.dom.Devices.Graphics = []libvirtxml.DomainGraphic{graphic(d.Type, d.Listen, d.Password)}
}

// graphic is one VNC or SPICE display with an automatic port.
func graphic(typ, listen, password string) libvirtxml.DomainGraphic {
	ls := []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: listen}}}
	if typ == "spice" {
		return libvirtxml.DomainGraphic{Spice: &libvirtxml.DomainGraphicSpice{
			AutoPort: "yes", Listen: listen, Passwd: password, Listeners: ls}}
	}
	return libvirtxml.DomainGraphic{VNC: &libvirtxml.DomainGraphicVNC{
		AutoPort: "yes", Listen: listen, Passwd: password, Listeners: ls}}
}

func configureVideo(b *builder) {
	d := b.vm.Display
	if d.Type == "none" {
		return
	}
	b.dom.Devices.Videos = []libvirtxml.DomainVideo{{
		Model: libvirtxml.DomainVideoModel{Type: d.Video, Heads: uint(d.Monitors), Primary: "yes"},
	}}
}

func configureInputs(b *builder) {
	if len(b.vm.Inputs) == 0 {
		return
	}
	ins := make([]libvirtxml.DomainInput, len(b.vm.Inputs))
	for i, in := range b.vm.Inputs {
		ins[i] = libvirtxml.DomainInput{Type: in.Type, Bus: in.Bus}
	}
	b.dom.Devices.Inputs = ins
}

// configureConsole writes the serial console the architecture's way: a
// <serial> with its <console> alias (x86 isa-serial, aarch64 pl011), or a
// <console> alone (pseries spapr-vty, s390x sclp).
func configureConsole(b *builder) {
	c := b.vm.Console
	if c.Type == "none" {
		return
	}
	var src *libvirtxml.DomainChardevSource
	var log *libvirtxml.DomainChardevLog
	if c.Type == "file" {
		src = &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: firstNonEmpty(b.set.consoleFile, c.Path)}}
	} else {
		src = &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}}
		if f := firstNonEmpty(b.set.consoleFile, c.Log); f != "" {
			log = &libvirtxml.DomainChardevLog{File: f}
		}
	}
	b.dom.Devices.Serials, b.dom.Devices.Consoles = consoleDevices(b.spec, src, log)
}

// consoleDevices is the serial console of an architecture on a source.
func consoleDevices(s *archspec.Spec, src *libvirtxml.DomainChardevSource, log *libvirtxml.DomainChardevLog) ([]libvirtxml.DomainSerial, []libvirtxml.DomainConsole) {
	r := s.Console
	if r.Element == "serial" {
		serial := libvirtxml.DomainSerial{
			Source: src, Log: log,
			Target: &libvirtxml.DomainSerialTarget{Type: r.TargetType, Port: uintp(0)},
		}
		if r.TargetModel != "" {
			serial.Target.Model = &libvirtxml.DomainSerialTargetModel{Name: r.TargetModel}
		}
		console := libvirtxml.DomainConsole{Source: src, Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: uintp(0)}}
		return []libvirtxml.DomainSerial{serial}, []libvirtxml.DomainConsole{console}
	}
	return nil, []libvirtxml.DomainConsole{{
		Source: src, Log: log,
		Target: &libvirtxml.DomainConsoleTarget{Type: r.TargetType, Port: uintp(0)},
	}}
}

func configureSound(b *builder) {
	if s := b.vm.Sound; s != nil && s.Model != "none" {
		b.dom.Devices.Sounds = []libvirtxml.DomainSound{{Model: s.Model}}
	}
}

func configureWatchdog(b *builder) {
	if w := b.vm.Watchdog; w != nil && w.Model != "none" {
		b.dom.Devices.Watchdogs = []libvirtxml.DomainWatchdog{{Model: w.Model, Action: w.Action}}
	}
}

func configureRNG(b *builder) {
	r := b.vm.RNG
	if r.Model == "" || r.Model == "none" {
		return
	}
	b.dom.Devices.RNGs = []libvirtxml.DomainRNG{{
		Model:   r.Model,
		Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: r.Backend}},
	}}
}

func configurePanic(b *builder) {
	if m := b.spec.Panic; m != "" {
		b.dom.Devices.Panics = []libvirtxml.DomainPanic{{Model: m}}
	}
}

func configureBalloon(b *builder) {
	b.dom.Devices.MemBalloon = &libvirtxml.DomainMemBalloon{Model: "virtio"}
}

// firstNonEmpty returns the first of s that is not empty.
func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
