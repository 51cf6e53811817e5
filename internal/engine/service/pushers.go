package service

import (
	"bytes"
	"context"
	"sync"
)

// The statistics ten thousand agents push (5,000 a second at a 2 s
// interval) are copied out of their streams and recorded by a few
// goroutines, not by each host's watcher. While the collector marks, a
// goroutine that allocates must first help it, at least 64 KiB of marking
// per goroutine and cycle (the runtime's minimum assist): thousands of
// watchers each allocating for one push did several times the collector's
// own marking in assists (gctrace: 400–600 ms of assists per cycle against
// ~300 ms of background marking), and the API's calls waited behind them.
// Two recorders allocate the same bytes with their credit carried from push
// to push; the watchers, which only read their streams, allocate nothing.

// pushRecorders is how many goroutines record the pushed statistics.
const pushRecorders = 2

// pushJob is a host's pushed statistics to copy and record; reply has the
// outcome.
type pushJob struct {
	p     *poller
	stats []byte
	reply chan<- pushOutcome
}

// pushers are the push recorders.
type pushers struct {
	jobs chan pushJob
}

func newPushers() *pushers { return &pushers{jobs: make(chan pushJob)} }

// run records the pushes handed over until ctx ends.
func (q *pushers) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range pushRecorders {
		wg.Go(func() {
			for {
				select {
				case j := <-q.jobs:
					// Answered even when ctx ended meanwhile: the caller
					// waits (reply holds one outcome).
					j.reply <- j.p.recordPush(bytes.Clone(j.stats))
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
}

// record hands p's pushed statistics (stats, not kept) to a recorder;
// false when ctx ended first. On true, the outcome comes on reply, which
// must have room for it.
func (q *pushers) record(ctx context.Context, p *poller, stats []byte, reply chan<- pushOutcome) bool {
	select {
	case q.jobs <- pushJob{p: p, stats: stats, reply: reply}:
		return true
	case <-ctx.Done():
		return false
	}
}
