// Package ownlibvirtd runs a libvirtd of a test's own: a second daemon
// (with its own virtlogd) in a mount namespace of its own, where
// /etc/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt and
// /run/libvirt are directories of the test (docs: the shared reference
// "migration.md"). A test may stop, restart, crash or hang that daemon
// without touching the machine's own libvirtd, which other tests and
// people use.
//
// The namespace is held by a small process, so that the daemon can be
// stopped and started again inside it while its QEMU processes keep
// running, as a real libvirtd restart does. Everything it started is
// removed when the test ends, failed or not: its domains are destroyed and
// undefined, leftover QEMU processes (even SIGSTOPped ones) killed, the
// daemons and the namespace ended — each by its own process id, never by
// name.
package ownlibvirtd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"polyvirt/internal/libvirtconn"
)

// Options tune the daemon.
type Options struct {
	// LogFilters is libvirtd's log_filters setting ("" for warnings only),
	// for example "1:remote 1:event 1:rpc" to follow event callbacks.
	LogFilters string
	// QEMUHook, when set, is libvirt's qemu hook script
	// (/etc/libvirt/hooks/qemu of the daemon: HooksDir on the test's
	// side), run with the domain's name, the operation and its phase;
	// for example a start made slow ("prepare begin").
	QEMUHook string
}

// HooksDir is the daemon's /etc/libvirt/hooks as the test sees it.
func (d *Daemon) HooksDir() string { return filepath.Join(d.Dir, "etc", "hooks") }

// Daemon is a running private libvirtd.
type Daemon struct {
	t testing.TB
	// Dir holds etc, lib, log, cache and run: the daemon's directories.
	Dir string
	// Socket is the daemon's read-write unix socket, and URI the libvirt
	// URI that reaches it (qemu+unix:///system?socket=...).
	Socket string
	URI    string

	opts   Options
	holder *exec.Cmd

	mu       sync.Mutex
	libvirtd *exec.Cmd
	virtlogd *exec.Cmd
	exited   chan struct{}
	exitErr  error
	stderr   *bytes.Buffer
}

// RequireReal reports whether missing real components must fail the test
// instead of skipping it (POLYVIRT_REQUIRE_LIBVIRT=1, set by
// scripts/test.sh).
func RequireReal() bool { return os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" }

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireReal() {
		t.Fatalf("a libvirtd of the test's own cannot run: %s (scripts/test.sh installs what is needed)", msg)
	}
	t.Skipf("a libvirtd of the test's own cannot run: %s", msg)
}

// Start starts a private libvirtd for the test t and waits until it
// answers. It fails (or skips, without POLYVIRT_REQUIRE_LIBVIRT=1) when the
// machine cannot run one: not root, no libvirtd, no unshare.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "not root")
	}
	for _, tool := range []string{"libvirtd", "virtlogd", "unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "%s is not installed", tool)
		}
	}
	if _, err := os.Stat("/etc/libvirt"); err != nil {
		missing(t, "/etc/libvirt: %v", err)
	}
	// A short directory: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "pv-libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{t: t, Dir: dir, opts: opts}
	d.Socket = filepath.Join(dir, "run", "libvirt-sock")
	d.URI = "qemu+unix:///system?socket=" + d.Socket
	t.Cleanup(d.cleanup)
	if err := d.prepare(); err != nil {
		t.Fatalf("preparing a private libvirtd in %s: %v", dir, err)
	}
	if err := d.enterNamespace(); err != nil {
		t.Fatalf("a mount namespace for a private libvirtd: %v", err)
	}
	d.StartDaemon()
	return d
}

// mounts are the daemon's directories: the test's subdirectory and where
// it is mounted inside the namespace.
var mounts = [][2]string{
	{"etc", "/etc/libvirt"},
	{"lib", "/var/lib/libvirt"},
	{"log", "/var/log/libvirt"},
	{"cache", "/var/cache/libvirt"},
	{"run", "/run/libvirt"},
}

