package portrange

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in        string
		low, high int
		bad       string
	}{
		{"32768\t60999\n", 32768, 60999, ""},
		{"1024 50000", 1024, 50000, ""},
		{"", 0, 0, "got 0 fields"},
		{"32768", 0, 0, "got 1 fields"},
		{"a 60999", 0, 0, "low port"},
		{"32768 70000", 0, 0, "high port"},
		{"0 100", 0, 0, "low port"},
		{"60999 32768", 0, 0, "above high port"},
	} {
		low, high, err := Parse(tc.in)
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("Parse(%q) = %d, %d, %v; want an error naming %q", tc.in, low, high, err, tc.bad)
			}
			continue
		}
		if err != nil || low != tc.low || high != tc.high {
			t.Errorf("Parse(%q) = %d, %d, %v; want %d, %d", tc.in, low, high, err, tc.low, tc.high)
		}
	}
}

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "range")
	if _, _, err := Read(p); err == nil {
		t.Error("a missing file read without error")
	}
	if err := os.WriteFile(p, []byte("40000 50000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if low, high, err := Read(p); err != nil || low != 40000 || high != 50000 {
		t.Errorf("Read = %d, %d, %v", low, high, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"32768\t60999\n", "1024 65535", "", "1 2 3", "-1 5", "9 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		low, high, err := Parse(s)
		if err != nil {
			if !strings.Contains(err.Error(), "ephemeral port range") {
				t.Errorf("error without the field: %v", err)
			}
			return
		}
		if low < 1 || high > 65535 || low > high {
			t.Errorf("Parse(%q) accepted %d-%d", s, low, high)
		}
	})
}
