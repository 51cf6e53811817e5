package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/hoststats"
	"polyvirt/internal/pki"
)

// procFS is a host's /proc for the statistics sampler.
var procFS = fstest.MapFS{
	"proc/stat":    {Data: []byte("cpu  1000 0 500 8000 500 0 0 0 0 0\ncpu0 500 0 250 4000 250 0 0 0 0 0\ncpu1 500 0 250 4000 250 0 0 0 0 0\n")},
	"proc/meminfo": {Data: []byte("MemTotal:       16384000 kB\nMemFree:         8192000 kB\nMemAvailable:   12288000 kB\n")},
	"proc/loadavg": {Data: []byte("0.50 0.40 0.30 1/200 1234\n")},
}

// statsAgent is a unit agent with running VMs and a statistics sampler.
func statsAgent(t *testing.T, f *fakeConn, running int) (*Agent, []*agentapi.VM) {
	t.Helper()
	a := newTestAgent(t, f)
	a.stats = newStatsKeeper(hoststats.NewSampler(procFS))
	var vms []*agentapi.VM
	for i := 0; i < running; i++ {
		vms = append(vms, startVM(t, a, fmt.Sprintf("unit-%d", i)))
	}
	create(t, a, strings.Replace(unitVM, `"unit-ppc"`, `"unit-stopped"`, 1))
	return a, vms
}

// TestStatsOneBulkCall: a statistics round asks libvirt for the figures
// of all the running VMs in one call, and each has them.
func TestStatsOneBulkCall(t *testing.T) {
	f := newFakeConn()
	a, vms := statsAgent(t, f, 3)
	a.stats.sample(context.Background(), a)
	if n, d := f.bulk.Load(), f.bulkDomains.Load(); n != 1 || d != 3 {
		t.Errorf("%d calls for figures, the last for %d domains; want 1 for the 3 running VMs", n, d)
	}
	m, ok := a.stats.metricSample()
	if !ok || !m.HostOK || m.Host.CPUs != 2 || m.Host.MemTotal != 16384000*1024 || m.Host.BusySeconds != 15 || m.Host.TotalSeconds != 100 {
		t.Errorf("host: %+v (ok %v)", m.Host, ok)
	}
	full := map[string]bool{}
	for _, v := range m.VMs {
		full[v.Name] = v.Figures
	}
	for _, vm := range vms {
		if !full[vm.Name] {
			t.Errorf("VM %s has no figures: %+v", vm.Name, m.VMs)
		}
	}
	if f, ok := full["unit-stopped"]; !ok || f {
		t.Errorf("the stopped VM: listed %v, figures %v", ok, f)
	}
}

// TestStatsStuckQEMUDuringBulk: a QEMU that stops answering after its
// probe holds the bulk call: the round ends within the QEMU time-out with
// the states only, the other VMs' calls are not held up, and the next
// probe finds the VM NotResponding; the round after it has the others'
// figures.
func TestStatsStuckQEMUDuringBulk(t *testing.T) {
	f := newFakeConn()
	a, vms := statsAgent(t, f, 2)
	stuck, other := vms[0], vms[1]
	release := f.hangOn("stats")
	start := time.Now()
	a.stats.sample(context.Background(), a)
	if took := time.Since(start); took > 5*a.cfg.QEMUTimeout.Duration {
		t.Errorf("the round took %s with the bulk call held", took)
	}
	m, _ := a.stats.metricSample()
	for _, v := range m.VMs {
		if v.Figures {
			t.Errorf("VM %s has figures from a call that did not answer", v.Name)
		}
	}
	// The turns are back: an action on the other VM goes through.
	if _, err := a.Act(context.Background(), other.ID, "pause"); err != nil {
		t.Errorf("pause while the bulk call is held: %v", err)
	}
	// The stuck VM's QEMU does not answer; the held call ends.
	hold := f.hangOn("qemu:" + stuck.ID)
	defer hold()
	release()
	a.stats.sample(context.Background(), a)
	a.stats.sample(context.Background(), a)
	if r := a.health.notResponding(stuck.ID); r == "" {
		t.Error("the stuck VM is not NotResponding")
	}
	m, _ = a.stats.metricSample()
	for _, v := range m.VMs {
		if want := v.ID == other.ID; v.Figures != want && v.State != "shutoff" {
			t.Errorf("VM %s (%s): figures %v, want %v", v.Name, v.State, v.Figures, want)
		}
	}
}

