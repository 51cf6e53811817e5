package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/libvirttls"
	"polyvirt/internal/migpolicy"
	"polyvirt/internal/vmspec"
)

// The sending side of a live migration. The engine asks for the running
// VM's plan (its machine, CPU, memory and disks, each disk with a probe
// file beside it), announces the VM to the destination, and orders the
// migration here: this host's libvirtd sends the domain peer to peer to
// the destination's libvirtd over TLS (the source presents the host's
// libvirt certificate), while the agent reads libvirt's progress every
// half second and steps through the policy's convergence schedule. The
// domain keeps its UUID, takes the destination's name, owner element and
// console log, and is undefined here when it arrived.

// migrations holds this agent's migrations: those it sends (by VM id) and
// the VMs announced to it (incoming.go).
type migrations struct {
	mu     sync.Mutex
	ctx    context.Context
	out    map[string]*outgoing
	in     map[string]*incoming
	probes map[string]time.Time
}

// background is the context migrations run in (the agent's, once
// started).
func (m *migrations) background() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return context.Background()
	}
	return m.ctx
}

// keepFinished is how long a finished migration's status stays readable.
const keepFinished = 15 * time.Minute

// monitorInterval is how often a migration's progress is read.
var monitorInterval = 500 * time.Millisecond

// outgoing is one migration this host sends.
type outgoing struct {
	mu       sync.Mutex
	st       agentapi.MigrationStatus
	canceled bool
	aborted  bool
	// suspended tells that the schedule paused the guest.
	suspended bool
	done      chan struct{}
	// copied are the files of the disks copied to the destination: they
	// go from here when the VM arrived.
	copied []string
}

func (o *outgoing) status() agentapi.MigrationStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.st
	st.Steps = slices.Clone(o.st.Steps)
	if !agentapi.MigrationFinished(st.Phase) {
		st.ElapsedMs = time.Since(st.Started).Milliseconds()
	}
	return st
}

func (o *outgoing) finished() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

// libvirtFiles are this host's libvirt TLS files.
func (a *Agent) libvirtFiles() libvirttls.Files {
	return libvirttls.Files{Dir: a.cfg.Migration.PKIDir}
}

// MigrationPlan reads what the destination of a running VM must offer,
// and makes a probe file beside each of its disks (removed after a few
// minutes, or when the migration starts).
func (a *Agent) MigrationPlan(ctx context.Context, id string) (*agentapi.MigrationPlan, error) {
	e, err := a.entry(id)
	if err != nil {
		return nil, err
	}
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	st, err := c.DomainState(ctx, e.Domain)
	if err != nil {
		return nil, err
	}
	if st != libvirtconn.StateRunning && st != libvirtconn.StateBlocked && st != libvirtconn.StatePaused {
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationVMNotUp, "VM %s is %s; only a running VM migrates", e.Name, stateOf(st))
	}
	x, err := c.DomainXML(ctx, e.Domain, false)
	if err != nil {
		return nil, err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return nil, err
	}
	plan := &agentapi.MigrationPlan{VM: e.ID, Name: e.Name, Disks: []agentapi.MigrationDisk{}}
	if dom.OS != nil && dom.OS.Type != nil {
		plan.Machine = dom.OS.Type.Machine
	}
	if dom.CPU != nil {
		plan.CPUMode = dom.CPU.Mode
		if dom.CPU.Model != nil {
			plan.CPUModel = dom.CPU.Model.Value
		}
	}
	if e.Fake {
		// A fake-KVM host runs the CPU TCG emulates: the VM's level is its
		// definition's, as a real host of this host's kind runs it (a
		// host-model VM is at the host's level).
		if def, err := vmspec.Decode(e.Definition); err == nil && def.CPU != nil {
			plan.CPUMode, plan.CPUModel = def.CPU.Mode, def.CPU.Model
		}
	}
	if dom.Memory != nil {
		plan.MemoryMiB = int64(kib(dom.Memory.Value, dom.Memory.Unit) / 1024)
	}
	if dom.VCPU != nil {
		plan.VCPUs = int(dom.VCPU.Value)
	}
	if report, err := a.Capabilities(ctx, false); err == nil {
		plan.PageKiB = report.Pages.BaseKiB
		if mb := dom.MemoryBacking; mb != nil && mb.MemoryHugePages != nil {
			plan.HugePages = true
			plan.PageKiB = report.Pages.HugePageKiB
			for _, p := range mb.MemoryHugePages.Hugepages {
				if p.Size != 0 {
					plan.PageKiB = int(kib(uint(p.Size), p.Unit))
				}
			}
		}
	}
	if mb := dom.MemoryBacking; mb != nil {
		plan.FileBacked = mb.MemorySource != nil && mb.MemorySource.Type == "file"
		plan.SharedMemory = mb.MemoryAccess != nil && mb.MemoryAccess.Mode == "shared"
	}
	if dom.Devices != nil {
		for _, d := range dom.Devices.Disks {
			md, ok := a.migrationDisk(d)
			if ok {
				plan.Disks = append(plan.Disks, md)
			}
		}
	}
	return plan, nil
}

