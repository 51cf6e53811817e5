package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/store"
)

// startEvents are a VM's start events (vm.start, vm.ha-restart), newest
// first.
func startEvents(t *testing.T, c *client.Client, vmID string) []engineapi.Event {
	t.Helper()
	page, err := c.Events(context.Background(), client.EventFilter{Object: vmID})
	if err != nil {
		t.Fatal(err)
	}
	var out []engineapi.Event
	for _, ev := range page.Events {
		if ev.Action == "vm.start" || ev.Action == "vm.ha-restart" {
			out = append(out, ev)
		}
	}
	return out
}

// TestStartOutcomeRecordedOnce: a start records who asked before the host
// is asked; its outcome is recorded exactly once — by the start itself
// while it runs in this engine, or by the monitoring when the engine that
// ordered it died before the host answered (left as a dead engine leaves
// it: WaitForLaunch with its pending start, the VM running on its host).
func TestStartOutcomeRecordedOnce(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	adm := l.te.admin
	st := l.te.e.Store()
	p8a, err := adm.Host(ctx, "p8a", false)
	if err != nil {
		t.Fatal(err)
	}

	// A start in flight here: the host's "started" event reaches the
	// monitoring before the start's answer; one event, the start's.
	a := l.create(t, "a", "power", strings.ReplaceAll(ppcDef, "%s", "a"), false, "p8a")
	if _, err := adm.VMAction(ctx, "a", "start", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // two resyncs
	evs := startEvents(t, adm, a.ID)
	if len(evs) != 1 || evs[0].Message != "VM a was started by admin (Host: p8a)." || evs[0].User != "admin" {
		t.Errorf("start events of a: %+v; want one, by admin", evs)
	}
	if v, _ := st.GetVM(ctx, a.ID); v.Pending != nil {
		t.Errorf("a's pending start after its outcome: %+v", v.Pending)
	}

	// A start whose engine died after ordering it: the host runs the VM.
	b := l.create(t, "b", "power", strings.ReplaceAll(ppcDef, "%s", "b"), false, "p8a")
	ordered := time.Now().UTC().Add(-2 * time.Second)
	deadEngineStarted := func(id string, pending *store.VMPending) {
		t.Helper()
		v, err := st.GetVM(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		v.State, v.HostID, v.Pending = store.VMWaitForLaunch, p8a.ID, pending
		if err := st.UpdateVM(ctx, &v); err != nil {
			t.Fatal(err)
		}
		l.p8a.put(agentapi.VM{ID: v.ID, Name: v.Name, State: agentapi.StateDefined, Definition: v.Definition})
		l.p8a.setState(v.ID, agentapi.StateRunning, "booted", "started", "booted")
	}
	deadEngineStarted(b.ID, &store.VMPending{Action: "start", HostID: p8a.ID, User: "ops", Reason: "after the upgrade",
		CorrelationID: "corr-b", Engine: "engine-gone", At: ordered})
	waitVM(t, adm, "b", 5*time.Second, func(v engineapi.VM) bool { return v.State == "Up" && v.Host == "p8a" })
	time.Sleep(1200 * time.Millisecond) // two resyncs: still once
	evs = startEvents(t, adm, b.ID)
	if len(evs) != 1 {
		t.Fatalf("start events of b: %+v; want one", evs)
	}
	ev := evs[0]
	if ev.Message != "VM b was started by ops (Host: p8a)." || ev.User != "ops" || ev.CorrelationID != "corr-b" ||
		!containsAll(ev.Reason, "after the upgrade", "engine engine-gone ordered the start at "+ordered.Format(time.RFC3339),
			"did not record its outcome", "host p8a reports the VM Up") {
		t.Errorf("b's start event: %+v", ev)
	}
	if v, _ := st.GetVM(ctx, b.ID); v.Pending != nil {
		t.Errorf("b's pending start after its outcome: %+v", v.Pending)
	}

	// Without a pending start (who started it is unknown): the state
	// change, said as such.
	c := l.create(t, "c", "power", strings.ReplaceAll(ppcDef, "%s", "c"), false, "p8a")
	deadEngineStarted(c.ID, nil)
	waitVM(t, adm, "c", 5*time.Second, vmState("Up"))
	page, err := adm.Events(ctx, client.EventFilter{Object: c.ID, Action: "vm.state"})
	if err != nil || len(page.Events) != 1 || page.Events[0].Message != "VM c is Up on host p8a." ||
		!strings.Contains(page.Events[0].Reason, "was WaitForLaunch: the engine that ordered its start did not record the outcome") {
		t.Errorf("c's state events: %+v %v", page.Events, err)
	}

	// An HA restart ordered by a dead engine: the HA restart's event.
	h := l.create(t, "h", "power", strings.ReplaceAll(ppcDef, "%s", "h"), true, "p8a")
	deadEngineStarted(h.ID, &store.VMPending{Action: "ha-restart", HostID: p8a.ID, Engine: "engine-gone", At: ordered,
		Reason: "host p8b does not answer"})
	waitVM(t, adm, "h", 5*time.Second, vmState("Up"))
	evs = startEvents(t, adm, h.ID)
	if len(evs) != 1 || evs[0].Action != "vm.ha-restart" || evs[0].Message != "Highly available VM h was restarted on host p8a." ||
		!strings.Contains(evs[0].Reason, "host p8b does not answer") {
		t.Errorf("h's restart events: %+v", evs)
	}
}
