package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/libvirtconn"
)

// startVM creates and starts a VM on the fake libvirt.
func startVM(t *testing.T, a *Agent, name string) *agentapi.VM {
	t.Helper()
	vm := create(t, a, strings.Replace(unitVM, `"unit-ppc"`, fmt.Sprintf("%q", name), 1))
	if _, err := a.Act(context.Background(), vm.ID, "start"); err != nil {
		t.Fatal(err)
	}
	return vm
}

// waitEvent waits for an agent event of a VM.
func waitAgentEvent(t *testing.T, ch <-chan agentapi.Event, vm, event string) agentapi.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.VM == vm && ev.Event == event {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event for VM %s", event, vm)
		}
	}
}

// TestStuckQEMUCostsItsOwnVMOnly: a VM whose QEMU does not answer becomes
// NotResponding with an event naming the call; calls to its QEMU are then
// refused at once (no pile-up); another VM's calls go on; destroy works;
// when QEMU answers again the VM does too.
func TestStuckQEMUCostsItsOwnVMOnly(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	events, cancel := a.hub.subscribe()
	defer cancel()
	stuck := startVM(t, a, "stuck")
	healthy := startVM(t, a, "healthy")
	e, _ := a.entry(stuck.ID)
	release := f.hangOn("qemu:" + e.Domain.UUID)
	defer release()

	ctx := context.Background()
	a.probe(ctx, e)
	ev := waitAgentEvent(t, events, stuck.ID, agentapi.EventNotResponding)
	if !strings.Contains(ev.Detail, "no reply to query-status within 300ms") {
		t.Errorf("event detail %q", ev.Detail)
	}
	vm, err := a.GetVM(ctx, stuck.ID)
	if err != nil || vm.NotResponding == "" || vm.State != agentapi.StateRunning {
		t.Errorf("stuck VM: %+v, %v", vm, err)
	}

	// Its QEMU's calls are refused at once, with the cause in words: with
	// a QEMU time-out longer than the calls' deadline, a call that waited
	// for its turn would end with its deadline instead.
	a.cfg.QEMUTimeout.Duration = time.Minute
	queries := f.queries.Load()
	for _, action := range []string{"shutdown", "reboot", "pause", "screenshot"} {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		if action == "screenshot" {
			_, err = a.Screenshot(cctx, stuck.ID)
		} else {
			_, err = a.Act(cctx, stuck.ID, action)
		}
		cancel()
		e := asAPIError(err)
		if e.Code != api.CodeVMNotResponding || e.Status != http.StatusConflict ||
			!strings.Contains(e.Message, "the QEMU of VM stuck on host unit-power8 does not answer (no reply to query-status within 300ms)") {
			t.Errorf("%s of the stuck VM: %+v", action, e)
		}
	}
	a.probe(ctx, e)
	if f.queries.Load() != queries {
		t.Error("a second query-status went to a QEMU that has not answered the first")
	}

	// The other VM's calls go on.
	if _, err := a.Screenshot(ctx, healthy.ID); err != nil {
		t.Errorf("screenshot of the healthy VM: %v", err)
	}
	if res, err := a.Act(ctx, healthy.ID, "pause"); err != nil || res.State != agentapi.StatePaused {
		t.Errorf("pause of the healthy VM: %+v %v", res, err)
	}
	if h, _ := a.GetVM(ctx, healthy.ID); h.NotResponding != "" {
		t.Errorf("the healthy VM is reported not responding: %s", h.NotResponding)
	}

	// Destroy works on the stuck VM.
	if res, err := a.Act(ctx, stuck.ID, "destroy"); err != nil || res.State != agentapi.StateDefined {
		t.Fatalf("destroy of the stuck VM: %+v %v", res, err)
	}
	release()
	if vm, _ := a.GetVM(ctx, stuck.ID); vm.NotResponding != "" {
		t.Errorf("a destroyed VM is still not responding: %+v", vm)
	}
}

