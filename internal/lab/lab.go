// Package lab runs polyvirt's all-in-one lab on one machine — what
// `polyvirt up` supervises: the engine (in this process, on SQLite in the
// lab's directory) and one agent process per local host on this machine's
// libvirtd (this machine's architecture, and a fake-KVM IBM POWER8),
// enrolled with the engine through one-time join tokens as real hosts are.
//
// Start makes or finds the lab and returns once its hosts are admitted;
// Stop ends the agents and the engine, not the VMs: the next Start finds
// them again. The end-to-end tests use it as `polyvirt up` does.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/agent"
	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/engine"
	"polyvirt/internal/hostinfo"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/libvirtns"
	"polyvirt/internal/libvirttls"
	"polyvirt/internal/localsock"
	"polyvirt/internal/pki"
)

// Options configure a lab.
type Options struct {
	// Dir is the lab's directory (engine, agents, logs, RecordFile); it is
	// created when missing.
	Dir string
	// Listen is the engine's HTTPS address: "" is the last run's, else
	// DefaultListen; a port 0 picks a free port.
	Listen string
	// Libvirt is the agents' libvirt URI ("" is libvirtconn.DefaultURI).
	Libvirt string
	// NamePrefix starts the names of the hosts and clusters the first run
	// plans (several labs beside one another).
	NamePrefix string
	// DomainPrefix starts the libvirt domain names of the lab's VMs, before
	// the host's name ("" is DefaultDomainPrefix); read on the first run.
	DomainPrefix string
	// Executable is the polyvirt binary the agents run ("" is this
	// process's executable).
	Executable string
	// Monitor configures the engine's monitoring of the hosts (zero values
	// are the engine's defaults; HostsReload defaults to 2 s here).
	Monitor engine.MonitorConfig
	// HADelay is how long a host is NonResponsive before its HA VMs start
	// elsewhere (0 is at once).
	HADelay time.Duration
	// AgentStatsInterval is how often the agents sample their statistics
	// (default 2 s).
	AgentStatsInterval time.Duration
	// HostsTimeout bounds the wait for the hosts' admission (default 2 min).
	HostsTimeout time.Duration
	// Root is this machine's filesystem root, read for its architecture on
	// the first run (nil is /).
	Root fs.FS
	// SecondNative adds, on the first run, a second host of this machine's
	// architecture (ARCH-b, in ARCH-a's cluster) on a libvirtd of the
	// lab's own, as power8-b is for POWER: VMs of that architecture
	// migrate between the two (polyvirt up does not ask for it; tests do).
	SecondNative bool
	// ThirdPower adds, on the first run, a third fake-KVM POWER8,
	// power8-c, in power8-a's cluster on another libvirtd of the lab's
	// own (a cluster of three POWER hosts for rolling firmware updates;
	// polyvirt up does not ask for it, tests do).
	ThirdPower bool
	// Notes receives what the supervisor has to say while the lab runs (an
	// agent that exited and is started again); nil discards it.
	Notes io.Writer
	// EngineProcess runs the engine as a child process (polyvirt engine
	// run, supervised and started again as the agents are) instead of in
	// this process: tests kill it (EnginePID) as a crash would.
	EngineProcess bool
}

// NoLibvirtError: the lab's libvirt daemon does not answer.
type NoLibvirtError struct {
	// URI is the libvirt URI dialled.
	URI string
	// Err is the dial's error.
	Err error
}

func (e *NoLibvirtError) Error() string {
	return fmt.Sprintf("libvirt does not answer at %s: %v", e.URI, e.Err)
}

// Unwrap is the dial's error.
func (e *NoLibvirtError) Unwrap() error { return e.Err }

// Lab is a running lab.
type Lab struct {
	dir       string
	engineURL string
	created   bool
	token     string
	caPEM     []byte
	hosts     []Host
	api       *client.Client

	eng        *engine.Engine
	engLog     *os.File
	stopEngine context.CancelFunc
	engDone    chan struct{}
	engErr     error
	agents     *supervisor
	stopOnce   sync.Once
}

