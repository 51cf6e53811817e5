package arch

import "testing"

func TestParseAliases(t *testing.T) {
	cases := map[string]Arch{
		"x86_64": X86_64, "amd64": X86_64, "X86-64": X86_64,
		"ppc64le": PPC64LE, "ppc64el": PPC64LE, "powerpc64le": PPC64LE,
		"ppc64": PPC64, "powerpc64": PPC64,
		"aarch64": AArch64, "arm64": AArch64,
		"s390x": S390X, " s390x\n": S390X,
		"i686": I686, "i386": I686,
	}
	for in, want := range cases {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseUnknown(t *testing.T) {
	if _, err := Parse("mips"); err == nil {
		t.Fatal("Parse(mips) succeeded; want an error")
	}
}

func TestFamilies(t *testing.T) {
	if !PPC64LE.SameFamily(PPC64) {
		t.Error("ppc64le and ppc64 must share the ppc family")
	}
	if X86_64.SameFamily(PPC64LE) {
		t.Error("x86_64 and ppc64le must differ")
	}
	if Unknown.SameFamily(Unknown) {
		t.Error("unknown architectures share no family")
	}
}

func TestGOARCH(t *testing.T) {
	for _, goarch := range []string{"amd64", "ppc64le", "arm64", "s390x", "ppc64"} {
		a := FromGOARCH(goarch)
		if a == Unknown || a.GOARCH() != goarch {
			t.Errorf("FromGOARCH(%q) = %q (round trip %q)", goarch, a, a.GOARCH())
		}
	}
}
