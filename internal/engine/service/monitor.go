package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/store"
)

// MonitorConfig tunes the host monitoring. Zero fields take the defaults.
type MonitorConfig struct {
	// StatsInterval is how often every host's statistics are read
	// (default 3s).
	StatsInterval time.Duration
	// CapsInterval is how often a host is asked whether its capabilities
	// changed (If-None-Match; default 30s). A host coming back is always
	// asked at once.
	CapsInterval time.Duration
	// PollTimeout bounds one request to an agent (default 5s).
	PollTimeout time.Duration
	// Failures is the number of consecutive failed rounds that make a
	// host NonResponsive (default 3).
	Failures int
	// HostsReload is how often the host list is read again, to see the
	// changes other engines made (default 5s; this engine's own changes
	// are seen at once).
	HostsReload time.Duration
	// StatsFlush is how often the collected statistics are written, in
	// one transaction (default 1s).
	StatsFlush time.Duration
	// LeaderRetry is how often an engine that does not lead tries to take
	// the lead (default 2s).
	LeaderRetry time.Duration
}

func (m MonitorConfig) withDefaults() MonitorConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&m.StatsInterval, 3*time.Second)
	def(&m.CapsInterval, 30*time.Second)
	def(&m.PollTimeout, 5*time.Second)
	def(&m.HostsReload, 5*time.Second)
	def(&m.StatsFlush, time.Second)
	def(&m.LeaderRetry, 2*time.Second)
	if m.Failures <= 0 {
		m.Failures = 3
	}
	return m
}

// reloadSpacing is the shortest time between two reloads of the hosts.
const reloadSpacing = 200 * time.Millisecond

// monitor watches every enrolled host while this engine leads: one poller
// goroutine per host reads its statistics every StatsInterval (kept-alive
// mutual-TLS connections), asks whether its capabilities changed every
// CapsInterval (If-None-Match), runs admission when needed and drives the
// host's status (hoststate.go). Statistics are written in batches, one
// transaction per StatsFlush; statuses when they change, with an event.
type monitor struct {
	e   *engine
	cfg MonitorConfig
	log *slog.Logger

	reload chan struct{}

	mu       sync.Mutex
	pollers  map[string]*poller
	clusterV map[string]int64

	clusterLocks sync.Map // cluster ID → *sync.Mutex
	batch        statsBatch
	vsync        *vmSync
	wg           sync.WaitGroup
	warned       rateLimiter
}

func newMonitor(e *engine) *monitor {
	return &monitor{e: e, cfg: e.cfg.Monitor, log: e.log.With("part", "monitor"), reload: make(chan struct{}, 1),
		pollers: map[string]*poller{}, batch: statsBatch{pending: map[string]store.HostStats{}},
		warned: rateLimiter{every: 30 * time.Second, burst: 3}}
}

// reloadSoon asks for the host list to be read again now.
func (m *monitor) reloadSoon() {
	select {
	case m.reload <- struct{}{}:
	default:
	}
}

func (m *monitor) run(ctx context.Context) {
	batchDone := make(chan struct{})
	go func() { m.batch.run(ctx, m); close(batchDone) }()
	m.vsync = newVMSync(ctx, m)
	haDone := make(chan struct{})
	go func() { m.vsync.haRun(ctx); close(haDone) }()
	t := time.NewTicker(m.cfg.HostsReload)
	defer t.Stop()
	m.reloadHosts(ctx)
	for {
		select {
		case <-ctx.Done():
			m.wg.Wait()
			<-batchDone
			<-haDone
			m.vsync.wait()
			return
		case <-t.C:
		case <-m.reload:
		}
		last := time.Now()
		m.reloadHosts(ctx)
		// Changes arriving in bursts (hosts enrolled by the hundred) are
		// taken together, at most one reload per reloadSpacing.
		select {
		case <-ctx.Done():
		case <-time.After(reloadSpacing - time.Since(last)):
		}
	}
}

// warn logs a warning, a few per half minute (a database that is down
// would otherwise flood the log).
func (m *monitor) warn(msg string, args ...any) {
	if m.warned.allow() {
		m.log.Warn(msg, args...)
	}
}

