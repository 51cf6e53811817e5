package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/domxml"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/vmspec"
)

// stateOf maps libvirt's state to the API's.
func stateOf(s libvirtconn.DomainState) agentapi.VMState {
	switch s {
	case libvirtconn.StateRunning:
		return agentapi.StateRunning
	case libvirtconn.StateBlocked:
		return agentapi.StateBlocked
	case libvirtconn.StatePaused:
		return agentapi.StatePaused
	case libvirtconn.StateShutdown:
		return agentapi.StateShutdown
	case libvirtconn.StateShutoff:
		return agentapi.StateDefined
	case libvirtconn.StateCrashed:
		return agentapi.StateCrashed
	case libvirtconn.StatePMSuspended:
		return agentapi.StateSuspend
	}
	return agentapi.StateUnknown
}

// reasonOf names libvirt's state reason (virDomainRunningReason,
// virDomainPausedReason, virDomainShutoffReason, ...).
func reasonOf(s libvirtconn.DomainState, r int32) string {
	var names []string
	switch s {
	case libvirtconn.StateRunning:
		names = []string{"unknown", "booted", "migrated", "restored", "from-snapshot", "unpaused", "migration-canceled", "save-canceled", "wakeup", "crashed", "postcopy"}
	case libvirtconn.StatePaused:
		names = []string{"unknown", "user", "migration", "save", "dump", "ioerror", "watchdog", "from-snapshot", "shutting-down", "snapshot", "crashed", "starting-up", "postcopy", "postcopy-failed"}
	case libvirtconn.StateShutoff:
		names = []string{"unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from-snapshot", "daemon"}
	case libvirtconn.StateShutdown:
		names = []string{"unknown", "user"}
	case libvirtconn.StateCrashed:
		names = []string{"unknown", "panicked"}
	}
	if r >= 0 && int(r) < len(names) {
		return names[r]
	}
	return ""
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return libvirtconn.FormatUUID(b)
}

