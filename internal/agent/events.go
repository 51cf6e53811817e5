package agent

import (
	"context"
	"sync"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/libvirtconn"
)

// eventHub fans VM events out to the subscribers of GET /v1/events. A
// subscriber that does not keep up loses events rather than slowing the
// others (its channel is buffered; a full channel drops).
type eventHub struct {
	mu   sync.Mutex
	subs map[chan agentapi.Event]struct{}
}

func newEventHub() *eventHub { return &eventHub{subs: map[chan agentapi.Event]struct{}{}} }

// subscribe returns a channel of events and its cancel function.
func (h *eventHub) subscribe() (<-chan agentapi.Event, func()) {
	ch := make(chan agentapi.Event, 256)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
		h.mu.Unlock()
	}
}

func (h *eventHub) publish(ev agentapi.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// pumpEvents turns libvirt's lifecycle events of the domains this host
// owns into VM events, until the stream ends.
func (a *Agent) pumpEvents(ctx context.Context, c libvirtconn.AgentConn, events <-chan libvirtconn.LifecycleEvent) {
	for ev := range events {
		e, ok := a.index.byDomainUUID(ev.Domain.UUID)
		if !ok {
			if a.index.isForeign(ev.Domain.UUID) || ev.Event == libvirtconn.EventUndefined {
				continue
			}
			// A domain we have not seen: ours only if its owner element
			// says so (defined by this agent a moment ago, or by another
			// process on our behalf).
			var err error
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			e, err = a.readEntry(rctx, c, ev.Domain)
			cancel()
			if err != nil {
				a.index.markForeign(ev.Domain.UUID)
				continue
			}
			// A VM arriving from another host (incoming.go).
			if a.incomingDomain(ctx, c, e) {
				continue
			}
			a.index.put(e)
		}
		out := agentapi.Event{
			Time: time.Now().UTC(), Host: a.cfg.HostID, VM: e.ID, Name: e.Name,
			Event: libvirtconn.EventName(ev.Event), Detail: eventDetail(ev.Event, ev.Detail),
		}
		switch ev.Event {
		case libvirtconn.EventStopped, libvirtconn.EventCrashed, libvirtconn.EventUndefined:
			// Its QEMU is gone: so are its connection, gate and drain.
			a.forgetRuntime(e.ID)
		}
		if ev.Event == libvirtconn.EventUndefined {
			out.State = agentapi.StateUnknown
			a.index.remove(e.ID)
		} else {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			st, _, err := c.DomainStateReason(sctx, ev.Domain)
			cancel()
			if err == nil {
				out.State = stateOf(st)
				a.index.setState(e.ID, st)
			}
		}
		if ev.Event == libvirtconn.EventStarted || ev.Event == libvirtconn.EventResumed {
			go a.drainConsole(ctx, e)
		}
		a.hub.publish(out)
	}
}

// eventDetail names libvirt's detail of an event type.
func eventDetail(event, detail int32) string {
	var names []string
	switch event {
	case libvirtconn.EventDefined:
		names = []string{"added", "updated", "renamed", "from-snapshot"}
	case libvirtconn.EventUndefined:
		names = []string{"removed", "renamed"}
	case libvirtconn.EventStarted:
		names = []string{"booted", "migrated", "restored", "from-snapshot", "wakeup"}
	case libvirtconn.EventSuspended:
		names = []string{"paused", "migrated", "ioerror", "watchdog", "restored", "from-snapshot", "api-error", "postcopy", "postcopy-failed"}
	case libvirtconn.EventResumed:
		names = []string{"unpaused", "migrated", "from-snapshot", "postcopy", "postcopy-failed"}
	case libvirtconn.EventStopped:
		names = []string{"shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from-snapshot"}
	case libvirtconn.EventShutdown:
		names = []string{"finished", "guest", "host"}
	case libvirtconn.EventCrashed:
		names = []string{"panicked", "crashloaded"}
	}
	if detail >= 0 && int(detail) < len(names) {
		return names[detail]
	}
	return ""
}
