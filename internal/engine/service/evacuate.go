package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/archspec"
	"polyvirt/internal/engine/scheduler"
	"polyvirt/internal/migpolicy"
	"polyvirt/internal/store"
)

// Maintenance evacuates: a host switching to Maintenance first sends its
// VMs to the other hosts of its cluster.
//
//  1. Before anything moves, every VM is checked: it must be Up (or
//     migrating already), not pinned to the host, of an architecture and a
//     policy that migrate, and some host of the cluster must take it, the
//     VMs placed one after another. A VM that cannot leave is named with
//     its reason, and the request is refused — unless StopVMs says to shut
//     those down.
//  2. The host is PreparingForMaintenance (nothing new starts there); its
//     VMs migrate, at most the cluster's MigrationMaxOutgoing at once.
//  3. When none runs there any more the host is Maintenance. A migration
//     that failed leaves it PreparingForMaintenance, its status saying
//     which VM did not leave and why; `host maintenance` again tries again,
//     `host activate` gives up.
//
// Evacuate does all of it and waits for the outcome, one result per VM
// (the rolling firmware update calls it host after host); Maintenance
// starts it and returns at once.

// evacuation is a host's evacuation in progress (or its last outcome).
type evacuation struct {
	mu   sync.Mutex
	doc  engineapi.Evacuation
	done chan struct{}
}

func (ev *evacuation) snapshot() engineapi.Evacuation {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	d := ev.doc
	d.VMs = append([]engineapi.EvacuatedVM(nil), ev.doc.VMs...)
	return d
}

func (ev *evacuation) set(i int, r engineapi.EvacuatedVM) {
	ev.mu.Lock()
	ev.doc.VMs[i] = r
	ev.mu.Unlock()
}

func (ev *evacuation) running() bool {
	select {
	case <-ev.done:
		return false
	default:
		return true
	}
}

// Maintenance switches a host to Maintenance: at once when no VM runs
// there, else it becomes PreparingForMaintenance and its VMs migrate away
// first (Evacuation follows it). A host in Maintenance already stays so.
func (s *Hosts) Maintenance(ctx context.Context, ref string, req engineapi.MaintenanceRequest) (engineapi.Host, error) {
	h, _, err := s.e.hostMaintenance(ctx, ref, req)
	if err != nil {
		return engineapi.Host{}, coded(err)
	}
	return s.e.hostOut(ctx, h)
}

// Evacuate switches a host to Maintenance as Maintenance does and waits
// until its VMs left (or did not): the outcome of each VM. The host is
// Maintenance when every VM left.
func (s *Hosts) Evacuate(ctx context.Context, ref string, req engineapi.MaintenanceRequest) (engineapi.Evacuation, error) {
	h, ev, err := s.e.hostMaintenance(ctx, ref, req)
	if err != nil {
		return engineapi.Evacuation{}, coded(err)
	}
	if ev == nil {
		return engineapi.Evacuation{Host: h.Name, HostID: h.ID, Status: string(h.Status), VMs: []engineapi.EvacuatedVM{}}, nil
	}
	select {
	case <-ev.done:
	case <-ctx.Done():
		return ev.snapshot(), coded(ctx.Err())
	}
	return ev.snapshot(), nil
}

// Evacuation is a host's evacuation in progress, or its last one.
func (s *Hosts) Evacuation(ctx context.Context, ref string) (engineapi.Evacuation, error) {
	h, err := s.e.findHost(ctx, ref)
	if err != nil {
		return engineapi.Evacuation{}, coded(err)
	}
	if ev := s.e.vms.evacuationOf(h.ID); ev != nil {
		return ev.snapshot(), nil
	}
	return engineapi.Evacuation{}, coded(&api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("host %s was not evacuated since the engine started", h.Name)})
}

func (s *vmService) evacuationOf(hostID string) *evacuation {
	s.migs.mu.Lock()
	defer s.migs.mu.Unlock()
	return s.migs.evacs[hostID]
}

// leaving is one VM of an evacuating host: it migrates, or (StopVMs) it is
// shut down; why says why it cannot leave.
type leaving struct {
	vm   store.VM
	stop bool
	why  *api.Error
}

