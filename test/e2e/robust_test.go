package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/test/ownlibvirtd"
)

// These tests run against a libvirtd of their own (package ownlibvirtd):
// they stop QEMU processes and stop and restart the daemon, which they
// must never do to the machine's own.

// waitAgentStats polls an agent's statistics until ok holds.
func waitAgentStats(t *testing.T, p *agentProc, within time.Duration, ok func(agentapi.Stats) bool) agentapi.Stats {
	t.Helper()
	deadline := time.Now().Add(within)
	var s agentapi.Stats
	for time.Now().Before(deadline) {
		s = agentapi.Stats{}
		if p.do("GET", "/v1/stats", nil, &s) == 200 && ok(s) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("agent %s: statistics not as expected within %s: %+v", p.hostID, within, s.Libvirt)
	return s
}

// TestAgentSurvivesLibvirtdRestart restarts libvirtd under a running agent
// with a running VM: the agent reconnects by itself, says meanwhile that
// libvirt is away, publishes the loss and the return, and the VM is still
// listed, running and controllable.
func TestAgentSurvivesLibvirtdRestart(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	d := ownlibvirtd.Start(t, ownlibvirtd.Options{})
	ca := newTestCA(t)
	sfx := randomSuffix()
	p := startAgent(t, ca, "e2e-restart-"+sfx, "--libvirt", d.URI, "--fake-memory-mib", "256")
	events := p.events(t)
	var vm agentapi.VM
	if st := p.do("POST", "/v1/vms", x86VM("polyvirt-test-restart-"+sfx), &vm); st != http.StatusCreated {
		t.Fatalf("create: %d %+v", st, vm)
	}
	var res agentapi.ActionResult
	if st := p.do("POST", "/v1/vms/"+vm.ID+"/start", nil, &res); st != 200 || res.State != agentapi.StateRunning {
		t.Fatalf("start: %d %+v", st, res)
	}
	waitEvent(t, events, vm.ID, "started", 30*time.Second)

	t0 := time.Now()
	d.Stop()
	s := waitAgentStats(t, p, 10*time.Second, func(s agentapi.Stats) bool { return s.Libvirt != nil && !s.Libvirt.Connected })
	t.Logf("the agent said libvirt is away %.1fs after it stopped: %s", time.Since(t0).Seconds(), s.Libvirt.Error)
	var e api.ErrorBody
	if st := p.do("GET", "/v1/vms", nil, &e); st != http.StatusServiceUnavailable || e.Error.Code != "LIBVIRT_UNAVAILABLE" {
		t.Errorf("VM list without libvirt: %d %+v", st, e)
	}
	d.StartDaemon()
	t1 := time.Now()
	waitAgentStats(t, p, 30*time.Second, func(s agentapi.Stats) bool { return s.Libvirt != nil && s.Libvirt.Connected })
	t.Logf("the agent was connected again %.1fs after libvirtd answered again (%.1fs after it stopped)",
		time.Since(t1).Seconds(), time.Since(t0).Seconds())
	waitEvent(t, events, "", agentapi.EventLibvirtBack, 30*time.Second)

	var vms []agentapi.VM
	if st := p.do("GET", "/v1/vms", nil, &vms); st != 200 || len(vms) != 1 || vms[0].ID != vm.ID || vms[0].State != agentapi.StateRunning {
		t.Fatalf("after the restart: %d %+v", st, vms)
	}
	waitScreenshot(t, p, vm.ID)
	if st := p.do("POST", "/v1/vms/"+vm.ID+"/pause", nil, &res); st != 200 || res.State != agentapi.StatePaused {
		t.Errorf("pause after the restart: %d %+v", st, res)
	}
	if st := p.do("POST", "/v1/vms/"+vm.ID+"/resume", nil, &res); st != 200 || res.State != agentapi.StateRunning {
		t.Errorf("resume after the restart: %d %+v", st, res)
	}
	if st := p.do("POST", "/v1/vms/"+vm.ID+"/destroy", nil, &res); st != 200 || res.State != agentapi.StateDefined {
		t.Errorf("destroy after the restart: %d %+v", st, res)
	}
	waitEvent(t, events, vm.ID, "stopped", 30*time.Second)
	if st := p.do("DELETE", "/v1/vms/"+vm.ID, nil, nil); st != http.StatusNoContent {
		t.Errorf("delete: %d", st)
	}
	if d.Crashed() {
		t.Errorf("libvirtd crashed: %v", d.ExitError())
	}
}

// engineOnOwnLibvirtd is an engine with one x86_64 host whose agent runs
// on a libvirtd of the test's own.
type engineOnOwnLibvirtd struct {
	d     *ownlibvirtd.Daemon
	eng   *engineProc
	c     *cli
	agent *agentProc
	host  string
}

func newEngineOnOwnLibvirtd(t *testing.T, name string) *engineOnOwnLibvirtd {
	t.Helper()
	return newEngineOnOwnLibvirtdWith(t, name, ownlibvirtd.Options{})
}

// newEngineOnOwnLibvirtdWith is newEngineOnOwnLibvirtd on a libvirtd with
// options (a hook).
func newEngineOnOwnLibvirtdWith(t *testing.T, name string, opts ownlibvirtd.Options) *engineOnOwnLibvirtd {
	t.Helper()
	l := &engineOnOwnLibvirtd{d: ownlibvirtd.Start(t, opts), host: name + "-" + randomSuffix()[:6]}
	l.eng = initEngine(t, "engine-"+name, nil)
	l.eng.extra = []string{"--vm-resync", "2s"}
	l.eng.start()
	l.c = newCLI(t)
	l.c.run(l.eng.token+"\n", "login", "--engine", l.eng.url, "--ca-file", l.eng.caFile)
	l.c.run("", "cluster", "create", "x86", "--arch", "x86_64")
	l.agent = joinAgent(t, l.c, l.eng, l.host, "x86", "--libvirt", l.d.URI, "--fake-memory-mib", "256")
	waitHost(t, l.eng.api, l.host, 60*time.Second, hostStatus("Up"))
	return l
}

// startVM creates and starts an x86_64 VM (SeaBIOS on VNC, no disk).
func (l *engineOnOwnLibvirtd) startVM(t *testing.T, name string) engineapi.VM {
	t.Helper()
	l.c.run("", "vm", "create", name, "--cluster", "x86", "--memory", "256", "--start")
	return l.c.waitVM(name, 60*time.Second, func(v engineapi.VM) bool { return v.State == "Up" })
}

// screenshot takes screenshots of a VM through the engine until one is not
// blank.
func screenshotThroughEngine(t *testing.T, api *client.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		b, err := api.Screenshot(ctx, name)
		cancel()
		if err != nil {
			t.Fatalf("screenshot of %s: %v", name, err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("screenshot of %s is not a PNG: %v", name, err)
		}
		if colours(img) > 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screenshots of %s stayed blank", name)
		}
		time.Sleep(2 * time.Second)
	}
}

