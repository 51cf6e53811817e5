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
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<10), 1<<20)
	return &eventStream{body: io.NopCloser(bytes.NewReader(nil)), sc: sc}
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
}

// FuzzEventStreamNext: any bytes from an agent end in events or an
// error, never a panic; statistics are always JSON.
func FuzzEventStreamNext(f *testing.F) {
	f.Add([]byte("event: stats\ndata: {\"cpu\":1}\n\n"))
	f.Add([]byte("event: vm\ndata: {\"event\":\"stopped\",\"vm\":\"x\"}\n\n"))
	f.Add([]byte("data:\n\nevent:\n\ndata: a\ndata: b\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newTestStream(b)
		for range 1000 {
			ev, err := s.Next()
			if err != nil {
				return
			}
			if ev.Event == agentapi.EventStats && !json.Valid(ev.Stats) {
				t.Fatalf("statistics %q that are not JSON from %q", ev.Stats, b)
			}
		}
	})
}
