// Package service is the engine's behaviour, callable without HTTP: every
// rule about users, clusters, hosts, VMs, firmware, the audit log and the
// enrollment of agents, and the monitoring the leading engine does (host
// statuses and admission, VM states from the agents' event streams, HA
// restarts).
//
// Its API is one type per domain (Users, Clusters, Hosts, VMs, Firmware,
// Events, Enrollment, System, Storage), reached from Services. Their methods take
// typed requests (the contract layer's documents, internal/api/engineapi)
// and return typed results and coded errors: every error they return is
// an *api.Error (its code is declared in internal/api/codes.go, its HTTP
// status in internal/api/status.go). Who asks is in the context
// (WithCaller): the audit log names them. Which role may call what is the
// caller's concern (the HTTP API checks each route's least role).
//
// A rule goes in the file of its domain: clusters.go, hosts.go (the host
// status machine in hoststate.go, admission in admission.go), vms.go (the
// definition against its cluster in vmdef.go, scheduling and lifecycle in
// vmactions.go, states from the agents in vmsync.go, HA in ha.go),
// firmware.go, users.go, events.go, join.go, storage*.go (pools, volumes
// and uploads, the image library and templates, a VM's disks from pools)
// and snapshots.go. The services reach the hosts
// through Agents (the engine's mutual-TLS client implements it), the
// database through package store.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/pki"
	"polyvirt/internal/store"
)

// Config is what the services need.
type Config struct {
	// Store is the engine's database.
	Store store.Store
	// Agents calls the hosts' agents; StorageAgents their storage API
	// (nil: no storage).
	Agents        Agents
	StorageAgents StorageAgents
	// CA is the engine CA: it signs the agents' certificates at join.
	CA *pki.CA
	// Name is the engine's name, URL its address as agents reach it (the
	// join command), Version its version.
	Name, URL, Version string
	// Monitor tunes the host monitoring, VMs the VMs' scheduling, state
	// synchronization and HA restarts.
	Monitor MonitorConfig
	VMs     VMConfig
	// Sessions tunes the web UI's sign-in sessions; StatsHistoryInterval
	// is how often the hosts' statistics are kept for the web UI's charts
	// of the last hour (default 30s).
	Sessions             SessionConfig
	StatsHistoryInterval time.Duration
	// Log receives the services' log.
	Log *slog.Logger
	// Observer, when set, is told what the services do (the engine's
	// metrics).
	Observer Observer
}

// Services are the engine's services.
type Services struct {
	Users      *Users
	Clusters   *Clusters
	Hosts      *Hosts
	VMs        *VMs
	Firmware   *Firmware
	Rollouts   *Rollouts
	Events     *Events
	Enrollment *Enrollment
	System     *System
	Storage    *Storage
	Metrics    *Metrics
	Sessions   *Sessions

	e *engine
}

// New makes the services; Close releases what they hold.
func New(cfg Config) *Services {
	cfg.Monitor = cfg.Monitor.withDefaults()
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	e := &engine{cfg: cfg, st: cfg.Store, agents: cfg.Agents, log: cfg.Log, ca: cfg.CA, caFP: pki.Fingerprint(cfg.CA.Cert), obs: cfg.Observer}
	e.rolloutKick = make(chan struct{}, 1)
	e.joinAudit = rateLimiter{every: time.Minute, burst: 20}
	e.vms = newVMService(e, cfg.VMs)
	e.stor = newStorageService(e, cfg.StorageAgents)
	return &Services{Users: &Users{e}, Clusters: &Clusters{e}, Hosts: &Hosts{e}, VMs: &VMs{e}, Firmware: &Firmware{e}, Rollouts: &Rollouts{e},
		Events: &Events{e}, Enrollment: &Enrollment{e}, System: &System{e}, Storage: &Storage{e}, Metrics: &Metrics{e}, Sessions: &Sessions{e}, e: e}
}

// Close ends the long-lived streams and releases the agents' connections.
func (s *Services) Close() {
	s.e.vms.close()
}

// StopStreams ends the long-lived streams (consoles) now: the server
// stops.
func (s *Services) StopStreams() { s.e.vms.stopStreams() }

// Streams is the context of the long-lived streams: done when the engine
// stops serving.
func (s *Services) Streams() context.Context { return s.e.vms.streams }

// engine is what every service shares: the database, the agents, the
// monitoring (when this engine leads it), the host list the API serves.
type engine struct {
	cfg    Config
	st     store.Store
	agents Agents
	log    *slog.Logger
	ca     *pki.CA
	caFP   string
	vms    *vmService
	// stor is the storage: pools, volumes, images, templates, snapshots.
	stor *storageService
	obs  Observer

	leader atomic.Bool
	monMu  sync.Mutex
	mon    *monitor

	joinAudit rateLimiter
	// storage is the last storage error met (Health).
	storage storageHealth
	// hosts is the host list the API's lists are served from.
	hosts hostList
	// tokens are the API tokens' users seen lately.
	tokens tokenCache
	// reports are the host documents' facts read from the hosts'
	// capabilities reports (virtualization, profile, firmware levels).
	reports reportFactsCache
	// rolloutKick wakes the rollout worker; maint, when set (tests), is
	// the hosts' maintenance the rollouts use.
	rolloutKick chan struct{}
	maint       hostMaintainer

	// The web UI's state, each made on first use: the sign-in
	// (sessions.go), the event stream (eventstream.go), the statistics of
	// the last hour (statshistory.go).
	webOnce   sync.Once
	web       *webAuth
	hubOnce   sync.Once
	hub       *eventHub
	statsOnce sync.Once
	stats     *statsHistory
}

