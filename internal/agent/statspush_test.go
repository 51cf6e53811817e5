package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/pki"
)

// TestEventStreamPushesStats: GET /v1/events?stats=INTERVAL says so in its
// header and carries the statistics (GET /v1/stats's document) at once
// and every INTERVAL; without it, none; a bad interval is refused.
func TestEventStreamPushesStats(t *testing.T) {
	f := newFakeConn()
	a, vms := statsAgent(t, f, 1)
	ca := tlsFiles(t, a)
	a.stats.sample(context.Background(), a)
	addr := serve(t, a.Serve)
	c := tlsClient(t, ca, pki.Client)

	resp, err := c.Get("https://" + addr + "/v1/events?stats=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(agentapi.StatsHeader) != "200ms" {
		t.Fatalf("%d, %s %q", resp.StatusCode, agentapi.StatsHeader, resp.Header.Get(agentapi.StatsHeader))
	}
	// Server-sent events named stats whose data is the statistics.
	sc := bufio.NewScanner(resp.Body)
	var got []string
	name := ""
	start := time.Now()
	for len(got) < 3 && sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			name = n
			continue
		}
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if name != agentapi.EventStats {
			t.Fatalf("an event %q: %s", name, data)
		}
		got = append(got, data)
	}
	if len(got) < 3 {
		t.Fatalf("%d events: %v", len(got), sc.Err())
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("3 statistics in %s: not every 200ms", took)
	}
	capsResp, err := c.Get("https://" + addr + "/v1/capabilities")
	if err != nil {
		t.Fatal(err)
	}
	capsResp.Body.Close()
	etag := capsResp.Header.Get("ETag")
	if len(etag) < 3 {
		t.Fatalf("GET /v1/capabilities: ETag %q", etag)
	}
	for _, data := range got {
		var s agentapi.Stats
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if s.Host.CPUs != 2 || len(s.VMs) != 2 || s.Libvirt == nil || !s.Libvirt.Connected {
			t.Errorf("statistics %+v", s)
		}
		// The report was collected for the VMs' creation: current.
		if `"`+s.CapsETag+`"` != etag {
			t.Errorf("the statistics name the capabilities %q; GET /v1/capabilities answers ETag %s", s.CapsETag, etag)
		}
		found := false
		for _, v := range s.VMs {
			found = found || v.ID == vms[0].ID
		}
		if !found {
			t.Errorf("the running VM is not in the statistics: %+v", s.VMs)
		}
	}

	plain, err := c.Get("https://" + addr + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != 200 || plain.Header.Get(agentapi.StatsHeader) != "" {
		t.Errorf("without stats: %d %q", plain.StatusCode, plain.Header.Get(agentapi.StatsHeader))
	}
	for _, bad := range []string{"1ms", "1h", "fast"} {
		st, body, err := get(t, c, addr, "/v1/events?stats="+bad)
		if err != nil || st != 400 || !strings.Contains(body, "BAD_REQUEST") {
			t.Errorf("stats=%s: %d %s %v", bad, st, body, err)
		}
	}
}

// TestPushedCapsETagOnlyWhenCurrent: the statistics name the report's ETag
// only while what the report reads is what it was collected from; a change
// (here, another fingerprint) leaves it out until the report is collected
// again.
func TestPushedCapsETagOnlyWhenCurrent(t *testing.T) {
	f := newFakeConn()
	a, _ := statsAgent(t, f, 0)
	ctx := context.Background()
	_, etag, err := a.capabilitiesDocument(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.capsETagNow(); got == "" || `"`+got+`"` != etag {
		t.Fatalf("capsETagNow %q, the report's ETag %s", got, etag)
	}
	a.capsMu.Lock()
	a.capsSeen = "what the host was before"
	a.capsMu.Unlock()
	if got := a.capsETagNow(); got != "" {
		t.Errorf("a report collected from another state: capsETagNow %q, want none", got)
	}
	if _, _, err := a.capabilitiesDocument(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := a.capsETagNow(); got == "" {
		t.Errorf("collected again: capsETagNow names none")
	}
}
