package metrics

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// polyvirtText is the text exposition of a registry's polyvirt_ metrics
// (not Go's and the process's, which vary).
func polyvirtText(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), namespace+"_") {
			names = append(names, mf.GetName())
		}
	}
	b, err := testutil.GatherAndFormat(g, expfmt.TypeTextPlain, names...)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got; go test ./internal/metrics -update rewrites it):\n%s", name, diff)
	}
}

// TestEngineMetrics: what the engine measured and what its source counts,
// as Prometheus reads them; the series of the fixed outcomes exist at 0.
func TestEngineMetrics(t *testing.T) {
	src := func(ctx context.Context) (Snapshot, error) {
		return Snapshot{Leader: true,
			Hosts: []Count{{Cluster: "power", Arch: "ppc64le", Status: "Up", N: 2}, {Cluster: "power", Status: "Installing", N: 1},
				{Cluster: "x86", Arch: "x86_64", Status: "NonResponsive", N: 1}},
			VMs: []Count{{Cluster: "power", Arch: "ppc64le", Status: "Up", N: 3}, {Cluster: "x86", Arch: "x86_64", Status: "Down", N: 1}}}, nil
	}
	m := NewEngine(EngineInfo{Name: "engine-1", Version: "1.2.3", Backend: "sqlite"}, src)
	ms := time.Millisecond
	m.APIRequest("GET", "/api/v1/vms/{vm}", 200, 3*ms, false)
	m.APIRequest("GET", "/api/v1/vms/{vm}", 404, 1*ms, false)
	m.APIRequest("GET", "/api/v1/vms/{vm}/console", 0, time.Hour, true)
	m.DBCall("GetVM", 200*time.Microsecond, nil)
	m.DBCall("GetVM", 2*ms, errors.New("not found"))
	m.AgentPoll("stats", 4*ms, nil)
	m.AgentPoll("stats", 5*time.Second, errors.New("timeout"))
	m.AgentPoll("capabilities", 30*ms, nil)
	m.StatsAge(2100 * ms)
	m.Scheduled("placed", 12*ms)
	m.Migration("succeeded")
	m.Firmware("flash", "refused")
	golden(t, "engine.txt", polyvirtText(t, m.Registry()))
}

// TestEngineInventoryFails: a source that fails says so
// (polyvirt_engine_inventory_up 0) and the scrape still answers.
func TestEngineInventoryFails(t *testing.T) {
	m := NewEngine(EngineInfo{Name: "e", Version: "dev", Backend: "postgres"}, func(ctx context.Context) (Snapshot, error) {
		return Snapshot{}, errors.New("database down")
	})
	want := `# HELP polyvirt_engine_inventory_up 1 when the hosts and VMs could be counted for this scrape, 0 when the database failed (polyvirt_hosts and polyvirt_vms are then missing).
# TYPE polyvirt_engine_inventory_up gauge
polyvirt_engine_inventory_up 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "polyvirt_engine_inventory_up", "polyvirt_hosts"); err != nil {
		t.Error(err)
	}
}

// TestAgentMetrics: an agent's statistics round as Prometheus reads it:
// the host, a running VM with its figures (disks, interfaces, balloon),
// a VM whose QEMU did not answer (its state only), a stopped VM.
func TestAgentMetrics(t *testing.T) {
	const mib = 1 << 20
	s := AgentSample{Time: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), Took: 40 * time.Millisecond, HostOK: true,
		Host: HostSample{CPUs: 160, BusySeconds: 1234.5, TotalSeconds: 99999.5, UsageRatio: 0.25, MemTotal: 256 << 30, MemFree: 100 << 30,
			MemAvailable: 200 << 30, Load1: 1.5, Load5: 1.25, Load15: 1, VMsRunning: 2, VCPUsUsed: 6, MemoryUsed: 3072 * mib},
		VMs: []VMSample{
			{ID: "3f0c", Name: "db", State: "running", Figures: true, VCPUs: 4, CPUSeconds: 812.25, Memory: 2048 * mib, MaxMemory: 4096 * mib,
				RSS: 1900 * mib, Available: 2000 * mib, Usable: 1500 * mib, Unused: 900 * mib, SwapIn: 0, SwapOut: 4096,
				Disks: []DiskSample{{Name: "vda", ReadBytes: 1 << 30, WriteBytes: 1 << 20, ReadOps: 1000, WriteOps: 10}},
				NICs:  []NICSample{{Name: "vnet3", RxBytes: 5000, TxBytes: 7000, RxPkts: 50, TxPkts: 70}}},
			{ID: "77aa", Name: "stuck", State: "running", VCPUs: 2},
			{ID: "9b12", Name: "old", State: "shutoff"},
		}}
	m := NewAgent(AgentInfo{HostID: "power8-a", Arch: "ppc64le", Version: "1.2.3", FakeKVM: true},
		func() (AgentSample, bool) { return s, true }, func() bool { return true })
	golden(t, "agent.txt", polyvirtText(t, m.Registry()))

	// Before the first round: the identity and libvirt only.
	empty := NewAgent(AgentInfo{HostID: "h", Arch: "x86_64", Version: "dev"}, func() (AgentSample, bool) { return AgentSample{}, false },
		func() bool { return false })
	got := polyvirtText(t, empty.Registry())
	for _, want := range []string{`polyvirt_agent_info{arch="x86_64",fake_kvm="false",host_id="h",version="dev"} 1`, "polyvirt_agent_libvirt_connected 0"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "polyvirt_host_") || strings.Contains(got, "polyvirt_vm_") {
		t.Errorf("figures before the first round:\n%s", got)
	}
}

// TestStatusRecorder: the status written, 200 when the handler only
// wrote a body or nothing; the writer underneath is reachable (websocket
// upgrades, flushes).
func TestStatusRecorder(t *testing.T) {
	for _, c := range []struct {
		name string
		h    func(w http.ResponseWriter)
		want int
	}{
		{"nothing", func(w http.ResponseWriter) {}, 200},
		{"a body", func(w http.ResponseWriter) { w.Write([]byte("x")) }, 200},
		{"a status", func(w http.ResponseWriter) { w.WriteHeader(404); w.WriteHeader(500) }, 404},
		{"a flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush(); w.WriteHeader(500) }, 200},
	} {
		rw := httptest.NewRecorder()
		r := NewStatusRecorder(rw)
		c.h(r)
		if r.Status() != c.want {
			t.Errorf("%s: status %d, want %d", c.name, r.Status(), c.want)
		}
		if http.ResponseWriter(rw) != r.Unwrap() {
			t.Errorf("%s: Unwrap is not the writer underneath", c.name)
		}
	}
}
