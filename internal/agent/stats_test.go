package agent

import (
	"context"
	"os"
	"testing"

	"polyvirt/internal/hoststats"
)

// TestStatsForgetDeletedVM: a deleted VM leaves the statistics at once,
// not at the next sample, and the host's sums follow.
func TestStatsForgetDeletedVM(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	a.stats = newStatsKeeper(hoststats.NewSampler(os.DirFS("/")))
	ctx := context.Background()
	keep := create(t, a, unitVM)
	gone := create(t, a, `{"name": "unit-gone", "arch": "ppc64le", "memory": {"sizeMiB": 512}}`)
	for _, id := range []string{keep.ID, gone.ID} {
		if _, err := a.Act(ctx, id, "start"); err != nil {
			t.Fatal(err)
		}
	}
	a.stats.sample(ctx, a)
	first, err := a.stats.current()
	if err != nil || len(first.VMs) != 2 || first.Host.VMsRunning != 2 {
		t.Fatalf("first sample: %+v %v", first, err)
	}
	if err := a.DeleteVM(ctx, gone.ID, true); err != nil {
		t.Fatal(err)
	}
	var goneMiB uint64
	for _, v := range first.VMs {
		if v.ID == gone.ID {
			goneMiB = v.MemoryMiB
		}
	}
	now, _ := a.stats.current()
	if len(now.VMs) != 1 || now.VMs[0].ID != keep.ID || now.Host.VMsRunning != 1 || now.Host.MemoryUsedMiB != first.Host.MemoryUsedMiB-goneMiB {
		t.Errorf("right after the delete: %+v (host %+v)", now.VMs, now.Host)
	}
	if len(first.VMs) != 2 || first.Host.VMsRunning != 2 {
		t.Errorf("the delete changed an earlier answer: %+v", first)
	}
}
