// Package testcorpus finds the shared real-machine corpus for tests: the
// folder ../shared/corpus beside the module (POLYVIRT_CORPUS overrides it).
// A clone without it skips the corpus tests with a message saying so.
package testcorpus

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dir returns the corpus directory, or "" when there is none.
func Dir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("POLYVIRT_CORPUS"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			c := filepath.Join(d, "..", "shared", "corpus")
			if st, err := os.Stat(c); err == nil && st.IsDir() {
				return c
			}
			return ""
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Need returns the corpus subdirectory sub, or skips the test with a
// message when the corpus (or sub) is absent.
func Need(tb testing.TB, sub string) string {
	tb.Helper()
	c := Dir(tb)
	if c == "" {
		tb.Skip("../shared/corpus is absent (a clone without the shared corpus); the corpus checks did not run")
	}
	d := filepath.Join(c, sub)
	if _, err := os.Stat(d); err != nil {
		tb.Skipf("%s is absent: %v", d, err)
	}
	return d
}

// Untar unpacks a .tar.gz of the corpus into dest; a name escaping dest is
// an error.
func Untar(tb testing.TB, archive, dest string) {
	tb.Helper()
	f, err := os.Open(archive)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatalf("%s: %v", archive, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			tb.Fatalf("%s: %v", archive, err)
		}
		name := filepath.Clean(h.Name)
		if strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			tb.Fatalf("%s: %q escapes the destination", archive, h.Name)
		}
		p := filepath.Join(dest, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				tb.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				tb.Fatal(err)
			}
			b, err := io.ReadAll(io.LimitReader(tr, 64<<20))
			if err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				tb.Fatal(err)
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(h.Linkname) || strings.HasPrefix(filepath.Clean(filepath.Join(filepath.Dir(name), h.Linkname)), "..") {
				continue
			}
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			_ = os.Symlink(h.Linkname, p)
		}
	}
}
