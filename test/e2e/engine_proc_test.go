package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/engine"
	"polyvirt/internal/pki"
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr is a free TCP address on 127.0.0.1.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// engineMonitorFlags make a test engine notice things within seconds.
var engineMonitorFlags = []string{"--stats-interval", "500ms", "--failures", "2", "--poll-timeout", "1s",
	"--caps-interval", "2s", "--hosts-reload", "1s", "--leader-retry", "500ms", "--stats-flush", "500ms"}

// engineProc is one `polyvirt engine run` process.
type engineProc struct {
	t      *testing.T
	name   string
	dir    string
	addr   string
	url    string
	token  string
	caFile string
	caFP   string
	extra  []string
	// env is added to the environment of init and of every run (the
	// database URL with its password: engine.json keeps none).
	env []string
	cmd *exec.Cmd
	log *lockedBuffer
	api *client.Client
}

// initEngine runs `polyvirt engine init` into a new data directory; the
// engine answers at 127.0.0.1 on a free port once started.
func initEngine(t *testing.T, name string, env []string, extra ...string) *engineProc {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "engine")
	addr := freeAddr(t)
	args := append([]string{"engine", "init", "--data-dir", dir, "--name", "localhost", "--listen", addr, "-o", "json"}, extra...)
	out, errOut, code := runCLI(t, env, "", args...)
	if code != 0 {
		t.Fatalf("engine init: exit %d\n%s%s", code, out, errOut)
	}
	var res engine.InitResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("engine init -o json: %v\n%s", err, out)
	}
	if res.AdminToken == "" || res.CAFingerprint == "" {
		t.Fatalf("engine init: %+v", res)
	}
	return &engineProc{t: t, name: name, dir: dir, addr: addr, url: "https://" + addr, token: res.AdminToken,
		caFile: filepath.Join(dir, engine.FileCA), caFP: res.CAFingerprint, env: env}
}

// clone makes a second engine of the same installation: the data
// directory's certificates and settings copied, another address.
func (e *engineProc) clone(t *testing.T, name string) *engineProc {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "engine")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{engine.FileCA, engine.FileCAKey, engine.FileServerCert, engine.FileServerKey,
		engine.FileClientCert, engine.FileClientKey, engine.FileSettings} {
		b, err := os.ReadFile(filepath.Join(e.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	return &engineProc{t: t, name: name, dir: dir, addr: addr, url: "https://" + addr, token: e.token,
		caFile: filepath.Join(dir, engine.FileCA), env: e.env}
}

// start runs the engine and waits until it answers.
func (e *engineProc) start() {
	e.t.Helper()
	e.log = &lockedBuffer{}
	args := append([]string{"engine", "run", "--data-dir", e.dir, "--listen", e.addr, "--name", e.name, "--url", e.url}, engineMonitorFlags...)
	e.cmd = exec.Command(polyvirtBin(e.t), append(args, e.extra...)...)
	e.cmd.Env = append(os.Environ(), e.env...)
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	ca, err := os.ReadFile(e.caFile)
	if err != nil {
		e.t.Fatal(err)
	}
	// A request waits as long as the engine's own work takes (a VM start
	// defines and starts the domain: seconds, more on a loaded machine).
	e.api, err = client.New(client.Options{Engine: e.url, Token: e.token, CAPEM: ca, Timeout: 2 * time.Minute})
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.api.Health(context.Background()); err == nil {
			e.t.Cleanup(e.stop)
			return
		}
		if e.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("engine %s did not answer on %s:\n%s", e.name, e.addr, e.log.String())
}

// stop ends the engine with SIGTERM (SIGKILL after 10 s).
func (e *engineProc) stop() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		e.cmd.Process.Kill()
		<-done
	}
	if e.t.Failed() {
		e.t.Logf("engine %s log:\n%s", e.name, e.log.String())
	}
	e.cmd = nil
}

// kill9 kills the engine without letting it clean up.
func (e *engineProc) kill9() {
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Kill()
		e.cmd.Wait()
		e.cmd = nil
	}
}

