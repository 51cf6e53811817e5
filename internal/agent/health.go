package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/libvirtconn"
)

// A QEMU that does not answer (stopped, deadlocked, swapped out) must cost
// its own VM only. Three things see to it:
//
//   - vmConns: every call that goes to a VM's QEMU (its monitor) is made on
//     a libvirt connection of that VM's own: libvirtd serves at most five
//     calls of one connection at a time (max_client_requests), so calls
//     stuck on one QEMU would otherwise stop every call of the agent;
//   - qemuGate: at most one such call per VM is sent at a time, each with
//     the QEMU time-out; a call QEMU does not answer in time makes the VM
//     NotResponding (an event says which call), and while that call is
//     still pending with libvirt nothing more is sent to that QEMU (each
//     would hold one more of libvirtd's worker threads);
//   - the probe: every statistics round asks each running VM's QEMU for its
//     status (query-status), so that a QEMU that stops answering is noticed
//     even when nobody asks anything of it.
//
// Destroying a VM takes none of this: libvirt kills its QEMU before it
// takes the domain's job (libvirtconn.DestroyDomain).

// vmConns keeps one libvirt connection per VM for the calls to its QEMU.
type vmConns struct {
	uri  string
	dial func(uri string, timeout time.Duration) (libvirtconn.AgentConn, error)

	mu    sync.Mutex
	conns map[string]*vmConn
}

type vmConn struct {
	ready chan struct{} // closed when the dial ended
	c     libvirtconn.AgentConn
	err   error
}

func newVMConns(m *connManager) *vmConns {
	return &vmConns{uri: m.uri, dial: func(uri string, timeout time.Duration) (libvirtconn.AgentConn, error) {
		return m.dial(uri, timeout)
	}, conns: map[string]*vmConn{}}
}

// get returns the connection of VM id, dialling it (once) when there is
// none or the last one was lost.
func (v *vmConns) get(ctx context.Context, id string) (libvirtconn.AgentConn, error) {
	v.mu.Lock()
	vc := v.conns[id]
	if vc != nil {
		select {
		case <-vc.ready:
			if vc.err != nil || isClosed(vc.c.Disconnected()) {
				if vc.c != nil {
					go vc.c.Close()
				}
				vc = nil
			}
		default:
		}
	}
	if vc == nil {
		vc = &vmConn{ready: make(chan struct{})}
		v.conns[id] = vc
		go func() {
			vc.c, vc.err = v.dial(v.uri, dialTimeout)
			if vc.err != nil {
				vc.err = fmt.Errorf("%w: %v", errLibvirtDown, vc.err)
			}
			close(vc.ready)
		}()
	}
	v.mu.Unlock()
	select {
	case <-vc.ready:
		return vc.c, vc.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: no connection to libvirt within the request's time: %v", errLibvirtDown, ctx.Err())
	}
}

// drop closes the connection of VM id (the VM stopped or went), in the
// background.
func (v *vmConns) drop(id string) {
	if vc := v.take(id); vc != nil {
		go vc.close()
	}
}

// take removes the connection of VM id from the set (nil when it has none).
func (v *vmConns) take(id string) *vmConn {
	v.mu.Lock()
	defer v.mu.Unlock()
	vc := v.conns[id]
	delete(v.conns, id)
	return vc
}

// close closes the connection once its dial ended (a failed dial has none).
func (vc *vmConn) close() {
	<-vc.ready
	if vc.c != nil {
		vc.c.Close()
	}
}

// closeAll closes every VM's connection (the daemon went away, or the
// agent stops) and returns once they are closed: a connection closes after
// the calls under way on it (libvirtconn), and an agent that exited before
// would close its sockets under those calls — which crashes libvirtd 9.0.
func (v *vmConns) closeAll() {
	v.mu.Lock()
	all := make([]*vmConn, 0, len(v.conns))
	for id, vc := range v.conns {
		all = append(all, vc)
		delete(v.conns, id)
	}
	v.mu.Unlock()
	var wg sync.WaitGroup
	for _, vc := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vc.close()
		}()
	}
	wg.Wait()
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// qemuGate is the state of the calls to one VM's QEMU.
type qemuGate struct {
	// turn is held (one token) by the call in progress.
	turn chan struct{}

	mu sync.Mutex
	// stuck is the call QEMU did not answer in time ("" when none) and
	// stuckDone is closed when libvirt finally answers it.
	stuck     string
	stuckDone chan struct{}
	// reason is why the VM is NotResponding ("" when it answers).
	reason string
	since  time.Time
}

// qemuHealth holds the gates of the VMs.
type qemuHealth struct {
	mu    sync.Mutex
	gates map[string]*qemuGate
}

func newQEMUHealth() *qemuHealth { return &qemuHealth{gates: map[string]*qemuGate{}} }

func (h *qemuHealth) gate(id string) *qemuGate {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.gates[id]
	if g == nil {
		g = &qemuGate{turn: make(chan struct{}, 1)}
		h.gates[id] = g
	}
	return g
}

// forget drops a VM's gate: it stopped (its QEMU is gone) or was removed.
func (h *qemuHealth) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.gates, id)
}

// notResponding returns why a VM's QEMU does not answer ("" when it does).
func (h *qemuHealth) notResponding(id string) string {
	h.mu.Lock()
	g := h.gates[id]
	h.mu.Unlock()
	if g == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reason
}