// hostMaintenance switches a host to Maintenance, evacuating it first; the
// evacuation is nil when the host had no VM (or was in Maintenance
// already).
func (e *engine) hostMaintenance(ctx context.Context, ref string, req engineapi.MaintenanceRequest) (store.Host, *evacuation, error) {
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return h, nil, err
	}
	if h.Status == store.HostPreparingForMaintenance {
		if ev := e.vms.evacuationOf(h.ID); ev != nil && ev.running() {
			return h, ev, nil
		}
	} else if noop, aerr := checkAction(actMaintenance, h.Name, h.Status); aerr != nil {
		return h, nil, aerr
	} else if noop {
		return h, nil, nil
	}
	vms, err := e.st.ListVMs(ctx, store.VMFilter{HostID: h.ID})
	if err != nil {
		return h, nil, err
	}
	var running []store.VM
	for _, v := range vms {
		if v.State != store.VMDown {
			running = append(running, v)
		}
	}
	if len(running) == 0 {
		h, err = e.toMaintenance(ctx, h.ID, req.Reason, 0)
		return h, nil, err
	}
	plan, err := e.vms.evacuationPlan(ctx, h, running)
	if err != nil {
		return h, nil, err
	}
	var blocked []leaving
	for i := range plan {
		if plan[i].why != nil {
			plan[i].stop = req.StopVMs
			blocked = append(blocked, plan[i])
		}
	}
	if len(blocked) > 0 && !req.StopVMs {
		return h, nil, evacuationRefused(h, blocked)
	}
	moving := len(plan) - len(blocked)
	h, err = e.mutateHost(ctx, h.ID, func(tx store.Tx, cur *store.Host) (bool, error) {
		if cur.Status != store.HostPreparingForMaintenance {
			if _, aerr := checkAction(actMaintenance, cur.Name, cur.Status); aerr != nil {
				return false, aerr
			}
		}
		cur.Status, cur.StatusCode = store.HostPreparingForMaintenance, ""
		cur.StatusMessage = fmt.Sprintf("switching to Maintenance (requested by %s): %d VMs migrate to other hosts", userName(ctx), moving)
		if len(blocked) > 0 {
			cur.StatusMessage += fmt.Sprintf(", %d are shut down", len(blocked))
		}
		msg := fmt.Sprintf("Host %s was switched to Preparing for Maintenance by %s: its VMs migrate away (%s).", cur.Name, userName(ctx),
			vmNames(plan))
		return true, e.appendEvent(ctx, tx, store.Event{Action: "host.maintenance", ObjectKind: "host", ObjectID: cur.ID,
			ObjectName: cur.Name, Message: msg, Reason: req.Reason})
	})
	if err != nil {
		return h, nil, err
	}
	e.hostChanged()
	ev := &evacuation{done: make(chan struct{}), doc: engineapi.Evacuation{Host: h.Name, HostID: h.ID, Status: string(h.Status),
		Started: time.Now().UTC(), VMs: make([]engineapi.EvacuatedVM, len(plan))}}
	for i, l := range plan {
		ev.doc.VMs[i] = engineapi.EvacuatedVM{VM: l.vm.ID, Name: l.vm.Name, Outcome: engineapi.EvacuationPending}
	}
	e.vms.migs.mu.Lock()
	if e.vms.migs.evacs == nil {
		e.vms.migs.evacs = map[string]*evacuation{}
	}
	e.vms.migs.evacs[h.ID] = ev
	e.vms.migs.mu.Unlock()
	go e.vms.evacuate(context.WithoutCancel(ctx), h, req, plan, ev)
	return h, ev, nil
}

func vmNames(plan []leaving) string {
	n := make([]string, len(plan))
	for i, l := range plan {
		n[i] = l.vm.Name
	}
	return strings.Join(n, ", ")
}

// evacuationRefused names every VM that cannot leave, with its reason.
func evacuationRefused(h store.Host, blocked []leaving) *api.Error {
	parts := make([]string, len(blocked))
	ae := &api.Error{Code: api.CodeMaintenanceVMsCannotMigrate}
	for i, b := range blocked {
		parts[i] = fmt.Sprintf("%s (%s)", b.vm.Name, b.why.Message)
		ae.Details = append(ae.Details, &api.Error{Code: b.why.Code, Field: "vm:" + b.vm.Name, Message: b.why.Message})
		for _, d := range b.why.Details {
			ae.Details = append(ae.Details, &api.Error{Code: d.Code, Field: "vm:" + b.vm.Name + " " + d.Field, Message: d.Message})
		}
	}
	ae.Message = fmt.Sprintf("Cannot switch host %s to Maintenance: these VMs cannot leave it: %s. Stop them first, or switch with --stop-vms to shut them down.",
		h.Name, strings.Join(parts, "; "))
	return ae
}

