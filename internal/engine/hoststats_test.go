package engine

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
)

// TestHostStatsAtMostOneInterval: a host read alone has statistics at most
// one statistics interval old even when the monitoring's have not been
// written (here never: the flush is an hour away): the engine reads the
// agent's own.
func TestHostStatsAtMostOneInterval(t *testing.T) {
	mc := testMonitor
	mc.StatsFlush = time.Hour
	te := startEngine(t, mc)
	ctx := context.Background()
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power", CPUType: "IBM POWER8"}); err != nil {
		t.Fatal(err)
	}
	newFakeAgent(t, te, "p8", "power", "s822l-power8e")
	waitHost(t, te.admin, "p8", 10*time.Second, status("Up"))
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		h, err := te.admin.Host(ctx, "p8", false)
		if err != nil {
			t.Fatal(err)
		}
		var s agentapi.Stats
		if err := json.Unmarshal(h.Stats, &s); err != nil || s.Host.CPUs != 8 {
			t.Fatalf("statistics %q: %v", h.Stats, err)
		}
		if age := time.Since(h.StatsAt); age > mc.StatsInterval+time.Since(t0) {
			t.Errorf("statistics read %s ago; the interval is %s", age, mc.StatsInterval)
		}
		if age := time.Since(s.Host.Time); age > mc.StatsInterval+time.Since(t0) {
			t.Errorf("statistics taken %s ago; the interval is %s", age, mc.StatsInterval)
		}
		time.Sleep(2 * mc.StatsInterval)
	}
}
