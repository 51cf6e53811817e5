package vmspec

import (
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
)

func TestCheckVolumeName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"debian-12.qcow2", true},
		{"web1-root", true},
		{"a", true},
		{"seed@web1.iso", true},
		{"img+v2_x.raw", true},
		{"", false},
		{"../etc/shadow", false},
		{"..", false},
		{".", false},
		{"a/b", false},
		{".hidden", false},
		{"-rf", false},
		{"x..y", false},
		{"a b", false},
		{"a\x00b", false},
		{"é.qcow2", false},
		{strings.Repeat("a", MaxVolumeName), true},
		{strings.Repeat("a", MaxVolumeName+1), false},
	} {
		err := CheckVolumeName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckVolumeName(%q) = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestDiskVolumeValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		disk  Disk
		codes []string
	}{
		{"volume of a pool", Disk{Pool: "p1", Volume: "web1.qcow2"}, nil},
		{"resolved by the engine", Disk{Pool: "p1", Volume: "web1.qcow2", Source: "/var/lib/polyvirt/images/p1/web1.qcow2"}, nil},
		{"climbing name", Disk{Pool: "p1", Volume: "../web1.qcow2"}, []string{api.CodeDiskVolumeName}},
		{"no pool", Disk{Volume: "web1.qcow2"}, []string{api.CodeDiskPool}},
		{"pool alone", Disk{Pool: "p1"}, []string{api.CodeDiskSource, api.CodeDiskPool}},
		{"bad pool name", Disk{Pool: "p/1", Volume: "x"}, []string{api.CodeDiskPool}},
		{"another file", Disk{Pool: "p1", Volume: "web1.qcow2", Source: "/var/lib/polyvirt/images/p1/other.qcow2"}, []string{api.CodeDiskSourceConflict}},
		{"block volume", Disk{Pool: "p1", Volume: "x", Type: "block"}, []string{api.CodeDiskSourceConflict}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := &VM{Name: "v", Arch: "x86_64", Disks: []Disk{tc.disk}}
			_, err := Validate(vm, Options{})
			var got []string
			if err != nil {
				es, ok := err.(api.Errors)
				if !ok {
					t.Fatalf("Validate: %v", err)
				}
				got = es.Codes()
			}
			if diff := cmp.Diff(tc.codes, got); diff != "" {
				t.Errorf("codes (-want +got):\n%s\n%v", diff, err)
			}
		})
	}
}

func TestVolumeDiskFormatDefault(t *testing.T) {
	v, err := Validate(&VM{Name: "v", Arch: "ppc64le", Disks: []Disk{{Pool: "p", Volume: "a.qcow2"}, {Pool: "p", Volume: "b.raw"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{v.VM().Disks[0].Format, v.VM().Disks[1].Format}; !cmp.Equal(got, []string{"qcow2", "raw"}) {
		t.Errorf("formats %v; want qcow2 (from the volume's name) and raw", got)
	}
}

// FuzzCheckVolumeName: a name that passes is one plain file name that
// stays in its directory.
func FuzzCheckVolumeName(f *testing.F) {
	for _, s := range []string{"a", "../x", "a/b", ".x", "x..y", "web1.qcow2", "\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckVolumeName(s) != nil {
			return
		}
		joined := path.Join("/pool", s)
		if path.Dir(joined) != "/pool" || path.Base(joined) != s || strings.HasPrefix(s, ".") || strings.ContainsAny(s, "/\x00") {
			t.Fatalf("%q passed but leaves the pool: %q", s, joined)
		}
	})
}
