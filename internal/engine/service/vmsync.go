package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/store"
)

// vmSync keeps the VMs' states in step with the agents, in the engine that
// leads the monitoring: one watcher per host that can run VMs (Up or
// NonOperational) subscribes to the agent's event stream, reads its VM
// list on every (re)connection and every Resync (reconcile), and applies
// what it sees. It also notes when hosts stop answering, for the HA
// restarts (ha.go).
type vmSync struct {
	m   *monitor
	s   *vmService
	ctx context.Context

	mu       sync.Mutex
	watchers map[string]*vmWatcher
	// downSince is when this leader saw each NonResponsive host become so.
	downSince map[string]time.Time
	// reported remembers the foreign VMs already reported (host/VM).
	reported map[string]bool
	wg       sync.WaitGroup
	// connecting bounds the watchers' (re)connections under way — the
	// stream's TLS handshake and the VM list read after it — in two
	// lanes like the monitoring's rounds (pollQueue): the watchers whose
	// last connection held, and those whose last failed. Ten thousand
	// watchers starting at once (an engine taking the lead) are otherwise
	// ten thousand handshakes and VM lists at once; agents that do not
	// answer do not delay the others.
	connecting [2]chan struct{}
}

// maxConnecting is a lane's watcher (re)connections under way at once.
const maxConnecting = 256

func newVMSync(ctx context.Context, m *monitor) *vmSync {
	return &vmSync{m: m, s: m.e.vms, ctx: ctx, watchers: map[string]*vmWatcher{}, downSince: map[string]time.Time{},
		reported: map[string]bool{}, connecting: [2]chan struct{}{make(chan struct{}, maxConnecting), make(chan struct{}, maxConnecting)}}
}

// watches tells whether a host's VMs are followed in a status.
func watches(s store.HostStatus) bool {
	return s == store.HostUp || s == store.HostNonOperational || s == store.HostPreparingForMaintenance
}

// hostsLoaded starts and stops the watchers after the monitor read the
// hosts, and notes the hosts that stopped answering.
func (y *vmSync) hostsLoaded(hosts []store.Host) {
	y.mu.Lock()
	defer y.mu.Unlock()
	seen := map[string]bool{}
	for _, h := range hosts {
		seen[h.ID] = true
		y.noteStatusLocked(h)
		w := y.watchers[h.ID]
		want := h.CertFingerprint != "" && watches(h.Status)
		switch {
		case want && w == nil:
			y.startLocked(h)
		case !want && w != nil:
			w.cancel()
			delete(y.watchers, h.ID)
		case want && (w.host().Address != h.Address || w.host().CertFingerprint != h.CertFingerprint):
			w.cancel()
			y.startLocked(h)
		case want:
			w.setHost(h)
		}
	}
	for id, w := range y.watchers {
		if !seen[id] {
			w.cancel()
			delete(y.watchers, id)
		}
	}
	for id := range y.downSince {
		if !seen[id] {
			delete(y.downSince, id)
		}
	}
}

// hostStatusChanged is told at once when the monitor changed a host's
// status.
func (y *vmSync) hostStatusChanged(h store.Host) {
	y.mu.Lock()
	y.noteStatusLocked(h)
	if h.Status == store.HostNonOperational && h.StatusCode == api.CodeLibvirtUnavailable {
		// Its agent answers but cannot see its VMs: they are Unknown (not
		// restarted elsewhere) until libvirt is back.
		go y.hostLost(h, fmt.Sprintf("host %s cannot reach libvirt", h.Name))
	}
	if w := y.watchers[h.ID]; w != nil && !watches(h.Status) {
		w.cancel()
		delete(y.watchers, h.ID)
	} else if w == nil && h.CertFingerprint != "" && watches(h.Status) {
		y.startLocked(h)
	}
	y.mu.Unlock()
}