// kib converts a libvirt memory value to KiB.
func kib(v uint, unit string) uint64 {
	switch strings.ToLower(unit) {
	case "b", "bytes":
		return uint64(v) / 1024
	case "", "k", "kib":
		return uint64(v)
	case "kb":
		return uint64(v) * 1000 / 1024
	case "m", "mib":
		return uint64(v) << 10
	case "mb":
		return uint64(v) * 1000 * 1000 / 1024
	case "g", "gib":
		return uint64(v) << 20
	}
	return uint64(v)
}

// migrationDisk describes one file disk of the domain, with a probe file
// in its directory; false for what is no file (an empty CD-ROM tray, a
// block device: those are the hosts' own).
func (a *Agent) migrationDisk(d libvirtxml.DomainDisk) (agentapi.MigrationDisk, bool) {
	if d.Source == nil || d.Source.File == nil || d.Source.File.File == "" || d.Target == nil {
		return agentapi.MigrationDisk{}, false
	}
	md := agentapi.MigrationDisk{Target: d.Target.Dev, Path: d.Source.File.File,
		ReadOnly: d.ReadOnly != nil || d.Device == "cdrom" || d.Device == "floppy" && d.ReadOnly != nil}
	if d.Driver != nil {
		md.Format = d.Driver.Type
	}
	host := filepath.Join(a.root, md.Path)
	if fi, err := os.Stat(host); err == nil {
		md.VirtualSize = uint64(fi.Size())
		if md.Format == "qcow2" {
			if f, err := os.Open(host); err == nil {
				if h, err := hostpath.ReadQCOW2Header(f); err == nil {
					md.VirtualSize = h.Size
				}
				f.Close()
			}
		}
	}
	if !md.ReadOnly {
		md.Probe = a.makeProbe(filepath.Dir(md.Path))
	}
	return md, true
}

// probeLife is how long a probe file stays.
const probeLife = 5 * time.Minute

// makeProbe makes an empty file of a random name in a directory: a host
// that sees it sees the same storage. "" when the directory is not
// writable (its disks are then taken as this host's own).
func (a *Agent) makeProbe(dir string) string {
	f, err := os.CreateTemp(filepath.Join(a.root, dir), ".polyvirt-probe-*")
	if err != nil {
		return ""
	}
	f.Close()
	p := filepath.Join(dir, filepath.Base(f.Name()))
	a.mig.mu.Lock()
	if a.mig.probes == nil {
		a.mig.probes = map[string]time.Time{}
	}
	a.mig.probes[p] = time.Now().Add(probeLife)
	a.mig.mu.Unlock()
	time.AfterFunc(probeLife, func() { a.removeProbes(false) })
	return p
}

// removeProbes removes the probe files (all, or the expired ones).
func (a *Agent) removeProbes(all bool) {
	a.mig.mu.Lock()
	defer a.mig.mu.Unlock()
	for p, until := range a.mig.probes {
		if all || time.Now().After(until) {
			_ = os.Remove(filepath.Join(a.root, p))
			delete(a.mig.probes, p)
		}
	}
}