// TestEngineStuckQEMU stops a VM's QEMU (SIGSTOP): the VM becomes
// NotResponding with an event that says why; meanwhile another VM on the
// same host is started, screenshotted and destroyed; then destroying the
// stuck VM succeeds (and so does deleting it).
func TestEngineStuckQEMU(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	l := newEngineOnOwnLibvirtd(t, "stuck")
	sfx := randomSuffix()[:6]
	stuck, other := "stuck-"+sfx, "other-"+sfx
	v := l.startVM(t, stuck)
	pid, err := l.d.QEMUPid("e2e-" + l.host + "-" + stuck)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Whatever happens, the QEMU runs again (and the daemon's cleanup kills
	// it).
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	t0 := time.Now()

	// Meanwhile, the host's other VMs are served.
	l.startVM(t, other)
	screenshotThroughEngine(t, l.eng.api, other)
	l.c.run("", "vm", "destroy", other)
	l.c.waitVM(other, 30*time.Second, func(v engineapi.VM) bool { return v.State == "Down" })
	t.Logf("another VM was started, screenshotted and destroyed in %.1fs while the stopped QEMU was not answering", time.Since(t0).Seconds())

	l.c.waitVM(stuck, 90*time.Second, func(v engineapi.VM) bool { return v.State == "NotResponding" })
	t.Logf("the VM was NotResponding %.1fs after its QEMU was stopped", time.Since(t0).Seconds())
	page, err := l.eng.api.Events(context.Background(), client.EventFilter{Object: v.ID, Code: "VM_NOT_RESPONDING"})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("NotResponding events: %+v %v", page.Events, err)
	}
	want := "The QEMU of VM " + stuck + " on host " + l.host + " does not answer (no reply to "
	if msg := page.Events[0].Message; !strings.HasPrefix(msg, want) || !strings.Contains(msg, "within 10s") {
		t.Errorf("event %q; want %q…within 10s", msg, want)
	}
	// Its QEMU's actions are refused with the reason, at once.
	_, err = l.eng.api.ShutdownVM(context.Background(), stuck, 0, false, "")
	if api.CodeOf(err) != api.CodeVMNotResponding || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("shutdown of the stuck VM: %v", err)
	}

	t1 := time.Now()
	out := l.c.run("", "vm", "destroy", stuck)
	t.Logf("vm destroy of the stopped QEMU took %.1fs: %s", time.Since(t1).Seconds(), strings.TrimSpace(out))
	l.c.waitVM(stuck, 30*time.Second, func(v engineapi.VM) bool { return v.State == "Down" })
	l.c.run("", "vm", "delete", "--force", stuck)
	l.c.run("", "vm", "delete", "--force", other)
	if l.d.Crashed() {
		t.Errorf("libvirtd crashed: %v", l.d.ExitError())
	}
}

