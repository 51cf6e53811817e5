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
	"path/filepath"
	"sync/atomic"
	"time"

	"polyvirt/internal/bulkconn"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
	"polyvirt/internal/metrics"
	"polyvirt/internal/pki"
	"polyvirt/internal/store"
)

// Version is the engine's version, set at build time with
// -ldflags "-X polyvirt/internal/engine.Version=...".
var Version = "dev"

// MonitorConfig tunes the host monitoring (service.MonitorConfig).
type MonitorConfig = service.MonitorConfig

// VMConfig tunes the VMs' scheduling, state synchronization and HA
// restarts (service.VMConfig).
type VMConfig = service.VMConfig

// Config configures an engine. DataDir is required; the other fields
// override the data directory's engine.json when set.
type Config struct {
	DataDir string
	// DB is the database URL (with its password, from the environment:
	// POLYVIRT_DB); DBPasswordFile a 0600 file holding the PostgreSQL
	// password when the URL has none.
	DB             string
	DBPasswordFile string
	DBSchema       string
	Name           string
	Listen         string
	// URL is the engine's address as agents reach it (join commands).
	URL string
	// Socket is the path of the local API socket ("" for none; see
	// ServeSocket); SocketGroup the group (name or number) whose members
	// may use it besides root and the engine's user.
	Socket      string
	SocketGroup string
	Monitor     MonitorConfig
	// VMs tunes scheduling, VM state synchronization and HA restarts.
	VMs VMConfig
	// Store tunes the database connections.
	Store store.Options
	// API bounds the API's connections.
	API APIConfig
	// Sessions tunes the web UI's sign-in sessions.
	Sessions SessionConfig
	// StatsHistoryInterval is how often the hosts' statistics are kept
	// for the web UI's charts of the last hour (default 30s).
	StatsHistoryInterval time.Duration
	// Logger receives the engine's log (default: text on stderr).
	Logger *slog.Logger
}

// APIConfig bounds the connections the HTTPS API holds at once (counted
// before their TLS handshake): MaxConns in total (over it: 503
// SERVER_OVERLOADED), MaxConnsPerClient from one client address (over it:
// 429 TOO_MANY_CONNECTIONS). Idle kept-alive connections, and connections
// that sent nothing within two seconds, make room for new ones first.
// Zero is the default (httpx.DefaultMaxConns, DefaultMaxConnsPerClient),
// a negative value no limit.
type APIConfig struct {
	MaxConns          int
	MaxConnsPerClient int
}

// limits are the connection limits of c.
func (c APIConfig) limits() httpx.ConnLimits {
	pick := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return httpx.ConnLimits{Total: pick(c.MaxConns, httpx.DefaultMaxConns), PerClient: pick(c.MaxConnsPerClient, httpx.DefaultMaxConnsPerClient)}
}

