package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/engine/scheduler"
	"polyvirt/internal/migpolicy"
	"polyvirt/internal/store"
)

// Live migration, the engine's side. Only the engine orders a migration:
//
//  1. the rules: the VM is Up, its architecture migrates, its policy (the
//     request's, the VM's own, or its cluster's) is not none and can move
//     its memory (migpolicy); the destination is a host of the VM's
//     cluster that passes the scheduler's filters with the migration's
//     (not the source, the running VM's CPU level and page size, its exact
//     machine, the memory and CPUs, at most MigrationMaxIncoming incoming
//     per host), and the source sends at most MigrationMaxOutgoing at once
//     — decided under the cluster's scheduling lock and recorded at once
//     (the VM MigratingFrom, its destination held);
//  2. the orders: the source's plan (the running VM's facts, its disks
//     probed), the announcement to the destination (which disks it sees,
//     which it makes to copy into), the order to the source with the
//     policy's convergence schedule;
//  3. the follow: the source's status every half second (the VM document
//     shows it), and the outcome — the VM runs on the destination, or on
//     its source still — recorded with an event. A migration whose engine
//     stopped, or whose source does not answer, is found again by the
//     monitoring leader, which asks both hosts where the VM runs.
//
// While a VM is MigratingFrom the hosts' VM lists and events do not change
// it (vmsync): the migration decides where it runs.

// migrations are the migrations this engine follows, by VM id.
type migrations struct {
	mu      sync.Mutex
	flights map[string]*flight
	// moved are closed when a VM changed host (a console follows it).
	moved map[string]chan struct{}
	// evacs are the hosts' evacuations (evacuate.go), by host id.
	evacs map[string]*evacuation
}

// flight is one migration in flight.
type flight struct {
	mu   sync.Mutex
	doc  engineapi.Migration
	done chan struct{}
	// saved is when the document was last written.
	saved time.Time
	phase string
}

func (f *flight) snapshot() engineapi.Migration {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.doc
	d.Steps = append([]string(nil), f.doc.Steps...)
	if !agentapi.MigrationFinished(d.Phase) {
		d.ElapsedMs = time.Since(d.Started).Milliseconds()
	}
	return d
}

// flightOf is the migration this engine follows for a VM, or nil.
func (s *vmService) flightOf(id string) *flight {
	s.migs.mu.Lock()
	defer s.migs.mu.Unlock()
	return s.migs.flights[id]
}

// track registers a migration to follow; false when one is followed
// already for the VM.
func (s *vmService) track(doc engineapi.Migration) (*flight, bool) {
	s.migs.mu.Lock()
	defer s.migs.mu.Unlock()
	if s.migs.flights == nil {
		s.migs.flights = map[string]*flight{}
	}
	if f := s.migs.flights[doc.VM]; f != nil {
		return f, false
	}
	f := &flight{doc: doc, done: make(chan struct{}), phase: doc.Phase}
	s.migs.flights[doc.VM] = f
	return f, true
}

func (s *vmService) untrack(f *flight) {
	s.migs.mu.Lock()
	defer s.migs.mu.Unlock()
	if s.migs.flights[f.doc.VM] == f {
		delete(s.migs.flights, f.doc.VM)
	}
	close(f.done)
}

// movedSignal is closed when the VM changes host next.
func (s *vmService) movedSignal(id string) <-chan struct{} {
	s.migs.mu.Lock()
	defer s.migs.mu.Unlock()
	if s.migs.moved == nil {
		s.migs.moved = map[string]chan struct{}{}
	}
	ch := s.migs.moved[id]
	if ch == nil {
		ch = make(chan struct{})
		s.migs.moved[id] = ch
	}
	return ch
}

func (s *vmService) signalMoved(id string) {
	s.migs.mu.Lock()
	defer s.migs.mu.Unlock()
	if ch := s.migs.moved[id]; ch != nil {
		close(ch)
		delete(s.migs.moved, id)
	}
}

// Migrate moves a running VM to another host of its cluster (the one the
// request names, or the one the scheduler chooses) and returns at once
// with the migration as it starts; Migration follows it.
func (s *VMs) Migrate(ctx context.Context, ref string, req engineapi.MigrationRequest) (engineapi.Migration, error) {
	m, err := s.e.vms.migrate(ctx, ref, req, false)
	return m, coded(err)
}

