package caps

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/testcorpus"
)

// TestLiveLibvirt asks the real libvirtd the test command starts: the report
// lists ppc64 and ppc64le guests with pseries machines and POWER CPU models.
func TestLiveLibvirt(t *testing.T) {
	uri := os.Getenv("POLYVIRT_LIBVIRT_URI")
	res, err := Collect(context.Background(), Options{LibvirtURI: uri})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	if !r.Virt.Libvirt {
		if os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" {
			t.Fatalf("libvirt did not answer: %s", r.Virt.LibvirtError)
		}
		t.Skipf("libvirt did not answer (%s); scripts/test.sh starts it", r.Virt.LibvirtError)
	}
	if r.Virt.LibvirtVersion == "" || r.Virt.QEMUVersion == "" {
		t.Errorf("versions %q %q", r.Virt.LibvirtVersion, r.Virt.QEMUVersion)
	}
	for _, want := range []string{"ppc64", "ppc64le"} {
		var g *hostreport.Guest
		for i := range r.Virt.Guests {
			if r.Virt.Guests[i].Arch.String() == want {
				g = &r.Virt.Guests[i]
			}
		}
		if g == nil {
			t.Errorf("no %s guest in %+v", want, r.Virt.Guests)
			continue
		}
		if !contains(g.Machines, "pseries") {
			t.Errorf("%s machines lack pseries: %v", want, g.Machines)
		}
		for _, m := range []string{"POWER8", "POWER9"} {
			if !contains(g.CPUModels, m) {
				t.Errorf("%s CPU models lack %s: %v (error %q)", want, m, g.CPUModels, g.Error)
			}
		}
		if !contains(g.Graphics, "vnc") || !contains(g.Video, "vga") {
			t.Errorf("%s graphics %v video %v", want, g.Graphics, g.Video)
		}
	}
	if r.Virt.KVM && r.Virt.DomainType != "kvm" || !r.Virt.KVM && r.Virt.DomainType != "qemu" {
		t.Errorf("kvm %v with domain type %q", r.Virt.KVM, r.Virt.DomainType)
	}
	if len(r.Virt.EmulatedMachines) == 0 || len(r.Virt.CPUModels) == 0 {
		t.Errorf("effective arch %s: machines %v models %v", r.EffectiveArch, r.Virt.EmulatedMachines, r.Virt.CPUModels)
	}

	// The same daemon seen from a fake-KVM POWER host.
	res, err = Collect(context.Background(), Options{LibvirtURI: uri, FakeArch: "ppc64le"})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Report
	if f.EffectiveArch != "ppc64le" || !contains(f.Virt.EmulatedMachines, "pseries") || !contains(f.Virt.CPUModels, "POWER8") {
		t.Errorf("fake ppc64le: effective %s machines %v models %v", f.EffectiveArch, f.Virt.EmulatedMachines, f.Virt.CPUModels)
	}
	if diff := cmp.Diff([]string{"powernv", "model_POWER8"}, f.CPU.Flags); diff != "" {
		t.Errorf("fake flags (-want +got):\n%s", diff)
	}
}

// TestCorpusPOWERHost reads the real POWER7 LPAR snapshot of the corpus with
// a real POWER KVM host's domcapabilities (QEMU 7.1, host-model POWER8).
func TestCorpusPOWERHost(t *testing.T) {
	corpus := testcorpus.Need(t, "")
	root := t.TempDir()
	testcorpus.Untar(t, filepath.Join(corpus, "lscpu", "ppc64-POWER7.tar.gz"), root)
	res, err := Collect(context.Background(), Options{
		Root:         filepath.Join(root, "ppc64-POWER7"),
		DomCapsFiles: []string{filepath.Join(corpus, "libvirt-domcaps", "qemu_7.1.0.ppc64.xml")},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	if r.Arch != "ppc64" && r.Arch != "ppc64le" {
		t.Fatalf("arch %q; want a POWER arch", r.Arch)
	}
	// A POWER8 host also runs POWER7-compat guests when it is big endian
	// (ppc64 is POWER7's architecture); ppc64le stops at POWER8.
	wantFlags := []string{"powernv", "model_POWER8"}
	if r.Arch == "ppc64" {
		wantFlags = append(wantFlags, "model_POWER7")
	}
	if diff := cmp.Diff(wantFlags, r.CPU.Flags); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	got := []any{r.CPU.Model, r.CPU.TotalCPUs, r.CPU.ThreadsPerCore, r.CPU.CoresPerSocket, r.CPU.Sockets, r.CPU.Platform, r.Hardware.Model}
	want := []any{"POWER7 (architected), altivec supported", 16, 4, 1, 4, "pSeries", "8233-E8B"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("model/cpus/threads/cores/sockets/platform/type-model (-want +got):\n%s", diff)
	}
}