// TestQEMUAnswersAgain: a VM whose QEMU answers again leaves NotResponding
// with an event.
func TestQEMUAnswersAgain(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	events, cancel := a.hub.subscribe()
	defer cancel()
	vm := startVM(t, a, "slow")
	e, _ := a.entry(vm.ID)
	release := f.hangOn("qemu:" + e.Domain.UUID)
	a.probe(context.Background(), e)
	waitAgentEvent(t, events, vm.ID, agentapi.EventNotResponding)
	release()
	deadline := time.Now().Add(5 * time.Second)
	for a.health.notResponding(vm.ID) != "" && time.Now().Before(deadline) {
		a.probe(context.Background(), e)
		time.Sleep(20 * time.Millisecond)
	}
	ev := waitAgentEvent(t, events, vm.ID, agentapi.EventResponding)
	if !strings.Contains(ev.Detail, "did not answer for") {
		t.Errorf("responding event: %+v", ev)
	}
	if _, err := a.Act(context.Background(), vm.ID, "shutdown"); err != nil {
		t.Errorf("shutdown after QEMU answered again: %v", err)
	}
}

// TestShutdownTimeoutPowersOff: a guest that ignores the shutdown request
// is powered off after the time-out, with an event that says so; without
// force it is left running.
func TestShutdownTimeoutPowersOff(t *testing.T) {
	for _, force := range []bool{true, false} {
		f := newFakeConn()
		f.ignoreShutdown = true
		a := newTestAgent(t, f)
		events, cancel := a.hub.subscribe()
		vm := startVM(t, a, "web1")
		res, err := a.ActWith(context.Background(), vm.ID, "shutdown", ActOptions{Shutdown: agentapi.ShutdownRequest{TimeoutSeconds: 1, Force: force}})
		if err != nil || res.State != agentapi.StateRunning {
			t.Fatalf("force=%v: shutdown: %+v %v", force, res, err)
		}
		e, _ := a.entry(vm.ID)
		if force {
			ev := waitAgentEvent(t, events, vm.ID, agentapi.EventShutdownTimeout)
			if !strings.Contains(ev.Detail, "did not power off within 1s") {
				t.Errorf("event: %+v", ev)
			}
			if st, _ := f.DomainState(context.Background(), e.Domain); st != libvirtconn.StateShutoff {
				t.Errorf("after the time-out the VM is %s", st)
			}
		} else {
			time.Sleep(1500 * time.Millisecond)
			if st, _ := f.DomainState(context.Background(), e.Domain); st != libvirtconn.StateRunning {
				t.Errorf("without force the VM is %s", st)
			}
		}
		cancel()
	}
}

// TestLibvirtStatus: the agent says whether it reaches libvirt, and why
// not, at once and without waiting behind a dial.
func TestLibvirtStatus(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	if _, err := a.conn.get(); err != nil {
		t.Fatal(err)
	}
	if st := a.conn.status(); !st.Connected {
		t.Fatalf("status %+v", st)
	}
	// The daemon goes away and does not come back.
	a.conn.dial = func(string, time.Duration) (libvirtconn.AgentConn, error) {
		return nil, errors.New("dial unix /run/libvirt/libvirt-sock: connect: no such file or directory")
	}
	close(f.gone)
	st := a.conn.status()
	if st.Connected || !strings.Contains(st.Error, "was lost") || st.Since.IsZero() {
		t.Errorf("status after the loss: %+v", st)
	}
	time.Sleep(retrySpacing)
	if _, err := a.ListVMs(context.Background()); asAPIError(err).Code != api.CodeLibvirtUnavailable {
		t.Errorf("list without libvirt: %v", err)
	}
	st = a.conn.status()
	if !strings.Contains(st.Error, "no such file") {
		t.Errorf("status after a failed dial: %+v", st)
	}
	// Calls right after a failed dial fail with its error, without a dial
	// of their own.
	var dials sync.WaitGroup
	n := 0
	a.conn.dial = func(string, time.Duration) (libvirtconn.AgentConn, error) {
		n++
		return nil, errors.New("still away")
	}
	dials.Add(1)
	go func() {
		defer dials.Done()
		for i := 0; i < 20; i++ {
			_, _ = a.conn.get()
		}
	}()
	dials.Wait()
	if n > 1 {
		t.Errorf("20 calls within %s dialled %d times", retrySpacing, n)
	}
}

