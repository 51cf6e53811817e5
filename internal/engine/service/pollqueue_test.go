package service

import (
	"context"
	"testing"
	"time"

	"polyvirt/internal/store"
)

// quietPoller is a poller whose host is Up and whose agent pushed its
// statistics just now, the capabilities asked a moment ago: a round of it
// asks the agent nothing.
func quietPoller(t *testing.T) *poller {
	t.Helper()
	m, ps := monitorOf("h1")
	m.cfg.StatsInterval, m.cfg.CapsInterval = 50*time.Millisecond, time.Hour
	m.e.stor = newStorageService(m.e, nil)
	// The cluster's pools as read a moment ago: none.
	m.e.stor.pools = map[string]*clusterPools{"c1": {at: time.Now()}}
	p := ps[0]
	p.ctx = context.Background()
	p.host = store.Host{ID: "h1", ClusterID: "c1", Status: store.HostUp}
	p.etag, p.capsAt, p.pushedAt = `"e1"`, time.Now(), time.Now()
	return p
}

// TestIdleRound: a round with nothing to ask (statistics pushed lately,
// libvirt reached, no capabilities due, no admission) is the queue's own;
// any of those otherwise makes it a round of its own.
func TestIdleRound(t *testing.T) {
	if p := quietPoller(t); !p.idleRound(context.Background()) {
		t.Fatal("a host that pushed just now, capabilities fresh: not an idle round")
	}
	for name, spoil := range map[string]func(p *poller){
		"nothing pushed":          func(p *poller) { p.pushedAt = time.Time{} },
		"pushed long ago":         func(p *poller) { p.pushedAt = time.Now().Add(-time.Second) },
		"libvirt down as pushed":  func(p *poller) { p.pushedDown = "libvirt: connection refused" },
		"capabilities never read": func(p *poller) { p.etag = "" },
		"capabilities due":        func(p *poller) { p.capsAt = time.Now().Add(-2 * time.Hour) },
		"capabilities asked for":  func(p *poller) { p.capsDue = true },
		"cluster changed":         func(p *poller) { p.clusterChanged = true },
		"to be admitted":          func(p *poller) { p.host.Status = store.HostNonResponsive },
	} {
		p := quietPoller(t)
		spoil(p)
		if p.idleRound(context.Background()) {
			t.Errorf("%s: an idle round", name)
		}
		if p.clusterChanged != (name == "cluster changed") || p.capsDue != (name == "capabilities asked for") {
			t.Errorf("%s: the round's flags changed (clusterChanged %v, capsDue %v)", name, p.clusterChanged, p.capsDue)
		}
	}
	// The pools' check is still made when due: recorded as checked (no
	// pools to ask about, so without a goroutine).
	p := quietPoller(t)
	p.idleRound(context.Background())
	if _, ok := p.m.e.stor.checked["h1"]; !ok {
		t.Error("the idle round did not check the host's pools")
	}
}

// TestQueueRunsIdleRoundsItself: the queue does a quiet host's rounds
// itself, each interval (queued again after each), with no goroutine per
// round. (A host that stops pushing gets rounds of its own again:
// TestMonitorPushedStats, in the engine's package.)
func TestQueueRunsIdleRoundsItself(t *testing.T) {
	p := quietPoller(t)
	q := newPollQueue(p.m.cfg.StatsInterval)
	p.m.queue = q
	// The agent keeps pushing.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pushing := make(chan struct{})
	go func() {
		defer close(pushing)
		for ctx.Err() == nil {
			p.mu.Lock()
			p.pushedAt = time.Now()
			p.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	q.add(p, time.Now())
	done := make(chan struct{})
	go func() { q.run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for q.idleRounds.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	<-pushing
	q.wait()
	if n := q.idleRounds.Load(); n < 5 {
		t.Fatalf("%d idle rounds in 5 s at a 50 ms interval", n)
	}
}
