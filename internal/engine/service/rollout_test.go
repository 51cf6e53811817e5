package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/pki"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// fwHost is one fake POWER host's simulated firmware, as its agent shows
// it: the two sides, the operation, a flash that reboots the host.
type fwHost struct {
	temp, perm string
	op         *agentapi.FirmwareOperation
	// downFor is how many more status reads find the host away after a
	// flash; neverBack keeps it away.
	downFor   int
	neverBack bool
	// refuse makes the validation fail with that code; bootLevel is the
	// level the host comes back on (default: the image's); flags are its
	// CPU flags after the reboot (default POWER8); libvirtDown breaks
	// the agent's domain list.
	refuse      string
	bootLevel   string
	flagsAfter  []string
	libvirtDown bool
	// probeFails makes the probe guest fail; probes counts them.
	probeFails bool
	probes     int
	flashes    int
	rebooted   bool
}

// fakeFirmwareAgents is Agents over fake POWER hosts whose firmware is
// simulated (keyed by address).
type fakeFirmwareAgents struct {
	mu    sync.Mutex
	hosts map[string]*fwHost
	image string // the level of the image uploaded
	names map[string]string
	// hook, when set, is called after each firmware call, evacuation and
	// activation (method, host name): a test stops the engine there.
	hook func(method, host string)
}

func (f *fakeFirmwareAgents) called(method string, h store.Host) {
	if f.hook != nil {
		f.hook(method, h.Name)
	}
}

func (f *fakeFirmwareAgents) host(h store.Host) *fwHost {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hosts[h.Address]
}

func unreachable(h store.Host) error {
	return &AgentError{Host: h.Name, Msg: "connection refused"}
}

func (f *fakeFirmwareAgents) Pin(addr, fingerprint string) {}
func (f *fakeFirmwareAgents) Unpin(addr string)            {}
func (f *fakeFirmwareAgents) Capabilities(ctx context.Context, addr, etag string) ([]byte, string, bool, error) {
	defer f.called("capabilities", store.Host{Name: f.names[addr]})
	f.mu.Lock()
	defer f.mu.Unlock()
	fh := f.hosts[addr]
	r := hostreport.Report{Arch: arch.PPC64LE, EffectiveArch: arch.PPC64LE}
	r.CPU.Flags = []string{"powernv", "model_POWER8"}
	if fh.rebooted && fh.flagsAfter != nil {
		r.CPU.Flags = fh.flagsAfter
	}
	r.Virt.EmulatedMachines = []string{"pseries", "pseries-7.2"}
	b, _ := json.Marshal(r)
	return b, "", false, nil
}
func (f *fakeFirmwareAgents) Stats(ctx context.Context, addr string) ([]byte, error) {
	return nil, fmt.Errorf("no stats")
}
func (f *fakeFirmwareAgents) ListVMs(ctx context.Context, h store.Host) ([]agentapi.VM, error) {
	if f.host(h).libvirtDown {
		return nil, &AgentError{Host: h.Name, Status: 502, Code: api.CodeLibvirtUnavailable, Msg: "libvirt does not answer"}
	}
	return []agentapi.VM{}, nil
}
func (f *fakeFirmwareAgents) ProbeGuest(ctx context.Context, h store.Host) (agentapi.ProbeResult, error) {
	defer f.called("probe", h)
	fh := f.host(h)
	f.mu.Lock()
	defer f.mu.Unlock()
	fh.probes++
	if fh.probeFails {
		return agentapi.ProbeResult{}, &AgentError{Host: h.Name, Status: 502, Code: api.CodeProbeGuestFailed, Msg: "libvirt did not start the probe guest: qemu unexpectedly closed the monitor"}
	}
	return agentapi.ProbeResult{Arch: "ppc64le", Machine: "pseries-7.2", Firmware: "slof", MemoryMiB: 256, Domain: "polyvirt-probe-1"}, nil
}
func (f *fakeFirmwareAgents) GetVM(ctx context.Context, h store.Host, id string) (agentapi.VM, error) {
	return agentapi.VM{}, fmt.Errorf("no VM")
}
func (f *fakeFirmwareAgents) CreateVM(ctx context.Context, h store.Host, definition []byte) (agentapi.VM, error) {
	return agentapi.VM{}, fmt.Errorf("no VM")
}
func (f *fakeFirmwareAgents) DeleteVM(ctx context.Context, h store.Host, id string, force bool) error {
	return fmt.Errorf("no VM")
}
func (f *fakeFirmwareAgents) Act(ctx context.Context, h store.Host, id, action string, shutdown *agentapi.ShutdownRequest) (agentapi.ActionResult, error) {
	return agentapi.ActionResult{}, fmt.Errorf("no VM")
}
func (f *fakeFirmwareAgents) Screenshot(ctx context.Context, h store.Host, id string) ([]byte, error) {
	return nil, fmt.Errorf("no VM")
}
func (f *fakeFirmwareAgents) Events(ctx context.Context, h store.Host, _ time.Duration, _ func([]byte)) (EventStream, error) {
	return nil, ErrNoEvents
}