// prepare writes the daemon's configuration: the machine's /etc/libvirt
// with libvirtd.conf and qemu.conf of its own (a UUID, display ports and no
// cgroups of its own, so that the two daemons never collide), without
// autostarted networks.
func (d *Daemon) prepare() error {
	for _, m := range mounts {
		if err := os.MkdirAll(filepath.Join(d.Dir, m[0]), 0o755); err != nil {
			return err
		}
	}
	etc := filepath.Join(d.Dir, "etc")
	if out, err := exec.Command("cp", "-a", "/etc/libvirt/.", etc).CombinedOutput(); err != nil {
		return fmt.Errorf("copying /etc/libvirt: %v: %s", err, out)
	}
	// Its own domains only: not the machine's persistent definitions, nor
	// what the machine's daemon starts by itself.
	qemuDir := filepath.Join(etc, "qemu")
	defs, _ := filepath.Glob(filepath.Join(qemuDir, "*.xml"))
	for _, f := range defs {
		_ = os.Remove(f)
	}
	_ = os.RemoveAll(filepath.Join(qemuDir, "autostart"))
	_ = os.RemoveAll(filepath.Join(qemuDir, "networks", "autostart"))
	for _, sub := range []string{"lib/qemu", "log/qemu", "run/qemu"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o755); err != nil {
			return err
		}
	}
	var u [16]byte
	for i := range u {
		u[i] = byte(rand.IntN(256))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	conf := fmt.Sprintf(`# A private libvirtd of a polyvirt test (package ownlibvirtd).
listen_tls = 0
listen_tcp = 0
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
host_uuid = %q
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
`, libvirtconn.FormatUUID(u))
	if d.opts.LogFilters != "" {
		conf = strings.Replace(conf, `log_outputs = "3:`, `log_outputs = "1:`, 1)
		conf += fmt.Sprintf("log_filters = %q\n", d.opts.LogFilters)
	}
	if err := os.WriteFile(filepath.Join(etc, "libvirtd.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	// Hooks are found when the daemon starts: the script is there first.
	_ = os.RemoveAll(filepath.Join(etc, "hooks"))
	if d.opts.QEMUHook != "" {
		if err := os.MkdirAll(filepath.Join(etc, "hooks"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(etc, "hooks", "qemu"), []byte(d.opts.QEMUHook), 0o755); err != nil {
			return err
		}
	}
	qemuConf, err := os.ReadFile(filepath.Join(etc, "qemu.conf"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Display ports of its own: a block of 50 among 10000-20699, away from
	// the machine's daemon's (from 5900 on) and below the ports labs record
	// for their engines and agents (from 20768 on).
	base := 10000 + 50*rand.IntN(214)
	qemuConf = append(qemuConf, fmt.Sprintf(`
# A private libvirtd of a polyvirt test: ports and cgroups of its own.
remote_display_port_min = %d
remote_display_port_max = %d
cgroup_controllers = [ ]
`, base, base+49)...)
	return os.WriteFile(filepath.Join(etc, "qemu.conf"), qemuConf, 0o644)
}

// enterNamespace starts the holder of the mount namespace: it bind-mounts
// the directories, then waits as long as the test process lives. When the
// test process ends without its cleanup (a panic, go test's time-out), the
// holder ends what the daemon started — QEMU processes (even stopped
// ones), libvirtd, virtlogd, by their pid files — and removes the
// directory.
func (d *Daemon) enterNamespace() error {
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, m := range mounts {
		fmt.Fprintf(&script, "mkdir -p %s\nmount --bind %s %s\n", m[1], filepath.Join(d.Dir, m[0]), m[1])
	}
	fmt.Fprintf(&script, `touch %[1]s/ready
set +e
while kill -0 %[2]d 2>/dev/null; do sleep 1; done
for f in /run/libvirt/qemu/*.pid; do
	[ -f "$f" ] || continue
	p=$(cat "$f")
	if grep -q qemu "/proc/$p/cmdline" 2>/dev/null; then kill -CONT "$p"; kill -KILL "$p"; fi
done
for f in /run/libvirt/libvirtd.pid /run/libvirt/virtlogd.pid; do
	[ -f "$f" ] && kill -KILL "$(cat "$f")"
done
sleep 1
rm -rf %[1]s
`, d.Dir, os.Getpid())
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	d.holder = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(d.Dir, "ready")); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the namespace was not ready within 10 s: %s", out.String())
}

// inNamespace is a command run inside the daemon's mount namespace.
func (d *Daemon) inNamespace(name string, args ...string) *exec.Cmd {
	all := append([]string{"-t", strconv.Itoa(d.holder.Process.Pid), "-m", "--", name}, args...)
	return exec.Command("nsenter", all...)
}

// StartDaemon starts libvirtd (and virtlogd when it does not run) and
// waits until libvirtd answers on its socket.
func (d *Daemon) StartDaemon() {
	d.t.Helper()
	d.mu.Lock()
	if d.virtlogd == nil {
		// Its default pid file is /run/virtlogd.pid, the machine's.
		v := d.inNamespace("virtlogd", "-p", "/run/libvirt/virtlogd.pid")
		var out bytes.Buffer
		v.Stdout, v.Stderr = &out, &out
		if err := v.Start(); err != nil {
			d.mu.Unlock()
			d.t.Fatalf("virtlogd: %v", err)
		}
		d.virtlogd = v
		exited := make(chan error, 1)
		go func() { exited <- v.Wait() }()
		sock := filepath.Join(d.Dir, "run", "virtlogd-sock")
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			select {
			case err := <-exited:
				d.mu.Unlock()
				d.t.Fatalf("virtlogd exited at start (%v): %s", err, out.String())
			default:
			}
			if time.Since(start) > 30*time.Second {
				d.mu.Unlock()
				d.t.Fatalf("virtlogd made no socket within 30 s: %s", out.String())
			}
		}
	}
	if d.libvirtd != nil {
		d.mu.Unlock()
		d.t.Fatal("ownlibvirtd: libvirtd runs already")
	}
	_ = os.Remove(d.Socket)
	cmd := d.inNamespace("libvirtd", "-f", "/etc/libvirt/libvirtd.conf", "-p", "/run/libvirt/libvirtd.pid")
	d.stderr = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = d.stderr, d.stderr
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		d.t.Fatalf("libvirtd: %v", err)
	}
	d.libvirtd = cmd
	exited := make(chan struct{})
	d.exited = exited
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.exitErr = err
		d.mu.Unlock()
		close(exited)
	}()
	d.mu.Unlock()
	// It answers once it has probed its QEMU binaries: a client asking
	// sooner would see no guests and no emulated machines.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := libvirtconn.Dial(d.URI, 2*time.Second); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			x, err := c.Capabilities(ctx)
			cancel()
			c.Close()
			if err == nil && strings.Contains(x, "<machine") {
				return
			}
		}
		select {
		case <-exited:
			d.t.Fatalf("the private libvirtd exited at start (%v): %s\n%s", d.ExitError(), d.stderr.String(), d.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
	d.t.Fatalf("the private libvirtd did not answer within 60 s: %s\n%s", d.stderr.String(), d.Log())
}

// Pid is libvirtd's process id (0 when it does not run).
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.libvirtd == nil || d.libvirtd.Process == nil {
		return 0
	}
	return d.libvirtd.Process.Pid
}

// Exited is closed when the current libvirtd process has exited.
func (d *Daemon) Exited() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exited == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return d.exited
}

