package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/hostpath"
)

func cpuType(t *testing.T, name string) cpucatalog.Type {
	t.Helper()
	ct, ok := cpucatalog.Lookup(name)
	if !ok {
		t.Fatalf("no CPU type %q", name)
	}
	return ct
}

// power8Host is an Up POWER8 host of cluster c1 with 64 GiB and 16 CPUs.
func power8Host(t *testing.T, name string) Host {
	return Host{ID: "id-" + name, Name: name, ClusterID: "c1", Up: true, Status: "Up", Arch: arch.PPC64LE,
		CPUType: cpuType(t, "IBM POWER8"), Machines: []string{"pseries", "pseries-7.2"}, MemoryMiB: 65536, CPUs: 16}
}

func power8VM() VM {
	return VM{ID: "vm1", Name: "web", ClusterID: "c1", Arch: arch.PPC64LE, Machine: "pseries-7.2", MemoryMiB: 4096, VCPUs: 2}
}

func TestFilters(t *testing.T) {
	p8 := cpuType(t, "IBM POWER8")
	p9 := cpuType(t, "IBM POWER9")
	cluster := Cluster{ID: "c1", Name: "power", CPUType: p8}
	policy := DefaultPolicy()
	tests := []struct {
		name    string
		host    func(h *Host)
		vm      func(v *VM)
		cluster func(c *Cluster)
		// migration, when set, makes the request a migration's (from the
		// host "src" of a POWER8-level VM on 64 KiB pages, at most 2
		// incoming) and changes it.
		migration func(m *Migration)
		exclude   bool
		// excludeReason is the request's ExcludeReason.
		excludeReason string
		// want lists the codes of the failing filters ("" entries: fits).
		want []string
		// msg is a part of the first reason's message.
		msg string
	}{
		{name: "fits", want: nil},
		{name: "not up", host: func(h *Host) { h.Up, h.Status = false, "NonResponsive" }, want: []string{api.CodeHostNotUp},
			msg: "The host h did not satisfy internal filter Status because it is NonResponsive, not Up."},
		{name: "maintenance", host: func(h *Host) { h.Up, h.Status = false, "Maintenance" }, want: []string{api.CodeHostNotUp}, msg: "it is Maintenance"},
		{name: "other cluster", host: func(h *Host) { h.ClusterID = "c2" }, want: []string{api.CodeHostNotInVMCluster},
			msg: "it is not in the VM's cluster power"},
		{name: "excluded", exclude: true, want: []string{api.CodeHostExcluded}, msg: "restarted away from it"},
		{name: "excluded by a rollout", exclude: true, excludeReason: "the firmware rollout takes it out of service", want: []string{api.CodeHostExcluded},
			msg: "filter Exclude because the firmware rollout takes it out of service."},
		{name: "pinned elsewhere", vm: func(v *VM) { v.PinnedHostID = "id-other" }, want: []string{api.CodeHostNotPinned},
			msg: "filter PinToHost because the VM is pinned to another host"},
		{name: "pinned here", vm: func(v *VM) { v.PinnedHostID = "id-h" }, want: nil},
		{name: "x86 host", host: func(h *Host) { h.Arch = arch.X86_64; h.CPUType = cpuType(t, "Intel Haswell Family") },
			want: []string{api.CodeHostArch, api.CodeLowCPULevel}, msg: "it has architecture x86_64 and cannot run a ppc64le VM"},
		{name: "big-endian host, little-endian VM", host: func(h *Host) { h.Arch = arch.PPC64 }, want: []string{api.CodeHostArch}},
		{name: "big-endian VM on a little-endian host", vm: func(v *VM) { v.Arch = arch.PPC64 }, want: nil},
		{name: "unknown host arch", host: func(h *Host) { h.Arch = "" }, want: []string{api.CodeHostArch}, msg: "architecture unknown"},
		{name: "cpu level too low", cluster: func(c *Cluster) { c.CPUType = p9 }, want: []string{api.CodeLowCPULevel},
			msg: "its CPU level 1 (IBM POWER8) is lower than the cluster's 2 (IBM POWER9)"},
		{name: "cpu level higher", host: func(h *Host) { h.CPUType = p9 }, want: nil},
		{name: "cpu type unknown", host: func(h *Host) { h.CPUType = cpucatalog.Type{} }, want: []string{api.CodeLowCPULevel},
			msg: "its CPU type is not known or not of the IBM POWER group"},
		{name: "cluster cpu not set", cluster: func(c *Cluster) { c.CPUType = cpucatalog.Type{} }, host: func(h *Host) { h.CPUType = cpucatalog.Type{} }, want: nil},
		{name: "paths the host allows", host: func(h *Host) { p := hostpath.Default(); h.Paths = &p },
			vm: func(v *VM) {
				v.Paths = []hostpath.Ref{{Field: "kernel.path", Path: hostpath.DebianInstallerDir + "/12/ppc64el/vmlinux", Use: hostpath.Kernel}}
			}, want: nil},
		{name: "a path the host does not allow", host: func(h *Host) { p := hostpath.Default(); h.Paths = &p },
			vm: func(v *VM) {
				v.Paths = []hostpath.Ref{{Field: "disks[0].source", Path: "/srv/images/a.img", Use: hostpath.Disk}}
			}, want: []string{api.CodePathNotAllowed},
			msg: `filter Host-Paths because its path policy does not allow the VM's disks[0].source "/srv/images/a.img" (allowed: /var/lib/polyvirt/images)`},
		{name: "a host without a policy", vm: func(v *VM) {
			v.Paths = []hostpath.Ref{{Field: "disks[0].source", Path: "/srv/images/a.img", Use: hostpath.Disk}}
		}, want: nil},
		{name: "machine missing", vm: func(v *VM) { v.Machine = "pseries-9.2" }, want: []string{api.CodeHostMachine},
			msg: "it does not offer the VM's emulated machine pseries-9.2"},
		{name: "memory", vm: func(v *VM) { v.MemoryMiB = 65536 }, want: []string{api.CodeNotEnoughMemory},
			msg: "its available memory is too low (65280 MiB) to run the VM (65536 MiB)"},
		{name: "memory committed", host: func(h *Host) { h.CommittedMemoryMiB = 62000 }, want: []string{api.CodeNotEnoughMemory},
			msg: "(3280 MiB) to run the VM (4096 MiB)"},
		{name: "memory exactly fits", host: func(h *Host) { h.CommittedMemoryMiB = 65536 - 256 - 4096 }, want: nil},
		{name: "overcommitted beyond", host: func(h *Host) { h.CommittedMemoryMiB = 70000 }, want: []string{api.CodeNotEnoughMemory}, msg: "(0 MiB)"},
		{name: "vcpus", vm: func(v *VM) { v.VCPUs = 65 }, want: []string{api.CodeNotEnoughCPUs},
			msg: "it does not have enough CPUs to run the VM (65 vCPUs; 64 of its 64 free: 16 online CPUs × 4)"},
		{name: "vcpus committed", host: func(h *Host) { h.CommittedVCPUs = 63 }, want: []string{api.CodeNotEnoughCPUs}},
		{name: "capacity unknown", host: func(h *Host) { h.MemoryMiB, h.CPUs = 0, 0 }, want: []string{api.CodeHostCapacityUnknown},
			msg: "its memory and CPUs are not known yet"},
		{name: "a migration's destination", migration: func(*Migration) {}, want: nil},
		{name: "migration to the source", migration: func(m *Migration) { m.SourceHostID = "id-h" }, want: []string{api.CodeMigrationSourceHost},
			msg: "The host h did not satisfy internal filter Migration-Source because the VM runs there."},
		{name: "POWER8-level VM to a POWER9 host of a POWER8 cluster", host: func(h *Host) { h.CPUType = p9 }, migration: func(*Migration) {}, want: nil},
		{name: "POWER9-level VM to a POWER8 host", migration: func(m *Migration) { m.CPUType = p9 }, want: []string{api.CodeVMCPULevelAboveHost},
			msg: "filter VM-CPU-Level because its CPU level 1 (IBM POWER8) is lower than the running VM's 2 (IBM POWER9)"},
		{name: "POWER9-level VM to a POWER9 host", host: func(h *Host) { h.CPUType = p9 }, migration: func(m *Migration) { m.CPUType = p9 }, want: nil},
		{name: "page size not offered", host: func(h *Host) { h.PageSizesKiB = []int{4, 2048} }, migration: func(*Migration) {},
			want: []string{api.CodeHostPageSizeUnavailable}, msg: "it backs memory with pages of 4 KiB and 2 MiB, not the VM's 64 KiB"},
		{name: "huge pages offered", host: func(h *Host) { h.PageSizesKiB = []int{64, 16384} }, migration: func(m *Migration) { m.PageKiB = 16384 }, want: nil},
		{name: "incoming limit", host: func(h *Host) { h.IncomingMigrations = 2 }, migration: func(*Migration) {},
			want: []string{api.CodeMigrationIncomingLimit}, msg: "it takes 2 migrations already, the most its cluster allows at once"},
		{name: "incoming below the limit", host: func(h *Host) { h.IncomingMigrations = 1 }, migration: func(*Migration) {}, want: nil},
		{name: "exact machine of the running VM missing", host: func(h *Host) { h.Machines = []string{"pseries", "pseries-7.1"} },
			migration: func(*Migration) {}, want: []string{api.CodeHostMachine}, msg: "the VM's emulated machine pseries-7.2"},
		{name: "everything wrong", host: func(h *Host) {
			h.Up, h.Status, h.ClusterID, h.Machines, h.CPUs = false, "Maintenance", "c2", nil, 1
		}, vm: func(v *VM) { v.PinnedHostID = "x"; v.MemoryMiB = 1 << 20 }, cluster: func(c *Cluster) { c.CPUType = p9 }, exclude: true,
			want: []string{api.CodeHostNotUp, api.CodeHostNotInVMCluster, api.CodeHostExcluded, api.CodeHostNotPinned, api.CodeLowCPULevel, api.CodeHostMachine, api.CodeNotEnoughMemory}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := power8Host(t, "h")
			vm := power8VM()
			c := cluster
			if tc.host != nil {
				tc.host(&h)
			}
			if tc.vm != nil {
				tc.vm(&vm)
			}
			if tc.cluster != nil {
				tc.cluster(&c)
			}
			req := Request{VM: vm, Cluster: c}
			if tc.migration != nil {
				h.PageSizesKiB = append([]int{64, 16384}, h.PageSizesKiB...)
				if tc.host != nil {
					tc.host(&h)
				}
				m := Migration{SourceHostID: "id-src", CPUType: p8, PageKiB: 64, MaxIncoming: 2}
				tc.migration(&m)
				req.Migration = &m
			}
			if tc.exclude {
				req.Exclude = []string{h.ID}
				req.ExcludeReason = tc.excludeReason
			}
			d, err := Schedule(req, []Host{h}, policy)
			var codes []string
			var first string
			var nh *NoHostError
			switch {
			case err == nil:
				if d.HostName != "h" || d.Index != 0 || d.Candidates != 1 {
					t.Errorf("decision %+v", d)
				}
			case errors.As(err, &nh):
				if nh.Code() != api.CodeSchedulingFilteredOut || len(nh.Verdicts) != 1 || nh.Verdicts[0].Fits {
					t.Fatalf("error %+v", nh)
				}
				for _, r := range nh.Verdicts[0].Reasons {
					codes = append(codes, r.Code)
				}
				first = nh.Verdicts[0].Reasons[0].Message
			default:
				t.Fatalf("error %v", err)
			}
			if diff := cmp.Diff(tc.want, codes); diff != "" {
				t.Errorf("codes (-want +got):\n%s", diff)
			}
			if !strings.Contains(first, tc.msg) {
				t.Errorf("first reason %q lacks %q", first, tc.msg)
			}
		})
	}
}