func (y *vmSync) noteStatusLocked(h store.Host) {
	if h.Status != store.HostNonResponsive {
		delete(y.downSince, h.ID)
		return
	}
	if _, ok := y.downSince[h.ID]; !ok {
		y.downSince[h.ID] = time.Now()
		// The VMs of a host that stops answering are Unknown (once, when
		// this leader first sees it so).
		go y.hostLost(h, fmt.Sprintf("host %s does not answer", h.Name))
	}
}

// lostHosts lists the hosts NonResponsive for at least d.
func (y *vmSync) lostHosts(d time.Duration) []string {
	y.mu.Lock()
	defer y.mu.Unlock()
	var out []string
	for id, t := range y.downSince {
		if time.Since(t) >= d {
			out = append(out, id)
		}
	}
	return out
}

func (y *vmSync) startLocked(h store.Host) {
	h.Stats, h.Capabilities = nil, nil
	ctx, cancel := context.WithCancel(y.ctx)
	w := &vmWatcher{y: y, cancel: cancel, h: h}
	y.watchers[h.ID] = w
	y.wg.Add(1)
	go func() { defer y.wg.Done(); w.run(ctx) }()
}

func (y *vmSync) wait() { y.wg.Wait() }

// hostLost marks the running VMs of a host that stopped answering (or
// cannot reach libvirt: why) Unknown.
func (y *vmSync) hostLost(h store.Host, why string) {
	ctx := y.ctx
	e := y.m.e
	vms, err := e.st.ListVMs(ctx, store.VMFilter{HostID: h.ID})
	if err != nil {
		if ctx.Err() == nil {
			y.m.warn("cannot read the VMs of a host that stopped answering", "host", h.Name, "err", err)
		}
		return
	}
	for _, v := range vms {
		// A migrating VM's migration finds where it runs (migrate.go): it
		// may well have arrived on its destination.
		if v.State == store.VMDown || v.State == store.VMUnknown || v.State == store.VMMigratingFrom {
			continue
		}
		_, err := e.mutateVM(ctx, v.ID, func(tx store.Tx, cur *store.VM) (bool, error) {
			if cur.HostID != h.ID || cur.State == store.VMDown || cur.State == store.VMUnknown || cur.State == store.VMMigratingFrom {
				return false, nil
			}
			was := cur.State
			cur.State = store.VMUnknown
			return true, e.appendEvent(ctx, tx, store.Event{Action: "vm.state", Severity: store.SeverityWarning, ObjectKind: "vm",
				ObjectID: cur.ID, ObjectName: cur.Name, Code: api.CodeVMSetToUnknownStatus,
				Message: fmt.Sprintf("VM %s was set to the Unknown status: %s.", cur.Name, why),
				Reason:  fmt.Sprintf("was %s", was)})
		})
		if err != nil && ctx.Err() == nil {
			y.m.warn("cannot record a VM's Unknown state", "vm", v.Name, "err", err)
		}
	}
}

// vmWatcher follows one host's VMs.
type vmWatcher struct {
	y      *vmSync
	cancel context.CancelFunc

	mu sync.Mutex
	h  store.Host
}

func (w *vmWatcher) host() store.Host {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.h
}

func (w *vmWatcher) setHost(h store.Host) {
	h.Stats, h.Capabilities = nil, nil
	w.mu.Lock()
	w.h = h
	w.mu.Unlock()
}

