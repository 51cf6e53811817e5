package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/client"
	"polyvirt/internal/localsock"
)

// TestLocalSocket: the API over the local socket answers what HTTPS does,
// with the token still required, and refuses with LOCAL_PEER_DENIED a
// peer its policy does not admit; the socket file is 0600 without a
// group.
func TestLocalSocket(t *testing.T) {
	te := startEngine(t, MonitorConfig{})
	dir := t.TempDir()
	serve := func(name string, pol localsock.Policy) string {
		return serveLocalSocket(t, te, filepath.Join(dir, name), pol)
	}
	call := func(engine, token string) (string, error) {
		c, err := client.New(client.Options{Engine: engine, Token: token, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		u, err := c.WhoAmI(context.Background())
		return u.Name, err
	}
	me := uint32(os.Geteuid())
	open := serve("open.sock", localsock.Policy{UIDs: []uint32{me}, GID: -1})
	if name, err := call(open, te.token); err != nil || name != "admin" {
		t.Errorf("whoami over the socket = %q, %v; want admin", name, err)
	}
	cases := []struct {
		name, engine, token string
		status              int
		code                string
	}{
		{"no token", open, "", http.StatusUnauthorized, api.CodeUnauthenticated},
		{"a wrong token", open, "pv_wrong", http.StatusUnauthorized, api.CodeUnauthenticated},
		{"a peer the policy refuses", serve("closed.sock", localsock.Policy{UIDs: []uint32{me + 1}, GID: -1}), te.token,
			http.StatusForbidden, api.CodeLocalPeerDenied},
	}
	// A request's origin, in the audit, is the peer's uid and pid: a
	// malformed join over the socket is recorded as coming from there.
	local, err := client.New(client.Options{Engine: open, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Do(context.Background(), "POST", "/join", nil, map[string]string{"token": "nope", "csr": "x"}, nil); api.CodeOf(err) != api.CodeJoinTokenMalformed {
		t.Fatalf("a malformed join over the socket: %v", err)
	}
	evs, err := te.admin.Events(context.Background(), client.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	from := fmt.Sprintf("local socket uid=%d pid=%d", me, os.Getpid())
	found := false
	for _, ev := range evs.Events {
		found = found || (ev.Action == "host.join" && strings.Contains(ev.Message, from))
	}
	if !found {
		t.Errorf("no host.join event naming %s: %+v", from, evs.Events)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := call(c.engine, c.token)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != c.code || api.StatusOf(ae) != c.status {
				t.Fatalf("whoami = %v; want %d %s", err, c.status, c.code)
			}
		})
	}
}

// serveLocalSocket serves te's API on a local socket at path, admitting
// the peers pol admits, until the test ends; it returns the socket's
// engine URL (unix://PATH).
func serveLocalSocket(t *testing.T, te *testEngine, path string, pol localsock.Policy) string {
	t.Helper()
	ln, err := localsock.Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- te.e.serveLocal(ctx, ln, pol) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveLocal: %v", err)
		}
	})
	return "unix://" + path
}

// TestServeSocketFromSettings: the configured socket is made 0600 and
// served until the context ends; without one ServeSocket returns at once.
func TestServeSocketFromSettings(t *testing.T) {
	te := startEngine(t, MonitorConfig{})
	if err := te.e.ServeSocket(context.Background()); err != nil || te.e.Socket() != "" {
		t.Fatalf("ServeSocket without a socket = %v (socket %q)", err, te.e.Socket())
	}
	path := filepath.Join(t.TempDir(), "run", "engine.sock")
	te.e.settings.Socket = path
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- te.e.ServeSocket(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeSocket: %v", err)
		}
	}()
	c, err := client.New(client.Options{Engine: "unix://" + path, Token: te.token, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = c.WhoAmI(context.Background())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("whoami over the configured socket: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %v, want a socket 0600", fi.Mode())
	}
}

func TestLookupGroup(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{{"", -1, true}, {"0", 0, true}, {"root", 0, true}, {"no-such-group-here", -1, false}} {
		got, err := lookupGroup(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("lookupGroup(%q) = %d, %v; want %d (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}