// evacuationPlan judges each VM of a host: can it leave, and where could
// it go (the VMs placed one after another, the biggest first).
func (s *vmService) evacuationPlan(ctx context.Context, h store.Host, vms []store.VM) ([]leaving, error) {
	c, err := s.e.st.GetCluster(ctx, h.ClusterID)
	if err != nil {
		return nil, err
	}
	fleet, _, err := s.fleetFor(ctx, c)
	if err != nil {
		return nil, err
	}
	f := scheduler.NewFleet(fleet, s.cfg.Policy)
	sort.SliceStable(vms, func(i, j int) bool {
		a, _ := sizesOf(vms[i].Definition)
		b, _ := sizesOf(vms[j].Definition)
		return a.MemoryMiB > b.MemoryMiB
	})
	out := make([]leaving, len(vms))
	for i, v := range vms {
		out[i] = leaving{vm: v, why: s.cannotLeave(v, c, h, f)}
	}
	return out, nil
}

// cannotLeave says why a VM cannot leave its host (nil: it can), placing
// it on the fleet when it can.
func (s *vmService) cannotLeave(v store.VM, c store.Cluster, h store.Host, f *scheduler.Fleet) *api.Error {
	switch v.State {
	case store.VMUp:
	case store.VMMigratingFrom:
		return nil
	default:
		return fail(api.CodeMigrationVMNotUp, "it is %s, not Up", v.State)
	}
	if v.PinnedHostID == h.ID {
		return fail(api.CodeHostNotPinned, "it is pinned to host %s (polyvirt vm update %s --unpin)", h.Name, v.Name)
	}
	sz, err := sizesOf(v.Definition)
	if err != nil {
		return asAPIError(err)
	}
	if spec, err := archspec.For(sz.Arch); err != nil || !spec.Migration {
		return fail(api.CodeMigrationNotSupported, "%s VMs do not migrate", sz.Arch)
	}
	pname, from := policyOf("", v, c)
	p, err := migpolicy.For(pname)
	if err != nil {
		return asAPIError(err)
	}
	if err := migpolicy.Check(p, from, agentapi.MigrationPlan{Name: v.Name}); err != nil {
		return asAPIError(err)
	}
	req, err := schedRequest(v, c, nil)
	if err != nil {
		return asAPIError(err)
	}
	// Its named model's level, or (the host's CPU) the host's.
	req.Migration = &scheduler.Migration{SourceHostID: h.ID, CPUType: vmCPUType(agentapi.MigrationPlan{}, sz, h)}
	d, err := f.Schedule(req)
	var nh *scheduler.NoHostError
	if errors.As(err, &nh) {
		ae := noDestinationError(v, c, nh.Verdicts)
		ae.Message = fmt.Sprintf("no other host of cluster %s can take it", c.Name)
		return ae
	}
	if err != nil {
		return asAPIError(err)
	}
	f.Place(d.Index, req.VM)
	return nil
}

// evacuationRetry is how long an evacuation waits before asking again for
// a VM the limits hold back (the source sends as many as it may, the
// destinations take as many as they may).
var evacuationRetry = 2 * time.Second

