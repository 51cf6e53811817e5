package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// testMonitor is a fast monitoring configuration for tests.
var testMonitor = MonitorConfig{StatsInterval: 150 * time.Millisecond, CapsInterval: time.Second, PollTimeout: 700 * time.Millisecond,
	Failures: 2, HostsReload: 300 * time.Millisecond, StatsFlush: 150 * time.Millisecond, LeaderRetry: 200 * time.Millisecond}

// syncBuffer is a log buffer written by the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEngine is an engine on a SQLite file, serving HTTPS on 127.0.0.1.
type testEngine struct {
	e     *Engine
	dir   string
	url   string
	token string
	caPEM []byte
	admin *client.Client
	log   *syncBuffer
	// mc and vc are its configuration; stop stops it (once).
	mc   MonitorConfig
	vc   VMConfig
	stop func()
}

// startEngine initializes and runs an engine with the default VM settings;
// it stops with the test.
func startEngine(t *testing.T, mc MonitorConfig) *testEngine {
	t.Helper()
	return startVMEngine(t, mc, VMConfig{})
}

func (te *testEngine) client(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Engine: te.url, Token: token, CAPEM: te.caPEM, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitHost waits until a host satisfies ok and returns it.
func waitHost(t *testing.T, c *client.Client, name string, within time.Duration, ok func(engineapi.Host) bool) engineapi.Host {
	t.Helper()
	deadline := time.Now().Add(within)
	var h engineapi.Host
	var err error
	for time.Now().Before(deadline) {
		h, err = c.Host(context.Background(), name, false)
		if err == nil && ok(h) {
			return h
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("host %s did not reach the expected state within %s: last %+v (err %v)", name, within, h, err)
	return h
}

func status(s string) func(engineapi.Host) bool {
	return func(h engineapi.Host) bool { return h.Status == s }
}

// openVNC opens a VM's graphical console through the engine as the web UI
// does: a console ticket of the administrator's, then the websocket
// (subprotocol binary) over the engine's HTTPS.
func (te *testEngine) openVNC(ctx context.Context, vm string) (*websocket.Conn, error) {
	var tk engineapi.ConsoleTicket
	if err := te.admin.Do(ctx, "POST", "/vms/"+url.PathEscape(vm)+"/console-ticket", nil, engineapi.ConsoleTicketRequest{Type: "vnc"}, &tk); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(te.caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ws, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(te.url, "https")+tk.Path, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"binary"}})
	return ws, err
}
