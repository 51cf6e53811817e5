package libvirtconn

import "testing"

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		version, min string
		want         bool
	}{
		{"10.0.2", "9.0", true},
		{"9.0.0", "9.0", true},
		{"9.0", "9.0.0", true},
		{"8.2.10", "9.0", false},
		{"7.2.22", "9.0", false},
		{"9.10.0", "9.2", true},
		{"9.2.0", "9.10", false},
		{FormatVersion(10000002), "10.0.2", true},
		{FormatVersion(10000001), "10.0.2", false},
		{"", "9.0", false},
		{"10.0.2", "", false},
		{"10.x", "9.0", false},
		{"10..0", "9.0", false},
		{"-1.0", "0", false},
	} {
		if got := VersionAtLeast(c.version, c.min); got != c.want {
			t.Errorf("VersionAtLeast(%q, %q) = %v, want %v", c.version, c.min, got, c.want)
		}
	}
}

// FuzzVersionAtLeast: no panic; a version that reads is at least itself,
// and of two that read, one is at least the other.
func FuzzVersionAtLeast(f *testing.F) {
	f.Add("10.0.2", "9.0")
	f.Add("7.2.22", "7.2.22.1")
	f.Add("", ".")
	f.Fuzz(func(t *testing.T, a, b string) {
		_, okA := versionParts(a)
		_, okB := versionParts(b)
		if okA && !VersionAtLeast(a, a) {
			t.Errorf("%q is not at least itself", a)
		}
		if okA && okB && !VersionAtLeast(a, b) && !VersionAtLeast(b, a) {
			t.Errorf("neither %q nor %q is at least the other", a, b)
		}
		if (!okA || !okB) && VersionAtLeast(a, b) {
			t.Errorf("VersionAtLeast(%q, %q) with one not a version", a, b)
		}
	})
}