// CreateVM validates a definition for this host, renders its domain and
// defines it in libvirt. Nothing is defined when anything is wrong.
func (a *Agent) CreateVM(ctx context.Context, body []byte) (*agentapi.VM, error) {
	def, err := vmspec.Decode(body)
	if err != nil {
		return nil, err
	}
	if def.UUID == "" {
		def.UUID = newUUID()
	}
	id, err := canonicalID(def.UUID)
	if err != nil {
		return nil, api.NewError(http.StatusUnprocessableEntity, api.CodeUUIDInvalid, "%v", err)
	}
	def.UUID = id
	original, err := json.Marshal(def)
	if err != nil {
		return nil, err
	}
	report, err := a.Capabilities(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := a.checkArch(def, report); err != nil {
		return nil, err
	}
	// The domain's own name and UUID (with a domain prefix, per host).
	render := def.Clone()
	render.Name, render.UUID = a.domainName(def.Name), a.domainUUID(id)
	// The agent names the console's files (HostConsole): a definition
	// naming one is refused.
	valid, err := vmspec.Validate(render, vmspec.Options{Host: report, HostConsole: true})
	if err != nil {
		return nil, err
	}
	if err := a.checkDefinitionPaths(id, valid.VM()); err != nil {
		return nil, err
	}
	if err := a.checkVolumes(valid.VM(), false); err != nil {
		return nil, err
	}
	// The agent keeps every console's output in a file of its own (a pty
	// console's log), so that a console client sees the boot from its
	// start.
	dom, err := domxml.Build(valid, domxml.Options{FakeKVM: a.fake, HostArch: a.realArch, MemoryCapMiB: a.cfg.FakeMemoryMiB,
		ConsoleFile: a.consoleLog(id)})
	if err != nil {
		return nil, api.NewError(http.StatusUnprocessableEntity, api.CodeVMDefinitionInvalid, "%v", err)
	}
	vm := valid.VM()
	if err := markOwner(dom, Owner{VM: id, Name: def.Name, Host: a.cfg.HostID, Arch: vm.Arch, FakeKVM: a.fake, Definition: string(original)}); err != nil {
		return nil, err
	}
	xml, err := domxml.Marshal(dom)
	if err != nil {
		return nil, err
	}

	unlock := a.locks.lock("name:" + vm.Name)
	defer unlock()
	unlockID := a.locks.lock(id)
	defer unlockID()
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	if d, err := c.LookupDomain(ctx, vm.Name); err == nil {
		return nil, api.NewError(http.StatusConflict, api.CodeVMExists, "a domain named %q already exists on this host (uuid %s)", vm.Name, d.UUID)
	}
	if d, err := c.LookupDomainByUUID(ctx, render.UUID); err == nil {
		return nil, api.NewError(http.StatusConflict, api.CodeVMExists, "a domain with uuid %s already exists on this host (%s)", render.UUID, d.Name)
	}
	d, err := c.DefineDomain(ctx, xml)
	if err != nil {
		return nil, err
	}
	e := &vmEntry{ID: id, Name: def.Name, Arch: vm.Arch, Fake: a.fake, Domain: d, Definition: original}
	a.index.put(e)
	a.log.Info("VM defined", "vm", id, "name", def.Name, "domain", d.Name, "arch", vm.Arch, "fake", a.fake)
	return a.describe(ctx, c, e, false)
}

// canonicalID writes a UUID in lower-case 8-4-4-4-12 form.
func canonicalID(s string) (string, error) {
	u, err := libvirtconn.ParseUUID(s)
	if err != nil {
		return "", err
	}
	return libvirtconn.FormatUUID(u), nil
}

// entry finds a VM this host owns.
func (a *Agent) entry(id string) (*vmEntry, error) {
	cid, err := canonicalID(id)
	if err == nil {
		if e, ok := a.index.get(cid); ok {
			return e, nil
		}
	}
	return nil, api.NewError(http.StatusNotFound, api.CodeVMNotFound, "no VM %q on host %s", id, a.cfg.HostID)
}

// describe reports a VM with its current state (and with full the live
// domain XML).
func (a *Agent) describe(ctx context.Context, c libvirtconn.AgentConn, e *vmEntry, full bool) (*agentapi.VM, error) {
	st, reason, err := c.DomainStateReason(ctx, e.Domain)
	if err != nil {
		return nil, err
	}
	a.index.setState(e.ID, st)
	vm := &agentapi.VM{
		ID: e.ID, Name: e.Name, Arch: e.Arch, Host: a.cfg.HostID, FakeKVM: e.Fake,
		State: stateOf(st), Reason: reasonOf(st, reason), Definition: json.RawMessage(e.Definition),
	}
	if st != libvirtconn.StateShutoff && st != libvirtconn.StateCrashed {
		vm.NotResponding = a.health.notResponding(e.ID)
	}
	if full {
		x, err := c.DomainXML(ctx, e.Domain, false)
		if err != nil {
			return nil, err
		}
		vm.DomainXML = x
	}
	return vm, nil
}

// GetVM reports one VM with its live domain XML.
func (a *Agent) GetVM(ctx context.Context, id string) (*agentapi.VM, error) {
	e, err := a.entry(id)
	if err != nil {
		return nil, err
	}
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	return a.describe(ctx, c, e, true)
}

// ListVMs reports every VM this host owns.
func (a *Agent) ListVMs(ctx context.Context) ([]*agentapi.VM, error) {
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	out := []*agentapi.VM{}
	for _, e := range a.index.list() {
		vm, err := a.describe(ctx, c, e, false)
		if err != nil {
			if asAPIError(err).Code == api.CodeVMNotFound {
				a.index.remove(e.ID)
				continue
			}
			return nil, err
		}
		out = append(out, vm)
	}
	return out, nil
}

// destroyTimeout bounds a destroy: libvirt gives QEMU 10 s after SIGTERM
// before SIGKILL, and waits for it to go.
const destroyTimeout = time.Minute

// maxShutdownTimeout bounds the time-out of a shutdown (a day).
const maxShutdownTimeout = 86400

// lockVM takes VM e's lock for an operation, waiting at most the request's
// time (an operation on the VM is bounded, so this wait is too).
func (a *Agent) lockVM(ctx context.Context, e *vmEntry) (func(), error) {
	wait := a.cfg.RequestTimeout.Duration
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	unlock, ok := a.locks.lockWithin(e.ID, wait)
	if !ok {
		return nil, api.NewError(http.StatusConflict, api.CodeVMBusy, "VM %s is busy with another operation; try again", e.Name)
	}
	return unlock, nil
}

// lockForDestroy takes VM e's lock for a destroy, waiting a moment only:
// a destroy must not wait behind an operation its QEMU holds up, and
// libvirt serializes it with the others itself.
func (a *Agent) lockForDestroy(e *vmEntry) func() {
	unlock, _ := a.locks.lockWithin(e.ID, time.Second)
	return unlock
}

// destroy powers VM e off on the main connection (never through its QEMU:
// libvirt kills it first; the agent kills a QEMU that does not answer
// itself, see qemuproc.go) and drops what the agent kept for its QEMU.
func (a *Agent) destroy(ctx context.Context, c libvirtconn.AgentConn, e *vmEntry) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
	defer cancel()
	t0 := time.Now()
	done := make(chan struct{})
	go a.killStuckQEMU(e, done)
	err := c.DestroyDomain(dctx, e.Domain)
	close(done)
	if err != nil && libvirtconn.ErrorCode(err) == libvirtconn.CodeOperationInvalid {
		// Not running (any more): nothing to destroy.
		err = nil
	}
	if err == nil {
		a.forgetRuntime(e.ID)
		a.log.Info("VM destroyed", "vm", e.ID, "name", e.Name, "took", time.Since(t0).Round(time.Millisecond))
	}
	return err
}