// ctxKey keys what a context carries for the services: who they act for
// (an authenticated user; none for the engine's own work and the
// unauthenticated join) and the request's correlation ID.
type ctxKey int

const (
	callerKey ctxKey = iota
	correlationKey
)

// WithCaller is ctx acting for user u (the audit log names it).
func WithCaller(ctx context.Context, u *store.User) context.Context {
	return context.WithValue(ctx, callerKey, u)
}

// CallerFrom is the user ctx acts for, nil for the engine's own work.
func CallerFrom(ctx context.Context) *store.User {
	u, _ := ctx.Value(callerKey).(*store.User)
	return u
}

// WithCorrelation is ctx with the correlation ID of a request: the events
// the services record carry it.
func WithCorrelation(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey, id)
}

func correlationFrom(ctx context.Context) string {
	c, _ := ctx.Value(correlationKey).(string)
	return c
}

// userName is the caller's name, for messages.
func userName(ctx context.Context) string {
	if u := CallerFrom(ctx); u != nil {
		return u.Name
	}
	return "the engine"
}

// appendEvent adds an event to the audit log, with the caller and the
// correlation ID.
func (e *engine) appendEvent(ctx context.Context, q store.Queries, ev store.Event) error {
	if u := CallerFrom(ctx); u != nil && ev.User == "" {
		ev.User = u.Name
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = correlationFrom(ctx)
	}
	if ev.Severity == "" {
		ev.Severity = store.SeverityInfo
	}
	return q.AppendEvent(ctx, &ev)
}

// IsLeader tells whether this engine monitors the hosts now.
func (s *Services) IsLeader() bool { return s.e.leader.Load() }

// RunMonitoring takes part in the election of the engine that monitors the
// hosts until ctx ends: it tries to take the lead every LeaderRetry; while
// it leads, it monitors; when the lead is lost (its database connection
// broke), it stops at once and tries again.
func (s *Services) RunMonitoring(ctx context.Context) {
	e := s.e
	cfg := e.cfg.Monitor
	warned := false
	for ctx.Err() == nil {
		l, ok, err := e.st.TryAcquireLeadership(ctx, store.RoleMonitoring)
		if err != nil || !ok {
			if err != nil && !warned {
				e.log.Warn("cannot try to lead the monitoring", "err", err)
				warned = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(cfg.LeaderRetry):
			}
			continue
		}
		warned = false
		e.leadWith(ctx, l)
	}
}

func (e *engine) leadWith(ctx context.Context, l store.Leadership) {
	e.log.Info("leading the host monitoring")
	// The take-over is recorded before the engine says it leads: a client
	// that sees it lead finds the event (it read the one before, once).
	ev := store.Event{Action: "engine.leader", Severity: store.SeverityInfo, ObjectKind: "engine",
		ObjectName: e.cfg.Name, Message: fmt.Sprintf("Engine %s took over the host monitoring.", e.cfg.Name)}
	if err := e.appendEvent(ctx, e.st, ev); err != nil {
		e.log.Warn("audit log", "err", err)
	}
	e.leader.Store(true)
	mctx, cancel := context.WithCancel(ctx)
	m := newMonitor(e)
	e.monMu.Lock()
	e.mon = m
	e.monMu.Unlock()
	done := make(chan struct{})
	go func() { m.run(mctx); close(done) }()
	rdone := make(chan struct{})
	go func() { e.runRollouts(mctx); close(rdone) }()
	select {
	case <-l.Lost():
		e.log.Warn("lost the lead of the host monitoring (database connection broken?)")
	case <-ctx.Done():
	}
	cancel()
	<-done
	<-rdone
	e.monMu.Lock()
	e.mon = nil
	e.monMu.Unlock()
	e.leader.Store(false)
	rctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	_ = l.Release(rctx)
}

// monitor is the running monitor, nil when this engine does not lead.
func (e *engine) monitor() *monitor {
	e.monMu.Lock()
	defer e.monMu.Unlock()
	return e.mon
}

// hostChanged tells the monitor (when this engine leads) that a host
// changed, so that it acts at once rather than at its next reload, and
// drops the API's host list.
func (e *engine) hostChanged() {
	e.hosts.invalidate()
	if m := e.monitor(); m != nil {
		m.reloadSoon()
	}
}

// rateLimiter lets burst events through per period.
type rateLimiter struct {
	mu    sync.Mutex
	every time.Duration
	burst int
	start time.Time
	n     int
}

func (r *rateLimiter) allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.start) > r.every {
		r.start, r.n = now, 0
	}
	r.n++
	return r.n <= r.burst
}
