// Package libvirtns runs a libvirtd of polyvirt's own on this machine — a
// second "host" for the lab (power8-b) and for tests that need two libvirt
// daemons (migrations): libvirtd and its virtlogd run in a mount namespace
// of their own, where /etc/libvirt, /var/lib/libvirt, /var/log/libvirt,
// /var/cache/libvirt and /run/libvirt are directories under the daemon's
// directory (the verified recipe of the shared reference page on
// migration). The machine's own libvirtd is never touched.
//
// A small holder process keeps the namespace: libvirtd can then stop and
// start again inside it while its QEMU processes run on, as a real libvirtd
// restart does. Every process is found again by its pid file (run/ of the
// daemon's directory), so that a later polyvirt finds a daemon an earlier
// one started, and ends it by its process ids, never by name. The daemons
// run in sessions of their own: a Ctrl-C of whoever started them does not
// reach them.
//
// With TLS (libvirttls.Files) the daemon listens for other hosts' libvirtd
// on a TLS port, with the settings libvirttls writes for any host; it never
// listens for plain TCP.
package libvirtns

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/libvirttls"
	"polyvirt/internal/portrange"
)

// Config is a daemon's configuration.
type Config struct {
	// Dir is the daemon's directory (etc, lib, log, cache, run). It must
	// be short: the sockets under it are limited to 107 bytes.
	Dir string
	// TLS, when set, makes the daemon listen for TLS at Listen with these
	// files (its certificate, the CA), accepting other hosts' libvirt
	// certificates only.
	TLS    *libvirttls.Files
	Listen libvirttls.Listen
	// VNCPorts and MigrationPorts are the first of 100 display ports and
	// of 64 incoming migration ports (0: a block chosen at random when the
	// directory is made, away from the machine's daemon's).
	VNCPorts       int
	MigrationPorts int
	// LogFilters is libvirtd's log_filters ("" for warnings only).
	LogFilters string
	// Own are more directories of this machine (absolute, clean) the
	// namespace has its own of: an empty directory under Dir (OwnPath) is
	// mounted there, so that what the daemon and its agent put there is
	// not another host's — the storage of this host only. They are mounted
	// when the namespace is made (its first start).
	Own []string
}

// Daemon is a running daemon of this package.
type Daemon struct {
	cfg Config
	// Dir is the daemon's directory; Socket its read-write unix socket;
	// URI the libvirt URI that reaches it from this machine.
	Dir    string
	Socket string
	URI    string
}

// mounts are the daemon's directories: the subdirectory and where it is
// mounted in the namespace.
var mounts = [][2]string{
	{"etc", "/etc/libvirt"},
	{"lib", "/var/lib/libvirt"},
	{"log", "/var/log/libvirt"},
	{"cache", "/var/cache/libvirt"},
	{"run", "/run/libvirt"},
}

// The pid files, in run/ (/run/libvirt in the namespace).
const (
	holderPid   = "polyvirt-holder.pid"
	libvirtdPid = "libvirtd.pid"
	virtlogdPid = "virtlogd.pid"
)

// Require says why this machine cannot run a daemon of this package (""
// when it can): root, libvirtd, virtlogd, unshare and nsenter.
func Require() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range []string{"libvirtd", "virtlogd", "unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed"
		}
	}
	if _, err := os.Stat("/etc/libvirt"); err != nil {
		return "/etc/libvirt: " + err.Error()
	}
	return ""
}

// Open returns the daemon of a directory without starting anything.
func Open(cfg Config) (*Daemon, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	d := &Daemon{cfg: cfg, Dir: dir, Socket: filepath.Join(dir, "run", "libvirt-sock")}
	if len(d.Socket) > 100 {
		return nil, fmt.Errorf("libvirt daemon directory %s: too long for a unix socket path (%d bytes)", dir, len(d.Socket))
	}
	d.URI = "qemu+unix:///system?socket=" + d.Socket
	return d, nil
}

