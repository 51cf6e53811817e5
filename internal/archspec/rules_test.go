package archspec

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
)

func mustSpec(t *testing.T, a arch.Arch) *Spec {
	t.Helper()
	s, err := For(a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEveryArchHasCompleteRules(t *testing.T) {
	for _, a := range Arches() {
		s := mustSpec(t, a)
		if s.Arch != a || s.Title == "" || s.Emulator == "" || s.Machine.Default == "" {
			t.Errorf("%s: incomplete identity: %+v", a, s)
		}
		if !s.AcceptsMachine(s.Machine.Default) {
			t.Errorf("%s: default machine %q is not one of its own families %v", a, s.Machine.Default, s.Machine.Families)
		}
		if !s.CPUModeAllowed(s.CPU.DefaultMode) {
			t.Errorf("%s: default CPU mode %q not allowed", a, s.CPU.DefaultMode)
		}
		if !s.DisplayAllowed(s.Display.Default.Graphics, s.Display.Default.Video) {
			t.Errorf("%s: default display %+v not an allowed pair", a, s.Display.Default)
		}
		if !contains(s.Disk.Buses, s.Disk.DefaultBus) || !contains(s.Disk.Buses, s.Disk.CDROMBus) {
			t.Errorf("%s: default disk/cdrom bus not allowed", a)
		}
		if s.NIC.Default == "" || !s.NIC.Allows(s.NIC.Default) {
			t.Errorf("%s: NIC default %q not allowed", a, s.NIC.Default)
		}
		for _, in := range s.Input.Defaults {
			if !s.InputBusAllowed(in.Bus) {
				t.Errorf("%s: default input %+v on a bus that does not exist", a, in)
			}
		}
		if s.Memory.MinMiB == 0 || s.Memory.MaxMiB <= s.Memory.MinMiB || s.CPU.MaxVCPUs == 0 {
			t.Errorf("%s: limits missing", a)
		}
		if s.Host.FakeCPUModel == "" || len(s.Host.FakeFlags) == 0 {
			t.Errorf("%s: fake-KVM host values missing", a)
		}
	}
}

func TestPowerRules(t *testing.T) {
	for _, a := range []arch.Arch{arch.PPC64LE, arch.PPC64} {
		s := mustSpec(t, a)
		if s.GraphicsAllowed("spice") || s.DisplayAllowed("vnc", "qxl") {
			t.Errorf("%s: SPICE or qxl allowed", a)
		}
		if !s.DisplayAllowed("vnc", "vga") || !s.DisplayAllowed("vnc", "virtio") {
			t.Errorf("%s: vnc/vga or vnc/virtio refused", a)
		}
		if s.Platform.SMBIOS || s.Platform.ACPI || s.Platform.HPET || s.Firmware.Loader {
			t.Errorf("%s: SMBIOS/ACPI/HPET/loader on pseries", a)
		}
		if s.InputBusAllowed("ps2") || s.Floppy || len(s.Sound.Allowed) != 0 {
			t.Errorf("%s: PS/2, floppy or sound exists", a)
		}
		if s.DiskBusAllowed("ide", "") || s.DiskBusAllowed("sata", "pseries") {
			t.Errorf("%s: IDE or SATA allowed", a)
		}
		if s.CDROMBus("pseries-7.2") != "scsi" || s.Disk.SCSIControllers[0] != "spapr-vscsi" || s.Disk.MaxSPAPRVSCSIDisks != 7 {
			t.Errorf("%s: CD-ROM must go on spapr-vscsi (max 7)", a)
		}
		if !s.NIC.Allows("spapr-vlan") || s.NIC.Allows("e1000") {
			t.Errorf("%s: NIC models wrong: %v", a, s.NIC.Allowed)
		}
		if s.Memory.MultipleMiB != 256 || s.Console.TargetModel != "spapr-vty" || s.Console.GuestDevice != "hvc0" {
			t.Errorf("%s: memory granule or console wrong", a)
		}
		if s.ClusterArch != arch.PPC64 || s.Emulator != "/usr/bin/qemu-system-ppc64" {
			t.Errorf("%s: cluster arch %s emulator %s", a, s.ClusterArch, s.Emulator)
		}
	}
}

func TestX86Rules(t *testing.T) {
	s := mustSpec(t, arch.X86_64)
	if !s.DisplayAllowed("spice", "qxl") || !s.Platform.SMBIOS || !s.Platform.ACPI {
		t.Error("x86_64 must allow SPICE/qxl, SMBIOS and ACPI")
	}
	if s.DiskBusAllowed("ide", "q35") || !s.DiskBusAllowed("ide", "pc-i440fx-7.2") {
		t.Error("IDE exists on pc only")
	}
	if s.CDROMBus("q35") != "sata" || s.CDROMBus("pc") != "ide" {
		t.Errorf("CD-ROM bus: q35 %s, pc %s", s.CDROMBus("q35"), s.CDROMBus("pc"))
	}
}

func TestMachineFamily(t *testing.T) {
	x86 := mustSpec(t, arch.X86_64)
	ppc := mustSpec(t, arch.PPC64LE)
	cases := []struct {
		s      *Spec
		in     string
		family string
		ok     bool
	}{
		{x86, "q35", "q35", true},
		{x86, "pc-q35-7.2", "q35", true},
		{x86, "pc-i440fx-7.2", "pc", true},
		{x86, "pc", "pc", true},
		{x86, "pseries", "", false},
		{ppc, "pseries", "pseries", true},
		{ppc, "pseries-7.2", "pseries", true},
		{ppc, "pseriesX", "", false},
		{ppc, "q35", "", false},
	}
	for _, c := range cases {
		f, ok := c.s.MachineFamily(c.in)
		if f != c.family || ok != c.ok {
			t.Errorf("%s.MachineFamily(%q) = %q,%v; want %q,%v", c.s.Arch, c.in, f, ok, c.family, c.ok)
		}
	}
}

func TestUsableCPUModels(t *testing.T) {
	ppc := mustSpec(t, arch.PPC64LE)
	x86 := mustSpec(t, arch.X86_64)
	cases := []struct {
		name   string
		s      *Spec
		host   string
		usable []string
		want   []string
	}{
		{"POWER9 host runs POWER8 compat", ppc, "POWER9", nil, []string{"POWER9", "POWER8"}},
		{"POWER10 host", ppc, "POWER10", nil, []string{"POWER10", "POWER9", "POWER8"}},
		{"POWER8 host", ppc, "POWER8", []string{"POWER9"}, []string{"POWER8"}},
		{"lower-case host model", ppc, "power9", nil, []string{"POWER9", "POWER8"}},
		{"unknown POWER model kept", ppc, "POWER11", nil, []string{"POWER11"}},
		{"POWER under TCG: no host-model, custom usable", ppc, "", []string{"POWER9"}, []string{"POWER9"}},
		{"x86 uses custom usable", x86, "Skylake-Client-IBRS", []string{"Nehalem", "Haswell"}, []string{"Nehalem", "Haswell"}},
	}
	for _, c := range cases {
		got := c.s.UsableCPUModels(c.host, c.usable)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	if diff := cmp.Diff([]string{"model_POWER9", "model_POWER8"}, ModelFlags([]string{"POWER9", "POWER8"})); diff != "" {
		t.Error(diff)
	}
}

func TestHostFlagsAndKVM(t *testing.T) {
	ppc := mustSpec(t, arch.PPC64LE)
	x86 := mustSpec(t, arch.X86_64)
	if diff := cmp.Diff([]string{"powernv"}, ppc.HostFlags(nil)); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"fpu", "vmx"}, x86.HostFlags([]string{"fpu", "vmx"})); diff != "" {
		t.Error(diff)
	}
	if ok, _ := ppc.KVMUsable(true, nil); !ok {
		t.Error("POWER with /dev/kvm must be usable")
	}
	if ok, why := x86.KVMUsable(true, []string{"fpu", "hypervisor"}); ok || why == "" {
		t.Error("x86 without vmx/svm must be unusable with a reason")
	}
	if ok, _ := x86.KVMUsable(true, []string{"svm"}); !ok {
		t.Error("x86 with svm must be usable")
	}
	if ok, _ := x86.KVMUsable(false, []string{"vmx"}); ok {
		t.Error("no /dev/kvm, no KVM")
	}
}

func TestBestMachine(t *testing.T) {
	cases := []struct {
		cands, machines []string
		want            string
	}{
		{[]string{"pseries-*", "pseries"}, []string{"pseries", "pseries-7.1", "pseries-7.2", "pseries-2.12"}, "pseries-7.2"},
		{[]string{"pseries-*", "pseries"}, []string{"pseries"}, "pseries"},
		{[]string{"pc-q35-*", "q35", "pc-i440fx-*", "pc"}, []string{"pc", "pc-i440fx-7.2", "q35", "pc-q35-7.2", "pc-q35-10.0"}, "pc-q35-10.0"},
		{[]string{"pseries-*"}, []string{"q35"}, ""},
	}
	for _, c := range cases {
		if got := BestMachine(c.cands, c.machines); got != c.want {
			t.Errorf("BestMachine(%v, %v) = %q; want %q", c.cands, c.machines, got, c.want)
		}
	}
}

func TestLookupAlias(t *testing.T) {
	s, err := Lookup("ppc64el")
	if err != nil || s.Arch != arch.PPC64LE {
		t.Fatalf("Lookup(ppc64el) = %v, %v", s, err)
	}
	if _, err := Lookup("i686"); err == nil {
		t.Error("i686 has no rules; Lookup must say so")
	}
}
