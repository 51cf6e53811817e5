package profiles

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
	"polyvirt/internal/hostinfo"
	"polyvirt/internal/virtcaps"
)

// TestProfilesReadLikeTheMachines reads every profile through the same
// readers as a real host and checks the facts it was written from.
func TestProfilesReadLikeTheMachines(t *testing.T) {
	type facts struct {
		Arch                    arch.Arch
		Model, Platform, Vendor string
		Product, TypeModel      string
		Total, Online           int
		Threads, Cores, Sockets int
		NodeInfo                hostinfo.NodeInfo
		Nodes                   []int
		IdentitySource          string
		KVM                     bool
	}
	cases := map[string]facts{
		"s822l-power8e": {
			Arch: arch.PPC64LE, Model: "POWER8E (raw), altivec supported", Platform: "PowerNV", Vendor: "IBM",
			Product: "IBM Power System S822L", TypeModel: "8247-22L",
			Total: 160, Online: 20, Threads: 1, Cores: 5, Sockets: 4,
			// What libvirt says of a real S822L with SMT off (the corpus's
			// linux-ppc64-subcores1 expectation).
			NodeInfo:       hostinfo.NodeInfo{CPUs: 160, TotalCPUs: 160, MHz: 3690, Nodes: 4, Sockets: 1, Cores: 5, Threads: 8},
			Nodes:          []int{0, 1, 16, 17},
			IdentitySource: "device-tree", KVM: true,
		},
		"ac922-power9": {
			Arch: arch.PPC64LE, Model: "POWER9, altivec supported", Platform: "PowerNV", Vendor: "IBM",
			Product: "IBM Power System AC922", TypeModel: "8335-GTH",
			Total: 128, Online: 32, Threads: 1, Cores: 16, Sockets: 2,
			// KVM on POWER9 reports 1 thread per subcore: with SMT off
			// libvirt's figures do not multiply out and it falls back to
			// one node of 128 cores (libvirt's own behaviour).
			NodeInfo:       hostinfo.NodeInfo{CPUs: 32, TotalCPUs: 128, MHz: 3300, Nodes: 1, Sockets: 1, Cores: 128, Threads: 1},
			Nodes:          []int{0, 8},
			IdentitySource: "device-tree", KVM: true,
		},
		"x86-2s-intel": {
			Arch: arch.X86_64, Model: "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", Vendor: "GenuineIntel",
			Product: "PowerEdge R740",
			Total:   80, Online: 80, Threads: 2, Cores: 20, Sockets: 2,
			NodeInfo:       hostinfo.NodeInfo{CPUs: 80, TotalCPUs: 80, MHz: 2100, Nodes: 2, Sockets: 1, Cores: 20, Threads: 2},
			Nodes:          []int{0, 1},
			IdentitySource: "dmi", KVM: true,
		},
	}
	ps, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(cases) {
		t.Fatalf("%d profiles; the test knows %d", len(ps), len(cases))
	}
	for _, p := range ps {
		want, ok := cases[p.Name]
		if !ok {
			t.Errorf("profile %s has no expectations", p.Name)
			continue
		}
		h, err := hostinfo.Read(p.Root, hostinfo.Options{})
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		got := facts{
			Arch: h.Arch, Model: h.CPU.Model, Platform: h.CPU.Platform, Vendor: h.CPU.Vendor,
			Product: h.Identity.ProductName, TypeModel: h.Identity.TypeModel,
			Total: h.Topology.TotalCPUs, Online: len(h.Topology.Online),
			Threads: h.Topology.ThreadsPerCore, Cores: h.Topology.CoresPerSocket, Sockets: h.Topology.Sockets,
			NodeInfo: h.NodeInfo, IdentitySource: h.Identity.Source, KVM: h.KVMDevice,
		}
		for _, n := range h.NUMA {
			got.Nodes = append(got.Nodes, n.ID)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p.Name, diff)
		}
		if len(h.Problems) != 0 {
			t.Errorf("%s: problems %v", p.Name, h.Problems)
		}
		// The libvirt documents parse and agree with the hardware.
		c, err := virtcaps.ParseCapabilities(p.Capabilities)
		if err != nil {
			t.Fatalf("%s capabilities: %v", p.Name, err)
		}
		if c.HostArch != p.Arch || len(c.Cells) != len(want.Nodes) {
			t.Errorf("%s capabilities: arch %s, %d cells", p.Name, c.HostArch, len(c.Cells))
		}
		for a, doc := range p.DomainCapabilities {
			dc, err := virtcaps.ParseDomainCapabilities(doc)
			if err != nil || dc.Arch != a {
				t.Errorf("%s domcapabilities %s: %v (arch %s)", p.Name, a, err, dc.Arch)
			}
		}
	}
}

func TestGetByAlias(t *testing.T) {
	for alias, want := range map[string]string{"power8": "s822l-power8e", "S822L": "s822l-power8e", "power9": "ac922-power9", "x86_64": "x86-2s-intel"} {
		p, err := Get(alias)
		if err != nil || p.Name != want {
			t.Errorf("Get(%q) = %v, %v; want %s", alias, p, err, want)
		}
	}
	if _, err := Get("power11"); err == nil {
		t.Error("an unknown profile was found")
	}
}
