package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/agent"
	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/enroll"
	"polyvirt/internal/arch"
	"polyvirt/internal/client"
	"polyvirt/internal/pki"
)

var ctx = context.Background()

// raw sends a request without the client's conveniences and returns the
// status, the error body (if any) and the headers.
func (te *testEngine) raw(t *testing.T, method, path, token string, body []byte) (int, api.ErrorBody, http.Header) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(te.caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	req, err := http.NewRequest(method, te.url+path, bytes.NewReader(body))
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
	b, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Errorf("%s %s: %d answer is not a JSON error body: %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, eb, resp.Header
}

// apiErr is the status, code and field of a client error.
type apiErr struct {
	Status int
	Code   string
	Field  string
}

func errOf(err error) apiErr {
	var e *api.Error
	if err == nil {
		return apiErr{}
	}
	if ok := asClientError(err, &e); !ok {
		return apiErr{Code: "not an API error: " + err.Error()}
	}
	return apiErr{e.Status, e.Code, e.Field}
}

func asClientError(err error, target **api.Error) bool {
	e, ok := err.(*api.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestAuthentication(t *testing.T) {
	te := startEngine(t, testMonitor)
	ro, err := te.admin.CreateUser(ctx, "viewer", "readonly")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, token string
		body                      string
		status                    int
		code                      string
	}{
		{"no token", "GET", "/api/v1/clusters", "", "", 401, api.CodeUnauthenticated},
		{"bad token", "GET", "/api/v1/clusters", "pvt1.nope", "", 401, api.CodeUnauthenticated},
		{"readonly reads", "GET", "/api/v1/clusters", ro.Token, "", 200, ""},
		{"readonly cannot create", "POST", "/api/v1/clusters", ro.Token, `{"name":"x"}`, 403, api.CodePermissionDenied},
		{"readonly cannot add users", "POST", "/api/v1/users", ro.Token, `{"name":"x"}`, 403, api.CodePermissionDenied},
		{"admin creates", "POST", "/api/v1/clusters", te.token, `{"name":"x"}`, 201, ""},
		{"health is public", "GET", "/api/v1/health", "", "", 200, ""},
		{"openapi is public", "GET", "/api/v1/openapi.json", "", "", 200, ""},
		{"join is public", "POST", "/api/v1/join", "", `{"token":"x","csr":"y"}`, 400, api.CodeJoinTokenMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, eb, h := te.raw(t, tc.method, tc.path, tc.token, []byte(tc.body))
			if st != tc.status || eb.Error.Code != tc.code {
				t.Errorf("%s %s = %d %s (%s), want %d %s", tc.method, tc.path, st, eb.Error.Code, eb.Error.Message, tc.status, tc.code)
			}
			if st == 401 && h.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if h.Get("X-Correlation-ID") == "" {
				t.Errorf("no X-Correlation-ID")
			}
		})
	}
	// A new token replaces the old one; a removed user's token is refused.
	rotated, err := te.admin.RotateToken(ctx, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := te.raw(t, "GET", "/api/v1/whoami", ro.Token, nil); st != 401 {
		t.Errorf("the old token after rotation: %d, want 401", st)
	}
	if u, err := te.client(t, rotated.Token).WhoAmI(ctx); err != nil || u.Name != "viewer" || u.Role != "readonly" {
		t.Errorf("whoami with the new token: %+v %v", u, err)
	}
	if err := te.admin.DeleteUser(ctx, "viewer"); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := te.raw(t, "GET", "/api/v1/whoami", rotated.Token, nil); st != 401 {
		t.Errorf("a removed user's token: %d, want 401", st)
	}
	if err := te.admin.DeleteUser(ctx, "admin"); errOf(err).Code != api.CodeInUse {
		t.Errorf("removing oneself: %v, want IN_USE", err)
	}
	if _, err := te.admin.CreateUser(ctx, "bad name", "admin"); errOf(err) != (apiErr{400, api.CodeInvalidArgument, "name"}) {
		t.Errorf("bad user name: %v", err)
	}
	if _, err := te.admin.CreateUser(ctx, "x", "root"); errOf(err) != (apiErr{400, api.CodeInvalidArgument, "role"}) {
		t.Errorf("bad role: %v", err)
	}
}

func TestClusterAPI(t *testing.T) {
	te := startEngine(t, testMonitor)
	type want struct {
		Arch, CPUType string
		Candidates    []string
		Err           apiErr
	}
	tests := []struct {
		name string
		req  engineapi.ClusterRequest
		want want
	}{
		{"power by alias", engineapi.ClusterRequest{Name: "power", Arch: "ppc64le"}, want{Arch: "ppc64", Candidates: []string{"pseries-*", "pseries"}}},
		{"ppc64el alias", engineapi.ClusterRequest{Name: "power-el", Arch: "ppc64el"}, want{Arch: "ppc64", Candidates: []string{"pseries-*", "pseries"}}},
		{"CPU type gives the arch", engineapi.ClusterRequest{Name: "p9", CPUType: "ibm power9"}, want{Arch: "ppc64", CPUType: "IBM POWER9", Candidates: []string{"pseries-*", "pseries"}}},
		{"undefined until the first host", engineapi.ClusterRequest{Name: "later"}, want{Candidates: []string{}}},
		{"x86", engineapi.ClusterRequest{Name: "x86", Arch: "amd64"}, want{Arch: "x86_64", Candidates: []string{"pc-q35-*", "q35", "pc-i440fx-*", "pc"}}},
		{"CPU type of another arch", engineapi.ClusterRequest{Name: "mixed", Arch: "x86_64", CPUType: "IBM POWER8"}, want{Err: apiErr{400, api.CodeInvalidArgument, "cpuType"}}},
		{"unknown CPU type", engineapi.ClusterRequest{Name: "odd", CPUType: "IBM POWER1"}, want{Err: apiErr{400, api.CodeInvalidArgument, "cpuType"}}},
		{"unknown arch", engineapi.ClusterRequest{Name: "odd", Arch: "mips"}, want{Err: apiErr{400, api.CodeInvalidArgument, "arch"}}},
		{"bad name", engineapi.ClusterRequest{Name: "-power"}, want{Err: apiErr{400, api.CodeInvalidArgument, "name"}}},
		{"empty name", engineapi.ClusterRequest{}, want{Err: apiErr{400, api.CodeInvalidArgument, "name"}}},
		{"duplicate", engineapi.ClusterRequest{Name: "power", Arch: "ppc64"}, want{Err: apiErr{409, api.CodeAlreadyExists, "name"}}},
		{"bad machine list", engineapi.ClusterRequest{Name: "m", EmulatedMachineCandidates: []string{""}}, want{Err: apiErr{400, api.CodeInvalidArgument, "emulatedMachineCandidates"}}},
		{"bad migration policy", engineapi.ClusterRequest{Name: "m", MigrationPolicy: "teleport"}, want{Err: apiErr{400, api.CodeInvalidArgument, "migrationPolicy"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := te.admin.CreateCluster(ctx, tc.req)
			got := want{Arch: c.Arch.String(), CPUType: c.CPUType, Candidates: c.EmulatedMachineCandidates, Err: errOf(err)}
			if err != nil {
				got.Candidates = tc.want.Candidates
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("create (-want +got):\n%s", diff)
			}
		})
	}
	// Unknown fields and malformed bodies.
	for _, body := range []string{`{"name":"q","colour":"red"}`, `{"name":`, `[]`, ``, `{"name":"q"} {}`} {
		st, eb, _ := te.raw(t, "POST", "/api/v1/clusters", te.token, []byte(body))
		if st != 400 {
			t.Errorf("body %q: %d %+v, want 400", body, st, eb)
		}
	}
	if st, eb, _ := te.raw(t, "POST", "/api/v1/clusters", te.token, []byte(`{"name":"q","colour":"red"}`)); eb.Error.Field != "colour" {
		t.Errorf("unknown field: %d %+v, want the field named", st, eb)
	}
	// Update and delete.
	c, err := te.admin.UpdateCluster(ctx, "later", engineapi.ClusterUpdate{Arch: ptr(arch.S390X)})
	if err != nil || c.Arch != "s390x" || len(c.EmulatedMachineCandidates) == 0 {
		t.Errorf("set the arch of an empty cluster: %+v %v", c, err)
	}
	if _, err := te.admin.UpdateCluster(ctx, "power", engineapi.ClusterUpdate{CPUType: ptr("Intel Nehalem Family")}); errOf(err) != (apiErr{400, api.CodeInvalidArgument, "cpuType"}) {
		t.Errorf("CPU type of another arch: %v", err)
	}
	if _, err := te.admin.UpdateCluster(ctx, "power", engineapi.ClusterUpdate{Version: ptr(int64(99))}); errOf(err).Code != api.CodeVersionConflict {
		t.Errorf("stale version: %v", err)
	}
	if _, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: "h1", Address: "127.0.0.1:1", Cluster: "power"}); err != nil {
		t.Fatal(err)
	}
	if _, err := te.admin.UpdateCluster(ctx, "power", engineapi.ClusterUpdate{Arch: ptr(arch.X86_64)}); errOf(err) != (apiErr{409, api.CodeClusterArchInUse, "arch"}) {
		t.Errorf("change the arch of a cluster with hosts: %v", err)
	}
	if err := te.admin.DeleteCluster(ctx, "power"); errOf(err).Code != api.CodeInUse {
		t.Errorf("delete a cluster with hosts: %v", err)
	}
	if err := te.admin.DeleteCluster(ctx, "x86"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := te.admin.Cluster(ctx, "x86"); errOf(err) != (apiErr{404, api.CodeNotFound, "cluster"}) {
		t.Errorf("deleted cluster: %v", err)
	}
	cl, err := te.admin.Cluster(ctx, "power")
	if err != nil || cl.Hosts["Installing"] != 1 {
		t.Errorf("host counts: %+v %v", cl.Hosts, err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestHostAPI(t *testing.T) {
	te := startEngine(t, testMonitor)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power", Arch: "ppc64le"}); err != nil {
		t.Fatal(err)
	}
	jt, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: "p8", Address: "127.0.0.1:7443", Cluster: "power"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.ParseToken(jt.Token); err != nil {
		t.Errorf("the join token does not parse: %v", err)
	}
	if jt.Host.Status != "Installing" || jt.Host.Enrolled || jt.Host.Cluster != "power" || !strings.Contains(jt.Command, te.url) {
		t.Errorf("added host: %+v, command %q", jt.Host, jt.Command)
	}
	if d := time.Until(jt.Expires); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("token expires in %s, want 1h", d)
	}
	tests := []struct {
		name string
		req  engineapi.HostRequest
		want apiErr
	}{
		{"no port", engineapi.HostRequest{Name: "a", Address: "127.0.0.1", Cluster: "power"}, apiErr{400, api.CodeInvalidArgument, "address"}},
		{"bad port", engineapi.HostRequest{Name: "a", Address: "127.0.0.1:99999", Cluster: "power"}, apiErr{400, api.CodeInvalidArgument, "address"}},
		{"spaces", engineapi.HostRequest{Name: "a", Address: "my host:1", Cluster: "power"}, apiErr{400, api.CodeInvalidArgument, "address"}},
		{"unknown cluster", engineapi.HostRequest{Name: "a", Address: "127.0.0.1:1", Cluster: "nope"}, apiErr{404, api.CodeNotFound, "cluster"}},
		{"no cluster", engineapi.HostRequest{Name: "a", Address: "127.0.0.1:1"}, apiErr{400, api.CodeInvalidArgument, "cluster"}},
		{"bad name", engineapi.HostRequest{Name: "a b", Address: "127.0.0.1:1", Cluster: "power"}, apiErr{400, api.CodeInvalidArgument, "name"}},
		{"duplicate name", engineapi.HostRequest{Name: "p8", Address: "127.0.0.1:2", Cluster: "power"}, apiErr{409, api.CodeAlreadyExists, "name"}},
		{"duplicate address", engineapi.HostRequest{Name: "b", Address: "127.0.0.1:7443", Cluster: "power"}, apiErr{409, api.CodeHostAddressInUse, "address"}},
		{"bad ttl", engineapi.HostRequest{Name: "a", Address: "127.0.0.1:1", Cluster: "power", TokenTTL: "forever"}, apiErr{400, api.CodeInvalidArgument, "tokenTtl"}},
		{"ttl too long", engineapi.HostRequest{Name: "a", Address: "127.0.0.1:1", Cluster: "power", TokenTTL: "1000h"}, apiErr{400, api.CodeInvalidArgument, "tokenTtl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := te.admin.AddHost(ctx, tc.req)
			if got := errOf(err); got != tc.want {
				t.Errorf("add host: %v; want %+v", err, tc.want)
			}
		})
	}
	hosts, err := te.admin.Hosts(ctx, client.HostFilter{})
	if err != nil || len(hosts) != 1 {
		t.Errorf("hosts after refusals: %d %v", len(hosts), err)
	}
	if _, err := te.admin.Hosts(ctx, client.HostFilter{Statuses: []string{"Sleeping"}}); errOf(err) != (apiErr{400, api.CodeInvalidArgument, "status"}) {
		t.Errorf("unknown status filter: %v", err)
	}
	if _, err := te.admin.Host(ctx, "nope", false); errOf(err) != (apiErr{404, api.CodeNotFound, "host"}) {
		t.Errorf("unknown host: %v", err)
	}
	// An Installing host can be removed; a new token can be issued for it.
	if _, err := te.admin.JoinToken(ctx, "p8", "10m"); err != nil {
		t.Errorf("new join token: %v", err)
	}
	if err := te.admin.RemoveHost(ctx, "p8"); err != nil {
		t.Errorf("remove an Installing host: %v", err)
	}
}

// postJoin sends a join request as is.
func (te *testEngine) postJoin(t *testing.T, token, csr string) (int, api.ErrorBody) {
	t.Helper()
	b, _ := json.Marshal(enroll.JoinRequest{Token: token, CSR: csr})
	st, eb, _ := te.raw(t, "POST", "/api/v1/join", "", b)
	return st, eb
}

func TestJoin(t *testing.T) {
	te := startEngine(t, testMonitor)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power", Arch: "ppc64"}); err != nil {
		t.Fatal(err)
	}
	add := func(name, addr, ttl string) engineapi.JoinToken {
		jt, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: name, Address: addr, Cluster: "power", TokenTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return jt
	}
	csr, _, err := pki.NewCSR("agent")
	if err != nil {
		t.Fatal(err)
	}
	good := add("good", "127.0.0.1:7001", "")
	tok, _ := enroll.ParseToken(good.Token)
	forged := enroll.Token{Secret: strings.Repeat("B", 43), CAHash: tok.CAHash}
	otherCA, _ := pki.NewCA("another engine")
	wrongCA := enroll.Token{Secret: tok.Secret, CAHash: pki.Fingerprint(otherCA.Cert)}

	tests := []struct {
		name, token, csr string
		status           int
		code             string
	}{
		{"malformed", "hello", string(csr), 400, api.CodeJoinTokenMalformed},
		{"forged", forged.String(), string(csr), 401, api.CodeJoinTokenInvalid},
		{"another engine's CA", wrongCA.String(), string(csr), 401, api.CodeJoinTokenWrongEngine},
		{"no CSR", good.Token, "", 400, api.CodeCSRInvalid},
		{"not a CSR", good.Token, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 400, api.CodeCSRInvalid},
		{"corrupt CSR", good.Token, strings.Replace(string(csr), "M", "N", 3), 400, api.CodeCSRInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, eb := te.postJoin(t, tc.token, tc.csr)
			if st != tc.status || eb.Error.Code != tc.code {
				t.Errorf("join = %d %s (%s), want %d %s", st, eb.Error.Code, eb.Error.Message, tc.status, tc.code)
			}
		})
	}
	h, err := te.admin.Host(ctx, "good", false)
	if err != nil || h.Enrolled || !h.JoinTokenUsed.IsZero() {
		t.Fatalf("refused joins issued something: %+v %v", h, err)
	}

	// agent.Enroll checks the engine against the token before sending it.
	if _, err := agent.Enroll(ctx, te.url, wrongCA.String(), 5*time.Second); err == nil || !strings.Contains(err.Error(), "does not hold the CA of the join token") {
		t.Errorf("enroll with another CA's hash: %v", err)
	}
	// The token still works after all that, once.
	e, err := agent.Enroll(ctx, te.url, good.Token, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := pki.ParseCertificate([]byte(e.Cert))
	h, err = te.admin.Host(ctx, "good", false)
	if err != nil || !h.Enrolled || h.CertFingerprint != pki.Fingerprint(cert) || h.CertFingerprint != e.CertFingerprint || h.JoinTokenUsed.IsZero() {
		t.Errorf("enrolled host %+v (%v); certificate %s", h, err, pki.Fingerprint(cert))
	}
	if diff := cmp.Diff([]string{"good"}, cert.DNSNames); diff != "" || len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("certificate names %v %v", cert.DNSNames, cert.IPAddresses)
	}
	_, err = agent.Enroll(ctx, te.url, good.Token, 5*time.Second)
	var je *api.Error
	if !errors.As(err, &je) || je.Code != api.CodeJoinTokenUsed || je.Status != 409 {
		t.Errorf("reused token: %v", err)
	}
	// An expired token.
	short := add("short", "127.0.0.1:7002", "1s")
	time.Sleep(1100 * time.Millisecond)
	if st, eb := te.postJoin(t, short.Token, string(csr)); st != 401 || eb.Error.Code != api.CodeJoinTokenExpired {
		t.Errorf("expired token: %d %+v", st, eb)
	}
	// Two agents racing with one token: one wins.
	race := add("race", "127.0.0.1:7003", "")
	var wg sync.WaitGroup
	results := make([]int, 4)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], _ = te.postJoin(t, race.Token, string(csr))
		}(i)
	}
	wg.Wait()
	sort.Ints(results)
	if diff := cmp.Diff([]int{200, 409, 409, 409}, results); diff != "" {
		t.Errorf("concurrent joins (-want +got):\n%s", diff)
	}
	// Refusals are in the audit log.
	page, err := te.admin.Events(ctx, client.EventFilter{Action: "host.join", Severity: "warning"})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, ev := range page.Events {
		codes[ev.Code] = true
	}
	for _, c := range []string{api.CodeJoinTokenMalformed, api.CodeJoinTokenInvalid, api.CodeJoinTokenWrongEngine, api.CodeJoinTokenUsed, api.CodeJoinTokenExpired} {
		if !codes[c] {
			t.Errorf("no audit event for a %s refusal (have %v)", c, codes)
		}
	}
}

