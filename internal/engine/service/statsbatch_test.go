package service

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// TestStatsWriteRate: a host's statistics are queued for writing at most
// every StatsWrite (its first at once), its latest are at hand all the
// time, and the leader's last flush queues every host's latest that was
// not queued.
func TestStatsWriteRate(t *testing.T) {
	m, pollers := monitorOf("a", "b")
	a, b := pollers[0], pollers[1]
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	queued := func() []string {
		var out []string
		for _, s := range m.batch.take() {
			out = append(out, s.HostID+"@"+s.At.Sub(t0).String())
		}
		slices.Sort(out)
		return out
	}
	a.gotStats(at(0), []byte(`{"n":0}`))
	b.gotStats(at(0), []byte(`{"n":0}`))
	if got := queued(); !slices.Equal(got, []string{"a@0s", "b@0s"}) {
		t.Errorf("first statistics queued: %v; want both hosts'", got)
	}
	a.gotStats(at(2), []byte(`{"n":2}`))
	a.gotStats(at(4), []byte(`{"n":4}`))
	if got := queued(); len(got) != 0 {
		t.Errorf("queued within StatsWrite: %v", got)
	}
	if s := m.latestStats("a"); s == nil || !s.At.Equal(at(4)) || string(s.Stats) != `{"n":4}` {
		t.Errorf("latest of a: %+v; want those at 4s", s)
	}
	a.gotStats(at(10), []byte(`{"n":10}`))
	b.gotStats(at(6), []byte(`{"n":6}`))
	if got := queued(); !slices.Equal(got, []string{"a@10s"}) {
		t.Errorf("queued after StatsWrite: %v; want a's at 10s", got)
	}
	m.queueUnwritten()
	if got := queued(); !slices.Equal(got, []string{"b@6s"}) {
		t.Errorf("the last flush's: %v; want b's latest only", got)
	}
	if m.latestStats("c") != nil {
		t.Error("statistics of a host that is not monitored")
	}
}

// TestCarryStats: a list read without the statistics documents takes
// those of the list before when they are as new; a host without any says
// it has none.
func TestCarryStats(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := []engineapi.Host{
		{ID: "a", Stats: []byte(`{"n":1}`), StatsAt: t0.Add(2 * time.Second), LastSeen: t0.Add(2 * time.Second)},
		{ID: "b", Stats: []byte(`{"n":1}`), StatsAt: t0},
	}
	views := []engineapi.Host{
		{ID: "a", StatsAt: t0, LastSeen: t0},
		{ID: "b", StatsAt: t0.Add(time.Second)},
		{ID: "c", StatsAt: t0},
		{ID: "d", Stats: []byte(`{"n":9}`), StatsAt: t0},
	}
	carryStats(views, prev)
	want := []engineapi.Host{
		{ID: "a", Stats: []byte(`{"n":1}`), StatsAt: t0.Add(2 * time.Second), LastSeen: t0.Add(2 * time.Second)},
		{ID: "b"},
		{ID: "c"},
		{ID: "d", Stats: []byte(`{"n":9}`), StatsAt: t0},
	}
	if diff := cmp.Diff(want, views); diff != "" {
		t.Errorf("carried (-want +got):\n%s", diff)
	}
}

// monitorOf is a monitor of the hosts ids (their pollers, in that order)
// that writes each host's statistics at most every 10 s, without an engine
// to write them to.
func monitorOf(ids ...string) (*monitor, []*poller) {
	m := &monitor{e: &engine{obs: nopObserver{}}, cfg: MonitorConfig{StatsWrite: 10 * time.Second},
		batch: statsBatch{pending: map[string]store.HostStats{}}}
	var ps []*poller
	for _, id := range ids {
		p := &poller{m: m, id: id}
		m.byID.Store(id, p)
		ps = append(ps, p)
	}
	return m, ps
}
