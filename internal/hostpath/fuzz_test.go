package hostpath

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"polyvirt/internal/api"
)

// FuzzCheck: for any path, and a link of any target placed in the images
// directory, the check never panics, every refusal has its code, field and
// message, and a path it allows leads — as the kernel itself follows it —
// to a regular file below the images directory.
func FuzzCheck(f *testing.F) {
	img := "/var/lib/polyvirt/images/"
	for _, s := range [][2]string{
		{img + "a.img", "a.img"},
		{img + "fz", "../../../../etc/shadow"},
		{img + "fz/x", "sub"},
		{img + "fz", "/proc/self/root/etc/shadow"},
		{img + "fz/../fz", "loop1"},
		{img + "./fz", "disk.qcow2"},
		{"/etc/shadow", "x"},
		{img + "fz", "evil-backing.qcow2"},
		{img + "sub/../fz", "sub/deep.img"},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	root := tree(f)
	f.Fuzz(func(t *testing.T, p, target string, qcow bool) {
		if strings.ContainsRune(target, 0) || target == "" || len(target) > 1024 || len(p) > 4096 {
			return
		}
		link := filepath.Join(root, img, "fz")
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return
		}
		defer os.Remove(link)
		r := Ref{Field: "disks[0].source", Path: p, Use: Disk}
		if qcow {
			r.Format = "qcow2"
		}
		for _, mode := range []Mode{AtCreate, AtStart} {
			errs := Checker{Policy: Default(), Root: root}.Check([]Ref{r}, mode)
			for _, e := range errs {
				if e.Field != r.Field || e.Message == "" || (e.Code != api.CodePathNotAllowed && e.Code != api.CodePathNotFound) {
					t.Fatalf("bad violation %+v", e)
				}
			}
			if len(errs) > 0 || mode != AtStart {
				continue
			}
			// Allowed at start: the kernel's own resolution (when it stays
			// in the test's tree, as it always does from a host's /) ends
			// at a regular file below the images directory.
			real, err := filepath.EvalSymlinks(filepath.Join(root, p))
			if err != nil {
				t.Fatalf("%q allowed but the kernel cannot follow it: %v", p, err)
			}
			if rel, err := filepath.Rel(root, real); err == nil && !strings.HasPrefix(rel, "..") {
				if !Within("/"+rel, path.Clean(ImagesDir)) {
					t.Fatalf("%q (link fz → %q) allowed but leads to %s", p, target, rel)
				}
				if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() {
					t.Fatalf("%q allowed but leads to %v (%v)", p, fi, err)
				}
			}
		}
	})
}

// FuzzQCOW2Header: any bytes are refused or give a header whose names are
// within what was read.
func FuzzQCOW2Header(f *testing.F) {
	f.Add(qcow2Image("", "", ""))
	f.Add(qcow2Image("disk.qcow2", "qcow2", ""))
	f.Add(qcow2Image("/etc/shadow", "raw", "/etc/passwd"))
	v2 := qcow2Image("base.img", "", "")
	v2[7] = 2
	f.Add(v2)
	f.Add([]byte("QFI\xfb"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseQCOW2Header(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if h.Version != 2 && h.Version != 3 {
			t.Fatalf("version %d accepted", h.Version)
		}
		if len(h.BackingFile) > 1023 || len(h.BackingFile)+len(h.BackingFormat)+len(h.DataFile) > len(b) {
			t.Fatalf("names longer than the input: %+v", h)
		}
	})
}
