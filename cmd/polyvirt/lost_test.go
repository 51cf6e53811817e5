package main

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/client"
	"polyvirt/internal/pki"
)

func TestLostMessage(t *testing.T) {
	eof := errors.New("EOF")
	const gone = "the engine at https://e:8443 went away before it answered"
	tests := []struct {
		method, path string
		timedOut     bool
		want         string
	}{
		{"POST", "/vms/web1/start", false, gone + " (POST /api/v1/vms/web1/start: the connection was lost: EOF): the start of VM web1 may have happened; `polyvirt vm show web1` tells"},
		{"POST", "/vms/web1/destroy", false, gone + " (POST /api/v1/vms/web1/destroy: the connection was lost: EOF): the power-off of VM web1 may have happened; `polyvirt vm show web1` tells"},
		{"POST", "/vms/web1/start", true, "the engine at https://e:8443 did not answer within 30s (POST /api/v1/vms/web1/start: EOF): the start of VM web1 may have happened or still happen; `polyvirt vm show web1` tells"},
		{"POST", "/vms", false, gone + " (POST /api/v1/vms: the connection was lost: EOF): the creation of the VM may have happened; `polyvirt vm list` tells"},
		{"DELETE", "/vms/web%201", false, gone + " (DELETE /api/v1/vms/web%201: the connection was lost: EOF): the removal of VM web 1 may have happened; `polyvirt vm list` tells"},
		{"PATCH", "/vms/web1", false, gone + " (PATCH /api/v1/vms/web1: the connection was lost: EOF): the change of VM web1 may have happened; `polyvirt vm show web1` tells"},
		{"POST", "/hosts/h1/maintenance", false, gone + " (POST /api/v1/hosts/h1/maintenance: the connection was lost: EOF): the switch to Maintenance of host h1 may have happened; `polyvirt host show h1` tells"},
		{"POST", "/hosts/h1/firmware/flash", false, gone + " (POST /api/v1/hosts/h1/firmware/flash: the connection was lost: EOF): the firmware flash of host h1 may have happened; `polyvirt host firmware show h1` tells"},
		{"POST", "/hosts/h1/firmware/image?name=x.rpm", false, gone + " (POST /api/v1/hosts/h1/firmware/image?name=x.rpm: the connection was lost: EOF): the firmware upload of host h1 may have happened; `polyvirt host firmware show h1` tells"},
		{"POST", "/clusters", false, gone + " (POST /api/v1/clusters: the connection was lost: EOF): the creation of the cluster may have happened; `polyvirt cluster list` tells"},
		{"POST", "/users/ops/token", false, gone + " (POST /api/v1/users/ops/token: the connection was lost: EOF): the new token of user ops may have happened; `polyvirt user list` tells"},
		{"POST", "/join", false, gone + " (POST /api/v1/join: the connection was lost: EOF): what POST /join asked may have happened; `polyvirt events` tells"},
		{"GET", "/vms/web1", false, gone + " (GET /api/v1/vms/web1: the connection was lost: EOF); reading changes nothing: try again"},
	}
	for _, tc := range tests {
		le := &client.ConnectionLostError{Method: tc.method, Path: tc.path, Engine: "https://e:8443", Err: eof, TimedOut: tc.timedOut, After: 30 * time.Second}
		if got := lostMessage(le); got != tc.want {
			t.Errorf("%s %s:\n got %q\nwant %q", tc.method, tc.path, got, tc.want)
		}
	}
	plain := errors.New("plain")
	if lostConnection(plain) != plain {
		t.Errorf("another error was changed")
	}
}

// TestCommandsWhenTheEngineGoesAway: an engine that takes a request and
// goes away without answering; every command that changes something says
// that it may have happened and what tells, instead of "EOF".
func TestCommandsWhenTheEngineGoesAway(t *testing.T) {
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
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close() // as an engine killed with -9 mid-request
		}
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	dir := t.TempDir()
	for name, data := range map[string][]byte{"ca.pem": ca.CertPEM, "token": []byte("pvt1.x\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(client.EnvConfig, filepath.Join(dir, "none.json"))
	t.Setenv(client.EnvEngine, s.URL)
	t.Setenv(client.EnvCAFile, filepath.Join(dir, "ca.pem"))
	t.Setenv(client.EnvTokenFile, filepath.Join(dir, "token"))
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"vm", "start", "web1"}, "the start of VM web1 may have happened; `polyvirt vm show web1` tells"},
		{[]string{"vm", "destroy", "web1"}, "the power-off of VM web1 may have happened; `polyvirt vm show web1` tells"},
		{[]string{"vm", "delete", "web1"}, "the removal of VM web1 may have happened; `polyvirt vm list` tells"},
		{[]string{"host", "maintenance", "h1"}, "the switch to Maintenance of host h1 may have happened; `polyvirt host show h1` tells"},
		{[]string{"cluster", "create", "c1", "--arch", "x86_64"}, "the creation of the cluster may have happened; `polyvirt cluster list` tells"},
	}
	for _, tc := range tests {
		root := newRoot()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(tc.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "the engine at "+s.URL+" went away before it answered") ||
			!strings.Contains(err.Error(), tc.want) || strings.HasSuffix(err.Error(), "EOF") {
			t.Errorf("polyvirt %s: %v; want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}
