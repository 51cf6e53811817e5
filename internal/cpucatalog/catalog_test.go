package cpucatalog

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
)

// Flag lists of real and fake hosts, as `polyvirt caps` reports them
// (vendor markers and model_X entries from the built-in profiles).
var (
	power8Host = []string{"powernv", "model_POWER8"}
	power9Host = []string{"powernv", "model_POWER9", "model_POWER8"}
	// A POWER9 host whose report lists its own level only.
	power9Bare  = []string{"powernv", "model_POWER9"}
	power10Host = []string{"powernv", "model_POWER10", "model_POWER9", "model_POWER8"}
	// x86-2s-intel profile: a Xeon Gold 6230 with TSX off.
	cascadeLakeHost = strings.Fields("fpu vme nx vmx aes ssbd ibrs ibpb stibp md_clear model_qemu64 model_Nehalem model_Nehalem-IBRS model_Westmere model_Westmere-IBRS model_SandyBridge model_SandyBridge-IBRS model_IvyBridge model_IvyBridge-IBRS model_Haswell-noTSX model_Haswell-noTSX-IBRS model_Broadwell-noTSX model_Broadwell-noTSX-IBRS model_Skylake-Client-noTSX-IBRS model_Skylake-Server-noTSX-IBRS model_Cascadelake-Server-noTSX model_Cascadelake-Server")
	// archspec's fake-KVM x86_64 host (VDSM's values).
	fakeX86Host = []string{"vmx", "sse2", "nx", "model_Nehalem", "model_Westmere", "model_SandyBridge", "model_IvyBridge",
		"model_Haswell-noTSX", "model_Broadwell-noTSX", "model_Skylake-Client", "model_Skylake-Server", "model_Cascadelake-Server", "model_qemu64"}
	milanHost  = []string{"svm", "nx", "model_Opteron_G4", "model_Opteron_G5", "model_EPYC", "model_EPYC-Rome", "model_EPYC-Milan"}
	z14Host    = []string{"sie", "model_z14-base"}
	z14ZR1Host = []string{"sie", "model_z13-base", "model_z14ZR1-base"}
	z16Host    = []string{"sie", "model_z196-base", "model_zEC12-base", "model_z13-base", "model_z14-base", "model_gen15a-base", "model_gen16a-base"}
	armFake    = []string{"fp", "asimd", "model_cortex-a57"}
	armKVM     = []string{"fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32"}
)

func TestBest(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
		want  string // "" for no match
		level int
	}{
		{"POWER8 (S822L)", power8Host, "IBM POWER8", 1},
		{"POWER9 (AC922)", power9Host, "IBM POWER9", 2},
		{"POWER9 own level only", power9Bare, "IBM POWER9", 2},
		{"POWER10", power10Host, "IBM POWER10", 3},
		{"Cascade Lake, TSX off, mitigations on", cascadeLakeHost, "Secure Intel Cascadelake Server Family", 18},
		{"fake-KVM x86_64", fakeX86Host, "Intel Cascadelake Server Family", 17},
		{"Nehalem only", []string{"vmx", "nx", "model_Nehalem"}, "Intel Nehalem Family", 1},
		{"Westmere without aes stays Nehalem", []string{"vmx", "nx", "model_Nehalem", "model_Westmere"}, "Intel Nehalem Family", 1},
		{"libvirt spellings", []string{"VMX", "nx", "spec-ctrl", "ssbd", "md-clear", "model_Nehalem"}, "Secure Intel Nehalem Family", 2},
		{"EPYC-Milan", milanHost, "AMD EPYC-Milan", 5},
		{"z14", z14Host, "IBM z14", 4},
		{"z14 ZR1 implies z14", z14ZR1Host, "IBM z14", 4},
		{"z16", z16Host, "IBM z16", 6},
		{"ARM fake", armFake, "ARM Cortex-A57", 2},
		{"ARM KVM without models", armKVM, "ARM 64-bit (host CPU)", 1},
		{"no marker", []string{"nx", "model_Nehalem"}, "", 0},
		{"marker only", []string{"powernv"}, "", 0},
		{"old POWER spelling", []string{"powernv", "model_power8"}, "IBM POWER8", 1},
		{"nothing", nil, "", 0},
		{"garbage", []string{"", " ", "model_", "\x00"}, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Best(c.flags)
			if ok != (c.want != "") || got.Name != c.want || got.Level != c.level {
				t.Errorf("Best(%v) = %q level %d, %v; want %q level %d", c.flags, got.Name, got.Level, ok, c.want, c.level)
			}
		})
	}
}

