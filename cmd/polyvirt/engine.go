package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/engine"
	"polyvirt/internal/httpx"
	"polyvirt/internal/pki"
)

// envDB is the environment variable that gives the database URL, with
// its password (kept out of every file).
const envDB = "POLYVIRT_DB"

// engineRunFlags are the flags of `polyvirt engine [run]`.
type engineRunFlags struct {
	cfg      engine.Config
	logLevel string
	pprof    string
}

func (f *engineRunFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cfg.DataDir, "data-dir", "/var/lib/polyvirt/engine", "the engine's data directory (polyvirt engine init)")
	// $POLYVIRT_DB is read when the command runs, not as the flag's
	// default: --help would print its password.
	fl.StringVar(&f.cfg.DB, "db", "", "database URL, with its password (default: $"+envDB+", else engine.json's, else DATA_DIR/polyvirt.db)")
	fl.StringVar(&f.cfg.DBPasswordFile, "db-password-file", "", "a 0600 file holding the PostgreSQL password (default: engine.json's dbPasswordFile; else $PGPASSWORD or ~/.pgpass)")
	fl.StringVar(&f.cfg.DBSchema, "db-schema", "", "PostgreSQL schema (default: engine.json's, else public)")
	fl.StringVar(&f.cfg.Listen, "listen", "", "HTTPS listen address (default: engine.json's, else :8443)")
	fl.StringVar(&f.cfg.Name, "name", "", "the engine's name in events (default: engine.json's)")
	fl.StringVar(&f.cfg.URL, "url", "", "the engine's URL as agents reach it, for join commands (default: engine.json's)")
	fl.StringVar(&f.cfg.Socket, "socket", "", "also serve the API on this local unix socket, without TLS, for a CLI on this machine (--engine unix://PATH; the token is still required) (default: engine.json's socket, else none)")
	fl.StringVar(&f.cfg.SocketGroup, "socket-group", "", "the group (name or id) whose members may use --socket besides root and the engine's user (default: engine.json's socketGroup, else none: the socket is 0600)")
	m := &f.cfg.Monitor
	fl.DurationVar(&m.StatsInterval, "stats-interval", 3*time.Second, "how often each host's statistics are read")
	fl.DurationVar(&m.CapsInterval, "caps-interval", 30*time.Second, "how often a host whose pushed statistics do not name its report's ETag (an older agent) is asked whether its capabilities changed")
	fl.DurationVar(&m.PollTimeout, "poll-timeout", 5*time.Second, "timeout of one request to an agent")
	fl.IntVar(&m.Failures, "failures", 3, "consecutive failed polls that make a host NonResponsive")
	fl.DurationVar(&m.HostsReload, "hosts-reload", 5*time.Second, "how often the host list is read again (changes made by other engines)")
	fl.DurationVar(&m.StatsFlush, "stats-flush", time.Second, "how often the collected statistics are written")
	fl.DurationVar(&m.StatsWrite, "stats-write", 0, "how often at most one host's statistics are written to the database; the leading engine's API shows the latest from memory (default: 4 stats intervals)")
	fl.DurationVar(&m.LeaderRetry, "leader-retry", 2*time.Second, "how often an engine that does not lead the monitoring tries to")
	v := &f.cfg.VMs
	fl.DurationVar(&v.HADelay, "ha-delay", 30*time.Second, "how long a host is NonResponsive before its highly available VMs restart elsewhere (negative: at once)")
	fl.DurationVar(&v.HAInterval, "ha-interval", 5*time.Second, "how often the monitoring leader looks for HA VMs to restart")
	fl.DurationVar(&v.Resync, "vm-resync", 10*time.Minute, "how often each host's VM list is read again, a safety net besides its event stream (which is read again from a full list on every reconnection)")
	fl.IntVar(&v.Policy.MemoryOvercommitPercent, "memory-overcommit", 100, "percent of a host's memory its VMs may use (100: no overcommit)")
	fl.Int64Var(&v.Policy.ReservedMemoryMiB, "host-reserved-memory", 256, "MiB of each host's memory kept for the host")
	fl.IntVar(&v.Policy.VCPUsPerCPU, "vcpus-per-cpu", 4, "vCPUs of running VMs per online host CPU")
	fl.IntVar(&f.cfg.API.MaxConns, "max-connections", httpx.DefaultMaxConns, "API connections held at once, in total; more are refused with 503 SERVER_OVERLOADED (-1: no limit)")
	fl.IntVar(&f.cfg.API.MaxConnsPerClient, "max-connections-per-client", httpx.DefaultMaxConnsPerClient, "API connections held at once from one client address; more are refused with 429 TOO_MANY_CONNECTIONS (-1: no limit)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.pprof, "pprof-listen", "", "serve Go's profiles (/debug/pprof/) on this loopback address, for benchmarks")
}

