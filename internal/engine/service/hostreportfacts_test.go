package service

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
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
// are read from those hosts' reports only (by id, MaxHostIDs to a query;
// one host's with GetHost), and nothing is read when all are known.
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
	// idCounts is the ids of each list asked since the last call.
	idCounts := func() []int {
		var sizes []int
		for _, f := range counter.lists {
			if f.IDs == nil || !f.WithCapabilities {
				t.Errorf("a list of %+v, want reports by id", f)
			}
			sizes = append(sizes, len(f.IDs))
		}
		counter.lists = nil
		return sizes
	}
	// The first list: nothing known, every report by id.
	hosts := brief()
	cache.load(ctx, counter, hosts)
	check(hosts)
	if got, want := idCounts(), []int{store.MaxHostIDs, 3}; !slices.Equal(got, want) {
		t.Errorf("first load: lists of %v ids, want %v", got, want)
	}
	// All known: no query.
	counter.lists = nil
	cache.load(ctx, counter, hosts)
	if len(counter.lists) != 0 {
		t.Errorf("all known: %d lists", len(counter.lists))
	}
	// One host more: its report alone (GetHost, no list); then two more.
	add(n)
	cache.load(ctx, counter, brief())
	check(brief())
	if got := idCounts(); len(got) != 0 {
		t.Errorf("one new host: lists of %v ids, want none", got)
	}
	add(n + 1)
	add(n + 2)
	hosts = brief()
	cache.load(ctx, counter, hosts)
	check(hosts)
	if got, want := idCounts(), []int{2}; !slices.Equal(got, want) {
		t.Errorf("two new hosts: lists of %v ids, want %v", got, want)
	}
}
