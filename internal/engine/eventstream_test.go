package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"polyvirt/internal/api/agentapi"
)

func newTestStream(b []byte) *eventStream {
	return &eventStream{body: io.NopCloser(bytes.NewReader(nil)), sc: newEventScanner(bytes.NewReader(b))}
}

// TestEventStreamNext: pushed statistics come as they were sent (several
// data lines joined), VM events decoded, malformed events (statistics that
// are not JSON too) skipped.
func TestEventStreamNext(t *testing.T) {
	in := "event: stats\ndata: {\"cpu\":\ndata: 1}\n\n" +
		"event: vm\ndata: {\"event\":\"started\",\"vm\":\"v1\"}\n\n" +
		"event: vm\ndata: not json\n\n" +
		"event: stats\ndata: {\"cpu\":\n\n" +
		": a comment\n\n" +
		"event: stats\ndata: {\"cpu\":2}\n\n"
	s := newTestStream([]byte(in))
	want := []agentapi.Event{
		{Event: agentapi.EventStats, Stats: []byte("{\"cpu\":\n1}")},
		{Event: "started", VM: "v1"},
		{Event: agentapi.EventStats, Stats: []byte(`{"cpu":2}`)},
	}
	for i, w := range want {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.Event != w.Event || ev.VM != w.VM || !bytes.Equal(ev.Stats, w.Stats) {
			t.Errorf("event %d: %+v (stats %q), want %+v (stats %q)", i, ev, ev.Stats, w, w.Stats)
		}
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last event: %v, want io.EOF", err)
	}
	// Lines ending in CRLF, blank lines before the first event, and an
	// event the stream ends in the middle of (dropped).
	s = newTestStream([]byte("\n\r\n\nevent: stats\r\ndata: {\"cpu\":3}\r\n\r\nevent: stats\ndata: {\"cpu\":4}\n"))
	if ev, err := s.Next(); err != nil || ev.Event != agentapi.EventStats || string(ev.Stats) != `{"cpu":3}` {
		t.Errorf("a CRLF event: %+v (stats %q) %v", ev, ev.Stats, err)
	}
	if ev, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("an unfinished event: %+v (stats %q) %v, want io.EOF", ev, ev.Stats, err)
	}
}

// TestEventStreamPushesWithoutAllocating: statistics of one data line (as
// the agent writes them) come out of the stream's buffer, not a copy
// (ten thousand hosts push every few seconds).
func TestEventStreamPushesWithoutAllocating(t *testing.T) {
	doc := `{"host":{"cpuUsagePercent":41.27,"cpus":160},"vms":[],"libvirt":{"connected":true}}`
	s := newTestStream(bytes.Repeat([]byte("event: stats\ndata: "+doc+"\n\n"), 200))
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		ev, err := s.Next()
		if err != nil || string(ev.Stats) != doc {
			t.Fatalf("%q %v", ev.Stats, err)
		}
	}); n != 0 {
		t.Errorf("a push read with %.0f allocations, want none", n)
	}
}

// lineEvents is the event stream read line by line, as the engine read it
// before it read event by event: FuzzEventStreamNext's reference.
func lineEvents(b []byte) []agentapi.Event {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<10), 1<<20)
	var out []agentapi.Event
	var data []byte
	stats := false
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) == 0 {
				stats = false
				continue
			}
			if stats {
				if json.Valid(data) {
					out = append(out, agentapi.Event{Event: agentapi.EventStats, Stats: data})
				}
			} else {
				var ev agentapi.Event
				if json.Unmarshal(data, &ev) == nil {
					out = append(out, ev)
				}
			}
			data, stats = nil, false
		case bytes.HasPrefix(line, []byte("event:")):
			stats = string(bytes.TrimSpace(line[len("event:"):])) == agentapi.EventStats
		case bytes.HasPrefix(line, []byte("data:")):
			part := bytes.TrimPrefix(line[len("data:"):], []byte(" "))
			if data != nil {
				data = append(data, '\n')
			} else {
				data = []byte{}
			}
			data = append(data, part...)
		}
	}
	return out
}

// FuzzEventStreamNext: any bytes from an agent end in events or an
// error, never a panic; statistics are always JSON.
func FuzzEventStreamNext(f *testing.F) {
	f.Add([]byte("event: stats\ndata: {\"cpu\":1}\n\n"))
	f.Add([]byte("event: vm\ndata: {\"event\":\"stopped\",\"vm\":\"x\"}\n\n"))
	f.Add([]byte("data:\n\nevent:\n\ndata: a\ndata: b\n\n"))
	f.Add([]byte("event: stats\r\ndata: {}\r\n\r\n\n\nevent: stats\ndata: [1,\ndata: 2]\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newTestStream(b)
		want := lineEvents(b)
		for i := 0; ; i++ {
			ev, err := s.Next()
			if err != nil {
				if i != len(want) {
					t.Fatalf("%d events from %q, read line by line %d", i, b, len(want))
				}
				return
			}
			if ev.Event == agentapi.EventStats && !json.Valid(ev.Stats) {
				t.Fatalf("statistics %q that are not JSON from %q", ev.Stats, b)
			}
			if i >= len(want) || ev.Event != want[i].Event || ev.VM != want[i].VM || !bytes.Equal(ev.Stats, want[i].Stats) {
				t.Fatalf("event %d from %q: %+v (stats %q); read line by line: %+v", i, b, ev, ev.Stats, want)
			}
		}
	})
}