// checkOrder refuses an order that is not complete or not safe: the
// destination must be another host, reached over TLS.
func (a *Agent) checkOrder(o agentapi.MigrationOrder) error {
	bad := func(field, format string, args ...any) error {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidArgument, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case o.Migration == "":
		return bad("migration", "the migration has no id")
	case o.DestinationHost == "" || o.DestinationHost == a.cfg.HostID:
		return bad("destinationHost", "the destination must be another host than %s", a.cfg.HostID)
	case !libvirtconn.IsTLSURI(o.Destination.LibvirtURI) || strings.Contains(o.Destination.LibvirtURI, "?"):
		return bad("destination.libvirtUri", "%q: a destination is reached over TLS only (qemu+tls://HOST:PORT/system)", o.Destination.LibvirtURI)
	case o.Destination.DomainName == "":
		return bad("destination.domainName", "no domain name on the destination")
	case o.Destination.MigrationAddress != "" && !strings.HasPrefix(o.Destination.MigrationAddress, "tcp://"):
		return bad("destination.migrationAddress", "%q: want tcp://ADDRESS", o.Destination.MigrationAddress)
	}
	for _, s := range append(append([]agentapi.StallingStep(nil), o.Schedule.Stalling...), stepsOf(o.Schedule.Init)...) {
		switch s.Action {
		case agentapi.ConvergeSetDowntime, agentapi.ConvergeAbort, agentapi.ConvergeSuspend:
		case agentapi.ConvergePostCopy:
			if !o.PostCopy {
				return bad("schedule", "a post-copy step needs postCopy")
			}
		default:
			return bad("schedule", "unknown convergence action %q", s.Action)
		}
	}
	return nil
}

func stepsOf(as []agentapi.ConvergenceAction) []agentapi.StallingStep {
	out := make([]agentapi.StallingStep, len(as))
	for i, a := range as {
		out[i] = agentapi.StallingStep{ConvergenceAction: a}
	}
	return out
}

// activeOutgoing counts the migrations this host sends now.
func (a *Agent) activeOutgoing() int {
	a.mig.mu.Lock()
	defer a.mig.mu.Unlock()
	n := 0
	for _, o := range a.mig.out {
		if !o.finished() {
			n++
		}
	}
	return n
}