// errNotResponding is the answer to a call a VM whose QEMU does not answer
// cannot take.
func (a *Agent) errNotResponding(e *vmEntry, reason string) error {
	return api.NewError(http.StatusConflict, api.CodeVMNotResponding,
		"the QEMU of VM %s on host %s does not answer (%s); only destroy works until it answers again",
		e.Name, a.cfg.HostID, reason)
}

// qemuCall runs f, a call to the QEMU of VM e named op (query-status,
// DomainShutdown, ...), on the VM's own connection, within the QEMU
// time-out. With wait false, a VM whose QEMU is busy with another call is
// not waited for (errQEMUBusy).
func (a *Agent) qemuCall(ctx context.Context, e *vmEntry, op string, wait bool, f func(ctx context.Context, c libvirtconn.AgentConn) error) error {
	g := a.health.gate(e.ID)
	g.mu.Lock()
	stuck, stuckDone, reason := g.stuck, g.stuckDone, g.reason
	g.mu.Unlock()
	if stuck != "" && !isClosed(stuckDone) {
		// libvirt still waits for QEMU's answer to an earlier call.
		return a.errNotResponding(e, reason)
	}
	timeout := a.cfg.QEMUTimeout.Duration
	if wait {
		select {
		case g.turn <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(timeout):
			// The call in progress has had the whole time-out: it marks the
			// VM itself when it ends; this one says so now.
			return a.errNotResponding(e, fmt.Sprintf("another call to it has had no reply within %s", timeout))
		}
	} else {
		select {
		case g.turn <- struct{}{}:
		default:
			return errQEMUBusy
		}
	}
	c, err := a.vmConns.get(ctx, e.ID)
	if err != nil {
		<-g.turn
		return err
	}
	// The call runs on its own: when QEMU does not answer, its RPC stays
	// pending with libvirt after the time-out, and the VM's turn with it.
	done := make(chan error, 1)
	pending := make(chan struct{})
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), libvirtconn.MaxCallTime)
	go func() {
		defer cancel()
		err := f(cctx, c)
		done <- err
		close(pending)
		<-g.turn
	}()
	select {
	case err = <-done:
	case <-time.After(timeout):
		a.markNotResponding(e, g, fmt.Sprintf("no reply to %s within %s", op, timeout), pending)
		return a.errNotResponding(e, a.health.notResponding(e.ID))
	case <-ctx.Done():
		return ctx.Err()
	}
	if err == nil {
		a.markResponding(e, g)
		return nil
	}
	if libvirtconn.ErrorCode(err) == libvirtconn.CodeOperationTimeout {
		// libvirt waited 30 s for the domain's job, held by a call QEMU does
		// not answer (another client's, or one of ours).
		a.markNotResponding(e, g, fmt.Sprintf("no reply to %s: %v", op, err), nil)
		return a.errNotResponding(e, a.health.notResponding(e.ID))
	}
	return err
}

// errQEMUBusy: another call to the VM's QEMU is in progress.
var errQEMUBusy = errors.New("another call to the VM's QEMU is in progress")

// markNotResponding records that VM e's QEMU does not answer (pending, when
// not nil, is closed when libvirt answers the call at last) and publishes
// an event the first time.
func (a *Agent) markNotResponding(e *vmEntry, g *qemuGate, reason string, pending chan struct{}) {
	g.mu.Lock()
	first := g.reason == ""
	g.reason = reason
	if pending != nil {
		g.stuck, g.stuckDone = reason, pending
	}
	if first {
		g.since = time.Now()
	}
	g.mu.Unlock()
	if !first {
		return
	}
	a.log.Warn("QEMU does not answer", "vm", e.ID, "name", e.Name, "reason", reason)
	a.hub.publish(agentapi.Event{Time: time.Now().UTC(), Host: a.cfg.HostID, VM: e.ID, Name: e.Name,
		Event: agentapi.EventNotResponding, Detail: reason, State: agentapi.StateRunning})
}

// markResponding records that VM e's QEMU answered a call.
func (a *Agent) markResponding(e *vmEntry, g *qemuGate) {
	g.mu.Lock()
	was := g.reason
	if g.stuck != "" && !isClosed(g.stuckDone) {
		g.mu.Unlock()
		return
	}
	g.reason, g.stuck, g.stuckDone = "", "", nil
	since := g.since
	g.mu.Unlock()
	if was == "" {
		return
	}
	a.log.Info("QEMU answers again", "vm", e.ID, "name", e.Name, "after", time.Since(since).Round(time.Second))
	a.hub.publish(agentapi.Event{Time: time.Now().UTC(), Host: a.cfg.HostID, VM: e.ID, Name: e.Name,
		Event: agentapi.EventResponding, Detail: fmt.Sprintf("it did not answer for %s (%s)", time.Since(since).Round(time.Second), was),
		State: agentapi.StateRunning})
}

// probe asks VM e's QEMU for its status (query-status), unless another
// call to it is in progress; a QEMU that does not answer makes the VM
// NotResponding, one that answers again clears it.
func (a *Agent) probe(ctx context.Context, e *vmEntry) {
	err := a.qemuCall(ctx, e, "query-status", false, func(ctx context.Context, c libvirtconn.AgentConn) error {
		_, err := c.QueryStatus(ctx, e.Domain)
		return err
	})
	if err != nil && !errors.Is(err, errQEMUBusy) && asAPIError(err).Code != api.CodeVMNotResponding &&
		!errors.Is(err, libvirtconn.ErrNoDomain) && libvirtconn.ErrorCode(err) != libvirtconn.CodeOperationInvalid {
		a.log.Debug("query-status", "vm", e.ID, "err", err)
	}
}
