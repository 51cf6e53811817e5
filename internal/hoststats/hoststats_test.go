package hoststats

import (
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

const stat = `cpu  100 0 50 800 50 0 0 0 0 0
cpu0 50 0 25 400 25 0 0 0 0 0
cpu1 50 0 25 400 25 0 0 0 0 0
intr 12345
ctxt 999
`

func TestParse(t *testing.T) {
	c, err := ParseStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(CPUTimes{Busy: 150, Total: 1000, CPUs: 2}, c); diff != "" {
		t.Error(diff)
	}
	m, err := ParseMeminfo([]byte("MemTotal:       16384 kB\nMemFree:         4096 kB\nMemAvailable:    8192 kB\nBuffers: 1 kB\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Memory{16384, 4096, 8192}, m); diff != "" {
		t.Error(diff)
	}
	l, err := ParseLoadavg([]byte("0.52 0.34 0.10 2/345 6789\n"))
	if err != nil || l != (Load{0.52, 0.34, 0.10}) {
		t.Errorf("%v %v", l, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "cpu 1 2", "cpu a b c d e", "intr 1\n"} {
		if _, err := ParseStat([]byte(in)); err == nil {
			t.Errorf("ParseStat(%q) succeeded", in)
		}
	}
	for _, in := range []string{"", "MemTotal: lots kB", "MemFree: 1 kB"} {
		if _, err := ParseMeminfo([]byte(in)); err == nil {
			t.Errorf("ParseMeminfo(%q) succeeded", in)
		}
	}
	for _, in := range []string{"", "1 2", "x 1 2", "-1 0 0", "NaN 1 1", "1 Inf 1"} {
		if _, err := ParseLoadavg([]byte(in)); err == nil {
			t.Errorf("ParseLoadavg(%q) succeeded", in)
		}
	}
}

func TestSamplerUsage(t *testing.T) {
	fsys := fstest.MapFS{
		"proc/stat":    {Data: []byte(stat)},
		"proc/meminfo": {Data: []byte("MemTotal: 1024 kB\nMemFree: 512 kB\n")},
		"proc/loadavg": {Data: []byte("1.00 0.50 0.25 1/1 1\n")},
	}
	s := NewSampler(fsys)
	if _, u, err := s.Sample(); err != nil || u != 0 {
		t.Fatalf("first sample: usage %v, %v", u, err)
	}
	fsys["proc/stat"] = &fstest.MapFile{Data: []byte("cpu  150 0 100 850 50 0 0 0\ncpu0 1\n")}
	r, u, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	// busy 150 → 250 (+100) of total 1000 → 1150 (+150).
	if u < 66.6 || u > 66.7 {
		t.Errorf("usage %v; want 66.67", u)
	}
	if r.Memory.AvailableKiB != 512 {
		t.Errorf("MemAvailable falls back to MemFree: %d", r.Memory.AvailableKiB)
	}
}

func FuzzParsers(f *testing.F) {
	f.Add([]byte(stat))
	f.Add([]byte("MemTotal: 1 kB\n"))
	f.Add([]byte("0.1 0.2 0.3 1/2 3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseStat(b); err == nil && c.Busy > c.Total {
			t.Fatalf("busy %d > total %d", c.Busy, c.Total)
		}
		_, _ = ParseMeminfo(b)
		if l, err := ParseLoadavg(b); err == nil && (l.Load1 < 0 || l.Load5 < 0 || l.Load15 < 0) {
			t.Fatalf("negative load %v", l)
		}
	})
}