// run subscribes, reconciles, and applies the events until ctx ends,
// reconnecting with a backoff (reconnect).
func (w *vmWatcher) run(ctx context.Context) {
	r := newReconnect()
	for ctx.Err() == nil {
		h := w.host()
		t0 := time.Now()
		connected, err := w.follow(ctx, h, r.lane)
		if ctx.Err() != nil {
			return
		}
		wait := r.after(connected, time.Since(t0), err)
		if err != nil && !errors.Is(err, io.EOF) {
			w.y.m.log.Debug("VM event stream", "host", h.Name, "err", err, "retry", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// reconnect is a watcher's way between two connections: the wait, longer
// after each connection that failed or broke soon (500 ms doubled up to
// 15 s), from the start again after one that held stableStream; an agent
// without an event stream (a host simulator) is asked again after 5
// minutes. lane is the lane of the next connection (vmSync.connecting):
// laneFailing after one that failed.
type reconnect struct {
	backoff time.Duration
	lane    int
}

const (
	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 15 * time.Second
)

// stableStream is how long a stream must have held for its watcher to
// reconnect as if for the first time: an agent restarted after weeks is
// followed again within a second, one whose streams keep breaking is not
// asked ever faster.
const stableStream = 30 * time.Second

func newReconnect() *reconnect { return &reconnect{backoff: firstBackoff, lane: laneAnswering} }

// after returns the wait after a connection that connected or not, held
// for held, and ended with err.
func (r *reconnect) after(connected bool, held time.Duration, err error) time.Duration {
	r.lane = laneAnswering
	if !connected {
		r.lane = laneFailing
	} else if held >= stableStream {
		r.backoff = firstBackoff
	}
	if errors.Is(err, ErrNoEvents) {
		return 5 * time.Minute
	}
	wait := r.backoff
	r.backoff = min(r.backoff*2, maxBackoff)
	return wait
}

// follow is one connection: subscribe first (no event is lost between the
// list and the stream), reconcile, then apply events; reconcile again
// every Resync. One goroutine reads and applies the events (ten thousand
// hosts keep ten thousand of these); the resyncs run from a timer, under
// the same lock as the events, and one that fails ends the stream.
func (w *vmWatcher) follow(ctx context.Context, h store.Host, lane int) (connected bool, err error) {
	s := w.y.s
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The statistics the agent pushes are recorded as they come, by the
	// goroutine that read them: this one only waits.
	pushed := func(stats []byte) { w.y.m.pushed(ctx, h.ID, stats) }
	stream, err := aside(func() (EventStream, error) { return w.connect(sctx, h, lane, pushed) })
	if err != nil {
		return false, err
	}
	defer stream.Close()
	var (
		mu        sync.Mutex // the events and the resyncs, one at a time
		stopped   bool
		resyncErr error
		resync    *time.Timer
	)
	mu.Lock()
	resync = time.AfterFunc(s.cfg.Resync, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := w.y.reconcile(ctx, w.host()); err != nil {
			resyncErr = err
			cancel()
			return
		}
		resync.Reset(s.cfg.Resync)
	})
	mu.Unlock()
	end := func(err error) error {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		resync.Stop()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case resyncErr != nil:
			return resyncErr
		}
		return err
	}
	for {
		ev, err := stream.Next()
		if err != nil {
			return true, end(err)
		}
		if ev.Event == agentapi.EventStats {
			// The host's statistics, pushed, from a stream that gives
			// them as events: the monitoring's round need not ask for
			// them.
			pushed(ev.Stats)
			continue
		}
		// Its own variable: ev, taken by the closure, would be moved to
		// the heap for every push as well.
		e := ev
		mu.Lock()
		_, err = aside(func() (struct{}, error) { return struct{}{}, w.apply(ctx, e) })
		mu.Unlock()
		if err != nil {
			return true, end(err)
		}
	}
}

// aside runs f on a goroutine of its own and waits for it. A watcher's
// goroutine waits on its stream for weeks, and a goroutine keeps the
// stack its deepest call grew (the collector halves it only when a
// quarter of it is in use): the stream's handshake, the VM list and an
// event's database writes grew each watcher's to 16 KiB — 160 MiB of
// stacks at 10,000 hosts, 86 MiB with them aside — where reading its
// stream needs a few. They run aside; only the reading and the pushed
// statistics run on the watcher's goroutine.
func aside[T any](f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	r := <-done
	return r.v, r.err
}

// connect subscribes to the host's events and reconciles its VMs, with a
// place in the lane's connections under way (vmSync.connecting).
func (w *vmWatcher) connect(ctx context.Context, h store.Host, lane int, pushed func([]byte)) (EventStream, error) {
	sem := w.y.connecting[lane]
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-sem }()
	stream, err := w.y.s.agents.Events(ctx, h, w.y.m.cfg.StatsInterval, pushed)
	if err != nil {
		return nil, err
	}
	if err := w.y.reconcile(ctx, h); err != nil {
		stream.Close()
		return nil, err
	}
	return stream, nil
}

// apply applies an event of the host's stream.
func (w *vmWatcher) apply(ctx context.Context, ev agentapi.Event) error {
	switch {
	case ev.VM == "" && ev.Event == agentapi.EventLibvirtBack:
		// The agent reads libvirt again: what changed meanwhile.
		return w.y.reconcile(ctx, w.host())
	case ev.VM == "":
	case ev.Event == agentapi.EventShutdownTimeout:
		w.y.shutdownTimedOut(ctx, w.host(), ev)
	case definedStopped(ev):
		// A definition stops nothing (a VM that stops says so with an
		// event of its own), and a start defines before it starts: read
		// after the start took the VM Up, this event would take it Down.
	default:
		w.y.observe(ctx, w.host(), observeEvent(ev), false)
	}
	return nil
}

// shutdownTimedOut records that a VM's agent powered it off after the
// guest did not power off within its shutdown's time-out.
func (y *vmSync) shutdownTimedOut(ctx context.Context, h store.Host, ev agentapi.Event) {
	e := y.m.e
	v, err := e.st.GetVM(ctx, ev.VM)
	if err != nil {
		return
	}
	rec := store.Event{Action: "vm.shutdown-timeout", Severity: store.SeverityWarning, ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
		Code:    api.CodeVMShutdownTimeout,
		Message: fmt.Sprintf("VM %s was powered off: its guest did not power off in time after the shutdown request (Host: %s).", v.Name, h.Name),
		Reason:  ev.Detail}
	if err := e.appendEvent(ctx, e.st, rec); err != nil && ctx.Err() == nil {
		y.m.warn("audit log", "err", err)
	}
}

// reconcile compares a host's VM list with the database: what it runs is
// applied (observe), and the VMs the database has on it that it does not
// list are Down.
func (y *vmSync) reconcile(ctx context.Context, h store.Host) error {
	e := y.m.e
	list, err := y.s.agents.ListVMs(ctx, h)
	if err != nil {
		if ae := asAgentError(err); ae != nil && ae.NotFound() {
			return ErrNoEvents
		}
		return err
	}
	listed := map[string]bool{}
	for _, vm := range list {
		listed[vm.ID] = true
		y.observe(ctx, h, observeListed(vm), true)
	}
	vms, err := e.st.ListVMs(ctx, store.VMFilter{HostID: h.ID})
	if err != nil {
		return err
	}
	for _, v := range vms {
		if listed[v.ID] {
			continue
		}
		y.observe(ctx, h, observation{ID: v.ID, Name: v.Name, Gone: true, State: store.VMDown, Why: "not on the host"}, true)
	}
	return nil
}

// launching tells whether a VM is being started (its Down observations
// are the start's own steps: the old definition removed, the new one
// defined).
func launching(v store.VM) bool {
	return v.State == store.VMWaitForLaunch && time.Since(v.StateChanged) < launchGrace
}

// observe applies what host h says of one VM:
//
//   - the VM runs on h for the engine: its state follows (Down clears
//     the host; a crash of an HA VM restarts it);
//   - the VM runs nowhere for the engine and runs on h: it is adopted;
//   - the VM runs on another host for the engine (an HA restart happened
//     while h did not answer): the copy on h is destroyed and removed;
//   - the engine does not know the VM: removed when the engine's marker
//     says the engine created it (deleted while h did not answer), else
//     reported once and left alone.
func (y *vmSync) observe(ctx context.Context, h store.Host, o observation, listed bool) {
	e := y.m.e
	v, err := e.st.GetVM(ctx, o.ID)
	if errors.Is(err, store.ErrNotFound) {
		if listed {
			y.foreign(ctx, h, o)
		}
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			y.m.warn("cannot read a VM", "vm", o.ID, "err", err)
		}
		return
	}
	if v.State == store.VMMigratingFrom || y.s.flightOf(v.ID) != nil {
		// Its migration decides where it runs (migrate.go): the source
		// stops having it, the destination starts to, and neither is a
		// VM gone or a stale copy.
		return
	}
	switch {
	case v.HostID == h.ID:
		y.follow(ctx, h, v, o)
	case v.HostID == "" && !o.Gone && runs(o.State):
		y.adopt(ctx, h, v, o)
	case v.HostID != "" && v.HostID != h.ID && !o.Gone:
		y.stale(ctx, h, v, o)
	}
}

