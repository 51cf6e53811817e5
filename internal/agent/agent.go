package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/caps"
	"polyvirt/internal/firmware"
	"polyvirt/internal/hostinfo"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/hoststats"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/profiles"
)

// Agent is one running host agent.
type Agent struct {
	cfg Config
	log *slog.Logger

	// realArch is the architecture of the machine the agent runs on, as
	// its files say (hostinfo); fake says whether VMs run in fake-KVM mode.
	realArch arch.Arch
	fake     bool

	conn *connManager

	capsMu   sync.RWMutex
	capsRes  *caps.Result
	capsDoc  []byte // the report as served, and its ETag
	capsETag string
	capsSeen string // fingerprint of what can change the report
	capsTime time.Time

	index *vmIndex
	locks *keyedMutex
	hub   *eventHub

	stats *statsKeeper
	fw    *firmware.Manager

	// root is the host's root directory, from which the VMs' host paths
	// are followed; paths is where those may lead (host_paths).
	root  string
	paths hostpath.Policy
}

// New makes an agent from a configuration (defaults applied) and decides
// fake-KVM mode. It reads the host but does not contact libvirt yet.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	// The machine the agent runs on (its libvirtd's), read through its
	// root, whatever host a profile presents.
	root := "/"
	machine, err := hostinfo.Read(os.DirFS(root), hostinfo.Options{})
	if err != nil {
		return nil, fmt.Errorf("reading this host: %w", err)
	}
	if machine.Arch == arch.Unknown {
		return nil, fmt.Errorf("this host's architecture cannot be read (%s, %s)", hostinfo.KernelArchPath, hostinfo.CPUInfoPath)
	}
	a := &Agent{
		cfg:      cfg,
		log:      log.With("host", cfg.HostID),
		realArch: machine.Arch,
		index:    newVMIndex(),
		locks:    newKeyedMutex(),
		hub:      newEventHub(),
		root:     root,
		paths:    cfg.HostPaths.Policy(),
	}
	a.fake, err = decideFake(cfg, machine)
	if err != nil {
		return nil, err
	}
	a.conn = newConnManager(cfg.LibvirtURI, a.log)
	a.stats = newStatsKeeper(hoststats.NewSampler(os.DirFS(root)))
	for _, d := range []string{cfg.DataDir, a.consoleDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	a.warnWritablePlaces()
	return a, nil
}

// decideFake applies the fake_kvm setting: auto turns fake KVM on when KVM
// cannot run guests on the machine or the host presents another
// architecture.
func decideFake(cfg Config, machine *hostinfo.Host) (bool, error) {
	real := machine.Arch
	effective := real
	if cfg.FakeArch != arch.Unknown {
		effective = cfg.FakeArch
	}
	if cfg.Profile != "" {
		p, err := profiles.Get(cfg.Profile)
		if err != nil {
			return false, err
		}
		if cfg.FakeArch == arch.Unknown {
			effective = p.Arch
		}
	}
	switch cfg.FakeKVM {
	case FakeOn:
		return true, nil
	case FakeOff:
		return false, nil
	}
	if effective != real || cfg.Profile != "" {
		return true, nil
	}
	spec, err := archspec.For(real)
	if err != nil {
		return true, nil
	}
	ok, _ := spec.KVMUsable(machine.KVMDevice, machine.CPU.Flags)
	return !ok, nil
}

// HostID is the agent's host id.
func (a *Agent) HostID() string { return a.cfg.HostID }

// FakeKVM reports whether VMs run in fake-KVM mode.
func (a *Agent) FakeKVM() bool { return a.fake }

// Config is the configuration in effect.
func (a *Agent) Config() Config { return a.cfg }

func (a *Agent) consoleDir() string { return filepath.Join(a.cfg.DataDir, "consoles") }

// Start connects to libvirt, recovers the VMs this host owns, and starts
// the background work (events, statistics, capabilities refresh) until ctx
// ends. A libvirt that is down is retried in the background.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.openFirmware(ctx); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	if _, err := a.Capabilities(ctx, false); err != nil {
		return err
	}
	if c, err := a.conn.get(); err == nil {
		if err := a.recover(ctx, c); err != nil {
			a.log.Warn("recovery incomplete", "err", err)
		}
	} else {
		a.log.Warn("libvirt is not reachable yet; retrying", "err", err)
	}
	go a.watchLibvirt(ctx)
	go a.stats.run(ctx, a, a.cfg.StatsInterval.Duration)
	go a.watchCapabilities(ctx)
	return nil
}

// collectOptions are the caps options of this agent: its profile or the
// live host, the live libvirtd, its fake architecture.
func (a *Agent) collectOptions() caps.Options {
	o := caps.Options{Profile: a.cfg.Profile, LibvirtURI: a.cfg.LibvirtURI}
	if a.fake {
		o.FakeArch = a.cfg.FakeArch
		if o.FakeArch == arch.Unknown && a.cfg.Profile == "" {
			o.FakeArch = a.realArch
		}
	}
	return o
}

