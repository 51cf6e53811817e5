package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/store"
)

// TestCountHostsAndBriefLists: CountHosts counts by cluster and status,
// a brief list leaves the flags, machines and capabilities out, and a
// list by address finds a host's address whatever its case, on both
// backends.
func TestCountHostsAndBriefLists(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(testing.TB) store.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		t.Run(b.name, func(t *testing.T) {
			if b.name == "postgres" {
				postgresDSN(t)
			}
			ctx := context.Background()
			s := b.open(t)
			var cs []store.Cluster
			for _, n := range []string{"a", "b", "empty"} {
				c := store.Cluster{Name: n}
				if err := s.CreateCluster(ctx, &c); err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			for i, h := range []struct {
				cluster int
				status  store.HostStatus
			}{{0, store.HostUp}, {0, store.HostUp}, {0, store.HostNonOperational}, {1, store.HostInstalling}} {
				host := store.Host{Name: "h" + string(rune('0'+i)), Address: fmt.Sprintf("host%d.example:1", i), ClusterID: cs[h.cluster].ID,
					Status: h.status, CPUFlags: []string{"powernv", "model_POWER8"}, EmulatedMachines: []string{"pseries"},
					Capabilities: []byte(`{"arch":"ppc64le"}`)}
				if err := s.CreateHost(ctx, &host); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.CountHosts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]map[store.HostStatus]int{
				cs[0].ID: {store.HostUp: 2, store.HostNonOperational: 1},
				cs[1].ID: {store.HostInstalling: 1},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CountHosts (-want +got):\n%s", diff)
			}
			brief, err := s.ListHosts(ctx, store.HostFilter{Brief: true, WithCapabilities: true})
			if err != nil {
				t.Fatal(err)
			}
			full, err := s.ListHosts(ctx, store.HostFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(brief) != 4 || len(full) != 4 {
				t.Fatalf("%d brief and %d full hosts, want 4", len(brief), len(full))
			}
			for i := range brief {
				if len(brief[i].CPUFlags) != 0 || len(brief[i].EmulatedMachines) != 0 || brief[i].Capabilities != nil {
					t.Errorf("brief host %s: flags %v machines %v caps %s", brief[i].Name, brief[i].CPUFlags, brief[i].EmulatedMachines, brief[i].Capabilities)
				}
				if brief[i].Version != full[i].Version || brief[i].Status != full[i].Status || len(full[i].CPUFlags) != 2 {
					t.Errorf("brief %+v vs full %+v", brief[i], full[i])
				}
			}
			for _, c := range []struct{ addr, want string }{
				{"host1.example:1", "h1"}, {"HOST2.Example:1", "h2"}, {"host9.example:1", ""}, {"host1.example", ""},
			} {
				hs, err := s.ListHosts(ctx, store.HostFilter{Brief: true, Address: c.addr})
				if err != nil {
					t.Fatal(err)
				}
				var got string
				for _, h := range hs {
					got += h.Name
				}
				if got != c.want {
					t.Errorf("hosts of address %q: %q, want %q", c.addr, got, c.want)
				}
			}
		})
	}
}
