package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/api/agentapi"
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

	// collectMu serializes collections; capsMu guards their result.
	collectMu sync.Mutex
	capsMu    sync.RWMutex
	capsRes   *caps.Result
	capsDoc   []byte // the report as served, and its ETag
	capsETag  string
	capsSeen  string // fingerprint of what the report was collected from
	// collectCaps collects a report (nil: caps.Collect; unit tests give
	// their own); firstCollectFor bounds how long the first collection
	// waits for libvirt to list the host's guests and emulated machines
	// (0: firstCollectDefault).
	collectCaps     func(context.Context, caps.Options) (*caps.Result, error)
	firstCollectFor time.Duration

	index *vmIndex
	locks *keyedMutex
	hub   *eventHub

	// vmConns, health and consoles are the running VMs' own connections,
	// QEMU gates and console drains (health.go, console.go); powerdowns the
	// shutdowns with a time-out in progress and powerdownBook their file
	// (powerdown.go; nil: not kept across restarts), taken over once after
	// the first recovery (resumePowerdownsOnce).
	vmConns              *vmConns
	health               *qemuHealth
	consoles             *consoleHub
	powerdowns           sync.Map // VM id → *powerdown
	powerdownBook        *powerdownBook
	resumePowerdownsOnce sync.Once
	// procFS is the host's /proc, where a QEMU that does not answer is
	// found to be killed (nil: never).
	procFS fs.FS

	stats *statsKeeper
	fw    *firmware.Manager
	// fwSimulated says where the simulated firmware is ("" for real).
	fwSimulated string
	// simClock is the simulated firmware's clock (time.Now when nil; tests
	// move it to make the simulated reboot happen).
	simClock func() time.Time
	// prom is the agent's Prometheus metrics (metrics.go).
	prom agentMetrics

	// root is the host's root directory, from which the VMs' host paths
	// are followed; paths is where those may lead (host_paths).
	root  string
	paths hostpath.Policy
	// hostFS is the root the host's facts and statistics are read from:
	// the machine's (root), or the profile's when the host presents one,
	// so that a profile host's CPUs and memory are the profile's.
	hostFS fs.FS

	// mig are the migrations this host sends and the VMs announced to it.
	mig migrations
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
	a.hostFS = os.DirFS(root)
	if cfg.Profile != "" {
		p, err := profiles.Get(cfg.Profile)
		if err != nil {
			return nil, err
		}
		a.hostFS = p.Root
	}
	a.conn = newConnManager(cfg.LibvirtURI, a.log)
	a.initRuntime()
	a.procFS = os.DirFS(filepath.Join(root, "proc"))
	a.stats = newStatsKeeper(hoststats.NewSampler(a.hostFS))
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

// initRuntime makes what the agent keeps per running VM.
func (a *Agent) initRuntime() {
	a.vmConns = newVMConns(a.conn)
	a.health = newQEMUHealth()
	a.consoles = newConsoleHub(a)
}

// forgetRuntime drops what the agent keeps for a running VM: its QEMU
// stopped, or the VM went.
func (a *Agent) forgetRuntime(id string) {
	a.health.forget(id)
	a.vmConns.drop(id)
	a.consoles.stop(id)
	if pd, ok := a.powerdowns.LoadAndDelete(id); ok {
		pd.(*powerdown).cancel()
	}
}

// HostID is the agent's host id.
func (a *Agent) HostID() string { return a.cfg.HostID }

// FakeKVM reports whether VMs run in fake-KVM mode.
func (a *Agent) FakeKVM() bool { return a.fake }

// Config is the configuration in effect.
func (a *Agent) Config() Config { return a.cfg }

func (a *Agent) consoleDir() string { return filepath.Join(a.cfg.DataDir, "consoles") }

// Start connects to libvirt, recovers the VMs this host owns, and starts
// the background work (events, statistics) until ctx
// ends. A libvirt that is down is retried in the background.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.openFirmware(ctx); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	book, err := openPowerdownBook(a.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("shutdowns with a time-out: %w", err)
	}
	a.powerdownBook = book
	if _, err := a.Capabilities(ctx, false); err != nil {
		return err
	}
	a.runMigrations(ctx)
	if err := a.serveLibvirtFront(ctx); err != nil {
		return err
	}
	if c, err := a.conn.get(); err == nil {
		if err := a.recover(ctx, c); err != nil {
			a.log.Warn("recovery incomplete", "err", err)
		}
		a.consoles.reconcile(ctx)
		a.adoptMigrations(ctx, c)
		a.resumePowerdownsOnce.Do(a.resumePowerdowns)
	} else {
		a.log.Warn("libvirt is not reachable yet; retrying", "err", err)
	}
	go a.watchLibvirt(ctx)
	go a.stats.run(ctx, a, a.cfg.StatsInterval.Duration)
	return nil
}