// agentHTTP is an HTTPS client with the engine's client certificate.
func (e *engineProc) agentHTTP(t *testing.T) *http.Client {
	t.Helper()
	read := func(f string) []byte {
		b, err := os.ReadFile(filepath.Join(e.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cfg, err := pki.ClientTLS(read(engine.FileClientCert), read(engine.FileClientKey), read(engine.FileCA))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// runCLI runs polyvirt with env added to the environment and stdin.
func runCLI(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(polyvirtBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("polyvirt %v: %v", args, err)
	}
	return o.String(), e.String(), 0
}

// cli is a logged-in CLI: its own configuration file.
type cli struct {
	t   *testing.T
	env []string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, env: []string{client.EnvConfig + "=" + filepath.Join(t.TempDir(), "config.json"),
		client.EnvEngine + "=", client.EnvTokenFile + "=", client.EnvCAFile + "="}}
}

// run runs a command that must succeed and returns its output.
func (c *cli) run(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, code := runCLI(c.t, c.env, stdin, args...)
	if code != 0 {
		c.t.Fatalf("polyvirt %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// json runs a command with -o json and decodes its output.
func (c *cli) json(out any, args ...string) {
	c.t.Helper()
	s := c.run("", append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		c.t.Fatalf("polyvirt %s -o json: %v\n%s", strings.Join(args, " "), err, s)
	}
}

// fail runs a command that must fail and returns its standard error.
func (c *cli) fail(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, code := runCLI(c.t, c.env, stdin, args...)
	if code == 0 {
		c.t.Fatalf("polyvirt %s succeeded; want a failure\n%s", strings.Join(args, " "), out)
	}
	return errOut
}

// joinAgent adds a host through the CLI, enrolls an agent for it with
// `polyvirt agent join` (the token on stdin) and starts the agent with the
// enrolled data directory.
func joinAgent(t *testing.T, c *cli, e *engineProc, name, cluster string, extra ...string) *agentProc {
	t.Helper()
	return joinAgentWrapped(t, c, e, name, cluster, nil, extra...)
}

// joinAgentWrapped is joinAgent for an agent run through wrap (unshare).
func joinAgentWrapped(t *testing.T, c *cli, e *engineProc, name, cluster string, wrap []string, extra ...string) *agentProc {
	t.Helper()
	addr := freeAddr(t)
	var jt engineapi.JoinToken
	c.json(&jt, "host", "add", name, "--address", addr, "--cluster", cluster)
	dir := filepath.Join(t.TempDir(), "agent")
	out := c.run(jt.Token+"\n", "agent", "join", "--engine", e.url, "--data-dir", dir)
	if !strings.Contains(out, "Enrolled as host "+name) {
		t.Errorf("agent join: %s", out)
	}
	p := &agentProc{t: t, hostID: name, dir: dir, addr: addr, http: e.agentHTTP(t),
		args: append([]string{"agent", "--host-id", name, "--data-dir", dir, "--listen", addr, "--libvirt", libvirtURI(),
			"--stats-interval", "1s", "--domain-prefix", "e2e-" + name + "-"}, extra...), wrap: wrap}
	p.start()
	t.Cleanup(p.stop)
	return p
}

// waitHost waits until a host satisfies ok.
func waitHost(t *testing.T, api *client.Client, name string, within time.Duration, ok func(engineapi.Host) bool) engineapi.Host {
	t.Helper()
	deadline := time.Now().Add(within)
	var h engineapi.Host
	var err error
	for time.Now().Before(deadline) {
		h, err = api.Host(context.Background(), name, false)
		if err == nil && ok(h) {
			return h
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("host %s: not as expected within %s: %s %s %q (err %v)", name, within, h.Status, h.StatusCode, h.StatusMessage, err)
	return h
}

func hostStatus(s string) func(engineapi.Host) bool {
	return func(h engineapi.Host) bool { return h.Status == s }
}

// signal sends a signal to an agent process.
func (p *agentProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if p.cmd == nil || p.cmd.Process == nil {
		p.t.Fatalf("agent %s is not running", p.hostID)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// restartWith stops the agent and starts it again with other extra flags
// (same data directory, address and host id).
func (p *agentProc) restartWith(extra ...string) {
	p.t.Helper()
	p.stop()
	base := p.args[:0:0]
	for i := 0; i < len(p.args); i++ {
		if p.args[i] == "--profile" {
			i++
			continue
		}
		base = append(base, p.args[i])
	}
	p.args = append(base, extra...)
	p.start()
}

// dirFiles lists a directory's files ("" when it does not exist).
func dirFiles(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}
