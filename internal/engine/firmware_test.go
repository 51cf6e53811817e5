package engine

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/store"
)

// TestFirmwareHostNotBack: a host that flashed its firmware and does not
// answer within the reboot time-out has its operation recorded as failed,
// with an audit event; while within the time-out nothing changes.
func TestFirmwareHostNotBack(t *testing.T) {
	te := startEngine(t, MonitorConfig{})
	ctx := context.Background()
	st := te.e.Store()
	cl := store.Cluster{Name: "power", EmulatedMachineCandidates: []string{"pseries-*"}}
	if err := st.CreateCluster(ctx, &cl); err != nil {
		t.Fatal(err)
	}
	// An address where nothing answers: the agent is rebooting.
	h := store.Host{Name: "power8-x", Address: "127.0.0.1:1", ClusterID: cl.ID, Status: store.HostMaintenance}
	if err := st.CreateHost(ctx, &h); err != nil {
		t.Fatal(err)
	}
	op := store.FirmwareOperation{ID: "fw-test-1", HostID: h.ID, State: store.FirmwareRebooting, FromLevel: "SV810_081", ToLevel: "SV810_133"}
	if err := st.CreateFirmwareOperation(ctx, &op); err != nil {
		t.Fatal(err)
	}
	get := func() map[string]any {
		var out map[string]any
		if err := te.admin.Do(ctx, http.MethodGet, "/hosts/power8-x/firmware", nil, nil, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := get()
	if out["reachable"] != false {
		t.Fatalf("an agent at 127.0.0.1:1 answered: %v", out)
	}
	if rec, _ := st.GetFirmwareOperation(ctx, op.ID); rec.State != store.FirmwareRebooting {
		t.Fatalf("within the time-out the operation became %s", rec.State)
	}

	old := service.FirmwareRebootTimeout
	service.FirmwareRebootTimeout = time.Millisecond
	t.Cleanup(func() { service.FirmwareRebootTimeout = old })
	time.Sleep(5 * time.Millisecond)
	get()
	rec, err := st.GetFirmwareOperation(ctx, op.ID)
	if err != nil || rec.State != store.FirmwareFailed || !strings.HasPrefix(rec.Error, "FIRMWARE_HOST_NOT_BACK") {
		t.Fatalf("after the time-out: %+v, %v", rec, err)
	}
	page, err := st.ListEvents(ctx, store.EventFilter{ObjectID: h.ID})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range page.Events {
		found = found || (ev.Code == "FIRMWARE_HOST_NOT_BACK" && ev.Severity == store.SeverityError)
	}
	if !found {
		t.Errorf("no FIRMWARE_HOST_NOT_BACK event in %+v", page.Events)
	}
}

// TestFirmwareFlashAgentGoesAway: update_flash -f reboots the host, so its
// agent may go before it answers the flash. The engine does not call that a
// failure: the flash is followed like any reboot (not done, an audit event
// saying so). An agent that cannot be reached at all is still refused.
func TestFirmwareFlashAgentGoesAway(t *testing.T) {
	te := startEngine(t, testMonitor)
	ctx := context.Background()
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power", CPUType: "IBM POWER8"}); err != nil {
		t.Fatal(err)
	}
	a := newFakeAgent(t, te, "p8", "power", "s822l-power8e")
	waitHost(t, te.admin, "p8", 10*time.Second, status("Up"))
	if _, err := te.admin.Maintenance(ctx, "p8", "firmware update"); err != nil {
		t.Fatal(err)
	}
	res, err := te.admin.FirmwareStep(ctx, "p8", "flash", "")
	if err != nil || res.Done || res.Host != "p8" {
		t.Fatalf("flash whose agent went away: %+v, %v; want not done, no error", res, err)
	}
	page, err := te.e.Store().ListEvents(ctx, store.EventFilter{Action: "firmware.flash"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range page.Events {
		found = found || strings.Contains(ev.Message, "the agent went away during the flash asked by admin")
	}
	if !found {
		t.Errorf("no event about the agent gone during the flash in %+v", page.Events)
	}

	a.stop()
	if _, err := te.admin.FirmwareStep(ctx, "p8", "flash", ""); clientErr(err).Code != api.CodeAgentUnreachable {
		t.Errorf("flash on an agent that does not answer at all: %v; want AGENT_UNREACHABLE", err)
	}
}
