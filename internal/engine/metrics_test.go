package engine

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/pki"
	"polyvirt/internal/store"
)

// scrape reads the engine's GET /metrics with a token: the status and the
// metric families (nil unless 200).
func (te *testEngine) scrape(t *testing.T, token string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(te.caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	req, err := http.NewRequest("GET", te.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics is not Prometheus's text format: %v", err)
	}
	return resp.StatusCode, mfs
}

// value is the value of the series of a family whose labels include
// labels (a counter's, a gauge's, or a histogram's count); -1 when none.
func value(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestEngineMetrics: GET /metrics answers a token of any role (the
// metrics role reads nothing else) and no token at all is refused; it
// counts the hosts by cluster, architecture and status, the monitoring's
// polls, the API's requests by route pattern (never by the names asked)
// and the database's calls by the store's method.
func TestEngineMetrics(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power", CPUType: "IBM POWER8"}); err != nil {
		t.Fatal(err)
	}
	simHost(t, te, sim, "p8", "s822l-power8e", "power")
	simHost(t, te, sim, "p9", "ac922-power9", "power")
	for _, h := range []string{"p8", "p9"} {
		waitHost(t, te.admin, h, 10*time.Second, status("Up"))
	}
	tokens := map[store.Role]string{store.RoleAdmin: te.token}
	for _, r := range []store.Role{store.RoleReadOnly, store.RoleMetrics} {
		u, err := te.admin.CreateUser(ctx, "u-"+string(r), string(r))
		if err != nil {
			t.Fatal(err)
		}
		tokens[r] = u.Token
	}
	if st, _ := te.scrape(t, ""); st != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d, want 401", st)
	}
	if st, _ := te.scrape(t, "not-a-token"); st != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong token: %d, want 401", st)
	}
	if st, eb, _ := te.raw(t, "GET", "/api/v1/hosts", tokens[store.RoleMetrics], nil); st != 403 || eb.Error.Code != api.CodePermissionDenied {
		t.Errorf("the metrics role lists hosts: %d %+v", st, eb)
	}
	// The monitoring writes the hosts' statistics once it has some (its
	// flushes are spaced by their own cost): wait for the first.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, mfs := te.scrape(t, tokens[store.RoleMetrics])
		if value(mfs, "polyvirt_db_call_duration_seconds", map[string]string{"call": "UpdateHostStats"}) >= 1 || time.Now().After(deadline) {
			break
		}
	}
	// Each host asked by name: one series, the route's pattern.
	_, before := te.scrape(t, tokens[store.RoleMetrics])
	hostRoute := func(code string) map[string]string {
		return map[string]string{"method": "GET", "route": "/api/v1/hosts/{host}", "code": code}
	}
	ok0, notFound0 := max(value(before, "polyvirt_api_requests_total", hostRoute("200")), 0), max(value(before, "polyvirt_api_requests_total", hostRoute("404")), 0)
	for _, h := range []string{"p8", "p9", "p8"} {
		if st, _, _ := te.raw(t, "GET", "/api/v1/hosts/"+h, te.token, nil); st != 200 {
			t.Fatalf("GET host %s: %d", h, st)
		}
	}
	if st, _, _ := te.raw(t, "GET", "/api/v1/hosts/nohost", te.token, nil); st != 404 {
		t.Fatalf("GET an unknown host: %d", st)
	}
	for _, r := range []store.Role{store.RoleMetrics, store.RoleReadOnly, store.RoleAdmin} {
		st, mfs := te.scrape(t, tokens[r])
		if st != 200 {
			t.Errorf("GET /metrics as %s: %d", r, st)
			continue
		}
		if r != store.RoleMetrics {
			continue
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   func(float64) bool
		}{
			{"polyvirt_hosts", map[string]string{"cluster": "power", "arch": "ppc64le", "status": "Up"}, eq(2)},
			{"polyvirt_engine_leader", nil, eq(1)},
			{"polyvirt_engine_inventory_up", nil, eq(1)},
			{"polyvirt_engine_info", map[string]string{"backend": "sqlite", "version": Version}, eq(1)},
			{"polyvirt_agent_polls_total", map[string]string{"kind": "stats"}, atLeast(2)},
			{"polyvirt_agent_polls_total", map[string]string{"kind": "capabilities"}, atLeast(2)},
			{"polyvirt_agent_poll_duration_seconds", map[string]string{"kind": "stats"}, atLeast(2)},
			{"polyvirt_host_stats_age_seconds", nil, atLeast(1)},
			{"polyvirt_api_requests_total", hostRoute("200"), eq(ok0 + 3)},
			{"polyvirt_api_requests_total", hostRoute("404"), eq(notFound0 + 1)},
			{"polyvirt_api_requests_total", map[string]string{"method": "GET", "route": "/api/v1/hosts", "code": "403"}, eq(1)},
			{"polyvirt_api_requests_total", map[string]string{"method": "GET", "route": "/metrics", "code": "401"}, eq(2)},
			{"polyvirt_api_requests_total", map[string]string{"method": "GET", "route": "/metrics", "code": "200"}, atLeast(1)},
			{"polyvirt_api_request_duration_seconds", map[string]string{"method": "GET", "route": "/api/v1/hosts/{host}"}, eq(ok0 + notFound0 + 4)},
			{"polyvirt_db_call_duration_seconds", map[string]string{"call": "UpdateHostStats"}, atLeast(1)},
			{"polyvirt_db_call_duration_seconds", map[string]string{"call": "Transaction"}, atLeast(1)},
			{"polyvirt_scheduling_decisions_total", map[string]string{"outcome": "placed"}, eq(0)},
			{"polyvirt_migrations_total", map[string]string{"outcome": "succeeded"}, eq(0)},
			{"go_goroutines", nil, atLeast(1)},
		} {
			if v := value(mfs, c.name, c.labels); !c.want(v) {
				t.Errorf("%s%v = %v", c.name, c.labels, v)
			}
		}
		// No label of the API's or the database's metrics names a host.
		for _, name := range []string{"polyvirt_api_requests_total", "polyvirt_api_request_duration_seconds", "polyvirt_db_call_duration_seconds"} {
			for _, m := range mfs[name].GetMetric() {
				for _, l := range m.Label {
					if strings.Contains(l.GetValue(), "p8") || strings.Contains(l.GetValue(), "p9") || strings.Contains(l.GetValue(), "nohost") {
						t.Errorf("%s has the label %s=%q", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}

	// The scrape targets: every enrolled host, its address and labels.
	mc := te.client(t, tokens[store.RoleMetrics])
	ts, err := mc.ScrapeTargets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 {
		t.Fatalf("targets: %+v", ts)
	}
	for _, g := range ts {
		h, err := te.admin.Host(ctx, g.Labels["host"], false)
		if err != nil || len(g.Targets) != 1 || g.Targets[0] != h.Address || g.Labels["cluster"] != "power" || g.Labels["arch"] != "ppc64le" {
			t.Errorf("target %+v (host %+v, %v)", g, h, err)
		}
	}
}

func eq(want float64) func(float64) bool      { return func(v float64) bool { return v == want } }
func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

// TestScrapeCertificates: an administrator gets a scrape certificate of
// the engine CA (the key made by the engine, or kept by the scraper with a
// certificate request), marked for the agents as a scraper's; the issue is
// in the audit log; a bad name or request is refused with its field; other
// roles cannot have one.
func TestScrapeCertificates(t *testing.T) {
	te := startEngine(t, testMonitor)
	sc, err := te.admin.ScrapeCertificate(ctx, "prometheus", "")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(te.caPEM)
	check := func(what, certPEM string) {
		cert, err := pki.ParseCertificate([]byte(certPEM))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: not a client certificate of the engine CA: %v", what, err)
		}
		if !pki.IsScrape(cert) || cert.Subject.CommonName != "prometheus" {
			t.Errorf("%s: subject %v, not a scrape certificate", what, cert.Subject)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
			t.Errorf("%s: it could serve as an agent's certificate", what)
		}
	}
	check("issued", sc.Certificate)
	if sc.Key == "" || sc.CA != string(te.caPEM) || len(sc.Fingerprint) != 64 || sc.Expires.Before(time.Now().Add(365*24*time.Hour)) {
		t.Errorf("answer: %+v", sc)
	}
	if _, err := tls.X509KeyPair([]byte(sc.Certificate), []byte(sc.Key)); err != nil {
		t.Errorf("the key does not match the certificate: %v", err)
	}
	csr, _, err := pki.NewCSR("whatever")
	if err != nil {
		t.Fatal(err)
	}
	signed, err := te.admin.ScrapeCertificate(ctx, "prometheus", string(csr))
	if err != nil {
		t.Fatal(err)
	}
	check("from a CSR", signed.Certificate)
	if signed.Key != "" {
		t.Error("a key was answered for a certificate request")
	}
	page, err := te.admin.Events(ctx, client.EventFilter{Action: "metrics.scrape-certificate"})
	if err != nil || len(page.Events) != 2 || !strings.Contains(page.Events[0].Message, "scrape certificate prometheus") {
		t.Errorf("audit log: %+v %v", page.Events, err)
	}
	for _, c := range []struct {
		body, field string
	}{
		{`{"name":"../etc"}`, "name"},
		{`{"name":""}`, "name"},
		{`{"name":"p","csr":"garbage"}`, "csr"},
	} {
		st, eb, _ := te.raw(t, "POST", "/api/v1/metrics/scrape-certificates", te.token, []byte(c.body))
		if st != 400 || eb.Error.Field != c.field {
			t.Errorf("%s: %d %+v; want 400 on %s", c.body, st, eb, c.field)
		}
	}
	u, err := te.admin.CreateUser(ctx, "prom", string(store.RoleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	if st, eb, _ := te.raw(t, "POST", "/api/v1/metrics/scrape-certificates", u.Token, []byte(`{"name":"x"}`)); st != 403 || eb.Error.Code != api.CodePermissionDenied {
		t.Errorf("a metrics user got a certificate: %d %+v", st, eb)
	}
}
