package cpuset

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in     string
		want   Set
		str    string
		commas string
	}{
		{"", Set{}, "", ""},
		{"0", Set{0}, "0", "0"},
		{"0-3", Set{0, 1, 2, 3}, "0-3", "0,1,2,3"},
		{"0,8,16,24\n", Set{0, 8, 16, 24}, "0,8,16,24", "0,8,16,24"},
		{"1-5,8-19", Set{1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, "1-5,8-19", "1,2,3,4,5,8,9,10,11,12,13,14,15,16,17,18,19"},
		{"0-62:20", Set{0, 20, 40, 60}, "0,20,40,60", "0,20,40,60"},
		{"3,1,2,2", Set{1, 2, 3}, "1-3", "1,2,3"},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", c.in, diff)
		}
		if got.String() != c.str || got.Commas() != c.commas {
			t.Errorf("Parse(%q) prints %q / %q; want %q / %q", c.in, got.String(), got.Commas(), c.str, c.commas)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"a", "1-", "-1", "3-1", "0,,1", "0-4294967295", "1:0", "0-9:x"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded; want an error", in)
		}
	}
}

func TestParseOverlappingRangesBounded(t *testing.T) {
	// Two full ranges are still fine (twice every CPU)...
	if s, err := Parse("0-65536,0-65536"); err != nil || s.Len() != MaxCPU+1 {
		t.Fatalf("two full ranges: %d CPUs, %v", s.Len(), err)
	}
	// ...a 64 KiB list of them is refused at once instead of costing
	// seconds.
	in := strings.TrimSuffix(strings.Repeat("0-65536,", 8000), ",")
	start := time.Now()
	if _, err := Parse(in); err == nil {
		t.Fatal("hostile list parsed")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing took %v", d)
	}
}

func TestContains(t *testing.T) {
	s := Of(8, 0, 16)
	if !s.Contains(8) || s.Contains(9) {
		t.Errorf("Contains on %v is wrong", s)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{"0-3,8", "0,8,16,24,32", "0-62:2", "", "1-5,8-19", "99999999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("printed form %q of %q does not parse: %v", s.String(), in, err)
		}
		if diff := cmp.Diff(s, again); diff != "" {
			t.Fatalf("round trip of %q changed the set:\n%s", in, diff)
		}
	})
}

func TestParseMask(t *testing.T) {
	cases := []struct {
		in   string
		want Set
	}{
		{"", Set{}},
		{"00000000", Set{}},
		{"01", Set{0}},
		{"07", Set{0, 1, 2}},
		{"78", Set{3, 4, 5, 6}},
		{"00000000,000000f0\n", Set{4, 5, 6, 7}},
		{"00000001,00000001", Set{0, 32}},
		{"FF", Set{0, 1, 2, 3, 4, 5, 6, 7}},
	}
	for _, c := range cases {
		got, err := ParseMask(c.in)
		if err != nil {
			t.Errorf("ParseMask(%q): %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("ParseMask(%q) (-want +got):\n%s", c.in, diff)
		}
	}
}

func TestParseMaskErrors(t *testing.T) {
	huge := "1" + strings.Repeat("0", MaxCPU/4+1)
	for _, in := range []string{"0x10", "g", "1-3", huge} {
		if _, err := ParseMask(in); err == nil {
			t.Errorf("ParseMask(%.20q) succeeded; want an error", in)
		}
	}
}

func FuzzParseMask(f *testing.F) {
	for _, seed := range []string{"01", "00000000,000000f0", "ff,ffffffff", "", "zz", "8000"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseMask(in)
		if err != nil {
			return
		}
		for i, c := range s {
			if c < 0 || c > MaxCPU || (i > 0 && s[i-1] >= c) {
				t.Fatalf("ParseMask(%q) = %v: not a sorted set of CPUs in range", in, s)
			}
		}
	})
}
