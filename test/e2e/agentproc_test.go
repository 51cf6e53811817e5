package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/semver"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/pki"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// polyvirtBin returns the polyvirt binary: $POLYVIRT_BIN (scripts/test.sh
// builds it) or one built for this test run.
func polyvirtBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("POLYVIRT_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "polyvirt-e2e-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "polyvirt")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", binPath, "./cmd/polyvirt")
		cmd.Dir = moduleRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// requireLibvirt fails or skips when libvirtd does not answer.
func requireLibvirt(t *testing.T) {
	t.Helper()
	c, err := libvirtconn.Dial(libvirtURI(), 5*time.Second)
	if err != nil {
		missing(t, "a running libvirtd ("+err.Error()+")")
	}
	c.Close()
}

// migratingQEMU is the oldest QEMU whose live migrations of emulated
// (TCG) guests the tests trust: scripts/lib.sh's POLYVIRT_QEMU_MIN (QEMU
// 7.2 corrupted a migrated guest's memory now and then, and lost a POWER
// guest's decrementer: docs/operations.md).
const migratingQEMU = "9.0"

// requireMigratingQEMU stops a test that live-migrates guests when no
// libvirtd answers (as requireLibvirt) or its QEMU is older than
// migratingQEMU.
func requireMigratingQEMU(t *testing.T) {
	t.Helper()
	c, err := libvirtconn.Dial(libvirtURI(), 5*time.Second)
	if err != nil {
		missing(t, "a running libvirtd ("+err.Error()+")")
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, qemu, err := c.Versions(ctx)
	if err != nil {
		t.Fatalf("the QEMU version of %s: %v", libvirtURI(), err)
	}
	if semver.Compare("v"+qemu, "v"+migratingQEMU) < 0 {
		missing(t, "QEMU "+migratingQEMU+" or later for live migrations under TCG (this machine has "+qemu+")")
	}
}

func libvirtURI() string {
	if u := os.Getenv("POLYVIRT_LIBVIRT_URI"); u != "" {
		return u
	}
	return libvirtconn.DefaultURI
}

func randomSuffix() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// testCA is a CA with a client certificate, in a directory.
type testCA struct {
	dir string
	ca  *pki.CA
	cli *pki.Issued
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Issue("e2e-client", nil, pki.Client, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{dir: dir, ca: ca, cli: cli}
}

// client is an HTTPS client with the CA's client certificate.
func (c *testCA) client(t *testing.T) *http.Client {
	t.Helper()
	cfg, err := pki.ClientTLS(c.cli.CertPEM, c.cli.KeyPEM, c.ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 60 * time.Second}
}

// agentProc is one running `polyvirt agent` process.
type agentProc struct {
	t      *testing.T
	hostID string
	dir    string
	addr   string
	args   []string
	// wrap, when set, runs the agent through another program (unshare,
	// for a host that sees other storage).
	wrap []string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	ca   *testCA
	http *http.Client
}

// startAgent starts an agent with its own data directory (a server
// certificate from ca) and the given extra flags, and waits until it
// answers.
func startAgent(t *testing.T, ca *testCA, hostID string, extra ...string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	srv, err := ca.ca.Issue(hostID, []string{"localhost", "127.0.0.1"}, pki.Both, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.pem": ca.ca.CertPEM, "agent.pem": srv.CertPEM, "agent-key.pem": srv.KeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &agentProc{t: t, hostID: hostID, dir: dir, addr: addr, ca: ca, http: ca.client(t)}
	p.args = append([]string{"agent", "--host-id", hostID, "--data-dir", dir, "--listen", addr, "--libvirt", libvirtURI(), "--stats-interval", "1s"}, extra...)
	p.start()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *agentProc) start() {
	p.t.Helper()
	p.log = &bytes.Buffer{}
	p.cmd = exec.Command(polyvirtBin(p.t), p.args...)
	if len(p.wrap) > 0 {
		p.cmd = exec.Command(p.wrap[0], append(append(p.wrap[1:len(p.wrap):len(p.wrap)], polyvirtBin(p.t)), p.args...)...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := p.http.Get(p.url("/v1/openapi.json"))
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("agent %s did not answer on %s:\n%s", p.hostID, p.addr, p.log.String())
}

// kill9 kills the agent process without letting it clean up.
func (p *agentProc) kill9() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

func (p *agentProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	if p.t.Failed() {
		p.t.Logf("agent %s log:\n%s", p.hostID, p.log.String())
	}
	p.cmd = nil
}

func (p *agentProc) url(path string) string { return "https://" + p.addr + path }

// do sends a request and decodes a JSON answer into out (when not nil); it
// returns the status.
func (p *agentProc) do(method, path string, body []byte, out any) int {
	p.t.Helper()
	req, err := http.NewRequest(method, p.url(path), bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// events subscribes to the agent's event stream; events arrive on the
// returned channel until the test ends.
func (p *agentProc) events(t *testing.T) <-chan agentapi.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url("/v1/events"), nil)
	client := p.ca.client(t)
	client.Timeout = 0
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan agentapi.Event, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev agentapi.Event
				if json.Unmarshal([]byte(data), &ev) == nil {
					select {
					case ch <- ev:
					default:
					}
				}
			}
		}
	}()
	return ch
}

// waitEvent waits for an event of vm with the given event name.
func waitEvent(t *testing.T, ch <-chan agentapi.Event, vm, event string, within time.Duration) agentapi.Event {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev := <-ch:
			if ev.VM == vm && ev.Event == event {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %q event for VM %s within %s", event, vm, within)
		}
	}
}

// tlsDial opens a raw TLS connection with the given client config.
func tlsDial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := conn.Handshake(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