func TestBestFor(t *testing.T) {
	cases := []struct {
		arch  arch.Arch
		flags []string
		want  string
	}{
		{arch.PPC64LE, power8Host, "IBM POWER8"},
		{arch.PPC64, power9Host, "IBM POWER9"},
		{arch.X86_64, power8Host, ""},
		{arch.PPC64LE, fakeX86Host, ""},
		{arch.S390X, z14Host, "IBM z14"},
		{arch.I686, fakeX86Host, ""}, // no rules for i686 hosts
		{arch.Unknown, power8Host, ""},
	}
	for _, c := range cases {
		got, ok := BestFor(c.arch, c.flags)
		if got.Name != c.want || ok != (c.want != "") {
			t.Errorf("BestFor(%s, %v) = %q, %v; want %q", c.arch, c.flags, got.Name, ok, c.want)
		}
	}
}

func TestMissingAndSupports(t *testing.T) {
	cases := []struct {
		typ   string
		flags []string
		want  []string
	}{
		// The reference's example: a POWER8 host in a POWER9 cluster.
		{"IBM POWER9", power8Host, []string{"model_POWER9"}},
		// A POWER9 host in a POWER8 cluster: compatibility mode.
		{"IBM POWER8", power9Host, nil},
		{"IBM POWER8", power9Bare, nil},
		{"IBM POWER10", power9Host, []string{"model_POWER10"}},
		{"IBM POWER8", fakeX86Host, []string{"powernv", "model_POWER8"}},
		{"IBM POWER8", nil, []string{"powernv", "model_POWER8"}},
		{"Secure Intel Skylake Server Family", cascadeLakeHost, nil},
		{"Intel Skylake Server Family", cascadeLakeHost, []string{"model_Skylake-Server"}},
		{"Secure Intel Cascadelake Server Family", fakeX86Host, []string{"spec_ctrl", "ssbd", "md_clear"}},
		{"Intel Icelake Server Family", cascadeLakeHost, []string{"model_Icelake-Server-noTSX"}},
		{"AMD EPYC-Genoa", milanHost, []string{"model_EPYC-Genoa"}},
		{"IBM z15", z14Host, []string{"model_gen15a-base"}},
	}
	for _, c := range cases {
		typ, ok := Lookup(c.typ)
		if !ok {
			t.Fatalf("Lookup(%q) failed", c.typ)
		}
		if diff := cmp.Diff(c.want, Missing(typ, c.flags)); diff != "" {
			t.Errorf("Missing(%s, %v) (-want +got):\n%s", c.typ, c.flags, diff)
		}
		if got := Supports(typ, c.flags); got != (len(c.want) == 0) {
			t.Errorf("Supports(%s, %v) = %v", c.typ, c.flags, got)
		}
	}
	if Supports(Type{}, power8Host) {
		t.Error("the zero Type is supported")
	}
}