// DeleteVM removes a stopped VM (with force, a running one is destroyed
// first — even when its QEMU does not answer) and its console log.
func (a *Agent) DeleteVM(ctx context.Context, id string, force bool) error {
	e, err := a.entry(id)
	if err != nil {
		return err
	}
	var unlock func()
	if force {
		unlock = a.lockForDestroy(e)
	} else if unlock, err = a.lockVM(ctx, e); err != nil {
		return err
	}
	defer unlock()
	c, err := a.conn.get()
	if err != nil {
		return err
	}
	st, err := c.DomainState(ctx, e.Domain)
	if err != nil {
		return err
	}
	if st != libvirtconn.StateShutoff {
		if !force {
			return api.NewError(http.StatusConflict, api.CodeVMRunning, "VM %s is %s; stop it first (or delete with force=true)", e.Name, stateOf(st))
		}
		if err := a.destroy(ctx, c, e); err != nil {
			return err
		}
	}
	if err := c.UndefineDomain(ctx, e.Domain, libvirtconn.UndefineAll); err != nil {
		return err
	}
	a.forgetRuntime(e.ID)
	a.index.remove(e.ID)
	if a.stats != nil {
		a.stats.forget(e.ID)
	}
	_ = os.Remove(a.consoleLog(e.ID))
	a.log.Info("VM removed", "vm", e.ID, "name", e.Name)
	return nil
}

// Actions are the lifecycle actions of POST /v1/vms/{id}/{action}.
var Actions = []string{"start", "shutdown", "destroy", "reboot", "pause", "resume"}

// ActOptions tune an action.
type ActOptions struct {
	// Shutdown is the time-out (and whether to power off after it) of a
	// shutdown.
	Shutdown agentapi.ShutdownRequest
}

// Act runs a lifecycle action (ActWith without options).
func (a *Agent) Act(ctx context.Context, id, action string) (*agentapi.ActionResult, error) {
	return a.ActWith(ctx, id, action, ActOptions{})
}

