package archspec

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
)

func TestClusterArch(t *testing.T) {
	cases := []struct {
		in, want arch.Arch
		ok       bool
	}{
		{arch.PPC64LE, arch.PPC64, true},
		{arch.PPC64, arch.PPC64, true},
		{arch.X86_64, arch.X86_64, true},
		{arch.AArch64, arch.AArch64, true},
		{arch.S390X, arch.S390X, true},
		{arch.I686, arch.Unknown, false},
		{arch.Unknown, arch.Unknown, false},
	}
	for _, c := range cases {
		got, err := ClusterArch(c.in)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("ClusterArch(%q) = %q, %v; want %q (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestClusterGuestArches(t *testing.T) {
	got := map[arch.Arch][]arch.Arch{}
	for _, a := range []arch.Arch{arch.PPC64, arch.X86_64, arch.S390X, arch.AArch64, arch.PPC64LE} {
		got[a] = ClusterGuestArches(a)
	}
	want := map[arch.Arch][]arch.Arch{
		arch.PPC64:   {arch.PPC64, arch.PPC64LE},
		arch.X86_64:  {arch.I686, arch.X86_64},
		arch.S390X:   {arch.S390X},
		arch.AArch64: {arch.AArch64},
		// ppc64le is no cluster architecture.
		arch.PPC64LE: nil,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		cluster, guest arch.Arch
		want           bool
	}{
		{arch.PPC64, arch.PPC64LE, true},
		{arch.PPC64, arch.X86_64, false},
		{arch.X86_64, arch.I686, true},
		{arch.X86_64, arch.Unknown, false},
		{arch.Unknown, arch.X86_64, false},
	} {
		if got := ClusterRunsNatively(c.cluster, c.guest); got != c.want {
			t.Errorf("ClusterRunsNatively(%q, %q) = %v", c.cluster, c.guest, got)
		}
	}
}

// TestRunsMeanings checks the two meanings of "can this host run this
// architecture": placement asks RunsNatively, a definition checked against
// one host's report asks RunsAtAll.
func TestRunsMeanings(t *testing.T) {
	x86, ppc := mustSpec(t, arch.X86_64), mustSpec(t, arch.PPC64LE)
	cases := []struct {
		name            string
		host            *Spec
		guest           arch.Arch
		tcgOnly, offer  bool
		native, atAll   bool
		emulatedAsIsTCG bool
	}{
		{"own arch", ppc, arch.PPC64LE, false, true, true, true, false},
		{"other endianness of POWER", ppc, arch.PPC64, false, true, true, true, false},
		{"x86 guest on POWER with KVM", ppc, arch.X86_64, false, true, false, false, false},
		{"x86 guest on a TCG-only POWER that offers it", ppc, arch.X86_64, true, true, false, true, false},
		{"x86 guest on a TCG-only POWER that does not offer it", ppc, arch.X86_64, true, false, false, false, false},
		{"POWER guest on a TCG-only x86 that offers it", x86, arch.PPC64LE, true, true, false, true, true},
		{"i686 on x86", x86, arch.I686, false, false, true, true, false},
	}
	for _, c := range cases {
		if got := c.host.RunsNatively(c.guest); got != c.native {
			t.Errorf("%s: RunsNatively = %v", c.name, got)
		}
		if got := c.host.RunsAtAll(c.guest, c.tcgOnly, c.offer); got != c.atAll {
			t.Errorf("%s: RunsAtAll = %v", c.name, got)
		}
		if got := c.host.RunsEmulated(c.guest); got != c.emulatedAsIsTCG {
			t.Errorf("%s: RunsEmulated = %v", c.name, got)
		}
	}
}

func TestVendors(t *testing.T) {
	type v struct {
		name, marker string
		cluster      arch.Arch
		added, kvm   bool
	}
	var got []v
	for _, cv := range Vendors() {
		got = append(got, v{cv.Name, cv.Marker, cv.ClusterArch, cv.Added, cv.KVM})
	}
	want := []v{
		{"ARM", "asimd", arch.AArch64, false, false},
		{"IBM POWER", "powernv", arch.PPC64, true, false},
		{"IBM Z", "sie", arch.S390X, false, true},
		{"Intel", "vmx", arch.X86_64, false, true},
		{"AMD", "svm", arch.X86_64, false, true},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(v{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// ppc64le hosts share the ppc64 cluster's vendor group.
	if diff := cmp.Diff(mustSpec(t, arch.PPC64).Host.Vendors, mustSpec(t, arch.PPC64LE).Host.Vendors); diff != "" {
		t.Errorf("ppc64 and ppc64le vendors differ:\n%s", diff)
	}
}

func TestClusterHostArches(t *testing.T) {
	got := map[arch.Arch][]arch.Arch{}
	for _, a := range []arch.Arch{arch.PPC64, arch.X86_64, arch.PPC64LE} {
		got[a] = ClusterHostArches(a)
	}
	want := map[arch.Arch][]arch.Arch{
		arch.PPC64:   {arch.PPC64, arch.PPC64LE},
		arch.X86_64:  {arch.X86_64},
		arch.PPC64LE: nil,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ClusterHostArches (-want +got):\n%s", diff)
	}
}

// TestKVMMachines: a POWER host offers KVM guests the pseries machines
// only (QEMU's powernv, the embedded and Mac boards are TCG only); x86
// names no restriction.
func TestKVMMachines(t *testing.T) {
	qemuPPC := []string{"pseries-7.2", "pseries", "powernv9", "powernv", "mpc8544ds", "ppce500", "mac99", "g3beige",
		"40p", "bamboo", "ref405ep", "sam460ex", "virtex-ml507", "pseries-2.12", "pseries-2.12-sxxm", "pseriesx"}
	cases := []struct {
		a    arch.Arch
		in   []string
		want []string
	}{
		{arch.PPC64LE, qemuPPC, []string{"pseries-7.2", "pseries", "pseries-2.12", "pseries-2.12-sxxm"}},
		{arch.PPC64, qemuPPC, []string{"pseries-7.2", "pseries", "pseries-2.12", "pseries-2.12-sxxm"}},
		{arch.X86_64, []string{"pc", "q35", "isapc", "microvm"}, []string{"pc", "q35", "isapc", "microvm"}},
		{arch.AArch64, []string{"virt", "virt-7.2", "raspi3b", "sbsa-ref"}, []string{"virt", "virt-7.2"}},
		{arch.S390X, []string{"s390-ccw-virtio", "s390-ccw-virtio-7.2"}, []string{"s390-ccw-virtio", "s390-ccw-virtio-7.2"}},
		{arch.PPC64LE, nil, []string{}},
	}
	for _, c := range cases {
		s, err := For(c.a)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, s.KVMMachines(c.in)); diff != "" {
			t.Errorf("%s KVMMachines (-want +got):\n%s", c.a, diff)
		}
	}
}

// TestVendorOfCPU names the vendor group of a CPU that lacks its group's
// marker (KVM cannot run guests on it): an AMD machine is AMD.
func TestVendorOfCPU(t *testing.T) {
	cases := []struct {
		a            arch.Arch
		vendor, want string
	}{
		{arch.X86_64, "AuthenticAMD", "AMD"},
		{arch.X86_64, "GenuineIntel", "Intel"},
		{arch.X86_64, " GenuineIntel ", "Intel"},
		{arch.X86_64, "HygonGenuine", ""},
		{arch.X86_64, "", ""},
		{arch.S390X, "IBM/S390", "IBM Z"},
		{arch.PPC64LE, "IBM", ""},
	}
	for _, c := range cases {
		s, _ := For(c.a)
		v, ok := s.VendorOfCPU(c.vendor)
		if v.Name != c.want || ok != (c.want != "") {
			t.Errorf("%s VendorOfCPU(%q) = %q, %v; want %q", c.a, c.vendor, v.Name, ok, c.want)
		}
	}
}
