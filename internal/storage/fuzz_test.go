package storage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseInfo(t *testing.T) {
	ov, err := ParseInfo(readTestdata(t, "info-overlay.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := ImageInfo{Format: "qcow2", VirtualSize: 64 << 20, ActualSize: 208896, ClusterSize: 65536,
		BackingFilename: "base.qcow2", BackingFormat: "qcow2", Snapshots: []VolumeSnapshot{{ID: "1", Name: "s1", DateSec: 1796449214}},
		FormatSpecific: ov.FormatSpecific}
	if diff := cmp.Diff(want, ov); diff != "" {
		t.Errorf("overlay (-want +got):\n%s", diff)
	}
	if ov.FormatSpecific == nil || ov.FormatSpecific.Data.Compat != "1.1" || ov.Corrupt() {
		t.Errorf("format-specific %+v", ov.FormatSpecific)
	}
	raw, err := ParseInfo(readTestdata(t, "info-raw.json"))
	if err != nil || raw.Format != "raw" || raw.VirtualSize != 1<<20 {
		t.Errorf("raw: %+v %v", raw, err)
	}
	for _, bad := range []string{``, `{}`, `{"format":"raw","virtual-size":-1}`, `{"format":"qcow2"}{"format":"raw"}`,
		`{"format":"a b"}`, `{"format":"raw","snapshots":[{"id":"1"}]}`, `[1]`, `{"format":"raw","actual-size":-5}`} {
		if _, err := ParseInfo([]byte(bad)); err == nil {
			t.Errorf("ParseInfo(%q) accepted", bad)
		}
	}
}

func TestParseCheck(t *testing.T) {
	r, err := ParseCheck(readTestdata(t, "check-truncated.json"))
	if err != nil || r.Corruptions != 53 || r.ImageEndOffset != 1<<20 {
		t.Errorf("truncated: %+v %v", r, err)
	}
	r, err = ParseCheck(readTestdata(t, "check-clean.json"))
	if err != nil || r.Corruptions != 0 || r.CheckErrors != 0 {
		t.Errorf("clean: %+v %v", r, err)
	}
	for _, bad := range []string{``, `{}`, `{"format":"qcow2","corruptions":-1}`, `{"format":"qcow2"} x`} {
		if _, err := ParseCheck([]byte(bad)); err == nil {
			t.Errorf("ParseCheck(%q) accepted", bad)
		}
	}
}

func TestParseSHA256(t *testing.T) {
	const s = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
	got, err := ParseSHA256("sha256:" + s)
	if err != nil || got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("%q %v", got, err)
	}
	for _, bad := range []string{"", "abc", s + "0", s[:63] + "g"} {
		if _, err := ParseSHA256(bad); err == nil {
			t.Errorf("ParseSHA256(%q) accepted", bad)
		}
	}
}

func FuzzParseInfo(f *testing.F) {
	f.Add(readTestdata(f, "info-overlay.json"))
	f.Add(readTestdata(f, "info-raw.json"))
	f.Add([]byte(`{"format":"qcow2","virtual-size":1,"snapshots":[{"name":"x","vm-state-size":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ParseInfo(b)
		if err != nil {
			return
		}
		if info.Format == "" || info.VirtualSize < 0 || info.ActualSize < 0 {
			t.Fatalf("accepted %+v", info)
		}
		for _, s := range info.Snapshots {
			if s.Name == "" || s.VMStateSize < 0 {
				t.Fatalf("accepted snapshot %+v", s)
			}
		}
	})
}

func FuzzParseCheck(f *testing.F) {
	f.Add(readTestdata(f, "check-truncated.json"))
	f.Add(readTestdata(f, "check-clean.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseCheck(b)
		if err != nil {
			return
		}
		if r.Format == "" || r.Corruptions < 0 || r.CheckErrors < 0 || r.Leaks < 0 {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseMarker(f *testing.F) {
	f.Add([]byte(`{"pool":"1","name":"p1","kind":"shared","created":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"pool":"","name":"p1"}`))
	f.Add([]byte(`{"pool":"1","name":"p1","extra":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMarker(b)
		if err == nil && (m.Pool == "" || m.Name == "") {
			t.Fatalf("accepted %+v", m)
		}
	})
}

func FuzzParseSHA256(f *testing.F) {
	f.Add("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSHA256(s)
		if err != nil {
			return
		}
		if len(got) != 64 {
			t.Fatalf("%q → %q", s, got)
		}
		for _, c := range got {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				t.Fatalf("%q → %q", s, got)
			}
		}
	})
}

func TestParseRanges(t *testing.T) {
	for _, tc := range []struct {
		in                string
		first, last, size int64
		ok                bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 100-199/1000", 100, 199, 1000, true},
		{"bytes */1000", 0, -1, 1000, true},
		{"bytes 0-100/100", 0, 0, 0, false},
		{"bytes 5-4/100", 0, 0, 0, false},
		{"bytes -1-4/100", 0, 0, 0, false},
		{"bytes 0-4/0", 0, 0, 0, false},
		{"items 0-4/10", 0, 0, 0, false},
		{"bytes 0-4", 0, 0, 0, false},
		{"bytes 0-4/99999999999999999999", 0, 0, 0, false},
	} {
		f, l, s, err := ParseContentRange(tc.in)
		if (err == nil) != tc.ok || (tc.ok && (f != tc.first || l != tc.last || s != tc.size)) {
			t.Errorf("ParseContentRange(%q) = %d %d %d %v", tc.in, f, l, s, err)
		}
	}
	for in, want := range map[string]int64{"0": 0, " 42 ": 42, "+1": -1, "-1": -1, "1e3": -1, "": -1, "0x10": -1} {
		n, err := ParseOffset(in)
		if (want < 0) != (err != nil) || (err == nil && n != want) {
			t.Errorf("ParseOffset(%q) = %d %v", in, n, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes */5", "bytes 1-0/2", "bytes 9223372036854775807-9223372036854775807/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, size, err := ParseContentRange(s)
		if err != nil {
			return
		}
		if size <= 0 || size > MaxUploadSize || first < 0 || (last >= 0 && (first > last || last >= size)) {
			t.Fatalf("%q → %d-%d/%d", s, first, last, size)
		}
	})
}

func FuzzParseOffset(f *testing.F) {
	f.Add("0")
	f.Add("18446744073709551616")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseOffset(s)
		if err == nil && (n < 0 || n > MaxUploadSize) {
			t.Fatalf("%q → %d", s, n)
		}
	})
}