// StartMigration starts sending a running VM to the destination the engine
// announced it to; the status says how it goes (MigrationStatus).
func (a *Agent) StartMigration(ctx context.Context, id string, order agentapi.MigrationOrder) (*agentapi.MigrationStatus, error) {
	e, err := a.entry(id)
	if err != nil {
		return nil, err
	}
	if err := a.checkOrder(order); err != nil {
		return nil, err
	}
	files := a.libvirtFiles()
	if !files.Exists() {
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationNoTLS,
			"host %s has no libvirt TLS certificate in %s: its agent joined before polyvirt set up libvirt's TLS (host enroll again)", a.cfg.HostID, files.Dir)
	}
	unlock := a.locks.lock(e.ID)
	defer unlock()
	a.mig.mu.Lock()
	if o := a.mig.out[e.ID]; o != nil && !o.finished() {
		a.mig.mu.Unlock()
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationInProgress, "VM %s migrates already (to %s)", e.Name, o.status().DestinationHost)
	}
	a.mig.mu.Unlock()
	if n := a.activeOutgoing(); n >= a.cfg.Migration.MaxOutgoing {
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationOutgoingLimit,
			"host %s sends %d VMs already (its limit, migration.max_outgoing)", a.cfg.HostID, n)
	}
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	st, err := c.DomainState(ctx, e.Domain)
	if err != nil {
		return nil, err
	}
	if st != libvirtconn.StateRunning && st != libvirtconn.StateBlocked && st != libvirtconn.StatePaused {
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationVMNotUp, "VM %s is %s; only a running VM migrates", e.Name, stateOf(st))
	}
	// The domain as the destination must see it.
	owner := Owner{VM: e.ID, Name: e.Name, Host: order.DestinationHost, Arch: e.Arch, FakeKVM: e.Fake,
		UUIDFrom: a.uuidFromOf(ctx, c, e), Definition: string(e.Definition)}
	params := libvirtconn.MigrateParams{
		MigrationURI: order.Destination.MigrationAddress, DestName: order.Destination.DomainName,
		BandwidthMiBs: order.MaxBandwidthMiBs, CopyDisks: order.CopyDisks,
		AutoConverge: order.AutoConverge, PostCopy: order.PostCopy, TLS: order.EncryptStream,
	}
	for _, inactive := range []bool{false, true} {
		x, err := c.MigratableXML(ctx, e.Domain, inactive)
		if err != nil {
			return nil, err
		}
		dx, err := destinationXML(x, owner, order.Destination.ConsoleLog)
		if err != nil {
			return nil, err
		}
		if inactive {
			params.PersistXML = dx
		} else {
			params.DestXML = dx
		}
	}
	copied, err := a.diskFiles(ctx, c, e, order.CopyDisks)
	if err != nil {
		return nil, err
	}
	o := &outgoing{done: make(chan struct{}), copied: copied, st: agentapi.MigrationStatus{
		Migration: order.Migration, VM: e.ID, Name: e.Name, SourceHost: a.cfg.HostID, DestinationHost: order.DestinationHost,
		Policy: order.Policy, Phase: agentapi.PhasePreparing, Started: time.Now().UTC(), CopiedDisks: order.CopyDisks,
	}}
	for _, d := range order.Destination.Disks {
		if d.Shared {
			o.st.SharedDisks = append(o.st.SharedDisks, d.Target)
		}
	}
	a.mig.mu.Lock()
	if a.mig.out == nil {
		a.mig.out = map[string]*outgoing{}
	}
	a.mig.out[e.ID] = o
	a.mig.mu.Unlock()
	a.removeProbes(true)
	uri := order.Destination.LibvirtURI + "?pkipath=" + files.PKIPath()
	a.log.Info("migration started", "vm", e.ID, "name", e.Name, "to", order.DestinationHost, "uri", uri,
		"policy", order.Policy, "copyDisks", order.CopyDisks, "encrypted", order.EncryptStream)
	go a.runMigration(o, c, e, uri, params, order)
	st2 := o.status()
	return &st2, nil
}

// uuidFromOf is the UUIDFrom of a domain of this host: its owner
// element's when it migrated here, else this agent's rule.
func (a *Agent) uuidFromOf(ctx context.Context, c libvirtconn.AgentConn, e *vmEntry) string {
	if x, err := c.DomainXML(ctx, e.Domain, true); err == nil {
		if o, err := ownerOf(x); err == nil && o.UUIDFrom != "" {
			return o.UUIDFrom
		}
	}
	return a.uuidFrom()
}

// diskFiles are the files of the domain's disks with the given targets.
func (a *Agent) diskFiles(ctx context.Context, c libvirtconn.AgentConn, e *vmEntry, targets []string) ([]string, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	x, err := c.DomainXML(ctx, e.Domain, false)
	if err != nil {
		return nil, err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return nil, err
	}
	var out []string
	for _, t := range targets {
		found := false
		if dom.Devices != nil {
			for _, d := range dom.Devices.Disks {
				if d.Target != nil && d.Target.Dev == t && d.Source != nil && d.Source.File != nil {
					out, found = append(out, d.Source.File.File), true
				}
			}
		}
		if !found {
			return nil, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidArgument, Field: "copyDisks",
				Message: fmt.Sprintf("VM %s has no file disk %s", e.Name, t)}
		}
	}
	return out, nil
}