func TestBalance(t *testing.T) {
	p8 := cpuType(t, "IBM POWER8")
	mk := func(name string, memMiB int64, cpus int, committedMiB int64, running int) Host {
		h := power8Host(t, name)
		h.MemoryMiB, h.CPUs, h.CommittedMemoryMiB, h.RunningVMs = memMiB, cpus, committedMiB, running
		return h
	}
	tests := []struct {
		name  string
		hosts []Host
		want  string
	}{
		{"lowest committed memory ratio", []Host{
			mk("a", 65536, 16, 32768, 1), mk("b", 65536, 16, 8192, 3), mk("c", 65536, 16, 16384, 1)}, "b"},
		{"ratio, not absolute free memory", []Host{
			mk("big", 262144+256, 16, 131072, 1), mk("small", 16384+256, 16, 4096, 1)}, "small"},
		{"ties: fewer running VMs", []Host{
			mk("a", 65536, 16, 0, 2), mk("b", 65536, 16, 0, 1)}, "b"},
		{"ties: lower vCPU ratio", []Host{
			mk("a", 65536, 4, 0, 0), mk("b", 65536, 16, 0, 0)}, "b"},
		{"ties: name", []Host{
			mk("b", 65536, 16, 0, 0), mk("a", 65536, 16, 0, 0)}, "a"},
		{"the one that fits", []Host{
			mk("full", 65536, 16, 65000, 0), mk("busy", 65536, 16, 60000, 9)}, "busy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Schedule(Request{VM: power8VM(), Cluster: Cluster{ID: "c1", Name: "power", CPUType: p8}}, tc.hosts, DefaultPolicy())
			if err != nil {
				t.Fatal(err)
			}
			if d.HostName != tc.want {
				t.Errorf("chose %s, want %s (%+v)", d.HostName, tc.want, NewFleet(tc.hosts, DefaultPolicy()).Explain(Request{VM: power8VM(), Cluster: Cluster{ID: "c1", Name: "power", CPUType: p8}}))
			}
		})
	}
}