// Migration is a VM's migration in flight, or its last one.
func (s *VMs) Migration(ctx context.Context, ref string) (engineapi.Migration, error) {
	v, err := s.e.findVM(ctx, ref)
	if err != nil {
		return engineapi.Migration{}, coded(err)
	}
	if f := s.e.vms.flightOf(v.ID); f != nil {
		return f.snapshot(), nil
	}
	if m, ok := migrationDoc(v); ok {
		return m, nil
	}
	return engineapi.Migration{}, coded(&api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("VM %s never migrated", v.Name)})
}

// CancelMigration cancels a VM's migration in flight: the VM keeps running
// on its source. It returns the migration's outcome (canceled, or what it
// came to first).
func (s *VMs) CancelMigration(ctx context.Context, ref string) (engineapi.Migration, error) {
	m, err := s.e.vms.cancelMigration(ctx, ref)
	return m, coded(err)
}

// Moved is closed when the VM changes host next (its migration arrived).
func (s *VMs) Moved(id string) <-chan struct{} { return s.e.vms.movedSignal(id) }

// migrationDoc reads a VM's stored migration.
func migrationDoc(v store.VM) (engineapi.Migration, bool) {
	var m engineapi.Migration
	if len(v.Migration) == 0 || json.Unmarshal(v.Migration, &m) != nil || m.ID == "" {
		return m, false
	}
	return m, true
}

// policyOf is the migration policy in effect and where it comes from.
func policyOf(requested string, v store.VM, c store.Cluster) (string, string) {
	switch {
	case requested != "":
		return requested, "the requested"
	case v.MigrationPolicy != "":
		return v.MigrationPolicy, fmt.Sprintf("VM %s's", v.Name)
	}
	return c.MigrationPolicy, fmt.Sprintf("cluster %s's", c.Name)
}

// vmCPUType is the CPU level a running VM needs of its destination: its
// named CPU model's type (custom, or the compatibility level of
// host-model), else — the host's own CPU — its source's type.
func vmCPUType(plan agentapi.MigrationPlan, sizes vmSizes, src store.Host) cpucatalog.Type {
	model := plan.CPUModel
	if model == "" && plan.CPUMode == "" {
		model = sizes.CPUModel
	}
	if model != "" {
		if spec, err := archspec.For(sizes.Arch); err == nil {
			model = spec.CanonicalCPUModel(model)
		}
		for _, t := range cpucatalog.Types(sizes.Arch) {
			if strings.EqualFold(t.Model, model) {
				return t
			}
		}
		return cpucatalog.Type{}
	}
	t, _ := cpucatalog.Lookup(src.CPUType)
	return t
}

// migrationRequest is the scheduler's question for a migration's
// destination.
func (s *vmService) migrationRequest(v store.VM, c store.Cluster, src store.Host, plan agentapi.MigrationPlan) (scheduler.Request, error) {
	req, err := schedRequest(v, c, nil)
	if err != nil {
		return req, err
	}
	sz, err := sizesOf(v.Definition)
	if err != nil {
		return req, err
	}
	if plan.Machine != "" {
		req.VM.Machine = plan.Machine
	}
	req.Migration = &scheduler.Migration{SourceHostID: src.ID, CPUType: vmCPUType(plan, sz, src), PageKiB: plan.PageKiB,
		MaxIncoming: c.MigrationMaxIncoming}
	return req, nil
}

// noDestinationError answers a migration no host can take: 409 with each
// host's reasons.
func noDestinationError(v store.VM, c store.Cluster, verdicts []scheduler.Verdict) *api.Error {
	ae := &api.Error{Code: api.CodeMigrationNoDestination,
		Message: fmt.Sprintf("Cannot migrate VM %s: no host of cluster %s can take it (errors has each host's reasons).", v.Name, c.Name)}
	for _, vd := range verdicts {
		for _, r := range vd.Reasons {
			ae.Details = append(ae.Details, &api.Error{Code: r.Code, Message: r.Message, Field: "host:" + vd.HostName})
		}
	}
	return ae
}

// outgoingFrom counts the migrations leaving a host now.
func (s *vmService) outgoingFrom(ctx context.Context, hostID string) (int, error) {
	vms, err := s.e.st.ListVMs(ctx, store.VMFilter{HostID: hostID, States: []store.VMState{store.VMMigratingFrom}, Brief: true})
	return len(vms), err
}