func (f *fakeFirmwareAgents) FirmwareStatus(ctx context.Context, h store.Host) (agentapi.FirmwareStatus, error) {
	defer f.called("status", h)
	f.mu.Lock()
	defer f.mu.Unlock()
	fh := f.hosts[h.Address]
	if fh.op != nil && fh.op.State == agentapi.FirmwareStateRebooting {
		if fh.neverBack || fh.downFor > 0 {
			fh.downFor--
			return agentapi.FirmwareStatus{}, unreachable(h)
		}
		// Back from the reboot on the level the flash left.
		lvl := fh.bootLevel
		if lvl == "" {
			lvl = fh.op.Projection.NewT
		}
		fh.perm, fh.temp, fh.rebooted = fh.temp, lvl, true
		sf := agentapi.SystemFirmware{Temporary: agentapi.FirmwareLevel{Name: fh.temp}, Permanent: agentapi.FirmwareLevel{Name: fh.perm},
			Booted: agentapi.FirmwareLevel{Name: fh.temp}, BootedSide: agentapi.FirmwareSideTemporary}
		fh.op.Booted = &sf
		fh.op.State = agentapi.FirmwareStateAwaitingDecision
	}
	out := agentapi.FirmwareStatus{Supported: true}
	if fh.op != nil {
		op := *fh.op
		out.Operation = &op
	}
	return out, nil
}

func (f *fakeFirmwareAgents) FirmwareUpload(ctx context.Context, h store.Host, name, user string, image io.Reader) (agentapi.FirmwareOperation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fh := f.hosts[h.Address]
	if fh.op != nil && !fh.op.State.Terminal() {
		return agentapi.FirmwareOperation{}, &api.Error{Code: api.CodeFirmwareOperationActive, Message: "another update is in progress"}
	}
	fh.op = &agentapi.FirmwareOperation{ID: "fw-" + h.Name + "-" + fmt.Sprint(time.Now().UnixNano()), State: agentapi.FirmwareStateUploaded,
		Image: &agentapi.FirmwareImage{FileName: name, Level: f.image}, Steps: []agentapi.FirmwareStep{}}
	return *fh.op, nil
}

func (f *fakeFirmwareAgents) FirmwareStep(ctx context.Context, h store.Host, step, user string, req agentapi.FirmwareStepRequest) (agentapi.FirmwareOperation, bool, error) {
	defer f.called(step, h)
	f.mu.Lock()
	defer f.mu.Unlock()
	fh := f.hosts[h.Address]
	if fh.op == nil {
		return agentapi.FirmwareOperation{}, false, &api.Error{Code: api.CodeFirmwareNoOperation, Message: "no operation"}
	}
	op := fh.op
	wrong := func() (agentapi.FirmwareOperation, bool, error) {
		return *op, false, &api.Error{Code: api.CodeFirmwareWrongState, Message: step + " in state " + string(op.State)}
	}
	switch step {
	case "validate":
		if op.State != agentapi.FirmwareStateUploaded {
			return wrong()
		}
		if fh.refuse != "" {
			op.State = agentapi.FirmwareStateFailed
			op.Failure = &agentapi.FirmwareFailure{Step: "validate", Code: fh.refuse, Message: "update_flash -v: the image is for machine type 8286-42A, this host is 8247-22L"}
			return *op, true, nil
		}
		sf := agentapi.SystemFirmware{Temporary: agentapi.FirmwareLevel{Name: fh.temp}, Permanent: agentapi.FirmwareLevel{Name: fh.perm}}
		op.Before = &sf
		op.Projection = &agentapi.FirmwareProjection{CurrentT: fh.temp, CurrentP: fh.perm, NewT: f.image, NewP: fh.temp}
		op.State = agentapi.FirmwareStateValidated
	case "flash":
		if op.State != agentapi.FirmwareStateValidated {
			return wrong()
		}
		if !req.Maintenance {
			return *op, false, &api.Error{Code: api.CodeHostNotInMaintenance, Message: "not in maintenance"}
		}
		fh.flashes++
		op.State = agentapi.FirmwareStateRebooting
		if fh.downFor > 0 || fh.neverBack {
			return agentapi.FirmwareOperation{}, false, io.ErrUnexpectedEOF
		}
	case "commit":
		if op.State != agentapi.FirmwareStateAwaitingDecision {
			return wrong()
		}
		fh.perm = fh.temp
		op.State = agentapi.FirmwareStateCommitted
	case "reject":
		if op.State != agentapi.FirmwareStateAwaitingDecision {
			return wrong()
		}
		fh.temp = fh.perm
		op.After = &agentapi.SystemFirmware{Temporary: agentapi.FirmwareLevel{Name: fh.temp}, Permanent: agentapi.FirmwareLevel{Name: fh.perm}}
		op.State = agentapi.FirmwareStateRejected
	case "cancel":
		op.State = agentapi.FirmwareStateCancelled
	default:
		return wrong()
	}
	return *op, true, nil
}

// upMaintainer is the engine's maintenance, with the admission the
// monitor would run after an activation done at once (Up).
type upMaintainer struct {
	e *engine
	f *fakeFirmwareAgents
}

func (m upMaintainer) evacuation(ctx context.Context, h store.Host, since time.Time, reason string) (bool, error) {
	defer m.f.called("evacuate", h)
	return engineMaintainer{m.e}.evacuation(ctx, h, since, reason)
}

func (m upMaintainer) activate(ctx context.Context, h store.Host, reason string) error {
	defer m.f.called("activate", h)
	if err := (engineMaintainer{m.e}).activate(ctx, h, reason); err != nil {
		return err
	}
	_, err := m.e.mutateHost(ctx, h.ID, func(tx store.Tx, cur *store.Host) (bool, error) {
		cur.Status = store.HostUp
		return true, nil
	})
	return err
}

// rolloutLab is a POWER8 cluster of fake hosts with simulated firmware,
// and the services over one SQLite database.
type rolloutLab struct {
	st     store.Store
	agents *fakeFirmwareAgents
	ca     *pki.CA
	svc    *Services
	hosts  []store.Host
	c      store.Cluster
}

func newRolloutLab(t *testing.T, n int) *rolloutLab { return newRolloutLabB(t, n) }

