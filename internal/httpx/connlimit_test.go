package httpx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/pki"
)

// limitedServer serves HTTPS through a Limiter: /block waits until release
// is closed, anything else answers at once.
func limitedServer(t *testing.T, lim ConnLimits) (*Limiter, string, *x509.CertPool, func()) {
	t.Helper()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.Issue("localhost", []string{"localhost", "127.0.0.1"}, pki.Server, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(iss.CertPEM, iss.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	l := NewLimiter(ln, lim, tlsCfg)
	release := make(chan struct{})
	srv := &http.Server{TLSConfig: tlsCfg, ConnState: l.ConnState, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				<-release
			}
			WriteJSON(w, 200, map[string]string{"status": "ok"})
		})}
	go srv.ServeTLS(l, "", "")
	var once sync.Once
	done := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() {
		done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l, ln.Addr().String(), pool, done
}

// clientFrom is an HTTPS client whose connections come from a source
// address (127.0.0.0/8 is all local).
func clientFrom(t *testing.T, src string, pool *x509.CertPool) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
		MaxConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get asks path and returns the status and the error code of the answer.
func get(c *http.Client, addr, path string) (int, string, http.Header, error) {
	resp, err := c.Get("https://" + addr + path)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	var body api.ErrorBody
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body.Error.Code, resp.Header, nil
}

// TestLimiter opens real connections past both limits: the client over
// its own limit is refused with 429 TOO_MANY_CONNECTIONS, anyone over the
// total with 503 SERVER_OVERLOADED (each with Retry-After) while every
// connection is busy; once connections idle (kept alive), or stay silent
// after connecting, a new client's request succeeds in their place.
func TestLimiter(t *testing.T) {
	l, addr, pool, release := limitedServer(t, ConnLimits{PerClient: 3, Total: 5})
	var wg sync.WaitGroup
	var keep []*http.Client
	block := func(src string, n int) {
		for i := 0; i < n; i++ {
			c := clientFrom(t, src, pool)
			keep = append(keep, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if status, _, _, err := get(c, addr, "/block"); status != 200 {
					t.Errorf("a blocked request from %s: %d %v", src, status, err)
				}
			}()
		}
	}
	waitOpen := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for l.Stats().Open != n {
			if time.Now().After(deadline) {
				t.Fatalf("open connections %+v; want %d", l.Stats(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	block("127.0.0.1", 3)
	waitOpen(3)
	tests := []struct {
		src    string
		status int
		code   string
	}{
		{"127.0.0.1", 429, api.CodeTooManyRequests},
		{"127.0.0.1", 429, api.CodeTooManyRequests},
	}
	for _, tc := range tests {
		status, code, h, err := get(clientFrom(t, tc.src, pool), addr, "/")
		if status != tc.status || code != tc.code || h.Get("Retry-After") == "" {
			t.Errorf("from %s over its limit: %d %s %v (Retry-After %q); want %d %s", tc.src, status, code, err, h.Get("Retry-After"), tc.status, tc.code)
		}
	}
	block("127.0.0.2", 2)
	waitOpen(5)
	if status, code, _, err := get(clientFrom(t, "127.0.0.3", pool), addr, "/"); status != 503 || code != api.CodeOverloaded {
		t.Errorf("from a third client over the total: %d %s %v; want 503 %s", status, code, err, api.CodeOverloaded)
	}
	if st := l.Stats(); st.RefusedPerClient != 2 || st.RefusedTotal != 1 || st.Dropped != 0 || st.Evicted != 0 {
		t.Errorf("stats %+v", st)
	}

	// The busy connections end their requests and stay open, idle: they
	// make room.
	release()
	wg.Wait()
	for _, src := range []string{"127.0.0.3", "127.0.0.1", "127.0.0.4"} {
		if status, _, _, err := get(clientFrom(t, src, pool), addr, "/"); status != 200 {
			t.Errorf("from %s with idle connections held: %d %v; want 200", src, status, err)
		}
	}
	if st := l.Stats(); st.Evicted != 3 || st.Open > 5 {
		t.Errorf("stats after idle connections made room: %+v", st)
	}

	// Connections that say nothing: they hold their places for staleNew,
	// then make room too.
	for _, c := range keep {
		c.Transport.(*http.Transport).CloseIdleConnections()
	}
	var silent []net.Conn
	for i := 0; i < 3; i++ {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	t.Cleanup(func() {
		for _, c := range silent {
			c.Close()
		}
	})
	if status, code, _, err := get(clientFrom(t, "127.0.0.5", pool), addr, "/"); status != 429 {
		t.Errorf("over the limit of a client whose connections are new: %d %s %v; want 429", status, code, err)
	}
	time.Sleep(staleNew + 100*time.Millisecond)
	if status, _, _, err := get(clientFrom(t, "127.0.0.5", pool), addr, "/"); status != 200 {
		t.Errorf("after its silent connections went stale: %d %v; want 200", status, err)
	}
	// A connection that made room was closed: reading it ends.
	_ = silent[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if _, err := silent[0].Read(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("the oldest silent connection is still open: %v", err)
	}
}