// migrate checks, decides, records and orders a migration (evacuation:
// one of a host switching to Maintenance).
func (s *vmService) migrate(ctx context.Context, ref string, req engineapi.MigrationRequest, evacuation bool) (engineapi.Migration, error) {
	e := s.e
	t0 := time.Now()
	v, err := e.findVM(ctx, ref)
	if err != nil {
		return engineapi.Migration{}, err
	}
	switch v.State {
	case store.VMUp:
	case store.VMMigratingFrom:
		return engineapi.Migration{}, fail(api.CodeMigrationInProgress, "VM %s migrates already; cancel it first (polyvirt vm migrate %s --cancel)", v.Name, v.Name)
	default:
		return engineapi.Migration{}, fail(api.CodeMigrationVMNotUp, "VM %s is %s; only a VM that is Up migrates", v.Name, v.State)
	}
	if req.MaxBandwidthMiBs < 0 {
		return engineapi.Migration{}, api.FieldError(api.CodeMigrationBandwidthInvalid, "maxBandwidthMiBs", "%d MiB/s: want a positive cap (or none)", req.MaxBandwidthMiBs)
	}
	c, err := e.st.GetCluster(ctx, v.ClusterID)
	if err != nil {
		return engineapi.Migration{}, err
	}
	pname, from := policyOf(req.Policy, v, c)
	p, err := migpolicy.For(pname)
	if err != nil {
		return engineapi.Migration{}, err
	}
	sz, err := sizesOf(v.Definition)
	if err != nil {
		return engineapi.Migration{}, err
	}
	if spec, err := archspec.For(sz.Arch); err != nil || !spec.Migration {
		return engineapi.Migration{}, fail(api.CodeMigrationNotSupported, "VM %s cannot migrate: %s VMs do not migrate", v.Name, sz.Arch)
	}
	if err := migpolicy.Check(p, from, agentapi.MigrationPlan{Name: v.Name}); err != nil {
		return engineapi.Migration{}, err
	}
	var want store.Host
	if req.Host != "" {
		if want, err = e.findHost(ctx, req.Host); err != nil {
			return engineapi.Migration{}, err
		}
		if want.ClusterID != v.ClusterID {
			return engineapi.Migration{}, s.otherClusterError(ctx, v, c, want)
		}
	}
	src, err := e.st.GetHost(ctx, v.HostID)
	if err != nil {
		return engineapi.Migration{}, err
	}
	if src.Status != store.HostUp && src.Status != store.HostPreparingForMaintenance {
		return engineapi.Migration{}, fail(api.CodeHostStatusIllegal, "Cannot migrate VM %s: its host %s is %s", v.Name, src.Name, src.Status)
	}
	plan, err := s.agents.MigrationPlan(ctx, src, v.ID)
	if err != nil {
		return engineapi.Migration{}, agentAPIError(err)
	}
	if err := migpolicy.Check(p, from, plan); err != nil {
		return engineapi.Migration{}, err
	}
	lock := s.clusterLock(c.ID)
	lock.Lock()
	doc, dest, err := s.decideMigration(ctx, v, c, src, plan, want, p, req, evacuation)
	lock.Unlock()
	if err != nil {
		return engineapi.Migration{}, err
	}
	f := s.flightOf(doc.VM)
	abandon := func(err error) (engineapi.Migration, error) {
		ae := asAPIError(err)
		s.conclude(ctx, f, src, dest, agentapi.MigrationStatus{Phase: agentapi.PhaseFailed, Code: ae.Code, Error: ae.Message})
		return engineapi.Migration{}, err
	}
	def, err := s.agentDefinition(v)
	if err != nil {
		return abandon(err)
	}
	in, err := s.agents.Announce(ctx, dest, agentapi.IncomingRequest{Migration: doc.ID, VM: v.ID, Name: v.Name, SourceHost: src.Name,
		Definition: def, Disks: plan.Disks, TTLSeconds: 300})
	if err != nil {
		return abandon(agentAPIError(err))
	}
	var copyDisks, shared []string
	for _, d := range in.Disks {
		switch {
		case d.Shared || d.ReadOnly:
			shared = append(shared, d.Target)
		default:
			copyDisks = append(copyDisks, d.Target)
		}
	}
	order := agentapi.MigrationOrder{Migration: doc.ID, DestinationHost: dest.Name, Destination: in, Policy: p.Name,
		Schedule: p.Schedule, AutoConverge: p.AutoConverge, PostCopy: p.PostCopy, MaxBandwidthMiBs: uint64(req.MaxBandwidthMiBs),
		EncryptStream: c.MigrationEncrypted, CopyDisks: copyDisks}
	st, err := s.agents.Migrate(ctx, src, v.ID, order)
	if err != nil {
		if _, werr := s.agents.Withdraw(context.WithoutCancel(ctx), dest, v.ID); werr != nil {
			e.log.Warn("cannot withdraw an announcement", "vm", v.Name, "host", dest.Name, "err", werr)
		}
		return abandon(agentAPIError(err))
	}
	f.mu.Lock()
	f.doc.SharedDisks, f.doc.CopiedDisks = shared, copyDisks
	f.doc.EngineMs = time.Since(t0).Milliseconds()
	f.mu.Unlock()
	s.apply(f, st)
	s.save(ctx, f, true)
	e.log.Info("migration ordered", "vm", v.Name, "from", src.Name, "to", dest.Name, "policy", p.Name, "copy", copyDisks,
		"engineMs", time.Since(t0).Milliseconds())
	go s.follow(f)
	return f.snapshot(), nil
}

