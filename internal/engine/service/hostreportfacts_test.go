package service

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"polyvirt/internal/store"
)

// listCounter is a store that records the ListHosts it is asked.
type listCounter struct {
	store.Store
	mu    sync.Mutex
	lists []store.HostFilter
}

func (l *listCounter) ListHosts(ctx context.Context, f store.HostFilter) ([]store.Host, error) {
	l.mu.Lock()
	l.lists = append(l.lists, f)
	l.mu.Unlock()
	return l.Store.ListHosts(ctx, f)
}

// TestReportFactsLoad: the facts of hosts whose reports are not known
// are read from those hosts' reports only (by id, MaxHostIDs to a query),
// every report in one query when most are not known, and nothing when all
// are known.
func TestReportFactsLoad(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "engine.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := store.Cluster{Name: "power"}
	if err := st.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	n := store.MaxHostIDs + 3
	add := func(i int) {
		t.Helper()
		h := store.Host{Name: fmt.Sprintf("h%04d", i), Address: fmt.Sprintf("10.0.%d.%d:54321", i/250, i%250), ClusterID: c.ID,
			Status: store.HostUp, CapabilitiesHash: fmt.Sprintf("report-%d", i),
			Capabilities: fmt.Appendf(nil, `{"cpu":{"vendor":"IBM-%d"},"virt":{"virtualization":"kvm"}}`, i)}
		if err := st.CreateHost(ctx, &h); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		add(i)
	}
	counter := &listCounter{Store: st}
	brief := func() []store.Host {
		t.Helper()
		hs, err := st.ListHosts(ctx, store.HostFilter{Brief: true})
		if err != nil {
			t.Fatal(err)
		}
		return hs
	}
	var cache reportFactsCache
	check := func(hosts []store.Host) {
		t.Helper()
		for _, h := range hosts {
			f, ok := cache.of(h)
			var i int
			fmt.Sscanf(h.Name, "h%d", &i)
			if !ok || f.cpuVendor != fmt.Sprintf("IBM-%d", i) || f.virtualization != "kvm" {
				t.Fatalf("host %s: facts %+v (known %v)", h.Name, f, ok)
			}
		}
	}
	// The first list: nothing known, every report in one query.
	hosts := brief()
	cache.load(ctx, counter, hosts)
	check(hosts)
	if len(counter.lists) != 1 || counter.lists[0].IDs != nil || !counter.lists[0].WithCapabilities {
		t.Fatalf("first load's lists: %+v, want one of every report", counter.lists)
	}
	// All known: no query.
	counter.lists = nil
	cache.load(ctx, counter, hosts)
	if len(counter.lists) != 0 {
		t.Errorf("all known: %d lists", len(counter.lists))
	}
	// MaxHostIDs+1 hosts more (fewer than the known ones): their reports
	// only, in two queries.
	for i := n; i < 2*n-2; i++ {
		add(i)
	}
	hosts = brief()
	counter.lists = nil
	cache.load(ctx, counter, hosts)
	check(hosts)
	if len(counter.lists) != 2 || len(counter.lists[0].IDs) != store.MaxHostIDs || len(counter.lists[1].IDs) != 1 {
		var sizes []int
		for _, f := range counter.lists {
			sizes = append(sizes, len(f.IDs))
		}
		t.Errorf("%d new hosts: %d lists of %v ids, want 2 of %d and 1", n-2, len(counter.lists), sizes, store.MaxHostIDs)
	}
}
