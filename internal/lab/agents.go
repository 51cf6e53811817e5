package lab

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"polyvirt/internal/libvirtns"
)

// restartDelay is how long the supervisor waits before starting an agent
// that exited again.
const restartDelay = 2 * time.Second

// stopGrace is how long an agent has to end after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// supervisor runs the lab's agents (and, with Options.EngineProcess, its
// engine) as child processes of the polyvirt binary and starts again one
// that exits.
type supervisor struct {
	exe     string
	dir     string
	libvirt string
	stats   time.Duration
	note    io.Writer
	// delay is how long before an exited agent starts again (restartDelay
	// when 0).
	delay time.Duration

	mu      sync.Mutex
	procs   map[string]*exec.Cmd
	stopped bool
	wg      sync.WaitGroup
	// daemons are the libvirtd of the lab's own of the hosts that have
	// one (their agents run in its mount namespace).
	daemons map[string]*libvirtns.Daemon
}

func (s *supervisor) setDaemon(host string, d *libvirtns.Daemon) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.daemons == nil {
		s.daemons = map[string]*libvirtns.Daemon{}
	}
	s.daemons[host] = d
}

func (s *supervisor) daemon(host string) *libvirtns.Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.daemons[host]
}

// agentDir is a host's agent data directory in the lab.
func agentDir(dir, host string) string { return filepath.Join(dir, "agents", host) }

// logPath is a part's log file in the lab ("engine" or a host's name).
func logPath(dir, part string) string { return filepath.Join(dir, "logs", part+".log") }

// args are the agent's command line.
func (s *supervisor) args(h Host) []string {
	uri := s.libvirt
	if d := s.daemon(h.Name); d != nil {
		uri = d.URI
	}
	args := []string{"agent", "--host-id", h.Name, "--data-dir", agentDir(s.dir, h.Name), "--listen", h.Address,
		"--libvirt", uri, "--domain-prefix", h.DomainPrefix, "--stats-interval", s.stats.String()}
	if h.Profile != "" {
		args = append(args, "--profile", h.Profile)
	}
	if h.Migration != "" {
		args = append(args, "--migration-address", h.Migration)
		if !h.OwnDaemon {
			// This machine's libvirtd does not listen: the agent serves its
			// TLS port.
			args = append(args, "--migration-front")
		}
	}
	return args
}

// start runs a host's agent, its output appended to its log.
func (s *supervisor) start(h Host) error {
	return s.run("agent "+h.Name, h.Name, func() *exec.Cmd {
		if d := s.daemon(h.Name); d != nil {
			// In the daemon's mount namespace: the agent sees the files its
			// libvirtd sees (a disk only this host has is not another's).
			return d.Command(s.exe, s.args(h)...)
		}
		return exec.Command(s.exe, s.args(h)...)
	})
}

// run runs a process of the lab (what: its name in notes; part: its log
// and its key), its output appended to its log, and starts it again when
// it exits before stop.
func (s *supervisor) run(what, part string, mk func() *exec.Cmd) error {
	logf, err := os.OpenFile(logPath(s.dir, part), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := mk()
	cmd.Stdout, cmd.Stderr = logf, logf
	// The lab's processes end with this process, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		logf.Close()
		return nil
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: %v", what, err)
	}
	if s.procs == nil {
		s.procs = map[string]*exec.Cmd{}
	}
	s.procs[part] = cmd
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
		fmt.Fprintf(s.note, "polyvirt up: %s exited (%v); starting it again (log: %s)\n", what, err, logPath(s.dir, part))
		delay := s.delay
		if delay == 0 {
			delay = restartDelay
		}
		time.Sleep(delay)
		if err := s.run(what, part, mk); err != nil {
			fmt.Fprintf(s.note, "polyvirt up: %v\n", err)
		}
	}()
	return nil
}

// pid is the process id of a host's agent, or of the engine ("engine"),
// (0 when it does not run).
func (s *supervisor) pid(part string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.procs[part]; p != nil && p.Process != nil {
		return p.Process.Pid
	}
	return 0
}

// stop ends the processes: SIGTERM, then SIGKILL after stopGrace.
func (s *supervisor) stop() {
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
	case <-time.After(stopGrace):
		for _, p := range procs {
			_ = p.Process.Kill()
		}
		<-done
	}
}
