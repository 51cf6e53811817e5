package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/pki"
)

func TestEngineURL(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"https://engine:8443", "https://engine:8443", ""},
		{" https://engine:8443/ ", "https://engine:8443", ""},
		{"https://engine:8443/api/v1", "https://engine:8443", ""},
		{"https://[::1]:8443", "https://[::1]:8443", ""},
		{"", "", "no engine"},
		{"http://engine:8443", "", "want https"},
		{"engine:8443", "", "want https"},
		{"https://engine:8443/other", "", "want https"},
		{"https://engine:8443?x=1", "", "want https"},
		{"unix:///run/polyvirt/engine.sock", "unix:///run/polyvirt/engine.sock", ""},
		{" unix:///run/polyvirt/engine.sock ", "unix:///run/polyvirt/engine.sock", ""},
		{"unix://run/engine.sock", "", "an absolute path"},
		{"unix://", "", "an absolute path"},
		{"unix:///run/../etc/engine.sock", "", "not clean"},
		{"unix:///run/polyvirt/", "", "not clean"},
		{"unix:///run/e.sock?x=1", "", "'?'"},
		{"unix:///" + strings.Repeat("x", 107), "", "at most 107 bytes"},
	}
	for _, tc := range tests {
		got, err := EngineURL(tc.in)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("EngineURL(%q) = %q, %v; want %q, error %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzEngineURL: any text gives a normalized URL (https:// or unix:///,
// the same when given again) or an error, never a panic.
func FuzzEngineURL(f *testing.F) {
	for _, s := range []string{"https://engine:8443", "unix:///run/polyvirt/engine.sock", "unix://x", "unix:///a/../b", "https://[::1]:1/api/v1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := EngineURL(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "https://") && !strings.HasPrefix(got, "unix:///") {
			t.Fatalf("EngineURL(%q) = %q: neither https:// nor unix:///", s, got)
		}
		if again, err := EngineURL(got); err != nil || again != got {
			t.Fatalf("EngineURL(%q) = %q, but EngineURL of that = %q, %v", s, got, again, err)
		}
	})
}

func TestNormalizeFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	colons := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	tests := []struct {
		in, want string
		ok       bool
	}{
		{hex, hex, true},
		{colons, hex, true},
		{"sha256:" + strings.ToUpper(hex), hex, true},
		{hex[:62], "", false},
		{strings.Repeat("zz", 32), "", false},
	}
	for _, tc := range tests {
		got, err := NormalizeFingerprint(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v", tc.in, got, err)
		}
	}
}

// engineLike serves /api/v1/health with a certificate of a CA, sent with
// the CA as an engine does.
func engineLike(t *testing.T) (*httptest.Server, *pki.CA) {
	t.Helper()
	return engineServing(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/api/v1/health" {
			w.WriteHeader(404)
			w.Write([]byte(`{"error":{"code":"NOT_FOUND","message":"no"}}`))
			return
		}
		w.Write([]byte(`{"status":"ok","leader":true}`))
	}))
}