// Start makes the lab in o.Dir (its engine, its hosts' clusters, the hosts
// and their enrollment) on the first run, finds it on later runs, runs the
// engine and the agents, and returns once every host is admitted (Up or
// NonOperational). On an error nothing it started keeps running.
func Start(ctx context.Context, o Options) (_ *Lab, err error) {
	if o.Libvirt == "" {
		o.Libvirt = libvirtconn.DefaultURI
	}
	if o.AgentStatsInterval <= 0 {
		o.AgentStatsInterval = 2 * time.Second
	}
	if o.HostsTimeout <= 0 {
		o.HostsTimeout = 2 * time.Minute
	}
	if o.DomainPrefix == "" {
		o.DomainPrefix = DefaultDomainPrefix
	}
	if o.Notes == nil {
		o.Notes = io.Discard
	}
	if o.Root == nil {
		o.Root = os.DirFS("/")
	}
	if o.Executable == "" {
		if o.Executable, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("the polyvirt binary the agents run: %v", err)
		}
	}
	c, err := libvirtconn.Dial(o.Libvirt, 5*time.Second)
	if err != nil {
		return nil, &NoLibvirtError{URI: o.Libvirt, Err: err}
	}
	c.Close()
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{dir, filepath.Join(dir, "logs"), filepath.Join(dir, "agents")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	rec, err := loadRecord(dir)
	if err != nil {
		return nil, err
	}
	if o.Listen != "" {
		rec.Listen = o.Listen
	}
	if rec.Listen == "" {
		rec.Listen = DefaultListen
	}
	// power8-b needs a libvirtd of the lab's own: root, and libvirtd,
	// virtlogd, unshare and nsenter on this machine.
	ownDaemons := libvirtns.Require() == ""
	if why := libvirtns.Require(); why != "" {
		fmt.Fprintf(o.Notes, "polyvirt up: no second POWER host (power8-b) on a libvirtd of the lab's own: %s\n", why)
	}
	if len(rec.Hosts) == 0 {
		native, _, err := hostinfo.DetectArch(o.Root)
		if err != nil {
			return nil, fmt.Errorf("this machine's architecture: %v", err)
		}
		if rec.Hosts, err = planHosts(native, o.NamePrefix, o.DomainPrefix, ownDaemons); err != nil {
			return nil, err
		}
		if o.SecondNative && ownDaemons {
			b, err := secondNative(rec.Hosts[0], o.NamePrefix, native, o.DomainPrefix)
			if err != nil {
				return nil, err
			}
			rec.Hosts = append(rec.Hosts, b)
		}
		if o.ThirdPower && ownDaemons {
			c := thirdPower(o.NamePrefix)
			if err := c.complete(o.DomainPrefix); err != nil {
				return nil, err
			}
			rec.Hosts = append(rec.Hosts, c)
		}
	} else if _, err := rec.upgrade(ownDaemons); err != nil {
		return nil, err
	}
	l := &Lab{dir: dir, hosts: rec.Hosts, engDone: make(chan struct{})}
	engDir := l.engineDir()
	if _, err := os.Stat(filepath.Join(engDir, engine.FileSettings)); errors.Is(err, os.ErrNotExist) {
		res, err := engine.Init(ctx, engine.InitOptions{DataDir: engDir, Name: "localhost", Addresses: []string{"127.0.0.1"}, Listen: rec.Listen})
		if err != nil {
			return nil, err
		}
		if err := pki.WriteFile(l.TokenFile(), []byte(res.AdminToken+"\n"), 0o600); err != nil {
			return nil, err
		}
		l.created = true
	}
	if l.token, err = client.ReadTokenFile(l.TokenFile()); err != nil {
		return nil, fmt.Errorf("%v (the lab's administrator token; remove %s to start a new lab)", err, dir)
	}
	if l.caPEM, err = os.ReadFile(l.CAFile()); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", rec.Listen)
	if err != nil {
		return nil, fmt.Errorf("the engine cannot listen on %s (another polyvirt up? choose another address with --listen): %v", rec.Listen, err)
	}
	l.engineURL = engineURLFor(ln.Addr())
	rec.EngineURL = l.engineURL
	if err := saveRecord(dir, rec); err != nil {
		ln.Close()
		return nil, err
	}
	l.agents = &supervisor{exe: o.Executable, dir: dir, libvirt: o.Libvirt, stats: o.AgentStatsInterval, note: o.Notes}
	if o.EngineProcess {
		// The address is the engine process's now (it listens again on
		// each start).
		addr := ln.Addr().String()
		ln.Close()
		err = l.agents.run("engine", "engine", func() *exec.Cmd { return exec.Command(o.Executable, engineArgs(engDir, addr, l.engineURL, o)...) })
	} else {
		err = l.startEngine(ctx, ln, o)
	}
	if err != nil {
		l.agents.stop()
		return nil, err
	}
	defer func() {
		if err != nil {
			l.Stop()
		}
	}()
	if l.api, err = client.New(client.Options{Engine: l.engineURL, Token: l.token, CAPEM: l.caPEM, Timeout: 30 * time.Second}); err != nil {
		return nil, err
	}
	if err := waitHealthy(ctx, l.api); err != nil {
		return nil, err
	}
	if err := l.webPassword(ctx); err != nil {
		return nil, err
	}
	for _, h := range l.hosts {
		if err := enrollHost(ctx, l.api, l.engineURL, dir, h); err != nil {
			return nil, err
		}
		if h.OwnDaemon {
			d, err := startDaemon(ctx, dir, h)
			if err != nil {
				return nil, fmt.Errorf("host %s: %w", h.Name, err)
			}
			l.agents.setDaemon(h.Name, d)
		}
		if err := l.agents.start(h); err != nil {
			return nil, err
		}
	}
	if err := l.waitHosts(ctx, o.HostsTimeout); err != nil {
		return nil, err
	}
	return l, nil
}

