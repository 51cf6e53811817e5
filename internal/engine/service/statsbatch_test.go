package service

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// TestStatsBatchWriteRate: a host's statistics are taken for writing at
// most every StatsWrite (its first at once, the latest of those that came
// meanwhile after), all of them when the rate is 0 (the last flush); its
// latest are at hand all the time, until it is forgotten.
func TestStatsBatchWriteRate(t *testing.T) {
	b := newStatsBatch()
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ids := func(ss []store.HostStats) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.HostID+"@"+s.At.Sub(t0).String())
		}
		slices.Sort(out)
		return out
	}
	b.add(store.HostStats{HostID: "a", Stats: []byte(`{"n":1}`), At: at(1)})
	b.add(store.HostStats{HostID: "b", Stats: []byte(`{"n":1}`), At: at(1)})
	if got := ids(b.take(time.Hour)); !slices.Equal(got, []string{"a@1s", "b@1s"}) {
		t.Errorf("first take: %v; want both hosts' first statistics", got)
	}
	b.add(store.HostStats{HostID: "a", Stats: []byte(`{"n":2}`), At: at(2)})
	b.add(store.HostStats{HostID: "a", Stats: []byte(`{"n":3}`), At: at(3)})
	b.add(store.HostStats{HostID: "c", Stats: []byte(`{"n":1}`), At: at(3)})
	if got := ids(b.take(time.Hour)); !slices.Equal(got, []string{"c@3s"}) {
		t.Errorf("take within the rate: %v; want the new host's only", got)
	}
	if s, ok := b.latest("a"); !ok || !s.At.Equal(at(3)) || string(s.Stats) != `{"n":3}` {
		t.Errorf("latest of a: %+v %v; want those at 3s", s, ok)
	}
	if got := ids(b.take(0)); !slices.Equal(got, []string{"a@3s"}) {
		t.Errorf("take at any rate: %v; want a's latest", got)
	}
	if got := b.take(0); len(got) != 0 {
		t.Errorf("nothing pending: %v", ids(got))
	}
	b.add(store.HostStats{HostID: "b", Stats: []byte(`{"n":2}`), At: at(4)})
	b.forget("b")
	if _, ok := b.latest("b"); ok || len(b.take(0)) != 0 {
		t.Errorf("a forgotten host's statistics are kept")
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
