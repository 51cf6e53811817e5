package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/engine"
	"polyvirt/internal/lab"
	"polyvirt/internal/libvirtns"
)

// startLab runs a lab of the lab package (the engine in this test
// process, the agents processes of the polyvirt binary) and stops it when
// the test ends; env is the CLI's environment for it.
func startLab(t *testing.T, o lab.Options) (*lab.Lab, []string) {
	t.Helper()
	o.Executable = polyvirtBin(t)
	o.Notes = testWriter{t}
	// The libvirtd of the lab's own (power8-b's) and its domains outlive
	// the lab: stopped after it (cleanups run last registered first).
	t.Cleanup(func() { downLab(t, o.Dir) })
	l, err := lab.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("lab.Start: %v", err)
	}
	// Runs after l.Stop (cleanups run last registered first), before the
	// lab's directory is removed.
	t.Cleanup(func() { logLabTails(t, o.Dir) })
	t.Cleanup(l.Stop)
	env := []string{client.EnvConfig + "=" + filepath.Join(t.TempDir(), "none.json"), client.EnvEngine + "=" + l.EngineURL(),
		client.EnvTokenFile + "=" + l.TokenFile(), client.EnvCAFile + "=" + l.CAFile()}
	return l, env
}

// labLogTail is how many last lines of each of a lab's logs a failed test
// shows.
const labLogTail = 150

