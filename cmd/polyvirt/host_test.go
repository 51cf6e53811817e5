package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"polyvirt/internal/api/agentapi"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPrintStats: host show prints the statistics as tables with their
// age (golden testdata/host-stats.txt; go test -update rewrites it).
func TestPrintStats(t *testing.T) {
	local := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = local })
	taken := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	s := agentapi.Stats{
		Host: agentapi.HostStats{Time: taken, CPUUsagePercent: 37.5, CPUs: 160, MemTotalMiB: 262144, MemFreeMiB: 200000, MemAvailableMiB: 250000,
			Load1: 1.5, Load5: 1.25, Load15: 1, VMsRunning: 2, VCPUsUsed: 3, MemoryUsedMiB: 1536},
		VMs: []agentapi.VMStats{
			{Name: "web1", State: agentapi.StateRunning, VCPUs: 1, CPUUsagePercent: 99.56, MemoryMiB: 512, MaxMemoryMiB: 512,
				Disks: []agentapi.DiskStats{}, NICs: []agentapi.NICStats{{Name: "vnet0", RxBytes: 3 << 20, TxBytes: 1 << 19}}},
			{Name: "debian-installer-ppc64el", State: agentapi.StateRunning, VCPUs: 2, CPUUsagePercent: 180, MemoryMiB: 1024,
				Disks: []agentapi.DiskStats{{Name: "sda", ReadBytes: 10 << 20, WriteBytes: 0}, {Name: "sdb", ReadBytes: 1 << 20}}, NICs: []agentapi.NICStats{}},
		},
	}
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := printStats(&b, raw, taken.Add(time.Second), taken.Add(2300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	// No VM; no sample time (an older agent): the engine's reading time.
	empty, _ := json.Marshal(agentapi.Stats{Host: agentapi.HostStats{CPUs: 4, MemTotalMiB: 8192}, VMs: []agentapi.VMStats{}})
	if err := printStats(&b, empty, taken, taken.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := printStats(&b, []byte(`{"host": 5}`), taken, taken); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	path := filepath.Join("testdata", "host-stats.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if strings.Contains(got, "{") {
		t.Errorf("raw JSON in the output:\n%s", got)
	}
}