// evacuate runs an evacuation: the VMs that cannot leave shut down
// (StopVMs), the others migrated a few at a time; the host is Maintenance
// when none runs there any more.
func (s *vmService) evacuate(ctx context.Context, h store.Host, req engineapi.MaintenanceRequest, plan []leaving, ev *evacuation) {
	e := s.e
	// A rollout follows evacuations: its worker looks again once this
	// one ended (after done is closed).
	defer e.kickRollouts()
	defer close(ev.done)
	c, err := e.st.GetCluster(ctx, h.ClusterID)
	if err != nil {
		e.log.Warn("evacuation: the host's cluster", "host", h.Name, "err", err)
		return
	}
	slots := make(chan struct{}, max(c.MigrationMaxOutgoing, 1))
	var wg sync.WaitGroup
	for i, l := range plan {
		if l.stop {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev.set(i, s.stopForMaintenance(ctx, l.vm, h))
			}()
			continue
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ev.set(i, s.moveOff(ctx, l.vm, h))
		}()
	}
	wg.Wait()
	res := ev.snapshot()
	var failed []string
	for _, r := range res.VMs {
		if r.Outcome == engineapi.EvacuationFailed {
			failed = append(failed, fmt.Sprintf("VM %s did not leave: %s", r.Name, firstNonEmpty(r.Message, r.Code)))
		}
	}
	left, err := runningVMs(ctx, e.st, h.ID)
	if err == nil && len(left) > 0 && len(failed) == 0 {
		failed = append(failed, fmt.Sprintf("VMs run on it still: %s", strings.Join(left, ", ")))
	}
	var status store.HostStatus
	if err == nil && len(failed) == 0 {
		hh, err := e.toMaintenance(ctx, h.ID, req.Reason, len(plan))
		if err != nil {
			e.log.Warn("evacuation: cannot switch the host to Maintenance", "host", h.Name, "err", err)
		}
		status = hh.Status
	} else {
		if err != nil {
			failed = append(failed, err.Error())
		}
		why := strings.Join(failed, "; ")
		hh, err := e.mutateHost(ctx, h.ID, func(tx store.Tx, cur *store.Host) (bool, error) {
			if cur.Status != store.HostPreparingForMaintenance {
				return false, nil
			}
			cur.StatusCode = api.CodeMaintenanceMigrationFailed
			cur.StatusMessage = "not in Maintenance: " + why + " (polyvirt host maintenance tries again; host activate gives up)"
			return true, e.appendEvent(ctx, tx, store.Event{Action: "host.maintenance", Severity: store.SeverityError, ObjectKind: "host",
				ObjectID: cur.ID, ObjectName: cur.Name, Code: api.CodeMaintenanceMigrationFailed,
				Message: fmt.Sprintf("Host %s stays Preparing for Maintenance: %s.", cur.Name, why)})
		})
		if err != nil {
			e.log.Warn("evacuation: cannot record its failure", "host", h.Name, "err", err)
		}
		status = hh.Status
		e.hostChanged()
	}
	ev.mu.Lock()
	ev.doc.Status, ev.doc.Finished = string(status), time.Now().UTC()
	ev.mu.Unlock()
}