// reloadHosts reads the hosts and clusters: it starts a poller per newly
// enrolled host, stops those of removed hosts, passes the changes (status,
// address, certificate) to the others, and tells those of a changed
// cluster to run admission again.
func (m *monitor) reloadHosts(ctx context.Context) {
	hosts, err := m.e.st.ListHosts(ctx, store.HostFilter{Brief: true})
	if err != nil {
		if ctx.Err() == nil {
			m.warn("cannot read the hosts", "err", err)
		}
		return
	}
	clusters, err := m.e.st.ListClusters(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.warn("cannot read the clusters", "err", err)
		}
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := map[string]bool{}
	versions := map[string]int64{}
	for _, c := range clusters {
		if v, ok := m.clusterV[c.ID]; ok && v != c.Version {
			changed[c.ID] = true
		}
		versions[c.ID] = c.Version
	}
	m.clusterV = versions
	m.vsync.hostsLoaded(hosts)
	seen := map[string]bool{}
	addrs := map[string]bool{}
	for _, h := range hosts {
		if h.CertFingerprint == "" {
			continue
		}
		seen[h.ID] = true
		addrs[h.Address] = true
		m.e.agents.Pin(h.Address, h.CertFingerprint)
		p := m.pollers[h.ID]
		if p == nil {
			pctx, cancel := context.WithCancel(ctx)
			p = &poller{m: m, id: h.ID, host: h, cancel: cancel, kick: make(chan struct{}, 1)}
			m.pollers[h.ID] = p
			m.wg.Add(1)
			go p.run(pctx)
			continue
		}
		p.update(h, changed[h.ClusterID])
	}
	for id, p := range m.pollers {
		if !seen[id] {
			p.cancel()
			delete(m.pollers, id)
			if a := p.snapshot().Address; !addrs[a] {
				m.e.agents.Unpin(a)
			}
		}
	}
}

// clusterLock serializes the admissions into one cluster (the first host
// sets its CPU type).
func (m *monitor) clusterLock(id string) *sync.Mutex {
	v, _ := m.clusterLocks.LoadOrStore(id, &sync.Mutex{})
	return v.(*sync.Mutex)
}

// poller monitors one host.
type poller struct {
	m      *monitor
	id     string
	cancel context.CancelFunc
	kick   chan struct{}

	mu             sync.Mutex
	host           store.Host
	clusterChanged bool
	// capsDue asks the next round for the capabilities report.
	capsDue bool

	// Owned by the run goroutine.
	failures int
	etag     string
	capsAt   time.Time
}

func (p *poller) snapshot() store.Host {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.host
}

// setHost records the host as last written or read, unless a newer
// version is known already.
func (p *poller) setHost(h store.Host) {
	h.Capabilities = nil
	p.mu.Lock()
	defer p.mu.Unlock()
	if h.Version >= p.host.Version {
		p.host = h
	}
}

// update passes a reloaded host row; a change that needs action (an
// activation, a new address or certificate, a changed cluster) makes the
// poller act at once.
func (p *poller) update(h store.Host, clusterChanged bool) {
	p.mu.Lock()
	old := p.host
	if h.Version >= p.host.Version {
		p.host = h
	}
	if clusterChanged {
		p.clusterChanged = true
	}
	p.mu.Unlock()
	if clusterChanged || h.Address != old.Address || h.CertFingerprint != old.CertFingerprint ||
		(h.Status != old.Status && (h.Status == store.HostConnecting || h.Status == store.HostInstalling)) {
		p.kickNow()
	}
}

// capsNow makes the poller of a host ask for its capabilities report at
// once (its firmware levels changed, say), not at its next CapsInterval.
func (m *monitor) capsNow(hostID string) {
	m.mu.Lock()
	p := m.pollers[hostID]
	m.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	p.capsDue = true
	p.mu.Unlock()
	p.kickNow()
}

func (p *poller) kickNow() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *poller) run(ctx context.Context) {
	defer p.m.wg.Done()
	interval := p.m.cfg.StatsInterval
	// Spread the hosts over the interval.
	timer := time.NewTimer(rand.N(interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.kick:
		}
		p.round(ctx)
		timer.Reset(interval)
	}
}

