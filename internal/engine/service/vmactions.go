package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/engine/scheduler"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// powerdownGrace is how long after a shutdown's time-out the engine waits
// for the agent's power-off before it believes a VM that still runs.
const powerdownGrace = 30 * time.Second

// poweringDown tells whether a forced shutdown of VM id is in progress.
func (s *vmService) poweringDown(id string) bool {
	v, ok := s.powerdowns.Load(id)
	if !ok {
		return false
	}
	if time.Now().After(v.(time.Time)) {
		s.powerdowns.Delete(id)
		return false
	}
	return true
}

// launchGrace is how long a VM may stay WaitForLaunch before the engine
// takes the start as failed (an engine that died mid-start).
const launchGrace = 2*opsTimeout + 30*time.Second

// opsTimeout bounds one VM operation on an agent (the engine's agent
// client's timeout).
const opsTimeout = 2 * time.Minute

// Act runs a lifecycle action on a VM (VMActions): start schedules it on a
// host of its cluster (every host's reasons when none fits) and starts it
// there; the others ask its host. Asking for the state a VM is in already
// is a no-op that says so (Changed false).
func (s *VMs) Act(ctx context.Context, ref, action string, req engineapi.VMActionRequest) (engineapi.VMAction, error) {
	v, err := s.e.findVM(ctx, ref)
	if err != nil {
		return engineapi.VMAction{}, coded(err)
	}
	if action != "shutdown" && (req.TimeoutSeconds != 0 || req.Force != nil) {
		return engineapi.VMAction{}, invalidField("timeoutSeconds", "timeoutSeconds and force are options of shutdown only")
	}
	if err := checkShutdownTimeout(req.TimeoutSeconds, true); err != nil {
		return engineapi.VMAction{}, err
	}
	var res engineapi.VMAction
	switch {
	case action == "start":
		res, err = s.e.vms.start(ctx, v.ID, startOptions{reason: req.Reason})
	case slices.Contains(VMActions, action):
		res, err = s.e.vms.act(ctx, v.ID, action, req)
	default:
		err = fail(api.CodeUnknownAction, "unknown VM action %q (%s)", action, strings.Join(VMActions, ", "))
	}
	return res, coded(err)
}

// startOptions tune a start.
type startOptions struct {
	// exclude are hosts not to start on (the host an HA VM died with).
	exclude []string
	// ha tells that the engine restarts a highly available VM.
	ha bool
	// fromHost is the host an HA VM is restarted away from (it keeps the
	// VM as its run-on host until the restart is decided).
	fromHost string
	reason   string
}

// hostCapacity is a host's memory, online CPUs and path policy from its
// capabilities report, cached per report.
type hostCapacity struct {
	hash      string
	memoryMiB int64
	cpus      int
	// paths is the host's path policy (nil: its agent reports none).
	paths *hostpath.Policy
	// pages are the page sizes it backs guest memory with (KiB).
	pages []int
}

// capacityOf reads a host's capacity (its capabilities report, parsed once
// per report).
func (s *vmService) capacityOf(ctx context.Context, h store.Host) hostCapacity {
	if v, ok := s.capacity.Load(h.ID); ok && v.(hostCapacity).hash == h.CapabilitiesHash {
		return v.(hostCapacity)
	}
	full := h
	if len(full.Capabilities) == 0 {
		var err error
		if full, err = s.e.st.GetHost(ctx, h.ID); err != nil {
			return hostCapacity{}
		}
	}
	c := hostCapacity{hash: full.CapabilitiesHash}
	var r hostreport.Report
	if len(full.Capabilities) > 0 && json.Unmarshal(full.Capabilities, &r) == nil {
		c.memoryMiB, c.cpus = int64(r.MemoryMiB), len(r.CPU.OnlineCPUs)
		if p := r.HostPaths; p != nil {
			c.paths = &hostpath.Policy{Disk: p.Disk, CDROM: p.CDROM, Kernel: p.Kernel, Initrd: p.Initrd, BlockDevices: p.BlockDevices}
		}
		for _, k := range []int{r.Pages.BaseKiB, r.Pages.HugePageKiB} {
			if k > 0 {
				c.pages = append(c.pages, k)
			}
		}
	}
	if c.cpus == 0 || c.memoryMiB == 0 {
		// Without a report (or with a partial one): the agent's statistics.
		var st agentapi.Stats
		if json.Unmarshal(full.Stats, &st) == nil {
			if c.cpus == 0 {
				c.cpus = st.Host.CPUs
			}
			if c.memoryMiB == 0 {
				c.memoryMiB = int64(st.Host.MemTotalMiB)
			}
		}
	}
	if c.hash != "" {
		s.capacity.Store(h.ID, c)
	}
	return c
}

