package archspec

import (
	"testing"

	"polyvirt/internal/arch"
)

func TestVMRuleAnswers(t *testing.T) {
	x86 := mustSpec(t, arch.X86_64)
	ppc := mustSpec(t, arch.PPC64LE)
	arm := mustSpec(t, arch.AArch64)
	s390 := mustSpec(t, arch.S390X)
	cases := []struct {
		name string
		got  any
		want any
	}{
		{"x86 default firmware", x86.DefaultFirmware(), "bios"},
		{"ppc default firmware", ppc.DefaultFirmware(), "slof"},
		{"arm default firmware", arm.DefaultFirmware(), "efi"},
		{"s390 default firmware", s390.DefaultFirmware(), ""},
		{"ppc refuses efi", ppc.FirmwareAllowed("efi"), false},
		{"x86 vnc video", x86.DefaultVideo("vnc"), "vga"},
		{"x86 spice video", x86.DefaultVideo("spice"), "qxl"},
		{"ppc spice video", ppc.DefaultVideo("spice"), ""},
		{"arm vnc video", arm.DefaultVideo("vnc"), "virtio"},
		{"ppc default SCSI", ppc.DefaultSCSIController(), "spapr-vscsi"},
		{"x86 spapr-vscsi", x86.SCSIControllerAllowed("spapr-vscsi"), false},
		{"ppc virtio-scsi", ppc.SCSIControllerAllowed("virtio-scsi"), true},
		{"ppc compat POWER9", first(ppc.HostModelCompat("POWER9")), "power9"},
		{"ppc compat unknown", second(ppc.HostModelCompat("POWER11")), false},
		{"x86 has no compat", second(x86.HostModelCompat("Nehalem")), false},
		{"ppc canonical model", ppc.CanonicalCPUModel("power8"), "POWER8"},
		{"x86 canonical model", x86.CanonicalCPUModel("Haswell"), "Haswell"},
		{"ppc TCG keeps POWER9", ppc.TCGCPUModel("power9"), "POWER9"},
		{"ppc TCG for host-model", ppc.TCGCPUModel(""), "POWER8"},
		{"x86 TCG replaces Haswell", x86.TCGCPUModel("Haswell"), "qemu64"},
		{"x86 TCG keeps max", x86.TCGCPUModel("max"), "max"},
		{"ppc rounds 1000 MiB", ppc.RoundMemory(1000), uint64(1024)},
		{"ppc keeps 512 MiB", ppc.RoundMemory(512), uint64(512)},
		{"x86 keeps 1000 MiB", x86.RoundMemory(1000), uint64(1000)},
		{"ppc64le host runs ppc64", ppc.RunsNatively(arch.PPC64), true},
		{"ppc64le host does not run x86", ppc.RunsNatively(arch.X86_64), false},
		{"x86 host emulates ppc64le", x86.RunsEmulated(arch.PPC64LE), true},
		{"ppc host does not emulate x86", ppc.RunsEmulated(arch.X86_64), false},
		{"windows on ppc", ppc.GuestOSAllowed("windows"), false},
		{"windows on x86", x86.GuestOSAllowed("windows"), true},
		{"ppc memory code", ppc.Memory.MultipleCode, "MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC"},
		{"s390 headless", s390.Display.Headless, true},
		{"fdc on q35", x86.DiskBusAllowed("fdc", "q35"), false},
		{"fdc on pc", x86.DiskBusAllowed("fdc", "pc-i440fx-7.2"), true},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func first(s string, _ bool) string { return s }
func second(_ string, b bool) bool  { return b }

func TestDefaultsAreConsistent(t *testing.T) {
	for _, a := range Arches() {
		s := mustSpec(t, a)
		if s.GuestOS.Default == "" || !s.GuestOSAllowed(s.GuestOS.Default) {
			t.Errorf("%s: default guest OS %q not allowed", a, s.GuestOS.Default)
		}
		if s.Memory.DefaultMiB < s.Memory.MinMiB || s.RoundMemory(s.Memory.DefaultMiB) != s.Memory.DefaultMiB {
			t.Errorf("%s: default memory %d below the minimum or off the granule", a, s.Memory.DefaultMiB)
		}
		if (s.Memory.MultipleMiB == 0) != (s.Memory.MultipleCode == "") {
			t.Errorf("%s: a memory granule needs its error code and the reverse", a)
		}
		if s.CPU.TCGModel == "" || s.TCGCPUModel(s.CPU.TCGModel) != s.CPU.TCGModel {
			t.Errorf("%s: TCG model %q must be one of TCGModels %v", a, s.CPU.TCGModel, s.CPU.TCGModels)
		}
		if s.Disk.DefaultBus == "scsi" || contains(s.Disk.Buses, "scsi") {
			if s.DefaultSCSIController() == "" {
				t.Errorf("%s: SCSI bus without a controller model", a)
			}
		}
		if s.RunsEmulated(a) {
			t.Errorf("%s: lists itself as a foreign TCG guest", a)
		}
	}
}

func TestTCGCPU(t *testing.T) {
	ppc, x86, arm := mustSpec(t, arch.PPC64LE), mustSpec(t, arch.X86_64), mustSpec(t, arch.AArch64)
	cases := []struct {
		name                string
		s                   *Spec
		mode, model         string
		wantMode, wantModel string
	}{
		{"POWER8 kept", ppc, "custom", "POWER8", "custom", "POWER8"},
		{"POWER9 kept", ppc, "custom", "POWER9", "custom", "POWER9"},
		{"host-model becomes POWER8", ppc, "host-model", "", "custom", "POWER8"},
		{"host-model compat power9 becomes POWER9", ppc, "host-model", "power9", "custom", "POWER9"},
		{"host-passthrough on POWER", ppc, "host-passthrough", "", "custom", "POWER8"},
		{"x86 Haswell replaced", x86, "custom", "Haswell", "custom", "qemu64"},
		{"x86 QEMU64 in the table's spelling", x86, "custom", "QEMU64", "custom", "qemu64"},
		{"x86 host-model", x86, "host-model", "", "custom", "qemu64"},
		{"x86 maximum kept", x86, "maximum", "", "maximum", ""},
		{"arm host-passthrough", arm, "host-passthrough", "", "custom", "max"},
		{"arm cortex-a72 kept", arm, "custom", "cortex-a72", "custom", "cortex-a72"},
		{"a POWER model on arm", arm, "custom", "POWER9", "custom", "max"},
	}
	for _, c := range cases {
		mode, model := c.s.TCGCPU(c.mode, c.model)
		if mode != c.wantMode || model != c.wantModel {
			t.Errorf("%s: TCGCPU(%q, %q) = %q, %q; want %q, %q", c.name, c.mode, c.model, mode, model, c.wantMode, c.wantModel)
		}
	}
}

func TestFakeKVMTarget(t *testing.T) {
	cases := []struct {
		host, guest, want arch.Arch
	}{
		{arch.X86_64, arch.PPC64LE, arch.PPC64LE}, // emulated as it is
		{arch.X86_64, arch.PPC64, arch.PPC64},
		{arch.X86_64, arch.AArch64, arch.AArch64},
		{arch.X86_64, arch.S390X, arch.S390X},
		{arch.X86_64, arch.X86_64, arch.X86_64},   // native
		{arch.PPC64LE, arch.PPC64, arch.PPC64},    // native, other endianness
		{arch.PPC64LE, arch.X86_64, arch.PPC64LE}, // rewritten for pseries
		{arch.PPC64LE, arch.AArch64, arch.PPC64LE},
		{arch.AArch64, arch.X86_64, arch.AArch64},
		{arch.S390X, arch.PPC64LE, arch.S390X},
	}
	for _, c := range cases {
		if got := mustSpec(t, c.host).FakeKVMTarget(mustSpec(t, c.guest)).Arch; got != c.want {
			t.Errorf("a %s VM on a fake-KVM %s host is built for %s; want %s", c.guest, c.host, got, c.want)
		}
	}
}

func TestProbe(t *testing.T) {
	for _, a := range Arches() {
		s, err := For(a)
		if err != nil {
			t.Fatal(err)
		}
		p := s.Probe()
		if !s.AcceptsMachine(p.Machine) || (p.Firmware != "" && !s.FirmwareAllowed(p.Firmware)) || p.CPUs != 1 || p.MemoryMiB < 128 ||
			p.MemoryMiB < s.Memory.MinMiB || (s.Memory.MultipleMiB > 0 && p.MemoryMiB%s.Memory.MultipleMiB != 0) {
			t.Errorf("%s: probe %+v is not a VM of the architecture (memory rules %+v)", a, p, s.Memory)
		}
	}
	s := mustSpec(t, arch.PPC64LE)
	if p := s.Probe(); p.Firmware != "slof" || p.MemoryMiB != 256 {
		t.Errorf("ppc64le's probe: %+v; want SLOF and 256 MiB (the LMB)", p)
	}
}
