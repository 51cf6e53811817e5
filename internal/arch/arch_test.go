package arch

import (
	"encoding/json"
	"testing"
)

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

func TestUnmarshalText(t *testing.T) {
	cases := []struct {
		in    string
		want  Arch
		known bool
	}{
		{`"ppc64el"`, PPC64LE, true},
		{`"AMD64"`, X86_64, true},
		{`" s390x "`, S390X, true},
		{`"x86_64"`, X86_64, true},
		{`"mips"`, Arch("mips"), false},
		{`""`, Unknown, false},
	}
	for _, c := range cases {
		var got Arch
		if err := json.Unmarshal([]byte(c.in), &got); err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got != c.want || got.Known() != c.known {
			t.Errorf("%s: got %q (known %v), want %q (known %v)", c.in, got, got.Known(), c.want, c.known)
		}
		if (got.Check() == nil) != c.known {
			t.Errorf("%s: Check() = %v", c.in, got.Check())
		}
	}
	if err := Arch("mips").Check(); err == nil || err.Error() != `unknown architecture "mips" (known: aarch64, armv7l, i686, ppc, ppc64, ppc64le, s390x, x86_64)` {
		t.Errorf("Check of mips: %v", err)
	}
	b, err := json.Marshal(struct {
		A Arch `json:"a"`
	}{PPC64LE})
	if err != nil || string(b) != `{"a":"ppc64le"}` {
		t.Errorf("Marshal: %s %v", b, err)
	}
}