func TestAdmit(t *testing.T) {
	x86 := HostCPU{Name: "x1", Arch: arch.X86_64, Flags: fakeX86Host}
	p8 := HostCPU{Name: "p8", Arch: arch.PPC64LE, Flags: power8Host}
	p9 := HostCPU{Name: "p9", Arch: arch.PPC64LE, Flags: power9Host}
	cases := []struct {
		name    string
		host    HostCPU
		cluster ClusterCPU
		want    Decision
	}{
		{"first POWER8 host sets the cluster", p8, ClusterCPU{Name: "power"},
			Decision{OK: true, SetArch: arch.PPC64, SetCPUType: "IBM POWER8"}},
		{"POWER8 host into a POWER8 cluster", p8, ClusterCPU{Name: "power", Arch: arch.PPC64, CPUType: "IBM POWER8"},
			Decision{OK: true}},
		{"x86_64 host into a POWER cluster", x86, ClusterCPU{Name: "power", Arch: arch.PPC64, CPUType: "IBM POWER8"},
			Decision{Code: api.CodeArchIncompatible,
				Message: "Host x1 has architecture x86_64 and cannot join cluster power which has architecture ppc64"}},
		{"x86_64 host into a cluster with an arch and no CPU type", x86, ClusterCPU{Name: "power", Arch: arch.PPC64},
			Decision{Code: api.CodeArchIncompatible,
				Message: "Host x1 has architecture x86_64 and cannot join cluster power which has architecture ppc64"}},
		{"POWER8 host into a POWER9 cluster", p8, ClusterCPU{Name: "p9c", Arch: arch.PPC64, CPUType: "IBM POWER9"},
			Decision{Code: api.CodeCPUTypeIncompatible, Missing: []string{"model_POWER9"},
				Message: "Host p8 moved to Non-Operational state as host does not meet the cluster's minimum CPU level. Missing CPU features: model_POWER9"}},
		{"POWER9 host into a POWER8 cluster (compat)", p9, ClusterCPU{Name: "power", Arch: arch.PPC64, CPUType: "IBM POWER8"},
			Decision{OK: true}},
		{"cluster arch given as ppc64le", p9, ClusterCPU{Name: "power", Arch: arch.PPC64LE, CPUType: "IBM POWER9"},
			Decision{OK: true}},
		{"no type matches", HostCPU{Name: "odd", Arch: arch.X86_64, Flags: []string{"sse2"}}, ClusterCPU{Name: "c"},
			Decision{Code: api.CodeCPUTypeIncompatible,
				Message: "Host odd moved to Non-Operational state as host CPU type is not supported in this cluster compatibility version or is not supported at all"}},
		{"no flags yet", HostCPU{Name: "new", Arch: arch.PPC64LE}, ClusterCPU{Name: "c"},
			Decision{Code: api.CodeCPUTypeIncompatible, Message: "Host new moved to Non-Operational state as it reported no CPU flags"}},
		{"cluster type of another arch", p8, ClusterCPU{Name: "c", CPUType: "Intel Nehalem Family"},
			Decision{Code: api.CodeArchIncompatible,
				Message: "Host p8 has architecture ppc64le and cannot join cluster c which has architecture x86_64"}},
		{"unknown cluster type", p8, ClusterCPU{Name: "c", Arch: arch.PPC64, CPUType: "IBM POWER42"},
			Decision{Code: api.CodeCPUTypeIncompatible,
				Message: `Host p8 moved to Non-Operational state as the CPU type "IBM POWER42" of cluster c is not supported at all`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Admit(c.host, c.cluster)
			got.Best = Type{} // checked by TestBest
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Admit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTypesAndLookup(t *testing.T) {
	names := func(ts []Type) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"IBM POWER8", "IBM POWER9", "IBM POWER10"}, names(Types(arch.PPC64LE))); diff != "" {
		t.Errorf("Types(ppc64le) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(names(Types(arch.PPC64LE)), names(Types(arch.PPC64))); diff != "" {
		t.Errorf("ppc64 and ppc64le differ:\n%s", diff)
	}
	if got := Types(arch.Arch("mips")); got != nil {
		t.Errorf("Types(mips) = %v", got)
	}
	if diff := cmp.Diff([]arch.Arch{arch.AArch64, arch.PPC64, arch.S390X, arch.X86_64}, Arches()); diff != "" {
		t.Errorf("Arches (-want +got):\n%s", diff)
	}
	p8, ok := Lookup("  ibm power8 ")
	want := Type{Level: 1, Name: "IBM POWER8", Flags: []string{"powernv", "model_POWER8"}, Model: "POWER8",
		Arch: arch.PPC64, Vendor: "IBM POWER"}
	if !ok || !cmp.Equal(want, p8) {
		t.Errorf("Lookup(ibm power8) = %+v, %v", p8, ok)
	}
	sec, _ := Lookup("Secure Intel Nehalem Family")
	if diff := cmp.Diff(Type{Level: 2, Name: "Secure Intel Nehalem Family",
		Flags: []string{"vmx", "nx", "spec_ctrl", "ssbd", "md_clear", "model_Nehalem"}, Model: "Nehalem",
		Features: []string{"spec-ctrl", "ssbd", "md-clear"}, Arch: arch.X86_64, Vendor: "Intel"}, sec); diff != "" {
		t.Errorf("Secure Nehalem (-want +got):\n%s", diff)
	}
	// The catalog is not shared with callers.
	p8.Flags[0] = "changed"
	if again, _ := Lookup("IBM POWER8"); again.Flags[0] != "powernv" {
		t.Error("Lookup returned the table's own slice")
	}
	if _, err := Find(arch.X86_64, "IBM POWER9"); err == nil || !strings.Contains(err.Error(), "is a ppc64 type") {
		t.Errorf("Find(x86_64, IBM POWER9) = %v", err)
	}
	if _, err := Find(arch.PPC64LE, "IBM POWER9"); err != nil {
		t.Errorf("Find(ppc64le, IBM POWER9) = %v", err)
	}
	if _, err := Find(arch.Unknown, "nope"); err == nil {
		t.Error("Find(nope) succeeded")
	}
}

func TestAtLeast(t *testing.T) {
	get := func(n string) Type { ty, _ := Lookup(n); return ty }
	cases := []struct {
		host, cluster string
		want          bool
	}{
		{"IBM POWER9", "IBM POWER8", true},
		{"IBM POWER8", "IBM POWER9", false},
		{"IBM POWER8", "IBM POWER8", true},
		{"AMD EPYC-Genoa", "Intel Nehalem Family", false},
		{"Secure Intel Cascadelake Server Family", "Intel Skylake Server Family", true},
	}
	for _, c := range cases {
		if got := AtLeast(get(c.host), get(c.cluster)); got != c.want {
			t.Errorf("AtLeast(%s, %s) = %v", c.host, c.cluster, got)
		}
	}
	if AtLeast(Type{}, Type{}) {
		t.Error("AtLeast of zero types")
	}
}

// TestTableIntegrity checks the catalog as data: unique names, levels
// strictly increasing within a group, every type carrying its group's marker
// and its model flag, and every model a name libvirt knows.
func TestTableIntegrity(t *testing.T) {
	known := libvirtModels(t)
	seen := map[string]bool{}
	last := map[string]int{}
	for _, ty := range All() {
		if seen[strings.ToLower(ty.Name)] {
			t.Errorf("duplicate name %q", ty.Name)
		}
		seen[strings.ToLower(ty.Name)] = true
		g, ok := GroupOf(ty)
		if !ok {
			t.Errorf("%s: unknown vendor group %q", ty.Name, ty.Vendor)
			continue
		}
		if g.Arch != ty.Arch {
			t.Errorf("%s: arch %s, group arch %s", ty.Name, ty.Arch, g.Arch)
		}
		if ty.Level <= last[g.Name] {
			t.Errorf("%s: level %d not above %d", ty.Name, ty.Level, last[g.Name])
		}
		last[g.Name] = ty.Level
		if ty.Flags[0] != g.Marker {
			t.Errorf("%s: first flag %q, want the marker %q", ty.Name, ty.Flags[0], g.Marker)
		}
		if ca, err := archspec.ClusterArch(ty.Arch); err != nil || ca != ty.Arch {
			t.Errorf("%s: %s is not a cluster architecture (%v, %v)", ty.Name, ty.Arch, ca, err)
		}
		if ty.Mode == "host-passthrough" {
			if ty.Model != "" {
				t.Errorf("%s: host-passthrough with model %q", ty.Name, ty.Model)
			}
			continue
		}
		if !contains(ty.Flags, "model_"+ty.Model) {
			t.Errorf("%s: flags %v lack model_%s", ty.Name, ty.Flags, ty.Model)
		}
		if known[ty.Arch] != nil && !known[ty.Arch][ty.Model] {
			t.Errorf("%s: %q is not a libvirt model of %s", ty.Name, ty.Model, ty.Arch)
		}
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

// libvirtModels reads the model names of libvirt's cpu_map (x86, ppc64,
// arm) and of a QEMU s390x domcapabilities from the shared corpus.
func libvirtModels(t *testing.T) map[arch.Arch]map[string]bool {
	t.Helper()
	corpus := filepath.Join("..", "..", "..", "shared", "corpus")
	if _, err := os.Stat(corpus); err != nil {
		t.Skipf("shared corpus not found: %v", err)
	}
	out := map[arch.Arch]map[string]bool{arch.X86_64: {}, arch.PPC64: {}, arch.AArch64: {}, arch.S390X: {}}
	prefix := map[string]arch.Arch{"x86_": arch.X86_64, "ppc64_": arch.PPC64, "arm_": arch.AArch64}
	files, _ := filepath.Glob(filepath.Join(corpus, "cpu_map", "*.xml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Models []struct {
				Name string `xml:"name,attr"`
			} `xml:"model"`
		}
		if err := xml.Unmarshal(data, &doc); err != nil {
			continue // vendors/features files have another shape
		}
		for p, a := range prefix {
			if strings.HasPrefix(filepath.Base(f), p) {
				for _, m := range doc.Models {
					out[a][m.Name] = true
				}
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(corpus, "libvirt-domcaps", "qemu_9.2.0.s390x.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var dc struct {
		Modes []struct {
			Models []struct {
				Name string `xml:",chardata"`
			} `xml:"model"`
		} `xml:"cpu>mode"`
	}
	if err := xml.Unmarshal(data, &dc); err != nil {
		t.Fatal(err)
	}
	for _, m := range dc.Modes {
		for _, x := range m.Models {
			out[arch.S390X][strings.TrimSpace(x.Name)] = true
		}
	}
	for a, m := range out {
		if len(m) < 3 {
			t.Fatalf("corpus gave only %d models for %s", len(m), a)
		}
	}
	return out
}

func FuzzBest(f *testing.F) {
	f.Add("powernv,model_POWER9,model_POWER8")
	f.Add("vmx,nx,ibrs,ssbd,md_clear,model_Cascadelake-Server")
	f.Add(",,-,_,model_")
	f.Fuzz(func(t *testing.T, s string) {
		flags := strings.Split(s, ",")
		b, ok := Best(flags)
		if ok && !Supports(b, flags) {
			t.Fatalf("Best %q is not supported by %v", b.Name, flags)
		}
		for _, ty := range Matching(flags) {
			if len(Missing(ty, flags)) != 0 {
				t.Fatalf("%s matches but misses flags", ty.Name)
			}
		}
	})
}

// An AMD EPYC whose KVM cannot run guests (a cloud VM without nested
// virtualization: no svm), with the models libvirt's TCG domcapabilities
// list as usable on it (Debian 12, QEMU 7.2).
var amdTCGHost = strings.Fields("fpu vme de pse tsc msr pae mce cx8 apic sep pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext lm " +
	"pni ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm avx2 " +
	"model_qemu64 model_qemu32 model_pentium3 model_n270 model_kvm64 model_coreduo model_core2duo model_athlon model_Westmere " +
	"model_Penryn model_Opteron_G2 model_Opteron_G1 model_Nehalem model_Conroe model_486")

// An Intel host without /dev/kvm: vmx is there, TCG runs Westmere.
var intelTCGHost = strings.Fields("fpu vmx nx aes sse2 model_qemu64 model_Nehalem model_Westmere model_Penryn")

// TestAdmitEmulated: a host whose guests run under TCG is admitted with a
// type of its own CPU's vendor (an AMD machine never as an Intel type),
// whatever level the cluster's type of that vendor has; a type of another
// vendor refuses it.
func TestAdmitEmulated(t *testing.T) {
	amd := HostCPU{Name: "x86_64-a", Arch: arch.X86_64, Flags: amdTCGHost, Emulated: true, Vendor: "AuthenticAMD"}
	intel := HostCPU{Name: "laptop", Arch: arch.X86_64, Flags: intelTCGHost, Emulated: true, Vendor: "GenuineIntel"}
	cases := []struct {
		name    string
		h       HostCPU
		c       ClusterCPU
		ok      bool
		best    string
		set     string
		code    string
		message string
	}{
		{"AMD, first host", amd, ClusterCPU{Name: "x86_64"}, true, "AMD Opteron G4", "AMD Opteron G4", "", ""},
		{"AMD into an AMD EPYC-Milan cluster", amd, ClusterCPU{Name: "x86_64", Arch: arch.X86_64, CPUType: "AMD EPYC-Milan"}, true, "AMD Opteron G4", "", "", ""},
		{"AMD into an Intel cluster", amd, ClusterCPU{Name: "x86_64", Arch: arch.X86_64, CPUType: "Intel Cascadelake Server Family"}, false, "AMD Opteron G4", "",
			api.CodeCPUTypeIncompatible, "its CPU is AMD (AuthenticAMD) and the CPU type Intel Cascadelake Server Family of cluster x86_64 is Intel"},
		{"AMD into a POWER cluster", amd, ClusterCPU{Name: "power", Arch: arch.PPC64, CPUType: "IBM POWER8"}, false, "AMD Opteron G4", "", api.CodeArchIncompatible, ""},
		{"Intel, first host: the highest type TCG runs", intel, ClusterCPU{Name: "x86_64"}, true, "Intel Westmere Family", "Intel Westmere Family", "", ""},
		{"Intel into a Cascade Lake cluster", intel, ClusterCPU{Name: "x86_64", Arch: arch.X86_64, CPUType: "Intel Cascadelake Server Family"}, true, "Intel Westmere Family", "", "", ""},
		{"Intel into an AMD cluster", intel, ClusterCPU{Name: "x86_64", Arch: arch.X86_64, CPUType: "AMD EPYC"}, false, "Intel Westmere Family", "", api.CodeCPUTypeIncompatible, "is AMD"},
		{"the same AMD flags, not emulated", HostCPU{Name: "h", Arch: arch.X86_64, Flags: amdTCGHost, Vendor: "AuthenticAMD"}, ClusterCPU{Name: "x86_64"}, false, "", "", api.CodeCPUTypeIncompatible, ""},
		{"an unknown vendor", HostCPU{Name: "h", Arch: arch.X86_64, Flags: amdTCGHost, Emulated: true, Vendor: "HygonGenuine"}, ClusterCPU{Name: "x86_64"}, false, "", "", api.CodeCPUTypeIncompatible, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Admit(c.h, c.c)
			if d.OK != c.ok || d.Best.Name != c.best || d.SetCPUType != c.set || d.Code != c.code || !strings.Contains(d.Message, c.message) {
				t.Errorf("Admit = ok %v best %q set %q code %q %q; want ok %v best %q set %q code %q %q…",
					d.OK, d.Best.Name, d.SetCPUType, d.Code, d.Message, c.ok, c.best, c.set, c.code, c.message)
			}
			if d.Best.Vendor == "Intel" && c.h.Vendor == "AuthenticAMD" {
				t.Errorf("an AMD machine got an Intel type %q", d.Best.Name)
			}
			if c.ok && c.h.Emulated && d.Note == "" && c.best != "Intel Westmere Family" {
				t.Errorf("no note says how the type was chosen")
			}
		})
	}
}
