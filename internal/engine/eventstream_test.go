package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
)

// sseServer is an HTTPS server whose /events writes pieces, each flushed
// on its own after a pause, then ends its answer.
func sseServer(t *testing.T, pause time.Duration, pieces ...string) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set(agentapi.StatsHeader, "2s")
		rc := http.NewResponseController(w)
		for _, p := range pieces {
			io.WriteString(w, p)
			if rc.Flush() != nil {
				return
			}
			select {
			case <-time.After(pause):
			case <-r.Context().Done():
				return
			}
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "https://")
}

// testReaders are stream readers stopped when the test ends.
func testReaders(t *testing.T, n int) *streamReaders {
	r := newStreamReaders(n)
	t.Cleanup(r.close)
	return r
}

// openTestStream opens addr's /events as the engine does.
func openTestStream(t *testing.T, ctx context.Context, addr string, readers *streamReaders, pushed func([]byte)) *eventStream {
	t.Helper()
	c, err := openStream(ctx, testDial, addr, "/events", 5*time.Second, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := newEventStream(c, readers, pushed)
	t.Cleanup(s.Close)
	return s
}

const testEvents = "event: stats\ndata: {\"cpu\":\ndata: 1}\n\n" +
	"event: vm\ndata: {\"event\":\"started\",\"vm\":\"v1\"}\n\n" +
	"event: vm\ndata: not json\n\n" +
	"event: stats\ndata: {\"cpu\":\n\n" +
	": a comment\n\n" +
	"event: stats\ndata: {\"cpu\":2}\n\n"

// split cuts s into pieces of n bytes.
func split(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// TestEventStreamNext: over a real HTTPS connection, in pieces of any
// size, pushed statistics come as they were sent (several data lines
// joined) — to the pushed function when there is one, as events when not —
// VM events decoded, malformed events (statistics that are not JSON too)
// skipped; the answer's end is io.EOF.
func TestEventStreamNext(t *testing.T) {
	for _, size := range []int{len(testEvents), 7, 1} {
		addr := sseServer(t, time.Millisecond, split(testEvents, size)...)
		s := openTestStream(t, context.Background(), addr, testReaders(t, 2), nil)
		if !s.PushesStats() {
			t.Errorf("pieces of %d: the stream does not say it pushes statistics", size)
		}
		want := []agentapi.Event{
			{Event: agentapi.EventStats, Stats: []byte("{\"cpu\":\n1}")},
			{Event: "started", VM: "v1"},
			{Event: agentapi.EventStats, Stats: []byte(`{"cpu":2}`)},
		}
		for i, w := range want {
			ev, err := s.Next()
			if err != nil {
				t.Fatalf("pieces of %d, event %d: %v", size, i, err)
			}
			if ev.Event != w.Event || ev.VM != w.VM || !bytes.Equal(ev.Stats, w.Stats) {
				t.Errorf("pieces of %d, event %d: %+v (stats %q), want %+v (stats %q)", size, i, ev, ev.Stats, w, w.Stats)
			}
		}
		if _, err := s.Next(); !errors.Is(err, io.EOF) {
			t.Errorf("pieces of %d, after the last event: %v, want io.EOF", size, err)
		}
	}

	// With a pushed function: the statistics go there, in order, and Next
	// gives the VM events only.
	addr := sseServer(t, time.Millisecond, split(testEvents, 5)...)
	var mu sync.Mutex
	var pushes []string
	s := openTestStream(t, context.Background(), addr, testReaders(t, 1), func(b []byte) {
		mu.Lock()
		pushes = append(pushes, string(b))
		mu.Unlock()
	})
	ev, err := s.Next()
	if err != nil || ev.Event != "started" || ev.VM != "v1" {
		t.Fatalf("the VM event: %+v, %v", ev, err)
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the VM event: %v, want io.EOF", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(pushes, "|") != "{\"cpu\":\n1}|{\"cpu\":2}" {
		t.Errorf("pushed %q", pushes)
	}
}

// TestEventStreamsShareTheirReaders: twenty streams, one reader: every
// stream's events come, in order.
func TestEventStreamsShareTheirReaders(t *testing.T) {
	readers := testReaders(t, 1)
	var streams []*eventStream
	for i := range 20 {
		var pieces []string
		for j := range 5 {
			pieces = append(pieces, fmt.Sprintf("event: vm\ndata: {\"event\":\"e%d\",\"vm\":\"s%d\"}\n\n", j, i))
		}
		streams = append(streams, openTestStream(t, context.Background(), sseServer(t, 5*time.Millisecond, pieces...), readers, nil))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				ev, err := s.Next()
				if err != nil || ev.Event != fmt.Sprintf("e%d", j) || ev.VM != fmt.Sprintf("s%d", i) {
					errs <- fmt.Errorf("stream %d, event %d: %+v, %v", i, j, ev, err)
					return
				}
			}
			if _, err := s.Next(); !errors.Is(err, io.EOF) {
				errs <- fmt.Errorf("stream %d at its end: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestEventStreamReadersStopped: a stream whose readers stopped (the
// engine stops) ends with an error that says so.
func TestEventStreamReadersStopped(t *testing.T) {
	readers := newStreamReaders(1)
	addr := sseServer(t, time.Second, "event: vm\ndata: {\"event\":\"e\",\"vm\":\"v\"}\n\n", ": more\n\n")
	s := openTestStream(t, context.Background(), addr, readers, nil)
	readers.close()
	if _, err := s.Next(); err == nil || err.Error() != "the engine is stopping" {
		t.Errorf("with the readers stopped: %v", err)
	}
}

// TestEventStreamWaitAllocatesNothing: a host's goroutine waiting for its
// stream's data, and the read that finds none, allocate nothing (ten
// thousand of them wait).
func TestEventStreamWaitAllocatesNothing(t *testing.T) {
	addr := sseServer(t, 10*time.Second, "event: vm\ndata: {\"event\":\"e\",\"vm\":\"v\"}\n\n", ": more\n\n")
	s := openTestStream(t, context.Background(), addr, testReaders(t, 1), nil)
	if ev, err := s.Next(); err != nil || ev.VM != "v" {
		t.Fatalf("the first event: %+v, %v", ev, err)
	}
	buf := make([]byte, 512)
	// Nothing more for ten seconds: the read finds none.
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := s.c.raw.Read(buf); !errors.Is(err, errWouldBlock) {
			t.Fatalf("a read with nothing to read: %v", err)
		}
	}); allocs != 0 {
		t.Errorf("a read that found nothing: %v allocations", allocs)
	}
	// The wait, on a connection with data: returns at once.
	a, b := tcpPair(t)
	pc := newPollConn(a)
	if _, err := b.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := pc.waitReadable(); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("a wait: %v allocations", allocs)
	}
}

// FuzzEventStreamEvent: any event an agent sends ends as a VM event, as
// statistics that are JSON, or nowhere; never a panic.
func FuzzEventStreamEvent(f *testing.F) {
	f.Add([]byte("stats"), []byte(`{"cpu":1}`))
	f.Add([]byte("vm"), []byte(`{"event":"stopped","vm":"x"}`))
	f.Add([]byte(" stats "), []byte(`{"cpu":`))
	f.Fuzz(func(t *testing.T, name, data []byte) {
		for _, withPushed := range []bool{false, true} {
			s := &eventStream{}
			var pushed [][]byte
			if withPushed {
				s.pushed = func(b []byte) { pushed = append(pushed, b) }
			}
			s.event(name, data)
			for _, ev := range s.pending {
				if ev.Event == agentapi.EventStats && !json.Valid(ev.Stats) {
					t.Fatalf("statistics %q that are not JSON from %q", ev.Stats, data)
				}
			}
			for _, b := range pushed {
				if !json.Valid(b) {
					t.Fatalf("pushed %q that are not JSON", b)
				}
			}
			if len(s.pending)+len(pushed) > 1 {
				t.Fatalf("one event gave %d", len(s.pending)+len(pushed))
			}
		}
	})
}
