package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/lab"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/pki"
)

type upOptions struct {
	lab     lab.Options
	noLogin bool
	quiet   bool
	down    bool
}

// defaultLabDir is /var/lib/polyvirt/lab for root, else
// $XDG_DATA_HOME/polyvirt (~/.local/share/polyvirt).
func defaultLabDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/polyvirt/lab"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "polyvirt")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "polyvirt")
	}
	return "polyvirt-lab"
}

func newUpCommand() *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole lab on this machine: the engine and its local hosts (this machine's architecture and two fake POWER8)",
		Long: `Run polyvirt on one machine, for a laptop, a lab or a demo: the engine on an
embedded SQLite database, and two local agents on this machine's libvirtd,
enrolled with the engine through the real join flow:

  <arch>-a   this machine's architecture, in cluster <arch> (x86_64 here);
             fake KVM when /dev/kvm cannot run guests
  power8-a   a fake-KVM IBM S822L POWER8 host (profile s822l-power8e), in
             cluster power (CPU type IBM POWER8): POWER guests under QEMU TCG
  power8-b   a second one, on a libvirtd of the lab's own (its own mount
             namespace, DIR/daemons/power8-b): POWER VMs migrate between the
             two (polyvirt vm migrate); it needs root

The first run creates the engine in --data-dir; later runs use it again (the
VMs, which keep running in libvirt while polyvirt is stopped, are found again).
polyvirt up logs the CLI in (the configuration polyvirt login writes), prints
what to do next, then the engine's events, and runs until Ctrl-C, which stops
the engine and the agents but not the VMs, nor power8-b's libvirtd (found
again by its pid files next time). polyvirt up --down stops that libvirtd and
its VMs.

It needs libvirtd with QEMU (scripts/up.sh installs and starts them on Debian).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.down {
				if err := lab.Down(cmd.Context(), o.lab.Dir); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "polyvirt up: the libvirt daemons of the lab in %s are stopped, with their VMs\n", o.lab.Dir)
				return nil
			}
			return runUp(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.lab.Dir, "data-dir", defaultLabDir(), "the lab's `DIR` (engine, agents, logs)")
	f.StringVar(&o.lab.Listen, "listen", "", "the engine's HTTPS `ADDRESS` (default: the last run's, else "+lab.DefaultListen+"; :0 picks a free port)")
	f.StringVar(&o.lab.Libvirt, "libvirt", libvirtconn.DefaultURI, "the libvirt daemon's `URI`")
	f.StringVar(&o.lab.NamePrefix, "name-prefix", "", "`PREFIX` of the host and cluster names, and of the libvirt domain names (several labs on one libvirtd)")
	f.StringVar(&o.lab.DomainPrefix, "domain-prefix", lab.DefaultDomainPrefix, "`PREFIX` of the libvirt domain names, before the host's name (on the first run)")
	f.BoolVar(&o.noLogin, "no-login", false, "do not write the CLI's login configuration")
	f.BoolVar(&o.quiet, "quiet", false, "do not print the engine's events")
	f.BoolVar(&o.down, "down", false, "stop the lab's own libvirt daemons (power8-b's) and their VMs, and exit (the lab must not run)")
	f.DurationVar(&o.lab.Monitor.StatsInterval, "stats-interval", 2*time.Second, "how often the engine reads each host's statistics")
	f.IntVar(&o.lab.Monitor.Failures, "failures", 3, "failed polls that make a host NonResponsive")
	f.DurationVar(&o.lab.HADelay, "ha-delay", 30*time.Second, "how long a host is NonResponsive before its HA VMs restart elsewhere")
	_ = f.MarkHidden("stats-interval")
	_ = f.MarkHidden("failures")
	_ = f.MarkHidden("domain-prefix")
	return cmd
}

// libvirtHelp says how to get libvirt.
const libvirtHelp = `polyvirt up runs VMs through libvirt (libvirtd with QEMU) on this machine, and
cannot reach it at %s: %v

Get it with the project's setup script (Debian 12, as root), which installs
libvirt, QEMU (x86_64 and POWER) and the Debian ppc64el installer, starts
libvirtd, builds polyvirt and runs polyvirt up:

  sudo ./scripts/up.sh

or by hand: apt-get install libvirt-daemon-system qemu-system-x86 qemu-system-ppc
qemu-utils debian-installer-12-netboot-ppc64el, then start libvirtd.`

func runUp(cmd *cobra.Command, o upOptions) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	o.lab.Notes = cmd.ErrOrStderr()
	fmt.Fprintf(out, "polyvirt up: starting the lab in %s (the engine, then its hosts' agents: up to a minute)\n", o.lab.Dir)
	l, err := lab.Start(ctx, o.lab)
	var nolv *lab.NoLibvirtError
	if errors.As(err, &nolv) {
		return withStatus(3, fmt.Errorf(libvirtHelp, nolv.URI, nolv.Err))
	}
	if err != nil {
		return err
	}
	defer l.Stop()
	if l.Created() {
		fmt.Fprintf(out, "  a new engine was created (SQLite %s)\n", l.Database())
	}
	fmt.Fprintf(out, "  engine  %s   (log: %s)\n", l.EngineURL(), l.EngineLog())
	fmt.Fprintf(out, "  web UI  %s/   (sign in as admin, password in %s)\n", l.EngineURL(), l.PasswordFile())
	if sock := l.EngineSocket(); sock != "" {
		fmt.Fprintf(out, "  socket  %s   (the engine's local socket: POLYVIRT_ENGINE=%s polyvirt … skips TLS on this machine)\n", sock, sock)
	}
	api := l.Client()
	hosts := l.Hosts()
	for _, h := range hosts {
		wh, err := api.Host(ctx, h.Name, false)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, hostLine(wh, h))
	}
	if !o.noLogin {
		path, err := loginLab(l.EngineURL(), l.Token(), l.CAPEM())
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Logged in as admin: the CLI's configuration is %s.\n", path)
	} else {
		fmt.Fprintf(out, "Log in: polyvirt login --engine %s --ca-file %s --token-file %s\n", l.EngineURL(), l.CAFile(), l.TokenFile())
	}
	power, native := hosts[1], hosts[0]
	fmt.Fprintf(out, `Next:
  polyvirt vm create --cluster %s -f examples/ppc64le-debian-installer.yaml --start
  polyvirt vm console debian-installer-ppc64el        (ctrl-] detaches)
  polyvirt vm create web1 --cluster %s --memory 512 --cpus 1 --start
  polyvirt vm list; polyvirt host list; polyvirt events