// ActWith runs a lifecycle action. Asking for the state a VM is already in
// (start a running VM, stop a stopped one) is a no-op that says so. The
// actions that go to the VM's QEMU (shutdown, reboot, pause, resume) are
// refused at once while it does not answer (VM_NOT_RESPONDING); destroy
// always works.
func (a *Agent) ActWith(ctx context.Context, id, action string, o ActOptions) (*agentapi.ActionResult, error) {
	e, err := a.entry(id)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(Actions, action) {
		return nil, api.NewError(http.StatusNotFound, api.CodeUnknownAction, "unknown action %q (known: %s)", action, strings.Join(Actions, ", "))
	}
	var unlock func()
	if action == "destroy" {
		unlock = a.lockForDestroy(e)
	} else if unlock, err = a.lockVM(ctx, e); err != nil {
		return nil, err
	}
	defer unlock()
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	st, err := c.DomainState(ctx, e.Domain)
	if err != nil {
		return nil, err
	}
	res := &agentapi.ActionResult{VM: e.ID, Action: action, Changed: true}
	noop := func(msg string) (*agentapi.ActionResult, error) {
		res.Changed, res.Message, res.State = false, msg, stateOf(st)
		return res, nil
	}
	running := st == libvirtconn.StateRunning || st == libvirtconn.StateBlocked
	stopped := st == libvirtconn.StateShutoff || st == libvirtconn.StateCrashed
	// onQEMU runs a call that goes to the VM's QEMU.
	onQEMU := func(op string, f func(ctx context.Context, c libvirtconn.AgentConn) error) error {
		return a.qemuCall(ctx, e, op, true, f)
	}
	switch action {
	case "start":
		if !stopped {
			return noop(fmt.Sprintf("VM %s is already %s", e.Name, stateOf(st)))
		}
		if err := a.hostLocked(); err != nil {
			return nil, err
		}
		if err := a.checkStartPaths(ctx, c, e); err != nil {
			return nil, err
		}
		if err := a.checkStartVolumes(e); err != nil {
			return nil, err
		}
		a.forgetRuntime(e.ID)
		// Every boot gets a fresh console log.
		_ = os.Remove(a.consoleLog(e.ID))
		var vc libvirtconn.AgentConn
		if vc, err = a.vmConns.get(ctx, e.ID); err == nil {
			err = vc.StartDomain(ctx, e.Domain)
		}
		res.Message = "started"
		if err == nil {
			a.drainConsole(ctx, e)
		}
	case "shutdown":
		if stopped {
			return noop(fmt.Sprintf("VM %s is already stopped", e.Name))
		}
		err = onQEMU("DomainShutdown", func(ctx context.Context, c libvirtconn.AgentConn) error { return c.ShutdownDomain(ctx, e.Domain) })
		res.Message = "shutdown requested from the guest"
		if err == nil && o.Shutdown.TimeoutSeconds > 0 {
			timeout := time.Duration(o.Shutdown.TimeoutSeconds) * time.Second
			a.watchPowerdown(e, timeout, o.Shutdown.Force)
			if o.Shutdown.Force {
				res.Message = fmt.Sprintf("shutdown requested from the guest; powered off if it is not down within %s", timeout)
			}
		}
	case "destroy":
		if stopped {
			return noop(fmt.Sprintf("VM %s is already stopped", e.Name))
		}
		err = a.destroy(ctx, c, e)
		res.Message = "powered off"
	case "reboot":
		if !running {
			return nil, api.NewError(http.StatusConflict, api.CodeVMNotRunning, "VM %s is %s; only a running VM reboots", e.Name, stateOf(st))
		}
		err = onQEMU("DomainReboot", func(ctx context.Context, c libvirtconn.AgentConn) error { return c.RebootDomain(ctx, e.Domain) })
		res.Message = "reboot requested from the guest"
	case "pause":
		if st == libvirtconn.StatePaused {
			return noop(fmt.Sprintf("VM %s is already paused", e.Name))
		}
		if !running {
			return nil, api.NewError(http.StatusConflict, api.CodeVMNotRunning, "VM %s is %s; only a running VM pauses", e.Name, stateOf(st))
		}
		err = onQEMU("DomainSuspend", func(ctx context.Context, c libvirtconn.AgentConn) error { return c.SuspendDomain(ctx, e.Domain) })
		res.Message = "paused"
	case "resume":
		if running {
			return noop(fmt.Sprintf("VM %s is already running", e.Name))
		}
		if err := a.hostLocked(); err != nil {
			return nil, err
		}
		if st != libvirtconn.StatePaused {
			return nil, api.NewError(http.StatusConflict, api.CodeVMNotPaused, "VM %s is %s; only a paused VM resumes", e.Name, stateOf(st))
		}
		err = onQEMU("DomainResume", func(ctx context.Context, c libvirtconn.AgentConn) error { return c.ResumeDomain(ctx, e.Domain) })
		res.Message = "resumed"
	}
	if err != nil {
		return nil, err
	}
	after, _, err := c.DomainStateReason(ctx, e.Domain)
	if err != nil {
		return nil, err
	}
	a.index.setState(e.ID, after)
	res.State = stateOf(after)
	a.log.Info("VM action", "vm", e.ID, "name", e.Name, "action", action, "state", res.State)
	return res, nil
}

// checkArch refuses a definition for an architecture this host does not
// run natively (an x86_64 VM sent to a POWER host, fake or not): such a VM
// belongs on a host of its own architecture. A definition naming none gets
// the host's.
func (a *Agent) checkArch(def *vmspec.VM, report *hostreport.Report) error {
	effective := report.EffectiveArch
	spec, err := archspec.For(effective)
	if err != nil {
		return api.NewError(http.StatusUnprocessableEntity, api.CodeHostArch, "this host's architecture %q has no VM rules", effective)
	}
	if def.Arch == arch.Unknown {
		def.Arch = effective
		return nil
	}
	if !def.Arch.Known() || spec.RunsNatively(def.Arch) {
		// vmspec names an unknown architecture precisely.
		return nil
	}
	guests := arch.Join(spec.GuestArches, " and ")
	return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeHostArch,
		Message: fmt.Sprintf("host %s runs %s VMs; a %s VM needs a host of its own architecture", a.cfg.HostID, guests, def.Arch),
		Details: api.Errors{{Code: api.CodeHostArch, Field: "arch", Message: fmt.Sprintf("this host runs %s VMs, not %s", guests, def.Arch)}}}
}