// TestResyncReportsChanges: after libvirt comes back, the VMs whose state
// changed meanwhile get events, and so does the host.
func TestResyncReportsChanges(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	ctx := context.Background()
	stays := startVM(t, a, "stays")
	stops := startVM(t, a, "stops")
	goes := startVM(t, a, "goes")
	if err := a.recover(ctx, f); err != nil {
		t.Fatal(err)
	}
	events, cancel := a.hub.subscribe()
	defer cancel()
	// While libvirt is away: one VM stops, one is removed.
	e, _ := a.entry(stops.ID)
	_ = f.transition("", e.Domain, libvirtconn.StateShutoff)
	g, _ := a.entry(goes.ID)
	_ = f.UndefineDomain(ctx, g.Domain, 0)
	if err := a.resync(ctx, f, true); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	timeout := time.After(5 * time.Second)
	for len(got) < 3 {
		select {
		case ev := <-events:
			got[ev.Name+ev.VM] = ev.Event
		case <-timeout:
			t.Fatalf("events: %v", got)
		}
	}
	want := map[string]string{"stops" + stops.ID: "stopped", "goes" + goes.ID: "undefined", "": agentapi.EventLibvirtBack}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("event of %q: %q; want %q (all: %v)", k, got[k], v, got)
		}
	}
	if _, ok := got["stays"+stays.ID]; ok {
		t.Error("an event for a VM that did not change")
	}
}

