package service

import (
	"context"
	"testing"

	"polyvirt/internal/store"
)

// TestPushedStatisticsAreCopied: the statistics a watcher hands over are
// its stream's buffer, read into again for the next event; the host's
// latest statistics are a copy.
func TestPushedStatisticsAreCopied(t *testing.T) {
	m, ps := monitorOf("h1")
	ps[0].host = store.Host{ID: "h1", Status: store.HostUp}
	buf := []byte(`{"host":{"cpus":4},"libvirt":{"connected":true}}`)
	m.pushed(context.Background(), "h1", buf)
	copy(buf, `{"XXXX"`)
	if got := ps[0].latest.Load(); got == nil || string(got.Stats) != `{"host":{"cpus":4},"libvirt":{"connected":true}}` {
		t.Fatalf("the host's latest statistics: %+v", got)
	}
}