// follow applies a state the VM's own host reports.
func (y *vmSync) follow(ctx context.Context, h store.Host, v store.VM, o observation) {
	e := y.m.e
	if launching(v) && !runs(o.State) {
		return
	}
	if !o.Gone && o.State == v.State {
		return
	}
	restart := false
	_, err := e.mutateVM(ctx, v.ID, func(tx store.Tx, cur *store.VM) (bool, error) {
		restart = false
		if cur.HostID != h.ID || (launching(*cur) && !runs(o.State)) {
			return false, nil
		}
		was := cur.State
		if !o.Gone && o.State == was {
			return false, nil
		}
		ev := store.Event{Action: "vm.state", ObjectKind: "vm", ObjectID: cur.ID, ObjectName: cur.Name, Reason: o.Why}
		if o.Gone || o.State == store.VMDown {
			y.s.powerdowns.Delete(cur.ID)
			pending := cur.Pending
			cur.State, cur.HostID, cur.LastHostID, cur.Pending = store.VMDown, "", h.ID, nil
			if was == store.VMWaitForLaunch && pending != nil {
				// A start that never completed (its engine died before
				// the host started the VM, or the host did not).
				return true, e.appendEvent(ctx, tx, startFailedEvent(*cur, *pending, h.Name, o.Why))
			}
			ev.Code = api.CodeVMDown
			ev.Message = fmt.Sprintf("VM %s is down on host %s.", cur.Name, h.Name)
			if o.Gone {
				ev.Message = fmt.Sprintf("VM %s is down: host %s no longer has it.", cur.Name, h.Name)
			}
			if o.Crashed {
				ev.Code, ev.Severity = api.CodeVMDownError, store.SeverityError
				ev.Message = fmt.Sprintf("VM %s is down with error on host %s.", cur.Name, h.Name)
			}
			restart = restartsHA(cur.HA, was, o)
		} else {
			if was == store.VMPoweringDown && o.State == store.VMUp && y.s.poweringDown(cur.ID) {
				// The guest was asked to power off within a time-out and
				// still runs: the agent powers it off at the end.
				return false, nil
			}
			cur.State = o.State
			if was == store.VMWaitForLaunch || (was == store.VMUnknown && cur.Pending != nil && cur.Pending.HostID == h.ID) {
				// A start whose outcome nobody recorded (its host stopped
				// answering meanwhile, for an Unknown one).
				return true, y.startSeen(ctx, tx, h, cur, o)
			}
			ev.Message = fmt.Sprintf("VM %s is %s on host %s.", cur.Name, cur.State, h.Name)
			switch {
			case o.State == store.VMNotResponding:
				ev.Code, ev.Severity = api.CodeVMNotResponding, store.SeverityWarning
				ev.Message = fmt.Sprintf("The QEMU of VM %s on host %s does not answer (%s).", cur.Name, h.Name, o.NotResponding)
				ev.Reason = fmt.Sprintf("was %s; only destroy works until it answers again", was)
				return true, e.appendEvent(ctx, tx, ev)
			case was == store.VMNotResponding:
				ev.Message = fmt.Sprintf("The QEMU of VM %s on host %s answers again; the VM is %s.", cur.Name, h.Name, cur.State)
				if o.NotResponding != "" {
					ev.Reason = o.NotResponding
					return true, e.appendEvent(ctx, tx, ev)
				}
			}
		}
		ev.Reason = fmt.Sprintf("was %s; %s", was, o.Why)
		return true, e.appendEvent(ctx, tx, ev)
	})
	if err != nil {
		if ctx.Err() == nil {
			y.m.warn("cannot record a VM's state", "vm", v.Name, "err", err)
		}
		return
	}
	if restart {
		go y.s.haRestart(y.ctx, v.ID, "", "it crashed on host "+h.Name)
	}
}