func TestSpreadWithPlace(t *testing.T) {
	hosts := []Host{power8Host(t, "a"), power8Host(t, "b"), power8Host(t, "c")}
	f := NewFleet(hosts, DefaultPolicy())
	count := map[string]int{}
	vm := power8VM()
	req := Request{VM: vm, Cluster: Cluster{ID: "c1", Name: "power", CPUType: cpuType(t, "IBM POWER8")}}
	for i := 0; i < 15; i++ {
		d, err := f.Schedule(req)
		if err != nil {
			t.Fatalf("vm %d: %v", i, err)
		}
		f.Place(d.Index, vm)
		count[d.HostName]++
	}
	if diff := cmp.Diff(map[string]int{"a": 5, "b": 5, "c": 5}, count); diff != "" {
		t.Errorf("spread (-want +got):\n%s", diff)
	}
	// Each host takes 15 VMs of 4 GiB (65280 MiB for VMs), 45 in all.
	for i := 15; i < 45; i++ {
		d, err := f.Schedule(req)
		if err != nil {
			t.Fatalf("vm %d: %v", i, err)
		}
		f.Place(d.Index, vm)
	}
	_, err := f.Schedule(req)
	var nh *NoHostError
	if !errors.As(err, &nh) || len(nh.Verdicts) != 3 {
		t.Fatalf("the 46th VM: %v", err)
	}
	for _, v := range nh.Verdicts {
		if v.Fits || v.Reasons[0].Code != api.CodeNotEnoughMemory || !strings.Contains(v.Reasons[0].Message, "(3840 MiB)") {
			t.Errorf("verdict %+v", v)
		}
	}
	if msg := nh.Error(); !strings.HasPrefix(msg, "Cannot run VM web. There is no host that satisfies current scheduling constraints: The host a did not satisfy internal filter Memory") {
		t.Errorf("message %q", msg)
	}
}