// round is one monitoring round: capabilities when due (always when the
// host's agent was not known to answer), statistics, then what the
// outcome means for the host.
func (p *poller) round(ctx context.Context) {
	h := p.snapshot()
	p.mu.Lock()
	clusterChanged := p.clusterChanged
	capsDue := p.capsDue
	p.clusterChanged, p.capsDue = false, false
	p.mu.Unlock()
	full := p.etag == "" || clusterChanged || needsAdmissionHost(h, false, false)
	var body []byte
	var hash string
	if full || capsDue || time.Since(p.capsAt) >= p.m.cfg.CapsInterval {
		etag := p.etag
		if full {
			etag = ""
		}
		b, tag, notModified, err := p.m.e.agents.Capabilities(ctx, h.Address, etag)
		if err != nil {
			p.failed(ctx, err, clusterChanged)
			return
		}
		p.capsAt = time.Now()
		if !notModified {
			p.etag = tag
			body = b
			sum := sha256.Sum256(b)
			hash = hex.EncodeToString(sum[:])
		}
	}
	stats, err := p.m.e.agents.Stats(ctx, h.Address)
	if err != nil {
		p.failed(ctx, err, clusterChanged)
		return
	}
	p.failures = 0
	p.m.batch.add(store.HostStats{HostID: p.id, Stats: stats, At: time.Now()})
	if down := libvirtDown(stats); down != "" {
		if clusterChanged {
			p.mu.Lock()
			p.clusterChanged = true
			p.mu.Unlock()
		}
		p.setStatus(ctx, pollOutcome{OK: true, LibvirtDown: down})
		return
	}
	p.m.e.stor.checkHostPools(ctx, h)
	capsChanged := body != nil && hash != h.CapabilitiesHash
	if body != nil && (capsChanged || needsAdmissionHost(h, capsChanged, clusterChanged)) {
		p.admit(ctx, body, hash, clusterChanged)
	}
}

// libvirtDown reads, from an agent's statistics, why it cannot reach
// libvirt ("" when it can, or when the agent does not say).
func libvirtDown(stats []byte) string {
	var s struct {
		Libvirt *agentapi.LibvirtStatus `json:"libvirt"`
	}
	if json.Unmarshal(stats, &s) != nil || s.Libvirt == nil || s.Libvirt.Connected {
		return ""
	}
	why := s.Libvirt.Error
	if why == "" {
		why = "not connected"
	}
	if !s.Libvirt.Since.IsZero() {
		why += fmt.Sprintf(" (since %s)", s.Libvirt.Since.UTC().Format(time.RFC3339))
	}
	return why
}

// failed handles a round the agent did not answer.
func (p *poller) failed(ctx context.Context, err error, clusterChanged bool) {
	if ctx.Err() != nil {
		return
	}
	if clusterChanged {
		p.mu.Lock()
		p.clusterChanged = true
		p.mu.Unlock()
	}
	p.failures++
	p.etag = ""
	p.setStatus(ctx, pollOutcome{Failures: p.failures, Err: err.Error()})
}

// setStatus applies a round's outcome (a failed round, or an agent that
// cannot reach libvirt) to the host's status.
func (p *poller) setStatus(ctx context.Context, o pollOutcome) {
	th := p.m.cfg.Failures
	if !nextStatus(p.snapshot(), o, th).Changed {
		return
	}
	for attempt := 0; attempt < 8; attempt++ {
		h, err := p.m.e.st.GetHost(ctx, p.id)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
				p.m.warn("cannot read a host", "host", p.id, "err", err)
			}
			return
		}
		ch := nextStatus(h, o, th)
		if !ch.Changed {
			p.setHost(h)
			return
		}
		h.Status, h.StatusCode, h.StatusMessage = ch.Status, ch.Code, ch.Message
		err = p.m.e.st.InTx(ctx, func(tx store.Tx) error {
			if err := tx.UpdateHost(ctx, &h); err != nil {
				return err
			}
			return p.m.e.appendEvent(ctx, tx, store.Event{Action: "host.status", Severity: ch.Severity, ObjectKind: "host",
				ObjectID: h.ID, ObjectName: h.Name, Code: ch.EventCode, Message: ch.Event, Reason: firstNonEmpty(o.Err, o.LibvirtDown)})
		})
		if isStale(err) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				p.m.warn("cannot record a host's status", "host", h.Name, "status", ch.Status, "err", err)
			}
			return
		}
		p.m.log.Info("host status", "host", h.Name, "status", h.Status, "reason", firstNonEmpty(o.Err, o.LibvirtDown))
		p.m.e.hosts.invalidate()
		p.setHost(h)
		p.m.vsync.hostStatusChanged(h)
		return
	}
}

