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
	"sync/atomic"
	"time"
	"unicode/utf8"

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
	// changed (If-None-Match; default 30s) while its pushed statistics do
	// not name its report's ETag (an older agent; a host whose pushes name
	// it is asked when it changes). A host coming back is always asked at
	// once.
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
	// StatsWrite is how often at most one host's statistics are written
	// to the database (default 4 StatsIntervals): the leader keeps every
	// host's latest in memory and its API shows those, so that ten
	// thousand hosts pushing every 2 s are not 5,000 rows written a
	// second. The other engines of a group read the written ones.
	StatsWrite time.Duration
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
	def(&m.StatsWrite, 4*m.StatsInterval)
	def(&m.LeaderRetry, 2*time.Second)
	if m.Failures <= 0 {
		m.Failures = 3
	}
	return m
}

// reloadSpacing is the shortest time between two reloads of the hosts;
// after a reload that took longer than a fifth of it, the next waits four
// times that long (ten thousand hosts enrolling would otherwise keep the
// leader rereading a list that grows with each of them).
const reloadSpacing = 200 * time.Millisecond

// reloadPause is how long to wait after a reload that took took.
func reloadPause(took time.Duration) time.Duration { return max(reloadSpacing, 4*took) }

// monitor watches every enrolled host while this engine leads: a poller
// per host, whose rounds (run from one pollQueue, every StatsInterval)
// read its statistics unless its agent pushed them on its event stream,
// ask for its capabilities when its pushes name another report's ETag
// (or, when they name none, whether they changed every CapsInterval with
// If-None-Match), run admission when needed and drive the host's status (hoststate.go). Statistics are written in batches, one
// transaction per StatsFlush (less often when a flush takes long:
// flushPause); statuses when they change, with an event.
type monitor struct {
	e   *engine
	cfg MonitorConfig
	log *slog.Logger

	reload chan struct{}

	mu       sync.Mutex
	pollers  map[string]*poller
	clusterV map[string]int64
	// hostsRev is the hosts' revision read before the rows last read (at
	// hostsReadAt).
	hostsRev    store.HostsRevision
	hostsReadAt time.Time
	// byID mirrors pollers for the lookups of the pushes and the firmware
	// steps: a reload of ten thousand hosts holds mu for a while, and the
	// thousands of statistics pushed meanwhile must not wait for it.
	byID sync.Map // host ID → *poller

	clusterLocks sync.Map // cluster ID → *sync.Mutex
	batch        statsBatch
	vsync        *vmSync
	queue        *pollQueue
	admitter     *admitter
	warned       rateLimiter
}