// TestEngineHostWithoutLibvirt stops libvirtd under a running agent: the
// host becomes NonOperational (LIBVIRT_UNAVAILABLE, with the reason)
// within a monitoring interval or so, its VM Unknown, and nothing is
// scheduled to it; when libvirtd runs again, the host and its VM come back
// by themselves and the VM is controllable.
func TestEngineHostWithoutLibvirt(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	l := newEngineOnOwnLibvirtd(t, "nolv")
	sfx := randomSuffix()[:6]
	vm := "lv-" + sfx
	l.startVM(t, vm)
	l.c.run("", "vm", "create", "waiting-"+sfx, "--cluster", "x86", "--memory", "256")

	t0 := time.Now()
	l.d.Stop()
	h := waitHost(t, l.eng.api, l.host, 30*time.Second, func(h engineapi.Host) bool { return h.Status == "NonOperational" })
	t.Logf("host %s was NonOperational %.1fs after libvirtd stopped (monitoring interval 500ms): %s", l.host, time.Since(t0).Seconds(), h.StatusMessage)
	if h.StatusCode != "LIBVIRT_UNAVAILABLE" || !strings.Contains(h.StatusMessage, "cannot reach libvirt") {
		t.Errorf("host status %s %q", h.StatusCode, h.StatusMessage)
	}
	l.c.waitVM(vm, 30*time.Second, func(v engineapi.VM) bool { return v.State == "Unknown" })
	errOut := l.c.fail("", "vm", "start", "waiting-"+sfx)
	if !strings.Contains(errOut, "HOST_NOT_UP") || !strings.Contains(errOut, "NonOperational") {
		t.Errorf("vm start without libvirt:\n%s", errOut)
	}

	t1 := time.Now()
	l.d.StartDaemon()
	waitHost(t, l.eng.api, l.host, 60*time.Second, hostStatus("Up"))
	l.c.waitVM(vm, 60*time.Second, func(v engineapi.VM) bool { return v.State == "Up" })
	t.Logf("host and VM Up again %.1fs after libvirtd answered again", time.Since(t1).Seconds())
	l.c.run("", "vm", "destroy", vm)
	l.c.waitVM(vm, 30*time.Second, func(v engineapi.VM) bool { return v.State == "Down" })
	l.c.run("", "vm", "delete", vm)
	l.c.run("", "vm", "delete", "waiting-"+sfx)
}

// chatterLine is a line of the chatty guest's console.
var chatterLine = regexp.MustCompile(`polyvirt-chatter (\d{8}) `)

// lastChatter attaches to a VM's console (from its end) for d and returns
// the highest line number seen and the bytes read.
func lastChatter(t *testing.T, p *agentProc, id string, d time.Duration) (int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+p.addr+"/v1/vms/"+id+"/console?from=end", &websocket.DialOptions{HTTPClient: p.ca.client(t)})
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	last, n := -1, 0
	var buf []byte
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			break
		}
		n += len(msg)
		buf = append(buf, msg...)
		if m := chatterLine.FindAllSubmatch(buf, -1); len(m) > 0 {
			last, _ = strconv.Atoi(string(m[len(m)-1][1]))
		}
		if len(buf) > 4096 {
			buf = buf[len(buf)-200:]
		}
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
	return last, n
}

