package service

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestPushersCopyAndRecord: a push handed to the recorders is recorded as
// it was when handed over (the stream's buffer is reused at once after),
// its outcome comes back to the watcher, and pushes of many hosts at once
// are all recorded.
func TestPushersCopyAndRecord(t *testing.T) {
	m, ps := monitorOf("h1", "h2", "h3", "h4")
	m.pushers = newPushers()
	m.cfg.StatsInterval = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.pushers.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	buf := []byte(`{"host":{"cpus":4},"libvirt":{"connected":true}}`)
	reply := make(chan pushOutcome, 1)
	m.pushed(ctx, "h1", buf, reply)
	copy(buf, `{"XXXX"`) // the stream reads its next event into it
	if got := ps[0].latest.Load(); got == nil || string(got.Stats) != `{"host":{"cpus":4},"libvirt":{"connected":true}}` {
		t.Fatalf("h1's latest statistics: %+v", got)
	}
	if !ps[0].pushedFreshLocked() {
		t.Error("h1 not marked as pushing")
	}
	// An agent that cannot reach libvirt: the outcome says why (the
	// watcher then sets the host's status; here the poller has no host).
	o := ps[1].recordPush([]byte(`{"libvirt":{"connected":false,"error":"no socket"}}`))
	if o.down == "" || o.admit {
		t.Errorf("a push without libvirt: %+v", o)
	}
	// Many watchers at once.
	var wg sync.WaitGroup
	for i, id := range []string{"h2", "h3", "h4"} {
		wg.Go(func() {
			r := make(chan pushOutcome, 1)
			b := make([]byte, 0, 64)
			for n := range 200 {
				b = append(b[:0], `{"n":`...)
				b = append(b, byte('0'+i), byte('0'+n%10), '}')
				m.pushed(ctx, id, b, r)
			}
		})
	}
	wg.Wait()
	for i, id := range []string{"h2", "h3", "h4"} {
		want := `{"n":` + string([]byte{byte('0' + i), '9'}) + `}`
		if got := ps[i+1].latest.Load(); got == nil || string(got.Stats) != want {
			t.Errorf("%s's latest: %+v, want %s", id, got, want)
		}
	}
	// Once the recorders stopped, a push is dropped at once.
	cancel()
	<-done
	ended := make(chan struct{})
	go func() { m.pushed(ctx, "h1", buf, reply); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("a push after the monitor stopped waits")
	}
}