// runMigration runs one migration to its end.
func (a *Agent) runMigration(o *outgoing, c libvirtconn.AgentConn, e *vmEntry, uri string, p libvirtconn.MigrateParams, order agentapi.MigrationOrder) {
	timeout := time.Duration(order.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(a.mig.background(), timeout)
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- c.Migrate(ctx, e.Domain, uri, p) }()
	stepper := migpolicy.NewStepper(order.Schedule)
	initDone := false
	tick := time.NewTicker(monitorInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-result:
			a.finishMigration(ctx, o, c, e, err)
			return
		case <-tick.C:
		}
		jctx, jcancel := context.WithTimeout(ctx, 5*time.Second)
		job, err := c.DomainJob(jctx, e.Domain, false)
		jcancel()
		if err != nil || !job.Type.Active() || job.Operation == libvirtconn.JobMigrationIn {
			continue
		}
		if !initDone {
			initDone = true
			for _, act := range stepper.Init() {
				a.converge(ctx, o, c, e, act, 0, stepper)
			}
		}
		o.mu.Lock()
		o.apply(job)
		canceled := o.canceled
		o.mu.Unlock()
		if canceled {
			// Canceled before libvirt's job existed: abort it now.
			_ = c.AbortJob(ctx, e.Domain)
			continue
		}
		if job.MemIteration > 0 {
			for _, act := range stepper.Observe(job.MemIteration) {
				a.converge(ctx, o, c, e, act, job.MemIteration, stepper)
			}
		}
	}
}

// apply takes libvirt's figures into the status (o.mu held).
func (o *outgoing) apply(job libvirtconn.JobStats) {
	s := &o.st
	s.Pass = job.MemIteration
	s.MemoryTotal, s.MemoryProcessed, s.MemoryRemaining = job.MemTotal, job.MemProcessed, job.MemRemaining
	s.MemoryRate, s.DirtyPagesPerSec = job.MemBps, job.DirtyRate
	s.DiskTotal, s.DiskProcessed, s.DiskRemaining, s.DiskRate = job.DiskTotal, job.DiskProcessed, job.DiskRemaining, job.DiskBps
	switch {
	case agentapi.MigrationFinished(s.Phase):
	case s.Phase == agentapi.PhasePostCopy || o.suspended:
	case job.DiskTotal > 0 && job.DiskRemaining > 0 && job.MemProcessed == 0:
		s.Phase = agentapi.PhaseCopyingDisks
	case job.MemIteration > 0 || job.MemProcessed > 0:
		s.Phase = agentapi.PhaseCopyingMemory
	}
}

// converge runs one action of the schedule.
func (a *Agent) converge(ctx context.Context, o *outgoing, c libvirtconn.AgentConn, e *vmEntry, act agentapi.ConvergenceAction, pass int, st *migpolicy.Stepper) {
	var err error
	switch act.Action {
	case agentapi.ConvergeSetDowntime:
		err = c.SetMaxDowntime(ctx, e.Domain, time.Duration(act.DowntimeMs)*time.Millisecond)
		if err == nil {
			o.mu.Lock()
			o.st.AllowedDowntimeMs = act.DowntimeMs
			o.mu.Unlock()
		}
	case agentapi.ConvergePostCopy:
		if err = c.StartPostCopy(ctx, e.Domain); err != nil {
			st.PostCopyFailed()
		} else {
			o.mu.Lock()
			o.st.Phase = agentapi.PhasePostCopy
			o.mu.Unlock()
		}
	case agentapi.ConvergeSuspend:
		if err = c.SuspendDomain(ctx, e.Domain); err == nil {
			o.mu.Lock()
			o.suspended, o.st.Phase = true, agentapi.PhaseSuspended
			o.mu.Unlock()
		}
	case agentapi.ConvergeAbort:
		o.mu.Lock()
		o.aborted = true
		o.mu.Unlock()
		err = c.AbortJob(ctx, e.Domain)
	}
	step := migpolicy.Describe(act, pass)
	if err != nil {
		step += " failed: " + err.Error()
		a.log.Warn("convergence step failed", "vm", e.ID, "step", act.Action, "err", err)
	} else {
		a.log.Info("convergence step", "vm", e.ID, "step", step)
	}
	o.mu.Lock()
	o.st.Steps = append(o.st.Steps, step)
	o.mu.Unlock()
}