// otherClusterError refuses a destination outside the VM's cluster.
func (s *vmService) otherClusterError(ctx context.Context, v store.VM, c store.Cluster, h store.Host) error {
	other, err := s.e.st.GetCluster(ctx, h.ClusterID)
	if err != nil {
		return err
	}
	return &api.Error{Code: api.CodeVMClusterArch, Field: "host",
		Message: fmt.Sprintf("Cannot migrate VM %s to host %s: it is in cluster %s (%s), and a VM migrates within its cluster %s (%s) only — one architecture and CPU level",
			v.Name, h.Name, other.Name, archOrNone(string(other.Arch)), c.Name, archOrNone(string(c.Arch)))}
}

func archOrNone(s string) string {
	if s == "" {
		return "no architecture yet"
	}
	return s
}

// decideMigration chooses the destination under the cluster's scheduling
// lock and records the migration (the VM MigratingFrom): the next decision
// counts it on both hosts.
func (s *vmService) decideMigration(ctx context.Context, v store.VM, c store.Cluster, src store.Host, plan agentapi.MigrationPlan,
	want store.Host, p migpolicy.Policy, req engineapi.MigrationRequest, evacuation bool) (engineapi.Migration, store.Host, error) {
	e := s.e
	cur, err := e.st.GetVM(ctx, v.ID)
	if err != nil {
		return engineapi.Migration{}, store.Host{}, err
	}
	if cur.State != store.VMUp || cur.HostID != src.ID {
		return engineapi.Migration{}, store.Host{}, fail(api.CodeVersionConflict, "VM %s changed while its migration was being decided (%s on %s); try again",
			cur.Name, cur.State, cur.HostID)
	}
	n, err := s.outgoingFrom(ctx, src.ID)
	if err != nil {
		return engineapi.Migration{}, store.Host{}, err
	}
	if n >= c.MigrationMaxOutgoing {
		return engineapi.Migration{}, store.Host{}, fail(api.CodeMigrationOutgoingLimit,
			"Cannot migrate VM %s now: host %s sends %d VMs already, the most cluster %s allows at once (migrationMaxOutgoing)",
			v.Name, src.Name, n, c.Name)
	}
	fleet, hosts, err := s.fleetFor(ctx, c)
	if err != nil {
		return engineapi.Migration{}, store.Host{}, err
	}
	sreq, err := s.migrationRequest(cur, c, src, plan)
	if err != nil {
		return engineapi.Migration{}, store.Host{}, err
	}
	f := scheduler.NewFleet(fleet, s.cfg.Policy)
	idx := -1
	if want.ID != "" {
		for i, vd := range f.Explain(sreq) {
			if vd.HostID != want.ID {
				continue
			}
			if !vd.Fits {
				return engineapi.Migration{}, store.Host{}, noDestinationError(v, c, []scheduler.Verdict{vd})
			}
			idx = i
		}
		if idx < 0 {
			return engineapi.Migration{}, store.Host{}, fail(api.CodeNotFound, "host %s is not in cluster %s", want.Name, c.Name)
		}
	} else {
		d, err := f.Schedule(sreq)
		var nh *scheduler.NoHostError
		if errors.As(err, &nh) {
			return engineapi.Migration{}, store.Host{}, noDestinationError(v, c, nh.Verdicts)
		}
		if err != nil {
			return engineapi.Migration{}, store.Host{}, err
		}
		idx = d.Index
	}
	dest := hosts[idx]
	now := time.Now().UTC()
	doc := engineapi.Migration{ID: uuid.NewString(), VM: v.ID, Name: v.Name, SourceID: src.ID, Source: src.Name,
		DestinationID: dest.ID, Destination: dest.Name, Policy: p.Name, Phase: agentapi.PhasePreparing,
		EncryptedStream: c.MigrationEncrypted, Started: now, Updated: now, Evacuation: evacuation, Reason: req.Reason, User: userName(ctx)}
	raw, _ := json.Marshal(doc)
	// Followed before it is recorded: the leader adopts only migrations
	// nobody follows.
	fl, fresh := s.track(doc)
	if !fresh {
		return engineapi.Migration{}, store.Host{}, fail(api.CodeMigrationInProgress, "VM %s migrates already", v.Name)
	}
	_, err = e.mutateVM(ctx, v.ID, func(tx store.Tx, cur *store.VM) (bool, error) {
		if cur.State != store.VMUp || cur.HostID != src.ID {
			return false, fail(api.CodeVersionConflict, "VM %s changed while its migration was being decided; try again", cur.Name)
		}
		cur.State, cur.MigratingToHostID, cur.Migration = store.VMMigratingFrom, dest.ID, raw
		msg := fmt.Sprintf("Migration started (VM: %s, Source: %s, Destination: %s, User: %s, Policy: %s).", cur.Name, src.Name, dest.Name,
			userName(ctx), p.Name)
		return true, e.appendEvent(ctx, tx, store.Event{Action: "vm.migrate", ObjectKind: "vm", ObjectID: cur.ID, ObjectName: cur.Name,
			Code: api.CodeVMMigrationStart, Message: msg, Reason: req.Reason})
	})
	if err != nil {
		s.untrackOnly(fl)
		return engineapi.Migration{}, store.Host{}, err
	}
	return doc, dest, nil
}