// LocalDisksDir is a directory of disk images each host of the lab has for
// itself: the hosts on this machine's libvirtd share this machine's, a host
// on a libvirtd of the lab's own has its own (libvirtns.Config.Own). A disk
// there is its host's only: a VM that migrates takes a copy along.
const LocalDisksDir = hostpath.ImagesDir + "/local"

// daemonDir is the directory of a host's libvirtd of the lab's own.
func daemonDir(dir, host string) string { return filepath.Join(dir, "daemons", host) }

// startDaemon starts (or finds running) the libvirtd of the lab's own of a
// host: it listens for TLS at the host's migration address with the
// libvirt certificate its agent received at join. It keeps running after
// the lab stops (its VMs run on, as on this machine's libvirtd); Down
// stops it.
func startDaemon(ctx context.Context, dir string, h Host) (*libvirtns.Daemon, error) {
	files := libvirttls.Files{Dir: filepath.Join(agentDir(dir, h.Name), agent.LibvirtPKIDir)}
	cfg := libvirtns.Config{Dir: daemonDir(dir, h.Name), Own: []string{LocalDisksDir}}
	if files.Exists() && h.Migration != "" {
		host, port, err := net.SplitHostPort(h.Migration)
		if err != nil {
			return nil, err
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("migration address %q: %v", h.Migration, err)
		}
		cfg.TLS, cfg.Listen = &files, libvirttls.Listen{Addr: host, Port: p}
	}
	return libvirtns.Start(ctx, cfg)
}

// Daemon is the libvirtd of the lab's own a host runs on (nil for a host
// on this machine's libvirtd).
func (l *Lab) Daemon(host string) *libvirtns.Daemon {
	if l.agents == nil {
		return nil
	}
	return l.agents.daemon(host)
}