func (f *engineRunFlags) run(cmd *cobra.Command) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return withStatus(2, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel))
	}
	f.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if f.cfg.DB == "" {
		f.cfg.DB = os.Getenv(envDB)
	}
	if f.pprof != "" {
		if err := servePprof(f.pprof); err != nil {
			return withStatus(2, err)
		}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e, err := engine.Open(ctx, f.cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	ln, err := net.Listen("tcp", e.Listen())
	if err != nil {
		return err
	}
	// The local socket, when configured, beside HTTPS: a socket that
	// cannot be served stops the engine (it was asked for).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sockErr := make(chan error, 1)
	go func() {
		err := e.ServeSocket(ctx)
		if err != nil {
			cancel()
		}
		sockErr <- err
	}()
	err = e.Serve(ctx, ln)
	cancel()
	if serr := <-sockErr; serr != nil {
		return fmt.Errorf("the local socket: %w", serr)
	}
	return err
}

func newEngineCommand() *cobra.Command {
	var rf engineRunFlags
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run the engine (the manager): clusters, hosts, monitoring, REST API over HTTPS",
		Long: `Run the polyvirt engine: the REST API under /api/v1 (HTTPS, API tokens), and
the monitoring of the enrolled hosts by the engine that leads it (several
engines can share one PostgreSQL database; one leads, the others serve the API
and take over when it dies).

Create an engine first with polyvirt engine init. "polyvirt engine" and
"polyvirt engine run" are the same.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return rf.run(cmd) },
	}
	rf.add(cmd)
	return cmd
}

// newEngineRunCommand is `polyvirt engine run`, the same as `polyvirt engine`.
func newEngineRunCommand() *cobra.Command {
	var rf engineRunFlags
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the engine",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return rf.run(cmd) },
	}
	rf.add(run)
	return run
}

func newEngineInitCommand() *cobra.Command {
	var (
		o         engine.InitOptions
		output    string
		tokenFile string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create an engine: data directory, CA and certificates, database, first administrator",
		Long: `Create an engine in --data-dir: the engine CA (ca.pem, ca-key.pem), its HTTPS
certificate (engine.pem, for --name and every --address), the certificate it
presents to agents (engine-client.pem), engine.json, and the database — the
SQLite file polyvirt.db in the data directory, or PostgreSQL with
--db postgres://... — with its first administrator. The administrator's API
token is printed once (only its hash is stored); --token-file writes it to a
file (0600) instead.

No file of the data directory holds a secret but the keys: engine.json keeps
the database URL without its password. Give the password to every run in
POLYVIRT_DB (the whole URL) or PGPASSWORD, or keep it in a file only root
reads and name it with --db-password-file (recorded in engine.json).

A second engine on the same PostgreSQL database is not initialized: copy ca.pem,
ca-key.pem, engine-client.pem, engine-client-key.pem, engine.json and the HTTPS
certificate (or make one with polyvirt engine cert) to its data directory; give
it the database password the same way (engine.json holds none).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withStatus(2, fmt.Errorf("-o %q: want text or json", output))
			}
			if o.DB == "" {
				o.DB = os.Getenv(envDB)
			}
			res, err := engine.Init(cmd.Context(), o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if tokenFile != "" {
				if err := pki.WriteFile(tokenFile, []byte(res.AdminToken+"\n"), 0o600); err != nil {
					return fmt.Errorf("the engine was created, but writing the token failed (use polyvirt user token to make another): %w", err)
				}
			}
			if output == "json" {
				if tokenFile != "" {
					res.AdminToken = ""
				}
				return printJSON(w, res)
			}
			fmt.Fprintf(w, "Engine created in %s\n", res.DataDir)
			kv := [][2]string{{"  database", res.Backend + " " + res.Database}}
			if res.DatabasePassword != "" {
				kv = append(kv, [2]string{"  database password", res.DatabasePassword})
			}
			keyValues(w, append(kv, [][2]string{{"  URL", res.URL},
				{"  CA", res.CAFile}, {"  CA fingerprint (SHA-256)", res.CAFingerprint}}...))
			if tokenFile != "" {
				fmt.Fprintf(w, "The API token of administrator %s is in %s.\n", res.Admin, tokenFile)
			} else {
				fmt.Fprintf(w, "API token of administrator %s (shown once, keep it safe):\n%s\n", res.Admin, res.AdminToken)
			}
			fmt.Fprintf(w, "Start it:  polyvirt engine run --data-dir %s\n", res.DataDir)
			fmt.Fprintf(w, "Log in:    polyvirt login --engine %s --ca-file %s   (the token on stdin)\n", res.URL, res.CAFile)
			return nil
		},
	}
	f := cmd.Flags()
	hostname, _ := os.Hostname()
	f.StringVar(&o.DataDir, "data-dir", "/var/lib/polyvirt/engine", "the data directory to create")
	f.StringVar(&o.DB, "db", "", "database URL (default $"+envDB+", else DATA_DIR/polyvirt.db; postgres://... for PostgreSQL)")
	f.StringVar(&o.DBPasswordFile, "db-password-file", "", "a 0600 file holding the PostgreSQL password (its path is kept in engine.json, never the password)")
	f.StringVar(&o.DBSchema, "db-schema", "", "PostgreSQL schema (default public)")
	f.StringVar(&o.Name, "name", hostname, "the engine's host name (its certificate and URL)")
	f.StringSliceVar(&o.Addresses, "address", nil, "more DNS names or IP addresses the engine answers on (repeatable)")
	f.StringVar(&o.Listen, "listen", engine.DefaultListen, "HTTPS listen address")
	f.StringVar(&o.Admin, "admin", "admin", "the first administrator's name")
	f.StringVar(&tokenFile, "token-file", "", "write the administrator's token to this file (0600) instead of printing it")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newEngineCertCommand() *cobra.Command {
	var (
		dir, name string
		addresses []string
	)
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Issue a new HTTPS certificate for an engine of this installation (other names)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := engine.IssueServerCert(dir, name, addresses); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/%s and %s for %s\n", dir, engine.FileServerCert, engine.FileServerKey, name)
			return nil
		},
	}
	hostname, _ := os.Hostname()
	cmd.Flags().StringVar(&dir, "data-dir", "/var/lib/polyvirt/engine", "the engine's data directory (with the CA)")
	cmd.Flags().StringVar(&name, "name", hostname, "the engine's host name")
	cmd.Flags().StringSliceVar(&addresses, "address", nil, "more DNS names or IP addresses (repeatable)")
	return cmd
}
