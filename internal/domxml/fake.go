package domxml

import (
	"unicode/utf8"

	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

// fakeKVM is how a fake-KVM host whose real architecture is host builds a
// validated VM (VDSM's faqemu, done on the definition): the definition it
// builds, the rules it is built by, and the settings of a TCG build.
//
//   - A VM of an architecture the host runs natively or emulates as it is
//     (archspec FakeKVMTarget: a pseries VM on an x86_64 host runs in
//     qemu-system-ppc64) keeps its definition; any other VM (an x86_64 VM
//     on a POWER host) is Retarget-ed for the host's architecture.
//   - Always: domain type qemu; the CPU TCG emulates (archspec TCGCPU);
//     the memory capped at capMiB (0: no cap), rounded up to the granule.
func fakeKVM(vm *vmspec.VM, spec, host *archspec.Spec, capMiB uint64) (*vmspec.VM, *archspec.Spec, settings) {
	set := settings{domainType: domainTCG, tcg: true}
	if to := host.FakeKVMTarget(spec); to != spec {
		vm, spec = Retarget(vm, to), to
		set.libvirtAddresses = true
	}
	if capMiB != 0 {
		set.memoryCapMiB = spec.RoundMemory(capMiB)
	}
	return vm, spec, set
}

// Retarget returns a completed definition (one vmspec.Validate made) of
// another architecture rewritten for the architecture of to, by to's
// rules alone; the definition given is not modified. It is what a
// fake-KVM host does with a VM it can neither run nor emulate (an x86_64
// VM on a POWER host becomes a pseries VM):
//
//   - to's default machine, a firmware to allows (else its default);
//   - a CPU mode and model to has (else its default mode); at most to's
//     vCPUs; memory within to's limits, on its granule, hot plug only
//     where to has it;
//   - no floppy where to has none; a disk on a bus to's machine lacks
//     (IDE, SATA) moves to to's default bus, a CD-ROM to to's CD-ROM bus,
//     with a new device name and, on SCSI, no controller named (libvirt
//     places it); SCSI disks on a controller to lacks go on its default;
//   - allowed NIC and USB models (else the defaults); VNC instead of a
//     protocol to lacks (SPICE), with the password cut to what VNC takes;
//     an allowed video model and number of heads; the inputs on buses to
//     has, plus to's default inputs of a type the VM lost (the PS/2
//     keyboard an x86_64 VM has implicitly); no sound card, watchdog or
//     RNG model to lacks.
//
// The guest OS type stays: it says what the guest is (its clock, the
// metadata), even where to does not list it. The console, the panic
// device, features, timers and SMBIOS are the pipeline's, by to's rules.
func Retarget(in *vmspec.VM, to *archspec.Spec) *vmspec.VM {
	if in == nil || to == nil {
		return in.Clone()
	}
	vm := in.Clone()
	vm.Arch, vm.Machine = to.Arch, to.Machine.Default
	if !to.FirmwareAllowed(vm.Firmware) {
		vm.Firmware = to.DefaultFirmware()
	}
	retargetCPU(vm.CPU, to)
	retargetMemory(vm.Memory, to)
	retargetDisks(vm, to)
	for i := range vm.NICs {
		if !to.NIC.Allows(vm.NICs[i].Model) {
			vm.NICs[i].Model = to.NIC.Default
		}
	}
	if u := vm.USB; u != nil && u.Model != "none" && !to.USB.Allows(u.Model) {
		u.Model = to.USB.Default
	}
	retargetDisplay(vm.Display, to)
	retargetInputs(vm, to)
	if s := vm.Sound; s != nil && !to.Sound.Allows(s.Model) {
		vm.Sound = nil
	}
	if w := vm.Watchdog; w != nil && !to.Watchdog.Allows(w.Model) {
		vm.Watchdog = nil
	}
	if r := vm.RNG; r != nil && r.Model != "" && r.Model != "none" && !to.RNG.Allows(r.Model) {
		vm.RNG = &vmspec.RNG{Model: "none"}
	}
	return vm
}

// retargetCPU keeps a mode and model to has; anything else becomes to's
// default mode.
func retargetCPU(c *vmspec.CPU, to *archspec.Spec) {
	if c == nil {
		return
	}
	keep := to.CPUModeAllowed(c.Mode)
	switch c.Mode {
	case "custom":
		keep = keep && to.CPUModelAllowed(c.Model)
		c.Model = to.CanonicalCPUModel(c.Model)
	case "host-model":
		if _, ok := to.HostModelCompat(c.Model); !ok {
			c.Model = ""
		}
	}
	if !keep {
		c.Mode, c.Model = to.CPU.DefaultMode, ""
	}
	if max := to.CPU.MaxVCPUs; c.VCPUs() > max {
		c.Sockets, c.Cores, c.Threads = 1, max, 1
	}
}

// retargetMemory puts the sizes within to's limits and on its granule.
func retargetMemory(m *vmspec.Memory, to *archspec.Spec) {
	if m == nil {
		return
	}
	r := to.Memory
	within := func(mib int64, floor uint64) int64 {
		return int64(min(to.RoundMemory(max(uint64(max(mib, 0)), floor)), r.MaxMiB))
	}
	m.SizeMiB = within(m.SizeMiB, r.MinMiB)
	if m.MaxMiB != 0 && r.HotPlug {
		m.MaxMiB = within(m.MaxMiB, uint64(m.SizeMiB))
	} else {
		m.MaxMiB = 0
	}
}

// retargetDisks drops the floppies to cannot take, moves disks off buses
// its machine lacks and names the moved ones again (vmspec.AssignTargets).
func retargetDisks(vm *vmspec.VM, to *archspec.Spec) {
	kept := vm.Disks[:0]
	for _, d := range vm.Disks {
		if d.Device == "floppy" && !(to.Floppy && to.DiskBusAllowed("fdc", vm.Machine)) {
			continue
		}
		switch {
		case !to.DiskBusAllowed(d.Bus, vm.Machine):
			d.Bus = to.Disk.DefaultBus
			if d.Device == "cdrom" {
				d.Bus = to.CDROMBus(vm.Machine)
			}
			d.Target, d.Controller = "", ""
		case d.Bus == "scsi" && !to.SCSIControllerAllowed(d.Controller):
			d.Controller = to.DefaultSCSIController()
		}
		kept = append(kept, d)
	}
	if len(kept) == 0 {
		kept = nil
	}
	vm.Disks = kept
	vmspec.AssignTargets(vm)
}

// retargetDisplay gives to's default protocol for one it lacks, an allowed
// video model and at most its number of heads.
func retargetDisplay(d *vmspec.Display, to *archspec.Spec) {
	if d == nil || d.Type == "none" {
		return
	}
	if !to.GraphicsAllowed(d.Type) {
		d.Type = to.Display.Default.Graphics
		if d.Type == "" {
			*d = vmspec.Display{Type: "none"}
			return
		}
		d.Password = clipBytes(d.Password, vmspec.MaxPasswordLen(d.Type))
	}
	if !to.DisplayAllowed(d.Type, d.Video) {
		d.Video = to.DefaultVideo(d.Type)
	}
	if d.Monitors > to.Display.MaxMonitors {
		d.Monitors = to.Display.MaxMonitors
	}
}

// retargetInputs keeps the inputs on buses to has and, for a VM with a
// display, adds to's default inputs of a type the VM has none of.
func retargetInputs(vm *vmspec.VM, to *archspec.Spec) {
	usb := vm.USB != nil && vm.USB.Model != "" && vm.USB.Model != "none"
	var ins []vmspec.Input
	has := map[string]bool{}
	for _, in := range vm.Inputs {
		if to.InputBusAllowed(in.Bus) && (in.Bus != "usb" || usb) {
			ins = append(ins, in)
			has[in.Type] = true
		}
	}
	if vm.Display != nil && vm.Display.Type != "none" {
		for _, def := range to.Input.Defaults {
			if !has[def.Type] && (def.Bus != "usb" || usb) {
				ins = append(ins, vmspec.Input{Type: def.Type, Bus: def.Bus})
				has[def.Type] = true
			}
		}
	}
	vm.Inputs = ins
}

// clipBytes cuts s to at most n bytes on a character boundary.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
