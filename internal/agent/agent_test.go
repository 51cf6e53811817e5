package agent

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/libvirtconn"
)

func create(t *testing.T, a *Agent, body string) *agentapi.VM {
	t.Helper()
	vm, err := a.CreateVM(context.Background(), []byte(body))
	if err != nil {
		t.Fatalf("CreateVM: %v", err)
	}
	return vm
}

func TestCreateMarksOwnershipAndDefinesOnce(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	vm := create(t, a, unitVM)
	if vm.State != agentapi.StateDefined || vm.Host != "unit-power8" || vm.Arch != "ppc64le" || !vm.FakeKVM {
		t.Errorf("created VM: %+v", vm)
	}
	x, _ := f.DomainXML(context.Background(), libvirtconn.Domain{UUID: vm.ID}, true)
	o, err := ownerOf(x)
	if err != nil || o.VM != vm.ID || o.Host != "unit-power8" || o.Arch != "ppc64le" {
		t.Fatalf("owner element: %+v, %v", o, err)
	}
	// The same name again: refused, nothing defined.
	_, err = a.CreateVM(context.Background(), []byte(unitVM))
	if e := asAPIError(err); e.Status != http.StatusConflict || e.Code != api.CodeVMExists {
		t.Errorf("duplicate: %+v", e)
	}
	if n := f.defines.Load(); n != 1 {
		t.Errorf("%d defines; want 1", n)
	}
}

func TestCreateRefusals(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"SPICE on POWER", `{"name": "s", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "display": {"type": "spice"}}`, 422, "ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS"},
		{"memory not a multiple of 256", `{"name": "m", "arch": "ppc64le", "memory": {"sizeMiB": 300}}`, 422, "MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC"},
		{"x86_64 VM on a POWER host", `{"name": "x", "arch": "x86_64", "memory": {"sizeMiB": 512}}`, 422, "HOST_CANNOT_RUN_VM_ARCH"},
		{"unknown field", `{"name": "u", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "gpu": true}`, 400, "DEFINITION_UNKNOWN_FIELD"},
		{"not JSON", `{"name": `, 400, "DEFINITION_SYNTAX_ERROR"},
		{"bad uuid", `{"name": "b", "uuid": "not-a-uuid", "arch": "ppc64le", "memory": {"sizeMiB": 512}}`, 422, "VM_UUID_INVALID"},
	}
	for _, c := range cases {
		f := newFakeConn()
		a := newTestAgent(t, f)
		_, err := a.CreateVM(context.Background(), []byte(c.body))
		e := asAPIError(err)
		codes := []string{e.Code}
		for _, v := range e.Details {
			codes = append(codes, v.Code)
		}
		if e.Status != c.status || !contains(codes, c.code) {
			t.Errorf("%s: %d %v; want %d %s", c.name, e.Status, codes, c.status, c.code)
		}
		if f.defines.Load() != 0 {
			t.Errorf("%s: a domain was defined", c.name)
		}
	}
}

