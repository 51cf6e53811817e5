package hostinfo

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"polyvirt/internal/arch"
	"polyvirt/internal/cpuset"
)

func TestParseCPUInfo(t *testing.T) {
	cases := []struct {
		name string
		in   string
		arch arch.Arch
		want CPU
	}{
		{
			name: "POWER8 PowerNV with trailer",
			in: "processor\t: 0\ncpu\t\t: POWER8 (raw), altivec supported\nclock\t\t: 3491.000000MHz\nrevision\t: 2.0 (pvr 004d 0200)\n\n" +
				"processor\t: 8\ncpu\t\t: POWER8 (raw), altivec supported\nclock\t\t: 3491.000000MHz\nrevision\t: 2.0 (pvr 004d 0200)\n\n" +
				"timebase\t: 512000000\nplatform\t: PowerNV\nmodel\t\t: 8247-22L\nmachine\t\t: PowerNV 8247-22L\nfirmware\t: OPAL\nMMU\t\t: Hash\n",
			arch: arch.PPC64LE,
			want: CPU{Model: "POWER8 (raw), altivec supported", Vendor: "IBM", MHz: "3491.000000", Revision: "2.0 (pvr 004d 0200)",
				PVR: "004d0200", Platform: "PowerNV", Machine: "PowerNV 8247-22L", TypeModel: "8247-22L", Timebase: "512000000",
				FirmwareInterface: "OPAL", MMU: "Hash", Processors: 2,
				Types: []CPUType{{Model: "POWER8 (raw), altivec supported", Vendor: "IBM", Revision: "2.0 (pvr 004d 0200)", CPUs: cpuset.Of(0, 8)}}},
		},
		{
			// The trailer's model is the machine's type-model, never a
			// per-CPU model, even when no blank line separates it.
			name: "POWER7 LPAR, trailer glued to the last block",
			in: "processor\t: 0\ncpu\t\t: POWER7 (architected), altivec supported\nclock\t\t: 3000.000000MHz\nrevision\t: 2.1 (pvr 003f 0201)\n" +
				"timebase\t: 512000000\nplatform\t: pSeries\nmodel\t\t: IBM,8233-E8B\nmachine\t\t: CHRP IBM,8233-E8B\n",
			arch: arch.PPC64,
			want: CPU{Model: "POWER7 (architected), altivec supported", Vendor: "IBM", MHz: "3000.000000", Revision: "2.1 (pvr 003f 0201)",
				PVR: "003f0201", Platform: "pSeries", Machine: "CHRP IBM,8233-E8B", TypeModel: "IBM,8233-E8B", Timebase: "512000000",
				Processors: 1,
				Types:      []CPUType{{Model: "POWER7 (architected), altivec supported", Vendor: "IBM", Revision: "2.1 (pvr 003f 0201)", CPUs: cpuset.Of(0)}}},
		},
		{
			name: "x86_64",
			in: "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\n" +
				"stepping\t: 4\ncpu MHz\t\t: 2095.078\nflags\t\t: fpu vme lm vmx\n\n",
			arch: arch.X86_64,
			want: CPU{Model: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", Vendor: "GenuineIntel", MHz: "2095.078", Revision: "4",
				Family: "6", ModelID: "85", Flags: []string{"fpu", "vme", "lm", "vmx"}, Processors: 1,
				Types: []CPUType{{Model: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", Vendor: "GenuineIntel", Revision: "4",
					Flags: []string{"fpu", "vme", "lm", "vmx"}, CPUs: cpuset.Of(0)}}},
		},
		{
			name: "i686 (no lm flag)",
			in:   "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: Pentium M\nflags\t\t: fpu vme\n",
			arch: arch.I686,
			want: CPU{Model: "Pentium M", Vendor: "GenuineIntel", Family: "6", Flags: []string{"fpu", "vme"}, Processors: 1,
				Types: []CPUType{{Model: "Pentium M", Vendor: "GenuineIntel", Flags: []string{"fpu", "vme"}, CPUs: cpuset.Of(0)}}},
		},
		{
			name: "aarch64 big.LITTLE, types in lscpu's order",
			in:   armBlock(0, "0x41", "0x1", "0xd46", "1") + armBlock(1, "0x41", "0x1", "0xd4e", "0") + armBlock(2, "0x41", "0x2", "0xd47", "0"),
			arch: arch.AArch64,
			want: CPU{Model: "Cortex-A510", Vendor: "ARM", MHz: "38.40", Revision: "r1p1", ModelID: "0xd46", Implementer: "0x41",
				Flags: []string{"fp", "asimd"}, Processors: 3,
				Types: []CPUType{
					{Model: "Cortex-A510", Vendor: "ARM", Revision: "r1p1", Flags: []string{"fp", "asimd"}, CPUs: cpuset.Of(0)},
					{Model: "Cortex-A710", Vendor: "ARM", Revision: "r2p0", Flags: []string{"fp", "asimd"}, CPUs: cpuset.Of(2)},
					{Model: "Cortex-X3", Vendor: "ARM", Revision: "r1p0", Flags: []string{"fp", "asimd"}, CPUs: cpuset.Of(1)},
				}},
		},
		{
			name: "aarch64 unknown implementer keeps raw values",
			in:   armBlock(0, "0x99", "0x0", "0x123", "2"),
			arch: arch.AArch64,
			want: CPU{Model: "0x123", Vendor: "0x99", MHz: "38.40", Revision: "r0p2", ModelID: "0x123", Implementer: "0x99",
				Flags: []string{"fp", "asimd"}, Processors: 1,
				Types: []CPUType{{Vendor: "0x99", Revision: "r0p2", Flags: []string{"fp", "asimd"}, CPUs: cpuset.Of(0)}}},
		},
		{
			name: "32-bit ARM, shared block",
			in: "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 1694.10\n\nprocessor\t: 1\nBogoMIPS\t: 1694.10\n\n" +
				"Features\t: swp half thumb vfp neon\nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xc0f\nCPU revision\t: 4\n\nHardware\t: SAMSUNG EXYNOS5\n",
			arch: arch.ARMv7L,
			want: CPU{Model: "Cortex-A15", Vendor: "ARM", MHz: "1694.10", Revision: "r0p4", ModelID: "0xc0f", Implementer: "0x41",
				Flags: []string{"swp", "half", "thumb", "vfp", "neon"}, Processors: 2,
				Types: []CPUType{{Model: "Cortex-A15", Vendor: "ARM", Revision: "r0p4", Flags: []string{"swp", "half", "thumb", "vfp", "neon"}, CPUs: cpuset.Of(0, 1)}}},
		},
		{
			name: "s390x with frequency blocks",
			in: "vendor_id       : IBM/S390\n# processors    : 2\nbogomips per cpu: 20325.00\nmax thread id   : 1\nfeatures\t: esan3 zarch stfle\n" +
				"processor 0: version = 00,  identification = 145F07,  machine = 2964\nprocessor 1: version = 00,  identification = 145F07,  machine = 2964\n\n" +
				"cpu number      : 0\ncpu MHz dynamic : 5000\ncpu MHz static  : 5000\n\ncpu number      : 1\ncpu MHz dynamic : 5000\ncpu MHz static  : 5000\n",
			arch: arch.S390X,
			want: CPU{Model: "2964", Vendor: "IBM/S390", MHz: "5000", Revision: "00", Machine: "2964", TypeModel: "2964", MaxThreadID: "1",
				Flags: []string{"esan3", "zarch", "stfle"}, Processors: 2,
				Types: []CPUType{{Vendor: "IBM/S390", Revision: "00", Flags: []string{"esan3", "zarch", "stfle"}, CPUs: cpuset.Of(0, 1)}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, a, err := ParseCPUInfo([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if a != c.arch {
				t.Errorf("arch = %q, want %q", a, c.arch)
			}
			if diff := cmp.Diff(c.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func armBlock(n int, impl, variant, part, rev string) string {
	return "processor\t: " + itoa(n) + "\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd\nCPU implementer\t: " + impl +
		"\nCPU architecture: 8\nCPU variant\t: " + variant + "\nCPU part\t: " + part + "\nCPU revision\t: " + rev + "\n\n"
}

func itoa(n int) string { return cpuset.Of(n).String() }

func TestParseCPUInfoErrors(t *testing.T) {
	cases := map[string]string{
		"empty":          "",
		"blank lines":    "\n\n  \n",
		"binary":         "processor\t: 0\x00\x01\x02",
		"no known keys":  "foo: bar\nbaz: 1\n",
		"no colon lines": "just some text\nwithout keys\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			cpu, a, err := ParseCPUInfo([]byte(in))
			if err == nil {
				t.Fatalf("no error; got %+v (%s)", cpu, a)
			}
			if a != arch.Unknown || cpu.Model != "" {
				t.Errorf("values with an error: %+v %s", cpu, a)
			}
		})
	}
}

func TestParsePVRAndGeneration(t *testing.T) {
	cases := []struct {
		revision, model string
		pvr             string
		gen             int
	}{
		{"2.1 (pvr 004b 0201)", "POWER8E (raw), altivec supported", "004b0201", 8},
		{"2.2 (pvr 004e 1202)", "POWER9, altivec supported", "004e1202", 9},
		{"2.0 (pvr 0080 0100)", "POWER10 (architected), altivec supported", "00800100", 10},
		{"2.1 (pvr 003F 0201)", "", "003f0201", 7},
		{"1.1", "POWER11 (raw)", "", 11},
		{"garbage (pvr 12 34)", "PPC970MP, altivec supported", "", 4},
		{"", "e500v2", "", 0},
		{"İİİİİİİİİİİİ (PVR 004B 0201)", "", "004b0201", 8},
	}
	for _, c := range cases {
		pvr := ParsePVR(c.revision)
		if pvr != c.pvr {
			t.Errorf("ParsePVR(%q) = %q, want %q", c.revision, pvr, c.pvr)
		}
		if g := PowerGeneration(pvr, c.model); g != c.gen {
			t.Errorf("PowerGeneration(%q, %q) = %d, want %d", pvr, c.model, g, c.gen)
		}
	}
}

func TestARMNames(t *testing.T) {
	cases := []struct{ impl, part, vendor, model string }{
		{"0x41", "0xd46", "ARM", "Cortex-A510"},
		{"0x41", "0xd0c", "ARM", "Neoverse-N1"},
		{"0x43", "0x0a1", "Cavium", "ThunderX-88XX"},
		{"0x43", "0x0af", "Cavium", "ThunderX2-99xx"},
		{"0x50", "0x000", "APM", "X-Gene"},
		{"0xc0", "0xac3", "Ampere", "Ampere-1"},
		{"0x41", "0xfff", "ARM", ""},
		{"0x99", "0x001", "0x99", ""},
		{"65", "0xd46", "65", ""},
		{"", "", "", ""},
	}
	for _, c := range cases {
		v, m := ARMNames(c.impl, c.part)
		if v != c.vendor || m != c.model {
			t.Errorf("ARMNames(%q, %q) = %q, %q; want %q, %q", c.impl, c.part, v, m, c.vendor, c.model)
		}
	}
}

func TestLibvirtMHz(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		arch    arch.Arch
		want    int
		wantErr bool
	}{
		{"x86 last line wins", "cpu MHz\t\t: 2800.000\ncpu MHz\t\t: 1200.500\n", arch.X86_64, 1200, false},
		{"x86 other key with the prefix", "cpu MHz\t\t: 2800.000\ncpu MHz rounded up to GHz\t: 3000.000\n", arch.X86_64, 2800, false},
		{"POWER clock", "clock\t\t: 3690.000000MHz\n", arch.PPC64LE, 3690, false},
		{"POWER clock without decimals", "clock\t\t: 3690MHz\n", arch.PPC64, 0, true},
		{"s390 dynamic", "cpu MHz dynamic : 5000\ncpu MHz static  : 5200\n", arch.S390X, 5000, false},
		{"ARM has none", "BogoMIPS\t: 50.00\n", arch.AArch64, 0, false},
		{"malformed keeps the earlier value", "cpu MHz : 2000.0\ncpu MHz : fast\n", arch.X86_64, 2000, true},
		{"empty value", "cpu MHz :\n", arch.X86_64, 0, true},
		{"overflow", "cpu MHz : 99999999999\n", arch.X86_64, 0, true},
		{"unknown arch", "cpu MHz : 2000\n", arch.Unknown, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := LibvirtMHz([]byte(c.in), c.arch)
			if got != c.want || (err != nil) != c.wantErr {
				t.Errorf("= %d, %v; want %d, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestDeriveThreadsPerSubcore(t *testing.T) {
	p8 := CPU{Model: "POWER8E (raw), altivec supported", PVR: "004b0201", Platform: "PowerNV"}
	p9 := CPU{Model: "POWER9, altivec supported", PVR: "004e1202", Platform: "PowerNV"}
	p7 := CPU{Model: "POWER7 (raw), altivec supported", PVR: "003f0203", Platform: "PowerNV"}
	guest := CPU{Model: "POWER9 (architected), altivec supported", PVR: "004e1202", Platform: "pSeries"}
	cases := []struct {
		name              string
		a                 arch.Arch
		cpu               CPU
		threads, subcores int
		want              int
	}{
		{"POWER8 PowerNV", arch.PPC64LE, p8, 0, 1, 8},
		{"POWER8 from the device tree", arch.PPC64, p8, 8, 1, 8},
		{"POWER8 split in 4", arch.PPC64LE, p8, 8, 4, 2},
		{"POWER8 split in 2", arch.PPC64LE, p8, 0, 2, 4},
		{"POWER8 impossible split", arch.PPC64LE, p8, 8, 3, 0},
		{"POWER7 PowerNV", arch.PPC64, p7, 0, 1, 4},
		{"POWER9 answers 1", arch.PPC64LE, p9, 4, 1, 1},
		{"pseries guest", arch.PPC64LE, guest, 2, 1, 0},
		{"not POWER", arch.X86_64, p8, 8, 1, 0},
		{"unknown processor", arch.PPC64LE, CPU{Platform: "PowerNV"}, 8, 1, 0},
	}
	for _, c := range cases {
		if got := DeriveThreadsPerSubcore(c.a, c.cpu, c.threads, c.subcores); got != c.want {
			t.Errorf("%s: = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestSplitCPUInfoIgnoresJunk(t *testing.T) {
	blocks := splitCPUInfo("a : 1\r\nno colon here\n : empty key\nb:2\n\n\n\nc :  3 \n")
	want := []cpuBlock{{{"a", "1"}, {"b", "2"}}, {{"c", "3"}}}
	if diff := cmp.Diff(want, blocks, cmp.AllowUnexported(kv{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