// finishMigration records a migration's outcome. When it succeeded the
// domain is gone from here: the VM, its console log and the files of the
// disks copied belong to the destination now. When it failed the VM runs
// here still (a guest the schedule paused runs again).
func (a *Agent) finishMigration(ctx context.Context, o *outgoing, c libvirtconn.AgentConn, e *vmEntry, err error) {
	bg := a.mig.background()
	o.mu.Lock()
	s := &o.st
	s.Finished = time.Now().UTC()
	s.ElapsedMs = s.Finished.Sub(s.Started).Milliseconds()
	switch {
	case err == nil:
		s.Phase, s.MemoryRemaining, s.DiskRemaining = agentapi.PhaseCompleted, 0, 0
	case o.canceled:
		s.Phase, s.Code, s.Error = agentapi.PhaseCanceled, api.CodeMigrationCanceled, "canceled: "+err.Error()
	case o.aborted:
		s.Phase, s.Code, s.Error = agentapi.PhaseFailed, api.CodeMigrationNotConverging,
			"the copy did not converge within the policy's steps: "+err.Error()
	case ctx.Err() != nil:
		s.Phase, s.Code, s.Error = agentapi.PhaseFailed, api.CodeMigrationFailed, "timed out: "+err.Error()
	default:
		s.Phase, s.Code, s.Error = agentapi.PhaseFailed, api.CodeMigrationFailed, err.Error()
	}
	suspended := o.suspended
	st := *s
	o.mu.Unlock()
	if err == nil {
		if job, jerr := c.DomainJob(bg, e.Domain, true); jerr == nil && job.Type == libvirtconn.JobCompleted {
			o.mu.Lock()
			o.st.DowntimeMs = job.Downtime.Milliseconds()
			o.mu.Unlock()
		}
		a.index.remove(e.ID)
		_ = os.Remove(a.consoleLog(e.ID))
		for _, f := range o.copied {
			if rerr := os.Remove(filepath.Join(a.root, f)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				a.log.Warn("the source copy of a migrated disk stays", "vm", e.ID, "file", f, "err", rerr)
			}
		}
		a.log.Info("migration completed", "vm", e.ID, "name", e.Name, "to", st.DestinationHost, "took", st.ElapsedMs)
		a.hub.publish(agentapi.Event{Time: time.Now().UTC(), Host: a.cfg.HostID, VM: e.ID, Name: e.Name,
			Event: "migrated", Detail: "to " + st.DestinationHost, State: agentapi.StateUnknown})
	} else {
		if suspended {
			if rerr := c.ResumeDomain(bg, e.Domain); rerr != nil {
				a.log.Warn("the guest paused to finish a migration does not run again", "vm", e.ID, "err", rerr)
			}
		}
		a.log.Warn("migration did not complete", "vm", e.ID, "name", e.Name, "to", st.DestinationHost, "phase", st.Phase, "err", st.Error)
	}
	close(o.done)
	time.AfterFunc(keepFinished, func() {
		a.mig.mu.Lock()
		if a.mig.out[e.ID] == o {
			delete(a.mig.out, e.ID)
		}
		a.mig.mu.Unlock()
	})
}

// MigrationStatus is the current (or last) migration of a VM this host
// sends.
func (a *Agent) MigrationStatus(id string) (*agentapi.MigrationStatus, error) {
	cid, err := canonicalID(id)
	if err != nil {
		return nil, api.NewError(http.StatusNotFound, api.CodeMigrationNotInProgress, "no migration of VM %q on host %s", id, a.cfg.HostID)
	}
	a.mig.mu.Lock()
	o := a.mig.out[cid]
	a.mig.mu.Unlock()
	if o == nil {
		return nil, api.NewError(http.StatusNotFound, api.CodeMigrationNotInProgress, "no migration of VM %s on host %s", cid, a.cfg.HostID)
	}
	st := o.status()
	return &st, nil
}

