package archspec

import (
	"strings"

	"polyvirt/internal/arch"
)

// The methods below answer the questions of VM validation (package vmspec),
// domain XML building and fake KVM (package domxml).

// GuestOSAllowed reports whether a guest OS type may run on this
// architecture.
func (s *Spec) GuestOSAllowed(osType string) bool { return s.GuestOS.Allows(osType) }

// DefaultFirmware is the firmware a VM gets when it names none: the first
// allowed choice ("bios", "slof", "efi"), or "" where there is no choice.
func (s *Spec) DefaultFirmware() string {
	if len(s.Firmware.Allowed) == 0 {
		return ""
	}
	return s.Firmware.Allowed[0]
}

// FirmwareAllowed reports whether a firmware choice exists here.
func (s *Spec) FirmwareAllowed(fw string) bool { return contains(s.Firmware.Allowed, fw) }

// DefaultVideo is the video model that goes with a graphics protocol: the
// default pair's video when the protocol is the default one, else the first
// allowed pair's; "" when the protocol does not exist.
func (s *Spec) DefaultVideo(graphics string) string {
	if s.Display.Default.Graphics == graphics {
		return s.Display.Default.Video
	}
	for _, p := range s.Display.Pairs {
		if p.Graphics == graphics {
			return p.Video
		}
	}
	return ""
}

// SCSIControllerAllowed reports whether a SCSI controller model exists.
func (s *Spec) SCSIControllerAllowed(model string) bool {
	return contains(s.Disk.SCSIControllers, model)
}

// DefaultSCSIController is the controller SCSI disks go on when they name
// none ("" where SCSI does not exist).
func (s *Spec) DefaultSCSIController() string {
	if len(s.Disk.SCSIControllers) == 0 {
		return ""
	}
	return s.Disk.SCSIControllers[0]
}

// HostModelCompat returns the libvirt spelling of a compatibility level
// given with host-model ("power9" for "POWER9": libvirt wants it lower
// case), and whether this architecture has such levels at all.
func (s *Spec) HostModelCompat(model string) (string, bool) {
	for _, m := range s.CPU.CompatLadder {
		if strings.EqualFold(m, model) {
			return strings.ToLower(m), true
		}
	}
	return "", false
}

// CanonicalCPUModel returns the table's spelling of a named model
// ("POWER8" for "power8"), or the model as given when the table names none.
func (s *Spec) CanonicalCPUModel(model string) string {
	for _, m := range s.CPU.Models {
		if strings.EqualFold(m, model) {
			return m
		}
	}
	return model
}

// TCGCPUModel is the named model a VM runs with under TCG: a named model
// (custom mode) or a host-model compatibility level that TCG emulates is
// kept, in the table's spelling; anything else (host-model,
// host-passthrough, a model TCG lacks) becomes TCGModel.
func (s *Spec) TCGCPUModel(model string) string {
	for _, m := range s.CPU.TCGModels {
		if model != "" && strings.EqualFold(m, model) {
			return m
		}
	}
	return s.CPU.TCGModel
}

// TCGCPU is the CPU mode and model a VM that asks for mode and model gets
// under TCG: mode maximum stays (QEMU's -cpu max exists under TCG); any
// other mode becomes custom with TCGCPUModel — a named model or a host-model
// compatibility level TCG emulates is kept in the table's spelling,
// host-model, host-passthrough and a model TCG lacks get TCGModel.
func (s *Spec) TCGCPU(mode, model string) (string, string) {
	switch mode {
	case "maximum":
		return mode, model
	case "host-passthrough":
		model = ""
	}
	return "custom", s.TCGCPUModel(model)
}

// RoundMemory rounds a size in MiB up to the architecture's granule (a
// multiple of 256 MiB on POWER); sizes are returned as they are elsewhere.
func (s *Spec) RoundMemory(mib uint64) uint64 {
	g := s.Memory.MultipleMiB
	if g == 0 || mib%g == 0 {
		return mib
	}
	return (mib/g + 1) * g
}

// RunsNatively reports whether a host of this architecture runs guests of
// architecture a as its own (a ppc64le host runs ppc64 guests too).
func (s *Spec) RunsNatively(a arch.Arch) bool {
	for _, g := range s.GuestArches {
		if g == a {
			return true
		}
	}
	return false
}

// RunsAtAll reports whether a host of this architecture can run a guest of
// architecture a in any way: natively (RunsNatively), or, when the host
// runs every guest under TCG (tcgOnly: fake KVM, no usable KVM), whenever
// its libvirt offers a (offered). It is the question of one definition
// checked against one host's report; placement (the scheduler, the agent,
// a cluster) asks RunsNatively: a VM belongs on a host of its own
// architecture.
func (s *Spec) RunsAtAll(a arch.Arch, tcgOnly, offered bool) bool {
	return s.RunsNatively(a) || (tcgOnly && offered)
}

// RunsEmulated reports whether a host of this architecture runs a foreign
// guest architecture unchanged under TCG in fake-KVM mode.
func (s *Spec) RunsEmulated(a arch.Arch) bool {
	for _, g := range s.Host.TCGGuests {
		if g == a {
			return true
		}
	}
	return false
}

// FakeKVMTarget is the Spec a VM of architecture guest is built by on a
// fake-KVM host of this architecture: guest itself when the host runs it
// natively or emulates it as it is (Host.TCGGuests: a pseries VM on an
// x86_64 host), else the host's own (an x86_64 VM on a POWER host is
// rewritten for pseries).
func (s *Spec) FakeKVMTarget(guest *Spec) *Spec {
	if s.RunsNatively(guest.Arch) || s.RunsEmulated(guest.Arch) {
		return guest
	}
	return s
}

// ProbeGuest is the smallest guest of an architecture: what a host's
// health check starts to see that libvirt and QEMU run a guest there (a
// host back from a firmware update). It has no disk, no kernel and no
// network: the architecture's default machine boots its default firmware
// (SLOF on pseries, SeaBIOS on q35, the UEFI of virt; s390x's machine has
// none to name), which runs until it is destroyed.
type ProbeGuest struct {
	// Machine and Firmware are the architecture's defaults.
	Machine, Firmware string
	// MemoryMiB is the least memory a VM of the architecture may have
	// (at least 128 MiB, a multiple of the architecture's granule).
	MemoryMiB uint64
	// CPUs is one.
	CPUs int
}

// Probe is the architecture's probe guest.
func (s *Spec) Probe() ProbeGuest {
	m := max(s.Memory.MinMiB, 128)
	if g := s.Memory.MultipleMiB; g > 0 && m%g != 0 {
		m += g - m%g
	}
	return ProbeGuest{Machine: s.Machine.Default, Firmware: s.DefaultFirmware(), MemoryMiB: m, CPUs: 1}
}
