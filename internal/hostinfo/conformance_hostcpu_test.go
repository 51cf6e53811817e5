package hostinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"polyvirt/internal/arch"
)

// TestConformanceLibvirtHostCPU reads every libvirt host-CPU dataset of the
// corpus (linux-ARCH-NAME.cpuinfo with linux-NAME.sysfs.tar.gz) and compares
// the nodeinfo with libvirt's own reading (.expected), exactly.
func TestConformanceLibvirtHostCPU(t *testing.T) {
	dir := needCorpus(t, "libvirt-hostcpu")
	files, err := filepath.Glob(filepath.Join(dir, "linux-*.cpuinfo"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no linux-*.cpuinfo in %s (%v)", dir, err)
	}
	used := map[string]bool{}
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".cpuinfo")
		fileArch, name := splitHostCPUName(base)
		used["linux-"+name+".sysfs.tar.gz"] = true
		if fileArch == arch.Unknown {
			t.Errorf("%s: no known architecture in the name", base)
			continue
		}
		t.Run(base, func(t *testing.T) {
			wantData, err := os.ReadFile(filepath.Join(dir, base+".expected"))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimSpace(string(wantData))
			root := hostCPURoot(t, dir, filepath.Base(f), "linux-"+name)

			// As the host itself would be read: architecture and threads
			// per subcore derived from the data.
			h, err := Read(os.DirFS(root), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !h.Arch.SameFamily(fileArch) {
				t.Errorf("architecture %q (%s), want the %s family", h.Arch, h.ArchSource, fileArch)
			}
			if got := nodeInfoLine(h.NodeInfo); got != want {
				t.Errorf("nodeinfo, derived threads per subcore:\n got: %s\nwant: %s\nproblems: %v", got, want, h.Problems)
			}

			// As libvirt's test runs it: the named architecture, and its
			// mock's KVM answer (8 threads per subcore on PPC64).
			opts := Options{Arch: fileArch, ThreadsPerSubcore: -1}
			if fileArch == arch.PPC64 {
				opts.ThreadsPerSubcore = 8
			}
			h, err = Read(os.DirFS(root), opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := nodeInfoLine(h.NodeInfo); got != want {
				t.Errorf("nodeinfo, libvirt's test options %+v:\n got: %s\nwant: %s\nproblems: %v", opts, got, want, h.Problems)
			}
		})
	}
	tars, _ := filepath.Glob(filepath.Join(dir, "linux-*.sysfs.tar.gz"))
	for _, tgz := range tars {
		if !used[filepath.Base(tgz)] {
			t.Errorf("%s is not read by any dataset", filepath.Base(tgz))
		}
	}
}

// splitHostCPUName cuts "linux-ppc64-subcores1" into ppc64 and
// "subcores1".
func splitHostCPUName(base string) (arch.Arch, string) {
	rest := strings.TrimPrefix(base, "linux-")
	for _, a := range []arch.Arch{arch.X86_64, arch.PPC64LE, arch.PPC64, arch.AArch64, arch.S390X} {
		if n, ok := strings.CutPrefix(rest, string(a)+"-"); ok {
			return a, n
		}
	}
	return arch.Unknown, ""
}
