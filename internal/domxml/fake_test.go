package domxml

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
)

func spec(t *testing.T, a arch.Arch) *archspec.Spec {
	t.Helper()
	s, err := archspec.For(a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTCGCPU(t *testing.T) {
	ppc, x86 := spec(t, arch.PPC64LE), spec(t, arch.X86_64)
	model := func(v string) *libvirtxml.DomainCPUModel { return &libvirtxml.DomainCPUModel{Value: v} }
	cases := []struct {
		name string
		s    *archspec.Spec
		in   libvirtxml.DomainCPU
		want libvirtxml.DomainCPU
	}{
		{"POWER8 kept", ppc, libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: model("POWER8")},
			libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: model("POWER8")}},
		{"POWER9 kept", ppc, libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: model("POWER9")},
			libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: model("POWER9")}},
		{"host-model becomes POWER8", ppc, libvirtxml.DomainCPU{Mode: "host-model"},
			libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: model("POWER8")}},
		{"host-model power9 compat becomes POWER9", ppc, libvirtxml.DomainCPU{Mode: "host-model", Model: model("power9")},
			libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: model("POWER9")}},
		{"host-passthrough on POWER", ppc, libvirtxml.DomainCPU{Mode: "host-passthrough", Check: "none", Migratable: "on"},
			libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: model("POWER8")}},
		{"x86 Haswell replaced, features dropped", x86, libvirtxml.DomainCPU{Mode: "custom", Model: model("Haswell"),
			Features: []libvirtxml.DomainCPUFeature{{Policy: "require", Name: "vmx"}}},
			libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: model("qemu64")}},
		{"x86 maximum kept", x86, libvirtxml.DomainCPU{Mode: "maximum"}, libvirtxml.DomainCPU{Mode: "maximum"}},
		{"topology only", x86, libvirtxml.DomainCPU{Topology: &libvirtxml.DomainCPUTopology{Cores: 2}},
			libvirtxml.DomainCPU{Topology: &libvirtxml.DomainCPUTopology{Cores: 2}}},
	}
	for _, c := range cases {
		in := c.in
		dom := &libvirtxml.Domain{CPU: &in}
		tcgCPU(dom, c.s)
		if diff := cmp.Diff(&c.want, dom.CPU); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	tcgCPU(&libvirtxml.Domain{}, ppc) // no <cpu>: nothing to do, no panic
}

func TestCapMemory(t *testing.T) {
	ppc, x86 := spec(t, arch.PPC64LE), spec(t, arch.X86_64)
	cases := []struct {
		name         string
		s            *archspec.Spec
		mem, cur     uint
		unit         string
		cells        []uint
		cap          uint64
		wantMem      uint
		wantCur      uint
		wantCells    []uint
		wantMemUnit  string
		wantCellUnit string
	}{
		{name: "x86 4 GiB to 512", s: x86, mem: 4 << 20, cur: 4 << 20, unit: "KiB", cap: 512, wantMem: 512, wantCur: 512, wantMemUnit: "MiB"},
		{name: "ppc cap rounded to 256", s: ppc, mem: 4096, cur: 4096, unit: "MiB", cap: 300, wantMem: 512, wantCur: 512, wantMemUnit: "MiB"},
		{name: "below the cap kept", s: x86, mem: 256, cur: 256, unit: "MiB", cap: 512, wantMem: 256, wantCur: 256, wantMemUnit: "MiB"},
		{name: "GiB unit", s: x86, mem: 8, cur: 8, unit: "GiB", cap: 1024, wantMem: 1024, wantCur: 1024, wantMemUnit: "MiB"},
		{name: "NUMA cells follow", s: ppc, mem: 8192, cur: 8192, unit: "MiB", cells: []uint{4096, 4096}, cap: 1024,
			wantMem: 1024, wantCur: 1024, wantCells: []uint{512, 512}, wantMemUnit: "MiB", wantCellUnit: "MiB"},
		{name: "unknown unit left alone", s: x86, mem: 5, cur: 5, unit: "furlongs", cap: 1, wantMem: 5, wantCur: 5, wantMemUnit: "furlongs"},
	}
	for _, c := range cases {
		dom := &libvirtxml.Domain{
			Memory:        &libvirtxml.DomainMemory{Value: c.mem, Unit: c.unit},
			CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: c.cur, Unit: c.unit},
		}
		if c.cells != nil {
			dom.CPU = &libvirtxml.DomainCPU{Numa: &libvirtxml.DomainNuma{}}
			for _, m := range c.cells {
				dom.CPU.Numa.Cell = append(dom.CPU.Numa.Cell, libvirtxml.DomainCell{Memory: m, Unit: c.unit})
			}
		}
		capMemory(dom, c.s, c.cap)
		got := []any{dom.Memory.Value, dom.Memory.Unit, dom.CurrentMemory.Value}
		want := []any{c.wantMem, c.wantMemUnit, c.wantCur}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
		if c.cells != nil {
			var cells []uint
			for _, cell := range dom.CPU.Numa.Cell {
				cells = append(cells, cell.Memory)
				if cell.Unit != c.wantCellUnit {
					t.Errorf("%s: cell unit %q", c.name, cell.Unit)
				}
			}
			if diff := cmp.Diff(c.wantCells, cells); diff != "" {
				t.Errorf("%s cells (-want +got):\n%s", c.name, diff)
			}
		}
	}
	capMemory(&libvirtxml.Domain{}, x86, 512) // nothing to cap, no panic
}

func TestToMiB(t *testing.T) {
	cases := []struct {
		v    uint64
		unit string
		want uint64
		ok   bool
	}{
		{1048576, "", 1024, true}, {1048576, "KiB", 1024, true}, {1, "k", 1, true},
		{2, "GiB", 2048, true}, {1, "T", 1 << 20, true}, {1 << 30, "b", 1024, true},
		{1000000, "KB", 954, true}, {1, "MB", 1, true}, {7, "MiB", 7, true},
		{1, "parsecs", 0, false}, {1 << 62, "TB", 0, false},
	}
	for _, c := range cases {
		got, ok := toMiB(c.v, c.unit)
		if got != c.want || ok != c.ok {
			t.Errorf("toMiB(%d, %q) = %d, %v; want %d, %v", c.v, c.unit, got, ok, c.want, c.ok)
		}
	}
}

func TestRetargetDecisions(t *testing.T) {
	// Which VMs are rewritten, which run emulated as they are.
	cases := []struct {
		vm, host arch.Arch
		machine  string
		wantArch string
	}{
		{arch.PPC64LE, arch.X86_64, "pseries", "ppc64le"},
		{arch.PPC64, arch.X86_64, "pseries", "ppc64"},
		{arch.X86_64, arch.PPC64LE, "pseries", "ppc64le"},
		{arch.X86_64, arch.X86_64, "q35", "x86_64"},
		{arch.PPC64, arch.PPC64LE, "pseries", "ppc64"},
		{arch.X86_64, arch.AArch64, "virt", "aarch64"},
	}
	for _, c := range cases {
		dom := &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{
			Arch: string(c.vm), Machine: spec(t, c.vm).Machine.Default, Type: "hvm"}}}
		if err := FakeKVM(dom, Fake{HostArch: c.host}); err != nil {
			t.Fatal(err)
		}
		if got := []string{dom.OS.Type.Arch, dom.OS.Type.Machine}; !cmp.Equal(got, []string{c.wantArch, c.machine}) {
			t.Errorf("%s VM on %s host: got %v, want %s %s", c.vm, c.host, got, c.wantArch, c.machine)
		}
	}
}