// collectOptions are the caps options of this agent: its profile or the
// live host, the live libvirtd, its fake-KVM mode and fake architecture.
// A host in fake-KVM mode as its own architecture (its KVM cannot run
// guests) still reports the machine's own CPU.
func (a *Agent) collectOptions() caps.Options {
	o := caps.Options{Profile: a.cfg.Profile, LibvirtURI: a.cfg.LibvirtURI, FakeKVM: a.fake}
	if a.fake {
		o.FakeArch = a.cfg.FakeArch
	}
	return o
}

// Capabilities returns the host's report. It is collected when there is
// none, when refresh is asked, and when what it was collected from changed
// (capsFingerprint: CPUs brought on- or offline, memory hot-plugged,
// libvirt reconnected, a firmware step or the host's reboot): every reader
// — the engine's poll, a VM's start — gets a report that lists the host as
// it is, not as it was. A collection that fails after such a change keeps
// the previous report (logged), and so does one whose libvirt answers
// without the machines the previous report had (lostMachines); one that is
// asked for returns what it found. The first waits a while for a libvirt
// that answers without the host's machines to list them (collectFirst).
func (a *Agent) Capabilities(ctx context.Context, refresh bool) (*hostreport.Report, error) {
	fp := a.capsFingerprint()
	if res := a.cachedCaps(fp, refresh); res != nil {
		return res.Report, nil
	}
	a.collectMu.Lock()
	defer a.collectMu.Unlock()
	if res := a.cachedCaps(fp, refresh); res != nil {
		return res.Report, nil // collected by another reader meanwhile
	}
	a.capsMu.RLock()
	prev, prevSeen := a.capsRes, a.capsSeen
	a.capsMu.RUnlock()
	var res *caps.Result
	var doc []byte
	var err error
	if prev == nil {
		res, doc, err = a.collectFirst(ctx)
	} else {
		res, doc, err = a.collect(ctx)
	}
	switch {
	case err == nil && ctx.Err() != nil:
		// The reader gave up during the collection, and libvirt's calls
		// may have failed with its context (a report of a libvirt
		// "unavailable: context canceled", kept, made the host
		// NonOperational without machines until something else changed):
		// not kept, the next reader collects again.
		a.log.Info("capabilities collected for a reader that gave up: not kept", "libvirt", libvirtAnswer(res.Report))
		if prev != nil {
			return prev.Report, nil
		}
		return res.Report, nil
	case err == nil && !refresh && lostMachines(prev, res):
		// Not kept: the next reader collects again, and the report
		// with the machines stays until libvirt lists them again.
		a.log.Warn("libvirt answered without the host's guests or emulated machines (probing its QEMU binaries again, or too busy to); the previous report stays",
			"was", prevSeen, "now", fp)
		return prev.Report, nil
	case err == nil:
		a.keep(res, doc, fp)
		if prev != nil && !refresh {
			a.log.Info("capabilities collected again: the host changed", "was", prevSeen, "now", fp,
				"libvirt", libvirtAnswer(prev.Report), "libvirtNow", libvirtAnswer(res.Report))
		}
	case prev != nil && !refresh:
		a.log.Warn("the host changed but its capabilities could not be collected again; the previous report stays", "err", err)
		return prev.Report, nil
	default:
		return nil, err
	}
	return res.Report, nil
}

// lostMachines tells whether a collection that was not asked for (the
// host changed) found libvirt without guests or emulated machines where
// the previous report had them: a daemon that probes its QEMU binaries
// again, or one too busy to answer the probe in time. The previous report
// stays then (the host would otherwise turn NonOperational, its machines
// "gone"); an explicit refresh, or a host that never had them, gets what
// libvirt says.
func lostMachines(prev, res *caps.Result) bool {
	return prev != nil && res != nil && libvirtStillProbing(res.Report) && !libvirtStillProbing(prev.Report) &&
		prev.Report != nil && prev.Report.Virt.Libvirt
}

// cachedCaps returns the cached result when it may be served for a reader
// that saw fingerprint fp (nil: collect).
func (a *Agent) cachedCaps(fp string, refresh bool) *caps.Result {
	a.capsMu.RLock()
	defer a.capsMu.RUnlock()
	if refresh || !a.capsCurrentLocked(fp) {
		return nil
	}
	return a.capsRes
}

