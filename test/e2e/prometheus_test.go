package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// requirePrometheus returns Debian's prometheus binary, or fails or skips.
func requirePrometheus(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("prometheus")
	if err != nil {
		missing(t, "Prometheus (Debian's prometheus package)")
	}
	return p
}

// promQuery is an instant query through Prometheus's HTTP API: the
// vector's samples (labels and value).
type promSample struct {
	Labels map[string]string
	Value  float64
}

func promQuery(base, query string) ([]promSample, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", query, err, b)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", query, r.Error)
	}
	var out []promSample
	for _, x := range r.Data.Result {
		s, _ := x.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v", query, x.Value)
		}
		out = append(out, promSample{Labels: x.Metric, Value: v})
	}
	return out, nil
}

// waitQuery repeats a query until ok accepts its answer.
func waitQuery(t *testing.T, base, query string, within time.Duration, ok func([]promSample) bool) []promSample {
	t.Helper()
	deadline := time.Now().Add(within)
	var got []promSample
	var err error
	for time.Now().Before(deadline) {
		got, err = promQuery(base, query)
		if err == nil && ok(got) {
			return got
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("Prometheus: %s did not give the expected answer within %s: %+v (%v)", query, within, got, err)
	return nil
}

// TestPrometheusScrapesTheLab runs `polyvirt up` and a real Prometheus
// (Debian's) with the configuration of docs/prometheus/polyvirt.yml: a
// token of the metrics role for the engine and its HTTP service discovery,
// a scrape certificate for the agents. Through Prometheus's HTTP API, the
// lab's hosts are Up by architecture (the engine's count and the agents'
// scrapes), a running VM's CPU time grows, and every query of the Grafana
// dashboard (docs/grafana/polyvirt-dashboard.json) is valid PromQL.
func TestPrometheusScrapesTheLab(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	promBin := requirePrometheus(t)
	dir := t.TempDir()
	prefix := "m" + randomSuffix()[:5] + "-"
	removeDomainsAtCleanup(t, "lab-"+prefix)
	cfg := filepath.Join(dir, "cli.json")
	up := &upProc{t: t, env: []string{client.EnvConfig + "=" + cfg, client.EnvEngine + "=", client.EnvTokenFile + "=", client.EnvCAFile + "="},
		args: []string{"up", "--data-dir", filepath.Join(dir, "lab"), "--listen", "127.0.0.1:0", "--name-prefix", prefix,
			"--stats-interval", "1s", "--quiet"}}
	// power8-b's libvirtd of the lab's own and its domains outlive
	// polyvirt up: stopped after it, as polyvirt up --down does.
	t.Cleanup(func() { downLab(t, filepath.Join(dir, "lab")) })
	up.start()
	t.Cleanup(func() { up.stop() })
	c := &cli{t: t, env: up.env}
	login, err := client.LoadConfig(cfg)
	if err != nil || login.Engine == "" {
		t.Fatalf("the lab's login: %+v %v", login, err)
	}
	engineAddr := strings.TrimPrefix(login.Engine, "https://")

	// What Prometheus needs: a token of the metrics role, the engine CA
	// and a scrape certificate.
	files := filepath.Join(dir, "prometheus")
	var ut engineapi.UserToken
	c.json(&ut, "user", "add", "prometheus", "--role", "metrics")
	if ut.User.Role != "metrics" {
		t.Fatalf("user: %+v", ut.User)
	}
	if err := os.MkdirAll(files, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "engine.token"), []byte(ut.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.run("", "metrics", "scrape-cert", "prometheus", "--out", files)
	if !strings.Contains(out, "scrape certificate prometheus") {
		t.Errorf("scrape-cert: %s", out)
	}

	// A running VM on this machine's host.
	var hosts []engineapi.Host
	c.json(&hosts, "host", "list")
	native := engineapi.Host{}
	for _, h := range hosts {
		if !strings.Contains(h.Name, "power8") {
			native = h
		}
	}
	// The lab: power8-a, power8-b (fake POWER8 hosts) and this machine.
	if len(hosts) != 3 || native.Status != "Up" {
		t.Fatalf("hosts: %+v", hosts)
	}
	vm := prefix + "busy"
	out = c.run("", "vm", "create", vm, "--cluster", native.Cluster, "--memory", "256", "--cpus", "1", "--start")
	if !strings.Contains(out, "running") {
		t.Fatalf("vm create --start: %s", out)
	}

	// Prometheus, with the documented configuration pointed at the lab.
	doc, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", "prometheus", "polyvirt.yml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("/etc/prometheus/polyvirt/", files+"/", "engine.example.org:8443", engineAddr,
		"scrape_interval: 15s", "scrape_interval: 1s", "refresh_interval: 1m", "refresh_interval: 2s").Replace(string(doc))
	confFile := filepath.Join(files, "prometheus.yml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	plog := &lockedBuffer{}
	prom := exec.Command(promBin, "--config.file="+confFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+listen, "--log.level=warn")
	prom.Stdout, prom.Stderr = plog, plog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { prom.Wait(); close(exited) }()
	t.Cleanup(func() {
		prom.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus:\n%s", plog.String())
		}
	})
	base := "http://" + listen

	// Both scrape jobs answer: the engine, and each agent found through
	// the engine's service discovery, with the host's labels.
	waitQuery(t, base, `up{job="polyvirt-engine"} == 1`, 90*time.Second, func(s []promSample) bool { return len(s) == 1 })
	agents := waitQuery(t, base, `up{job="polyvirt-agents"} == 1`, 90*time.Second, func(s []promSample) bool { return len(s) == len(hosts) })
	archOf := map[string]string{}
	for _, h := range hosts {
		archOf[h.Name] = h.Arch.String()
	}
	for _, s := range agents {
		if s.Labels["arch"] != archOf[s.Labels["host"]] || s.Labels["cluster"] == "" {
			t.Errorf("agent target labels %v; the hosts: %v", s.Labels, archOf)
		}
	}
	// The lab's hosts Up by architecture, as the engine counts them.
	byArch := waitQuery(t, base, `sum by (arch) (polyvirt_hosts{status="Up"})`, 60*time.Second, func(s []promSample) bool { return len(s) == 2 })
	want := map[string]float64{}
	for _, h := range hosts {
		want[h.Arch.String()]++
	}
	for _, s := range byArch {
		if want[s.Labels["arch"]] != s.Value {
			t.Errorf("hosts Up by architecture: %v = %v; the lab has %v", s.Labels, s.Value, want)
		}
	}
	if _, ok := want["ppc64le"]; !ok || len(want) != 2 {
		t.Errorf("the lab's hosts are not a POWER and another: %v", want)
	}
	// The running VM's CPU time grows.
	q := fmt.Sprintf(`polyvirt_vm_cpu_seconds_total{job="polyvirt-agents", vm=%q}`, vm)
	first := waitQuery(t, base, q, 60*time.Second, func(s []promSample) bool { return len(s) == 1 && s[0].Value > 0 })
	if first[0].Labels["host"] != native.Name || first[0].Labels["arch"] != native.Arch.String() {
		t.Errorf("the VM's series: %v; want host %s", first[0].Labels, native.Name)
	}
	later := waitQuery(t, base, q, 60*time.Second, func(s []promSample) bool { return len(s) == 1 && s[0].Value > first[0].Value })
	t.Logf("VM %s CPU time %.2f s, then %.2f s", vm, first[0].Value, later[0].Value)
	waitQuery(t, base, fmt.Sprintf(`rate(polyvirt_vm_cpu_seconds_total{vm=%q}[15s]) > 0`, vm), 60*time.Second,
		func(s []promSample) bool { return len(s) == 1 })

	// The engine's API and monitoring are measured.
	for _, q := range []string{
		`polyvirt_engine_leader{job="polyvirt-engine"} == 1`,
		`polyvirt_agent_polls_total{kind="stats"} > 0`,
		`polyvirt_scheduling_decisions_total{outcome="placed"} >= 1`,
		`polyvirt_api_requests_total{route="/api/v1/metrics/targets", code="200"} > 0`,
		`polyvirt_host_memory_total_bytes{job="polyvirt-agents"} > 0`,
	} {
		waitQuery(t, base, q, 30*time.Second, func(s []promSample) bool { return len(s) >= 1 })
	}

	// Every query of the Grafana dashboard is valid against this
	// Prometheus (the dashboard's variables set to all).
	dash, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", "grafana", "polyvirt-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "15s", "$cluster", ".*", "$arch", ".*")
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			n++
			if regexp.MustCompile(`\$\w+`).MatchString(vars.Replace(tg.Expr)) {
				t.Errorf("panel %q: a variable the dashboard does not define: %s", p.Title, tg.Expr)
				continue
			}
			if _, err := promQuery(base, vars.Replace(tg.Expr)); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
		}
	}
	if n < 20 {
		t.Errorf("the dashboard has %d queries", n)
	}
}