// committed are the states in which a VM holds its host's resources.
func committed(v store.VM) bool { return v.HostID != "" && v.State != store.VMDown }

// fleetFor gathers the scheduling facts of a cluster: its hosts with what
// their VMs commit.
func (s *vmService) fleetFor(ctx context.Context, c store.Cluster) ([]scheduler.Host, []store.Host, error) {
	hosts, err := s.e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID})
	if err != nil {
		return nil, nil, err
	}
	vms, err := s.e.st.ListVMs(ctx, store.VMFilter{ClusterID: c.ID, Brief: true})
	if err != nil {
		return nil, nil, err
	}
	if err := s.knowSizes(ctx, c.ID, vms); err != nil {
		return nil, nil, err
	}
	type load struct {
		mem      int64
		vcpus    int
		n        int
		incoming int
	}
	loads := map[string]*load{}
	add := func(host string, sz vmSizes, incoming bool) {
		l := loads[host]
		if l == nil {
			l = &load{}
			loads[host] = l
		}
		l.mem += sz.MemoryMiB
		l.vcpus += sz.VCPUs
		if incoming {
			l.incoming++
		} else {
			l.n++
		}
	}
	for _, v := range vms {
		if !committed(v) {
			continue
		}
		e, ok := s.sizes.Load(v.ID)
		if !ok || e.(sizeEntry).version != v.Version {
			continue
		}
		sz := e.(sizeEntry).sizes
		add(v.HostID, sz, false)
		// A VM on its way holds its destination's resources too.
		if v.MigratingToHostID != "" {
			add(v.MigratingToHostID, sz, true)
		}
	}
	pools, err := s.e.stor.hostPools(ctx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	out := make([]scheduler.Host, 0, len(hosts))
	for _, h := range hosts {
		ct, _ := cpucatalog.Lookup(h.CPUType)
		capa := s.capacityOf(ctx, h)
		sh := scheduler.Host{ID: h.ID, Name: h.Name, ClusterID: h.ClusterID, Up: h.Status == store.HostUp, Status: string(h.Status),
			Arch: h.Arch, CPUType: ct, Machines: h.EmulatedMachines, MemoryMiB: capa.memoryMiB, CPUs: capa.cpus, Paths: capa.paths,
			PageSizesKiB: capa.pages, Pools: pools[h.ID]}
		if l := loads[h.ID]; l != nil {
			sh.CommittedMemoryMiB, sh.CommittedVCPUs, sh.RunningVMs, sh.IncomingMigrations = l.mem, l.vcpus, l.n, l.incoming
		}
		out = append(out, sh)
	}
	return out, hosts, nil
}

// sizeEntry is a VM's sizes as of one version of it.
type sizeEntry struct {
	version int64
	sizes   vmSizes
}