// capsCurrentLocked tells whether the report kept is current for fp, the
// fingerprint read now, and may be served. The caller holds capsMu.
func (a *Agent) capsCurrentLocked(fp string) bool {
	return a.capsRes != nil && a.capsSeen == fp && !libvirtStillProbing(a.capsRes.Report)
}

// libvirtStillProbing tells whether a report was collected from a libvirtd
// that answered without any guest or emulated machine for the host's
// architecture: a daemon that just started answers before it has probed
// its QEMU binaries. Such a report is not kept: the next reader collects
// again (else the host would stay without emulated machines,
// NonOperational, until something else changed).
func libvirtStillProbing(r *hostreport.Report) bool {
	return r != nil && r.Virt.Libvirt && (len(r.Virt.Guests) == 0 || len(r.Virt.EmulatedMachines) == 0)
}

// The first collection's waits for a libvirt that answers without the
// host's guests or emulated machines: firstCollectDefault in all, retried
// after firstCollectRetryMin at first, doubling up to firstCollectRetryMax.
const (
	firstCollectDefault  = time.Minute
	firstCollectRetryMin = 500 * time.Millisecond
	firstCollectRetryMax = 8 * time.Second
)

// collectFirst is the agent's first collection (no report yet to keep
// instead): while libvirt answers without guests or emulated machines for
// the host (libvirtStillProbing: a daemon that just started, or one too
// busy to answer its probe of QEMU in time) it collects again, with
// back-off, for firstCollectFor at most (logged), so that the engine does
// not judge the host on an incomplete report (it would turn the host
// NonOperational, its machines "missing", until its next capabilities
// poll). After that, or when ctx ends, it returns what libvirt said: a host
// whose libvirt really offers no machine is reported as it is. A collection
// that fails is returned at once (its error says why).
func (a *Agent) collectFirst(ctx context.Context) (*caps.Result, []byte, error) {
	bound := a.firstCollectFor
	if bound <= 0 {
		bound = firstCollectDefault
	}
	deadline := time.Now().Add(bound)
	wait := firstCollectRetryMin
	for tries := 1; ; tries++ {
		res, doc, err := a.collect(ctx)
		if err != nil || !libvirtStillProbing(res.Report) {
			if err == nil {
				a.log.Info("capabilities collected", "libvirt", libvirtAnswer(res.Report), "collections", tries)
			}
			return res, doc, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			a.log.Warn("libvirt still lists no guest or emulated machine for this host; reporting it so",
				"collections", tries, "waited", bound)
			return res, doc, nil
		}
		wait = min(wait, left)
		a.log.Warn("libvirt answered without the host's guests or emulated machines (probing its QEMU binaries, or too busy to); collecting again",
			"in", wait, "collections", tries)
		select {
		case <-ctx.Done():
			return res, doc, nil
		case <-time.After(wait):
		}
		wait = min(2*wait, firstCollectRetryMax)
	}
}

// libvirtAnswer sums up what libvirt said in a report, for the log: its
// error, or how many guests and emulated machines it listed.
func libvirtAnswer(r *hostreport.Report) string {
	switch {
	case r == nil:
		return "none"
	case !r.Virt.Libvirt:
		return "unavailable: " + r.Virt.LibvirtError
	}
	return fmt.Sprintf("%d guests, %d emulated machines", len(r.Virt.Guests), len(r.Virt.EmulatedMachines))
}