// apply takes a source's status into a flight.
func (s *vmService) apply(f *flight, st agentapi.MigrationStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	applyStatus(&f.doc, st)
}

// applyStatus takes a source's status into a migration's document.
func applyStatus(d *engineapi.Migration, st agentapi.MigrationStatus) {
	if st.Phase != "" {
		d.Phase = st.Phase
	}
	d.Pass = st.Pass
	d.MemoryTotal, d.MemoryProcessed, d.MemoryRemaining, d.MemoryRate = st.MemoryTotal, st.MemoryProcessed, st.MemoryRemaining, st.MemoryRate
	d.DirtyPagesPerSec = st.DirtyPagesPerSec
	d.DiskTotal, d.DiskProcessed, d.DiskRemaining, d.DiskRate = st.DiskTotal, st.DiskProcessed, st.DiskRemaining, st.DiskRate
	if st.AllowedDowntimeMs > 0 {
		d.AllowedDowntimeMs = st.AllowedDowntimeMs
	}
	if len(st.Steps) > 0 {
		d.Steps = append([]string(nil), st.Steps...)
	}
	if st.DowntimeMs > 0 {
		d.DowntimeMs = st.DowntimeMs
	}
	if st.Code != "" || st.Error != "" {
		d.Code, d.Error = st.Code, st.Error
	} else if d.Code == api.CodeMigrationOutcomeUnknown {
		d.Code, d.Error = "", ""
	}
	if agentapi.MigrationFinished(st.Phase) {
		d.Finished = time.Now().UTC()
		if !st.Finished.IsZero() {
			d.Finished = st.Finished
		}
		d.ElapsedMs = d.Finished.Sub(d.Started).Milliseconds()
	}
	d.Updated = time.Now().UTC()
}

// save writes a flight's document into the VM (always, or when its phase
// changed or it was last written 3 s ago).
func (s *vmService) save(ctx context.Context, f *flight, always bool) {
	f.mu.Lock()
	if !always && f.doc.Phase == f.phase && time.Since(f.saved) < 3*time.Second {
		f.mu.Unlock()
		return
	}
	f.phase, f.saved = f.doc.Phase, time.Now()
	doc := f.doc
	f.mu.Unlock()
	raw, _ := json.Marshal(doc)
	_, err := s.e.mutateVM(ctx, doc.VM, func(tx store.Tx, cur *store.VM) (bool, error) {
		if cur.State != store.VMMigratingFrom {
			return false, nil
		}
		if m, ok := migrationDoc(*cur); ok && m.ID != doc.ID {
			return false, nil
		}
		cur.Migration = raw
		return true, nil
	})
	if err != nil && ctx.Err() == nil {
		s.e.log.Warn("cannot record a migration's progress", "vm", doc.Name, "err", err)
	}
}

// followInterval is how often the source is asked how a migration goes.
var followInterval = 500 * time.Millisecond

// unknownAfter is how long a source may not answer before the engine asks
// the destination and both hosts' lists.
const unknownAfter = 5 * time.Second