func newRolloutLabB(t testing.TB, n int) *rolloutLab {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "engine.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := pki.NewCA("rollout test")
	if err != nil {
		t.Fatal(err)
	}
	l := &rolloutLab{st: st, ca: ca, agents: &fakeFirmwareAgents{hosts: map[string]*fwHost{}, names: map[string]string{}, image: "SV810_133"}}
	l.c = store.Cluster{Name: "power", Arch: arch.PPC64, CPUType: "IBM POWER8", EmulatedMachine: "pseries-7.2"}
	if err := st.CreateCluster(ctx, &l.c); err != nil {
		t.Fatal(err)
	}
	rep := hostreport.Report{Arch: arch.PPC64LE, EffectiveArch: arch.PPC64LE, MemoryMiB: 8192}
	rep.CPU.OnlineCPUs = make([]int, 8)
	doc, _ := json.Marshal(rep)
	for i := range n {
		h := store.Host{Capabilities: doc, CapabilitiesHash: "h", Name: fmt.Sprintf("power8-%c", 'a'+i), Address: fmt.Sprintf("10.0.0.%d:7443", i+1), ClusterID: l.c.ID,
			Status: store.HostUp, Arch: arch.PPC64LE, CPUType: "IBM POWER8", CPULevel: 1, CPUFlags: []string{"powernv", "model_POWER8"},
			EmulatedMachines: []string{"pseries-7.2"}, CertFingerprint: fmt.Sprintf("fp%d", i)}
		if err := st.CreateHost(ctx, &h); err != nil {
			t.Fatal(err)
		}
		l.hosts = append(l.hosts, h)
		l.agents.hosts[h.Address] = &fwHost{temp: "SV810_081", perm: "SV810_081"}
		l.agents.names[h.Address] = h.Name
	}
	l.restart()
	return l
}

// restart makes new services over the same database and agents: an engine
// started again.
func (l *rolloutLab) restart() {
	l.svc = New(Config{Store: l.st, Agents: l.agents, CA: l.ca, Name: "test", Log: slog.New(slog.DiscardHandler)})
	l.svc.e.maint = upMaintainer{l.svc.e, l.agents}
}

func (l *rolloutLab) fw(i int) *fwHost { return l.agents.hosts[l.hosts[i].Address] }

func adminCtx() context.Context {
	return WithCaller(context.Background(), &store.User{Name: "alice", Role: store.RoleAdmin})
}

func (l *rolloutLab) start(t *testing.T, req engineapi.RolloutRequest) (engineapi.Rollout, error) {
	t.Helper()
	req.ImageName = "01SV810_133_081.rpm"
	return l.svc.Rollouts.Start(adminCtx(), "power", RolloutStart{RolloutRequest: req, Image: strings.NewReader("image")})
}

