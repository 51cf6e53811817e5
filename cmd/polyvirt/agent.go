package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/agent"
	"polyvirt/internal/pki"
)

func newAgentCommand() *cobra.Command {
	var (
		configFile string
		cfg        agent.Config
		fakeKVM    string
		stats      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the host agent: VMs through libvirt, capabilities, statistics, consoles (HTTPS + mutual TLS)",
		Long: `Run the host agent of this hypervisor. It serves a versioned JSON API over
HTTPS (/v1/...; /v1/openapi.json describes it) to clients holding a TLS
certificate signed by the CA it trusts, and manages through libvirt the VMs
it created (marked in their <metadata> with its host id).

Configuration: --config FILE (YAML, see dist/agent.yaml); flags override it.
Fake KVM (--fake-kvm auto|on|off, --fake-arch, --profile) runs guests under
QEMU emulation, POWER guests on an x86_64 machine included.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			base := agent.Config{}
			if configFile != "" {
				var err error
				if base, err = agent.LoadConfig(configFile); err != nil {
					return err
				}
			}
			f := cmd.Flags()
			override := func(name string, dst *string, v string) {
				if f.Changed(name) {
					*dst = v
				}
			}
			override("host-id", &base.HostID, cfg.HostID)
			override("domain-prefix", &base.DomainPrefix, cfg.DomainPrefix)
			override("listen", &base.Listen, cfg.Listen)
			override("data-dir", &base.DataDir, cfg.DataDir)
			override("libvirt", &base.LibvirtURI, cfg.LibvirtURI)
			if f.Changed("fake-arch") {
				base.FakeArch = cfg.FakeArch
			}
			override("profile", &base.Profile, cfg.Profile)
			override("metrics-listen", &base.MetricsListen, cfg.MetricsListen)
			override("tls-ca", &base.TLS.CA, cfg.TLS.CA)
			override("tls-cert", &base.TLS.Cert, cfg.TLS.Cert)
			override("tls-key", &base.TLS.Key, cfg.TLS.Key)
			if f.Changed("fake-kvm") {
				base.FakeKVM = agent.FakeKVM(fakeKVM)
			}
			if f.Changed("fake-memory-mib") {
				base.FakeMemoryMiB = cfg.FakeMemoryMiB
			}
			if f.Changed("stats-interval") {
				base.StatsInterval = agent.Duration{Duration: stats}
			}
			override("migration-address", &base.Migration.Address, cfg.Migration.Address)
			if f.Changed("migration-front") {
				base.Migration.Front = cfg.Migration.Front
			}
			return runAgent(cmd.Context(), base)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configFile, "config", "c", "", "YAML configuration file")
	f.StringVar(&cfg.HostID, "host-id", "", "this host's id (default: the hostname)")
	f.StringVar(&cfg.DomainPrefix, "domain-prefix", "", "prefix of libvirt domain names (several agents on one libvirtd)")
	f.StringVar(&cfg.Listen, "listen", "", "HTTPS listen address (default 127.0.0.1:7443)")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "a second HTTPS address serving GET /metrics only (same mutual TLS)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "data directory (default /var/lib/polyvirt/agent)")
	f.StringVar(&cfg.LibvirtURI, "libvirt", "", "libvirt URI (default qemu:///system)")
	f.StringVar(&fakeKVM, "fake-kvm", "", "fake KVM: auto, on or off (default auto)")
	f.Var(archFlag{&cfg.FakeArch}, "fake-arch", "effective architecture of a fake-KVM host")
	f.Uint64Var(&cfg.FakeMemoryMiB, "fake-memory-mib", 0, "cap every VM's memory in fake-KVM mode")
	f.StringVar(&cfg.Profile, "profile", "", "present this host as a built-in profile (fake KVM)")
	f.StringVar(&cfg.TLS.CA, "tls-ca", "", "CA whose client certificates are accepted (default DATA_DIR/ca.pem)")
	f.StringVar(&cfg.TLS.Cert, "tls-cert", "", "server certificate (default DATA_DIR/agent.pem)")
	f.StringVar(&cfg.TLS.Key, "tls-key", "", "server key (default DATA_DIR/agent-key.pem)")
	f.DurationVar(&stats, "stats-interval", 0, "statistics sampling interval (default 5s)")
	f.StringVar(&cfg.Migration.Address, "migration-address", "", "HOST:PORT where other hosts' libvirtd reach this host's libvirtd over TLS (migration.address; default none: this host takes no VMs)")
	f.BoolVar(&cfg.Migration.Front, "migration-front", false, "serve libvirt's TLS port at --migration-address for a libvirtd that does not listen itself (migration.front)")
	return cmd
}

func runAgent(ctx context.Context, cfg agent.Config) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := a.Config()
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	if c.MetricsListen != "" {
		mln, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics_listen: %w", err)
		}
		go func() {
			if err := a.ServeMetrics(ctx, mln); err != nil {
				log.Error("metrics listener", "err", err)
			}
		}()
		log.Info("agent metrics listening", "addr", mln.Addr().String())
	}
	log.Info("agent listening", "host", c.HostID, "addr", ln.Addr().String(), "fakeKvm", a.FakeKVM(), "profile", c.Profile, "fakeArch", c.FakeArch)
	return a.Serve(ctx, ln)
}

func newAgentCertsCommand() *cobra.Command {
	var (
		dir   string
		host  string
		names []string
		days  int
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create a CA and the certificates of a standalone agent and of one client",
		Long: `Create, in --dir, a CA (ca.pem, ca-key.pem), the agent's server certificate
(agent.pem, agent-key.pem) for the given names and addresses, and a client
certificate (client.pem, client-key.pem) to call the agent with. An existing
CA in the directory is reused. Once the agent is enrolled by an engine, the
engine is the CA instead.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
			ca, err := pki.LoadCA(caCert, caKey)
			if os.IsNotExist(err) {
				if ca, err = pki.NewCA("polyvirt agent CA"); err == nil {
					err = ca.Save(caCert, caKey)
				}
			}
			if err != nil {
				return err
			}
			validity := time.Duration(days) * 24 * time.Hour
			srv, err := ca.Issue(host, append([]string{host, "localhost", "127.0.0.1", "::1"}, names...), pki.Server, validity)
			if err != nil {
				return err
			}
			cli, err := ca.Issue("polyvirt-client", nil, pki.Client, validity)
			if err != nil {
				return err
			}
			for name, data := range map[string][]byte{
				"agent.pem": srv.CertPEM, "agent-key.pem": srv.KeyPEM,
				"client.pem": cli.CertPEM, "client-key.pem": cli.KeyPEM,
			} {
				mode := os.FileMode(0o644)
				if strings.HasSuffix(name, "-key.pem") {
					mode = 0o600
				}
				if err := pki.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote ca.pem, agent.pem, agent-key.pem, client.pem, client-key.pem in %s\n", dir)
			return nil
		},
	}
	hostname, _ := os.Hostname()
	cmd.Flags().StringVar(&dir, "dir", "/var/lib/polyvirt/agent", "directory to write the files to")
	cmd.Flags().StringVar(&host, "host", hostname, "the agent's host name (certificate subject)")
	cmd.Flags().StringSliceVar(&names, "name", nil, "more DNS names or IP addresses the agent answers on")
	cmd.Flags().IntVar(&days, "days", 825, "validity in days")
	return cmd
}
