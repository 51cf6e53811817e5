package service

import (
	"context"
	"slices"
	"sync"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// The live event stream: one poller per engine reads the audit log (the
// events of every engine of a shared database, not only this one's) while
// someone listens, and hands each new event to every listener.

// EventPoll is how often the stream's poller reads the audit log.
const EventPoll = time.Second

// eventHub is the stream's poller and its listeners.
type eventHub struct {
	e       *engine
	mu      sync.Mutex
	subs    map[chan engineapi.Event]struct{}
	running bool
	// last is the newest event ID handed out; primed tells it was read.
	last   int64
	primed bool
}

func (e *engine) eventHub() *eventHub {
	e.hubOnce.Do(func() { e.hub = &eventHub{e: e, subs: map[chan engineapi.Event]struct{}{}} })
	return e.hub
}

// Subscribe returns the events recorded from now on, until the returned
// function is called; a listener that does not read loses events.
func (s *Events) Subscribe() (<-chan engineapi.Event, func()) {
	h := s.e.eventHub()
	ch := make(chan engineapi.Event, 256)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	if !h.running {
		h.running = true
		go h.run()
	}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// run polls the audit log until nobody listens or the engine stops.
func (h *eventHub) run() {
	ctx := h.e.vms.streams
	tick := time.NewTicker(EventPoll)
	defer tick.Stop()
	for {
		h.mu.Lock()
		if len(h.subs) == 0 || ctx.Err() != nil {
			h.running, h.primed = false, false
			h.mu.Unlock()
			return
		}
		last, primed := h.last, h.primed
		h.mu.Unlock()
		fresh, newest, err := h.e.eventsAfter(ctx, last)
		if err == nil {
			h.mu.Lock()
			if !primed {
				// The first read only finds where the log is.
				fresh = nil
				h.primed = true
			}
			h.last = newest
			for ch := range h.subs {
				for _, ev := range fresh {
					select {
					case ch <- ev:
					default:
					}
				}
			}
			h.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// After returns the events after ID last, oldest first (at most a page):
// what a listener that reconnects missed.
func (s *Events) After(ctx context.Context, last int64) ([]engineapi.Event, error) {
	out, _, err := s.e.eventsAfter(ctx, last)
	return out, coded(err)
}

// eventsAfter returns the events after ID last, oldest first (at most a
// page), and the newest ID.
func (e *engine) eventsAfter(ctx context.Context, last int64) ([]engineapi.Event, int64, error) {
	page, err := e.st.ListEvents(ctx, store.EventFilter{Limit: 200})
	if err != nil {
		return nil, last, err
	}
	var out []engineapi.Event
	newest := last
	for _, ev := range page.Events {
		if ev.ID > last {
			out = append(out, eventView(ev))
		}
		newest = max(newest, ev.ID)
	}
	slices.Reverse(out)
	return out, newest, nil
}

// Streams is the context of the long-lived streams: done when the engine
// stops serving.
func (s *Events) Streams() context.Context { return s.e.vms.streams }
