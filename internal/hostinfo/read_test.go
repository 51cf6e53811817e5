package hostinfo

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
	"polyvirt/internal/cpuset"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var (
	numberArray = regexp.MustCompile(`\[\s*-?\d+(,\s*-?\d+)*\s*\]`)
	spaces      = regexp.MustCompile(`\s+`)
)

// summary is the part of a Host each fixture states explicitly (the golden
// file then pins everything else).
type summary struct {
	Arch       arch.Arch
	ArchSource string
	Model      string
	Vendor     string
	MHz        string
	PVR        string
	Platform   string
	Online     string
	Total      int
	Threads    int
	Cores      int
	Sockets    int
	NodeInfo   string
	NUMA       int
	Identity   Identity
	Firmware   int
	KVM        bool
}

func summarize(h *Host) summary {
	return summary{
		Arch: h.Arch, ArchSource: h.ArchSource, Model: h.CPU.Model, Vendor: h.CPU.Vendor, MHz: h.CPU.MHz,
		PVR: h.CPU.PVR, Platform: h.CPU.Platform, Online: h.Topology.Online.String(), Total: h.Topology.TotalCPUs,
		Threads: h.Topology.ThreadsPerCore, Cores: h.Topology.CoresPerSocket, Sockets: h.Topology.Sockets,
		NodeInfo: nodeInfoLine(h.NodeInfo), NUMA: len(h.NUMA), Identity: h.Identity, Firmware: len(h.Firmware),
		KVM: h.KVMDevice,
	}
}

