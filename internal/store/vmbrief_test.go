package store_test

import (
	"context"
	"testing"

	"polyvirt/internal/store"
)

// TestBriefVMList: a brief VM list has everything but the definitions, on
// both backends.
func TestBriefVMList(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		c := store.Cluster{Name: "c"}
		if err := s.CreateCluster(ctx, &c); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"b", "a"} {
			v := store.VM{Name: n, ClusterID: c.ID, Definition: []byte(`{"name":"` + n + `","memory":{"sizeMiB":256}}`)}
			if err := s.CreateVM(ctx, &v); err != nil {
				t.Fatal(err)
			}
		}
		full, err := s.ListVMs(ctx, store.VMFilter{ClusterID: c.ID})
		if err != nil {
			t.Fatal(err)
		}
		brief, err := s.ListVMs(ctx, store.VMFilter{ClusterID: c.ID, Brief: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(full) != 2 || len(brief) != 2 {
			t.Fatalf("%d full and %d brief VMs", len(full), len(brief))
		}
		for i := range brief {
			f, br := full[i], brief[i]
			if br.Definition != nil || len(f.Definition) == 0 {
				t.Errorf("VM %s: brief definition %s, full %s", br.Name, br.Definition, f.Definition)
			}
			f.Definition = nil
			if f.ID != br.ID || f.Name != br.Name || f.Version != br.Version || f.State != br.State || !f.StateChanged.Equal(br.StateChanged) {
				t.Errorf("brief %+v vs full %+v", br, f)
			}
		}
	})
}
