// Package engine is polyvirt's manager (the oVirt engine's role): users
// and their API tokens, clusters of one architecture and CPU type, hosts
// enrolled over mutual TLS and admitted into their cluster or refused with
// the reason, host monitoring (by the one engine that leads it), and an
// audit log of every state change and action. Its state is in a database
// (package store: SQLite, or PostgreSQL shared by several engines).
//
// The HTTPS REST API is under /api/v1 (Handler; routes.go lists the
// routes, openapi.json describes them); clients authenticate with
// "Authorization: Bearer TOKEN"; admin users may do everything,
// vm-manager users read everything and manage VMs (not hosts, clusters,
// users or firmware), readonly users only GET. An agent enrolls through the unauthenticated
// POST /api/v1/join with a one-time join token (package enroll).
//
// Architecture questions are asked of packages archspec and cpucatalog;
// nothing here tests an architecture name.
package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/pki"
	"polyvirt/internal/store"
)

// Version is the engine's version, set at build time with
// -ldflags "-X polyvirt/internal/engine.Version=...".
var Version = "dev"

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

// Config configures an engine. DataDir is required; the other fields
// override the data directory's engine.json when set.
type Config struct {
	DataDir  string
	DB       string
	DBSchema string
	Name     string
	Listen   string
	// URL is the engine's address as agents reach it (join commands).
	URL     string
	Monitor MonitorConfig
	// VMs tunes scheduling, VM state synchronization and HA restarts.
	VMs VMConfig
	// Store tunes the database connections.
	Store store.Options
	// Logger receives the engine's log (default: text on stderr).
	Logger *slog.Logger
}

// Engine is one running engine.
type Engine struct {
	cfg      Config
	settings Settings
	log      *slog.Logger
	st       store.Store
	pki      *pkiFiles
	caFP     string
	agents   *agentClient
	vms      *vmService

	leader atomic.Bool
	monMu  sync.Mutex
	mon    *monitor

	joinAudit rateLimiter
	// hosts is the host list the API's lists are served from.
	hosts hostList
}

// Open reads the data directory (certificates, engine.json), opens and
// migrates the database, and prepares the engine; Serve runs it.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("the engine needs a data directory (--data-dir)")
	}
	s, err := LoadSettings(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	over := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	over(&s.DB, cfg.DB)
	over(&s.DBSchema, cfg.DBSchema)
	over(&s.Name, cfg.Name)
	over(&s.Listen, cfg.Listen)
	over(&s.URL, cfg.URL)
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.Name == "" {
		s.Name, _ = os.Hostname()
	}
	cfg.Monitor = cfg.Monitor.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	p, err := loadPKI(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	opts := cfg.Store
	opts.Schema = s.DBSchema
	st, err := store.Open(ctx, DatabaseURL(cfg.DataDir, s.DB), opts)
	if err != nil {
		return nil, err
	}
	agents, err := newAgentClient(p, cfg.Monitor.PollTimeout)
	if err != nil {
		st.Close()
		return nil, err
	}
	e := &Engine{cfg: cfg, settings: s, log: cfg.Logger.With("engine", s.Name), st: st, pki: p,
		caFP: pki.Fingerprint(p.ca.Cert), agents: agents}
	e.joinAudit = rateLimiter{every: time.Minute, burst: 20}
	e.vms = newVMService(e, cfg.VMs)
	return e, nil
}

// Store is the engine's database.
func (e *Engine) Store() store.Store { return e.st }

// Name is the engine's name.
func (e *Engine) Name() string { return e.settings.Name }

// Listen is the configured HTTPS address.
func (e *Engine) Listen() string { return e.settings.Listen }

// URL is the engine's address for agents and clients.
func (e *Engine) URL() string { return e.settings.URL }

// IsLeader tells whether this engine monitors the hosts now.
func (e *Engine) IsLeader() bool { return e.leader.Load() }

// CAFingerprint is the hex SHA-256 of the engine CA certificate.
func (e *Engine) CAFingerprint() string { return e.caFP }

// TLSConfig is the HTTPS server configuration: the engine's certificate
// sent with the CA (so that a joining agent can check the chain against
// its token). Clients authenticate with tokens, not certificates.
func (e *Engine) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{e.pki.server}, MinVersion: tls.VersionTLS12}
}

// Serve runs the HTTPS API on ln and takes part in the election of the
// monitoring leader, until ctx ends; then it stops serving (letting
// requests in flight end), stops monitoring and gives the lead up.
func (e *Engine) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           e.Handler(),
		TLSConfig:         e.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leadDone := make(chan struct{})
	go func() { e.RunMonitoring(ctx); close(leadDone) }()
	go func() {
		<-ctx.Done()
		// Consoles are hijacked connections Shutdown does not wait for.
		e.vms.stopStreams()
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	e.log.Info("engine listening", "addr", ln.Addr().String(), "backend", e.st.Backend(), "url", e.settings.URL)
	err := srv.ServeTLS(ln, "", "")
	cancel()
	<-leadDone
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// RunMonitoring takes part in the election of the engine that monitors the
// hosts until ctx ends: it tries to take the lead every LeaderRetry; while
// it leads, it monitors; when the lead is lost (its database connection
// broke), it stops at once and tries again.
func (e *Engine) RunMonitoring(ctx context.Context) {
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

func (e *Engine) leadWith(ctx context.Context, l store.Leadership) {
	e.log.Info("leading the host monitoring")
	e.leader.Store(true)
	ev := store.Event{Action: "engine.leader", Severity: store.SeverityInfo, ObjectKind: "engine",
		ObjectName: e.settings.Name, Message: fmt.Sprintf("Engine %s took over the host monitoring.", e.settings.Name)}
	if err := e.appendEvent(ctx, e.st, ev); err != nil {
		e.log.Warn("audit log", "err", err)
	}
	mctx, cancel := context.WithCancel(ctx)
	m := newMonitor(e)
	e.monMu.Lock()
	e.mon = m
	e.monMu.Unlock()
	done := make(chan struct{})
	go func() { m.run(mctx); close(done) }()
	select {
	case <-l.Lost():
		e.log.Warn("lost the lead of the host monitoring (database connection broken?)")
	case <-ctx.Done():
	}
	cancel()
	<-done
	e.monMu.Lock()
	e.mon = nil
	e.monMu.Unlock()
	e.leader.Store(false)
	rctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	_ = l.Release(rctx)
}

// monitor is the running monitor, nil when this engine does not lead.
func (e *Engine) monitor() *monitor {
	e.monMu.Lock()
	defer e.monMu.Unlock()
	return e.mon
}

// hostChanged tells the monitor (when this engine leads) that a host
// changed, so that it acts at once rather than at its next reload, and
// drops the API's host list.
func (e *Engine) hostChanged() {
	e.hosts.invalidate()
	if m := e.monitor(); m != nil {
		m.reloadSoon()
	}
}

// Close releases the database.
func (e *Engine) Close() error {
	e.vms.close()
	e.agents.close()
	return e.st.Close()
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
