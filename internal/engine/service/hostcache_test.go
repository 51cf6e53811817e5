package service

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"polyvirt/internal/api/engineapi"
)

// TestSnapshotEncoded: a page's host shows the monitor's latest statistics
// when they are newer than its row's, in the JSON json.Marshal makes of
// it, appended to the page; its encoding without them is made once and
// kept; the list's own views are not changed.
func TestSnapshotEncoded(t *testing.T) {
	m, pollers := monitorOf("h1")
	p := pollers[0]
	t0 := time.Date(2026, 12, 5, 17, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	view := func(id, name string) engineapi.Host {
		return engineapi.Host{ID: id, Name: name, Status: "Up", CPUFlags: []string{}, EmulatedMachines: []string{}, Version: 3,
			Created: t0, Updated: t0, LastSeen: at(1), StatsAt: at(0), Stats: json.RawMessage(`{"n":0}`)}
	}
	snap := &hostSnapshot{views: []engineapi.Host{view("h1", "a"), view("h2", "b")}, enc: make([]atomic.Pointer[hostJSON], 2)}
	// shows is view i's JSON as json.Marshal makes it with the statistics
	// given (none: its own).
	shows := func(i int, stats string, statsAt, seen time.Time) string {
		v := snap.views[i]
		if stats != "" {
			v.Stats, v.StatsAt, v.LastSeen = json.RawMessage(stats), statsAt, seen
		}
		b, err := json.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// enc is view i's JSON appended to a page's beginning.
	enc := func(i int) []byte {
		t.Helper()
		b, err := snap.appendEncoded([]byte(`{"hosts":[`), m, i)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), `{"hosts":[`) {
			t.Fatalf("the page's beginning lost: %s", b)
		}
		return b[len(`{"hosts":[`):]
	}

	first := enc(0)
	if got, want := string(first), shows(0, "", time.Time{}, time.Time{}); got != want {
		t.Errorf("before any push:\n got %s\nwant %s", got, want)
	}
	base := snap.enc[0].Load()
	if again := enc(0); string(again) != string(first) || snap.enc[0].Load() != base || base == nil {
		t.Error("the host's encoding without statistics made again, not kept")
	}
	p.gotStats(at(2), []byte(`{"n":2}`))
	pushed := enc(0)
	if got, want := string(pushed), shows(0, `{"n":2}`, at(2), at(2)); got != want {
		t.Errorf("after a push:\n got %s\nwant %s", got, want)
	}
	if snap.enc[0].Load() != base {
		t.Error("the host's encoding without statistics made again for new statistics")
	}
	// Every host of every page comes through here: into a page's buffer
	// with room, it allocates nothing (it copied the view once).
	page := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := snap.appendEncoded(page[:0], m, 0); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("appending a host with pushed statistics to a page: %.0f allocations, want none", n)
	}
	if got, want := string(enc(1)), shows(1, "", time.Time{}, time.Time{}); got != want {
		t.Errorf("a host the monitor has nothing of:\n got %s\nwant %s", got, want)
	}
	if string(snap.views[0].Stats) != `{"n":0}` || !snap.views[0].StatsAt.Equal(at(0)) {
		t.Errorf("the list's view changed: %s at %v", snap.views[0].Stats, snap.views[0].StatsAt)
	}
	latest := snap.latestViews(m)
	if string(latest[0].Stats) != `{"n":2}` || !latest[0].LastSeen.Equal(at(2)) || string(latest[1].Stats) != `{"n":0}` {
		t.Errorf("latest views: %s seen %v, %s", latest[0].Stats, latest[0].LastSeen, latest[1].Stats)
	}

	// Statistics older than the row's are not shown.
	old := &hostSnapshot{views: []engineapi.Host{view("h1", "a")}, enc: make([]atomic.Pointer[hostJSON], 1)}
	old.views[0].StatsAt, old.views[0].Stats = at(5), json.RawMessage(`{"n":5}`)
	b, err := old.appendEncoded(nil, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	var back engineapi.Host
	if err := json.Unmarshal(b, &back); err != nil || string(back.Stats) != `{"n":5}` {
		t.Errorf("older pushed statistics over newer ones: %s (%v)", b, err)
	}
}