func TestNoHosts(t *testing.T) {
	_, err := Schedule(Request{VM: power8VM(), Cluster: Cluster{ID: "c1", Name: "power"}}, nil, DefaultPolicy())
	var nh *NoHostError
	if !errors.As(err, &nh) || nh.Code() != api.CodeSchedulingNoHosts || nh.Error() != "Cannot run VM web: cluster power has no hosts." {
		t.Errorf("%v", err)
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		p          Policy
		mem, cpus  int64
		wantMem    int64
		wantVCPUs  int
		policyName string
	}{
		{DefaultPolicy(), 65536, 16, 65280, 64, "default"},
		{Policy{}, 65536, 16, 65536, 64, "zero: defaults but no reserve"},
		{Policy{MemoryOvercommitPercent: 150, ReservedMemoryMiB: 1024, VCPUsPerCPU: 1}, 65536, 16, 96768, 16, "overcommit"},
		{DefaultPolicy(), 100, 0, 0, 0, "tiny host"},
	}
	for _, tc := range tests {
		got := [2]int64{tc.p.MemoryCapacityMiB(tc.mem), int64(tc.p.VCPUCapacity(int(tc.cpus)))}
		if diff := cmp.Diff([2]int64{tc.wantMem, int64(tc.wantVCPUs)}, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.policyName, diff)
		}
	}
}