func contains(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func TestActionsSayWhenNothingChanges(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	id := create(t, a, unitVM).ID
	steps := []struct {
		action  string
		changed bool
		state   agentapi.VMState
		status  int
		code    string
	}{
		{"shutdown", false, agentapi.StateDefined, 0, ""},
		{"destroy", false, agentapi.StateDefined, 0, ""},
		{"reboot", false, "", 409, api.CodeVMNotRunning},
		{"pause", false, "", 409, api.CodeVMNotRunning},
		{"resume", false, "", 409, api.CodeVMNotPaused},
		{"start", true, agentapi.StateRunning, 0, ""},
		{"start", false, agentapi.StateRunning, 0, ""},
		{"pause", true, agentapi.StatePaused, 0, ""},
		{"pause", false, agentapi.StatePaused, 0, ""},
		{"resume", true, agentapi.StateRunning, 0, ""},
		{"resume", false, agentapi.StateRunning, 0, ""},
		{"reboot", true, agentapi.StateRunning, 0, ""},
		{"fly", false, "", 404, api.CodeUnknownAction},
		{"destroy", true, agentapi.StateDefined, 0, ""},
	}
	for i, s := range steps {
		res, err := a.Act(context.Background(), id, s.action)
		if s.status != 0 {
			e := asAPIError(err)
			if e.Status != s.status || e.Code != s.code {
				t.Errorf("step %d %s: %+v; want %d %s", i, s.action, e, s.status, s.code)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", i, s.action, err)
		}
		if res.Changed != s.changed || res.State != s.state {
			t.Errorf("step %d %s: %+v; want changed=%v state=%s", i, s.action, res, s.changed, s.state)
		}
	}
}

// TestOneVMSerialized: two starts of one VM at once start it once; starts
// of different VMs overlap.
func TestOneVMSerialized(t *testing.T) {
	f := newFakeConn()
	f.delay = 200 * time.Millisecond
	a := newTestAgent(t, f)
	id := create(t, a, unitVM).ID
	other := create(t, a, `{"name": "unit-ppc-2", "arch": "ppc64le", "memory": {"sizeMiB": 512}}`).ID
	var wg sync.WaitGroup
	results := make([]*agentapi.ActionResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := a.Act(context.Background(), id, "start")
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	if f.starts.Load() != 1 || results[0].Changed == results[1].Changed {
		t.Errorf("two starts of one VM: %d libvirt starts, changed %v/%v", f.starts.Load(), results[0].Changed, results[1].Changed)
	}
	// Different VMs: in parallel (well under 2 × delay).
	a.Act(context.Background(), id, "destroy")
	begin := time.Now()
	for _, vm := range []string{id, other} {
		wg.Add(1)
		go func() { defer wg.Done(); a.Act(context.Background(), vm, "start") }()
	}
	wg.Wait()
	if d := time.Since(begin); d > 350*time.Millisecond {
		t.Errorf("starting two VMs took %s; they were serialized", d)
	}
}

func TestLibvirtErrorsMapToCodes(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{libvirtErr(golibvirt.ErrOperationInvalid, "domain is not running"), 409, api.CodeLibvirtInvalidOp},
		{libvirtErr(golibvirt.ErrNoDomain, "no domain"), 404, api.CodeVMNotFound},
		{libvirtErr(golibvirt.ErrConfigUnsupported, "unsupported configuration: spice"), 422, api.CodeLibvirtConfig},
		{libvirtErr(golibvirt.ErrOperationFailed, "qemu died"), 502, api.CodeLibvirtError},
		{errors.New("disk full"), 500, api.CodeInternal},
	}
	for _, c := range cases {
		f := newFakeConn()
		a := newTestAgent(t, f)
		id := create(t, a, unitVM).ID
		f.fail["start"] = c.err
		_, err := a.Act(context.Background(), id, "start")
		e := asAPIError(err)
		if e.Status != c.status || e.Code != c.code {
			t.Errorf("%v: %d %s; want %d %s", c.err, e.Status, e.Code, c.status, c.code)
		}
	}
	// libvirt down: 503 for everything that needs it.
	f := newFakeConn()
	a := newTestAgent(t, f)
	a.conn.dial = func(string, time.Duration) (libvirtconn.AgentConn, error) {
		return nil, errors.New("dial unix /var/run/libvirt/libvirt-sock: connection refused")
	}
	_, err := a.ListVMs(context.Background())
	if e := asAPIError(err); e.Status != 503 || e.Code != api.CodeLibvirtUnavailable {
		t.Errorf("libvirt down: %+v", e)
	}
}

// TestRecoveryTakesOnlyOwnDomains: after a restart the index holds the
// domains marked with this host id, whatever their state, and nothing else.
func TestRecoveryTakesOnlyOwnDomains(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	mine := create(t, a, unitVM)
	a.Act(context.Background(), mine.ID, "start")
	f.addForeign("hand-made", "11111111-2222-4333-8444-555555555555", "")
	f.addForeign("neighbour", "66666666-7777-4888-8999-000000000000", "another-host")

	// A copy of our VM's XML defined by hand under another UUID carries our
	// owner element: still not one of ours.
	x, _ := f.DomainXML(context.Background(), libvirtconn.Domain{UUID: mine.ID}, true)
	copyUUID := "99999999-8888-4777-8666-555555555555"
	f.doms[copyUUID] = &fakeDomain{d: libvirtconn.Domain{Name: "copy", UUID: copyUUID}, xml: x, state: libvirtconn.StateRunning}

	restarted := newTestAgent(t, f)
	if err := restarted.recover(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	vms, err := restarted.ListVMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 1 || vms[0].ID != mine.ID || vms[0].State != agentapi.StateRunning {
		t.Fatalf("recovered %+v; want only %s, running", vms, mine.ID)
	}
	for _, id := range []string{"11111111-2222-4333-8444-555555555555", "66666666-7777-4888-8999-000000000000", copyUUID} {
		if _, err := restarted.Act(context.Background(), id, "destroy"); asAPIError(err).Code != api.CodeVMNotFound {
			t.Errorf("acted on a foreign domain %s: %v", id, err)
		}
	}
	if f.defines.Load() != 1 {
		t.Errorf("recovery defined domains: %d defines", f.defines.Load())
	}
}

// TestRecoveryLeavesAnotherPrefixsDomains: two agents of the same host
// name on one libvirtd, with different domain prefixes (two labs of
// polyvirt up, each with its power8-a), each takes only its own domains.
func TestRecoveryLeavesAnotherPrefixsDomains(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	a.cfg.DomainPrefix = "lab-one-power8-a-"
	mine := create(t, a, unitVM)

	other := newTestAgent(t, f)
	other.cfg.DomainPrefix = "lab-two-power8-a-"
	if err := other.recover(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	vms, err := other.ListVMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 0 {
		t.Errorf("the agent of prefix %s took %+v", other.cfg.DomainPrefix, vms)
	}
	if _, err := other.Act(context.Background(), mine.ID, "destroy"); err == nil || asAPIError(err).Code != api.CodeVMNotFound {
		t.Errorf("acted on the other prefix's domain: %v", err)
	}

	same := newTestAgent(t, f)
	same.cfg.DomainPrefix = a.cfg.DomainPrefix
	if err := same.recover(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if vms, err := same.ListVMs(context.Background()); err != nil || len(vms) != 1 || vms[0].ID != mine.ID {
		t.Errorf("the agent of the domain's own prefix recovered %+v (%v); want %s", vms, err, mine.ID)
	}
}

func TestEventsOnlyForOwnDomains(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	vm := create(t, a, unitVM)
	f.addForeign("neighbour", "66666666-7777-4888-8999-000000000000", "another-host")
	sub, cancel := a.hub.subscribe()
	defer cancel()
	ch := make(chan libvirtconn.LifecycleEvent, 4)
	ch <- libvirtconn.LifecycleEvent{Domain: libvirtconn.Domain{Name: "neighbour", UUID: "66666666-7777-4888-8999-000000000000"}, Event: libvirtconn.EventStarted}
	ch <- libvirtconn.LifecycleEvent{Domain: libvirtconn.Domain{Name: vm.Name, UUID: vm.ID}, Event: libvirtconn.EventStarted, Detail: 0}
	close(ch)
	a.pumpEvents(context.Background(), f, ch)
	var got []agentapi.Event
	for len(sub) > 0 {
		got = append(got, <-sub)
	}
	if len(got) != 1 || got[0].VM != vm.ID || got[0].Event != "started" || got[0].Detail != "booted" || got[0].Host != "unit-power8" {
		t.Errorf("events %+v; want one started/booted of %s", got, vm.ID)
	}
}

func TestScreenshotConvertsPPM(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	id := create(t, a, unitVM).ID
	if _, err := a.Screenshot(context.Background(), id); asAPIError(err).Code != api.CodeVMNotRunning {
		t.Errorf("screenshot of a stopped VM: %v", err)
	}
	a.Act(context.Background(), id, "start")
	png, err := a.Screenshot(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	img, err := decodePNG(png)
	if err != nil || img.Bounds().Dx() != 2 {
		t.Fatalf("PNG: %v %v", img, err)
	}
	r, _, b, _ := img.At(0, 0).RGBA()
	r2, _, b2, _ := img.At(1, 0).RGBA()
	if diff := cmp.Diff([]uint32{0xffff, 0, 0, 0xffff}, []uint32{r, b, r2, b2}); diff != "" {
		t.Errorf("pixels (-want +got):\n%s", diff)
	}
}

func TestDeleteNeedsAStoppedVMOrForce(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	id := create(t, a, unitVM).ID
	a.Act(context.Background(), id, "start")
	if err := a.DeleteVM(context.Background(), id, false); asAPIError(err).Code != api.CodeVMRunning {
		t.Errorf("delete running: %v", err)
	}
	if err := a.DeleteVM(context.Background(), id, true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetVM(context.Background(), id); asAPIError(err).Code != api.CodeVMNotFound {
		t.Errorf("after delete: %v", err)
	}
	if len(f.doms) != 0 {
		t.Errorf("domains left: %d", len(f.doms))
	}
}

// TestDomainPrefixLetsTwoAgentsRunOneVM: with domain prefixes, two agents on
// one libvirtd define the same VM (same id and name) without clashing, each
// seeing only its own domain (an HA restart in a lab).
func TestDomainPrefixLetsTwoAgentsRunOneVM(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	b := newTestAgent(t, f)
	a.cfg.HostID, a.cfg.DomainPrefix = "power8-a", "power8-a-"
	b.cfg.HostID, b.cfg.DomainPrefix = "power8-b", "power8-b-"
	def := `{"name": "ha-vm", "uuid": "0f0e0d0c-0b0a-4908-8706-050403020100", "arch": "ppc64le", "memory": {"sizeMiB": 512}}`
	va := create(t, a, def)
	vb := create(t, b, def)
	if va.ID != vb.ID || va.Name != "ha-vm" || vb.Name != "ha-vm" {
		t.Fatalf("VMs %+v / %+v", va, vb)
	}
	names := map[string]bool{}
	uuids := map[string]bool{}
	for _, d := range f.doms {
		names[d.d.Name], uuids[d.d.UUID] = true, true
	}
	if !names["power8-a-ha-vm"] || !names["power8-b-ha-vm"] || len(uuids) != 2 || uuids[va.ID] {
		t.Errorf("domains %v %v; want two prefixed names and two derived UUIDs", names, uuids)
	}
	for _, ag := range []*Agent{a, b} {
		restarted := newTestAgent(t, f)
		restarted.cfg = ag.cfg
		if err := restarted.recover(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		vms, _ := restarted.ListVMs(context.Background())
		if len(vms) != 1 || vms[0].ID != va.ID || vms[0].Name != "ha-vm" || vms[0].Host != ag.cfg.HostID {
			t.Errorf("%s recovers %+v", ag.cfg.HostID, vms)
		}
	}
}