`, power.Cluster, native.Cluster)
	if len(hosts) > 2 {
		fmt.Fprintf(out, "  polyvirt vm migrate debian-installer-ppc64el --to %s; polyvirt host maintenance %s\n", hosts[2].Name, hosts[2].Name)
	}
	fmt.Fprintln(out, "Ctrl-C stops the engine and the agents (the VMs keep running, found again next time).")
	if !o.quiet {
		fmt.Fprintln(out, "Events:")
		go tailEvents(ctx, api, out)
	}
	select {
	case <-ctx.Done():
	case <-l.Done():
		return fmt.Errorf("the engine stopped: %v", l.Err())
	}
	fmt.Fprintln(out, "\npolyvirt up: stopping the agents and the engine (the VMs keep running)")
	return nil
}

// hostLine is one host of the lab as polyvirt up prints it.
func hostLine(h engineapi.Host, lh lab.Host) string {
	line := fmt.Sprintf("  host    %-12s cluster %-8s %s", h.Name, h.Cluster, h.Status)
	if h.CPUType != "" {
		line += "  " + h.CPUType
	}
	if lh.Profile != "" {
		line += "  (fake KVM, profile " + lh.Profile + ")"
	} else if h.Virtualization == "tcg" {
		line += "  (TCG: " + h.VirtualizationReason + ")"
	}
	if lh.OwnDaemon {
		line += "  on the lab's own libvirtd"
	}
	if h.StatusCode != "" {
		line += "  " + h.StatusCode + ": " + h.StatusMessage
	}
	return line
}

// loginLab writes the CLI's configuration for the lab's engine; a login to
// another engine is kept in config.json.bak.
func loginLab(engineURL, token string, caPEM []byte) (string, error) {
	path, err := client.ConfigPath()
	if err != nil {
		return "", err
	}
	if old, err := client.LoadConfig(path); err == nil && old.Engine != "" && old.Engine != engineURL {
		if b, err := os.ReadFile(path); err == nil {
			_ = pki.WriteFile(path+".bak", b, 0o600)
		}
	}
	return path, client.SaveConfig(path, client.Config{Engine: engineURL, Token: token, CA: string(caPEM), User: "admin"})
}

// tailEvents prints the engine's new events until ctx ends.
func tailEvents(ctx context.Context, api *client.Client, out io.Writer) {
	var last int64
	if p, err := api.Events(ctx, client.EventFilter{Limit: 1}); err == nil && len(p.Events) > 0 {
		last = p.Events[0].ID
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		p, err := api.Events(ctx, client.EventFilter{Limit: 200})
		if err != nil {
			continue
		}
		var fresh []engineapi.Event
		for _, ev := range p.Events {
			if ev.ID > last {
				fresh = append(fresh, ev)
			}
		}
		sort.Slice(fresh, func(i, j int) bool { return fresh[i].ID < fresh[j].ID })
		for _, ev := range fresh {
			line := fmt.Sprintf("  %s %-7s %s", ev.Time.Local().Format("15:04:05"), ev.Severity, ev.Message)
			if r := strings.TrimSpace(ev.Reason); r != "" {
				if len(r) > 300 {
					r = r[:300] + "…"
				}
				line += " (" + r + ")"
			}
			fmt.Fprintln(out, line)
			last = ev.ID
		}
	}
}