// collect collects the report and its document (the caller keeps them or
// not). The caller holds collectMu.
func (a *Agent) collect(ctx context.Context) (*caps.Result, []byte, error) {
	collect := a.collectCaps
	if collect == nil {
		collect = caps.Collect
	}
	res, err := collect(ctx, a.collectOptions())
	if err != nil {
		return nil, nil, fmt.Errorf("capabilities: %w", err)
	}
	a.withFirmwareLevels(ctx, res.Report)
	res.Report.HostPaths = &hostreport.HostPaths{Disk: a.paths.Disk, CDROM: a.paths.CDROM, Kernel: a.paths.Kernel,
		Initrd: a.paths.Initrd, BlockDevices: a.paths.BlockDevices}
	doc, err := json.MarshalIndent(res.Report, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return res, append(doc, '\n'), nil
}

// keep makes a collected report and its document the ones served, with
// fp, the fingerprint read before collecting (a change during the
// collection is caught by the next reader).
func (a *Agent) keep(res *caps.Result, doc []byte, fp string) {
	sum := sha256.Sum256(doc)
	a.capsMu.Lock()
	a.capsRes, a.capsSeen = res, fp
	a.capsDoc, a.capsETag = doc, `"`+hex.EncodeToString(sum[:16])+`"`
	a.capsMu.Unlock()
}

// capsETagNow is the ETag of the report kept, without its quotes, when it
// is current (what the report reads did not change since it was
// collected, and libvirt had probed its QEMU binaries): what the
// statistics pushed to the engine say. "" when it must be collected first:
// the engine then asks GET /v1/capabilities, whose answer collects it.
func (a *Agent) capsETagNow() string {
	fp := a.capsFingerprint()
	a.capsMu.RLock()
	defer a.capsMu.RUnlock()
	if !a.capsCurrentLocked(fp) {
		return ""
	}
	return strings.Trim(a.capsETag, `"`)
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

// capsFingerprint summarizes what can change the report, cheaply enough to
// be read by every reader: the online CPUs and the memory (both read
// through the host's root: a profile's do not change), the libvirt
// connection generation, the firmware operation's progress (a flash, a
// commit, a reject change the levels the report lists) and the host's boot
// id as the firmware workflow reads it (a simulated firmware's reboot puts
// the new level on the temporary side without a step of its own).
func (a *Agent) capsFingerprint() string {
	fw := ""
	if a.fw != nil {
		op := a.fw.Status()
		fw = fmt.Sprintf("%s/%s/%d", op.ID, op.State, len(op.Steps))
		if id, err := a.fw.BootID(); err == nil {
			fw += "/" + id
		}
	}
	online := "unavailable"
	if set, err := hostinfo.ReadOnline(a.hostFS); err == nil {
		online = set.String()
	}
	mem := ""
	if m, err := hoststats.ReadMemory(a.hostFS); err == nil {
		mem = fmt.Sprint(m.TotalKiB)
	}
	return fmt.Sprintf("%s|%s|%d|%s", online, mem, a.conn.generation(), fw)
}

// watchLibvirt keeps the event subscription alive: on every (re)connection
// it subscribes to lifecycle events again, then recovers the VM index
// (publishing what changed while libvirt was away) and then passes the
// events on. Subscribing first leaves no gap: a change made while the index
// is being recovered (a VM destroyed through the API the moment the agent
// is back) comes as an event after the recovery, where the other order
// lost it. A lost daemon is redialled at once and then every reconnectMax
// at most.
func (a *Agent) watchLibvirt(ctx context.Context) {
	backoff := reconnectMin
	lost := false
	for ctx.Err() == nil {
		c, err := a.conn.get()
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, reconnectMax)
			continue
		}
		backoff = reconnectMin
		evCtx, cancel := context.WithCancel(ctx)
		events, err := c.Events(evCtx)
		if err != nil {
			cancel()
			a.log.Warn("cannot subscribe to libvirt events", "err", err)
			a.conn.drop(c)
			lost = true
			continue
		}
		// The events come while the index is recovered: libvirt's client
		// queues them until pumpEvents reads them.
		if err := a.resync(ctx, c, lost); err != nil {
			a.log.Warn("recovery incomplete", "err", err)
		}
		a.adoptMigrations(ctx, c)
		a.resumePowerdownsOnce.Do(a.resumePowerdowns)
		a.consoles.reconcile(ctx)
		a.pumpEvents(evCtx, c, events)
		cancel()
		a.conn.drop(c)
		a.vmConns.closeAll()
		if ctx.Err() == nil {
			lost = true
			a.log.Warn("libvirt connection lost; reconnecting")
			a.hub.publish(agentapi.Event{Time: time.Now().UTC(), Host: a.cfg.HostID, Event: agentapi.EventLibvirtLost,
				Detail: a.conn.status().Error})
		}
	}
}

// reconnectMin and reconnectMax bound the wait between two dials of a
// daemon that is away.
const (
	reconnectMin = 200 * time.Millisecond
	reconnectMax = 1 * time.Second
)

// dialTimeout bounds one dial of the daemon.
const dialTimeout = 5 * time.Second

// connManager holds the agent's main libvirt connection and redials it when
// it is lost. No lock is held while dialling: a caller waits for the dial
// in progress (one at a time, at most dialTimeout) or, right after a failed
// dial, gets its error at once.
type connManager struct {
	uri string
	log *slog.Logger

	mu        sync.Mutex
	c         libvirtconn.AgentConn
	gen       int
	lastErr   error
	downSince time.Time
	lastTry   time.Time
	dialing   chan struct{}
	dial      func(uri string, timeout time.Duration) (libvirtconn.AgentConn, error)
}