func TestReadFixtures(t *testing.T) {
	cases := []struct {
		name string
		fsys fstest.MapFS
		opts Options
		want summary
	}{
		{
			name: "powernv-power8-smt-off",
			fsys: fixturePowerNVP8(),
			want: summary{
				Arch: arch.PPC64LE, ArchSource: "cpuinfo", Model: "POWER8E (raw), altivec supported", Vendor: "IBM",
				MHz: "3690.000000", PVR: "004b0201", Platform: "PowerNV",
				Online: "0,8,16,24,32,40", Total: 48, Threads: 1, Cores: 3, Sockets: 2,
				// libvirt counts the offline secondary threads of the
				// online primaries (8 threads per subcore on POWER8).
				NodeInfo: "CPUs: 48/48, MHz: 3690, Nodes: 2, Sockets: 1, Cores: 3, Threads: 8", NUMA: 2,
				Identity: Identity{Manufacturer: "IBM", ProductName: "IBM Power System S822L", Version: "PowerNV 8247-22L",
					SerialNumber: "2148A7A", UUID: "2148A7A", Family: "PowerNV", TypeModel: "8247-22L", Source: "device-tree"},
				Firmware: 5, KVM: true,
			},
		},
		{
			name: "powernv-power9",
			fsys: fixturePowerNVP9(),
			want: summary{
				Arch: arch.PPC64LE, ArchSource: "cpuinfo", Model: "POWER9, altivec supported", Vendor: "IBM",
				MHz: "3800.000000", PVR: "004e1202", Platform: "PowerNV",
				Online: "0-15", Total: 16, Threads: 4, Cores: 2, Sockets: 2,
				NodeInfo: "CPUs: 16/16, MHz: 3800, Nodes: 2, Sockets: 1, Cores: 2, Threads: 4", NUMA: 2,
				Identity: Identity{Manufacturer: "IBM", ProductName: "IBM Power System AC922", Version: "PowerNV 8335-GTH",
					SerialNumber: "7813A8A", UUID: "7813A8A", Family: "PowerNV", TypeModel: "8335-GTH", Source: "device-tree"},
				Firmware: 3, KVM: true,
			},
		},
		{
			name: "pseries-guest",
			fsys: fixturePseriesGuest(),
			want: summary{
				Arch: arch.PPC64LE, ArchSource: "cpuinfo", Model: "POWER9 (architected), altivec supported", Vendor: "IBM",
				MHz: "2750.000000", PVR: "004e1202", Platform: "pSeries",
				Online: "0-3", Total: 4, Threads: 2, Cores: 2, Sockets: 1,
				NodeInfo: "CPUs: 4/4, MHz: 2750, Nodes: 1, Sockets: 1, Cores: 2, Threads: 2", NUMA: 1,
				Identity: Identity{ProductName: "IBM pSeries (emulated by qemu)", Version: "CHRP IBM pSeries (emulated by qemu)",
					UUID: "6f3e2c84-3b2a-4d6e-9a1f-2b7c5d8e9f01", Family: "pSeries", Source: "device-tree"},
			},
		},
		{
			name: "x86_64-dmi",
			fsys: fixtureX86DMI(),
			want: summary{
				Arch: arch.X86_64, ArchSource: "cpuinfo", Model: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", Vendor: "GenuineIntel",
				MHz: "2100.000", Online: "0-7", Total: 8, Threads: 2, Cores: 2, Sockets: 2,
				NodeInfo: "CPUs: 8/8, MHz: 2100, Nodes: 2, Sockets: 1, Cores: 2, Threads: 2", NUMA: 2,
				Identity: Identity{Manufacturer: "Dell Inc.", ProductName: "PowerEdge R740", SerialNumber: "7XYZ123",
					UUID: "4c4c4544-0058-5910-8031-b7c04f313233", Family: "PowerEdge", Source: "dmi"},
				Firmware: 1, KVM: true,
			},
		},
		{
			name: "x86_64-no-dmi-no-device-tree",
			fsys: fixtureX86NoDMI(),
			want: summary{
				Arch: arch.X86_64, ArchSource: "cpuinfo", Model: "AMD EPYC 7B13", Vendor: "AuthenticAMD",
				MHz: "2450.000", Online: "0-3", Total: 4, Threads: 1, Cores: 4, Sockets: 1,
				NodeInfo: "CPUs: 4/4, MHz: 2450, Nodes: 1, Sockets: 1, Cores: 4, Threads: 1",
				Identity: Identity{Source: "none"},
			},
		},
		{
			name: "aarch64-neoverse-n1",
			fsys: fixtureAArch64(),
			want: summary{
				Arch: arch.AArch64, ArchSource: "cpuinfo", Model: "Neoverse-N1", Vendor: "ARM", MHz: "50.00",
				Online: "0-3", Total: 4, Threads: 1, Cores: 4, Sockets: 1,
				NodeInfo: "CPUs: 4/4, MHz: 0, Nodes: 1, Sockets: 1, Cores: 4, Threads: 1", NUMA: 1,
				Identity: Identity{Manufacturer: "WIWYNN", ProductName: "Mt.Jade Server System B81.030Z1.0007",
					SerialNumber: "B8103000012", UUID: "b6f1c4a2-9d3e-11eb-8000-b4a9fc3d1e20", Family: "Mt.Jade", Source: "dmi"},
				Firmware: 1, KVM: true,
			},
		},
		{
			name: "s390x-lpar",
			fsys: fixtureS390(),
			want: summary{
				Arch: arch.S390X, ArchSource: "cpuinfo", Model: "8561", Vendor: "IBM/S390", MHz: "5200",
				Online: "0-4", Total: 6, Threads: 1, Cores: 3, Sockets: 2,
				// On s390x libvirt counts each CPU as a core: 3 in the
				// first socket, 2 online in the second (CPU 5 offline).
				NodeInfo: "CPUs: 5/6, MHz: 5200, Nodes: 1, Sockets: 2, Cores: 3, Threads: 1",
				Identity: Identity{Manufacturer: "IBM", ProductName: "8561", SerialNumber: "00000000000A1B2C",
					Family: "8561", TypeModel: "8561", Source: "sysinfo"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := Read(c.fsys, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, summarize(h)); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			if len(h.Problems) > 0 {
				t.Errorf("problems on a well-formed fixture: %v", h.Problems)
			}
			golden(t, filepath.Join("testdata", c.name+".golden.json"), h)
		})
	}
}

// golden compares v, as indented JSON, with the file; -update rewrites it.
func golden(t *testing.T, file string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// One line per array of numbers (CPU lists), to keep the files short.
	got = numberArray.ReplaceAllFunc(got, func(m []byte) []byte {
		return spaces.ReplaceAll(m, nil)
	})
	got = append(got, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", file, diff)
	}
}

func TestReadOptions(t *testing.T) {
	fsys := fixturePowerNVP8()
	cases := []struct {
		name     string
		opts     Options
		arch     arch.Arch
		source   string
		nodeinfo string
	}{
		{"derived", Options{}, arch.PPC64LE, "cpuinfo", "CPUs: 48/48, MHz: 3690, Nodes: 2, Sockets: 1, Cores: 3, Threads: 8"},
		// KVM reports split cores (4 subcores of 2 threads): 0,8,… are
		// still valid primaries; each counts 2 threads.
		{"kvm says 2", Options{ThreadsPerSubcore: 2}, arch.PPC64LE, "cpuinfo", "CPUs: 12/48, MHz: 3690, Nodes: 1, Sockets: 1, Cores: 48, Threads: 1"},
		// No HV KVM: offline threads count as offline, and libvirt's
		// sanity check gives up on the topology.
		{"kvm says none", Options{ThreadsPerSubcore: -1}, arch.PPC64LE, "cpuinfo", "CPUs: 6/48, MHz: 3690, Nodes: 1, Sockets: 1, Cores: 48, Threads: 1"},
		{"arch override", Options{Arch: arch.PPC64}, arch.PPC64, "option", "CPUs: 48/48, MHz: 3690, Nodes: 2, Sockets: 1, Cores: 3, Threads: 8"},
		// Read as x86_64, a POWER host has no subcores and no clock.
		{"wrong arch", Options{Arch: arch.X86_64}, arch.X86_64, "option", "CPUs: 6/48, MHz: 0, Nodes: 1, Sockets: 1, Cores: 48, Threads: 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := Read(fsys, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if h.Arch != c.arch || h.ArchSource != c.source {
				t.Errorf("arch %q from %q, want %q from %q", h.Arch, h.ArchSource, c.arch, c.source)
			}
			if got := nodeInfoLine(h.NodeInfo); got != c.nodeinfo {
				t.Errorf("nodeinfo\n got: %s\nwant: %s", got, c.nodeinfo)
			}
		})
	}
}

func TestTopologyTypes(t *testing.T) {
	h, err := Read(fixtureX86DMI(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []CPUType{{
		Model: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", Vendor: "GenuineIntel", Revision: "4",
		Flags: h.CPU.Flags, CPUs: cpuset.Of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
		ThreadsPerCore: 2, CoresPerSocket: 2, Sockets: 2,
	}}
	if diff := cmp.Diff(want, h.CPU.Types); diff != "" {
		t.Errorf("types (-want +got):\n%s", diff)
	}
	if got := h.Topology.Offline.String(); got != "" {
		t.Errorf("offline = %q, want none (possible but absent CPUs are not offline)", got)
	}
	s, err := Read(fixtureS390(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantTopo := Topology{
		TotalCPUs: 6, Online: cpuset.Of(0, 1, 2, 3, 4), Offline: cpuset.Of(5),
		ThreadsPerCore: 1, CoresPerSocket: 3, Sockets: 2, SocketsPerBook: 2, Books: 1, BooksPerDrawer: 1, Drawers: 1,
	}
	if diff := cmp.Diff(wantTopo, s.Topology); diff != "" {
		t.Errorf("s390x topology from sysinfo's CPU Topology SW (-want +got):\n%s", diff)
	}
}
