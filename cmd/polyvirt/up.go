package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/agent"
	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/client"
	"polyvirt/internal/engine"
	"polyvirt/internal/hostinfo"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/pki"
)

func init() { register(newUpCommand) }

// labFile is the lab's record in its data directory.
const labFile = "up.json"

// lab is what `polyvirt up` keeps between runs: the engine's address and
// the local hosts (their agents' ports and directories).
type lab struct {
	EngineURL string    `json:"engineUrl"`
	Listen    string    `json:"listen"`
	Hosts     []labHost `json:"hosts"`
}

// labHost is one local agent of the lab.
type labHost struct {
	Name         string    `json:"name"`
	Cluster      string    `json:"cluster"`
	ClusterArch  arch.Arch `json:"clusterArch,omitempty"`
	CPUType      string    `json:"cpuType,omitempty"`
	Profile      string    `json:"profile,omitempty"`
	Address      string    `json:"address"`
	DomainPrefix string    `json:"domainPrefix"`
}

type upOptions struct {
	dataDir    string
	listen     string
	libvirt    string
	namePrefix string
	noLogin    bool
	quiet      bool
	monitor    engine.MonitorConfig
	haDelay    time.Duration
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
		Short: "Run a whole lab on this machine: the engine and two local hosts (this machine's architecture and a fake POWER8)",
		Long: `Run polyvirt on one machine, for a laptop, a lab or a demo: the engine on an
embedded SQLite database, and two local agents on this machine's libvirtd,
enrolled with the engine through the real join flow:

  <arch>-a   this machine's architecture, in cluster <arch> (x86_64 here);
             fake KVM when /dev/kvm cannot run guests
  power8-a   a fake-KVM IBM S822L POWER8 host (profile s822l-power8e), in
             cluster power (CPU type IBM POWER8): POWER guests under QEMU TCG

The first run creates the engine in --data-dir; later runs use it again (the
VMs, which keep running in libvirt while polyvirt is stopped, are found again).
polyvirt up logs the CLI in (the configuration polyvirt login writes), prints
what to do next, then the engine's events, and runs until Ctrl-C, which stops
the engine and the agents but not the VMs.

It needs libvirtd with QEMU (scripts/up.sh installs and starts them on Debian).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runUp(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", defaultLabDir(), "the lab's directory (engine, agents, logs)")
	f.StringVar(&o.listen, "listen", "", "the engine's HTTPS address (default: the last run's, else 127.0.0.1:8443; :0 picks a free port)")
	f.StringVar(&o.libvirt, "libvirt", libvirtconn.DefaultURI, "the libvirt daemon")
	f.StringVar(&o.namePrefix, "name-prefix", "", "prefix of the host names and libvirt domain names (several labs on one libvirtd)")
	f.BoolVar(&o.noLogin, "no-login", false, "do not write the CLI's login configuration")
	f.BoolVar(&o.quiet, "quiet", false, "do not print the engine's events")
	f.DurationVar(&o.monitor.StatsInterval, "stats-interval", 2*time.Second, "how often the engine reads each host's statistics")
	f.IntVar(&o.monitor.Failures, "failures", 3, "failed polls that make a host NonResponsive")
	f.DurationVar(&o.haDelay, "ha-delay", 30*time.Second, "how long a host is NonResponsive before its HA VMs restart elsewhere")
	_ = f.MarkHidden("stats-interval")
	_ = f.MarkHidden("failures")
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
	c, err := libvirtconn.Dial(o.libvirt, 5*time.Second)
	if err != nil {
		return withStatus(3, fmt.Errorf(libvirtHelp, o.libvirt, err))
	}
	c.Close()
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	for _, d := range []string{dir, filepath.Join(dir, "logs"), filepath.Join(dir, "agents")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	lb, err := loadLab(dir)
	if err != nil {
		return err
	}
	if o.listen != "" {
		lb.Listen = o.listen
	}
	if lb.Listen == "" {
		lb.Listen = "127.0.0.1:8443"
	}
	if err := lb.planHosts(o.namePrefix); err != nil {
		return err
	}
	engDir := filepath.Join(dir, "engine")
	tokenFile := filepath.Join(dir, "admin.token")
	first := false
	if _, err := os.Stat(filepath.Join(engDir, engine.FileSettings)); errors.Is(err, os.ErrNotExist) {
		res, err := engine.Init(ctx, engine.InitOptions{DataDir: engDir, Name: "localhost", Addresses: []string{"127.0.0.1"}, Listen: lb.Listen})
		if err != nil {
			return err
		}
		if err := pki.WriteFile(tokenFile, []byte(res.AdminToken+"\n"), 0o600); err != nil {
			return err
		}
		first = true
	}
	token, err := client.ReadTokenFile(tokenFile)
	if err != nil {
		return fmt.Errorf("%v (the lab's administrator token; remove %s to start a new lab)", err, dir)
	}
	ln, err := net.Listen("tcp", lb.Listen)
	if err != nil {
		return fmt.Errorf("the engine cannot listen on %s (another polyvirt up? choose another address with --listen): %v", lb.Listen, err)
	}
	lb.EngineURL = engineURLFor(ln.Addr())
	if err := saveLab(dir, lb); err != nil {
		ln.Close()
		return err
	}

	// The engine, in this process.
	engLog, err := os.OpenFile(filepath.Join(dir, "logs", "engine.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		ln.Close()
		return err
	}
	defer engLog.Close()
	mon := o.monitor
	mon.HostsReload = 2 * time.Second
	haDelay := o.haDelay
	if haDelay == 0 {
		haDelay = -1
	}
	eng, err := engine.Open(ctx, engine.Config{DataDir: engDir, Listen: lb.Listen, URL: lb.EngineURL, Monitor: mon,
		VMs:    engine.VMConfig{HADelay: haDelay},
		Logger: slog.New(slog.NewTextHandler(engLog, nil))})
	if err != nil {
		ln.Close()
		return err
	}
	defer eng.Close()
	engCtx, stopEngine := context.WithCancel(context.Background())
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Serve(engCtx, ln) }()
	defer func() {
		stopEngine()
		<-engDone
	}()
	caPEM, err := os.ReadFile(filepath.Join(engDir, engine.FileCA))
	if err != nil {
		return err
	}
	api, err := client.New(client.Options{Engine: lb.EngineURL, Token: token, CAPEM: caPEM, Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	if err := waitHealthy(ctx, api); err != nil {
		return err
	}
	fmt.Fprintf(out, "polyvirt up: the lab is in %s\n", dir)
	if first {
		fmt.Fprintf(out, "  a new engine was created (SQLite %s)\n", filepath.Join(engDir, "polyvirt.db"))
	}
	fmt.Fprintf(out, "  engine  %s   (log: %s)\n", lb.EngineURL, filepath.Join(dir, "logs", "engine.log"))

	// The agents: enrolled once, started every time.
	agents := &agentSupervisor{exe: mustExecutable(), dir: dir, libvirt: o.libvirt}
	defer agents.stop()
	for _, h := range lb.Hosts {
		if err := enrollLabHost(ctx, api, lb.EngineURL, dir, h); err != nil {
			return err
		}
		if err := agents.start(h); err != nil {
			return err
		}
	}
	if err := waitLabHosts(ctx, api, lb.Hosts, out); err != nil {
		return err
	}
	if !o.noLogin {
		path, err := loginLab(lb.EngineURL, token, caPEM)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Logged in as admin: the CLI's configuration is %s.\n", path)
	} else {
		fmt.Fprintf(out, "Log in: polyvirt login --engine %s --ca-file %s --token-file %s\n", lb.EngineURL,
			filepath.Join(engDir, engine.FileCA), tokenFile)
	}
	power, native := lb.Hosts[1], lb.Hosts[0]
	fmt.Fprintf(out, `Next:
  polyvirt vm create --cluster %s -f examples/ppc64le-debian-installer.yaml --start
  polyvirt vm console debian-installer-ppc64el        (ctrl-] detaches)
  polyvirt vm create web1 --cluster %s --memory 512 --cpus 1 --start
  polyvirt vm list; polyvirt host list; polyvirt events