func TestEventsAPI(t *testing.T) {
	te := startEngine(t, testMonitor)
	// The engine records its taking over of the monitoring from the
	// leader's goroutine, a moment after it started: awaited, so that the
	// log's order below is the test's.
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := te.admin.Events(ctx, client.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(page.Events, func(ev engineapi.Event) bool { return strings.Contains(ev.Message, "took over the host monitoring") }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event of the engine taking over the monitoring within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range []string{"a", "b", "c"} {
		if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: "h", Address: "127.0.0.1:9", Cluster: "b"}); err != nil {
		t.Fatal(err)
	}
	// Newest first, in pages.
	var all []string
	var before int64
	for {
		page, err := te.admin.Events(ctx, client.EventFilter{Limit: 2, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			all = append(all, ev.Message)
		}
		if page.Next == 0 {
			break
		}
		before = page.Next
	}
	want := []string{"Host h was added by admin.", "Cluster c was added by admin.", "Cluster b was added by admin.",
		"Cluster a was added by admin.", "Engine localhost took over the host monitoring.", "Engine localhost was initialized; administrator admin was created."}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	page, err := te.admin.Events(ctx, client.EventFilter{Cluster: "b"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, ev := range page.Events {
		msgs = append(msgs, ev.Message)
	}
	if diff := cmp.Diff([]string{"Host h was added by admin.", "Cluster b was added by admin."}, msgs); diff != "" {
		t.Errorf("events of cluster b and its hosts (-want +got):\n%s", diff)
	}
	page, err = te.admin.Events(ctx, client.EventFilter{Host: "h"})
	if err != nil || len(page.Events) != 1 || page.Events[0].User != "admin" || page.Events[0].CorrelationID == "" {
		t.Errorf("events of host h: %+v %v", page.Events, err)
	}
	for _, q := range []string{"limit=0", "limit=5000", "before=x", "severity=loud", "since=yesterday"} {
		if st, eb, _ := te.raw(t, "GET", "/api/v1/events?"+q, te.token, nil); st != 400 || eb.Error.Field == "" {
			t.Errorf("events?%s: %d %+v, want 400 naming the field", q, st, eb)
		}
	}
	if _, err := te.admin.Events(ctx, client.EventFilter{Host: "nope"}); errOf(err).Status != 404 {
		t.Errorf("events of an unknown host: %v", err)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(documented)
	e := &Engine{}
	if diff := cmp.Diff(e.routePaths(), documented); diff != "" {
		t.Errorf("routes vs openapi.json (-routes +documented):\n%s", diff)
	}
}

func TestErrorAnswers(t *testing.T) {
	te := startEngine(t, testMonitor)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown path", "GET", "/api/v1/nothing", "", 404, api.CodeNotFound},
		{"outside the API", "GET", "/nothing/here", "", 404, api.CodeNotFound},
		{"wrong method", "PUT", "/api/v1/clusters", "", 405, api.CodeMethodNotAllowed},
		{"too large", "POST", "/api/v1/clusters", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, api.CodeBodyTooLarge},
		{"wrong type", "POST", "/api/v1/clusters", `{"name":5}`, 400, api.CodeInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, eb, h := te.raw(t, tc.method, tc.path, te.token, []byte(tc.body))
			if st != tc.status || eb.Error.Code != tc.code {
				t.Errorf("%s %s = %d %+v, want %d %s", tc.method, tc.path, st, eb, tc.status, tc.code)
			}
			if st == 405 && h.Get("Allow") != "GET, POST" {
				t.Errorf("Allow %q", h.Get("Allow"))
			}
		})
	}
}

func TestDatabaseFileDeleted(t *testing.T) {
	te := startEngine(t, testMonitor)
	if _, err := te.admin.Clusters(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"polyvirt.db", "polyvirt.db-wal", "polyvirt.db-shm"} {
		os.Remove(filepath.Join(te.dir, f))
	}
	_, err := te.admin.Clusters(ctx)
	var ce *api.Error
	if !asClientError(err, &ce) || ce.Status != 503 || ce.Code != api.CodeDatabaseFailure || !strings.Contains(ce.Message, "database file is gone") {
		t.Errorf("with the database file deleted: %v; want 503 %s saying the file is gone", err, api.CodeDatabaseFailure)
	}
	h, err := te.admin.Health(ctx)
	if errOf(err).Status != 503 || h.Status != "" {
		t.Errorf("health with the database file deleted: %+v %v, want 503", h, err)
	}
	// The monitor keeps the statuses as they were: nothing can be written.
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(te.log.String(), "cannot read the hosts") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(te.log.String(), "cannot read the hosts") {
		t.Errorf("the monitor did not log the database failure")
	}
}