// engineServing is a TLS server answering with h, its certificate issued
// by a new CA, as an engine's is.
func engineServing(t *testing.T, h http.Handler) (*httptest.Server, *pki.CA) {
	t.Helper()
	ca, err := pki.NewCA("test engine CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("localhost", []string{"127.0.0.1"}, pki.Server, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(append(append([]byte{}, srv.CertPEM...), ca.CertPEM...), srv.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, ca
}

// TestConnsKept makes calls side by side twice: the second time they go
// over the connections of the first when the client keeps as many (Conns),
// and most open new ones when it keeps fewer.
func TestConnsKept(t *testing.T) {
	const side = 12
	var mu sync.Mutex
	var peers map[string]bool
	var arrived sync.WaitGroup
	s, ca := engineServing(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers[r.RemoteAddr] = true
		mu.Unlock()
		// Every call of a round waits for the others: they are side by
		// side, each on a connection of its own.
		arrived.Done()
		arrived.Wait()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok","leader":true}`))
	}))
	// round makes side calls side by side and answers the connections
	// they came on.
	round := func(c *Client) map[string]bool {
		mu.Lock()
		peers = map[string]bool{}
		mu.Unlock()
		arrived.Add(side)
		var calls sync.WaitGroup
		for range side {
			calls.Go(func() {
				if _, err := c.Health(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		calls.Wait()
		mu.Lock()
		defer mu.Unlock()
		return peers
	}
	for _, tc := range []struct {
		name           string
		conns          int
		minNew, maxNew int
	}{
		{"as many kept as calls", side, 0, 0},
		{"two kept", 2, side - 2, side - 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Options{Engine: s.URL, CAPEM: ca.CertPEM, Conns: tc.conns})
			if err != nil {
				t.Fatal(err)
			}
			first := round(c)
			if len(first) != side {
				t.Fatalf("first round: %d connections, want %d", len(first), side)
			}
			second := round(c)
			fresh := 0
			for p := range second {
				if !first[p] {
					fresh++
				}
			}
			if fresh < tc.minNew || fresh > tc.maxNew {
				t.Errorf("second round: %d new connections of %d, want %d to %d", fresh, len(second), tc.minNew, tc.maxNew)
			}
		})
	}
}

func TestTrust(t *testing.T) {
	s, ca := engineLike(t)
	other, _ := pki.NewCA("another")
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"the CA", Options{CAPEM: ca.CertPEM}, true},
		{"the CA's fingerprint", Options{Fingerprint: pki.Fingerprint(ca.Cert)}, true},
		{"another CA", Options{CAPEM: other.CertPEM}, false},
		{"another fingerprint", Options{Fingerprint: pki.Fingerprint(other.Cert)}, false},
		{"the system's roots", Options{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Engine = s.URL
			c, err := New(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			h, err := c.Health(context.Background())
			if (err == nil) != tc.ok || (tc.ok && h.Status != "ok") {
				t.Errorf("health: %+v %v; want success %v", h, err, tc.ok)
			}
		})
	}
	chain, err := PeerChain(context.Background(), s.URL)
	if err != nil || len(chain) != 2 || Fingerprint(chain[1]) != pki.Fingerprint(ca.Cert) {
		t.Errorf("peer chain: %d certificates, %v", len(chain), err)
	}
	c, _ := New(Options{Engine: s.URL, CAPEM: ca.CertPEM})
	err = c.Do(context.Background(), "GET", "/nothing", nil, nil, nil)
	if api.CodeOf(err) != "NOT_FOUND" {
		t.Errorf("an error answer: %v", err)
	}
}

func TestConfigAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "config.json")
	want := Config{Engine: "https://engine:8443", Token: "pvt1.secret", CA: "PEM", User: "admin"}
	if err := SaveConfig(path, want); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode: %v %v", fi.Mode(), err)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("\n  pvt1.other  \n"), 0o600)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, []byte("CA2"), 0o600)
	tests := []struct {
		name string
		env  map[string]string
		want Options
		err  string
	}{
		{"the login", map[string]string{EnvConfig: path}, Options{Engine: want.Engine, Token: want.Token, CAPEM: []byte("PEM")}, ""},
		{"overridden", map[string]string{EnvConfig: path, EnvEngine: "https://e2:1", EnvTokenFile: tokenFile, EnvCAFile: caFile},
			Options{Engine: "https://e2:1", Token: "pvt1.other", CAPEM: []byte("CA2")}, ""},
		{"not logged in", map[string]string{EnvConfig: filepath.Join(dir, "none.json")}, Options{}, "not logged in"},
		{"missing token file", map[string]string{EnvConfig: path, EnvTokenFile: filepath.Join(dir, "none")}, Options{}, EnvTokenFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{EnvConfig, EnvEngine, EnvTokenFile, EnvCAFile} {
				t.Setenv(k, tc.env[k])
			}
			o, err := FromEnvironment()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, o); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConnectionLost: a request the engine received and did not answer —
// the connection cut, no answer in time, an answer cut short — is a
// *ConnectionLostError saying so; a request that never reached the engine
// (nothing listens) is not.
func TestConnectionLost(t *testing.T) {
	ca, err := pki.NewCA("test engine CA")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.Issue("localhost", []string{"127.0.0.1"}, pki.Server, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(iss.CertPEM, iss.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	hijackClose := func(w http.ResponseWriter) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	release := make(chan struct{})
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/api/v1/vms/web1/start":
			hijackClose(w)
		case "/api/v1/slow":
			<-release
		case "/api/v1/cut":
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			w.Write([]byte(`{"vm":`))
			http.NewResponseController(w).Flush()
			hijackClose(w)
		}
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		s.Close()
	})
	c, err := New(Options{Engine: s.URL, CAPEM: ca.CertPEM, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		timedOut     bool
		status       int
		text         string
	}{
		{"POST", "/vms/web1/start", false, 0, "POST /vms/web1/start: the engine at " + s.URL + " went away before it answered (the connection was lost: EOF)"},
		{"DELETE", "/slow", true, 0, "DELETE /slow: the engine at " + s.URL + " did not answer within 300ms"},
		{"GET", "/cut", false, 200, "GET /cut: the engine at " + s.URL + " went away before it answered (the connection was lost: unexpected EOF)"},
	}
	for _, tc := range tests {
		var out json.RawMessage
		err := c.Do(context.Background(), tc.method, tc.path, nil, map[string]string{"reason": "x"}, &out)
		var le *ConnectionLostError
		if !errors.As(err, &le) {
			t.Errorf("%s %s: %v (%T); want a ConnectionLostError", tc.method, tc.path, err, err)
			continue
		}
		if le.Method != tc.method || le.Path != tc.path || le.Engine != s.URL || le.TimedOut != tc.timedOut || le.Status != tc.status ||
			!strings.HasPrefix(le.Error(), tc.text) {
			t.Errorf("%s %s: %+v: %q; want %q", tc.method, tc.path, le, le.Error(), tc.text)
		}
	}

	// Nothing listens: the request never reached an engine.
	addr := s.Listener.Addr().String()
	close(release)
	released = true
	s.Close()
	gone, _ := New(Options{Engine: "https://" + addr, CAPEM: ca.CertPEM, Timeout: time.Second})
	err = gone.Do(context.Background(), "POST", "/vms/web1/start", nil, nil, nil)
	var le *ConnectionLostError
	if err == nil || errors.As(err, &le) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("no engine listening: %v; want a refused connection, not a lost one", err)
	}
}

// TestHostPageInto: a page of the host list asked for with its filter,
// size and continuation, decoded into the caller's own type (what it does
// not name is skipped); HostPage is the same page as engineapi's type.
func TestHostPageInto(t *testing.T) {
	var asked []string
	s, ca := engineServing(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"hosts":[{"id":"i1","name":"p8","status":"Up","stats":{"host":{"cpus":4}}}],"continue":"c2"}`)
	}))
	c, err := New(Options{Engine: s.URL, CAPEM: ca.CertPEM, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var brief struct {
		Hosts []struct {
			Name string `json:"name"`
		} `json:"hosts"`
		Continue string `json:"continue"`
	}
	if err := c.HostPageInto(context.Background(), HostFilter{Cluster: "power", Statuses: []string{"Up", "Maintenance"}}, 500, "c1", &brief); err != nil {
		t.Fatal(err)
	}
	if len(brief.Hosts) != 1 || brief.Hosts[0].Name != "p8" || brief.Continue != "c2" {
		t.Errorf("page %+v", brief)
	}
	page, err := c.HostPage(context.Background(), HostFilter{Cluster: "power"}, 0, "")
	if err != nil || len(page.Hosts) != 1 || page.Hosts[0].ID != "i1" || string(page.Hosts[0].Stats) != `{"host":{"cpus":4}}` || page.Continue != "c2" {
		t.Errorf("HostPage: %+v %v", page, err)
	}
	want := []string{"/api/v1/hosts?cluster=power&continue=c1&limit=500&status=Up%2CMaintenance", "/api/v1/hosts?cluster=power"}
	if len(asked) != 2 || asked[0] != want[0] || asked[1] != want[1] {
		t.Errorf("asked %q, want %q", asked, want)
	}
}