// run drives the worker's rounds until the rollout ended or until stop
// says so; it returns the rollout.
func (l *rolloutLab) run(t *testing.T, stop func(engineapi.Rollout) bool) engineapi.Rollout {
	t.Helper()
	for range 500 {
		l.svc.e.rolloutRound(context.Background())
		r, err := l.svc.Rollouts.Status(adminCtx(), "power")
		if err != nil {
			t.Fatal(err)
		}
		switch r.State {
		case engineapi.RolloutSucceeded, engineapi.RolloutFailed, engineapi.RolloutAborted:
			return r
		}
		if stop != nil && stop(r) {
			return r
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the rollout did not end in 500 rounds")
	return engineapi.Rollout{}
}

// outcome is a rollout's summary: its state and code, each host's phase,
// code, rejection and level.
func outcome(r engineapi.Rollout) []string {
	out := []string{r.State + " " + r.Code}
	for _, h := range r.Hosts {
		out = append(out, fmt.Sprintf("%s %s %s rejected=%v level=%s", h.Host, h.Phase, h.Code, h.Rejected, h.Level))
	}
	return out
}

func TestRolloutUpdatesHostsOneAfterTheOther(t *testing.T) {
	l := newRolloutLab(t, 2)
	r, err := l.start(t, engineapi.RolloutRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != engineapi.RolloutRunning || r.MaxUnavailable != 1 || r.Commit != "auto" {
		t.Fatalf("started: %+v", r)
	}
	// Never two hosts out at once (max-unavailable 1).
	r = l.run(t, func(r engineapi.Rollout) bool {
		n := 0
		for _, h := range r.Hosts {
			if inFlight(h.Phase) {
				n++
			}
		}
		if n > 1 {
			t.Errorf("%d hosts out at once: %v", n, outcome(r))
		}
		return false
	})
	want := []string{"succeeded ", "power8-a done  rejected=false level=SV810_133", "power8-b done  rejected=false level=SV810_133"}
	if d := cmp.Diff(want, outcome(r)); d != "" {
		t.Errorf("outcome (-want +got):\n%s", d)
	}
	for i := range 2 {
		fh := l.fw(i)
		if fh.flashes != 1 || fh.temp != "SV810_133" || fh.perm != "SV810_133" {
			t.Errorf("host %d: flashed %d times, temporary %s, permanent %s; want once, committed SV810_133", i, fh.flashes, fh.temp, fh.perm)
		}
		if fh.probes != 1 {
			t.Errorf("host %d: %d probe guests, want one (its health check)", i, fh.probes)
		}
		h, _ := l.st.GetHost(context.Background(), l.hosts[i].ID)
		if h.Status != store.HostUp {
			t.Errorf("host %s is %s after the rollout, not Up", h.Name, h.Status)
		}
	}
	a, b := r.Hosts[0], r.Hosts[1]
	if !a.Finished.After(time.Time{}) || b.Started.Before(a.Finished) {
		t.Errorf("power8-b started at %s before power8-a finished at %s", b.Started, a.Finished)
	}
	// The audit log: the start, each host's phases, the summary.
	page, err := l.st.ListEvents(context.Background(), store.EventFilter{CorrelationID: r.ID, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i := len(page.Events) - 1; i >= 0; i-- {
		actions = append(actions, page.Events[i].Action)
	}
	host := []string{"rollout.evacuating", "rollout.flashing", "rollout.rebooting", "rollout.checking", "rollout.soaking", "rollout.committing", "rollout.activating", "rollout.done"}
	wantActions := append(append(append([]string{"rollout.start"}, host...), host...), "rollout.end")
	if d := cmp.Diff(wantActions, actions); d != "" {
		t.Errorf("audit log (-want +got):\n%s", d)
	}
	last := page.Events[0]
	if !strings.Contains(last.Message, "power8-a done SV810_081 → SV810_133") || !strings.Contains(last.Message, "power8-b done SV810_081 → SV810_133") {
		t.Errorf("summary: %s", last.Message)
	}
}

func TestRolloutStops(t *testing.T) {
	tests := []struct {
		name  string
		setup func(l *rolloutLab)
		want  []string
		// rejected: the failed host is back on its old level.
		rejected bool
	}{
		{name: "host not back within its reboot time-out",
			setup: func(l *rolloutLab) { l.fw(0).neverBack = true; RolloutRebootTimeout = 50 * time.Millisecond },
			want:  []string{"failed FIRMWARE_HOST_NOT_BACK", "power8-a failed FIRMWARE_HOST_NOT_BACK rejected=false level=", "power8-b skipped  rejected=false level="}},
		{name: "level not the new one",
			setup:    func(l *rolloutLab) { l.fw(0).bootLevel = "SV810_081" },
			want:     []string{"failed FIRMWARE_LEVEL_NOT_NEW", "power8-a failed FIRMWARE_LEVEL_NOT_NEW rejected=true level=SV810_081", "power8-b skipped  rejected=false level="},
			rejected: true},
		{name: "CPU type changed",
			setup:    func(l *rolloutLab) { l.fw(0).flagsAfter = []string{"powernv", "model_POWER9"} },
			want:     []string{"failed FIRMWARE_CPU_TYPE_CHANGED", "power8-a failed FIRMWARE_CPU_TYPE_CHANGED rejected=true level=SV810_081", "power8-b skipped  rejected=false level="},
			rejected: true},
		{name: "libvirt probe failed",
			setup:    func(l *rolloutLab) { l.fw(0).libvirtDown = true },
			want:     []string{"failed FIRMWARE_HEALTH_CHECK_FAILED", "power8-a failed FIRMWARE_HEALTH_CHECK_FAILED rejected=true level=SV810_081", "power8-b skipped  rejected=false level="},
			rejected: true},
		{name: "probe guest does not run",
			setup:    func(l *rolloutLab) { l.fw(0).probeFails = true },
			want:     []string{"failed PROBE_GUEST_FAILED", "power8-a failed PROBE_GUEST_FAILED rejected=true level=SV810_081", "power8-b skipped  rejected=false level="},
			rejected: true},
		{name: "second host fails, the first stays updated",
			setup:    func(l *rolloutLab) { l.fw(1).bootLevel = "SV810_081" },
			want:     []string{"failed FIRMWARE_LEVEL_NOT_NEW", "power8-a done  rejected=false level=SV810_133", "power8-b failed FIRMWARE_LEVEL_NOT_NEW rejected=true level=SV810_081"},
			rejected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(d time.Duration) { RolloutRebootTimeout = d }(RolloutRebootTimeout)
			l := newRolloutLab(t, 2)
			tt.setup(l)
			if _, err := l.start(t, engineapi.RolloutRequest{}); err != nil {
				t.Fatal(err)
			}
			r := l.run(t, nil)
			if d := cmp.Diff(tt.want, outcome(r)); d != "" {
				t.Fatalf("outcome (-want +got):\n%s", d)
			}
			failed := 0
			if r.Hosts[0].Phase == engineapi.RolloutHostDone {
				failed = 1
			}
			fh := l.fw(failed)
			if tt.rejected && (fh.temp != "SV810_081" || fh.op.State != agentapi.FirmwareStateRejected) {
				t.Errorf("the failed host is on %s, its operation %s: want rejected back to SV810_081", fh.temp, fh.op.State)
			}
			h, _ := l.st.GetHost(context.Background(), l.hosts[failed].ID)
			if h.Status != store.HostMaintenance || h.StatusCode != r.Hosts[failed].Code || !strings.Contains(h.StatusMessage, r.Hosts[failed].Message) {
				t.Errorf("the failed host is %s (%s: %s), not in Maintenance with the reason", h.Status, h.StatusCode, h.StatusMessage)
			}
			if failed == 0 {
				// Not flashed; the image uploaded for the rollout is
				// cancelled (the next update may upload there).
				if other := l.fw(1); other.flashes != 0 || other.op.State != agentapi.FirmwareStateCancelled || other.temp != "SV810_081" {
					t.Errorf("the other host was touched: %d flashes, operation %s, temporary %s", other.flashes, other.op.State, other.temp)
				}
				h, _ := l.st.GetHost(context.Background(), l.hosts[1].ID)
				if h.Status != store.HostUp {
					t.Errorf("the other host is %s, not Up", h.Status)
				}
			}
			if !strings.Contains(r.Message, r.Hosts[failed].Host) || r.Hosts[failed].Message == "" {
				t.Errorf("the reason does not name the host: %q / %q", r.Message, r.Hosts[failed].Message)
			}
		})
	}
}

func TestRolloutValidationRefused(t *testing.T) {
	l := newRolloutLab(t, 3)
	l.fw(1).refuse = api.CodeFirmwareImageWrongMachine
	_, err := l.start(t, engineapi.RolloutRequest{})
	ae := asAPIError(err)
	if ae == nil || ae.Code != api.CodeRolloutValidation || len(ae.Details) != 1 ||
		ae.Details[0].Code != api.CodeFirmwareImageWrongMachine || !strings.Contains(ae.Details[0].Message, "power8-b") {
		t.Fatalf("start: %v; want ROLLOUT_VALIDATION_FAILED naming power8-b with its reason", err)
	}
	for i := range 3 {
		fh := l.fw(i)
		if fh.flashes != 0 {
			t.Errorf("host %d was flashed", i)
		}
		if i != 1 && fh.op.State != agentapi.FirmwareStateCancelled {
			t.Errorf("host %d: its upload is %s, want cancelled", i, fh.op.State)
		}
	}
	if list, _ := l.st.ListRollouts(context.Background(), store.RolloutFilter{}); len(list) != 0 {
		t.Errorf("a refused rollout was recorded: %v", list)
	}
	// --hosts leaving it out: the rollout starts and updates the others.
	l.fw(0).op, l.fw(2).op = nil, nil
	r, err := l.start(t, engineapi.RolloutRequest{Hosts: []string{"power8-a", "power8-c"}})
	if err != nil {
		t.Fatal(err)
	}
	r = l.run(t, nil)
	want := []string{"succeeded ", "power8-a done  rejected=false level=SV810_133", "power8-c done  rejected=false level=SV810_133"}
	if d := cmp.Diff(want, outcome(r)); d != "" {
		t.Errorf("outcome (-want +got):\n%s", d)
	}
	// An image older than (or the same as) the running level is refused.
	_, err = l.start(t, engineapi.RolloutRequest{Hosts: []string{"power8-a"}})
	if ae := asAPIError(err); ae == nil || ae.Code != api.CodeRolloutValidation || !strings.Contains(ae.Message, "runs SV810_133 already") {
		t.Errorf("the same level again: %v", err)
	}
}

func TestRolloutRequestChecks(t *testing.T) {
	tests := []struct {
		req   engineapi.RolloutRequest
		field string
	}{
		{engineapi.RolloutRequest{ImageName: ""}, "name"},
		{engineapi.RolloutRequest{ImageName: "x.img", MaxUnavailable: -1}, "maxUnavailable"},
		{engineapi.RolloutRequest{ImageName: "x.img", Commit: "later"}, "commit"},
		{engineapi.RolloutRequest{ImageName: "x.img", Soak: "ten minutes"}, "soak"},
		{engineapi.RolloutRequest{ImageName: "x.img", Soak: "-1m"}, "soak"},
	}
	for _, tt := range tests {
		_, err := checkRolloutRequest(&tt.req)
		ae := asAPIError(err)
		if ae == nil || ae.Field != tt.field {
			t.Errorf("%+v: %v; want an error on %s", tt.req, err, tt.field)
		}
	}
	req := engineapi.RolloutRequest{ImageName: "x.img", Soak: "90s"}
	soak, err := checkRolloutRequest(&req)
	if err != nil || soak != 90*time.Second || req.MaxUnavailable != 1 || req.Commit != "auto" {
		t.Errorf("defaults: %v %v %+v", soak, err, req)
	}
}

func TestOlderLevel(t *testing.T) {
	tests := []struct {
		to, from string
		older    bool
	}{
		{"SV810_133", "SV810_081", false},
		{"SV810_081", "SV810_133", true},
		{"SV810_133", "SV810_133", true},
		{"SV860_082", "SV810_133", false},
		{"", "SV810_133", false},
		{"FW860.20", "SV810_133", false},
	}
	for _, tt := range tests {
		if got, _ := olderLevel(tt.to, tt.from); got != tt.older {
			t.Errorf("olderLevel(%q, %q) = %v, want %v", tt.to, tt.from, got, tt.older)
		}
	}
}

func TestRolloutPauseResumeAbort(t *testing.T) {
	l := newRolloutLab(t, 3)
	l.fw(0).downFor, l.fw(1).downFor = 2, 2
	if _, err := l.start(t, engineapi.RolloutRequest{}); err != nil {
		t.Fatal(err)
	}
	// Paused while power8-a is on its way: it finishes, nothing else starts.
	r := l.run(t, func(r engineapi.Rollout) bool { return r.Hosts[0].Phase == engineapi.RolloutHostRebooting })
	if _, err := l.svc.Rollouts.Control(adminCtx(), "power", "pause", engineapi.RolloutAction{Reason: "night"}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		l.svc.e.rolloutRound(context.Background())
	}
	r, _ = l.svc.Rollouts.Status(adminCtx(), "power")
	want := []string{"paused ", "power8-a done  rejected=false level=SV810_133", "power8-b pending  rejected=false level=", "power8-c pending  rejected=false level="}
	if d := cmp.Diff(want, outcome(r)); d != "" || r.Waiting != "paused by alice" {
		t.Fatalf("paused (-want +got):\n%s\nwaiting %q", d, r.Waiting)
	}
	if _, err := l.svc.Rollouts.Control(adminCtx(), "power", "resume", engineapi.RolloutAction{}); err != nil {
		t.Fatal(err)
	}
	// Aborted while power8-b reboots on its new level: its update is
	// rejected once it is back, power8-c is not touched.
	r = l.run(t, func(r engineapi.Rollout) bool { return r.Hosts[1].Phase == engineapi.RolloutHostRebooting })
	if _, err := l.svc.Rollouts.Control(adminCtx(), "power", "abort", engineapi.RolloutAction{Reason: "bad batch"}); err != nil {
		t.Fatal(err)
	}
	r = l.run(t, nil)
	want = []string{"aborted ROLLOUT_ABORTED", "power8-a done  rejected=false level=SV810_133", "power8-b skipped ROLLOUT_ABORTED rejected=true level=SV810_081", "power8-c skipped  rejected=false level="}
	if d := cmp.Diff(want, outcome(r)); d != "" {
		t.Errorf("aborted (-want +got):\n%s", d)
	}
	if r.AbortedBy != "alice" || !strings.Contains(r.Message, "bad batch") {
		t.Errorf("aborted by %q: %q", r.AbortedBy, r.Message)
	}
	if l.fw(2).op.State != agentapi.FirmwareStateCancelled {
		t.Errorf("power8-c, never started: its upload is %s, want cancelled", l.fw(2).op.State)
	}
	if l.fw(1).temp != "SV810_081" || l.fw(2).flashes != 0 {
		t.Errorf("power8-b on %s, power8-c flashed %d times", l.fw(1).temp, l.fw(2).flashes)
	}
	if _, err := l.svc.Rollouts.Control(adminCtx(), "power", "resume", engineapi.RolloutAction{}); asAPIError(err).Code != api.CodeRolloutWrongState {
		t.Errorf("resume of an ended rollout: %v", err)
	}
	// Another rollout may start now; a second one at once may not.
	l.fw(2).op = nil
	l.fw(1).op, l.fw(0).op = nil, nil
	if _, err := l.start(t, engineapi.RolloutRequest{Hosts: []string{"power8-c"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.start(t, engineapi.RolloutRequest{Hosts: []string{"power8-b"}}); asAPIError(err).Code != api.CodeRolloutActive {
		t.Errorf("a second rollout: %v", err)
	}
}

func TestRolloutManualCommit(t *testing.T) {
	l := newRolloutLab(t, 1)
	if _, err := l.start(t, engineapi.RolloutRequest{Commit: "manual"}); err != nil {
		t.Fatal(err)
	}
	r := l.run(t, func(r engineapi.Rollout) bool { return r.Hosts[0].Phase == engineapi.RolloutHostAwaitingCommit })
	for range 5 {
		l.svc.e.rolloutRound(context.Background())
	}
	if r, _ = l.svc.Rollouts.Status(adminCtx(), "power"); r.Hosts[0].Phase != engineapi.RolloutHostAwaitingCommit || l.fw(0).perm != "SV810_081" {
		t.Fatalf("without the operator: %v, permanent %s", outcome(r), l.fw(0).perm)
	}
	if _, err := l.svc.Firmware.Step(adminCtx(), "power8-a", "commit", engineapi.FirmwareStepRequest{}); err != nil {
		t.Fatal(err)
	}
	r = l.run(t, nil)
	if d := cmp.Diff([]string{"succeeded ", "power8-a done  rejected=false level=SV810_133"}, outcome(r)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestRolloutEngineRestart: an engine stopped right after any action of
// a rollout, before it recorded it (its context ends there: its writes
// fail), is resumed by the next engine: every host flashed exactly once,
// none skipped.
func TestRolloutEngineRestart(t *testing.T) {
	for _, at := range []string{"evacuate", "flash", "status", "capabilities", "probe", "commit", "activate"} {
		t.Run(at, func(t *testing.T) {
			l := newRolloutLab(t, 2)
			l.fw(0).downFor = 2
			if _, err := l.start(t, engineapi.RolloutRequest{}); err != nil {
				t.Fatal(err)
			}
			ctx, kill := context.WithCancel(context.Background())
			fired := false
			l.agents.hook = func(method, host string) {
				if method == at && host == "power8-a" && !fired {
					fired = true
					kill()
				}
			}
			for range 50 {
				if fired {
					break
				}
				l.svc.e.rolloutRound(ctx)
			}
			l.agents.hook = nil
			if !fired {
				t.Fatalf("the rollout never called %s on power8-a", at)
			}
			before, _ := l.svc.Rollouts.Status(adminCtx(), "power")
			if before.State != engineapi.RolloutRunning {
				t.Fatalf("stopped at %s: %v", at, outcome(before))
			}
			t.Logf("the engine stopped after %s, power8-a recorded %s", at, before.Hosts[0].Phase)
			l.restart()
			r := l.run(t, nil)
			want := []string{"succeeded ", "power8-a done  rejected=false level=SV810_133", "power8-b done  rejected=false level=SV810_133"}
			if d := cmp.Diff(want, outcome(r)); d != "" {
				t.Errorf("stopped in %s (-want +got):\n%s", before.Hosts[0].Phase, d)
			}
			for i := range 2 {
				if n := l.fw(i).flashes; n != 1 {
					t.Errorf("host %d flashed %d times", i, n)
				}
			}
		})
	}
}

// addVM records a VM of 2 GiB running on a host.
func (l *rolloutLab) addVM(t *testing.T, name string, host store.Host) {
	t.Helper()
	def, err := vmspec.Decode([]byte("name: " + name + "\narch: ppc64le\nmachine: pseries-7.2\ncpu: {model: POWER8, cores: 2}\nmemory: {sizeMiB: 2048}\nkernel: {path: /var/lib/polyvirt/images/vmlinux}\n"))
	if err != nil {
		t.Fatal(err)
	}
	valid, err := vmspec.Validate(def, vmspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(valid.VM())
	v := store.VM{Name: name, ClusterID: l.c.ID, HostID: host.ID, State: store.VMUp, Definition: raw}
	if err := l.st.CreateVM(context.Background(), &v); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutRoom: a host whose running VMs would have no other host
// waits, and the rollout says why; with room, the host is evacuated, and
// a VM whose migration fails (these fake hosts do not migrate) stops the
// rollout with the VM named, the host not flashed.
func TestRolloutRoom(t *testing.T) {
	l := newRolloutLab(t, 2)
	l.addVM(t, "db1", l.hosts[0])
	// power8-b is out: nowhere for db1 to go.
	if _, err := l.svc.Hosts.Maintenance(adminCtx(), "power8-b", engineapi.MaintenanceRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.start(t, engineapi.RolloutRequest{Hosts: []string{"power8-a"}}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		l.svc.e.rolloutRound(context.Background())
	}
	r, _ := l.svc.Rollouts.Status(adminCtx(), "power")
	if r.State != engineapi.RolloutRunning || r.Hosts[0].Phase != engineapi.RolloutHostPending ||
		!strings.Contains(r.Waiting, "no room to evacuate host power8-a: VM db1 would have no host") ||
		!strings.Contains(r.Waiting, "The host power8-a did not satisfy internal filter Exclude because the firmware rollout takes it out of service.") {
		t.Fatalf("no room: %v, waiting %q", outcome(r), r.Waiting)
	}
	page, _ := l.st.ListEvents(context.Background(), store.EventFilter{CorrelationID: r.ID, Limit: 50})
	waits := 0
	for _, ev := range page.Events {
		if ev.Action == "rollout.wait" {
			waits++
		}
	}
	if waits != 1 {
		t.Errorf("%d rollout.wait events for one reason, want 1", waits)
	}
	// power8-b back: room; the evacuation's migration fails, and the
	// rollout stops with its reason.
	if _, err := l.svc.e.mutateHost(context.Background(), l.hosts[1].ID, func(tx store.Tx, h *store.Host) (bool, error) {
		h.Status = store.HostUp
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	r = l.run(t, nil)
	if d := cmp.Diff([]string{"failed " + api.CodeMaintenanceMigrationFailed, "power8-a failed " + api.CodeMaintenanceMigrationFailed + " rejected=false level="}, outcome(r)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if !strings.Contains(r.Hosts[0].Message, "VM db1") {
		t.Errorf("the failed evacuation does not name the VM: %q", r.Hosts[0].Message)
	}
	if l.fw(0).flashes != 0 {
		t.Error("power8-a was flashed with a VM on it")
	}
}

// BenchmarkRolloutHost is the engine's share of a rollout per host: the
// validation's bookkeeping, every decision, order and record of one host
// from pending to done (the maintenance, the audit events, the rollout's
// writes on SQLite), over agents whose firmware answers at once — the
// flash, the reboot and the tools cost nothing here.
func BenchmarkRolloutHost(b *testing.B) {
	const hosts = 4
	for b.Loop() {
		b.StopTimer()
		l := newRolloutLabB(b, hosts)
		b.StartTimer()
		if _, err := l.svc.Rollouts.Start(adminCtx(), "power", RolloutStart{RolloutRequest: engineapi.RolloutRequest{ImageName: "01SV810_133_081.rpm"}, Image: strings.NewReader("image")}); err != nil {
			b.Fatal(err)
		}
		for {
			l.svc.e.rolloutRound(context.Background())
			r, err := l.svc.Rollouts.Status(adminCtx(), "power")
			if err != nil {
				b.Fatal(err)
			}
			if r.State == engineapi.RolloutSucceeded {
				break
			}
			if r.State != engineapi.RolloutRunning {
				b.Fatalf("rollout %s: %s", r.State, r.Message)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*hosts)/1000, "ms/host")
}

// FuzzRolloutInput: the request's checks, the level comparison and a
// rollout's stored document never panic; a request accepted has its
// defaults and a soak within bounds.
func FuzzRolloutInput(f *testing.F) {
	f.Add("01SV810_133_081.rpm", 1, "10m", "auto", "SV810_133", "SV810_081", []byte(`{"id":"ro-1","state":"running","hosts":[]}`))
	f.Add("", -3, "-1h", "later", "", "x_", []byte(`{`))
	f.Add("x.img", 0, "", "", "SV810_", "SV810_1", []byte(`{"control":{"abort":true}}`))
	f.Fuzz(func(t *testing.T, name string, maxUnavailable int, soak, commit, to, from string, doc []byte) {
		req := engineapi.RolloutRequest{ImageName: name, MaxUnavailable: maxUnavailable, Soak: soak, Commit: commit}
		d, err := checkRolloutRequest(&req)
		if err == nil {
			if req.MaxUnavailable < 1 || req.MaxUnavailable > 64 || (req.Commit != "auto" && req.Commit != "manual") || d < 0 || d > 7*24*time.Hour {
				t.Errorf("accepted %+v (soak %s)", req, d)
			}
		} else if ae := asAPIError(err); ae.Code != api.CodeInvalidArgument || ae.Field == "" {
			t.Errorf("refusal without its field: %v", err)
		}
		if older, why := olderLevel(to, from); older && why == "" {
			t.Errorf("olderLevel(%q, %q) without a reason", to, from)
		}
		if _, err := loadRollout(store.Rollout{ID: "x", Doc: doc}); err != nil && !strings.Contains(err.Error(), "rollout x") {
			t.Errorf("an unreadable document's error does not name it: %v", err)
		}
	})
}

// errNoMigration: these fake hosts do not migrate VMs.
var errNoMigration = errors.New("the fake firmware hosts do not migrate VMs")

func (f *fakeFirmwareAgents) MigrationPlan(ctx context.Context, h store.Host, id string) (agentapi.MigrationPlan, error) {
	return agentapi.MigrationPlan{}, errNoMigration
}
func (f *fakeFirmwareAgents) Announce(ctx context.Context, h store.Host, req agentapi.IncomingRequest) (agentapi.Incoming, error) {
	return agentapi.Incoming{}, errNoMigration
}
func (f *fakeFirmwareAgents) Incoming(ctx context.Context, h store.Host, id string) (agentapi.Incoming, error) {
	return agentapi.Incoming{}, errNoMigration
}
func (f *fakeFirmwareAgents) Withdraw(ctx context.Context, h store.Host, id string) (agentapi.Incoming, error) {
	return agentapi.Incoming{}, errNoMigration
}
func (f *fakeFirmwareAgents) Migrate(ctx context.Context, h store.Host, id string, order agentapi.MigrationOrder) (agentapi.MigrationStatus, error) {
	return agentapi.MigrationStatus{}, errNoMigration
}
func (f *fakeFirmwareAgents) MigrationStatus(ctx context.Context, h store.Host, id string) (agentapi.MigrationStatus, error) {
	return agentapi.MigrationStatus{}, errNoMigration
}
func (f *fakeFirmwareAgents) CancelMigration(ctx context.Context, h store.Host, id string) (agentapi.MigrationStatus, error) {
	return agentapi.MigrationStatus{}, errNoMigration
}

// slowMaintainer is the engine's maintenance whose evacuations take some
// rounds of the worker (their VMs migrating in the engine's background).
type slowMaintainer struct {
	upMaintainer
	mu     sync.Mutex
	rounds map[string]int // host name → rounds before it is evacuated
}

func (m *slowMaintainer) evacuation(ctx context.Context, h store.Host, since time.Time, reason string) (bool, error) {
	m.mu.Lock()
	left := m.rounds[h.Name]
	if left > 0 {
		m.rounds[h.Name] = left - 1
	}
	m.mu.Unlock()
	if left > 0 {
		return false, nil
	}
	return m.upMaintainer.evacuation(ctx, h, since, reason)
}

// TestRolloutHostsIndependent: with --max-unavailable 2, a host whose
// evacuation takes long does not hold the other: power8-b is flashed,
// rebooted, checked, committed and done while power8-a still evacuates;
// then power8-c starts, and every host ends updated once.
func TestRolloutHostsIndependent(t *testing.T) {
	l := newRolloutLab(t, 3)
	m := &slowMaintainer{upMaintainer: upMaintainer{l.svc.e, l.agents}, rounds: map[string]int{"power8-a": 40}}
	l.svc.e.maint = m
	if _, err := l.start(t, engineapi.RolloutRequest{MaxUnavailable: 2}); err != nil {
		t.Fatal(err)
	}
	r := l.run(t, func(r engineapi.Rollout) bool { return r.Hosts[1].Phase == engineapi.RolloutHostDone })
	if r.Hosts[0].Phase != engineapi.RolloutHostEvacuating {
		t.Errorf("power8-b done while power8-a is %s; want it still evacuating", r.Hosts[0].Phase)
	}
	r = l.run(t, nil)
	want := []string{"succeeded ", "power8-a done  rejected=false level=SV810_133", "power8-b done  rejected=false level=SV810_133", "power8-c done  rejected=false level=SV810_133"}
	if d := cmp.Diff(want, outcome(r)); d != "" {
		t.Errorf("outcome (-want +got):\n%s", d)
	}
	for i := range 3 {
		if n := l.fw(i).flashes; n != 1 {
			t.Errorf("host %d flashed %d times", i, n)
		}
	}
	if c, b := r.Hosts[2], r.Hosts[1]; c.Started.Before(b.Finished) {
		t.Errorf("power8-c started at %s, before power8-b (one of two out) finished at %s", c.Started, b.Finished)
	}
}

// TestRolloutRebootClock: a host's reboot time-out runs from its flash
// (RebootStarted), not from when the worker entered the phase: a host
// found rebooting by an engine that entered the phase just now, flashed
// longer ago than the time-out, fails at once; one flashed just now
// waits.
func TestRolloutRebootClock(t *testing.T) {
	defer func(d time.Duration) { RolloutRebootTimeout = d }(RolloutRebootTimeout)
	RolloutRebootTimeout = time.Minute
	l := newRolloutLab(t, 2)
	l.fw(0).neverBack = true
	if _, err := l.start(t, engineapi.RolloutRequest{}); err != nil {
		t.Fatal(err)
	}
	r := l.run(t, func(r engineapi.Rollout) bool { return r.Hosts[0].Phase == engineapi.RolloutHostRebooting })
	if h := r.Hosts[0]; h.RebootStarted.IsZero() || h.RebootStarted.After(h.Since) {
		t.Fatalf("rebooting since %s, flashed at %s: want the flash's time, before the phase", h.Since, h.RebootStarted)
	}
	for range 5 {
		l.svc.e.rolloutRound(context.Background())
	}
	if r, _ = l.svc.Rollouts.Status(adminCtx(), "power"); r.Hosts[0].Phase != engineapi.RolloutHostRebooting {
		t.Fatalf("flashed just now: %v; want it still waited for", outcome(r))
	}
	// The phase entered now, the flash two minutes ago.
	list, err := l.st.ListRollouts(context.Background(), store.RolloutFilter{Active: true})
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	d, err := loadRollout(list[0])
	if err != nil {
		t.Fatal(err)
	}
	d.Hosts[0].Since, d.Hosts[0].RebootStarted = time.Now().UTC(), time.Now().UTC().Add(-2*time.Minute)
	if err := d.toStore(&list[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.st.UpdateRollout(context.Background(), &list[0]); err != nil {
		t.Fatal(err)
	}
	r = l.run(t, nil)
	want := []string{"failed FIRMWARE_HOST_NOT_BACK", "power8-a failed FIRMWARE_HOST_NOT_BACK rejected=false level=", "power8-b skipped  rejected=false level="}
	if d := cmp.Diff(want, outcome(r)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