// TestConsoleDrainedWithoutReaders: QEMU's side of a console pty keeps
// writing far more than a pty holds while nobody is attached; the agent's
// drain takes it all (the writes never block), keeps the latest output, and
// types input in.
func TestConsoleDrainedWithoutReaders(t *testing.T) {
	master, slavePath := openTestPTY(t)
	f := newFakeConn()
	a := newTestAgent(t, f)
	d, err := a.consoles.ensure("vm-1", slavePath)
	if err != nil {
		t.Fatal(err)
	}
	defer a.consoles.stop("vm-1")

	// 1 MiB of output: 20 KiB fill an undrained pty.
	line := bytes.Repeat([]byte("x"), 1023)
	line = append(line, '\n')
	if err := master.SetWriteDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1024; i++ {
		if _, err := master.Write(line); err != nil {
			t.Fatalf("QEMU's write %d blocked or failed: %v", i, err)
		}
	}
	if _, err := master.Write([]byte("END\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, total := d.since(0)
		if bytes.HasSuffix(b, []byte("END\n")) {
			if len(b) > consoleRing || total != 1024*1024+4 {
				t.Errorf("ring %d bytes, total %d", len(b), total)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the drain has %d bytes", total)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A reader that attaches is woken by new output; input reaches QEMU.
	wake, unsubscribe := d.subscribe()
	if _, err := master.Write([]byte("login: ")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader was not woken")
	}
	unsubscribe()
	if err := d.write([]byte("root\r")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = master.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := master.Read(buf)
	if err != nil || string(buf[:n]) != "root\r" {
		t.Errorf("QEMU read %q, %v", buf[:n], err)
	}

	// QEMU closes its side: the drain ends by itself.
	master.Close()
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the drain did not end when QEMU closed the pty")
	}
	if a.consoles.draining("vm-1") {
		t.Error("the hub still lists the ended drain")
	}
}

// openTestPTY opens a pty pair the way QEMU does: the test holds the
// master (QEMU's side); the slave's path is the console's.
func openTestPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// TestDestroyDoesNotWaitBehindAStuckCall: a destroy is not held back by an
// operation of the same VM that its QEMU holds up.
func TestDestroyDoesNotWaitBehindAStuckCall(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	a.cfg.QEMUTimeout.Duration = time.Minute
	vm := startVM(t, a, "held")
	e, _ := a.entry(vm.ID)
	release := f.hangOn("qemu:" + e.Domain.UUID)
	defer release()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = a.Act(context.Background(), vm.ID, "shutdown")
	}()
	time.Sleep(50 * time.Millisecond)
	// The shutdown holds the VM for the whole QEMU time-out (a minute): a
	// destroy that waited behind it would end with its own deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := a.Act(ctx, vm.ID, "destroy")
	if err != nil || res.State != agentapi.StateDefined {
		t.Fatalf("destroy: %+v %v", res, err)
	}
	release()
	wg.Wait()
}

// TestDeleteForceOfAStuckVM: a VM whose QEMU does not answer is removed
// with force.
func TestDeleteForceOfAStuckVM(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	vm := startVM(t, a, "gone")
	e, _ := a.entry(vm.ID)
	release := f.hangOn("qemu:" + e.Domain.UUID)
	defer release()
	a.probe(context.Background(), e)
	if a.health.notResponding(vm.ID) == "" {
		t.Fatal("the VM is not NotResponding")
	}
	if err := a.DeleteVM(context.Background(), vm.ID, false); asAPIError(err).Code != api.CodeVMRunning {
		t.Errorf("delete without force: %v", err)
	}
	if err := a.DeleteVM(context.Background(), vm.ID, true); err != nil {
		t.Fatalf("delete with force: %v", err)
	}
	if _, err := a.entry(vm.ID); err == nil {
		t.Error("the VM is still there")
	}
}

func TestQEMUProcesses(t *testing.T) {
	const uuid = "6f1c1a9e-3d2b-4c55-9a0e-2b7d1c9e4f10"
	cmd := func(args ...string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(strings.Join(args, "\x00") + "\x00")}
	}
	proc := fstest.MapFS{
		"1/cmdline":    cmd("/sbin/init"),
		"120/cmdline":  cmd("/usr/bin/qemu-system-ppc64", "-name", "guest=a", "-uuid", strings.ToUpper(uuid), "-m", "512"),
		"121/cmdline":  cmd("/usr/bin/qemu-system-x86_64", "-uuid", "00000000-0000-4000-8000-000000000000"),
		"122/cmdline":  cmd("/bin/sh", "-c", "echo -uuid "+uuid),
		"123/cmdline":  cmd("/usr/bin/qemu-system-ppc64", "-uuid"),
		"124/cmdline":  {Data: nil},
		"self/cmdline": cmd("/usr/bin/qemu-system-ppc64", "-uuid", uuid),
		"bogus":        {Data: []byte("x")},
	}
	if got := qemuProcesses(proc, uuid); len(got) != 1 || got[0] != 120 {
		t.Errorf("qemuProcesses = %v; want [120]", got)
	}
	if got := qemuProcesses(fstest.MapFS{}, uuid); len(got) != 0 {
		t.Errorf("an empty /proc: %v", got)
	}
	for uri, want := range map[string]bool{"qemu:///system": true, "qemu+unix:///system?socket=/tmp/s": true,
		"qemu+tcp://10.0.0.1/system": false, "qemu+ssh://h/system": false, "test:///default": false} {
		if localLibvirt(uri) != want {
			t.Errorf("localLibvirt(%q) = %v", uri, !want)
		}
	}
}

// FuzzQEMUProcesses: any command line is read without a panic, and a
// process is only found with "-uuid" and the UUID as separate arguments
// of a qemu program.
func FuzzQEMUProcesses(f *testing.F) {
	f.Add([]byte("/usr/bin/qemu-system-ppc64\x00-uuid\x00u\x00"))
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("qemu\x00-uuid"))
	f.Fuzz(func(t *testing.T, cmdline []byte) {
		got := qemuProcesses(fstest.MapFS{"7/cmdline": {Data: cmdline}}, "u")
		if len(got) > 0 && !bytes.Contains(cmdline, []byte("-uuid\x00u")) {
			t.Errorf("found in %q", cmdline)
		}
	})
}

// TestShutdownTimeoutSurvivesRestart: an agent that restarts while a
// shutdown with a time-out waits takes the wait over from its data
// directory and powers the VM off when the time is up; the book is empty
// afterwards, and a record of a VM that is gone is dropped.
func TestShutdownTimeoutSurvivesRestart(t *testing.T) {
	f := newFakeConn()
	f.ignoreShutdown = true
	first := newTestAgent(t, f)
	dir := first.cfg.DataDir
	var err error
	if first.powerdownBook, err = openPowerdownBook(dir); err != nil {
		t.Fatal(err)
	}
	vm := startVM(t, first, "web1")
	if _, err := first.ActWith(context.Background(), vm.ID, "shutdown", ActOptions{Shutdown: agentapi.ShutdownRequest{TimeoutSeconds: 60, Force: true}}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, powerdownFile))
	if err != nil || !strings.Contains(string(raw), vm.ID) || !strings.Contains(string(raw), `"timeoutSeconds":60,"force":true`) {
		t.Fatalf("the book while the first agent waits: %s (%v)", raw, err)
	}
	// The first agent dies (its wait with it, its book left as it was).
	first.powerdownBook = nil
	if pd, ok := first.powerdowns.LoadAndDelete(vm.ID); ok {
		pd.(*powerdown).cancel()
	}
	// The time is nearly up when the second starts; a record of a VM that
	// no longer exists is there too.
	book, err := openPowerdownBook(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := book.put(vm.ID, &powerdown{}, powerdownRecord{Deadline: time.Now().Add(2 * time.Second), TimeoutSeconds: 60, Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := book.put("00000000-0000-4000-8000-000000000000", &powerdown{}, powerdownRecord{Deadline: time.Now(), TimeoutSeconds: 1, Force: true}); err != nil {
		t.Fatal(err)
	}

	second := newTestAgent(t, f)
	second.cfg.DataDir = dir
	if second.powerdownBook, err = openPowerdownBook(dir); err != nil {
		t.Fatal(err)
	}
	events, cancel := second.hub.subscribe()
	defer cancel()
	if err := second.recover(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	second.resumePowerdowns()
	ev := waitAgentEvent(t, events, vm.ID, agentapi.EventShutdownTimeout)
	if !strings.Contains(ev.Detail, "did not power off within 1m0s") {
		t.Errorf("event: %+v", ev)
	}
	e, _ := second.entry(vm.ID)
	if st, _ := f.DomainState(context.Background(), e.Domain); st != libvirtconn.StateShutoff {
		t.Errorf("after the time-out the VM is %s", st)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		raw, err = os.ReadFile(filepath.Join(dir, powerdownFile))
		if err == nil && string(raw) == "{}" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the book after the time-out: %s (%v)", raw, err)
		}
	}
}

// TestPowerdownBookRefusesGarbage: a book that is not JSON is an error
// naming its file, not an empty book.
func TestPowerdownBookRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, powerdownFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openPowerdownBook(dir); err == nil || !strings.Contains(err.Error(), powerdownFile) {
		t.Errorf("openPowerdownBook of garbage: %v", err)
	}
}

// registeringConn is the fake libvirt with libvirt's rule for events: a
// change is delivered only to a subscription registered before it. Its
// first listing of the domains runs duringList (a change made while the
// agent recovers its index).
type registeringConn struct {
	*fakeConn
	mu         sync.Mutex
	sub        chan libvirtconn.LifecycleEvent
	duringList func()
}

func (r *registeringConn) Events(ctx context.Context) (<-chan libvirtconn.LifecycleEvent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sub := make(chan libvirtconn.LifecycleEvent, 16)
	r.sub = sub
	// As libvirtconn's: the channel closes when ctx ends.
	go func() {
		<-ctx.Done()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.sub = nil
		close(sub)
	}()
	return sub, nil
}

// emit delivers an event to the subscription, if there is one yet.
func (r *registeringConn) emit(ev libvirtconn.LifecycleEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub != nil {
		r.sub <- ev
	}
}

func (r *registeringConn) ListDomains(ctx context.Context) ([]libvirtconn.Domain, error) {
	r.mu.Lock()
	f := r.duringList
	r.duringList = nil
	r.mu.Unlock()
	if f != nil {
		f()
	}
	return r.fakeConn.ListDomains(ctx)
}

// TestNoEventLostWhileRecovering: a VM that stops while the agent (just
// restarted, or back on libvirt) recovers its index has its "stopped"
// event on the agent's stream — the subscription is made before the
// recovery, so libvirt's event of the change is not lost.
func TestNoEventLostWhileRecovering(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	vm := startVM(t, a, "stops-during-recovery")
	e, _ := a.entry(vm.ID)
	r := &registeringConn{fakeConn: f}
	r.duringList = func() {
		if err := f.transition("", e.Domain, libvirtconn.StateShutoff); err != nil {
			t.Error(err)
		}
		r.emit(libvirtconn.LifecycleEvent{Domain: e.Domain, Event: libvirtconn.EventStopped})
	}
	// A fresh connection, as after a restart.
	a.conn = newConnManager("fake:///", a.log)
	a.conn.dial = func(string, time.Duration) (libvirtconn.AgentConn, error) { return r, nil }
	events, cancel := a.hub.subscribe()
	defer cancel()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.watchLibvirt(ctx)
	}()
	defer func() {
		stop()
		<-done
	}()
	ev := waitAgentEvent(t, events, vm.ID, "stopped")
	if ev.State != agentapi.StateDefined {
		t.Errorf("stopped event's state: %q, want %q", ev.State, agentapi.StateDefined)
	}
	if st := a.index.list(); len(st) != 1 {
		t.Errorf("index after the recovery: %d VMs, want 1", len(st))
	}
}