func newMonitor(e *engine) *monitor {
	m := &monitor{e: e, cfg: e.cfg.Monitor, log: e.log.With("part", "monitor"), reload: make(chan struct{}, 1),
		pollers: map[string]*poller{}, batch: statsBatch{pending: map[string]store.HostStats{}},
		queue: newPollQueue(e.cfg.Monitor.StatsInterval), warned: rateLimiter{every: 30 * time.Second, burst: 3}}
	m.admitter = newAdmitter(m)
	return m
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
	admitDone := make(chan struct{})
	go func() { m.admitter.run(ctx); close(admitDone) }()
	queueDone := make(chan struct{})
	go func() { m.queue.run(ctx); close(queueDone) }()
	t := time.NewTicker(m.cfg.HostsReload)
	defer t.Stop()
	m.reloadHosts(ctx, true)
	for {
		asked := false
		select {
		case <-ctx.Done():
			<-queueDone
			<-admitDone
			m.queue.wait()
			<-batchDone
			<-haDone
			m.vsync.wait()
			return
		case <-t.C:
		case <-m.reload:
			asked = true
		}
		last := time.Now()
		m.reloadHosts(ctx, asked)
		// Changes arriving in bursts (hosts enrolled by the hundred) are
		// taken together, at most one reload per reloadPause.
		took := time.Since(last)
		select {
		case <-ctx.Done():
		case <-time.After(reloadPause(took) - took):
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

// hostsFullReload is the longest the monitor goes without reading the
// hosts' rows when their revision stays the same.
const hostsFullReload = 5 * time.Minute

// reloadHosts reads the hosts and clusters: it starts a poller per newly
// enrolled host, stops those of removed hosts, passes the changes (status,
// address, certificate) to the others, and tells those of a changed
// cluster to run admission again. Unless asked (a reload asked for), the
// rows are not read while the hosts' revision and the clusters' versions
// stay the same (up to hostsFullReload): ten thousand rows every few
// seconds otherwise.
func (m *monitor) reloadHosts(ctx context.Context, asked bool) {
	rev, err := m.e.st.HostsRevision(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.warn("cannot read the hosts' revision", "err", err)
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
	changed := map[string]bool{}
	versions := map[string]int64{}
	m.mu.Lock()
	for _, c := range clusters {
		if v, ok := m.clusterV[c.ID]; ok && v != c.Version {
			changed[c.ID] = true
		}
		versions[c.ID] = c.Version
	}
	same := !asked && rev == m.hostsRev && len(versions) == len(m.clusterV) && len(changed) == 0 &&
		time.Since(m.hostsReadAt) < hostsFullReload
	m.mu.Unlock()
	if same {
		return
	}
	start := time.Now()
	hosts, err := m.e.st.ListHosts(ctx, store.HostFilter{Brief: true, NoStats: true})
	if err != nil {
		if ctx.Err() == nil {
			m.warn("cannot read the hosts", "err", err)
		}
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hostsRev, m.hostsReadAt = rev, start
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
			h.Stats, h.Capabilities = nil, nil
			p = &poller{m: m, id: h.ID, host: h, ctx: pctx, cancel: cancel}
			m.pollers[h.ID] = p
			m.byID.Store(h.ID, p)
			// Spread the hosts over the interval.
			m.queue.add(p, time.Now().Add(rand.N(m.cfg.StatsInterval)))
			continue
		}
		p.update(h, changed[h.ClusterID])
	}
	for id, p := range m.pollers {
		if !seen[id] {
			p.cancel()
			m.queue.remove(p)
			delete(m.pollers, id)
			m.byID.Delete(id)
			if a := p.snapshot().Address; !addrs[a] {
				m.e.agents.Unpin(a)
			}
		}
	}
}

// poller returns a host's poller (nil when it has none).
func (m *monitor) poller(hostID string) *poller {
	if v, ok := m.byID.Load(hostID); ok {
		return v.(*poller)
	}
	return nil
}

// clusterLock serializes the admissions into one cluster (the first host
// sets its CPU type).
func (m *monitor) clusterLock(id string) *sync.Mutex {
	v, _ := m.clusterLocks.LoadOrStore(id, &sync.Mutex{})
	return v.(*sync.Mutex)
}

// poller monitors one host: a round every StatsInterval (pollQueue),
// which reads its statistics unless its agent pushed them on its event
// stream meanwhile (pushed), and asks for its capabilities when due.
type poller struct {
	m      *monitor
	id     string
	ctx    context.Context
	cancel context.CancelFunc
	// slot is the poller's place in the queue (guarded by its mutex).
	slot pollSlot

	mu             sync.Mutex
	host           store.Host
	clusterChanged bool
	// capsDue asks the next round for the capabilities report.
	capsDue  bool
	failures int
	// statsAt is when the last statistics came (asked for or pushed),
	// pushedAt when the last pushed ones came, pushedDown why libvirt was
	// down as they said ("" when up).
	statsAt, pushedAt time.Time
	pushedDown        string
	// pushedTag is the capabilities' ETag (without its quotes) the last
	// pushed statistics said ("" when they did not).
	pushedTag string
	// queuedAt is the time of the last statistics queued for writing.
	queuedAt time.Time
	// latest are the host's latest statistics, for the API (read without
	// any lock shared between hosts).
	latest atomic.Pointer[store.HostStats]

	// Owned by the rounds (which never overlap).
	etag   string
	capsAt time.Time
}

func (p *poller) snapshot() store.Host {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.host
}

// setHost records the host as last written or read, unless a newer
// version is known already.
func (p *poller) setHost(h store.Host) {
	h.Capabilities, h.Stats = nil, nil
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
	h.Capabilities, h.Stats = nil, nil
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
	p := m.poller(hostID)
	if p == nil {
		return
	}
	p.mu.Lock()
	p.capsDue = true
	p.mu.Unlock()
	p.kickNow()
}

// kickNow asks for a round now.
func (p *poller) kickNow() { p.m.queue.kick(p) }

// idleRound is a round that asks the agent nothing, done by the queue
// itself without a goroutine: the agent pushed statistics within
// pushFresh saying it reaches libvirt, the capabilities are neither due
// nor asked for, and the host needs no admission. It does what such a
// round does (the pools' check when due, itself in the background) and
// reports true, or reports false having done nothing: round then runs.
// The queue calls it only while the poller's round would run (the round's
// own fields are its to read).
func (p *poller) idleRound(ctx context.Context) bool {
	p.mu.Lock()
	_, askCaps := p.capsWanted(p.host, p.clusterChanged, p.capsDue, p.pushedTagLocked())
	quiet := !askCaps && p.pushedDown == "" && p.pushedFreshLocked()
	var h store.Host
	if quiet {
		h = p.host
	}
	p.mu.Unlock()
	if !quiet {
		return false
	}
	p.m.e.stor.checkHostPools(ctx, h)
	return true
}

// capsWanted tells whether a round of h asks for the capabilities report,
// and whether whole (full: none read yet, the cluster changed, or the
// host must be admitted) rather than with the ETag of the last one. The
// report is asked for when asked (capsDue), when the agent's pushed
// statistics name another ETag than the last report's, and every
// CapsInterval — unless the agent's fresh pushes name the last report's
// ETag (pushedTag, "" when they name none): it said its report did not
// change. The caller owns the round (etag and capsAt are the rounds').
func (p *poller) capsWanted(h store.Host, clusterChanged, capsDue bool, pushedTag string) (full, ask bool) {
	full = p.etag == "" || clusterChanged || needsAdmissionHost(h, false, false)
	if full || capsDue {
		return full, true
	}
	if pushedTag != "" {
		return false, !isQuoted(p.etag, pushedTag)
	}
	return false, time.Since(p.capsAt) >= p.m.cfg.CapsInterval
}

// isQuoted tells whether etag is tag in double quotes (without making
// the quoted string: every push of ten thousand hosts asks).
func isQuoted(etag, tag string) bool {
	n := len(etag)
	return n == len(tag)+2 && etag[0] == '"' && etag[n-1] == '"' && etag[1:n-1] == tag
}

// pushedTagLocked is the capabilities' ETag the agent's statistics said,
// while they are fresh ("" otherwise). The caller holds p.mu.
func (p *poller) pushedTagLocked() string {
	if !p.pushedFreshLocked() {
		return ""
	}
	return p.pushedTag
}

// round is one monitoring round: capabilities when due (always when the
// host's agent was not known to answer), statistics, then what the
// outcome means for the host.
func (p *poller) round(ctx context.Context) {
	h := p.snapshot()
	p.mu.Lock()
	clusterChanged := p.clusterChanged
	capsDue := p.capsDue
	pushedTag := p.pushedTagLocked()
	p.clusterChanged, p.capsDue = false, false
	p.mu.Unlock()
	full, askCaps := p.capsWanted(h, clusterChanged, capsDue, pushedTag)
	var body []byte
	var hash string
	if askCaps {
		etag := p.etag
		if full {
			etag = ""
		}
		t := time.Now()
		b, tag, notModified, err := p.m.e.agents.Capabilities(ctx, h.Address, etag)
		p.m.e.obs.AgentPoll("capabilities", time.Since(t), err)
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
	down, fresh := p.pushedRecently()
	if !fresh {
		// The agent pushed no statistics lately (it does not, or its
		// stream is down): they are asked for.
		t := time.Now()
		stats, err := p.m.e.agents.Stats(ctx, h.Address)
		p.m.e.obs.AgentPoll("stats", time.Since(t), err)
		if err != nil {
			p.failed(ctx, err, clusterChanged)
			return
		}
		p.gotStats(t, stats)
		down = libvirtDown(stats)
	}
	if down != "" {
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

// gotStats records statistics that came at t.
func (p *poller) gotStats(t time.Time, stats []byte) {
	st := &store.HostStats{HostID: p.id, Stats: stats, At: t}
	p.latest.Store(st)
	p.mu.Lock()
	prev := p.statsAt
	p.statsAt = t
	p.failures = 0
	due := statsDue(p.queuedAt, t, p.m.cfg.StatsWrite)
	if due {
		p.queuedAt = t
	}
	p.mu.Unlock()
	if !prev.IsZero() {
		p.m.e.obs.StatsAge(t.Sub(prev))
	}
	if due {
		p.m.batch.add(*st)
	}
}

// statsDue tells whether statistics that came at t are written, the last
// written having come at queued: a host's first at once, then one every
// StatsWrite (every) at most.
func statsDue(queued, t time.Time, every time.Duration) bool {
	return queued.IsZero() || t.Sub(queued) >= every
}

// latestStats are a host's latest statistics (nil when it has none or is
// not monitored).
func (m *monitor) latestStats(hostID string) *store.HostStats {
	if p := m.poller(hostID); p != nil {
		return p.latest.Load()
	}
	return nil
}

// queueUnwritten queues every host's latest statistics that were not
// queued for writing (the last flush of a leader: the next reads them).
func (m *monitor) queueUnwritten() {
	m.byID.Range(func(_, v any) bool {
		p := v.(*poller)
		st := p.latest.Load()
		if st == nil {
			return true
		}
		p.mu.Lock()
		due := st.At.After(p.queuedAt)
		if due {
			p.queuedAt = st.At
		}
		p.mu.Unlock()
		if due {
			m.batch.add(*st)
		}
		return true
	})
}

// pushFresh is how recent pushed statistics spare a round's request.
func (p *poller) pushFresh() time.Duration { return p.m.cfg.StatsInterval * 3 / 2 }

// pushedRecently tells whether the agent pushed statistics within
// pushFresh, and why libvirt was down as they said.
func (p *poller) pushedRecently() (down string, fresh bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pushedDown, p.pushedFreshLocked()
}

// pushedFreshLocked tells whether the agent pushed statistics within
// pushFresh. The caller holds p.mu.
func (p *poller) pushedFreshLocked() bool {
	return !p.pushedAt.IsZero() && time.Since(p.pushedAt) < p.pushFresh()
}

// pushed records the statistics the host's agent pushed on its event
// stream: the host answers. An agent that cannot reach libvirt makes the
// host NonOperational at once; a host that must be admitted again (it did
// not answer, or libvirt is back) gets a round now.
func (p *poller) pushed(ctx context.Context, stats []byte) {
	t := time.Now()
	down := libvirtDown(stats)
	p.mu.Lock()
	p.pushedAt, p.pushedDown, p.pushedTag = t, down, pushedCapsETagSince(stats, p.pushedTag)
	h := p.host
	p.mu.Unlock()
	p.m.e.obs.StatsPushed()
	p.gotStats(t, stats)
	if down != "" {
		p.setStatus(ctx, pollOutcome{OK: true, LibvirtDown: down})
		return
	}
	if needsAdmissionHost(h, false, false) {
		p.kickNow()
	}
}

// pushed passes the statistics a host's agent pushed to its poller.
func (m *monitor) pushed(ctx context.Context, hostID string, stats []byte) {
	p := m.poller(hostID)
	if p != nil && len(stats) > 0 {
		p.pushed(ctx, stats)
	}
}

// libvirtDown reads, from an agent's statistics, why it cannot reach
// libvirt ("" when it can, or when the agent does not say).
func libvirtDown(stats []byte) string {
	if saysConnected(stats) {
		// Nearly every push: not decoded.
		return ""
	}
	return decodeLibvirtDown(stats)
}

// saysConnected tells, without decoding it, whether a statistics document
// as the agent writes it (compact, "libvirt":{"connected":true first)
// says that its agent reaches libvirt: its only "libvirt" and its only
// "connected" key (in any case, as the decoder matches them) are those,
// and no escape could hide another. Anything else is decoded.
func saysConnected(b []byte) bool {
	if bytes.Contains(b, []byte(`\u`)) || !bytes.Contains(b, []byte(`"libvirt":{"connected":true`)) {
		return false
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			// Non-ASCII text may fold onto the keys (the decoder matches
			// them so: the Kelvin sign is a k): counted after folding.
			l := bytes.ToLower(b)
			return bytes.Count(l, []byte(`"libvirt"`)) == 1 && bytes.Count(l, []byte(`"connected"`)) == 1
		}
	}
	return countASCIIFold(b, `"libvirt"`) == 1 && countASCIIFold(b, `"connected"`) == 1
}

// countASCIIFold counts the occurrences of an ASCII lower-case pattern in
// ASCII text whatever their case, without a lower-cased copy (every push
// of ten thousand hosts goes through here).
func countASCIIFold(b []byte, pat string) int {
	n := 0
next:
	for i := 0; i+len(pat) <= len(b); i++ {
		if pat[0] == '"' {
			// Every pattern here starts with a quote: jump to the next.
			k := bytes.IndexByte(b[i:len(b)-len(pat)+1], '"')
			if k < 0 {
				break
			}
			i += k
		}
		for j := 0; j < len(pat); j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != pat[j] {
				continue next
			}
		}
		n++
	}
	return n
}

// pushedCapsETag reads the capabilities' ETag (agentapi.Stats.CapsETag)
// from an agent's statistics (JSON: the event stream passes no other), ""
// when they carry none. A document as the agent writes it (compact ASCII
// without a \u escape, its only "capsETag" key in any case the last
// member, its value without escapes) is read without decoding; anything
// else is decoded.
func pushedCapsETag(stats []byte) string { return pushedCapsETagSince(stats, "") }

// pushedCapsETagSince is pushedCapsETag given the tag the host's pushes
// said before (prev): prev itself when they still say it, so that the
// pushes of an unchanged host make no string.
func pushedCapsETagSince(stats []byte, prev string) string {
	if tag, ok := scanCapsETag(stats); ok {
		if string(tag) == prev {
			return prev
		}
		return string(tag)
	}
	return decodeCapsETag(stats)
}

// decodeCapsETag is pushedCapsETag decoding the whole document.
func decodeCapsETag(stats []byte) string {
	var s struct {
		CapsETag string `json:"capsETag"`
	}
	if json.Unmarshal(stats, &s) != nil {
		return ""
	}
	return s.CapsETag
}

// scanCapsETag is pushedCapsETag's reading without decoding: the tag's
// bytes within b; false when the document is not one it reads so.
func scanCapsETag(b []byte) ([]byte, bool) {
	if bytes.Contains(b, []byte(`\u`)) {
		return nil, false
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			// Non-ASCII text may fold onto the key (ſ is an s to the
			// decoder).
			return nil, false
		}
	}
	switch countASCIIFold(b, `"capsetag"`) {
	case 0:
		return nil, true
	case 1:
	default:
		return nil, false
	}
	// The agent writes it compact, as the outermost object's last member:
	// after a comma or the opening brace (never so inside a string), its
	// value's closing quote followed by the document's last brace (a
	// member of an inner object would have two closings after it).
	const key = `"capsETag":"`
	i := bytes.Index(b, []byte(key))
	if i < 1 || (b[i-1] != ',' && b[i-1] != '{') {
		return nil, false
	}
	v := b[i+len(key):]
	end := bytes.IndexByte(v, '"')
	if end < 0 || bytes.IndexByte(v[:end], '\\') >= 0 || string(v[end:]) != `"}` {
		return nil, false
	}
	return v[:end], true
}

// decodeLibvirtDown is libvirtDown reading the whole document.
func decodeLibvirtDown(stats []byte) string {
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
	p.mu.Lock()
	if clusterChanged {
		p.clusterChanged = true
	}
	p.failures++
	n := p.failures
	p.mu.Unlock()
	p.etag = ""
	p.setStatus(ctx, pollOutcome{Failures: n, Err: err.Error()})
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
// transaction (with the cluster when the host is its first). The rounds
// admitting at the same time (ten thousand hosts' first contacts) are
// written together by the monitor's admitter, one transaction per cluster
// and batch; a host the batch could not write is admitted alone here.
func (p *poller) admit(ctx context.Context, body []byte, hash string, clusterChanged bool) {
	req := &admitRequest{p: p, hash: hash, clusterChanged: clusterChanged, done: make(chan struct{})}
	req.facts, req.ferr = factsFromReport(body)
	doc, err := compactJSON(body)
	if err != nil {
		req.ferr = err
	}
	req.doc = doc
	if p.m.admitter.submit(req) {
		select {
		case <-req.done:
			if !req.alone {
				return
			}
		case <-ctx.Done():
			return
		}
	}
	p.admitAlone(ctx, req)
}

// admitAlone is admit in a transaction of its own, read again and retried
// when the host changed meanwhile.
func (p *poller) admitAlone(ctx context.Context, req *admitRequest) {
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
		plan := p.planAdmission(req, h, c)
		if plan.nothing {
			lock.Unlock()
			p.setHost(h)
			return
		}
		err = p.m.e.st.InTx(ctx, func(tx store.Tx) error { return p.m.writeAdmission(ctx, tx, &plan) })
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
		p.m.e.hosts.invalidate()
		p.admitted(plan)
		if plan.clusterWrite {
			p.m.reloadSoon()
		}
		return
	}
}

// admissionPlan is what an admission writes: the host (and its cluster
// when the host is its first), and the status change.
type admissionPlan struct {
	// nothing is true when nothing changes (the host is recorded as read).
	nothing      bool
	h            store.Host
	c            store.Cluster
	a            admission
	ch           statusChange
	clusterWrite bool
}

// planAdmission runs admission for the host as read in its cluster as
// read, and says what to write.
func (p *poller) planAdmission(req *admitRequest, h store.Host, c store.Cluster) admissionPlan {
	var a admission
	if req.ferr != nil {
		a = admission{Code: api.CodeHostCapabilitiesInvalid, Message: fmt.Sprintf("Host %s moved to Non-Operational state as its capabilities report cannot be read: %v", h.Name, req.ferr), Cluster: c}
	} else {
		a = admit(h.Name, req.facts, c)
	}
	capsChanged := h.CapabilitiesHash != req.hash
	var ch statusChange
	ran := needsAdmissionHost(h, capsChanged, req.clusterChanged)
	if ran {
		ch = nextStatus(h, pollOutcome{OK: true, Admission: &a}, p.m.cfg.Failures)
	}
	clusterWrite := ran && a.OK && a.ClusterChanged
	if !ch.Changed && !capsChanged && !clusterWrite {
		return admissionPlan{nothing: true, h: h, c: c}
	}
	if req.ferr == nil {
		h.Arch, h.CPUModel, h.CPUFlags = req.facts.Arch, req.facts.CPUModel, slices.Clone(req.facts.Flags)
		h.EmulatedMachines = slices.Clone(req.facts.Machines)
		h.Capabilities = req.doc
	}
	h.CPUType, h.CPULevel, h.CapabilitiesHash = a.Best.Name, a.Best.Level, req.hash
	if ch.Changed {
		h.Status, h.StatusCode, h.StatusMessage = ch.Status, ch.Code, ch.Message
	}
	return admissionPlan{h: h, c: c, a: a, ch: ch, clusterWrite: clusterWrite}
}

// writeAdmission writes a plan in a transaction.
func (m *monitor) writeAdmission(ctx context.Context, tx store.Tx, plan *admissionPlan) error {
	if plan.clusterWrite {
		if err := tx.UpdateCluster(ctx, &plan.a.Cluster); err != nil {
			return err
		}
		if err := m.e.appendEvent(ctx, tx, store.Event{Action: "cluster.update", ObjectKind: "cluster",
			ObjectID: plan.c.ID, ObjectName: plan.c.Name, Message: plan.a.ClusterChange}); err != nil {
			return err
		}
	}
	if err := tx.UpdateHost(ctx, &plan.h); err != nil {
		return err
	}
	if plan.ch.Changed && plan.ch.Event != "" {
		h := plan.h
		return m.e.appendEvent(ctx, tx, store.Event{Action: "host.status", Severity: plan.ch.Severity, ObjectKind: "host",
			ObjectID: h.ID, ObjectName: h.Name, Code: plan.ch.EventCode, Message: plan.ch.Event})
	}
	return nil
}

// admitted records a written admission in the poller and tells the VM
// watchers.
func (p *poller) admitted(plan admissionPlan) {
	h := plan.h
	if plan.ch.Changed {
		p.m.log.Info("host status", "host", h.Name, "status", h.Status, "code", h.StatusCode)
	}
	p.setHost(h)
	if plan.ch.Changed {
		p.m.vsync.hostStatusChanged(h)
	}
}

// admitRequest is a round's admission waiting for the admitter.
type admitRequest struct {
	p              *poller
	facts          hostFacts
	ferr           error
	doc            []byte
	hash           string
	clusterChanged bool
	// done is closed when the admitter is through with the request;
	// alone then says that the round must admit the host itself.
	done  chan struct{}
	alone bool
}

// admitBatch bounds the admissions written in one transaction.
const admitBatch = 64

// admitter writes the admissions of many rounds together (group commit):
// the rounds that admit while a batch is written wait for the next one,
// which takes them all, a transaction per cluster (under the cluster's
// lock) of at most admitBatch hosts. Ten thousand hosts making their
// first contact at once are a few dozen transactions, not ten thousand
// waiting for the database's writer (and each for its cluster's lock).
type admitter struct {
	m    *monitor
	kick chan struct{}

	mu      sync.Mutex
	running bool
	queue   []*admitRequest
}

func newAdmitter(m *monitor) *admitter { return &admitter{m: m, kick: make(chan struct{}, 1)} }

// submit queues a request; false when the admitter does not run.
func (a *admitter) submit(r *admitRequest) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.running {
		return false
	}
	a.queue = append(a.queue, r)
	select {
	case a.kick <- struct{}{}:
	default:
	}
	return true
}

// run writes the batches until ctx ends; the requests still queued then
// are handed back to their rounds.
func (a *admitter) run(ctx context.Context) {
	a.mu.Lock()
	a.running = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running = false
		q := a.queue
		a.queue = nil
		a.mu.Unlock()
		for _, r := range q {
			r.alone = true
			close(r.done)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		for {
			a.mu.Lock()
			q := a.queue
			a.queue = nil
			a.mu.Unlock()
			if len(q) == 0 {
				break
			}
			a.write(ctx, q)
		}
	}
}

// write writes queued requests, a transaction per cluster and
// admitBatch hosts.
func (a *admitter) write(ctx context.Context, q []*admitRequest) {
	byCluster := map[string][]*admitRequest{}
	var order []string
	for _, r := range q {
		if r.p.ctx.Err() != nil {
			// The host was removed: nothing to write.
			close(r.done)
			continue
		}
		cid := r.p.snapshot().ClusterID
		if byCluster[cid] == nil {
			order = append(order, cid)
		}
		byCluster[cid] = append(byCluster[cid], r)
	}
	for _, cid := range order {
		rs := byCluster[cid]
		for len(rs) > 0 {
			n := min(len(rs), admitBatch)
			a.writeCluster(ctx, cid, rs[:n])
			rs = rs[n:]
		}
	}
}

// writeCluster writes the admissions of hosts of one cluster in one
// transaction. When it fails, every host is handed back to its round,
// which admits it alone (and retries when it changed meanwhile).
func (a *admitter) writeCluster(ctx context.Context, cid string, rs []*admitRequest) {
	m := a.m
	lock := m.clusterLock(cid)
	lock.Lock()
	plans := make([]admissionPlan, len(rs))
	var skipped []bool
	clusterWrite := false
	err := m.e.st.InTx(ctx, func(tx store.Tx) error {
		skipped = make([]bool, len(rs))
		clusterWrite = false
		c, err := tx.GetCluster(ctx, cid)
		if err != nil {
			return err
		}
		for i, r := range rs {
			h, err := tx.GetHost(ctx, r.p.id)
			if errors.Is(err, store.ErrNotFound) || (err == nil && h.ClusterID != cid) {
				// Removed, or moved to another cluster: admitted alone.
				skipped[i] = true
				continue
			}
			if err != nil {
				return err
			}
			plans[i] = r.p.planAdmission(r, h, c)
			if plans[i].nothing {
				continue
			}
			if err := m.writeAdmission(ctx, tx, &plans[i]); err != nil {
				return err
			}
			if plans[i].clusterWrite {
				// The next hosts are admitted into the cluster as written.
				c = plans[i].a.Cluster
				clusterWrite = true
			}
		}
		return nil
	})
	lock.Unlock()
	if err != nil {
		if ctx.Err() == nil && !isStale(err) {
			m.warn("cannot record the hosts' capabilities in one transaction (each host is tried alone)", "hosts", len(rs), "err", err)
		}
		for _, r := range rs {
			r.alone = true
			close(r.done)
		}
		return
	}
	m.e.hosts.invalidate()
	for i, r := range rs {
		switch {
		case skipped[i]:
			r.alone = true
		case plans[i].nothing:
			r.p.setHost(plans[i].h)
		default:
			r.p.admitted(plans[i])
		}
		close(r.done)
	}
	if clusterWrite {
		m.reloadSoon()
	}
}

// statsBatch collects the statistics to write (the latest per host; the
// pollers queue a host's at most every StatsWrite) and writes them in one
// transaction per flush.
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
	wait := m.cfg.StatsFlush
	for {
		select {
		case <-ctx.Done():
			// The next leader reads the latest of every host.
			m.queueUnwritten()
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b.flush(fctx, m)
			cancel()
			return
		case <-time.After(wait):
			t := time.Now()
			b.flush(ctx, m)
			wait = flushPause(m.cfg.StatsFlush, time.Since(t))
		}
	}
}

// flushPause is how long the statistics wait after a flush that took
// took: StatsFlush between two flushes, and at least twice the last
// flush's time, so that the database's writer is busy with statistics a
// third of the time at most (ten thousand hosts' statistics can take
// longer than StatsFlush to write; the hosts' latest statistics are then
// written together, each host once, less often).
func flushPause(every, took time.Duration) time.Duration {
	return max(every-took, 2*took)
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
