package caps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"polyvirt/internal/arch"
	"polyvirt/internal/hostinfo"
	"polyvirt/internal/profiles"
	"polyvirt/internal/testcorpus"
	"polyvirt/internal/virtcaps"
)

// debian12Libvirt is the capabilities of a Debian 12 x86_64 host without
// KVM (libvirt 9.0, QEMU 7.2: i686, x86_64, ppc, ppc64 and ppc64le guests,
// every board qemu-system-ppc64 emulates), from the corpus.
func debian12Libvirt(t *testing.T) *virtcaps.Live {
	return corpusCaps(t, "debian12-libvirt9-tcg-x86_64-host.xml")
}

// corpusCaps reads a capabilities document of the corpus.
func corpusCaps(t *testing.T, name string) *virtcaps.Live {
	t.Helper()
	dir := testcorpus.Need(t, "libvirt-caps")
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	lv, err := virtcaps.FromDocuments(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return lv
}

// profileHost reads a profile's root, as the agent does.
func profileHost(t *testing.T, name string) *hostinfo.Host {
	t.Helper()
	p, err := profiles.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hostinfo.Read(p.Root, hostinfo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestBuildVirtualization: a host that is the machine it runs on reports
// that machine's CPU whether or not KVM runs its guests, and says "tcg"
// with the reason where KVM cannot: no /dev/kvm, a CPU without vmx or
// svm, libvirt offering no kvm domain, fake-KVM mode.
func TestBuildVirtualization(t *testing.T) {
	xeon := profileHost(t, "x86-2s-intel")
	noDevice := *xeon
	noDevice.KVMDevice = false
	noVMX := *xeon
	noVMX.CPU.Flags = []string{"fpu", "sse2", "nx", "lm"}
	lv := debian12Libvirt(t)
	// A daemon whose x86_64 guests have a qemu domain only.
	noKVM := corpusCaps(t, "virt-manager-test-qemu-no-kvm.xml")
	cases := []struct {
		name                 string
		in                   Input
		virt, reason, domain string
	}{
		{"KVM", Input{Host: xeon}, "kvm", "", "kvm"},
		{"no /dev/kvm", Input{Host: &noDevice}, "tcg", "/dev/kvm is absent", "qemu"},
		{"no virtualization flag", Input{Host: &noVMX}, "tcg", "the CPU has none of the virtualization flags vmx, svm", "qemu"},
		{"libvirt offers kvm", Input{Host: xeon, Libvirt: lv}, "kvm", "", "kvm"},
		{"libvirt offers no kvm domain", Input{Host: xeon, Libvirt: noKVM}, "tcg", "libvirt's capabilities offer no kvm domain for x86_64 guests", "qemu"},
		{"an agent in fake-KVM mode, its KVM usable", Input{Host: xeon, FakeKVM: true}, "tcg", "fake KVM: x86_64 guests run emulated by QEMU (TCG)", "qemu"},
		{"an agent in fake-KVM mode without /dev/kvm", Input{Host: &noDevice, FakeKVM: true}, "tcg", "/dev/kvm is absent", "qemu"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Build(c.in)
			if r.Virt.Virtualization != c.virt || !strings.HasPrefix(r.Virt.KVMReason, c.reason) || r.Virt.DomainType != c.domain || r.Virt.KVM != (c.virt == "kvm") {
				t.Errorf("virtualization %q (%q), domain %q, kvm %v; want %q (%q…), %q", r.Virt.Virtualization, r.Virt.KVMReason, r.Virt.DomainType, r.Virt.KVM, c.virt, c.reason, c.domain)
			}
			// The real CPU whatever the virtualization.
			if r.CPU.Model != "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz" || r.CPU.Vendor != "GenuineIntel" || r.CPU.FakeIdentity != "" {
				t.Errorf("cpu %q %q fake identity %q", r.CPU.Model, r.CPU.Vendor, r.CPU.FakeIdentity)
			}
			if !contains(r.CPU.Flags, "nx") || contains(r.CPU.Flags, "model_Cascadelake-Server") && c.in.Libvirt != nil {
				t.Errorf("flags %v", r.CPU.Flags)
			}
		})
	}
}

// TestBuildFakeIdentityLabelled: VDSM's fake CPU only for a host
// presenting an architecture it does not run, and labelled so.
func TestBuildFakeIdentityLabelled(t *testing.T) {
	xeon := profileHost(t, "x86-2s-intel")
	r := Build(Input{Host: xeon, FakeArch: arch.PPC64LE})
	if r.CPU.Model != "POWER 8 (fake)" || !strings.Contains(r.CPU.FakeIdentity, "Intel(R) Xeon(R) Gold 6230") ||
		!strings.Contains(r.CPU.FakeIdentity, "presenting ppc64le") {
		t.Errorf("model %q, fake identity %q", r.CPU.Model, r.CPU.FakeIdentity)
	}
	// Its own architecture in fake-KVM mode: its own CPU.
	r = Build(Input{Host: xeon, FakeArch: arch.X86_64})
	if r.CPU.FakeIdentity != "" || !strings.HasPrefix(r.CPU.Model, "Intel(R) Xeon(R)") || !r.FakeKVM {
		t.Errorf("x86_64 as x86_64: model %q fake identity %q fake %v", r.CPU.Model, r.CPU.FakeIdentity, r.FakeKVM)
	}
	var text strings.Builder
	if err := WriteText(&text, Build(Input{Host: xeon, FakeArch: arch.PPC64LE})); err != nil || !strings.Contains(text.String(), "Fake identity") {
		t.Errorf("the text output does not label the fake identity (%v):\n%s", err, text.String())
	}
}

// TestBuildFakePOWERMachines: a fake POWER host on a daemon that emulates
// every ppc board (QEMU 7.2's 42 ppc64le machines: powernv9, mpc8544ds,
// mac99, …) reports what an S822L KVM host offers: the pseries machines
// of that QEMU, and its own guest architectures only.
func TestBuildFakePOWERMachines(t *testing.T) {
	lv := debian12Libvirt(t)
	all := lv.Capabilities.MachineNames(arch.PPC64LE, "qemu")
	if len(all) < 30 || !contains(all, "powernv9") || !contains(all, "mpc8544ds") {
		t.Fatalf("the corpus capabilities list %d ppc64le machines: %v", len(all), all)
	}
	var pseries []string
	for _, m := range all {
		if strings.HasPrefix(m, "pseries") {
			pseries = append(pseries, m)
		}
	}
	p, _ := profiles.Get("s822l-power8e")
	own, err := virtcaps.FromDocuments(p.Capabilities, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := Build(Input{Host: profileHost(t, "s822l-power8e"), Profile: p.Name, Libvirt: lv, CPUSource: own})
	sorted := cmpopts.SortSlices(func(a, b string) bool { return a < b })
	if diff := cmp.Diff(pseries, r.Virt.EmulatedMachines, sorted); diff != "" {
		t.Errorf("machines (-want +got):\n%s", diff)
	}
	var guests []arch.Arch
	for _, g := range r.Virt.Guests {
		guests = append(guests, g.Arch)
		for _, m := range g.Machines {
			if !strings.HasPrefix(m, "pseries") {
				t.Errorf("guest %s offers %s", g.Arch, m)
			}
		}
	}
	if diff := cmp.Diff([]arch.Arch{arch.PPC64, arch.PPC64LE}, guests); diff != "" {
		t.Errorf("guests (-want +got):\n%s", diff)
	}
	// The profile's own documents say the same (caps --profile).
	r2 := collect(t, Options{Profile: "s822l-power8e"}).Report
	if diff := cmp.Diff(r.Virt.EmulatedMachines, r2.Virt.EmulatedMachines, sorted); diff != "" {
		t.Errorf("caps --profile and the profile on a daemon differ (-daemon +profile):\n%s", diff)
	}
	// A real host that is itself (x86_64 under TCG) keeps every machine.
	x := Build(Input{Host: profileHost(t, "x86-2s-intel"), Libvirt: lv, FakeKVM: true})
	if n := len(x.Virt.EmulatedMachines); n != len(lv.Capabilities.MachineNames(arch.X86_64, "qemu")) {
		t.Errorf("the x86_64 host reports %d machines", n)
	}
}
