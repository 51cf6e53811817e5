package engine

import (
	"fmt"
	"testing"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/store"
)

// TestHostListCache: the host list is served from memory, this engine's
// changes show at once, the statistics within about a second (the list's TTL).
func TestHostListCache(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power"}); err != nil {
		t.Fatal(err)
	}
	simHost(t, te, sim, "p8", "s822l-power8e", "power")
	first := waitHost(t, te.admin, "p8", 10*time.Second, func(h engineapi.Host) bool { return h.Status == "Up" && !h.LastSeen.IsZero() })

	list := func() map[string]engineapi.Host { return hostsByName(t, te) }
	// A change made here shows at once.
	if _, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: "new", Address: "127.0.0.1:1", Cluster: "power"}); err != nil {
		t.Fatal(err)
	}
	if h, ok := list()["new"]; !ok || h.Status != "Installing" {
		t.Errorf("a host just added is not in the list: %+v", list())
	}
	if _, err := te.admin.Maintenance(ctx, "p8", ""); err != nil {
		t.Fatal(err)
	}
	if h := list()["p8"]; h.Status != "Maintenance" {
		t.Errorf("p8 after maintenance: %s", h.Status)
	}
	if c, err := te.admin.Cluster(ctx, "power"); err != nil || c.Hosts["Maintenance"] != 1 || c.Hosts["Installing"] != 1 {
		t.Errorf("cluster counts: %+v %v", c.Hosts, err)
	}
	// The statistics move on within about the TTL.
	deadline := time.Now().Add(5 * time.Second)
	for !list()["p8"].LastSeen.After(first.LastSeen.Add(time.Second)) {
		if time.Now().After(deadline) {
			t.Fatalf("the listed last contact of p8 stays at %v", list()["p8"].LastSeen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Filters apply to the list in memory.
	hs, err := te.admin.Hosts(ctx, client.HostFilter{Cluster: "power", Statuses: []string{"Installing"}})
	if err != nil || len(hs) != 1 || hs[0].Name != "new" {
		t.Errorf("filtered list: %+v %v", hs, err)
	}
	hs, err = te.admin.Hosts(ctx, client.HostFilter{Statuses: []string{"Up"}})
	if err != nil || len(hs) != 0 {
		t.Errorf("no host is Up: %+v %v", hs, err)
	}
}

// TestLeaderStatsInMemory: the leader writes a host's statistics to the
// database at most every StatsWrite, and its API shows the latest from its
// memory meanwhile: in the host list and for the host read alone.
func TestLeaderStatsInMemory(t *testing.T) {
	mc := testMonitor
	mc.StatsWrite = time.Hour
	te := startEngine(t, mc)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power"}); err != nil {
		t.Fatal(err)
	}
	simHost(t, te, sim, "p8", "s822l-power8e", "power")
	first := waitHost(t, te.admin, "p8", 10*time.Second, func(h engineapi.Host) bool { return h.Status == "Up" && !h.StatsAt.IsZero() })
	// Its first statistics are written at the next flush.
	var written store.Host
	for deadline := time.Now().Add(10 * time.Second); written.StatsAt.IsZero(); time.Sleep(50 * time.Millisecond) {
		var err error
		if written, err = te.e.Store().GetHostByName(ctx, "p8"); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("a host's first statistics are not written")
		}
	}
	later := func(get func() (engineapi.Host, error), what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			h, err := get()
			if err != nil {
				t.Fatal(err)
			}
			if h.StatsAt.After(first.StatsAt.Add(time.Second)) && h.LastSeen.After(first.LastSeen.Add(time.Second)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: statistics stay at %v (seen %v)", what, h.StatsAt, h.LastSeen)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	later(func() (engineapi.Host, error) {
		hs, err := te.admin.Hosts(ctx, client.HostFilter{})
		if err != nil || len(hs) != 1 {
			return engineapi.Host{}, fmt.Errorf("list: %d hosts, %v", len(hs), err)
		}
		return hs[0], nil
	}, "the host list")
	later(func() (engineapi.Host, error) { return te.admin.Host(ctx, "p8", false) }, "the host read alone")
	again, err := te.e.Store().GetHostByName(ctx, "p8")
	if err != nil {
		t.Fatal(err)
	}
	if !again.StatsAt.Equal(written.StatsAt) {
		t.Errorf("the statistics were written again within StatsWrite: at %v, then %v", written.StatsAt, again.StatsAt)
	}
}

// TestLeaderHostListFollowsTheRevision: the leading engine reads the hosts'
// rows again only when their revision changes: quiet seconds of list calls
// read no host rows while the statistics listed still move, and a host
// changed in the database by another engine (written here straight to
// the store) shows within seconds.
func TestLeaderHostListFollowsTheRevision(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power"}); err != nil {
		t.Fatal(err)
	}
	simHost(t, te, sim, "p8", "s822l-power8e", "power")
	waitHost(t, te.admin, "p8", 10*time.Second, func(h engineapi.Host) bool { return h.Status == "Up" && !h.LastSeen.IsZero() })
	rowReads := func() float64 {
		_, mfs := te.scrape(t, te.token)
		return value(mfs, "polyvirt_db_call_duration_seconds", map[string]string{"call": "ListHosts"})
	}
	list := func() map[string]engineapi.Host { return hostsByName(t, te) }
	// The host's admission settles (its writes make reads); then three
	// seconds of lists every 100 ms (the list's TTL is a second).
	var quiet bool
	var seen engineapi.Host
	for deadline := time.Now().Add(30 * time.Second); !quiet && time.Now().Before(deadline); {
		before := rowReads()
		seen = list()["p8"]
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			list()
		}
		quiet = rowReads() == before
	}
	if !quiet {
		t.Fatalf("the host rows are read again and again with nothing changed (%v reads)", rowReads())
	}
	if now := list()["p8"]; !now.LastSeen.After(seen.LastSeen) {
		t.Errorf("the listed statistics did not move in three seconds: last seen %v, then %v", seen.LastSeen, now.LastSeen)
	}
	// Another engine renames the host: the revision changes, the rows are
	// read again.
	st := te.e.Store()
	h, err := st.GetHostByName(ctx, "p8")
	if err != nil {
		t.Fatal(err)
	}
	h.Name = "p8-renamed"
	if err := st.UpdateHost(ctx, &h); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		l := list()
		if _, ok := l["p8-renamed"]; ok && len(l) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another engine's rename does not show: %v", l)
		}
	}
}

// hostsByName lists the engine's hosts (every page) by name.
func hostsByName(t *testing.T, te *testEngine) map[string]engineapi.Host {
	t.Helper()
	hs, err := te.admin.Hosts(ctx, client.HostFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]engineapi.Host{}
	for _, h := range hs {
		out[h.Name] = h
	}
	return out
}