// startSeen records the outcome of a start the VM's host reports running
// (the VM was WaitForLaunch, or Unknown with a start pending there):
// nothing while the start is in flight in this engine (it records its
// outcome itself); else the start as it was ordered ("VM X was started by
// U", from the VM's pending action), saying that the engine which ordered
// it did not record it — it died, or lost its connection, before the host
// answered. Without a pending action (who started it is not known), the
// state change.
func (y *vmSync) startSeen(ctx context.Context, tx store.Tx, h store.Host, cur *store.VM, o observation) error {
	e := y.m.e
	if _, ok := y.s.starting.Load(cur.ID); ok {
		return nil
	}
	p := cur.Pending
	if p == nil || p.HostID != h.ID {
		cur.Pending = nil
		return e.appendEvent(ctx, tx, store.Event{Action: "vm.state", ObjectKind: "vm", ObjectID: cur.ID, ObjectName: cur.Name,
			Message: fmt.Sprintf("VM %s is %s on host %s.", cur.Name, cur.State, h.Name),
			Reason:  fmt.Sprintf("was WaitForLaunch: the engine that ordered its start did not record the outcome; %s", o.Why)})
	}
	cur.Pending = nil
	return e.appendEvent(ctx, tx, startedEvent(*cur, *p, h.Name,
		fmt.Sprintf("engine %s ordered the start at %s and did not record its outcome (it stopped or lost its connection); host %s reports the VM %s (%s), seen by engine %s",
			p.Engine, p.At.Format(time.RFC3339), h.Name, cur.State, o.Why, e.cfg.Name)))
}