// Start starts the daemon of cfg.Dir, or finds it running (its holder,
// virtlogd and libvirtd alive by their pid files), and returns once
// libvirtd answers. The directory is made on the first start.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	if why := Require(); why != "" {
		return nil, fmt.Errorf("a libvirt daemon of polyvirt's own cannot run here: %s", why)
	}
	d, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	if err := d.prepare(); err != nil {
		return nil, fmt.Errorf("preparing the libvirt daemon in %s: %w", d.Dir, err)
	}
	if !d.alive(holderPid, "sleep") {
		if err := d.enterNamespace(); err != nil {
			return nil, err
		}
	}
	if !d.alive(virtlogdPid, "virtlogd") {
		if err := d.inNamespace("virtlogd", "-d", "-p", "/run/libvirt/"+virtlogdPid); err != nil {
			return nil, fmt.Errorf("virtlogd: %w", err)
		}
	}
	if d.alive(libvirtdPid, "libvirtd") {
		if err := d.waitAnswer(ctx, 30*time.Second); err == nil {
			return d, nil
		}
	}
	if err := d.StartLibvirtd(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// pid reads a pid file of run/ (0 when there is none).
func (d *Daemon) pid(name string) int {
	b, err := os.ReadFile(filepath.Join(d.Dir, "run", name))
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || p <= 1 {
		return 0
	}
	return p
}

// alive tells whether the process of a pid file runs and is the program
// named (a pid file may outlive its process, and the id be reused).
func (d *Daemon) alive(pidFile, program string) bool {
	return isProgram(d.pid(pidFile), program)
}

func isProgram(pid int, program string) bool {
	if pid <= 1 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie is no daemon.
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return false
		}
	}
	exe := string(bytes.SplitN(b, []byte{0}, 2)[0])
	return filepath.Base(exe) == program || strings.HasSuffix(filepath.Base(exe), program)
}

// LibvirtdPid is libvirtd's process id (0 when it does not run).
func (d *Daemon) LibvirtdPid() int {
	if !d.alive(libvirtdPid, "libvirtd") {
		return 0
	}
	return d.pid(libvirtdPid)
}

