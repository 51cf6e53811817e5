package scheduler

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
)

// TestStorageFilter: a VM whose volumes are in a pool runs only on the
// hosts that have the pool; a host that lacks it says why.
func TestStorageFilter(t *testing.T) {
	cluster := Cluster{ID: "c1", Name: "power", CPUType: cpuType(t, "IBM POWER8")}
	for _, tc := range []struct {
		name  string
		pools map[string]string
		vm    []string
		fits  bool
		msg   string
	}{
		{"no pools", nil, nil, true, ""},
		{"has the pool", map[string]string{"nfs1": ""}, []string{"nfs1"}, true, ""},
		{"pool missing", map[string]string{"nfs1": "POOL_MARKER_MISSING: /srv/nfs1 has no pool marker"}, []string{"nfs1"}, false,
			"filter Storage because it does not have the VM's storage pool nfs1 (POOL_MARKER_MISSING: /srv/nfs1 has no pool marker)"},
		{"not checked", map[string]string{"other": ""}, []string{"nfs1"}, false, "not checked on this host yet"},
		{"one of two", map[string]string{"nfs1": "", "local": "POOL_DIRECTORY_MISSING: gone"}, []string{"nfs1", "local"}, false, "storage pool local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := power8Host(t, "h")
			h.Pools = tc.pools
			vm := power8VM()
			vm.Pools = tc.vm
			_, err := Schedule(Request{VM: vm, Cluster: cluster}, []Host{h}, DefaultPolicy())
			if tc.fits {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var nh *NoHostError
			if !errors.As(err, &nh) || len(nh.Verdicts) != 1 {
				t.Fatalf("error %v; want a verdict", err)
			}
			r := nh.Verdicts[0].Reasons
			if diff := cmp.Diff([]string{FilterStorage}, []string{r[0].Filter}); diff != "" || r[0].Code != api.CodePoolNotOnHost || !strings.Contains(r[0].Message, tc.msg) {
				t.Errorf("reasons %+v; want Storage / %s / %q", r, api.CodePoolNotOnHost, tc.msg)
			}
		})
	}
	// Of two hosts, the one with the pool is chosen even when the other is emptier.
	a, b := power8Host(t, "a"), power8Host(t, "b")
	a.Pools, b.Pools = map[string]string{"nfs1": "POOL_MARKER_MISSING: no"}, map[string]string{"nfs1": ""}
	b.CommittedMemoryMiB = 30000
	vm := power8VM()
	vm.Pools = []string{"nfs1"}
	d, err := Schedule(Request{VM: vm, Cluster: cluster}, []Host{a, b}, DefaultPolicy())
	if err != nil || d.HostName != "b" {
		t.Errorf("decision %+v %v; want b", d, err)
	}
}
