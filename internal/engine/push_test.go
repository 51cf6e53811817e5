package engine

import (
	"testing"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// TestMonitorPushedStats: an agent that pushes its statistics on its
// event stream is not polled for them (one connection and one stream
// carry the monitoring), nor asked whether its capabilities changed while
// its pushes name its report's ETag; one whose pushes do not (an older
// agent) is asked every CapsInterval; one that does not push is polled
// every interval; every host's statistics stay fresh; a pushing agent
// that stops answering is NonResponsive as a polled one is, and Up again
// when it is back.
func TestMonitorPushedStats(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power", CPUType: "IBM POWER8"}); err != nil {
		t.Fatal(err)
	}
	pusher := simHost(t, te, sim, "pusher", "s822l-power8e", "power")
	poller := simHost(t, te, sim, "polled", "ac922-power9", "power")
	poller.NoPush(true)
	older := simHost(t, te, sim, "older", "s822l-power8e", "power")
	older.NoPushETag(true)
	for _, h := range []string{"pusher", "polled", "older"} {
		waitHost(t, te.admin, h, 10*time.Second, status("Up"))
	}
	// Let the streams settle (the first rounds poll: nothing pushed yet).
	deadline := time.Now().Add(10 * time.Second)
	for pusher.Pushes() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pusher.Pushes() < 3 {
		t.Fatalf("the pushing host pushed %d statistics", pusher.Pushes())
	}
	for older.Pushes() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	r0, p0, q0, o0 := pusher.Requests(), pusher.Pushes(), poller.Requests(), older.Requests()
	window := 20 * testMonitor.StatsInterval
	time.Sleep(window)
	r1, p1, q1, o1 := pusher.Requests(), pusher.Pushes(), poller.Requests(), older.Requests()
	// The pusher: its pushes, and no request (they name its report's
	// ETag); the older pusher: the capabilities asked once a second; the
	// polled host: a statistics request every interval.
	if pushes := p1 - p0; pushes < 10 {
		t.Errorf("the pushing host pushed %d statistics in %s", pushes, window)
	}
	if reqs := r1 - r0; reqs != 0 {
		t.Errorf("the pushing host was asked %d requests in %s (want none: its pushes name its report's ETag)", reqs, window)
	}
	if reqs, min, max := o1-o0, int64(window/testMonitor.CapsInterval)-1, int64(window/testMonitor.CapsInterval)+3; reqs < min || reqs > max {
		t.Errorf("the host pushing without its report's ETag was asked %d requests in %s (want %d to %d: capabilities only)", reqs, window, min, max)
	}
	if polls := q1 - q0; polls < 10 {
		t.Errorf("the host that does not push was asked %d requests in %s", polls, window)
	}
	for _, name := range []string{"pusher", "polled", "older"} {
		h, err := te.admin.Host(ctx, name, false)
		if err != nil || time.Since(h.LastSeen) > 2*time.Second || len(h.Stats) == 0 {
			t.Errorf("host %s: last seen %v ago, statistics %s (%v)", name, time.Since(h.LastSeen), h.Stats, err)
		}
	}
	// Connections: the pushing host keeps its stream's alone (HTTP/1.1),
	// its HTTP/2 one closed once idle for idleAgentConn; the polled host
	// keeps both, its polls sharing the one HTTP/2 connection. Seconds, not
	// the minute and a half of net/http's default.
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if h1, h2 := pusher.OpenConns(); h1 == 1 && h2 == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h1, h2 := pusher.OpenConns(); h1 != 1 || h2 != 0 {
		t.Errorf("connections open to the pushing host: %d HTTP/1.1, %d HTTP/2 (want its stream's alone)", h1, h2)
	}
	if h1, h2 := poller.OpenConns(); h1 != 1 || h2 != 1 {
		t.Errorf("connections open to the polled host: %d HTTP/1.1, %d HTTP/2 (want its stream's and one for its polls)", h1, h2)
	}
	u, err := te.admin.CreateUser(ctx, "prom", string(store.RoleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	if _, mfs := te.scrape(t, u.Token); value(mfs, "polyvirt_agent_stats_pushed_total", nil) < 10 {
		t.Errorf("polyvirt_agent_stats_pushed_total = %v", value(mfs, "polyvirt_agent_stats_pushed_total", nil))
	}

	// The pushing agent stops: its stream ends, it is polled, refused,
	// NonResponsive; back, it pushes again.
	pusher.Stop()
	waitHost(t, te.admin, "pusher", 10*time.Second, status("NonResponsive"))
	if err := pusher.Start(); err != nil {
		t.Fatal(err)
	}
	waitHost(t, te.admin, "pusher", 10*time.Second, status("Up"))
	p2 := pusher.Pushes()
	deadline = time.Now().Add(10 * time.Second)
	for pusher.Pushes() < p2+3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pusher.Pushes() < p2+3 {
		t.Errorf("the host back pushes no statistics (%d)", pusher.Pushes()-p2)
	}
}
