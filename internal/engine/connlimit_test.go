package engine

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"polyvirt/internal/api"
)

// apiFrom is an HTTPS client of the engine whose connections come from a
// source address of 127.0.0.0/8 (another client, as the engine counts
// them), with its own connections.
func (te *testEngine) apiFrom(t *testing.T, src string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(te.caPEM)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}, MaxConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// call asks GET path with the admin's token: the status and the error
// code of the answer.
func (te *testEngine) call(c *http.Client, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", te.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+te.token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body api.ErrorBody
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body.Error.Code, nil
}

// holdFrom opens a connection from src that completes its TLS handshake
// and starts a request it never finishes (a slow client): the engine holds
// it busy until its header time-out.
func (te *testEngine) holdFrom(t *testing.T, src string) net.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(te.caPEM)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", te.url[len("https://"):], &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("a held connection from %s: %v", src, err)
	}
	if _, err := io.WriteString(c, "GET /api/v1/health HTTP/1.1\r\nHost: engine\r\n"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAPIConnectionLimits opens real connections past the API's limits:
// many clients' kept-alive connections from one address get answers or a
// clear 429 TOO_MANY_CONNECTIONS (never more connections than its limit)
// while another client is served; busy connections filling the total make
// a new client's request 503 SERVER_OVERLOADED; when they go, it is
// served again.
func TestAPIConnectionLimits(t *testing.T) {
	te := startEngineConfig(t, Config{Monitor: testMonitor, API: APIConfig{MaxConns: 24, MaxConnsPerClient: 8}})

	// 120 clients at once from one address, each with its own connection
	// kept alive after its answer.
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	for i := 0; i < 120; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, code, err := te.call(te.apiFrom(t, "127.0.0.1"), "/api/v1/clusters")
			key := fmt.Sprintf("%d %s", status, code)
			if err != nil {
				key = err.Error()
			}
			mu.Lock()
			got[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	refused := got["429 "+api.CodeTooManyRequests]
	if got["200 "]+refused != 120 || got["200 "] < 8 || refused == 0 {
		t.Errorf("120 clients of one address: %v; want answers (at least 8) and TOO_MANY_CONNECTIONS refusals, nothing else", got)
	}
	if st := te.e.ConnStats(); st.Open > 8 || st.RefusedPerClient != int64(refused) {
		t.Errorf("after the flood of one address: %+v; want at most 8 open, %d refused", st, refused)
	}
	// Another client is served meanwhile; the same address again too (its
	// idle connections make room).
	for _, src := range []string{"127.0.0.2", "127.0.0.1"} {
		if status, code, err := te.call(te.apiFrom(t, src), "/api/v1/clusters"); status != 200 {
			t.Errorf("a normal request from %s after the flood: %d %s %v", src, status, code, err)
		}
	}

	// Busy connections from three addresses fill the total.
	var held []net.Conn
	for _, src := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		for i := 0; i < 8; i++ {
			held = append(held, te.holdFrom(t, src))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for te.e.ConnStats().Open < 24 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// (The idle connections of the first part were evicted for them.)
	if status, code, err := te.call(te.apiFrom(t, "127.0.0.6"), "/api/v1/health"); status != 503 || code != api.CodeOverloaded {
		t.Errorf("a request over the total: %d %s %v; want 503 %s (stats %+v)", status, code, err, api.CodeOverloaded, te.e.ConnStats())
	}
	for _, c := range held[:8] {
		c.Close()
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		status, code, err := te.call(te.apiFrom(t, "127.0.0.6"), "/api/v1/clusters")
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a request once busy connections went: %d %s %v", status, code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