// moveOff migrates one VM of an evacuating host and waits for the outcome.
// A VM the limits hold back (its source sends as many as it may, no
// destination takes more now) is asked for again, for up to ten minutes.
func (s *vmService) moveOff(ctx context.Context, v store.VM, h store.Host) engineapi.EvacuatedVM {
	out := engineapi.EvacuatedVM{VM: v.ID, Name: v.Name}
	if cur, err := s.e.st.GetVM(ctx, v.ID); err == nil {
		if cur.HostID != h.ID || cur.State == store.VMDown {
			out.Outcome = engineapi.EvacuationMigrated
			out.Message = "it left the host meanwhile"
			return out
		}
		if cur.State == store.VMMigratingFrom {
			m, err := s.waitMigration(ctx, v.ID)
			return evacuatedOf(out, m, err)
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		_, err := s.migrate(ctx, v.ID, engineapi.MigrationRequest{Reason: "host " + h.Name + " switches to Maintenance"}, true)
		if err == nil {
			break
		}
		ae := asAPIError(err)
		retry := ae.Code == api.CodeMigrationOutgoingLimit || ae.Code == api.CodeVersionConflict ||
			ae.Code == api.CodeMigrationNoDestination && onlyLimits(ae)
		if !retry || time.Now().After(deadline) {
			out.Outcome, out.Code, out.Message = engineapi.EvacuationFailed, ae.Code, ae.Message
			for _, d := range ae.Details {
				out.Message += " " + d.Message
			}
			return out
		}
		select {
		case <-ctx.Done():
			out.Outcome, out.Code, out.Message = engineapi.EvacuationFailed, api.CodeInternal, "the engine stopped"
			return out
		case <-time.After(evacuationRetry):
		}
	}
	m, err := s.waitMigration(ctx, v.ID)
	return evacuatedOf(out, m, err)
}

// onlyLimits tells whether every host refused a VM only for the number of
// migrations it takes now (then it may take it later).
func onlyLimits(ae *api.Error) bool {
	for _, d := range ae.Details {
		if d.Code != api.CodeMigrationIncomingLimit && d.Code != api.CodeMigrationSourceHost && d.Code != api.CodeHostNotUp {
			return false
		}
	}
	return len(ae.Details) > 0
}

func evacuatedOf(out engineapi.EvacuatedVM, m engineapi.Migration, err error) engineapi.EvacuatedVM {
	switch {
	case err != nil:
		out.Outcome, out.Code, out.Message = engineapi.EvacuationFailed, asAPIError(err).Code, err.Error()
	case m.Phase == agentapi.PhaseCompleted:
		out.Outcome, out.Destination = engineapi.EvacuationMigrated, m.Destination
		out.Message = fmt.Sprintf("migrated to %s in %s (downtime %d ms)", m.Destination, time.Duration(m.ElapsedMs)*time.Millisecond, m.DowntimeMs)
	default:
		out.Outcome, out.Code = engineapi.EvacuationFailed, firstNonEmpty(m.Code, api.CodeMigrationFailed)
		out.Message = firstNonEmpty(m.Error, "the migration "+m.Phase)
	}
	return out
}

// stopForMaintenance shuts down a VM that cannot leave an evacuating host
// (StopVMs): the guest is asked, and powered off after the cluster's
// shutdown time-out.
func (s *vmService) stopForMaintenance(ctx context.Context, v store.VM, h store.Host) engineapi.EvacuatedVM {
	out := engineapi.EvacuatedVM{VM: v.ID, Name: v.Name}
	force := true
	_, err := s.act(ctx, v.ID, "shutdown", engineapi.VMActionRequest{Reason: "host " + h.Name + " switches to Maintenance (--stop-vms)", Force: &force})
	if err != nil {
		ae := asAPIError(err)
		out.Outcome, out.Code, out.Message = engineapi.EvacuationFailed, ae.Code, ae.Message
		return out
	}
	c, _ := s.e.st.GetCluster(ctx, v.ClusterID)
	deadline := time.Now().Add(time.Duration(max(c.ShutdownTimeoutSeconds, 30)+60) * time.Second)
	for time.Now().Before(deadline) {
		cur, err := s.e.st.GetVM(ctx, v.ID)
		if err == nil && (cur.State == store.VMDown || cur.HostID != h.ID) {
			out.Outcome, out.Message = engineapi.EvacuationStopped, "shut down: it could not leave"
			return out
		}
		select {
		case <-ctx.Done():
			deadline = time.Now()
		case <-time.After(500 * time.Millisecond):
		}
	}
	out.Outcome, out.Code, out.Message = engineapi.EvacuationFailed, api.CodeVMStatusIllegal, "it did not go down"
	return out
}

// toMaintenance switches a host without VMs to Maintenance (moved: how
// many VMs left it first).
func (e *engine) toMaintenance(ctx context.Context, id, reason string, moved int) (store.Host, error) {
	h, err := e.mutateHost(ctx, id, func(tx store.Tx, h *store.Host) (bool, error) {
		if h.Status == store.HostMaintenance {
			return false, nil
		}
		if h.Status != store.HostPreparingForMaintenance {
			if _, aerr := checkAction(actMaintenance, h.Name, h.Status); aerr != nil {
				return false, aerr
			}
		}
		running, err := runningVMs(ctx, tx, h.ID)
		if err != nil {
			return false, err
		}
		if len(running) > 0 {
			return false, fail(api.CodeHostHasVMs, "Cannot switch host %s to Maintenance: VMs run on it (%s).", h.Name, strings.Join(running, ", "))
		}
		h.Status, h.StatusCode = store.HostMaintenance, ""
		h.StatusMessage = fmt.Sprintf("switched to Maintenance by %s", userName(ctx))
		if reason != "" {
			h.StatusMessage += ": " + reason
		}
		msg := fmt.Sprintf("Host %s was switched to Maintenance mode by %s.", h.Name, userName(ctx))
		if reason != "" {
			msg = fmt.Sprintf("Host %s was switched to Maintenance mode by %s (Reason: %s).", h.Name, userName(ctx), reason)
		}
		ev := store.Event{Action: "host.maintenance", ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name, Message: msg, Reason: reason}
		if moved > 0 {
			ev.Code = api.CodeHostEvacuated
			ev.Message = strings.TrimSuffix(msg, ".") + fmt.Sprintf(": its %d VMs left it.", moved)
		}
		return true, e.appendEvent(ctx, tx, ev)
	})
	if err == nil {
		e.hostChanged()
	}
	return h, err
}