// admit records a new capabilities report and, unless the host is in
// Maintenance, runs admission and sets the status it gives, all in one
// transaction (with the cluster when the host is its first).
func (p *poller) admit(ctx context.Context, body []byte, hash string, clusterChanged bool) {
	facts, ferr := factsFromReport(body)
	doc, err := compactJSON(body)
	if err != nil {
		ferr = err
	}
	th := p.m.cfg.Failures
	for attempt := 0; attempt < 8; attempt++ {
		h, err := p.m.e.st.GetHost(ctx, p.id)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
				p.m.warn("cannot read a host", "host", p.id, "err", err)
			}
			return
		}
		lock := p.m.clusterLock(h.ClusterID)
		lock.Lock()
		c, err := p.m.e.st.GetCluster(ctx, h.ClusterID)
		if err != nil {
			lock.Unlock()
			if ctx.Err() == nil {
				p.m.warn("cannot read a cluster", "cluster", h.ClusterID, "err", err)
			}
			return
		}
		var a admission
		if ferr != nil {
			a = admission{Code: api.CodeHostCapabilitiesInvalid, Message: fmt.Sprintf("Host %s moved to Non-Operational state as its capabilities report cannot be read: %v", h.Name, ferr), Cluster: c}
		} else {
			a = admit(h.Name, facts, c)
		}
		capsChanged := h.CapabilitiesHash != hash
		var ch statusChange
		ran := needsAdmissionHost(h, capsChanged, clusterChanged)
		if ran {
			ch = nextStatus(h, pollOutcome{OK: true, Admission: &a}, th)
		}
		clusterWrite := ran && a.OK && a.ClusterChanged
		if !ch.Changed && !capsChanged && !clusterWrite {
			lock.Unlock()
			p.setHost(h)
			return
		}
		if ferr == nil {
			h.Arch, h.CPUModel, h.CPUFlags = facts.Arch, facts.CPUModel, slices.Clone(facts.Flags)
			h.EmulatedMachines = slices.Clone(facts.Machines)
			h.Capabilities = doc
		}
		h.CPUType, h.CPULevel, h.CapabilitiesHash = a.Best.Name, a.Best.Level, hash
		if ch.Changed {
			h.Status, h.StatusCode, h.StatusMessage = ch.Status, ch.Code, ch.Message
		}
		err = p.m.e.st.InTx(ctx, func(tx store.Tx) error {
			if clusterWrite {
				if err := tx.UpdateCluster(ctx, &a.Cluster); err != nil {
					return err
				}
				if err := p.m.e.appendEvent(ctx, tx, store.Event{Action: "cluster.update", ObjectKind: "cluster",
					ObjectID: c.ID, ObjectName: c.Name, Message: a.ClusterChange}); err != nil {
					return err
				}
			}
			if err := tx.UpdateHost(ctx, &h); err != nil {
				return err
			}
			if ch.Changed && ch.Event != "" {
				return p.m.e.appendEvent(ctx, tx, store.Event{Action: "host.status", Severity: ch.Severity, ObjectKind: "host",
					ObjectID: h.ID, ObjectName: h.Name, Code: ch.EventCode, Message: ch.Event})
			}
			return nil
		})
		lock.Unlock()
		if isStale(err) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				p.m.warn("cannot record a host's capabilities", "host", h.Name, "err", err)
			}
			return
		}
		if ch.Changed {
			p.m.log.Info("host status", "host", h.Name, "status", h.Status, "code", h.StatusCode)
		}
		p.m.e.hosts.invalidate()
		p.setHost(h)
		if ch.Changed {
			p.m.vsync.hostStatusChanged(h)
		}
		if clusterWrite {
			p.m.reloadSoon()
		}
		return
	}
}

// statsBatch collects the statistics of the last rounds (the latest per
// host) and writes them in one transaction per flush.
type statsBatch struct {
	mu      sync.Mutex
	pending map[string]store.HostStats
}

func (b *statsBatch) add(s store.HostStats) {
	b.mu.Lock()
	b.pending[s.HostID] = s
	b.mu.Unlock()
}

func (b *statsBatch) take() []store.HostStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return nil
	}
	out := make([]store.HostStats, 0, len(b.pending))
	for _, s := range b.pending {
		out = append(out, s)
	}
	b.pending = make(map[string]store.HostStats, len(out))
	return out
}

func (b *statsBatch) run(ctx context.Context, m *monitor) {
	t := time.NewTicker(m.cfg.StatsFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b.flush(fctx, m)
			cancel()
			return
		case <-t.C:
			b.flush(ctx, m)
		}
	}
}

func (b *statsBatch) flush(ctx context.Context, m *monitor) {
	batch := b.take()
	if len(batch) == 0 {
		return
	}
	slices.SortFunc(batch, func(x, y store.HostStats) int {
		switch {
		case x.HostID < y.HostID:
			return -1
		case x.HostID > y.HostID:
			return 1
		}
		return 0
	})
	if _, err := m.e.st.UpdateHostStats(ctx, batch); err != nil && ctx.Err() == nil {
		m.e.storage.note(err)
		m.warn("cannot record the hosts' statistics (dropped; the next ones will be written)", "hosts", len(batch), "err", err)
	}
}

func compactJSON(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("the answer is not JSON: %v", err)
	}
	return buf.Bytes(), nil
}