// prepare makes the directory on the first start: the machine's
// /etc/libvirt without its domains, networks that start by themselves and
// configuration files of its own; the TLS settings are written on every
// start (libvirttls.Configure keeps them as they are when nothing
// changed).
func (d *Daemon) prepare() error {
	etc := filepath.Join(d.Dir, "etc")
	fresh := false
	if _, err := os.Stat(filepath.Join(etc, "libvirtd.conf")); errors.Is(err, os.ErrNotExist) {
		fresh = true
	}
	for _, m := range mounts {
		if err := os.MkdirAll(filepath.Join(d.Dir, m[0]), 0o755); err != nil {
			return err
		}
	}
	for _, sub := range []string{"lib/qemu", "log/qemu", "run/qemu"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o755); err != nil {
			return err
		}
	}
	if fresh {
		if out, err := exec.Command("cp", "-a", "/etc/libvirt/.", etc).CombinedOutput(); err != nil {
			return fmt.Errorf("copying /etc/libvirt: %v: %s", err, out)
		}
		qemuDir := filepath.Join(etc, "qemu")
		defs, _ := filepath.Glob(filepath.Join(qemuDir, "*.xml"))
		for _, f := range defs {
			_ = os.Remove(f)
		}
		_ = os.RemoveAll(filepath.Join(qemuDir, "autostart"))
		_ = os.RemoveAll(filepath.Join(qemuDir, "networks", "autostart"))
		conf := fmt.Sprintf(`# A libvirtd of polyvirt's own (package libvirtns): its own socket, UUID,
# ports and directories, in a mount namespace of its own.
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
host_uuid = %q
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
`, newUUID())
		if d.cfg.LogFilters != "" {
			conf = strings.Replace(conf, `log_outputs = "3:`, `log_outputs = "1:`, 1)
			conf += fmt.Sprintf("log_filters = %q\n", d.cfg.LogFilters)
		}
		if err := os.WriteFile(filepath.Join(etc, "libvirtd.conf"), []byte(conf), 0o644); err != nil {
			return err
		}
		vnc, mig := d.cfg.VNCPorts, d.cfg.MigrationPorts
		if vnc == 0 {
			// 10000-20699: below the ports a lab records for its engine
			// and agents (from 20768 on, under Linux's default
			// ephemeral range), above the machine's daemon's (5900 on).
			vnc = 10000 + 100*randN(107)
		}
		if mig == 0 {
			mig = migrationBlock(portrange.EphemeralFile)
		}
		qemuConf, err := os.ReadFile(filepath.Join(etc, "qemu.conf"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		qemuConf = append(qemuConf, fmt.Sprintf(`
# A libvirtd of polyvirt's own (package libvirtns): ports and cgroups of
# its own, away from the machine's daemon's.
remote_display_port_min = %d
remote_display_port_max = %d
migration_port_min = %d
migration_port_max = %d
cgroup_controllers = [ ]
`, vnc, vnc+99, mig, mig+63)...)
		if err := os.WriteFile(filepath.Join(etc, "qemu.conf"), qemuConf, 0o644); err != nil {
			return err
		}
	}
	if d.cfg.TLS != nil {
		if _, err := libvirttls.Configure(filepath.Join(etc, "libvirtd.conf"), libvirttls.DaemonSettings(*d.cfg.TLS, d.cfg.Listen)); err != nil {
			return err
		}
		if _, err := libvirttls.Configure(filepath.Join(etc, "qemu.conf"), libvirttls.QEMUSettings(*d.cfg.TLS)); err != nil {
			return err
		}
	}
	return nil
}

// OwnPath is where, on this machine, the file p of one of the
// namespace's own directories (Config.Own) is.
func (d *Daemon) OwnPath(p string) string {
	return filepath.Join(d.Dir, "own", filepath.Clean("/"+p))
}

// enterNamespace starts the holder of the mount namespace in a session of
// its own: it bind-mounts the directories, writes its pid file and sleeps.
func (d *Daemon) enterNamespace() error {
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, m := range mounts {
		fmt.Fprintf(&script, "mkdir -p %s\nmount --bind %s %s\n", m[1], shellQuote(filepath.Join(d.Dir, m[0])), m[1])
	}
	for _, dir := range d.cfg.Own {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
			return fmt.Errorf("the namespace's own directory %q: want a clean absolute path other than /", dir)
		}
		own := d.OwnPath(dir)
		if err := os.MkdirAll(own, 0o755); err != nil {
			return err
		}
		fmt.Fprintf(&script, "mkdir -p %s\nmount --bind %s %s\n", shellQuote(dir), shellQuote(own), shellQuote(dir))
	}
	fmt.Fprintf(&script, "echo $$ > /run/libvirt/%s\nexec sleep infinity\n", holderPid)
	_ = os.Remove(filepath.Join(d.Dir, "run", holderPid))
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if d.alive(holderPid, "sleep") {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the mount namespace of the libvirt daemon: %v: %s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("the mount namespace of the libvirt daemon was not ready within 10 s: %s", out.String())
}

// Command is a command that runs in the daemon's mount namespace (what it
// sees of the files is what the daemon sees), in a session of its own.
func (d *Daemon) Command(name string, args ...string) *exec.Cmd {
	all := append([]string{"-t", strconv.Itoa(d.pid(holderPid)), "-m", "--", name}, args...)
	cmd := exec.Command("nsenter", all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

// inNamespace runs a program that daemonizes itself in the namespace and
// waits for its foreground part.
func (d *Daemon) inNamespace(name string, args ...string) error {
	cmd := d.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// StartLibvirtd starts libvirtd in the namespace (it must not run) and
// waits until it answers.
func (d *Daemon) StartLibvirtd(ctx context.Context) error {
	if d.LibvirtdPid() != 0 {
		return errors.New("libvirtd runs already")
	}
	_ = os.Remove(d.Socket)
	args := []string{"-d", "-f", "/etc/libvirt/libvirtd.conf", "-p", "/run/libvirt/" + libvirtdPid}
	if d.cfg.TLS != nil {
		args = append(args, "--listen")
	}
	if err := d.inNamespace("libvirtd", args...); err != nil {
		return fmt.Errorf("libvirtd: %w\n%s", err, d.LogTail(4000))
	}
	return d.waitAnswer(ctx, 60*time.Second)
}

// waitAnswer waits until libvirtd answers on its socket, with the guests
// its QEMU runs (a fresh daemon probes QEMU first: a client asking sooner
// would see no emulated machines).
func (d *Daemon) waitAnswer(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if c, err := libvirtconn.Dial(d.URI, 2*time.Second); err == nil {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			x, err := c.Capabilities(cctx)
			cancel()
			c.Close()
			if err == nil && (strings.Contains(x, "<guest>") || time.Now().After(deadline)) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the libvirt daemon in %s did not answer within %s\n%s", d.Dir, within, d.LogTail(4000))
		}
		if d.pid(libvirtdPid) != 0 && !d.alive(libvirtdPid, "libvirtd") {
			return fmt.Errorf("the libvirt daemon in %s exited at start\n%s", d.Dir, d.LogTail(4000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// KillLibvirtd sends libvirtd a signal (SIGKILL: a daemon that dies) and
// waits until it is gone; its QEMU processes run on.
func (d *Daemon) KillLibvirtd(sig syscall.Signal) error {
	pid := d.LibvirtdPid()
	if pid == 0 {
		return errors.New("libvirtd does not run")
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	return waitGone(pid, 30*time.Second)
}

// waitGone waits until a process is gone.
func waitGone(pid int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("process %d did not end within %s", pid, within)
}

// QEMUPids are the process ids of the daemon's running QEMU processes
// (its pid files).
func (d *Daemon) QEMUPids() []int {
	files, _ := filepath.Glob(filepath.Join(d.Dir, "run", "qemu", "*.pid"))
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && isProgram(pid, "qemu") {
			out = append(out, pid)
		}
	}
	return out
}

// Stop ends the daemon: with removeDomains every domain first (destroyed
// and undefined through libvirtd, and QEMU processes that remain killed
// by their pid files), then libvirtd (SIGTERM, SIGKILL after 30 s),
// virtlogd and the holder, each by its pid file. Without removeDomains
// running QEMU processes stay (a later Start finds them).
func (d *Daemon) Stop(ctx context.Context, removeDomains bool) error {
	var errs []error
	if removeDomains {
		if d.LibvirtdPid() != 0 {
			if err := d.removeDomains(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		for _, pid := range d.QEMUPids() {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			_ = waitGone(pid, 10*time.Second)
		}
	}
	if pid := d.LibvirtdPid(); pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if waitGone(pid, 30*time.Second) != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if err := waitGone(pid, 10*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, p := range [][2]string{{virtlogdPid, "virtlogd"}, {holderPid, "sleep"}} {
		if !d.alive(p[0], p[1]) {
			continue
		}
		if removeDomains || p[0] == holderPid || len(d.QEMUPids()) == 0 {
			pid := d.pid(p[0])
			_ = syscall.Kill(pid, syscall.SIGTERM)
			if err := waitGone(pid, 10*time.Second); err != nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return errors.Join(errs...)
}

// removeDomains destroys and undefines every domain of the daemon.
func (d *Daemon) removeDomains(ctx context.Context) error {
	c, err := libvirtconn.DialDomains(d.URI, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	doms, err := c.ListDomains(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, dom := range doms {
		if st, err := c.DomainState(ctx, dom); err == nil && st != libvirtconn.StateShutoff {
			if err := c.DestroyDomain(ctx, dom); err != nil && !errors.Is(err, libvirtconn.ErrNoDomain) {
				errs = append(errs, err)
			}
		}
		if err := c.UndefineDomain(ctx, dom, libvirtconn.UndefineAll); err != nil && !errors.Is(err, libvirtconn.ErrNoDomain) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LogTail is the end of libvirtd's log (at most n bytes).
func (d *Daemon) LogTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "log", "libvirtd.log"))
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(b)
}

func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return libvirtconn.FormatUUID(u)
}

func randN(n int) int {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return (int(b[0])<<8 | int(b[1])) % n
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// migrationBlock is the first of 64 incoming migration ports chosen at
// random above the ephemeral range rangeFile gives (Linux's default
// 32768–60999; ports below it are the displays' and the labs'): inside it,
// any process's outgoing connection could hold the port libvirt gives an
// incoming migration, and QEMU's migrate-incoming failed with "Failed to
// find an available port: Address already in use". When the range leaves
// fewer than 8 blocks above it (or cannot be read), a block above Linux's
// default range is used: 61000–65535.
func migrationBlock(rangeFile string) int {
	first := portrange.DefaultHigh + 1
	if _, hi, err := portrange.Read(rangeFile); err == nil && hi >= 1024 && hi+1+8*64 <= 65536 {
		first = hi + 1
	}
	return first + 64*randN((65536-first)/64)
}
