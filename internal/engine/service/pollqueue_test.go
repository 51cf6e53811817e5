package service

import (
	"context"
	"fmt"
	"sync"
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

// lanePoller is a poller of the queue tests whose rounds are the test's
// (pollQueue.doRound); failing says its last round failed.
func lanePoller(id string, failing bool) *poller {
	p := &poller{id: id, ctx: context.Background()}
	if failing {
		p.failures = 1
	}
	return p
}

// TestQueueBoundsRoundsPerLane: at most limit rounds run at once in a lane,
// the others wait their turn and all run; the rounds of hosts whose last
// round failed, stuck, do not hold back those of the hosts that answer.
func TestQueueBoundsRoundsPerLane(t *testing.T) {
	q := newPollQueue(time.Hour)
	q.limit = 3
	var mu sync.Mutex
	running := map[int]int{}
	most := map[int]int{}
	ran := map[string]int{}
	stuck := make(chan struct{})
	q.doRound = func(ctx context.Context, p *poller) {
		lane := laneOf(p)
		mu.Lock()
		running[lane]++
		most[lane] = max(most[lane], running[lane])
		ran[p.id]++
		mu.Unlock()
		if lane == laneFailing {
			<-stuck // an agent that does not answer
		} else {
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		running[lane]--
		mu.Unlock()
	}
	var answering []string
	for i := range 20 {
		p := lanePoller(fmt.Sprintf("up%d", i), false)
		answering = append(answering, p.id)
		q.add(p, time.Now())
	}
	for i := range 6 {
		q.add(lanePoller(fmt.Sprintf("down%d", i), true), time.Now())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.run(ctx); close(done) }()
	all := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return allRan(ran, answering)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !all() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if !allRan(ran, answering) {
		t.Errorf("answering hosts' rounds held back by stuck ones: %v", ran)
	}
	if most[laneAnswering] > 3 || most[laneFailing] > 3 {
		t.Errorf("rounds at once: %d answering, %d failing (limit 3)", most[laneAnswering], most[laneFailing])
	}
	if most[laneAnswering] < 2 {
		t.Errorf("answering rounds never ran side by side (at most %d)", most[laneAnswering])
	}
	downRan := 0
	for i := range 6 {
		downRan += ran[fmt.Sprintf("down%d", i)]
	}
	mu.Unlock()
	if downRan != 3 {
		t.Errorf("%d failing hosts' rounds started, want the lane's 3 (the others wait)", downRan)
	}
	q.mu.Lock()
	waiting := len(q.lanes[laneFailing].waiting)
	q.mu.Unlock()
	if waiting != 3 {
		t.Errorf("%d failing hosts wait, want 3", waiting)
	}
	// The stuck agents answer: the waiting rounds run.
	close(stuck)
	deadline = time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := 0
		for i := range 6 {
			n += min(ran[fmt.Sprintf("down%d", i)], 1)
		}
		mu.Unlock()
		if n == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 6 failing hosts had a round after the stuck ones ended", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	q.wait()
}

func allRan(ran map[string]int, ids []string) bool {
	for _, id := range ids {
		if ran[id] == 0 {
			return false
		}
	}
	return true
}
