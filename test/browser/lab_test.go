// Package browser holds the web UI's tests in a real browser: Debian's
// Chromium driven by chromedp, against `polyvirt up` on the real libvirtd
// (POWER guests under TCG), and the UI's benchmarks.
package browser

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"polyvirt/test/domclean"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"polyvirt/internal/client"
	inlab "polyvirt/internal/lab"
	"polyvirt/internal/libvirtconn"
)

// requireReal reports whether missing real components must fail the test
// instead of skipping it: the project's test command sets
// POLYVIRT_REQUIRE_LIBVIRT=1.
func requireReal() bool { return os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" }

// missing fails or skips the test for an absent component.
func missing(t testing.TB, what string) {
	t.Helper()
	if requireReal() {
		t.Fatalf("%s is missing (scripts/test.sh installs it)", what)
	}
	t.Skipf("%s is missing; run scripts/test.sh to install it", what)
}

func libvirtURI() string {
	if u := os.Getenv("POLYVIRT_LIBVIRT_URI"); u != "" {
		return u
	}
	return libvirtconn.DefaultURI
}

func requireLibvirt(t testing.TB) {
	t.Helper()
	c, err := libvirtconn.Dial(libvirtURI(), 5*time.Second)
	if err != nil {
		missing(t, "a running libvirtd ("+err.Error()+")")
	}
	c.Close()
}

// The installers the tests boot (Debian packages
// debian-installer-12-netboot-ppc64el and -amd64).
const (
	ppcKernel   = "/usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/vmlinux"
	amd64Kernel = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux"
)

func requireFile(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, what+" ("+path+")")
	}
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = up
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// polyvirtBin is $POLYVIRT_BIN (scripts/test.sh's bin/polyvirt, the web UI
// built in), else a build of this tree.
func polyvirtBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("POLYVIRT_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "polyvirt-browser-bin")
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

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// lockedBuffer is a process's output, written by its goroutines.
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

// lab is one `polyvirt up` process: the engine, a host of this machine's
// architecture and a fake POWER8, on the real libvirtd.
type lab struct {
	t      testing.TB
	dir    string
	prefix string
	url    string
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
	out    *lockedBuffer
	api    *client.Client
	// password is the lab administrator's web UI password.
	password string
}

// startLab runs polyvirt up with its own directory, a free port and a
// name prefix; it stops with the test, its domains removed.
func startLab(t testing.TB) *lab {
	t.Helper()
	requireLibvirt(t)
	sweepStaleLabs(t)
	dir := t.TempDir()
	l := &lab{t: t, dir: filepath.Join(dir, "lab"), prefix: "w" + randomSuffix()[:5] + "-", out: &lockedBuffer{}}
	registerLab(t, "lab-"+l.prefix)
	cfg := filepath.Join(dir, "cli.json")
	l.env = []string{client.EnvConfig + "=" + cfg, client.EnvEngine + "=", client.EnvTokenFile + "=", client.EnvCAFile + "="}
	l.cmd = exec.Command(polyvirtBin(t), "up", "--data-dir", l.dir, "--listen", "127.0.0.1:0", "--name-prefix", l.prefix,
		"--stats-interval", "1s", "--quiet")
	l.cmd.Env = append(os.Environ(), l.env...)
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
	// polyvirt up stops (its agents with it) when this test process dies
	// without its cleanups (killed, or go test's -timeout).
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.exited = make(chan struct{})
	go func() { l.cmd.Wait(); close(l.exited) }()
	t.Cleanup(l.stop)
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(l.out.String(), "\nNext:\n") {
		select {
		case <-l.exited:
			t.Fatalf("polyvirt up exited:\n%s", l.out.String())
		case <-deadline:
			t.Fatalf("polyvirt up did not get ready:\n%s", l.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, line := range strings.Split(l.out.String(), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "engine" {
			l.url = f[1]
		}
	}
	pw, err := os.ReadFile(filepath.Join(l.dir, "admin.password"))
	if err != nil || l.url == "" {
		t.Fatalf("polyvirt up: no engine URL or password (%v):\n%s", err, l.out.String())
	}
	l.password = strings.TrimSpace(string(pw))
	ca, err := os.ReadFile(filepath.Join(l.dir, "engine", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := client.ReadTokenFile(filepath.Join(l.dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if l.api, err = client.New(client.Options{Engine: l.url, Token: tok, CAPEM: ca, Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	l.env = append(l.env, client.EnvEngine+"="+l.url, client.EnvTokenFile+"="+filepath.Join(l.dir, "admin.token"),
		client.EnvCAFile+"="+filepath.Join(l.dir, "engine", "ca.pem"))
	return l
}

// stop sends SIGTERM (Ctrl-C's effect) and waits for the exit.
func (l *lab) stop() {
	if l.cmd == nil || l.cmd.Process == nil {
		return
	}
	l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.exited:
	case <-time.After(30 * time.Second):
		l.cmd.Process.Kill()
		<-l.exited
	}
	// power8-b's libvirtd of the lab's own and its domains outlive
	// polyvirt up: stopped as polyvirt up --down does.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	if err := inlab.Down(ctx, l.dir); err != nil {
		l.t.Errorf("stopping the lab's own libvirt daemons: %v", err)
	}
	cancel()
	if l.t.Failed() {
		l.t.Logf("polyvirt up:\n%s", l.out.String())
		logs, _ := filepath.Glob(filepath.Join(l.dir, "logs", "*.log"))
		for _, f := range logs {
			if b, err := os.ReadFile(f); err == nil {
				l.t.Logf("%s (end):\n%s", filepath.Base(f), tail(string(b), 6000))
			}
		}
	}
	l.cmd = nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// cli runs the polyvirt CLI against the lab (stdin, then the arguments) and
// returns its output; a failure fails the test.
func (l *lab) cli(stdin string, args ...string) string {
	l.t.Helper()
	cmd := exec.Command(polyvirtBin(l.t), args...)
	cmd.Env = append(os.Environ(), l.env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("polyvirt %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// name is a name of the lab's (its prefix first).
func (l *lab) name(s string) string { return l.prefix + s }

// labsDir holds a file for each lab this package's tests and benchmarks
// run, named by its domains' prefix and holding the test process's id and
// start time. The test's cleanup removes the lab's domains, then its file;
// a run that died without its cleanups (killed, or past go test's
// -timeout, which ends the process at once) leaves its file, and the next
// run removes that lab's domains (sweepStaleLabs).
func labsDir() string { return filepath.Join(os.TempDir(), "polyvirt-browser-labs") }

// processStart is a process's start time (clock ticks after boot, field 22
// of /proc/PID/stat): with its id, it tells the process from a later one
// that got the same id.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command's name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return f[19], nil
}

// registerLab records a lab's domain prefix as this process's, and removes
// its domains, then the record, when the test ends (failed or not).
func registerLab(t testing.TB, prefix string) {
	t.Helper()
	start, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(labsDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(labsDir(), prefix)
	if err := os.WriteFile(file, []byte(fmt.Sprintf("%d %s\n", os.Getpid(), start)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n, err := domclean.Remove(libvirtURI(), prefix)
		if err != nil {
			t.Errorf("removing the domains %s*: %v", prefix, err)
			return
		}
		if n > 0 {
			t.Logf("removed %d domains %s*", n, prefix)
		}
		if err := os.Remove(file); err != nil {
			t.Error(err)
		}
	})
}

// sweepStaleLabs removes the domains of the labs whose test process is
// gone (registerLab), and their records.
func sweepStaleLabs(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(labsDir())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		file := filepath.Join(labsDir(), e.Name())
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		var start string
		if _, err := fmt.Sscan(string(b), &pid, &start); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if now, err := processStart(pid); err == nil && now == start {
			continue // its test still runs
		}
		n, err := domclean.Remove(libvirtURI(), e.Name())
		if err != nil {
			t.Fatalf("removing the domains %s* a test left: %v", e.Name(), err)
		}
		t.Logf("removed %d domains %s* left by a test that ended without its cleanup (pid %d)", n, e.Name(), pid)
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
	}
}