func newConnManager(uri string, log *slog.Logger) *connManager {
	return &connManager{uri: uri, log: log, dial: libvirtconn.DialAgent}
}

// errLibvirtDown is returned when libvirt cannot be reached.
var errLibvirtDown = errors.New("libvirt is not reachable")

// retrySpacing is the shortest time between two dials a request starts.
const retrySpacing = 500 * time.Millisecond

// get returns the live connection, dialling when there is none or the
// last one was lost.
func (m *connManager) get() (libvirtconn.AgentConn, error) {
	m.mu.Lock()
	if c := m.liveLocked(); c != nil {
		m.mu.Unlock()
		return c, nil
	}
	if ch := m.dialing; ch != nil {
		m.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(dialTimeout + time.Second):
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if c := m.liveLocked(); c != nil {
			return c, nil
		}
		return nil, m.downErrLocked()
	}
	if m.lastErr != nil && time.Since(m.lastTry) < retrySpacing {
		defer m.mu.Unlock()
		return nil, m.downErrLocked()
	}
	ch := make(chan struct{})
	m.dialing, m.lastTry = ch, time.Now()
	m.mu.Unlock()

	c, err := m.dial(m.uri, dialTimeout)

	m.mu.Lock()
	defer m.mu.Unlock()
	m.dialing = nil
	close(ch)
	if err != nil {
		m.lastErr = err
		if m.downSince.IsZero() {
			m.downSince = time.Now()
		}
		return nil, m.downErrLocked()
	}
	m.c, m.lastErr, m.downSince = c, nil, time.Time{}
	m.gen++
	m.log.Info("connected to libvirt", "uri", m.uri)
	return c, nil
}

// liveLocked returns the connection when it is alive; a lost one is
// forgotten (and closed in the background).
func (m *connManager) liveLocked() libvirtconn.AgentConn {
	if m.c == nil {
		return nil
	}
	select {
	case <-m.c.Disconnected():
		old := m.c
		m.c = nil
		m.lastErr = fmt.Errorf("the connection to libvirt at %s was lost", m.uri)
		m.downSince = time.Now()
		go old.Close()
		return nil
	default:
		return m.c
	}
}

func (m *connManager) downErrLocked() error {
	return fmt.Errorf("%w: %v", errLibvirtDown, m.lastErr)
}

// drop forgets c if it is still the current connection.
func (m *connManager) drop(c libvirtconn.AgentConn) {
	m.mu.Lock()
	if m.c != c {
		m.mu.Unlock()
		return
	}
	m.c = nil
	if m.lastErr == nil {
		m.lastErr = fmt.Errorf("the connection to libvirt at %s was lost", m.uri)
	}
	if m.downSince.IsZero() {
		m.downSince = time.Now()
	}
	m.mu.Unlock()
	c.Close()
}

func (m *connManager) generation() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// status says whether libvirt is reachable now and, when not, since when
// and why.
func (m *connManager) status() agentapi.LibvirtStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.liveLocked() != nil {
		return agentapi.LibvirtStatus{Connected: true, URI: m.uri}
	}
	st := agentapi.LibvirtStatus{URI: m.uri, Since: m.downSince}
	if m.lastErr != nil {
		st.Error = m.lastErr.Error()
	} else {
		st.Error = "not connected yet"
	}
	return st
}

// close ends the connection.
func (m *connManager) close() {
	m.mu.Lock()
	c := m.c
	m.c = nil
	m.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// keyedMutex serializes the operations on one key (a VM id) and lets
// different keys proceed in parallel.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refMutex
}

type refMutex struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

func newKeyedMutex() *keyedMutex { return &keyedMutex{locks: map[string]*refMutex{}} }

// lock locks key and returns its unlock function.
func (k *keyedMutex) lock(key string) func() {
	unlock, _ := k.lockWithin(key, -1)
	return unlock
}

// lockWithin locks key, waiting at most d (for ever when d < 0); ok is
// false, and unlock a no-op, when the lock was not had in time.
func (k *keyedMutex) lockWithin(key string, d time.Duration) (unlock func(), ok bool) {
	k.mu.Lock()
	m := k.locks[key]
	if m == nil {
		m = &refMutex{ch: make(chan struct{}, 1)}
		k.locks[key] = m
	}
	m.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		m.refs--
		if m.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	if d < 0 {
		m.ch <- struct{}{}
	} else {
		select {
		case m.ch <- struct{}{}:
		case <-time.After(d):
			release()
			return func() {}, false
		}
	}
	return func() {
		<-m.ch
		release()
	}, true
}