// TestConsoleNeverStallsTheGuest boots a POWER guest that prints on its
// console without end, and attaches to and detaches from its console
// several times: the guest goes on printing, attached or not, far beyond
// what a pty holds (QEMU froze after about 21 KB when the agent opened the
// pty and did not read it; without the agent's drain this test sees the
// guest stop at about 17 KB).
func TestConsoleNeverStallsTheGuest(t *testing.T) {
	requirePPCKernel(t)
	d := ownlibvirtd.Start(t, ownlibvirtd.Options{})
	dir := t.TempDir()
	init := goBuild(t, "ppc64le", "./test/e2e/chattyinit", filepath.Join(dir, "init"))
	initrd := filepath.Join(dir, "chatty.cpio")
	writeInitramfs(t, initrd, map[string]string{"init": init})
	// The host path policy allows this initrd (and Debian's kernel).
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfg, []byte("host_paths:\n  kernel: [/usr/lib/debian-installer/images]\n  initrd: ["+dir+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t)
	sfx := randomSuffix()
	p := startAgent(t, ca, "e2e-console-"+sfx, "--libvirt", d.URI, "--profile", "s822l-power8e", "--fake-memory-mib", "512", "--config", cfg)
	def := fmt.Sprintf(`{"name": "polyvirt-test-chatty-%s", "arch": "ppc64le", "machine": "pseries", "memory": {"sizeMiB": 512},
  "kernel": {"path": %q, "initrd": %q, "cmdline": "console=hvc0 quiet"}}`, sfx, debianPPCKernel, initrd)
	var vm agentapi.VM
	if st := p.do("POST", "/v1/vms", []byte(def), &vm); st != http.StatusCreated {
		t.Fatalf("create: %d %+v", st, vm)
	}
	t.Cleanup(func() { p.do("DELETE", "/v1/vms/"+vm.ID+"?force=true", nil, nil) })
	var res agentapi.ActionResult
	if st := p.do("POST", "/v1/vms/"+vm.ID+"/start", nil, &res); st != 200 {
		t.Fatalf("start: %d %+v", st, res)
	}
	// The kernel boots (about 20 s under TCG) and init starts printing.
	first := -1
	deadline := time.Now().Add(4 * time.Minute)
	for first < 0 && time.Now().Before(deadline) {
		first, _ = lastChatter(t, p, vm.ID, 10*time.Second)
	}
	if first < 0 {
		t.Fatal("the guest never printed its numbered lines")
	}
	prev := first
	for i := 0; i < 3; i++ {
		// Detached: nobody reads the console but the agent.
		time.Sleep(6 * time.Second)
		n, bytes := lastChatter(t, p, vm.ID, 5*time.Second)
		t.Logf("attach %d: line %d (was %d before 6 s detached), %d bytes in 5 s attached", i+1, n, prev, bytes)
		if n <= prev {
			t.Fatalf("the guest stopped printing: line %d, then %d", prev, n)
		}
		prev = n
	}
	// 66 bytes a line: well beyond what a pty holds.
	if printed := (prev - first) * 66; printed < 64<<10 {
		t.Errorf("the guest printed only %d bytes meanwhile; the test proves nothing below 64 KiB", printed)
	} else {
		t.Logf("the guest printed %d KiB while the test attached and detached", printed>>10)
	}
	var st agentapi.Stats
	if code := p.do("GET", "/v1/stats", nil, &st); code != 200 || len(st.VMs) != 1 || st.VMs[0].State != agentapi.StateRunning {
		t.Errorf("stats: %d %+v", code, st)
	}
	var full agentapi.VM
	p.do("GET", "/v1/vms/"+vm.ID, nil, &full)
	if full.NotResponding != "" {
		t.Errorf("the chatty VM is reported not responding: %s", full.NotResponding)
	}
	b, _ := json.Marshal(full.State)
	t.Logf("VM state %s", b)
}