// ExitError is how the last libvirtd process ended (nil while it runs or
// when it exited cleanly).
func (d *Daemon) ExitError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exitErr
}

// Crashed tells whether libvirtd died of a signal it did not ask for
// (SIGSEGV, SIGABRT, ...) rather than exiting or being stopped by Stop.
func (d *Daemon) Crashed() bool {
	select {
	case <-d.Exited():
	default:
		return false
	}
	var ee *exec.ExitError
	if errors.As(d.ExitError(), &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal() != syscall.SIGTERM && ws.Signal() != syscall.SIGKILL
		}
	}
	return false
}

// Stop ends libvirtd (SIGTERM, then SIGKILL after 30 s) and waits for it;
// virtlogd and the QEMU processes keep running, as when an administrator
// restarts the daemon.
func (d *Daemon) Stop() {
	d.t.Helper()
	d.mu.Lock()
	cmd, exited := d.libvirtd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	d.mu.Lock()
	d.libvirtd = nil
	d.mu.Unlock()
}

// Restart stops libvirtd and starts it again.
func (d *Daemon) Restart() {
	d.t.Helper()
	d.Stop()
	d.StartDaemon()
}

// Log is the daemon's log file (and what it printed).
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "log", "libvirtd.log"))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stderr != nil {
		b = append(b, d.stderr.Bytes()...)
	}
	return string(b)
}

// QEMUPid is the process id of a running domain's QEMU (its pid file).
func (d *Daemon) QEMUPid(domain string) (int, error) {
	b, err := os.ReadFile(filepath.Join(d.Dir, "run", "qemu", domain+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// qemuPids are the process ids of every pid file of QEMU the daemon
// wrote.
func (d *Daemon) qemuPids() []int {
	files, _ := filepath.Glob(filepath.Join(d.Dir, "run", "qemu", "*.pid"))
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			out = append(out, pid)
		}
	}
	return out
}

// cleanup removes everything: the domains (through the daemon, when it
// answers), leftover QEMU processes, the daemons, the namespace and the
// directory.
func (d *Daemon) cleanup() {
	if d.Pid() != 0 {
		// Stopped QEMU processes must run again to be destroyed.
		for _, pid := range d.qemuPids() {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
		d.removeDomains()
	}
	for _, pid := range d.qemuPids() {
		if isQEMU(pid) {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	d.Stop()
	d.mu.Lock()
	v := d.virtlogd
	d.mu.Unlock()
	if v != nil && v.Process != nil {
		_ = v.Process.Kill()
	}
	if d.holder != nil && d.holder.Process != nil {
		_ = d.holder.Process.Kill()
		_ = d.holder.Wait()
	}
	if d.t.Failed() {
		d.t.Logf("private libvirtd log (%s):\n%s", d.Dir, tail(d.Log(), 20000))
	}
	// The bind mounts lived in the namespace only: the directory is plain.
	_ = os.RemoveAll(d.Dir)
}

// removeDomains destroys and undefines every domain of the daemon.
func (d *Daemon) removeDomains() {
	c, err := libvirtconn.DialDomains(d.URI, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	doms, err := c.ListDomains(ctx)
	if err != nil {
		return
	}
	for _, dom := range doms {
		if st, err := c.DomainState(ctx, dom); err == nil && st != libvirtconn.StateShutoff {
			_ = c.DestroyDomain(ctx, dom)
		}
		_ = c.UndefineDomain(ctx, dom, libvirtconn.UndefineAll)
	}
}

// isQEMU tells whether a process id is a QEMU process (a pid file may
// outlive its process, and the id be reused).
func isQEMU(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	exe := string(bytes.SplitN(b, []byte{0}, 2)[0])
	return strings.Contains(filepath.Base(exe), "qemu")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
