package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// lastEvent is the latest event of an object with a code ("" for any).
func lastEvent(t *testing.T, c *client.Client, object, code string) (engineapi.Event, bool) {
	t.Helper()
	page, err := c.Events(context.Background(), client.EventFilter{Object: object, Code: code, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) == 0 {
		return engineapi.Event{}, false
	}
	return page.Events[0], true
}

// TestVMNotResponding: a VM whose QEMU does not answer is NotResponding
// with an event that says why in words; other actions are refused with the
// agent's code; destroy works; a QEMU that answers again brings it back Up.
func TestVMNotResponding(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	api1 := l.te.admin
	l.create(t, "stuck", "power", strings.ReplaceAll(ppcDef, "%s", "stuck"), false, "p8a")
	r, err := api1.VMAction(ctx, "stuck", "start", "")
	if err != nil {
		t.Fatal(err)
	}
	const why = "no reply to query-status within 10s"
	l.p8a.mu.Lock()
	v := l.p8a.vms[r.VM]
	v.vm.NotResponding = why
	l.p8a.publish(v.vm, agentapi.EventNotResponding, why)
	l.p8a.mu.Unlock()
	waitVM(t, api1, "stuck", 5*time.Second, vmState("NotResponding"))
	ev, ok := lastEvent(t, api1, r.VM, api.CodeVMNotResponding)
	if !ok || ev.Message != "The QEMU of VM stuck on host p8a does not answer (no reply to query-status within 10s)." || ev.Severity != "warning" {
		t.Errorf("event: %+v", ev)
	}
	// A resync keeps it so (the agent's list says so too), without a new
	// event.
	time.Sleep(3 * testVMs.Resync)
	if v, _ := api1.VM(ctx, "stuck"); v.State != "NotResponding" {
		t.Errorf("after a resync: %s", v.State)
	}
	page, _ := api1.Events(ctx, client.EventFilter{Object: r.VM, Code: api.CodeVMNotResponding})
	if len(page.Events) != 1 {
		t.Errorf("%d NotResponding events; want 1", len(page.Events))
	}
	if _, err := api1.VMAction(ctx, "stuck", "start", ""); clientErr(err).Code != api.CodeVMStatusIllegal {
		t.Errorf("start of a NotResponding VM: %v", err)
	}
	// It answers again.
	l.p8a.mu.Lock()
	v.vm.NotResponding = ""
	l.p8a.publish(v.vm, agentapi.EventResponding, "it did not answer for 12s ("+why+")")
	l.p8a.mu.Unlock()
	waitVM(t, api1, "stuck", 5*time.Second, vmState("Up"))
	if ev, _ := lastEvent(t, api1, r.VM, ""); !strings.Contains(ev.Message, "answers again") {
		t.Errorf("event after it answers again: %+v", ev)
	}
	// Destroy works whatever QEMU does.
	if r, err := api1.VMAction(ctx, "stuck", "destroy", ""); err != nil || r.State != "Down" {
		t.Errorf("destroy: %+v %v", r, err)
	}
}

// TestStopWaitsThenPowersOff: a stop sends the guest the cluster's
// shutdown time-out (or the request's), and the engine records the
// agent's power-off after it; without force only the guest is asked.
func TestStopWaitsThenPowersOff(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	api1 := l.te.admin
	sixty := 60
	if c, err := api1.UpdateCluster(ctx, "power", engineapi.ClusterUpdate{ShutdownTimeoutSeconds: &sixty}); err != nil || c.ShutdownTimeoutSeconds != 60 {
		t.Fatalf("cluster time-out: %+v %v", c, err)
	}
	zero := 0
	if _, err := api1.UpdateCluster(ctx, "power", engineapi.ClusterUpdate{ShutdownTimeoutSeconds: &zero}); clientErr(err).Code != api.CodeInvalidArgument {
		t.Errorf("a zero cluster time-out: %v", err)
	}
	l.create(t, "web1", "power", strings.ReplaceAll(ppcDef, "%s", "web1"), false, "p8a")
	r, err := api1.VMAction(ctx, "web1", "start", "")
	if err != nil {
		t.Fatal(err)
	}
	lastAction := func() string {
		l.p8a.mu.Lock()
		defer l.p8a.mu.Unlock()
		return l.p8a.actions[len(l.p8a.actions)-1]
	}
	for _, c := range []struct {
		timeout time.Duration
		force   bool
		want    string
	}{
		{0, true, `shutdown {"timeoutSeconds":60,"force":true}`},
		{90 * time.Second, true, `shutdown {"timeoutSeconds":90,"force":true}`},
		{0, false, `shutdown`},
	} {
		// The fake guest powers off at once; start it again each time.
		if _, err := api1.VMAction(ctx, "web1", "start", ""); err != nil {
			t.Fatal(err)
		}
		waitVM(t, api1, "web1", 5*time.Second, vmState("Up"))
		res, err := api1.ShutdownVM(ctx, "web1", c.timeout, c.force, "")
		if err != nil || res.State != "PoweringDown" {
			t.Fatalf("stop %+v: %+v %v", c, res, err)
		}
		if got := lastAction(); got != c.want {
			t.Errorf("stop %+v: the agent got %q; want %q", c, got, c.want)
		}
		waitVM(t, api1, "web1", 5*time.Second, vmState("Down"))
	}
	if _, err := api1.ShutdownVM(ctx, "web1", 100*24*time.Hour, true, ""); clientErr(err).Code != api.CodeInvalidArgument {
		t.Errorf("a time-out of 100 days: %v", err)
	}
	if _, err := api1.VMActionWith(ctx, "web1", "pause", engineapi.VMActionRequest{TimeoutSeconds: 5}); clientErr(err).Code != api.CodeInvalidArgument {
		t.Errorf("a time-out on pause: %v", err)
	}

	// The agent powered the VM off after the time-out: recorded.
	l.p8a.mu.Lock()
	l.p8a.publish(agentapi.VM{ID: r.VM, Name: "web1", State: agentapi.StateDefined}, agentapi.EventShutdownTimeout,
		"the guest did not power off within 1m0s of the shutdown request; the VM was powered off")
	l.p8a.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev, ok := lastEvent(t, api1, r.VM, api.CodeVMShutdownTimeout)
		if ok {
			if !strings.Contains(ev.Message, "VM web1 was powered off: its guest did not power off in time") || !strings.Contains(ev.Reason, "within 1m0s") {
				t.Errorf("event: %+v", ev)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no shutdown time-out event")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostWithoutLibvirt: a host whose agent answers but cannot reach
// libvirt becomes NonOperational with the reason within a monitoring
// round, its VMs Unknown, and is not scheduled to; it comes back Up by
// itself, its VMs too.
func TestHostWithoutLibvirt(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	api1 := l.te.admin
	l.create(t, "a", "power", strings.ReplaceAll(ppcDef, "%s", "a"), false, "p8a")
	if _, err := api1.VMAction(ctx, "a", "start", ""); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*fakeAgent{l.p8a, l.p8b} {
		a.mu.Lock()
		a.libvirtDown = "dial unix /run/libvirt/libvirt-sock: connect: connection refused"
		a.mu.Unlock()
	}
	for _, h := range []string{"p8a", "p8b"} {
		hv := waitHost(t, api1, h, 10*time.Second, status("NonOperational"))
		if hv.StatusCode != api.CodeLibvirtUnavailable || !strings.Contains(hv.StatusMessage, "cannot reach libvirt: dial unix") {
			t.Errorf("host %s: %s %q", h, hv.StatusCode, hv.StatusMessage)
		}
	}
	v := waitVM(t, api1, "a", 5*time.Second, vmState("Unknown"))
	if v.Host != "p8a" {
		t.Errorf("the VM left its host: %+v", v)
	}
	if ev, _ := lastEvent(t, api1, v.ID, "VM_SET_TO_UNKNOWN_STATUS"); !strings.Contains(ev.Message, "host p8a cannot reach libvirt") {
		t.Errorf("VM event: %+v", ev)
	}
	// Not scheduled to: each host says why.
	l.create(t, "b", "power", strings.ReplaceAll(ppcDef, "%s", "b"), false, "")
	_, err := api1.VMAction(ctx, "b", "start", "")
	ce := clientErr(err)
	if ce.Code != api.CodeSchedulingFilteredOut || len(ce.Details) != 2 {
		t.Fatalf("start without libvirt: %+v", ce)
	}
	for _, e := range ce.Details {
		if e.Code != api.CodeHostNotUp {
			t.Errorf("reason %+v", e)
		}
	}
	// libvirt comes back.
	for _, a := range []*fakeAgent{l.p8a, l.p8b} {
		a.mu.Lock()
		a.libvirtDown = ""
		a.mu.Unlock()
	}
	for _, h := range []string{"p8a", "p8b"} {
		if hv := waitHost(t, api1, h, 10*time.Second, status("Up")); hv.StatusCode != "" {
			t.Errorf("host %s back with code %s", h, hv.StatusCode)
		}
	}
	waitVM(t, api1, "a", 10*time.Second, vmState("Up"))
	if _, err := api1.VMAction(ctx, "b", "start", ""); err != nil {
		t.Errorf("start after libvirt came back: %v", err)
	}
	// The statistics recorded (written in batches) say so too.
	waitHost(t, api1, "p8a", 5*time.Second, func(h engineapi.Host) bool {
		var stats agentapi.Stats
		return json.Unmarshal(h.Stats, &stats) == nil && stats.Libvirt != nil && stats.Libvirt.Connected
	})
}

// A shutdown, forced or not, stays PoweringDown when the event of the
// start just before arrives late — after PoweringDown was recorded, before
// the agent answered: the VM must not turn Up again while its guest is
// asked to power off (it did, for a shutdown without a time-out).
func TestShutdownNotUndoneByALateStartEvent(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	api1 := l.te.admin
	l.create(t, "web1", "power", strings.ReplaceAll(ppcDef, "%s", "web1"), false, "p8a")
	for _, force := range []bool{false, true} {
		if _, err := api1.VMAction(ctx, "web1", "start", ""); err != nil {
			t.Fatal(err)
		}
		waitVM(t, api1, "web1", 5*time.Second, vmState("Up"))
		l.p8a.mu.Lock()
		l.p8a.lateStart = true
		l.p8a.mu.Unlock()
		res, err := api1.ShutdownVM(ctx, "web1", 0, force, "")
		if err != nil || res.State != "PoweringDown" {
			t.Errorf("force %v: shutdown answered %+v %v, want PoweringDown", force, res, err)
		}
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if v, err := api1.VM(ctx, "web1"); err != nil || v.State != "PoweringDown" {
				t.Fatalf("force %v: VM %s (%v) while its guest is asked to power off", force, v.State, err)
			}
		}
		l.p8a.mu.Lock()
		l.p8a.lateStart = false
		l.p8a.mu.Unlock()
		if _, err := api1.VMAction(ctx, "web1", "destroy", ""); err != nil {
			t.Fatal(err)
		}
		waitVM(t, api1, "web1", 5*time.Second, vmState("Down"))
	}
}