// knowSizes makes sure the sizes of the committed VMs of a (brief) list
// are cached for their versions: a few missing ones are read one by one,
// many (an engine that just started) with one full list of the cluster.
func (s *vmService) knowSizes(ctx context.Context, clusterID string, vms []store.VM) error {
	var missing []string
	for _, v := range vms {
		if !committed(v) {
			continue
		}
		if e, ok := s.sizes.Load(v.ID); !ok || e.(sizeEntry).version != v.Version {
			missing = append(missing, v.ID)
		}
	}
	remember := func(v store.VM) {
		if sz, err := sizesOf(v.Definition); err == nil {
			s.sizes.Store(v.ID, sizeEntry{version: v.Version, sizes: sz})
		}
	}
	if len(missing) > 32 {
		full, err := s.e.st.ListVMs(ctx, store.VMFilter{ClusterID: clusterID})
		if err != nil {
			return err
		}
		for _, v := range full {
			remember(v)
		}
		return nil
	}
	for _, id := range missing {
		v, err := s.e.st.GetVM(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		remember(v)
	}
	return nil
}

// schedRequest is the scheduler's question for a VM.
func schedRequest(v store.VM, c store.Cluster, exclude []string) (scheduler.Request, error) {
	sz, err := sizesOf(v.Definition)
	if err != nil {
		return scheduler.Request{}, err
	}
	ct, _ := cpucatalog.Lookup(c.CPUType)
	var def vmspec.VM
	if err := json.Unmarshal(v.Definition, &def); err != nil {
		return scheduler.Request{}, fmt.Errorf("VM %s: the stored definition: %v", v.Name, err)
	}
	return scheduler.Request{
		VM: scheduler.VM{ID: v.ID, Name: v.Name, ClusterID: v.ClusterID, Arch: sz.Arch, Machine: sz.Machine,
			MemoryMiB: sz.MemoryMiB, VCPUs: sz.VCPUs, PinnedHostID: v.PinnedHostID, Paths: hostpath.FromDefinition(&def),
			Pools: vmPools(&def)},
		Cluster: scheduler.Cluster{ID: c.ID, Name: c.Name, CPUType: ct},
		Exclude: exclude,
	}, nil
}

// noHostError answers a refused scheduling: 409 with every host's reasons.
func noHostError(err *scheduler.NoHostError) *api.Error {
	ae := &api.Error{Code: err.Code(), Message: err.Error()}
	if len(err.Verdicts) > 0 {
		ae.Message = fmt.Sprintf("Cannot run VM %s: no host of cluster %s satisfies the scheduling constraints (errors has each host's reasons).",
			err.VM, err.Cluster)
	}
	for _, v := range err.Verdicts {
		for _, r := range v.Reasons {
			ae.Details = append(ae.Details, &api.Error{Code: r.Code, Message: r.Message, Field: "host:" + v.HostName})
		}
	}
	return ae
}

// result makes an action's answer.
func (s *vmService) result(ctx context.Context, v store.VM, action string, changed bool, msg string) engineapi.VMAction {
	out := engineapi.VMAction{VM: v.ID, Name: v.Name, Action: action, Changed: changed, Message: msg, State: string(v.State), HostID: v.HostID}
	if v.HostID != "" {
		if h, err := s.e.st.GetHost(ctx, v.HostID); err == nil {
			out.Host = h.Name
		}
	}
	return out
}

// start schedules a Down VM and starts it on the host chosen: the VM is
// recorded WaitForLaunch on that host (so that the next decision counts
// it), its definition is created on the host's agent (replacing an older
// one there) and started.
func (s *vmService) start(ctx context.Context, id string, o startOptions) (engineapi.VMAction, error) {
	e := s.e
	t0 := time.Now()
	v, err := e.st.GetVM(ctx, id)
	if err != nil {
		return engineapi.VMAction{}, err
	}
	lock := s.clusterLock(v.ClusterID)
	lock.Lock()
	v, host, decided, err := s.decide(ctx, id, o)
	lock.Unlock()
	tDecided := time.Now()
	if err != nil || !decided {
		if err == nil {
			return s.result(ctx, v, "start", false, noopStartMessage(v)), nil
		}
		return engineapi.VMAction{}, err
	}
	// While the start is in flight here, the monitoring leaves its outcome
	// to it (vmsync.go): after this engine dies, the monitoring records it.
	s.starting.Store(id, struct{}{})
	defer s.starting.Delete(id)
	state, lt, err := s.launch(ctx, v, host)
	if err != nil {
		msg := err.Error()
		v2, werr := e.mutateVM(ctx, id, func(tx store.Tx, cur *store.VM) (bool, error) {
			if cur.HostID != host.ID || cur.State != store.VMWaitForLaunch {
				return false, nil
			}
			cur.State, cur.HostID, cur.LastHostID, cur.Pending = store.VMDown, "", host.ID, nil
			return true, e.appendEvent(ctx, tx, store.Event{Action: "vm.start", Severity: store.SeverityError, ObjectKind: "vm",
				ObjectID: cur.ID, ObjectName: cur.Name, Code: api.CodeUserFailedRunVM,
				Message: fmt.Sprintf("Failed to run VM %s on host %s.", cur.Name, host.Name), Reason: msg})
		})
		if werr != nil {
			e.log.Warn("cannot record a failed start", "vm", v2.Name, "err", werr)
		}
		return engineapi.VMAction{}, agentAPIError(err)
	}
	last := v.LastHostID
	v, err = e.mutateVM(ctx, id, func(tx store.Tx, cur *store.VM) (bool, error) {
		if cur.HostID != host.ID {
			return false, nil
		}
		write := cur.State != state
		cur.State = state
		p := cur.Pending
		if p == nil || p.HostID != host.ID {
			// The monitoring recorded the outcome already.
			return write, nil
		}
		cur.Pending = nil
		return true, e.appendEvent(ctx, tx, startedEvent(*cur, *p, host.Name, ""))
	})
	if err != nil {
		return engineapi.VMAction{}, err
	}
	// The engine's share of the start is what is not the agent's.
	e.log.Info("VM started", "vm", v.Name, "host", host.Name, "took", time.Since(t0), "schedule", tDecided.Sub(t0),
		"agentCheck", lt.check, "agentCreate", lt.create, "agentStart", lt.start)
	for _, old := range []string{last, o.fromHost} {
		if old != "" && old != host.ID {
			if h, err := e.st.GetHost(ctx, old); err == nil && h.Status == store.HostUp {
				go s.forget(h, v.ID, v.Name)
			}
		}
	}
	return s.result(ctx, v, "start", true, fmt.Sprintf("started on host %s", host.Name)), nil
}

// startedEvent is the audit event of a start that succeeded, from what
// was recorded when it was ordered (p): "VM X was started by U", or the
// HA restart's. reason, when not empty, is added to the request's (the
// monitoring saying how it learnt the outcome).
func startedEvent(v store.VM, p store.VMPending, hostName, reason string) store.Event {
	who := p.User
	if who == "" {
		who = "the engine"
	}
	ev := store.Event{Action: "vm.start", Severity: store.SeverityInfo, ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
		User: p.User, CorrelationID: p.CorrelationID, Reason: p.Reason,
		Message: fmt.Sprintf("VM %s was started by %s (Host: %s).", v.Name, who, hostName)}
	if p.Action == "ha-restart" {
		ev.Action, ev.Severity = "vm.ha-restart", store.SeverityWarning
		ev.Message = fmt.Sprintf("Highly available VM %s was restarted on host %s.", v.Name, hostName)
	}
	if reason != "" {
		if ev.Reason != "" {
			reason = ev.Reason + "; " + reason
		}
		ev.Reason = reason
	}
	return ev
}

func noopStartMessage(v store.VM) string {
	switch v.State {
	case store.VMPaused:
		return fmt.Sprintf("VM %s is Paused; resume it (polyvirt vm resume)", v.Name)
	case store.VMWaitForLaunch:
		return fmt.Sprintf("VM %s is starting already", v.Name)
	}
	return fmt.Sprintf("VM %s is already %s", v.Name, v.State)
}

// decide reads the VM under the cluster's scheduling lock, chooses its
// host and records it (WaitForLaunch). decided is false when the VM runs
// already (a no-op).
func (s *vmService) decide(ctx context.Context, id string, o startOptions) (store.VM, store.Host, bool, error) {
	e := s.e
	v, err := e.st.GetVM(ctx, id)
	if err != nil {
		return v, store.Host{}, false, err
	}
	switch {
	case o.ha:
		// An HA restart: the VM still names the host it died with.
		if v.HostID != o.fromHost || (v.State != store.VMUnknown && v.State != store.VMDown) {
			return v, store.Host{}, false, nil
		}
	case v.State == store.VMWaitForLaunch && time.Since(v.StateChanged) > launchGrace:
		// An earlier start never finished (its engine died): start again.
	case v.State == store.VMPoweringDown || v.State == store.VMUnknown || v.State == store.VMNotResponding:
		hint := "wait until it is Down, or destroy it"
		if v.State != store.VMPoweringDown {
			hint = "its host does not answer; wait for the host, or destroy the VM"
		}
		return v, store.Host{}, false, vmStatusError(v, "start", hint)
	case !isDown(v):
		return v, store.Host{}, false, nil
	}
	tSched := time.Now()
	d, hosts, outcome, err := s.schedule(ctx, v, o)
	e.obs.Scheduled(outcome, time.Since(tSched))
	if err != nil {
		return v, store.Host{}, false, err
	}
	host := hosts[d.Index]
	v, err = e.mutateVM(ctx, id, func(tx store.Tx, cur *store.VM) (bool, error) {
		if cur.Version != v.Version {
			return false, fail(api.CodeVersionConflict, "VM %s changed while it was being scheduled; try again", cur.Name)
		}
		if cur.HostID != "" && cur.HostID != host.ID {
			cur.LastHostID = cur.HostID
		}
		cur.State, cur.HostID = store.VMWaitForLaunch, host.ID
		// Who starts it and why, recorded before the host is asked: the
		// outcome is recorded with it whoever sees it (this engine, or
		// the monitoring when this engine dies meanwhile).
		cur.Pending = &store.VMPending{Action: "start", HostID: host.ID, Reason: o.reason,
			CorrelationID: correlationFrom(ctx), Engine: e.cfg.Name, At: time.Now().UTC()}
		if u := CallerFrom(ctx); u != nil {
			cur.Pending.User = u.Name
		}
		if o.ha {
			cur.Pending.Action = "ha-restart"
		}
		return true, nil
	})
	if err != nil {
		return v, store.Host{}, false, err
	}
	e.log.Info("VM scheduled", "vm", v.Name, "host", host.Name, "candidates", d.Candidates, "ha", o.ha)
	return v, host, true, nil
}

// schedule chooses a host of its cluster for VM v: the cluster's facts
// gathered, the scheduler asked; outcome says how it ended (the
// Schedule* outcomes, for the metrics).
func (s *vmService) schedule(ctx context.Context, v store.VM, o startOptions) (d scheduler.Decision, hosts []store.Host, outcome string, err error) {
	c, err := s.e.st.GetCluster(ctx, v.ClusterID)
	if err != nil {
		return d, nil, ScheduleError, err
	}
	fleet, hosts, err := s.fleetFor(ctx, c)
	if err != nil {
		return d, nil, ScheduleError, err
	}
	req, err := schedRequest(v, c, o.exclude)
	if err != nil {
		return d, nil, ScheduleError, err
	}
	d, err = scheduler.Schedule(req, fleet, s.cfg.Policy)
	if err != nil {
		var nh *scheduler.NoHostError
		if errors.As(err, &nh) {
			return d, nil, ScheduleNoHost, noHostError(nh)
		}
		return d, nil, ScheduleError, err
	}
	return d, hosts, SchedulePlaced, nil
}

// agentDefinition is the definition sent to an agent: the stored one with
// the engine's marker in its metadata.
func (s *vmService) agentDefinition(v store.VM) ([]byte, error) {
	def, err := vmspec.Decode(v.Definition)
	if err != nil {
		return nil, fmt.Errorf("VM %s: the stored definition: %v", v.Name, err)
	}
	if def.Metadata == nil {
		def.Metadata = map[string]string{}
	}
	def.Metadata[MarkerKey] = s.marker()
	def.UUID = v.ID
	return json.Marshal(def)
}

// launch creates a VM on a host's agent (replacing a stopped older
// definition there) and starts it; it returns the state the agent
// reports. A VM the host runs already is taken as started.
func (s *vmService) launch(ctx context.Context, v store.VM, h store.Host) (store.VMState, launchTimes, error) {
	var lt launchTimes
	def, err := s.agentDefinition(v)
	if err != nil {
		return "", lt, err
	}
	create := true
	t := time.Now()
	existing, err := s.agents.GetVM(ctx, h, v.ID)
	lt.check = time.Since(t)
	if err == nil {
		if st := stateFromAgent(existing.State, existing.Reason); st != store.VMDown {
			return st, lt, nil
		}
		if sameDefinition(existing.Definition, def) {
			// Defined there already as it is now (its last run): start it.
			create = false
		} else if err := s.agents.DeleteVM(ctx, h, v.ID, false); err != nil {
			if ae := asAgentError(err); ae == nil || !ae.NotFound() {
				return "", lt, err
			}
		}
	} else if ae := asAgentError(err); ae == nil || !ae.NotFound() {
		return "", lt, err
	}
	if create {
		t = time.Now()
		_, err := s.agents.CreateVM(ctx, h, def)
		lt.create = time.Since(t)
		if err != nil {
			return "", lt, err
		}
	}
	t = time.Now()
	res, err := s.agents.Act(ctx, h, v.ID, "start", nil)
	lt.start = time.Since(t)
	if err != nil {
		return "", lt, err
	}
	st := stateFromAgent(res.State, "")
	if st == store.VMDown {
		// The agent answered before QEMU reported running.
		st = store.VMPoweringUp
	}
	return st, lt, nil
}

// launchTimes are how long the agent calls of a start took.
type launchTimes struct{ check, create, start time.Duration }

// sameDefinition tells whether two definitions say the same (as decoded:
// the agent writes its own copy back in its own order).
func sameDefinition(a, b []byte) bool {
	da, err := vmspec.Decode(a)
	if err != nil {
		return false
	}
	db, err := vmspec.Decode(b)
	if err != nil {
		return false
	}
	return reflect.DeepEqual(da, db)
}

// act runs an action other than start on the VM's host. A shutdown gives
// the guest a time-out (the request's, else the cluster's) after which the
// VM's agent powers it off, unless force is false.
func (s *vmService) act(ctx context.Context, id, action string, req engineapi.VMActionRequest) (engineapi.VMAction, error) {
	e := s.e
	reason := req.Reason
	v, err := e.st.GetVM(ctx, id)
	if err != nil {
		return engineapi.VMAction{}, err
	}
	if v.HostID == "" {
		switch action {
		case "shutdown", "destroy":
			return s.result(ctx, v, action, false, fmt.Sprintf("VM %s is already Down", v.Name)), nil
		}
		return engineapi.VMAction{}, vmStatusError(v, action, "start it first")
	}
	h, err := e.st.GetHost(ctx, v.HostID)
	if err != nil {
		return engineapi.VMAction{}, err
	}
	var shutdown *agentapi.ShutdownRequest
	if action == "shutdown" {
		timeout := req.TimeoutSeconds
		if timeout == 0 {
			c, err := e.st.GetCluster(ctx, v.ClusterID)
			if err != nil {
				return engineapi.VMAction{}, err
			}
			timeout = c.ShutdownTimeoutSeconds
		}
		if req.Force == nil || *req.Force {
			shutdown = &agentapi.ShutdownRequest{TimeoutSeconds: timeout, Force: true}
		}
		// Before PoweringDown is recorded, forced or not: an Up seen
		// meanwhile (the event of the start just before, arriving late)
		// must not undo it; after the time-out one does (the guest kept
		// running).
		s.powerdowns.Store(v.ID, time.Now().Add(time.Duration(timeout)*time.Second+powerdownGrace))
	}
	if action == "shutdown" && (v.State == store.VMUp || v.State == store.VMPaused || v.State == store.VMPoweringUp) {
		// Recorded first: the Down that follows is then expected (not a
		// crash for an HA VM), whichever engine sees it.
		if v, err = e.mutateVM(ctx, id, func(tx store.Tx, cur *store.VM) (bool, error) {
			if cur.HostID != h.ID {
				return false, nil
			}
			cur.State = store.VMPoweringDown
			return true, nil
		}); err != nil {
			return engineapi.VMAction{}, err
		}
	}
	res, err := s.agents.Act(ctx, h, v.ID, action, shutdown)
	if err != nil {
		if ae := asAgentError(err); ae != nil && ae.NotFound() && ae.Code == api.CodeVMNotFound {
			v, _ = s.markDown(ctx, v.ID, h, fmt.Sprintf("VM %s is down: host %s does not have it.", v.Name, h.Name), "")
			return engineapi.VMAction{}, vmStatusError(v, action, fmt.Sprintf("host %s does not have it", h.Name))
		}
		return engineapi.VMAction{}, agentAPIError(err)
	}
	after := stateFromAgent(res.State, "")
	v, err = e.mutateVM(ctx, id, func(tx store.Tx, cur *store.VM) (bool, error) {
		write := false
		switch {
		case cur.HostID != h.ID:
			// Its host's event got there first (a destroy: Down already).
		case after == store.VMDown:
			cur.State, cur.HostID, cur.LastHostID, cur.Pending = store.VMDown, "", h.ID, nil
			write = true
		case action == "shutdown" && res.Changed:
			// Still running: the guest powers down; its stop event ends it.
		case after != cur.State:
			cur.State, write = after, true
		}
		if !res.Changed {
			return write, nil
		}
		msg := actionMessage(action, cur.Name, userName(ctx), h.Name)
		if shutdown != nil {
			msg += fmt.Sprintf(" It is powered off if the guest is not down within %s.", time.Duration(shutdown.TimeoutSeconds)*time.Second)
		}
		return write, e.appendEvent(ctx, tx, store.Event{Action: "vm." + action, ObjectKind: "vm", ObjectID: cur.ID, ObjectName: cur.Name,
			Message: msg, Reason: reason})
	})
	if err != nil {
		return engineapi.VMAction{}, err
	}
	out := s.result(ctx, v, action, res.Changed, res.Message)
	if out.Host == "" {
		out.Host, out.HostID = h.Name, h.ID
	}
	return out, nil
}

func actionMessage(action, vm, user, host string) string {
	switch action {
	case "shutdown":
		return fmt.Sprintf("VM shutdown initiated by %s on VM %s (Host: %s).", user, vm, host)
	case "destroy":
		return fmt.Sprintf("VM %s powered off by %s (Host: %s).", vm, user, host)
	case "reboot":
		return fmt.Sprintf("VM %s was restarted by %s (Host: %s).", vm, user, host)
	case "pause":
		return fmt.Sprintf("VM %s was paused by %s (Host: %s).", vm, user, host)
	case "resume":
		return fmt.Sprintf("VM %s was resumed by %s (Host: %s).", vm, user, host)
	}
	return fmt.Sprintf("VM %s: %s by %s (Host: %s).", vm, action, user, host)
}

// markDown records that a VM runs nowhere any more (it ran on h), with an
// event when message is not empty.
func (s *vmService) markDown(ctx context.Context, id string, h store.Host, message, reason string) (store.VM, error) {
	e := s.e
	return e.mutateVM(ctx, id, func(tx store.Tx, cur *store.VM) (bool, error) {
		if cur.HostID != h.ID {
			return false, nil
		}
		cur.State, cur.HostID, cur.LastHostID, cur.Pending = store.VMDown, "", h.ID, nil
		if message == "" {
			return true, nil
		}
		return true, e.appendEvent(ctx, tx, store.Event{Action: "vm.state", ObjectKind: "vm", ObjectID: cur.ID, ObjectName: cur.Name,
			Code: api.CodeVMDown, Message: message, Reason: reason})
	})
}