// tlsFiles writes a CA, the agent's certificate and the agent's TLS
// settings; it returns the CA.
func tlsFiles(t *testing.T, a *Agent) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("unit CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("unit-power8", []string{"127.0.0.1"}, pki.Server, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"ca.pem": ca.CertPEM, "agent.pem": srv.CertPEM, "agent-key.pem": srv.KeyPEM} {
		if err := pki.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a.cfg.TLS = TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "agent.pem"), Key: filepath.Join(dir, "agent-key.pem")}
	return ca
}

// serve runs one of the agent's servers on a loopback port until the test
// ends; it returns the address.
func serve(t *testing.T, run func(ctx context.Context, ln net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// tlsClient is an HTTPS client with a certificate of ca (none when usage
// is negative).
func tlsClient(t *testing.T, ca *pki.CA, usage pki.Usage) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: mustPool(t, ca.CertPEM), MinVersion: tls.VersionTLS12}
	if usage >= 0 {
		c, err := ca.Issue("client", nil, usage, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func mustPool(t *testing.T, pem []byte) *x509.CertPool {
	t.Helper()
	p, err := pki.CertPool(pem)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// get asks an agent's server; it returns the status and the body.
func get(t *testing.T, c *http.Client, addr, path string) (int, string, error) {
	t.Helper()
	resp, err := c.Get("https://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestAgentMetricsAccess: GET /metrics on the agent's port answers a
// client certificate of its CA — the engine's, whose other requests go on
// as before, or a scrape certificate, refused everything else — and no
// client without one; the metrics listener serves GET /metrics alone. The
// metrics are the last statistics round: the host and each running VM's
// figures.
func TestAgentMetricsAccess(t *testing.T) {
	f := newFakeConn()
	a, vms := statsAgent(t, f, 1)
	ca := tlsFiles(t, a)
	a.stats.sample(context.Background(), a)
	apiAddr := serve(t, a.Serve)
	only := serve(t, a.ServeMetrics)
	engine, scrape, other := tlsClient(t, ca, pki.Client), tlsClient(t, ca, pki.Scrape), tlsClient(t, ca, -1)

	for _, c := range []struct {
		name   string
		client *http.Client
		addr   string
		path   string
		status int
		has    string
	}{
		{"engine, metrics", engine, apiAddr, "/metrics", 200, fmt.Sprintf(`polyvirt_vm_cpu_seconds_total{vm=%q,vm_id=%q} 1`, vms[0].Name, vms[0].ID)},
		{"engine, API", engine, apiAddr, "/v1/vms", 200, vms[0].ID},
		{"scrape, metrics", scrape, apiAddr, "/metrics", 200, `polyvirt_host_cpus 2`},
		{"scrape, VMs", scrape, apiAddr, "/v1/vms", 403, api.CodePermissionDenied},
		{"scrape, statistics", scrape, apiAddr, "/v1/stats", 403, api.CodePermissionDenied},
		{"scrape, metrics listener", scrape, only, "/metrics", 200, `polyvirt_agent_info{arch="ppc64le",fake_kvm="true",host_id="unit-power8"`},
		{"engine, metrics listener, API", engine, only, "/v1/vms", 404, api.CodeNotFound},
	} {
		st, body, err := get(t, c.client, c.addr, c.path)
		if err != nil || st != c.status || !strings.Contains(body, c.has) {
			t.Errorf("%s: %d %v; want %d with %q:\n%.2000s", c.name, st, err, c.status, c.has, body)
		}
		if st == 403 {
			var eb api.ErrorBody
			if json.Unmarshal([]byte(body), &eb) != nil || eb.Error.Code != api.CodePermissionDenied {
				t.Errorf("%s: not a JSON refusal: %s", c.name, body)
			}
		}
	}
	for _, addr := range []string{apiAddr, only} {
		if st, _, err := get(t, other, addr, "/metrics"); err == nil {
			t.Errorf("a client without a certificate got %d from %s", st, addr)
		}
	}
}
