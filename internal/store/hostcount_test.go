package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/store"
)

// TestCountHostsAndBriefLists: CountHosts counts by cluster and status,
// a brief list leaves the flags, machines and capabilities out, and a
// list by address finds a host's address whatever its case, on both
// backends.
func TestCountHostsAndBriefLists(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
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
		// By ids: those hosts only (an unknown id finds nothing; with a
		// cluster, those of it), none for an empty list, too many refused.
		for _, c := range []struct {
			ids     []string
			cluster string
			want    string
		}{{[]string{full[1].ID, full[3].ID}, "", "h1h3"}, {[]string{full[2].ID, "00000000-0000-0000-0000-000000000000"}, "", "h2"},
			{[]string{full[1].ID, full[3].ID}, cs[0].ID, "h1"}, {[]string{full[1].ID, full[3].ID}, cs[1].ID, "h3"}, {[]string{}, "", ""}} {
			hs, err := s.ListHosts(ctx, store.HostFilter{IDs: c.ids, ClusterID: c.cluster, WithCapabilities: true})
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, h := range hs {
				got += h.Name
				if !strings.Contains(string(h.Capabilities), "ppc64le") {
					t.Errorf("host %s by id: report %s", h.Name, h.Capabilities)
				}
			}
			if got != c.want {
				t.Errorf("hosts of ids %v: %q, want %q", c.ids, got, c.want)
			}
		}
		_, err = s.ListHosts(ctx, store.HostFilter{IDs: make([]string, store.MaxHostIDs+1)})
		var se *store.Error
		if !errors.As(err, &se) || !errors.Is(err, store.ErrInvalid) || se.Field != "ids" {
			t.Errorf("%d ids: %v, want an invalid ids error", store.MaxHostIDs+1, err)
		}
		for _, name := range []string{"h1", "H1", "h", "nope"} {
			hs, err := s.ListHosts(ctx, store.HostFilter{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case name == "h1" && (len(hs) != 1 || hs[0].Name != "h1" || len(hs[0].CPUFlags) != 2 || hs[0].Capabilities != nil):
				t.Errorf("host named h1: %+v, want h1 with its flags and without its report", hs)
			case name != "h1" && len(hs) != 0:
				t.Errorf("hosts named %q: %+v, want none (names are exact)", name, hs)
			}
		}
	})
}

// TestHostsRevision: the hosts' revision changes with every host added,
// changed (its join token too) or removed, and stays the same across
// statistics and reads, on both backends.
func TestHostsRevision(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		rev := func() store.HostsRevision {
			t.Helper()
			r, err := s.HostsRevision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		empty := rev()
		if empty != (store.HostsRevision{}) {
			t.Errorf("revision without hosts: %+v, want the zero revision", empty)
		}
		c := store.Cluster{Name: "c"}
		if err := s.CreateCluster(ctx, &c); err != nil {
			t.Fatal(err)
		}
		var hosts []store.Host
		seen := map[store.HostsRevision]string{empty: "no hosts"}
		// changed checks that the revision differs from every one seen.
		changed := func(what string) {
			t.Helper()
			r := rev()
			if was, ok := seen[r]; ok {
				t.Errorf("after %s the revision %+v is the one after %s", what, r, was)
			}
			seen[r] = what
		}
		for i := range 3 {
			h := store.Host{Name: fmt.Sprintf("h%d", i), Address: fmt.Sprintf("h%d.example:1", i), ClusterID: c.ID, Status: store.HostUp}
			if err := s.CreateHost(ctx, &h); err != nil {
				t.Fatal(err)
			}
			hosts = append(hosts, h)
			changed("adding " + h.Name)
		}
		if r := rev(); r.Count != 3 || r.VersionSum < 3 || r.LastChange.IsZero() {
			t.Errorf("revision of 3 new hosts: %+v", r)
		}
		before := rev()
		if _, err := s.UpdateHostStats(ctx, []store.HostStats{{HostID: hosts[0].ID, Stats: []byte(`{"cpu":1}`)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListHosts(ctx, store.HostFilter{}); err != nil {
			t.Fatal(err)
		}
		if r := rev(); r != before {
			t.Errorf("statistics changed the revision: %+v, was %+v", r, before)
		}
		h := hosts[1]
		h.Status = store.HostMaintenance
		if err := s.UpdateHost(ctx, &h); err != nil {
			t.Fatal(err)
		}
		changed("an update of h1")
		if err := s.SetHostJoinToken(ctx, hosts[2].ID, "token-hash", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		changed("a join token for h2")
		// One host removed and another added: the count is the same.
		if err := s.DeleteHost(ctx, hosts[0].ID); err != nil {
			t.Fatal(err)
		}
		changed("removing h0")
		n := store.Host{Name: "h9", Address: "h9.example:1", ClusterID: c.ID, Status: store.HostUp}
		if err := s.CreateHost(ctx, &n); err != nil {
			t.Fatal(err)
		}
		changed("adding h9 after removing h0")
	})
}

// TestHostsRevisionReadsAnIndex: SQLite answers the revision from its
// index, not from the wide host rows (capabilities and all).
func TestHostsRevisionReadsAnIndex(t *testing.T) {
	db := rawSQLite(t, migratedSQLite(t))
	rows, err := db.Query(`EXPLAIN QUERY PLAN SELECT COUNT(*), CAST(COALESCE(SUM(version), 0) AS BIGINT), MAX(updated_at) FROM hosts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "COVERING INDEX hosts_revision_idx") {
		t.Errorf("the revision's query plan is %q: want it to read only hosts_revision_idx", got)
	}
}
