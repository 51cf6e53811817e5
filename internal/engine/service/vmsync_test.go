package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/store"
)

// TestReconnect: a watcher's wait doubles from 500 ms to 15 s while its
// connections fail or break soon, starts again after one that held, and is
// 5 minutes for an agent without events; a connection that failed puts the
// next one in the failing lane.
func TestReconnect(t *testing.T) {
	r := newReconnect()
	var waits []time.Duration
	for range 7 {
		waits = append(waits, r.after(false, time.Second, errors.New("connection refused")))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits after failures %v, want %v", waits, want)
		}
	}
	if r.lane != laneFailing {
		t.Error("after a failed connection: not the failing lane")
	}
	// Connected, broke after 2 s: the wait goes on growing, the lane is
	// the answering one.
	if w := r.after(true, 2*time.Second, io.EOF); w != 15*time.Second || r.lane != laneAnswering {
		t.Errorf("after a stream that broke soon: wait %s, lane %d", w, r.lane)
	}
	// Held for weeks: from the start again.
	if w := r.after(true, 21*24*time.Hour, io.EOF); w != 500*time.Millisecond || r.lane != laneAnswering {
		t.Errorf("after a stream that held: wait %s, lane %d", w, r.lane)
	}
	if w := r.after(true, stableStream, io.EOF); w != 500*time.Millisecond {
		t.Errorf("after a stream that held %s: wait %s", stableStream, w)
	}
	if w := r.after(false, 0, ErrNoEvents); w != 5*time.Minute {
		t.Errorf("an agent without events: wait %s", w)
	}
	if w := r.after(false, 0, errors.New("refused")); w != time.Second {
		t.Errorf("after no events: wait %s, want 1s (no events left the backoff as it was)", w)
	}
}

// connectingAgents are agents whose event streams open when released,
// counting the openings under way; they have no VM API (a host
// simulator), so a connection ends with ErrNoEvents once open.
type connectingAgents struct {
	Agents  // only Events and ListVMs are called
	release chan struct{}

	mu        sync.Mutex
	now, most int
}

func (a *connectingAgents) Events(ctx context.Context, h store.Host, _ time.Duration, _ func([]byte)) (EventStream, error) {
	a.mu.Lock()
	a.now++
	a.most = max(a.most, a.now)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.now--
		a.mu.Unlock()
	}()
	select {
	case <-a.release:
		return closedStream{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *connectingAgents) ListVMs(context.Context, store.Host) ([]agentapi.VM, error) {
	return nil, &AgentError{Status: 404, Msg: "no VM API"}
}

func (a *connectingAgents) underWay() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now
}

type closedStream struct{}

func (closedStream) Next() (agentapi.Event, error) { return agentapi.Event{}, io.EOF }
func (closedStream) PushesStats() bool             { return false }
func (closedStream) Close()                        {}

// TestWatcherConnectionsBounded: a lane's connections under way are
// bounded (the others wait for a place), and the failing lane's do not
// hold back the answering one's.
func TestWatcherConnectionsBounded(t *testing.T) {
	agents := &connectingAgents{release: make(chan struct{})}
	y := &vmSync{m: &monitor{cfg: MonitorConfig{StatsInterval: time.Second}}, s: &vmService{agents: agents},
		connecting: [2]chan struct{}{make(chan struct{}, 2), make(chan struct{}, 2)}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 8)
	connect := func(lane int) {
		w := &vmWatcher{y: y}
		go func() {
			_, err := w.connect(ctx, store.Host{Name: "h"}, lane, nil)
			errs <- err
		}()
	}
	wantUnderWay := func(n int, when string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for agents.underWay() < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // none more should come
		if got := agents.underWay(); got != n {
			t.Fatalf("%s: %d connections under way, want %d", when, got, n)
		}
	}
	for range 5 {
		connect(laneFailing)
	}
	wantUnderWay(2, "five in the failing lane (2 places)")
	for range 3 {
		connect(laneAnswering)
	}
	wantUnderWay(4, "three more in the answering lane (2 places)")
	close(agents.release)
	for range 8 {
		if err := <-errs; !errors.Is(err, ErrNoEvents) {
			t.Errorf("a connection ended with %v, want ErrNoEvents (opened, then no VM API)", err)
		}
	}
	if agents.most != 4 {
		t.Errorf("%d connections at once, want 4 (2 per lane)", agents.most)
	}
}

// TestAside: aside returns what f returned, f having run on a goroutine
// of its own.
func TestAside(t *testing.T) {
	caller := goroutineID()
	var ran uint64
	v, err := aside(func() (int, error) {
		ran = goroutineID()
		return 7, io.ErrUnexpectedEOF
	})
	if v != 7 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("aside returned %d, %v", v, err)
	}
	if ran == 0 || ran == caller {
		t.Errorf("f ran on goroutine %d, the caller's is %d", ran, caller)
	}
}

// goroutineID is the running goroutine's number, as its stack trace
// names it.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	n, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return n
}