// logLabTails shows, when the test failed, the last lines of each log of
// the lab in dir (the engine's and every agent's).
func logLabTails(t *testing.T, dir string) {
	if !t.Failed() {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Logf("%s: %v", p, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > labLogTail {
			lines = lines[len(lines)-labLogTail:]
		}
		t.Logf("the last %d lines of %s:\n%s", len(lines), p, strings.Join(lines, "\n"))
	}
}

// downLab stops the libvirt daemons of the lab's own in dir (power8-b's)
// with their domains, when the lab made any.
func downLab(t *testing.T, dir string) {
	if _, err := os.Stat(filepath.Join(dir, lab.RecordFile)); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := lab.Down(ctx, dir); err != nil {
		t.Errorf("stopping the lab's own libvirt daemons: %v", err)
	}
}

// testWriter writes to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestUpLab runs what `polyvirt up` runs (the lab package: the engine and
// two local hosts, this machine's architecture and a fake POWER8, on the
// real libvirtd), the CLI speaking to its engine. A ppc64le VM booting
// Debian's ppc64el installer kernel directly goes to the POWER8 host and
// its serial console, through the engine, shows "Linux version"; the same
// definition with SPICE is refused with the display error; an x86_64 VM
// runs in the other cluster; a VM too big for any host is refused with the
// host's reason. The lab stopped and started again finds every VM in its
// state. (TestREADMEWalkthrough runs polyvirt up itself, as a process.)
func TestUpLab(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	requirePPCKernel(t)
	dir := t.TempDir()
	prefix := "u" + randomSuffix()[:5] + "-"
	removeDomainsAtCleanup(t, "lab-"+prefix)
	opts := lab.Options{Dir: filepath.Join(dir, "lab"), Listen: "127.0.0.1:0", NamePrefix: prefix, HADelay: 30 * time.Second,
		Monitor: engine.MonitorConfig{StatsInterval: 500 * time.Millisecond, Failures: 2}}
	l, env := startLab(t, opts)
	if !l.Created() {
		t.Errorf("the first start did not create an engine")
	}
	// The administrator's web UI password, for its owner only.
	if fi, err := os.Stat(l.PasswordFile()); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 20 {
		t.Errorf("the web UI password's file %s: %v %v", l.PasswordFile(), fi, err)
	}
	power, powerHost := prefix+"power", prefix+"power8-a"
	// power8-b (on a libvirtd of the lab's own) when this machine can run
	// one.
	wantHosts := 2
	if libvirtns.Require() == "" {
		wantHosts = 3
	}
	hs := l.Hosts()
	if len(hs) != wantHosts || hs[1].Name != powerHost || hs[1].Profile != "s822l-power8e" || hs[1].DomainPrefix != "lab-"+powerHost+"-" {
		t.Errorf("the lab's hosts: %+v", hs)
	}
	if wantHosts == 3 && (hs[2].Name != prefix+"power8-b" || !hs[2].OwnDaemon || hs[2].Cluster != power) {
		t.Errorf("the lab's second POWER host: %+v", hs[2])
	}
	c := &cli{t: t, env: env}
	var hosts []engineapi.Host
	c.json(&hosts, "host", "list")
	native := engineapi.Host{}
	for _, h := range hosts {
		if h.Cluster != power {
			native = h
		}
	}
	if len(hosts) != wantHosts || native.Status != "Up" {
		t.Fatalf("hosts: %+v", hosts)
	}

	// The POWER VM boots Debian's installer kernel.
	deb := prefix + "deb"
	example := filepath.Join(moduleRoot(t), "examples", "ppc64le-debian-installer.yaml")
	out := c.run("", "vm", "create", "--cluster", power, "-f", example, "--name", deb, "--start")
	if !strings.Contains(out, "Starting VM "+deb+": scheduling… on "+powerHost+"… starting… running") {
		t.Errorf("vm create --start:\n%s", out)
	}
	// The x86_64 VM in the other cluster (SeaBIOS and no disk: running).
	web := prefix + "web"
	out = c.run("", "vm", "create", web, "--cluster", native.Cluster, "--memory", "256", "--cpus", "1", "--start")
	if !strings.Contains(out, "on "+native.Name+"… starting… running") {
		t.Errorf("x86_64 VM:\n%s", out)
	}
	// The same POWER definition with SPICE: the display error.
	spice := filepath.Join(dir, "spice.yaml")
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spice, []byte(strings.Replace(string(b), "type: vnc", "type: spice", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	errOut := c.fail("", "vm", "create", "--cluster", power, "-f", spice, "--name", prefix+"spice")
	if !strings.Contains(errOut, "ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS (display.type): SPICE is not available on ppc64le") {
		t.Errorf("SPICE on POWER: %s", errOut)
	}
	// No host fits.
	big := prefix + "big"
	c.run("", "vm", "create", big, "--cluster", power, "--memory", "1048576")
	errOut = c.fail("", "vm", "start", big)
	if !strings.Contains(errOut, "SCHEDULING_ALL_HOSTS_FILTERED_OUT") ||
		!strings.Contains(errOut, "NOT_ENOUGH_MEMORY (host:"+powerHost+"): The host "+powerHost+" did not satisfy internal filter Memory because its available memory is too low") {
		t.Errorf("no host fits: %s", errOut)
	}
	// The serial console through the engine.
	t0 := time.Now()
	out = c.run("", "vm", "console", deb, "--until", "Linux version", "--timeout", "8m") // the boot under TCG, on a loaded machine
	if !strings.Contains(out, "Linux version") {
		t.Errorf("console: %s", out)
	}
	t.Logf("the ppc64le VM's console showed Linux version %.1fs after the console was opened", time.Since(t0).Seconds())
	// Its screen through the engine.
	shot := filepath.Join(dir, "screen.png")
	c.run("", "vm", "screenshot", deb, shot)
	if png, err := os.ReadFile(shot); err != nil || !strings.HasPrefix(string(png), "\x89PNG\r\n\x1a\n") {
		t.Errorf("screenshot: %d bytes, %v", len(png), err)
	}

	// On a terminal: raw mode while attached, ctrl-] detaches, the
	// terminal restored.
	master, slave := openPTY(t)
	if !canonical(t, slave) {
		t.Fatal("a new terminal is not in canonical mode")
	}
	con := exec.Command(polyvirtBin(t), "vm", "console", deb, "--from-end")
	con.Env = append(os.Environ(), env...)
	conOut := &lockedBuffer{}
	con.Stdin, con.Stdout, con.Stderr = slave, conOut, conOut
	if err := con.Start(); err != nil {
		t.Fatal(err)
	}
	conDone := make(chan error, 1)
	go func() { conDone <- con.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(conOut.String(), "Connected to the serial console of VM "+deb+" (ctrl-] detaches)") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if canonical(t, slave) {
		t.Errorf("the terminal is not in raw mode while attached:\n%s", conOut.String())
	}
	if _, err := master.Write([]byte("\r\x1d")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-conDone:
		if err != nil || !strings.Contains(conOut.String(), "Detached from VM "+deb) {
			t.Errorf("ctrl-]: %v\n%s", err, conOut.String())
		}
	case <-time.After(30 * time.Second):
		con.Process.Kill()
		t.Errorf("ctrl-] did not detach:\n%s", conOut.String())
	}
	if !canonical(t, slave) {
		t.Errorf("the terminal was not restored after detaching")
	}

	var v engineapi.VM
	c.json(&v, "vm", "show", deb)
	if v.Host != powerHost || v.Arch != "ppc64le" || v.CPUModel != "POWER8" || !strings.HasPrefix(v.Machine, "pseries") {
		t.Errorf("the POWER VM: %+v", v)
	}

	// The lab stopped: the VMs keep running; started again: found again.
	l.Stop()
	for _, d := range []string{"lab-" + powerHost + "-" + deb, "lab-" + native.Name + "-" + web} {
		if !domainRunning(t, d) {
			t.Errorf("domain %s does not run while the lab is stopped", d)
		}
	}
	l, env = startLab(t, opts)
	if l.Created() {
		t.Errorf("the second start made a new engine")
	}
	c = &cli{t: t, env: env}
	want := map[string][2]string{deb: {"Up", powerHost}, web: {"Up", native.Name}, big: {"Down", ""}}
	// The engine knows a VM's state again once its host's agent answered
	// (Unknown until then: on a loaded machine that takes a while after
	// the lab reports its hosts).
	check := func(when string, wait time.Duration) {
		deadline := time.Now().Add(wait)
		for {
			var vms []engineapi.VM
			c.json(&vms, "vm", "list")
			got := map[string][2]string{}
			for _, v := range vms {
				got[v.Name] = [2]string{v.State, v.Host}
			}
			var wrong []string
			for n, w := range want {
				if got[n] != w {
					wrong = append(wrong, fmt.Sprintf("VM %s is %v, want %v", n, got[n], w))
				}
			}
			if len(wrong) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %s", when, strings.Join(wrong, "; "))
				return
			}
			time.Sleep(time.Second)
		}
	}
	check("after polyvirt up ran again", 90*time.Second)
	time.Sleep(3 * time.Second) // the agents' VM lists reconciled
	check("after the reconciliation", 0)
	for _, n := range []string{deb, web, big} {
		c.run("", "vm", "delete", "--force", n)
	}
	for _, d := range []string{"lab-" + powerHost + "-" + deb, "lab-" + native.Name + "-" + web} {
		if domainExists(t, d) {
			t.Errorf("domain %s is still there after vm delete --force", d)
		}
	}
}