// Down stops the libvirt daemons of the lab's own in dir, and the VMs on
// them (the lab must not run): what polyvirt up leaves running when it
// stops.
func Down(ctx context.Context, dir string) error {
	rec, err := loadRecord(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range rec.Hosts {
		if !h.OwnDaemon {
			continue
		}
		d, err := libvirtns.Open(libvirtns.Config{Dir: daemonDir(dir, h.Name)})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := d.Stop(ctx, true); err != nil {
			errs = append(errs, fmt.Errorf("host %s's libvirtd: %w", h.Name, err))
		}
	}
	return errors.Join(errs...)
}

// startEngine opens the engine on ln, in this process, its log in the
// lab's logs.
func (l *Lab) startEngine(ctx context.Context, ln net.Listener, o Options) error {
	logf, err := os.OpenFile(l.EngineLog(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		ln.Close()
		return err
	}
	mon, haDelay := o.engineSettings()
	// The engine's local socket too (the CLI on this machine without
	// TLS: POLYVIRT_ENGINE=unix://PATH), when its path fits a socket's.
	sock := strings.TrimPrefix(l.EngineSocket(), "unix://")
	eng, err := engine.Open(ctx, engine.Config{DataDir: l.engineDir(), Listen: ln.Addr().String(), URL: l.engineURL, Socket: sock, Monitor: mon,
		VMs: engine.VMConfig{HADelay: haDelay}, Logger: slog.New(slog.NewTextHandler(logf, nil))})
	if err != nil {
		ln.Close()
		logf.Close()
		return err
	}
	l.eng, l.engLog = eng, logf
	engCtx, stop := context.WithCancel(context.Background())
	l.stopEngine = stop
	go func() {
		l.engErr = eng.Serve(engCtx, ln)
		close(l.engDone)
	}()
	go func() {
		if err := eng.ServeSocket(engCtx); err != nil {
			fmt.Fprintf(logf, "the engine's local socket is not served: %v\n", err)
		}
	}()
	return nil
}

// engineSettings are the lab engine's monitoring settings and HA delay:
// the options', with the lab's defaults (hosts reloaded every 2 s, HA
// restarts at once).
func (o Options) engineSettings() (engine.MonitorConfig, time.Duration) {
	mon := o.Monitor
	if mon.HostsReload == 0 {
		mon.HostsReload = 2 * time.Second
	}
	haDelay := o.HADelay
	if haDelay == 0 {
		haDelay = -1 // the engine's "at once"
	}
	return mon, haDelay
}

// engineArgs are the command line of the engine run as a process
// (Options.EngineProcess), with the lab's settings.
func engineArgs(dataDir, listen, url string, o Options) []string {
	mon, haDelay := o.engineSettings()
	args := []string{"engine", "run", "--data-dir", dataDir, "--listen", listen, "--url", url, "--ha-delay", haDelay.String()}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--stats-interval", mon.StatsInterval}, {"--caps-interval", mon.CapsInterval}, {"--poll-timeout", mon.PollTimeout},
		{"--hosts-reload", mon.HostsReload}, {"--stats-flush", mon.StatsFlush}, {"--stats-write", mon.StatsWrite}, {"--leader-retry", mon.LeaderRetry}} {
		if d.v > 0 {
			args = append(args, d.flag, d.v.String())
		}
	}
	if mon.Failures > 0 {
		args = append(args, "--failures", strconv.Itoa(mon.Failures))
	}
	return args
}

// Stop ends the agents and the engine; the VMs keep running (the next
// Start finds them). It may be called more than once.
func (l *Lab) Stop() {
	l.stopOnce.Do(func() {
		if l.agents != nil {
			l.agents.stop()
		}
		if l.stopEngine != nil {
			l.stopEngine()
			<-l.engDone
			l.eng.Close()
			l.engLog.Close()
		} else {
			close(l.engDone)
		}
	})
}

// Done is closed when the engine stopped serving: after Stop, or by itself
// (Err says why; an engine run as a process is started again instead).
func (l *Lab) Done() <-chan struct{} { return l.engDone }

// Err is why the engine stopped serving, once Done is closed.
func (l *Lab) Err() error {
	select {
	case <-l.engDone:
		return l.engErr
	default:
		return nil
	}
}

// Dir is the lab's directory.
func (l *Lab) Dir() string { return l.dir }

// Created tells whether this Start made a new engine (a first run).
func (l *Lab) Created() bool { return l.created }

// EngineURL is the engine's URL (https://127.0.0.1:PORT).
func (l *Lab) EngineURL() string { return l.engineURL }

// EngineSocket is the engine's local socket as a CLI on this machine
// names it (unix:///PATH), "" when the lab's path is too long for one
// (Start serves it in the engine's directory).
func (l *Lab) EngineSocket() string {
	if sock := filepath.Join(l.engineDir(), "engine.sock"); len(sock) <= localsock.MaxPathLen {
		return "unix://" + sock
	}
	return ""
}

// Token is the administrator's API token.
func (l *Lab) Token() string { return l.token }

// TokenFile holds the administrator's API token.
func (l *Lab) TokenFile() string { return filepath.Join(l.dir, "admin.token") }

// PasswordFile holds the administrator's web UI password (Start gives the
// administrator one when the file is missing).
func (l *Lab) PasswordFile() string { return filepath.Join(l.dir, "admin.password") }

// CAPEM is the engine CA (PEM): clients trust the engine through it.
func (l *Lab) CAPEM() []byte { return l.caPEM }

// CAFile is the engine CA's file.
func (l *Lab) CAFile() string { return filepath.Join(l.engineDir(), engine.FileCA) }

// Database is the engine's SQLite database file.
func (l *Lab) Database() string { return filepath.Join(l.engineDir(), "polyvirt.db") }

// EngineLog is the engine's log file.
func (l *Lab) EngineLog() string { return logPath(l.dir, "engine") }

// HostLog is a host's agent log file.
func (l *Lab) HostLog(host string) string { return logPath(l.dir, host) }

// Client is a client of the engine, as the administrator.
func (l *Lab) Client() *client.Client { return l.api }

// AgentDir is a host's agent's data directory (its simulated firmware
// is in agent.SimulatedFirmwareDir there).
func (l *Lab) AgentDir(host string) string { return agentDir(l.dir, host) }

// Hosts are the lab's hosts, this machine's architecture first.
func (l *Lab) Hosts() []Host { return append([]Host(nil), l.hosts...) }

// AgentPID is the process id of a host's agent (0 when it does not run).
func (l *Lab) AgentPID(host string) int {
	if l.agents == nil {
		return 0
	}
	return l.agents.pid(host)
}

// EnginePID is the process id of the engine run as a process
// (Options.EngineProcess; 0 when it does not run, or runs in this
// process).
func (l *Lab) EnginePID() int {
	if l.agents == nil || l.stopEngine != nil {
		return 0
	}
	return l.agents.pid("engine")
}

func (l *Lab) engineDir() string { return filepath.Join(l.dir, "engine") }

// webPassword gives the administrator a random web UI password, kept in
// PasswordFile (readable by its owner only), on the first run or when the
// file is gone.
func (l *Lab) webPassword(ctx context.Context) error {
	path := l.PasswordFile()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return err
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	pw := base64.RawURLEncoding.EncodeToString(b)
	if err := l.api.SetPassword(ctx, "admin", pw); err != nil {
		return fmt.Errorf("the administrator's web UI password: %v", err)
	}
	return pki.WriteFile(path, []byte(pw+"\n"), 0o600)
}

func waitHealthy(ctx context.Context, api *client.Client) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := api.Health(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the engine does not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// enrollHost makes a host's cluster and the host, and enrolls its agent
// with a join token (once: an enrolled agent's directory has its
// enrollment record).
func enrollHost(ctx context.Context, eng *client.Client, engineURL, dir string, h Host) error {
	adir := agentDir(dir, h.Name)
	if _, err := os.Stat(filepath.Join(adir, agent.EnrollmentFile)); err == nil {
		return nil
	}
	if _, err := eng.Cluster(ctx, h.Cluster); api.CodeOf(err) == api.CodeNotFound {
		if _, err := eng.CreateCluster(ctx, engineapi.ClusterRequest{Name: h.Cluster, Arch: h.ClusterArch, CPUType: h.CPUType,
			Description: "made by polyvirt up"}); err != nil {
			return fmt.Errorf("cluster %s: %w", h.Cluster, err)
		}
	} else if err != nil {
		return err
	}
	var token string
	if _, err := eng.Host(ctx, h.Name, false); api.CodeOf(err) == api.CodeNotFound {
		jt, err := eng.AddHost(ctx, engineapi.HostRequest{Name: h.Name, Address: h.Address, Cluster: h.Cluster})
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		token = jt.Token
	} else if err != nil {
		return err
	} else {
		jt, err := eng.JoinToken(ctx, h.Name, "")
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		token = jt.Token
	}
	if _, err := agent.Join(ctx, engineURL, token, adir, 30*time.Second); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// admitted tells whether the engine has decided on a host.
func admitted(status string) bool { return status == "Up" || status == "NonOperational" }

// waitHosts waits until the engine admitted every host (Up or
// NonOperational); after within, the error says where each host is.
func (l *Lab) waitHosts(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var states []string
		done := 0
		for _, h := range l.hosts {
			wh, err := l.api.Host(ctx, h.Name, false)
			if err != nil {
				return err
			}
			s := h.Name + " " + wh.Status
			if wh.StatusCode != "" {
				s += " (" + wh.StatusCode + ": " + wh.StatusMessage + ")"
			}
			states = append(states, s)
			if admitted(wh.Status) {
				done++
			}
		}
		if done == len(l.hosts) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lab's hosts were not admitted within %s: %s (their logs are in %s)", within,
				strings.Join(states, ", "), filepath.Join(l.dir, "logs"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}