// follow follows a migration to its outcome.
func (s *vmService) follow(f *flight) {
	ctx := s.streams
	doc := f.snapshot()
	tick := time.NewTicker(followInterval)
	defer tick.Stop()
	var silentSince time.Time
	for {
		select {
		case <-ctx.Done():
			s.untrackOnly(f)
			return
		case <-tick.C:
		}
		src, err1 := s.e.st.GetHost(ctx, doc.SourceID)
		dst, err2 := s.e.st.GetHost(ctx, doc.DestinationID)
		if err1 != nil || err2 != nil {
			// A host removed: its side is gone; the other tells.
			s.resolve(ctx, f, src, dst, err1 == nil, err2 == nil)
			if f.isDone() {
				return
			}
			continue
		}
		st, err := s.agents.MigrationStatus(ctx, src, doc.VM)
		switch {
		case err == nil && (st.Migration == doc.ID || st.Migration == "" && st.Adopted):
			silentSince = time.Time{}
			if agentapi.MigrationFinished(st.Phase) {
				s.conclude(ctx, f, src, dst, st)
				return
			}
			s.apply(f, st)
			s.save(ctx, f, false)
		case err == nil || notFoundOnAgent(err):
			// The source knows nothing of it (its agent restarted after the
			// migration ended, or another one runs): where is the VM?
			s.resolve(ctx, f, src, dst, true, true)
			if f.isDone() {
				return
			}
		default:
			if silentSince.IsZero() {
				silentSince = time.Now()
			}
			if time.Since(silentSince) < unknownAfter {
				continue
			}
			f.mu.Lock()
			f.doc.Code = api.CodeMigrationOutcomeUnknown
			f.doc.Error = fmt.Sprintf("host %s does not answer (%v); the engine asks both hosts where VM %s runs", src.Name, shortAgentError(err), doc.Name)
			f.mu.Unlock()
			s.save(ctx, f, false)
			s.resolve(ctx, f, src, dst, false, true)
			if f.isDone() {
				return
			}
		}
	}
}

func shortAgentError(err error) string {
	if ae := asAgentError(err); ae != nil {
		return ae.Msg
	}
	return err.Error()
}

func (f *flight) isDone() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// untrackOnly forgets a flight without an outcome (the engine stops: the
// next leader finds it again).
func (s *vmService) untrackOnly(f *flight) {
	if !f.isDone() {
		s.untrack(f)
	}
}

// resolve finds where a VM whose migration's source cannot say runs, by
// asking both hosts (those that can be asked): the destination has it
// running (it arrived), or the source runs it (the migration failed).
// Without an answer from each host that matters it waits.
func (s *vmService) resolve(ctx context.Context, f *flight, src, dst store.Host, askSrc, askDst bool) {
	doc := f.snapshot()
	// dstSays: the destination answered, and has not got the VM.
	dstSays := false
	if askDst {
		in, err := s.agents.Incoming(ctx, dst, doc.VM)
		if err == nil && in.State == agentapi.IncomingArrived && in.Migration == doc.ID {
			s.conclude(ctx, f, src, dst, agentapi.MigrationStatus{Migration: doc.ID, Phase: agentapi.PhaseCompleted, DowntimeMs: in.DowntimeMs})
			return
		}
		inErr := err
		vm, err := s.agents.GetVM(ctx, dst, doc.VM)
		if err == nil && runs(stateFromAgent(vm.State, vm.Reason)) {
			s.conclude(ctx, f, src, dst, agentapi.MigrationStatus{Migration: doc.ID, Phase: agentapi.PhaseCompleted})
			return
		}
		dstSays = (inErr == nil && in.State != agentapi.IncomingArriving || notFoundOnAgent(inErr)) && notFoundOnAgent(err)
	}
	if !askSrc {
		return
	}
	vm, err := s.agents.GetVM(ctx, src, doc.VM)
	switch {
	case err == nil && runs(stateFromAgent(vm.State, vm.Reason)):
		// Still on the source, and no migration runs there (or the
		// source would have said so): it failed.
		if st, err := s.agents.MigrationStatus(ctx, src, doc.VM); err == nil && !agentapi.MigrationFinished(st.Phase) {
			return
		}
		s.conclude(ctx, f, src, dst, agentapi.MigrationStatus{Migration: doc.ID, Phase: agentapi.PhaseFailed, Code: api.CodeMigrationFailed,
			Error: fmt.Sprintf("the migration ended while the engine could not follow it; VM %s runs on its source %s", doc.Name, src.Name)})
	case err == nil && dstSays:
		// On its source, stopped there (destroyed or crashed in the
		// middle), and the destination has not got it: the migration
		// failed, and the VM runs nowhere.
		if st, err := s.agents.MigrationStatus(ctx, src, doc.VM); err == nil && !agentapi.MigrationFinished(st.Phase) {
			return
		}
		s.conclude(ctx, f, src, dst, agentapi.MigrationStatus{Migration: doc.ID, Phase: agentapi.PhaseFailed, Code: api.CodeMigrationFailed,
			Error: fmt.Sprintf("the migration ended while the engine could not follow it; VM %s is %s on its source %s, and %s has not got it",
				doc.Name, vm.State, src.Name, dst.Name)})
	case notFoundOnAgent(err) && askDst:
		// Neither host has it running: the destination may still be
		// finishing its arrival; ask again.
	}
}

