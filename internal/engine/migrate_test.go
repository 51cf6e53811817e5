package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/client"
)

// startedOn creates and starts a POWER VM of the lab (on host on, when
// given: pinned to start there, unpinned after unless keepPin), then
// returns it with the host it runs on.
func (l *powerLab) startedOn(t *testing.T, name string, on string, keepPin ...bool) engineapi.VM {
	t.Helper()
	l.create(t, name, "power", "name: "+name+"\narch: ppc64le\nmemory: {sizeMiB: 1024}\n", false, on)
	if _, err := l.te.admin.VMAction(context.Background(), name, "start", ""); err != nil {
		t.Fatal(err)
	}
	if on != "" && len(keepPin) == 0 {
		unpin := ""
		if _, err := l.te.admin.UpdateVM(context.Background(), name, engineapi.VMUpdate{Host: &unpin}); err != nil {
			t.Fatal(err)
		}
	}
	return waitVM(t, l.te.admin, name, 5*time.Second, func(v engineapi.VM) bool { return v.State == "Up" })
}

func (l *powerLab) agent(name string) *fakeAgent {
	switch name {
	case "p8a":
		return l.p8a
	case "p8b":
		return l.p8b
	}
	return l.x86
}

// eventsOf are the audit messages of one object, oldest first.
func eventsOf(t *testing.T, te *testEngine, id string) []string {
	t.Helper()
	page, err := te.admin.Events(context.Background(), client.EventFilter{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(page.Events) - 1; i >= 0; i-- {
		if ev := page.Events[i]; ev.ObjectID == id {
			out = append(out, ev.Code+" "+ev.Message)
		}
	}
	return out
}

func hasEvent(events []string, want string) bool {
	for _, e := range events {
		if strings.Contains(e, want) {
			return true
		}
	}
	return false
}

// TestMigrateVM: a running VM moves to the other host of its cluster; the
// VM document shows it in flight with its figures, then on its new host;
// the source's lists and events while it moves change nothing; the
// console attached through the engine follows it; the events say it.
func TestMigrateVM(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	v := l.startedOn(t, "mover", "")
	src, dst := l.agent(v.Host), l.p8b
	if v.Host == "p8b" {
		dst = l.p8a
	}
	hold := make(chan struct{})
	src.mu.Lock()
	src.mig.hold = hold
	src.mu.Unlock()

	// The console, attached before the move.
	ws, err := l.te.admin.Console(ctx, "mover", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	read := func(want string) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var got strings.Builder
		for !strings.Contains(got.String(), want) {
			_, b, err := ws.Read(rctx)
			if err != nil {
				t.Fatalf("console: %v (read %q, want %q)", err, got.String(), want)
			}
			got.Write(b)
		}
	}
	read("(fake " + src.name + ")")

	m, err := l.te.admin.Migrate(ctx, "mover", engineapi.MigrationRequest{Reason: "unit test"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != src.name || m.Destination != dst.name || m.Policy != "minimal-downtime" || m.ID == "" {
		t.Errorf("migration: %+v", m)
	}
	inFlight := waitVM(t, l.te.admin, "mover", 5*time.Second, func(v engineapi.VM) bool {
		return v.Migration != nil && v.Migration.Pass == 3
	})
	if inFlight.State != "MigratingFrom" || inFlight.Host != src.name || inFlight.MigratingTo != dst.name ||
		inFlight.Migration.Phase != agentapi.PhaseCopyingMemory || inFlight.Migration.MemoryTotal != 256<<20 || inFlight.Migration.MemoryRate == 0 {
		t.Errorf("in flight: %s on %s → %s, %+v", inFlight.State, inFlight.Host, inFlight.MigratingTo, inFlight.Migration)
	}
	// A second one meanwhile.
	if _, err := l.te.admin.Migrate(ctx, "mover", engineapi.MigrationRequest{}); api.CodeOf(err) != api.CodeMigrationInProgress {
		t.Errorf("a second migration: %v", err)
	}
	// The order the source got: the destination's answer, the schedule.
	src.mu.Lock()
	order := src.mig.orders[0]
	src.mu.Unlock()
	if order.Destination.LibvirtURI != "qemu+tls://"+dst.addr+"/system" || order.Policy != "minimal-downtime" || !order.AutoConverge ||
		len(order.Schedule.Stalling) == 0 || order.EncryptStream {
		t.Errorf("order: %+v", order)
	}
	close(hold)
	done := waitVM(t, l.te.admin, "mover", 5*time.Second, func(v engineapi.VM) bool { return v.State == "Up" && v.Host == dst.name })
	if done.LastHost != src.name || done.MigratingTo != "" || done.Migration == nil || done.Migration.Phase != agentapi.PhaseCompleted ||
		done.Migration.DowntimeMs != 42 || done.Migration.ElapsedMs <= 0 {
		t.Errorf("after: %+v %+v", done, done.Migration)
	}
	read("(fake " + dst.name + ")")
	// The lists now agree, and nothing was destroyed anywhere.
	time.Sleep(700 * time.Millisecond) // a resync
	if v := waitVM(t, l.te.admin, "mover", time.Second, func(v engineapi.VM) bool { return true }); v.State != "Up" || v.Host != dst.name {
		t.Errorf("after a resync: %s on %s", v.State, v.Host)
	}
	if _, ok := dst.get(v.ID); !ok {
		t.Error("the destination lost the VM")
	}
	events := eventsOf(t, l.te, v.ID)
	for _, want := range []string{api.CodeVMMigrationStart + " Migration started (VM: mover, Source: " + src.name + ", Destination: " + dst.name,
		api.CodeVMMigrationDone + " Migration completed (VM: mover, Source: " + src.name + ", Destination: " + dst.name} {
		if !hasEvent(events, want) {
			t.Errorf("events lack %q:\n%s", want, strings.Join(events, "\n"))
		}
	}
	if hasEvent(events, api.CodeVMDown) || hasEvent(events, api.CodeVMStaleCopyDestroyed) {
		t.Errorf("the move looked like a VM gone or a stale copy:\n%s", strings.Join(events, "\n"))
	}
	got, err := l.te.admin.Migration(ctx, "mover")
	if err != nil || got.ID != m.ID || got.Phase != agentapi.PhaseCompleted {
		t.Errorf("GET migration: %+v %v", got, err)
	}
	_ = websocket.StatusNormalClosure
}

// TestMigrationEndsWithTheVMRecord: a caller that sees a migration ended
// (its GET, the CLI's wait) finds the VM where it ended: while the source
// has said "completed" and the destination has not yet seen the VM arrive,
// the migration is still in flight and the VM MigratingFrom its source;
// once the migration reads completed, the VM is Up on its destination.
func TestMigrationEndsWithTheVMRecord(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	v := l.startedOn(t, "arriving", "p8a")
	src, dst := l.p8a, l.p8b
	arrival := make(chan struct{})
	dst.mu.Lock()
	dst.mig.arrival = arrival
	dst.mu.Unlock()
	released := false
	defer func() {
		if !released {
			close(arrival)
		}
	}()
	if _, err := l.te.admin.Migrate(ctx, "arriving", engineapi.MigrationRequest{Host: "p8b"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		src.mu.Lock()
		out := src.mig.out[v.ID]
		srcDone := out != nil && out.st.Phase == agentapi.PhaseCompleted
		src.mu.Unlock()
		if srcDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the source did not complete the migration within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The engine reads the source's "completed" within its follow interval
	// (500 ms), then waits for the destination.
	time.Sleep(1500 * time.Millisecond)
	for i := 0; i < 10; i++ {
		m, err := l.te.admin.Migration(ctx, "arriving")
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.te.admin.VM(ctx, "arriving")
		if err != nil {
			t.Fatal(err)
		}
		if agentapi.MigrationFinished(m.Phase) || got.State != "MigratingFrom" || got.Host != src.name {
			t.Fatalf("before the VM arrived: the migration %s, the VM %s on %s", m.Phase, got.State, got.Host)
		}
		time.Sleep(40 * time.Millisecond)
	}
	close(arrival)
	released = true
	deadline = time.Now().Add(5 * time.Second)
	for {
		m, err := l.te.admin.Migration(ctx, "arriving")
		if err != nil {
			t.Fatal(err)
		}
		if agentapi.MigrationFinished(m.Phase) {
			got, err := l.te.admin.VM(ctx, "arriving")
			if err != nil {
				t.Fatal(err)
			}
			if m.Phase != agentapi.PhaseCompleted || m.DowntimeMs != 42 || got.State != "Up" || got.Host != dst.name || got.MigratingTo != "" {
				t.Errorf("the migration %s (downtime %d ms), then the VM %s on %s (migrating to %q)", m.Phase, m.DowntimeMs, got.State, got.Host, got.MigratingTo)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the migration did not end within 5 s of the arrival: %s", m.Phase)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMigrationRules: each rule refuses with its code, per host like the
// scheduler.
func TestMigrationRules(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	v := l.startedOn(t, "ruled", "")
	other := "p8b"
	if v.Host == "p8b" {
		other = "p8a"
	}
	// A POWER9 host in the POWER8 cluster.
	p9 := newFakeAgent(t, l.te, "p9a", "power", "ac922-power9")
	waitHost(t, l.te.admin, "p9a", 10*time.Second, status("Up"))

	cases := []struct {
		name  string
		setup func()
		req   engineapi.MigrationRequest
		code  string
		texts []string
	}{
		{"a host of another cluster", nil, engineapi.MigrationRequest{Host: "x1"}, api.CodeVMClusterArch,
			[]string{"it is in cluster x86 (x86_64), and a VM migrates within its cluster power (ppc64) only"}},
		{"to itself", nil, engineapi.MigrationRequest{Host: v.Host}, api.CodeMigrationNoDestination,
			[]string{"did not satisfy internal filter Migration-Source because the VM runs there"}},
		{"an unknown policy", nil, engineapi.MigrationRequest{Policy: "fastest"}, api.CodeMigrationPolicyUnknown, []string{"minimal-downtime, post-copy"}},
		{"policy none", nil, engineapi.MigrationRequest{Policy: "none"}, api.CodeMigrationPolicyNone,
			[]string{"VM ruled is not migrated: the requested migration policy is none"}},
		{"post-copy of huge pages", func() {
			l.agent(v.Host).mu.Lock()
			l.agent(v.Host).mig.plan = func(p *agentapi.MigrationPlan) { p.HugePages = true }
			l.agent(v.Host).mu.Unlock()
		}, engineapi.MigrationRequest{Policy: "post-copy"}, api.CodeMigrationPostCopyImpossible, []string{"its memory is on huge pages"}},
		{"a POWER9-level VM to POWER8 hosts", func() {
			l.agent(v.Host).mu.Lock()
			l.agent(v.Host).mig.plan = func(p *agentapi.MigrationPlan) { p.CPUModel = "POWER9" }
			l.agent(v.Host).mu.Unlock()
			p9.mu.Lock()
			p9.mig.noTLS = true
			p9.mu.Unlock()
		}, engineapi.MigrationRequest{Host: other}, api.CodeMigrationNoDestination,
			[]string{"The host " + other + " did not satisfy internal filter VM-CPU-Level because its CPU level 1 (IBM POWER8) is lower than the running VM's 2 (IBM POWER9)."}},
		{"another machine", func() {
			l.agent(v.Host).mu.Lock()
			l.agent(v.Host).mig.plan = func(p *agentapi.MigrationPlan) { p.Machine = "pseries-9.1" }
			l.agent(v.Host).mu.Unlock()
		}, engineapi.MigrationRequest{Host: other}, api.CodeMigrationNoDestination,
			[]string{"did not satisfy internal filter Emulated-Machine because it does not offer the VM's emulated machine pseries-9.1"}},
		{"another page size", func() {
			l.agent(v.Host).mu.Lock()
			l.agent(v.Host).mig.plan = func(p *agentapi.MigrationPlan) { p.PageKiB = 4 }
			l.agent(v.Host).mu.Unlock()
		}, engineapi.MigrationRequest{Host: other}, api.CodeMigrationNoDestination,
			[]string{"did not satisfy internal filter Page-Size because it backs memory with pages of 64 KiB and 16 MiB, not the VM's 4 KiB"}},
		{"a destination without libvirt TLS", func() {
			l.agent(v.Host).mu.Lock()
			l.agent(v.Host).mig.plan = nil
			l.agent(v.Host).mu.Unlock()
		}, engineapi.MigrationRequest{Host: "p9a"}, api.CodeMigrationNoTLS, []string{"takes no VMs"}},
		{"a negative bandwidth", nil, engineapi.MigrationRequest{MaxBandwidthMiBs: -1}, api.CodeMigrationBandwidthInvalid, []string{"-1 MiB/s"}},
	}
	for _, c := range cases {
		if c.setup != nil {
			c.setup()
		}
		_, err := l.te.admin.Migrate(ctx, "ruled", c.req)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
			continue
		}
		all := ae.Message
		for _, d := range ae.Details {
			all += "\n" + d.Field + ": " + d.Message
		}
		for _, want := range c.texts {
			if !strings.Contains(all, want) {
				t.Errorf("%s: %q lacks %q", c.name, all, want)
			}
		}
		if got, _ := l.te.admin.VM(ctx, "ruled"); got.State != "Up" || got.Host != v.Host || got.MigratingTo != "" {
			t.Errorf("%s: the refused migration changed the VM: %s on %s → %s", c.name, got.State, got.Host, got.MigratingTo)
		}
	}
	// A VM that is Down does not migrate.
	l.create(t, "down", "power", "name: down\narch: ppc64le\n", false, "")
	if _, err := l.te.admin.Migrate(ctx, "down", engineapi.MigrationRequest{}); api.CodeOf(err) != api.CodeMigrationVMNotUp {
		t.Errorf("a VM that is Down: %v", err)
	}
	// A POWER8-level VM may go to the POWER9 host.
	p9.mu.Lock()
	p9.mig.noTLS = false
	p9.mu.Unlock()
	if _, err := l.te.admin.Migrate(ctx, "ruled", engineapi.MigrationRequest{Host: "p9a"}); err != nil {
		t.Fatalf("POWER8-level VM to a POWER9 host: %v", err)
	}
	waitVM(t, l.te.admin, "ruled", 5*time.Second, func(v engineapi.VM) bool { return v.State == "Up" && v.Host == "p9a" })
}

// TestMigrationCancelAndFailure: a migration canceled in flight and one
// that fails leave the VM Up on its source, the announcement withdrawn,
// with their events.
func TestMigrationCancelAndFailure(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	v := l.startedOn(t, "stayer", "")
	src := l.agent(v.Host)
	dst := l.p8b
	if v.Host == "p8b" {
		dst = l.p8a
	}
	src.mu.Lock()
	src.mig.hold = make(chan struct{})
	src.mu.Unlock()
	if _, err := l.te.admin.Migrate(ctx, "stayer", engineapi.MigrationRequest{}); err != nil {
		t.Fatal(err)
	}
	waitVM(t, l.te.admin, "stayer", 5*time.Second, func(v engineapi.VM) bool { return v.Migration != nil && v.Migration.Pass == 3 })
	m, err := l.te.admin.CancelMigration(ctx, "stayer")
	if err != nil {
		t.Fatal(err)
	}
	if m.Phase != agentapi.PhaseCanceled || m.Code != api.CodeMigrationCanceled {
		t.Errorf("canceled: %+v", m)
	}
	after := waitVM(t, l.te.admin, "stayer", 5*time.Second, func(x engineapi.VM) bool { return x.State == "Up" })
	if after.Host != v.Host || after.MigratingTo != "" {
		t.Errorf("after the cancel: %s on %s → %s", after.State, after.Host, after.MigratingTo)
	}
	dst.mu.Lock()
	_, announced := dst.mig.incoming[v.ID]
	dst.mu.Unlock()
	if announced {
		t.Error("the destination keeps the announcement of a canceled migration")
	}
	if _, err := l.te.admin.CancelMigration(ctx, "stayer"); api.CodeOf(err) != api.CodeMigrationNotInProgress {
		t.Errorf("cancel again: %v", err)
	}
	src.mu.Lock()
	src.mig.hold, src.mig.fail = nil, "Unable to write to socket: Broken pipe"
	src.mu.Unlock()
	if _, err := l.te.admin.Migrate(ctx, "stayer", engineapi.MigrationRequest{}); err != nil {
		t.Fatal(err)
	}
	failed := waitVM(t, l.te.admin, "stayer", 5*time.Second, func(x engineapi.VM) bool {
		return x.State == "Up" && x.Migration != nil && x.Migration.Phase == agentapi.PhaseFailed
	})
	if failed.Host != v.Host || failed.Migration.Error != "Unable to write to socket: Broken pipe" {
		t.Errorf("after the failure: %s on %s, %+v", failed.State, failed.Host, failed.Migration)
	}
	events := eventsOf(t, l.te, v.ID)
	for _, want := range []string{api.CodeVMMigrationCanceled + " Migration of VM stayer", api.CodeVMMigrationFailed + " Migration failed (VM: stayer"} {
		if !hasEvent(events, want) {
			t.Errorf("events lack %q:\n%s", want, strings.Join(events, "\n"))
		}
	}
}

// TestMaintenanceEvacuates: a host with a pinned VM is refused, naming it;
// unpinned, its VMs migrate away (PreparingForMaintenance meanwhile) and
// it is Maintenance; a failed migration leaves a host preparing, with the
// reason, until asked again.
func TestMaintenanceEvacuates(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	l.startedOn(t, "e1", "p8a")
	l.startedOn(t, "e2", "p8a")
	pinned := l.startedOn(t, "e3", "p8a", true)
	if _, err := l.te.admin.Maintenance(ctx, "p8a", ""); api.CodeOf(err) != api.CodeMaintenanceVMsCannotMigrate ||
		!strings.Contains(err.Error(), "e3 (it is pinned to host p8a") {
		t.Fatalf("a pinned VM: %v", err)
	}
	if h, _ := l.te.admin.Host(ctx, "p8a", false); h.Status != "Up" {
		t.Errorf("a refused maintenance changed the host: %s", h.Status)
	}
	unpin := ""
	if _, err := l.te.admin.UpdateVM(ctx, pinned.Name, engineapi.VMUpdate{Host: &unpin}); err != nil {
		t.Fatal(err)
	}
	l.p8a.mu.Lock()
	l.p8a.mig.hold = make(chan struct{})
	hold := l.p8a.mig.hold
	l.p8a.mu.Unlock()
	h, err := l.te.admin.MaintenanceWith(ctx, "p8a", engineapi.MaintenanceRequest{Reason: "firmware"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != "PreparingForMaintenance" {
		t.Errorf("while evacuating: %s", h.Status)
	}
	// Two at once (the cluster's default), never more.
	migrating := func() int {
		vms, _ := l.te.admin.VMs(ctx, client.VMFilter{Host: "p8a"})
		n := 0
		for _, v := range vms {
			if v.State == "MigratingFrom" {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for migrating() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		if n := migrating(); n != 2 {
			t.Errorf("%d VMs migrating at once, want 2", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(hold)
	waitHost(t, l.te.admin, "p8a", 10*time.Second, status("Maintenance"))
	for _, n := range []string{"e1", "e2", "e3"} {
		if v, _ := l.te.admin.VM(ctx, n); v.Host != "p8b" || v.State != "Up" {
			t.Errorf("%s: %s on %s", n, v.State, v.Host)
		}
	}
	ev, err := l.te.admin.Evacuation(ctx, "p8a")
	if err != nil || ev.Status != "Maintenance" || len(ev.VMs) != 3 {
		t.Errorf("evacuation: %+v %v", ev, err)
	}
	for _, r := range ev.VMs {
		if r.Outcome != engineapi.EvacuationMigrated || r.Destination != "p8b" {
			t.Errorf("evacuation of %s: %+v", r.Name, r)
		}
	}

	// Back, and p8b to Maintenance with a migration that fails.
	if _, err := l.te.admin.Activate(ctx, "p8a", ""); err != nil {
		t.Fatal(err)
	}
	waitHost(t, l.te.admin, "p8a", 10*time.Second, status("Up"))
	l.p8b.mu.Lock()
	l.p8b.mig.fail = "the destination's libvirtd died"
	l.p8b.mu.Unlock()
	if _, err := l.te.admin.Maintenance(ctx, "p8b", ""); err != nil {
		t.Fatal(err)
	}
	h = waitHost(t, l.te.admin, "p8b", 10*time.Second, func(h engineapi.Host) bool { return h.StatusCode != "" })
	if h.Status != "PreparingForMaintenance" || h.StatusCode != api.CodeMaintenanceMigrationFailed ||
		!strings.Contains(h.StatusMessage, "did not leave") || !strings.Contains(h.StatusMessage, "the destination's libvirtd died") {
		t.Errorf("after a failed migration: %s %s %q", h.Status, h.StatusCode, h.StatusMessage)
	}
	// Asked again, it tries again and succeeds.
	l.p8b.mu.Lock()
	l.p8b.mig.fail = ""
	l.p8b.mu.Unlock()
	if _, err := l.te.admin.Maintenance(ctx, "p8b", ""); err != nil {
		t.Fatal(err)
	}
	waitHost(t, l.te.admin, "p8b", 10*time.Second, status("Maintenance"))
}

// TestMaintenanceStopVMs: with --stop-vms the VMs that cannot leave are
// shut down.
func TestMaintenanceStopVMs(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	l.startedOn(t, "free", "p8a")
	l.startedOn(t, "stuck", "p8a")
	if _, err := l.te.admin.UpdateVM(ctx, "stuck", engineapi.VMUpdate{MigrationPolicy: ptr("none")}); err != nil {
		t.Fatal(err)
	}
	_, err := l.te.admin.Maintenance(ctx, "p8a", "")
	if api.CodeOf(err) != api.CodeMaintenanceVMsCannotMigrate || !strings.Contains(err.Error(), "stuck (VM stuck is not migrated: VM stuck's migration policy is none") {
		t.Fatalf("a VM whose policy is none: %v", err)
	}
	if _, err := l.te.admin.MaintenanceWith(ctx, "p8a", engineapi.MaintenanceRequest{StopVMs: true}); err != nil {
		t.Fatal(err)
	}
	waitHost(t, l.te.admin, "p8a", 10*time.Second, status("Maintenance"))
	if v, _ := l.te.admin.VM(ctx, "stuck"); v.State != "Down" {
		t.Errorf("stuck: %s", v.State)
	}
	if v, _ := l.te.admin.VM(ctx, "free"); v.State != "Up" || v.Host != "p8b" {
		t.Errorf("free: %s on %s", v.State, v.Host)
	}
}

// TestMigrationEngineRestart: the engine stops in the middle of a
// migration that completes meanwhile; the engine started again asks both
// hosts and records the VM on its destination.
func TestMigrationEngineRestart(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	v := l.startedOn(t, "orphan", "")
	src := l.agent(v.Host)
	hold := make(chan struct{})
	src.mu.Lock()
	src.mig.hold = hold
	src.mu.Unlock()
	if _, err := l.te.admin.Migrate(ctx, "orphan", engineapi.MigrationRequest{}); err != nil {
		t.Fatal(err)
	}
	waitVM(t, l.te.admin, "orphan", 5*time.Second, func(v engineapi.VM) bool { return v.Migration != nil && v.Migration.Pass == 3 })
	// The engine stops; the migration goes on without it, and its
	// source's agent forgets it (an agent restarted too).
	l.te.stop()
	close(hold)
	time.Sleep(300 * time.Millisecond)
	src.mu.Lock()
	delete(src.mig.out, v.ID)
	src.mu.Unlock()
	l.te.restart(t)
	after := waitVM(t, l.te.admin, "orphan", 10*time.Second, func(x engineapi.VM) bool { return x.State == "Up" })
	if after.Host == v.Host || after.MigratingTo != "" {
		t.Errorf("after the restart: %s on %s", after.State, after.Host)
	}
	if !hasEvent(eventsOf(t, l.te, v.ID), api.CodeVMMigrationReconciled) {
		t.Errorf("no reconciliation event")
	}
}

var _ = hostreport.Report{}

// TestGraphicalConsoleOfMovedVM: a graphical console attached before its
// VM migrates is closed once the VM arrived, with StatusVMMoved and the
// reason naming the new host (the web UI's console page opens it again
// there); a console opened after the move is the new host's.
func TestGraphicalConsoleOfMovedVM(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	v := l.startedOn(t, "mover", "")
	src, dst := l.agent(v.Host), l.p8b
	if v.Host == "p8b" {
		dst = l.p8a
	}
	hold := make(chan struct{})
	src.mu.Lock()
	src.mig.hold = hold
	src.mu.Unlock()
	open := func() *websocket.Conn {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ws, err := l.te.openVNC(dctx, "mover")
		if err != nil {
			t.Fatal(err)
		}
		if _, msg, err := ws.Read(dctx); err != nil || string(msg) != "RFB 003.008\n" {
			t.Fatalf("the VNC server's greeting: %q %v", msg, err)
		}
		return ws
	}
	ws := open()
	defer ws.CloseNow()
	if _, err := l.te.admin.Migrate(ctx, "mover", engineapi.MigrationRequest{}); err != nil {
		t.Fatal(err)
	}
	// While it moves the console stays.
	waitVM(t, l.te.admin, "mover", 5*time.Second, func(v engineapi.VM) bool { return v.Migration != nil && v.Migration.Pass == 3 })
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ws.Write(wctx, websocket.MessageBinary, []byte("key")); err != nil {
		t.Fatalf("the console while the VM moves: %v", err)
	}
	if _, msg, err := ws.Read(wctx); err != nil || string(msg) != "vnc: key" {
		t.Fatalf("the console while the VM moves: %q %v", msg, err)
	}
	close(hold)
	_, _, err := ws.Read(wctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != StatusVMMoved || ce.Reason != "the VM moved to "+dst.name {
		t.Fatalf("the console of the moved VM ended with %v; want status %d, reason %q", err, StatusVMMoved, "the VM moved to "+dst.name)
	}
	// Opened again: the new host's.
	ws2 := open()
	defer ws2.CloseNow()
	if err := ws2.Write(wctx, websocket.MessageBinary, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws2.Read(wctx); err != nil || string(msg) != "vnc: again" {
		t.Fatalf("the console opened again: %q %v", msg, err)
	}
}

// TestMigrationSourceLostVM: in the middle of a migration the source's
// agent starts again, knows nothing of it, and reports the VM shut off
// (it was destroyed under the migration); the destination has not got
// it. The engine does not wait for ever: the migration failed, the VM is
// Down, and the event says where it is.
func TestMigrationSourceLostVM(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	v := l.startedOn(t, "lost", "")
	src := l.agent(v.Host)
	src.mu.Lock()
	src.mig.hold = make(chan struct{})
	src.mu.Unlock()
	if _, err := l.te.admin.Migrate(ctx, "lost", engineapi.MigrationRequest{}); err != nil {
		t.Fatal(err)
	}
	waitVM(t, l.te.admin, "lost", 5*time.Second, func(v engineapi.VM) bool { return v.Migration != nil && v.Migration.Pass == 3 })
	src.mu.Lock()
	delete(src.mig.out, v.ID)
	src.vms[v.ID].vm.State = agentapi.StateDefined
	src.mu.Unlock()
	after := waitVM(t, l.te.admin, "lost", 10*time.Second, func(x engineapi.VM) bool { return x.State != "MigratingFrom" })
	if after.State != "Down" || after.MigratingTo != "" || after.Migration == nil || after.Migration.Phase != agentapi.PhaseFailed {
		t.Errorf("after the source lost the VM: %s on %q, migration %+v", after.State, after.Host, after.Migration)
	}
	events := eventsOf(t, l.te, v.ID)
	if !hasEvent(events, api.CodeVMMigrationFailed+" Migration failed (VM: lost, Source: "+v.Host) || !hasEvent(events, "it is Down on "+v.Host) {
		t.Errorf("events: %q", events)
	}
}