// benchFleet is 1,000 POWER hosts of one cluster carrying 10,000 VMs.
func benchFleet(b *testing.B) ([]Host, Request) {
	p8, _ := cpucatalog.Lookup("IBM POWER8")
	p9, _ := cpucatalog.Lookup("IBM POWER9")
	machines := []string{"pseries"}
	for v := 2; v <= 9; v++ {
		for m := 0; m <= 2; m++ {
			machines = append(machines, fmt.Sprintf("pseries-%d.%d", v, m))
		}
	}
	hosts := make([]Host, 1000)
	for i := range hosts {
		ct := p8
		if i%2 == 0 {
			ct = p9
		}
		hosts[i] = Host{ID: fmt.Sprintf("h%04d", i), Name: fmt.Sprintf("host-%04d", i), ClusterID: "c1", Up: i%50 != 0,
			Status: "Up", Arch: arch.PPC64LE, CPUType: ct, Machines: machines, MemoryMiB: 262144, CPUs: 160}
	}
	// 10,000 VMs placed round-robin, 1 to 16 GiB, 1 to 8 vCPUs.
	for i := 0; i < 10000; i++ {
		h := &hosts[i%len(hosts)]
		h.CommittedMemoryMiB += int64(1+i%16) * 1024
		h.CommittedVCPUs += 1 + i%8
		h.RunningVMs++
	}
	req := Request{VM: VM{ID: "new", Name: "new", ClusterID: "c1", Arch: arch.PPC64LE, Machine: "pseries-7.2", MemoryMiB: 4096, VCPUs: 2},
		Cluster: Cluster{ID: "c1", Name: "power", CPUType: p8}}
	return hosts, req
}

// BenchmarkSchedule is one decision among 1,000 hosts with 10,000 VMs
// placed, the fleet prepared once (the machine sets built).
func BenchmarkSchedule(b *testing.B) {
	hosts, req := benchFleet(b)
	f := NewFleet(hosts, DefaultPolicy())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Schedule(req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkScheduleCold includes preparing the fleet from the host list,
// as the engine does for each start.
func BenchmarkScheduleCold(b *testing.B) {
	hosts, req := benchFleet(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Schedule(req, hosts, DefaultPolicy()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkPlace10000 places 10,000 VMs one after the other on 1,000 empty
// hosts (each decision sees the previous placements).
func BenchmarkPlace10000(b *testing.B) {
	hosts, req := benchFleet(b)
	for i := range hosts {
		hosts[i].CommittedMemoryMiB, hosts[i].CommittedVCPUs, hosts[i].RunningVMs = 0, 0, 0
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := NewFleet(hosts, DefaultPolicy())
		for j := 0; j < 10000; j++ {
			d, err := f.Schedule(req)
			if err != nil {
				b.Fatal(err)
			}
			f.Place(d.Index, req.VM)
		}
	}
	b.ReportMetric(float64(b.N)*10000/b.Elapsed().Seconds(), "decisions/s")
}