Ctrl-C stops the engine and the agents (the VMs keep running, found again next time).
`, power.Cluster, native.Cluster)
	if !o.quiet {
		fmt.Fprintln(out, "Events:")
		go tailEvents(ctx, api, out)
	}
	select {
	case <-ctx.Done():
	case err := <-engDone:
		engDone <- err
		return fmt.Errorf("the engine stopped: %v", err)
	}
	fmt.Fprintln(out, "\npolyvirt up: stopping the agents and the engine (the VMs keep running)")
	return nil
}

// engineURLFor is the URL of an engine listening on addr: 127.0.0.1 (a
// name of its certificate) when it listens on every address.
func engineURLFor(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "https://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

func mustExecutable() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return exe
}

func loadLab(dir string) (*lab, error) {
	var lb lab
	b, err := os.ReadFile(filepath.Join(dir, labFile))
	if errors.Is(err, os.ErrNotExist) {
		return &lb, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &lb); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, labFile), err)
	}
	return &lb, nil
}

func saveLab(dir string, lb *lab) error {
	b, err := json.MarshalIndent(lb, "", "  ")
	if err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(dir, labFile), append(b, '\n'), 0o600)
}

// planHosts chooses the lab's hosts on the first run: this machine's
// architecture and a fake POWER8, each on a free port.
func (lb *lab) planHosts(prefix string) error {
	if len(lb.Hosts) > 0 {
		return nil
	}
	real, _, err := hostinfo.DetectArch(os.DirFS("/"))
	if err != nil {
		return fmt.Errorf("this machine's architecture: %v", err)
	}
	ca, err := archspec.ClusterArch(real)
	if err != nil {
		return fmt.Errorf("this machine's architecture %s: %v", real, err)
	}
	hosts := []labHost{
		{Name: prefix + real.String() + "-a", Cluster: prefix + ca.String(), ClusterArch: ca},
		{Name: prefix + "power8-a", Cluster: prefix + "power", CPUType: "IBM POWER8", Profile: "s822l-power8e"},
	}
	for i := range hosts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		hosts[i].Address = ln.Addr().String()
		ln.Close()
		hosts[i].DomainPrefix = "lab-" + hosts[i].Name + "-"
	}
	lb.Hosts = hosts
	return nil
}

func waitHealthy(ctx context.Context, api *client.Client) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := api.Health(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the engine does not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// enrollLabHost makes a host's cluster and the host, and enrolls its agent
// with a join token (once: an enrolled agent's directory has its
// enrollment record).
func enrollLabHost(ctx context.Context, eng *client.Client, engineURL, dir string, h labHost) error {
	adir := filepath.Join(dir, "agents", h.Name)
	if _, err := os.Stat(filepath.Join(adir, agent.EnrollmentFile)); err == nil {
		return nil
	}
	if _, err := eng.Cluster(ctx, h.Cluster); api.CodeOf(err) == api.CodeNotFound {
		if _, err := eng.CreateCluster(ctx, engineapi.ClusterRequest{Name: h.Cluster, Arch: h.ClusterArch, CPUType: h.CPUType,
			Description: "made by polyvirt up"}); err != nil {
			return fmt.Errorf("cluster %s: %w", h.Cluster, err)
		}
	} else if err != nil {
		return err
	}
	var token string
	if _, err := eng.Host(ctx, h.Name, false); api.CodeOf(err) == api.CodeNotFound {
		jt, err := eng.AddHost(ctx, engineapi.HostRequest{Name: h.Name, Address: h.Address, Cluster: h.Cluster})
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		token = jt.Token
	} else if err != nil {
		return err
	} else {
		jt, err := eng.JoinToken(ctx, h.Name, "")
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		token = jt.Token
	}
	if _, err := agent.Join(ctx, engineURL, token, adir, 30*time.Second); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// agentSupervisor runs the lab's agents as child processes of this binary
// and starts again one that exits.
type agentSupervisor struct {
	exe, dir, libvirt string

	mu      sync.Mutex
	procs   map[string]*exec.Cmd
	stopped bool
	wg      sync.WaitGroup
}

func (s *agentSupervisor) args(h labHost) []string {
	args := []string{"agent", "--host-id", h.Name, "--data-dir", filepath.Join(s.dir, "agents", h.Name), "--listen", h.Address,
		"--libvirt", s.libvirt, "--domain-prefix", h.DomainPrefix, "--stats-interval", "2s"}
	if h.Profile != "" {
		args = append(args, "--profile", h.Profile)
	}
	return args
}

func (s *agentSupervisor) start(h labHost) error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "logs", h.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.exe, s.args(h)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The agents end with this process, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		logf.Close()
		return nil
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("agent %s: %v", h.Name, err)
	}
	if s.procs == nil {
		s.procs = map[string]*exec.Cmd{}
	}
	s.procs[h.Name] = cmd
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := cmd.Wait()
		logf.Close()
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			return
		}
		fmt.Fprintf(os.Stderr, "polyvirt up: agent %s exited (%v); starting it again (log: %s)\n", h.Name, err, filepath.Join(s.dir, "logs", h.Name+".log"))
		time.Sleep(2 * time.Second)
		if err := s.start(h); err != nil {
			fmt.Fprintf(os.Stderr, "polyvirt up: %v\n", err)
		}
	}()
	return nil
}

// stop ends the agents: SIGTERM, then SIGKILL after 10 s.
func (s *agentSupervisor) stop() {
	s.mu.Lock()
	s.stopped = true
	procs := make([]*exec.Cmd, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		for _, p := range procs {
			_ = p.Process.Kill()
		}
		<-done
	}
}

// waitLabHosts waits until the lab's hosts are Up (or say why not) and
// prints them.
func waitLabHosts(ctx context.Context, api *client.Client, hosts []labHost, out io.Writer) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var got []engineapi.Host
		up := 0
		for _, h := range hosts {
			wh, err := api.Host(ctx, h.Name, false)
			if err != nil {
				return err
			}
			got = append(got, wh)
			if wh.Status == "Up" || wh.Status == "NonOperational" {
				up++
			}
		}
		if up == len(hosts) || time.Now().After(deadline) || ctx.Err() != nil {
			for i, h := range got {
				line := fmt.Sprintf("  host    %-12s cluster %-8s %s", h.Name, h.Cluster, h.Status)
				if h.CPUType != "" {
					line += "  " + h.CPUType
				}
				if hosts[i].Profile != "" {
					line += "  (fake KVM, profile " + hosts[i].Profile + ")"
				}
				if h.StatusCode != "" {
					line += "  " + h.StatusCode + ": " + h.StatusMessage
				}
				fmt.Fprintln(out, line)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if up < len(hosts) {
				return fmt.Errorf("the lab's hosts did not come up within 2 minutes (their logs are in the lab's logs directory)")
			}
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
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