// CancelMigration cancels a VM's migration in flight: the VM keeps running
// here. It waits (up to 30 s) for libvirt to end it.
func (a *Agent) CancelMigration(ctx context.Context, id string) (*agentapi.MigrationStatus, error) {
	cid, _ := canonicalID(id)
	a.mig.mu.Lock()
	o := a.mig.out[cid]
	a.mig.mu.Unlock()
	if o == nil || o.finished() {
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationNotInProgress, "VM %s does not migrate from host %s now", id, a.cfg.HostID)
	}
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	e, err := a.entry(cid)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.canceled = true
	o.mu.Unlock()
	// libvirt aborts a job that exists: one that does not yet (the
	// migration is being prepared) is aborted as soon as it does (the
	// monitor sees canceled), and asked again here meanwhile.
	deadline := time.After(30 * time.Second)
	retry := time.NewTicker(200 * time.Millisecond)
	defer retry.Stop()
	for {
		err := c.AbortJob(ctx, e.Domain)
		if err != nil {
			a.log.Debug("migration abort", "vm", cid, "err", err)
		}
		select {
		case <-o.done:
			st := o.status()
			return &st, nil
		case <-deadline:
			st := o.status()
			return &st, nil
		case <-ctx.Done():
			st := o.status()
			return &st, nil
		case <-retry.C:
		}
	}
}

// adoptMigrations finds, after the agent (re)connected, the migrations
// libvirt still runs for this host's VMs (an agent restarted in the middle
// of one: libvirt goes on without it) and follows each to its end, without
// a schedule.
func (a *Agent) adoptMigrations(ctx context.Context, c libvirtconn.AgentConn) {
	for _, e := range a.index.list() {
		a.mig.mu.Lock()
		o := a.mig.out[e.ID]
		a.mig.mu.Unlock()
		if o != nil && !o.finished() {
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		job, err := c.DomainJob(jctx, e.Domain, false)
		cancel()
		if err != nil || !job.Type.Active() || job.Operation != libvirtconn.JobMigrationOut {
			continue
		}
		o = &outgoing{done: make(chan struct{}), st: agentapi.MigrationStatus{VM: e.ID, Name: e.Name, SourceHost: a.cfg.HostID,
			Phase: agentapi.PhaseCopyingMemory, Started: time.Now().Add(-job.Elapsed).UTC(), Adopted: true}}
		o.apply(job)
		a.mig.mu.Lock()
		if a.mig.out == nil {
			a.mig.out = map[string]*outgoing{}
		}
		a.mig.out[e.ID] = o
		a.mig.mu.Unlock()
		a.log.Warn("a migration runs in libvirt without its agent: following it", "vm", e.ID, "name", e.Name)
		go a.followAdopted(o, c, e)
	}
}

// followAdopted follows an adopted migration until libvirt's job ends:
// the domain gone means it arrived, the domain running here that it
// failed.
func (a *Agent) followAdopted(o *outgoing, c libvirtconn.AgentConn, e *vmEntry) {
	ctx := a.mig.background()
	tick := time.NewTicker(monitorInterval)
	defer tick.Stop()
	for ctx.Err() == nil {
		<-tick.C
		job, err := c.DomainJob(ctx, e.Domain, false)
		switch {
		case errors.Is(err, libvirtconn.ErrNoDomain):
			a.finishMigration(ctx, o, c, e, nil)
			return
		case err != nil:
			continue
		case job.Type.Active():
			o.mu.Lock()
			o.apply(job)
			o.mu.Unlock()
			continue
		}
		// The job ended: the domain is here still (it failed) or about to
		// go (the last step of a success).
		time.Sleep(2 * time.Second)
		if _, err := c.DomainState(ctx, e.Domain); errors.Is(err, libvirtconn.ErrNoDomain) {
			a.finishMigration(ctx, o, c, e, nil)
		} else {
			a.finishMigration(ctx, o, c, e, errors.New("libvirt ended the migration with the VM still here"))
		}
		return
	}
}