// Engine is one running engine: its data directory, its database, its
// services (package service) and the HTTPS API on top of them.
type Engine struct {
	cfg      Config
	settings Settings
	log      *slog.Logger
	st       store.Store
	pki      *pkiFiles
	caFP     string
	agents   *agentClient
	svc      *service.Services
	// conns bounds the API's connections (set by Serve).
	conns atomic.Pointer[httpx.Limiter]
	// refusalLogged is when refused connections were last logged.
	refusalLogged atomic.Int64
	metrics       *metrics.Engine
	// ui are the web UI's files (webui.go).
	ui uiFiles
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
	// A password in engine.json (an engine initialized by an older
	// polyvirt) still works; the log says to move it out.
	fromFile := store.HasPassword(s.DB)
	over(&s.DB, cfg.DB)
	over(&s.DBPasswordFile, cfg.DBPasswordFile)
	over(&s.DBSchema, cfg.DBSchema)
	over(&s.Name, cfg.Name)
	over(&s.Listen, cfg.Listen)
	over(&s.URL, cfg.URL)
	over(&s.Socket, cfg.Socket)
	over(&s.SocketGroup, cfg.SocketGroup)
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.Name == "" {
		s.Name, _ = os.Hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	p, err := loadPKI(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	opts := cfg.Store
	opts.Schema = s.DBSchema
	if s.DBPasswordFile != "" && !store.HasPassword(s.DB) {
		if opts.Password, err = ReadSecretFile(s.DBPasswordFile); err != nil {
			return nil, fmt.Errorf("the database password file (dbPasswordFile of %s, or --db-password-file): %w",
				filepath.Join(cfg.DataDir, FileSettings), err)
		}
	}
	if fromFile && cfg.DB == "" {
		cfg.Logger.Warn("engine.json holds the database password: remove it from the db URL there, and give it in POLYVIRT_DB, PGPASSWORD or a 0600 file named by dbPasswordFile",
			"file", filepath.Join(cfg.DataDir, FileSettings))
	}
	st, err := store.Open(ctx, DatabaseURL(cfg.DataDir, s.DB), opts)
	if err != nil {
		return nil, err
	}
	pollTimeout := cfg.Monitor.PollTimeout
	if pollTimeout <= 0 {
		pollTimeout = 5 * time.Second
	}
	agents, err := newAgentClient(p, pollTimeout)
	if err != nil {
		st.Close()
		return nil, err
	}
	e := &Engine{cfg: cfg, settings: s, log: cfg.Logger.With("engine", s.Name), st: st, pki: p,
		caFP: pki.Fingerprint(p.ca.Cert), agents: agents}
	e.metrics = metrics.NewEngine(metrics.EngineInfo{Name: s.Name, Version: Version, Backend: string(st.Backend())}, e.inventory)
	e.svc = service.New(service.Config{Store: observeStore(st, e.metrics), Agents: agents.service(), StorageAgents: newStorageAgents(agents.ops), CA: p.ca, Name: s.Name, URL: s.URL,
		Version: Version, Monitor: cfg.Monitor, VMs: cfg.VMs, Sessions: cfg.Sessions, StatsHistoryInterval: cfg.StatsHistoryInterval, Log: e.log, Observer: e.metrics})
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
func (e *Engine) IsLeader() bool { return e.svc.IsLeader() }

// Services are the engine's services: what its API calls, callable
// without HTTP.
func (e *Engine) Services() *service.Services { return e.svc }

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
	tlsCfg := e.TLSConfig()
	// The limits act on the raw connections, before any TLS handshake.
	// Under TLS, the connections read an upload's data in large blocks
	// (bulkconn).
	lim := httpx.NewLimiter(bulkconn.Listener{Listener: ln}, e.cfg.API.limits(), tlsCfg)
	lim.OnRefuse = func(client, code string) { e.noteRefusal(lim) }
	e.conns.Store(lim)
	srv := &http.Server{
		Handler:           e.Handler(),
		TLSConfig:         tlsCfg,
		ConnState:         lim.ConnState,
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
	go e.svc.RecordStats(ctx)
	go func() {
		<-ctx.Done()
		// Consoles are hijacked connections Shutdown does not wait for.
		e.svc.StopStreams()
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	limits := e.cfg.API.limits()
	e.log.Info("engine listening", "addr", ln.Addr().String(), "backend", e.st.Backend(), "url", e.settings.URL,
		"maxConns", limits.Total, "maxConnsPerClient", limits.PerClient)
	err := srv.ServeTLS(lim, "", "")
	cancel()
	<-leadDone
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ConnStats counts the API's connections: held, refused over each limit,
// evicted to make room (zero before Serve).
func (e *Engine) ConnStats() httpx.ConnStats {
	if l := e.conns.Load(); l != nil {
		return l.Stats()
	}
	return httpx.ConnStats{}
}

// noteRefusal logs refused connections, at most every ten seconds.
func (e *Engine) noteRefusal(l *httpx.Limiter) {
	now := time.Now().UnixNano()
	last := e.refusalLogged.Load()
	if now-last < int64(10*time.Second) || !e.refusalLogged.CompareAndSwap(last, now) {
		return
	}
	st := l.Stats()
	e.log.Warn("API connections refused over the limits (TOO_MANY_CONNECTIONS per client, SERVER_OVERLOADED in total)",
		"open", st.Open, "refusedPerClient", st.RefusedPerClient, "refusedTotal", st.RefusedTotal,
		"closedUnanswered", st.Dropped, "evictedIdle", st.Evicted)
}

// RunMonitoring takes part in the election of the engine that monitors the
// hosts until ctx ends (service.Services.RunMonitoring).
func (e *Engine) RunMonitoring(ctx context.Context) { e.svc.RunMonitoring(ctx) }

// Close releases the database.
func (e *Engine) Close() error {
	e.svc.Close()
	e.agents.close()
	return e.st.Close()
}