// arrivalWait bounds the wait for a destination to report the VM arrived
// once its source said the migration completed.
const arrivalWait = time.Minute

// downtimeWait bounds the wait for the destination's measure of the
// downtime once the VM arrived.
const downtimeWait = 5 * time.Second

// conclude records a migration's outcome: the VM on its destination, or on
// its source still (the announcement withdrawn there).
func (s *vmService) conclude(ctx context.Context, f *flight, src, dst store.Host, st agentapi.MigrationStatus) {
	e := s.e
	ctx = context.WithoutCancel(ctx)
	// The flight shows the outcome only once the VM's record has it: a
	// caller that sees the migration ended finds the VM where it ended.
	doc := f.snapshot()
	applyStatus(&doc, st)
	state := store.VMUp
	if st.Phase == agentapi.PhaseCompleted {
		// The destination says when the VM arrived, then (a moment later,
		// when libvirt recorded it) the downtime it measured.
		deadline := time.Now().Add(arrivalWait)
		var arrived time.Time
		for {
			in, err := s.agents.Incoming(ctx, dst, doc.VM)
			if err == nil && in.State == agentapi.IncomingArrived {
				if in.DowntimeMs > 0 {
					doc.DowntimeMs = in.DowntimeMs
					break
				}
				if arrived.IsZero() {
					arrived = time.Now()
				}
				if doc.DowntimeMs > 0 || time.Since(arrived) > downtimeWait {
					break
				}
			}
			if notFoundOnAgent(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if vm, err := s.agents.GetVM(ctx, dst, doc.VM); err == nil {
			if st := stateFromAgent(vm.State, vm.Reason); runs(st) {
				state = st
			}
		}
	} else {
		if dst.ID != "" {
			if _, err := s.agents.Withdraw(ctx, dst, doc.VM); err != nil && !notFoundOnAgent(err) {
				e.log.Warn("cannot withdraw an announcement", "vm", doc.Name, "host", dst.Name, "err", err)
			}
		}
		if vm, err := s.agents.GetVM(ctx, src, doc.VM); err == nil {
			state = stateFromAgent(vm.State, vm.Reason)
		}
	}
	raw, _ := json.Marshal(doc)
	_, err := e.mutateVM(ctx, doc.VM, func(tx store.Tx, cur *store.VM) (bool, error) {
		if cur.State != store.VMMigratingFrom || cur.MigratingToHostID != doc.DestinationID {
			return false, nil
		}
		ev := store.Event{Action: "vm.migrate", ObjectKind: "vm", ObjectID: cur.ID, ObjectName: cur.Name, Reason: doc.Reason, User: doc.User}
		cur.MigratingToHostID, cur.Migration = "", raw
		switch doc.Phase {
		case agentapi.PhaseCompleted:
			cur.HostID, cur.LastHostID, cur.State = doc.DestinationID, doc.SourceID, state
			ev.Code = api.CodeVMMigrationDone
			ev.Message = fmt.Sprintf("Migration completed (VM: %s, Source: %s, Destination: %s, Duration: %s, Downtime: %d ms).",
				cur.Name, doc.Source, doc.Destination, time.Duration(doc.ElapsedMs)*time.Millisecond, doc.DowntimeMs)
		case agentapi.PhaseCanceled:
			cur.State = state
			ev.Code, ev.Severity = api.CodeVMMigrationCanceled, store.SeverityWarning
			ev.Message = fmt.Sprintf("Migration of VM %s from %s to %s was canceled; it runs on %s.", cur.Name, doc.Source, doc.Destination, doc.Source)
			ev.Reason = doc.Error
		default:
			cur.State = state
			if state == store.VMDown {
				cur.HostID, cur.LastHostID = "", doc.SourceID
			}
			ev.Code, ev.Severity = api.CodeVMMigrationFailed, store.SeverityError
			where := "it runs on " + doc.Source
			if !runs(state) {
				where = fmt.Sprintf("it is %s on %s", state, doc.Source)
			}
			ev.Message = fmt.Sprintf("Migration failed (VM: %s, Source: %s, Destination: %s): %s; %s.",
				cur.Name, doc.Source, doc.Destination, firstNonEmpty(doc.Code, api.CodeMigrationFailed), where)
			ev.Reason = doc.Error
		}
		return true, e.appendEvent(ctx, tx, ev)
	})
	if err != nil {
		e.log.Warn("cannot record a migration's outcome", "vm", doc.Name, "err", err)
	} else {
		e.log.Info("migration ended", "vm", doc.Name, "phase", doc.Phase, "from", doc.Source, "to", doc.Destination,
			"ms", doc.ElapsedMs, "downtimeMs", doc.DowntimeMs, "err", doc.Error)
	}
	f.mu.Lock()
	f.doc = doc
	f.mu.Unlock()
	if doc.Phase == agentapi.PhaseCompleted {
		s.signalMoved(doc.VM)
	}
	s.untrack(f)
}

// cancelMigration cancels a VM's migration in flight.
func (s *vmService) cancelMigration(ctx context.Context, ref string) (engineapi.Migration, error) {
	e := s.e
	v, err := e.findVM(ctx, ref)
	if err != nil {
		return engineapi.Migration{}, err
	}
	if v.State != store.VMMigratingFrom {
		return engineapi.Migration{}, fail(api.CodeMigrationNotInProgress, "VM %s does not migrate now (it is %s)", v.Name, v.State)
	}
	src, err := e.st.GetHost(ctx, v.HostID)
	if err != nil {
		return engineapi.Migration{}, err
	}
	if _, err := s.agents.CancelMigration(ctx, src, v.ID); err != nil && !notFoundOnAgent(err) {
		if ae := asAgentError(err); ae == nil || ae.Code != api.CodeMigrationNotInProgress {
			return engineapi.Migration{}, agentAPIError(err)
		}
	}
	if f := s.flightOf(v.ID); f != nil {
		select {
		case <-f.done:
		case <-time.After(45 * time.Second):
		case <-ctx.Done():
		}
	}
	v, err = e.st.GetVM(ctx, v.ID)
	if err != nil {
		return engineapi.Migration{}, err
	}
	if f := s.flightOf(v.ID); f != nil {
		return f.snapshot(), nil
	}
	m, _ := migrationDoc(v)
	return m, nil
}

// adoptMigrations follows the migrations in flight that no engine follows
// (their engine stopped): the monitoring leader looks for them.
func (s *vmService) adoptMigrations(ctx context.Context) {
	vms, err := s.e.st.ListVMs(ctx, store.VMFilter{States: []store.VMState{store.VMMigratingFrom}})
	if err != nil {
		return
	}
	for _, v := range vms {
		if s.flightOf(v.ID) != nil {
			continue
		}
		doc, ok := migrationDoc(v)
		if ok && time.Since(doc.Updated) < s.cfg.AdoptAfter {
			// Its engine follows it still.
			continue
		}
		if !ok {
			doc = engineapi.Migration{ID: uuid.NewString(), VM: v.ID, Name: v.Name, SourceID: v.HostID, DestinationID: v.MigratingToHostID,
				Phase: agentapi.PhaseCopyingMemory, Started: v.StateChanged}
		}
		doc.VM, doc.Name = v.ID, v.Name
		f, fresh := s.track(doc)
		if !fresh {
			continue
		}
		s.e.log.Warn("following a migration its engine left", "vm", v.Name, "from", doc.Source, "to", doc.Destination)
		if err := s.e.appendEvent(ctx, s.e.st, store.Event{Action: "vm.migrate", Severity: store.SeverityWarning, ObjectKind: "vm",
			ObjectID: v.ID, ObjectName: v.Name, Code: api.CodeVMMigrationReconciled,
			Message: fmt.Sprintf("The migration of VM %s from %s to %s was found in flight without its engine: this engine asks both hosts how it ended.",
				v.Name, doc.Source, doc.Destination)}); err != nil {
			s.e.log.Warn("audit log", "err", err)
		}
		go s.follow(f)
	}
}

// waitMigration waits for the outcome of a VM's migration this engine
// follows.
func (s *vmService) waitMigration(ctx context.Context, id string) (engineapi.Migration, error) {
	if f := s.flightOf(id); f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return f.snapshot(), ctx.Err()
		}
	}
	v, err := s.e.st.GetVM(ctx, id)
	if err != nil {
		return engineapi.Migration{}, err
	}
	m, _ := migrationDoc(v)
	return m, nil
}