// startFailedEvent is the audit event of a start that never completed:
// its VM stayed WaitForLaunch past launchGrace and its host does not run
// it.
func startFailedEvent(v store.VM, p store.VMPending, hostName, why string) store.Event {
	who := p.User
	if who == "" {
		who = "the engine"
	}
	return store.Event{Action: "vm.start", Severity: store.SeverityError, ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
		Code: api.CodeUserFailedRunVM, User: p.User, CorrelationID: p.CorrelationID,
		Message: fmt.Sprintf("Failed to run VM %s on host %s.", v.Name, hostName),
		Reason: fmt.Sprintf("the start %s asked for through engine %s at %s did not complete within %s; the host reports: %s",
			who, p.Engine, p.At.Format(time.RFC3339), launchGrace, why)}
}

// restartsHA tells whether an HA VM that its host reports Down (or no
// longer has) starts again: when it crashed, or when it went while the
// host did not answer (Unknown: it died with the host) — not when it was
// shut down or destroyed on purpose.
func restartsHA(ha bool, was store.VMState, o observation) bool {
	if !ha || was == store.VMPoweringDown {
		return false
	}
	return o.Crashed || was == store.VMUnknown
}

// adopt records a VM the engine thought Down that a host runs.
func (y *vmSync) adopt(ctx context.Context, h store.Host, v store.VM, o observation) {
	e := y.m.e
	_, err := e.mutateVM(ctx, v.ID, func(tx store.Tx, cur *store.VM) (bool, error) {
		if cur.HostID != "" {
			return false, nil
		}
		cur.State, cur.HostID = o.State, h.ID
		return true, e.appendEvent(ctx, tx, store.Event{Action: "vm.state", Severity: store.SeverityWarning, ObjectKind: "vm",
			ObjectID: cur.ID, ObjectName: cur.Name,
			Message: fmt.Sprintf("VM %s was found %s on host %s while the engine had it Down; it runs there now.", cur.Name, o.State, h.Name),
			Reason:  o.Why})
	})
	if err != nil && ctx.Err() == nil {
		y.m.warn("cannot record a VM found running", "vm", v.Name, "err", err)
	}
}