// Capabilities returns the cached report, collecting it when there is none
// or refresh is asked.
func (a *Agent) Capabilities(ctx context.Context, refresh bool) (*hostreport.Report, error) {
	a.capsMu.RLock()
	res := a.capsRes
	a.capsMu.RUnlock()
	if res != nil && !refresh {
		return res.Report, nil
	}
	res, err := caps.Collect(ctx, a.collectOptions())
	if err != nil {
		return nil, fmt.Errorf("capabilities: %w", err)
	}
	a.withFirmwareLevels(ctx, res.Report)
	res.Report.HostPaths = &hostreport.HostPaths{Disk: a.paths.Disk, CDROM: a.paths.CDROM, Kernel: a.paths.Kernel,
		Initrd: a.paths.Initrd, BlockDevices: a.paths.BlockDevices}
	doc, err := json.MarshalIndent(res.Report, "", "  ")
	if err != nil {
		return nil, err
	}
	doc = append(doc, '\n')
	sum := sha256.Sum256(doc)
	a.capsMu.Lock()
	a.capsRes, a.capsTime, a.capsSeen = res, time.Now(), a.capsFingerprint()
	a.capsDoc, a.capsETag = doc, `"`+hex.EncodeToString(sum[:16])+`"`
	a.capsMu.Unlock()
	return res.Report, nil
}

// capabilitiesDocument returns the report as JSON with its ETag (the hash
// of the document), computed once per collection.
func (a *Agent) capabilitiesDocument(ctx context.Context, refresh bool) ([]byte, string, error) {
	if _, err := a.Capabilities(ctx, refresh); err != nil {
		return nil, "", err
	}
	a.capsMu.RLock()
	defer a.capsMu.RUnlock()
	return a.capsDoc, a.capsETag, nil
}

// capsFingerprint summarizes what can change the report: the online CPUs,
// the memory, the libvirt connection generation.
func (a *Agent) capsFingerprint() string {
	online, _ := os.ReadFile("/sys/devices/system/cpu/online")
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m, err := hoststats.ParseMeminfo(b); err == nil {
			mem = fmt.Sprint(m.TotalKiB)
		}
	}
	return fmt.Sprintf("%s|%s|%d", online, mem, a.conn.generation())
}

// watchCapabilities refreshes the report when what it depends on changes:
// CPUs brought on- or offline, memory hot-plugged, libvirt reconnected
// (perhaps upgraded).
func (a *Agent) watchCapabilities(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.capsMu.RLock()
		seen := a.capsSeen
		a.capsMu.RUnlock()
		if a.capsFingerprint() != seen {
			if _, err := a.Capabilities(ctx, true); err != nil {
				a.log.Warn("capabilities refresh failed", "err", err)
			} else {
				a.log.Info("capabilities refreshed")
			}
		}
	}
}

// watchLibvirt keeps the event subscription alive: on every (re)connection
// it recovers the VM index and subscribes to lifecycle events again.
func (a *Agent) watchLibvirt(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		c, err := a.conn.get()
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if backoff < 15*time.Second {
				backoff *= 2
			}
			continue
		}
		backoff = time.Second
		if err := a.recover(ctx, c); err != nil {
			a.log.Warn("recovery incomplete", "err", err)
		}
		evCtx, cancel := context.WithCancel(ctx)
		events, err := c.Events(evCtx)
		if err != nil {
			cancel()
			a.log.Warn("cannot subscribe to libvirt events", "err", err)
			a.conn.drop(c)
			continue
		}
		a.pumpEvents(evCtx, c, events)
		cancel()
		a.conn.drop(c)
		a.log.Warn("libvirt connection lost; reconnecting")
	}
}

// connManager holds the libvirt connection and redials it when it is lost.
type connManager struct {
	uri string
	log *slog.Logger

	mu   sync.Mutex
	c    libvirtconn.AgentConn
	gen  int
	dial func(uri string, timeout time.Duration) (libvirtconn.AgentConn, error)
}

func newConnManager(uri string, log *slog.Logger) *connManager {
	return &connManager{uri: uri, log: log, dial: libvirtconn.DialAgent}
}

// errLibvirtDown is returned when libvirt cannot be reached.
var errLibvirtDown = errors.New("libvirt is not reachable")

// get returns the live connection, dialling when there is none or the
// last one was lost.
func (m *connManager) get() (libvirtconn.AgentConn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c != nil {
		select {
		case <-m.c.Disconnected():
			m.c.Close()
			m.c = nil
		default:
			return m.c, nil
		}
	}
	c, err := m.dial(m.uri, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errLibvirtDown, err)
	}
	m.c = c
	m.gen++
	m.log.Info("connected to libvirt", "uri", m.uri)
	return c, nil
}

// drop forgets c if it is still the current connection.
func (m *connManager) drop(c libvirtconn.AgentConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == c {
		m.c.Close()
		m.c = nil
	}
}

func (m *connManager) generation() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// close ends the connection.
func (m *connManager) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c != nil {
		m.c.Close()
		m.c = nil
	}
}

// keyedMutex serializes the operations on one key (a VM id) and lets
// different keys proceed in parallel.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

func newKeyedMutex() *keyedMutex { return &keyedMutex{locks: map[string]*refMutex{}} }

// lock locks key and returns its unlock function.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	m := k.locks[key]
	if m == nil {
		m = &refMutex{}
		k.locks[key] = m
	}
	m.refs++
	k.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		m.refs--
		if m.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
