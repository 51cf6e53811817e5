package hostinfo

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"polyvirt/internal/testcorpus"
)

// corpusDir returns ../shared/corpus ("" when absent).
func corpusDir(tb testing.TB) string { return testcorpus.Dir(tb) }

// needCorpus returns the corpus directory or skips the test with a message
// saying why.
func needCorpus(tb testing.TB, sub string) string {
	tb.Helper()
	c := corpusDir(tb)
	if c == "" {
		tb.Skip("../shared/corpus is absent (a clone without the shared corpus); the corpus conformance checks did not run")
	}
	d := filepath.Join(c, sub)
	if _, err := os.Stat(d); err != nil {
		tb.Skipf("%s is absent: %v", d, err)
	}
	return d
}

// untar unpacks a .tar.gz into dest, dropping the first strip path
// elements of every name and the sysfs subtrees hostinfo never reads. Symbolic links are recreated when their target
// stays inside dest; anything escaping dest is an error.
func untar(tb testing.TB, archive, dest string, strip int) {
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
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			tb.Fatalf("%s: %v", archive, err)
		}
		parts := strings.Split(strings.Trim(filepath.ToSlash(hdr.Name), "/"), "/")
		if len(parts) <= strip {
			continue
		}
		if skipUnpack(parts) {
			continue
		}
		rel := filepath.Join(parts[strip:]...)
		target := filepath.Join(dest, rel)
		if !within(dest, target) {
			tb.Fatalf("%s: %s escapes the destination", archive, hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				tb.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				tb.Fatal(err)
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				tb.Fatal(err)
			}
			if _, err := io.Copy(out, io.LimitReader(tr, 64<<20)); err != nil {
				tb.Fatal(err)
			}
			out.Close()
		case tar.TypeSymlink:
			link := filepath.Join(filepath.Dir(target), hdr.Linkname)
			if filepath.IsAbs(hdr.Linkname) || !within(dest, link) {
				continue // a link out of the snapshot: leave it out
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				tb.Fatal(err)
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// unreadSubtrees are sysfs CPU subtrees hostinfo never reads; they hold
// most of the files of a dump, and leaving them out keeps unpacking fast.
var unreadSubtrees = map[string]bool{"cache": true, "cpufreq": true, "cpuidle": true, "thermal_throttle": true, "microcode": true}

func skipUnpack(parts []string) bool {
	for i, p := range parts {
		if unreadSubtrees[p] && i > 0 && strings.HasPrefix(parts[i-1], "cpu") {
			return true
		}
	}
	return false
}

func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// lscpuDump unpacks corpus/lscpu/NAME.tar.gz and returns the root (the
// folder holding proc and sys).
func lscpuDump(tb testing.TB, dir, name string) string {
	tb.Helper()
	tmp := tb.TempDir()
	untar(tb, filepath.Join(dir, name+".tar.gz"), tmp, 0)
	return filepath.Join(tmp, name)
}

// hostCPURoot builds a root from libvirt's host-CPU data: cpuinfo file as
// proc/cpuinfo and linux-NAME.sysfs.tar.gz (linux-NAME/{cpu,node}) as
// sys/devices/system/{cpu,node}.
func hostCPURoot(tb testing.TB, dir, cpuinfoFile, sysfsName string) string {
	tb.Helper()
	root := tb.TempDir()
	sys := filepath.Join(root, "sys", "devices", "system")
	if err := os.MkdirAll(sys, 0o755); err != nil {
		tb.Fatal(err)
	}
	untar(tb, filepath.Join(dir, sysfsName+".sysfs.tar.gz"), sys, 1)
	copyFile(tb, filepath.Join(dir, cpuinfoFile), filepath.Join(root, "proc", "cpuinfo"))
	return root
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// nodeInfoLine prints a NodeInfo as libvirt's virhostcputest does.
func nodeInfoLine(ni NodeInfo) string {
	return fmt.Sprintf("CPUs: %d/%d, MHz: %d, Nodes: %d, Sockets: %d, Cores: %d, Threads: %d",
		ni.CPUs, ni.TotalCPUs, ni.MHz, ni.Nodes, ni.Sockets, ni.Cores, ni.Threads)
}