// stale removes a copy of a VM from a host it does not run on for the
// engine: destroyed when it runs (an HA restart elsewhere happened while
// the host did not answer), its definition removed anyway.
func (y *vmSync) stale(ctx context.Context, h store.Host, v store.VM, o observation) {
	e := y.m.e
	if err := y.s.agents.DeleteVM(ctx, h, v.ID, true); err != nil {
		if ae := asAgentError(err); ae == nil || !ae.NotFound() {
			if ctx.Err() == nil {
				y.m.warn("cannot remove a stale copy of a VM", "vm", v.Name, "host", h.Name, "err", err)
			}
			return
		}
	}
	if !runs(o.State) {
		return
	}
	other := v.HostID
	if oh, err := e.st.GetHost(ctx, v.HostID); err == nil {
		other = oh.Name
	}
	ev := store.Event{Action: "vm.stale-copy", Severity: store.SeverityWarning, ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
		Code: api.CodeVMStaleCopyDestroyed,
		Message: fmt.Sprintf("VM %s was found %s on host %s while it runs on host %s: the copy on %s was destroyed.",
			v.Name, o.State, h.Name, other, h.Name)}
	if err := e.appendEvent(ctx, e.st, ev); err != nil && ctx.Err() == nil {
		y.m.warn("audit log", "err", err)
	}
	y.m.log.Warn("stale copy of a VM destroyed", "vm", v.Name, "host", h.Name, "runs-on", other)
}

// foreign handles a VM a host has that the engine does not know.
func (y *vmSync) foreign(ctx context.Context, h store.Host, o observation) {
	e := y.m.e
	var def struct {
		Metadata map[string]string `json:"metadata"`
	}
	_ = json.Unmarshal(o.Definition, &def)
	if def.Metadata[MarkerKey] == y.s.marker() {
		if err := y.s.agents.DeleteVM(ctx, h, o.ID, true); err != nil {
			if ae := asAgentError(err); ae == nil || !ae.NotFound() {
				if ctx.Err() == nil {
					y.m.warn("cannot remove a deleted VM from its host", "vm", o.Name, "host", h.Name, "err", err)
				}
			}
			return
		}
		ev := store.Event{Action: "vm.remove", ObjectKind: "vm", ObjectID: o.ID, ObjectName: o.Name,
			Message: fmt.Sprintf("VM %s, removed from the engine while host %s did not answer, was removed from the host.", o.Name, h.Name)}
		if err := e.appendEvent(ctx, e.st, ev); err != nil && ctx.Err() == nil {
			y.m.warn("audit log", "err", err)
		}
		return
	}
	key := h.ID + "/" + o.ID
	y.mu.Lock()
	done := y.reported[key]
	y.reported[key] = true
	y.mu.Unlock()
	if done {
		return
	}
	ev := store.Event{Action: "vm.foreign", Severity: store.SeverityWarning, ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
		Code:    api.CodeHostHasUnmanagedVM,
		Message: fmt.Sprintf("Host %s has VM %s (%s, %s) that this engine does not manage; it is left alone.", h.Name, o.Name, o.ID, o.State)}
	if err := e.appendEvent(ctx, e.st, ev); err != nil && ctx.Err() == nil {
		y.m.warn("audit log", "err", err)
	}
}
