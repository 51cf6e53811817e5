package service

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// pollQueue runs the pollers' rounds when they are due: one goroutine
// with a heap of due times, and a goroutine per round only while the round
// runs. A host between two rounds costs a heap entry, not a goroutine and
// its stack (ten thousand hosts would otherwise be ten thousand sleeping
// goroutines whose stacks grew in their last round). A poller is in the
// heap, or running (or waiting for its lane), or stopped; its rounds never
// overlap.
//
// The rounds that ask their agent something run in two lanes, each with
// at most limit rounds at once, the others waiting their turn in order:
// the hosts whose last round succeeded, and those whose last round failed
// (an agent that does not answer holds its round for the poll timeout).
// Ten thousand hosts enrolling at once (or an engine taking the lead)
// would otherwise be ten thousand concurrent TLS handshakes, capabilities
// reports and admissions, their memory pushing the engine to its limit
// and its collector taking the cores; and hosts that stopped answering do
// not delay the others' rounds.
type pollQueue struct {
	interval time.Duration
	limit    int
	// doRound runs a round of a poller (poller.round; tests replace it).
	doRound func(ctx context.Context, p *poller)

	mu   sync.Mutex
	due  pollHeap
	wake chan struct{}
	// lanes are the rounds running and waiting, by laneOf.
	lanes [2]roundLane
	// rounds counts the rounds in flight, for wait.
	rounds sync.WaitGroup
	// idleRounds counts the rounds done by the queue itself, without a
	// goroutine (poller.idleRound).
	idleRounds atomic.Int64
}

// roundLane holds the rounds of one lane: running, and waiting in order.
type roundLane struct {
	running int
	waiting []*poller
}

// Lanes: the hosts whose last round succeeded, those whose last failed.
const (
	laneAnswering = iota
	laneFailing
)

// defaultRoundLimit is a lane's rounds at once: at ten thousand hosts
// enrolling, a few hundred at a time are enrolled within seconds each.
const defaultRoundLimit = 256

func newPollQueue(interval time.Duration) *pollQueue {
	return &pollQueue{interval: interval, limit: defaultRoundLimit, wake: make(chan struct{}, 1),
		doRound: func(ctx context.Context, p *poller) { p.round(ctx) }}
}

// pollSlot is a poller's place in the queue; the queue's mutex guards it.
type pollSlot struct {
	at    time.Time
	index int // in the heap; -1 when not in it
	// running is true while a round runs or waits for its lane, kicked
	// when a round was asked for meanwhile (it runs again at once),
	// stopped when the host went.
	running, kicked, stopped bool
	// lane is the lane of the round running or waiting.
	lane int
}

type pollHeap []*poller

func (h pollHeap) Len() int           { return len(h) }
func (h pollHeap) Less(i, j int) bool { return h[i].slot.at.Before(h[j].slot.at) }
func (h pollHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].slot.index, h[j].slot.index = i, j
}
func (h *pollHeap) Push(x any) {
	p := x.(*poller)
	p.slot.index = len(*h)
	*h = append(*h, p)
}
func (h *pollHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.slot.index = -1
	return p
}

func (q *pollQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// add queues a new poller's first round at.
func (q *pollQueue) add(p *poller, at time.Time) {
	q.mu.Lock()
	p.slot = pollSlot{at: at, index: -1}
	heap.Push(&q.due, p)
	q.mu.Unlock()
	q.signal()
}

// kick asks for a round of p now (or right after the one running).
func (q *pollQueue) kick(p *poller) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case p.slot.stopped:
	case p.slot.running:
		p.slot.kicked = true
	case p.slot.index >= 0:
		p.slot.at = time.Now()
		heap.Fix(&q.due, p.slot.index)
		q.signal()
	}
}

// remove stops p's rounds (a round running ends on its own: its context
// is cancelled by the caller).
func (q *pollQueue) remove(p *poller) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p.slot.stopped = true
	if p.slot.index >= 0 {
		heap.Remove(&q.due, p.slot.index)
	}
}

// run starts the rounds that are due until ctx ends; wait then waits for
// the rounds still running.
func (q *pollQueue) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var due []*poller
	for {
		q.mu.Lock()
		now := time.Now()
		next := time.Hour
		due = due[:0]
		for q.due.Len() > 0 {
			p := q.due[0]
			if d := p.slot.at.Sub(now); d > 0 {
				next = d
				break
			}
			heap.Pop(&q.due)
			p.slot.running = true
			due = append(due, p)
		}
		q.mu.Unlock()
		// A round that asks the agent nothing (its statistics were pushed,
		// no capabilities are due) is done here; the others get a
		// goroutine while they run. At ten thousand pushing hosts that is
		// five thousand goroutines a second fewer, which waited for the
		// cores in the same queue as the API's requests.
		for i, p := range due {
			if ctx.Err() == nil && p.ctx.Err() == nil && p.idleRound(p.ctx) {
				q.idleRounds.Add(1)
				q.requeue(ctx, p)
			} else {
				q.enter(ctx, p, laneOf(p))
			}
			due[i] = nil
		}
		t.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-t.C:
		}
	}
}

// laneOf is the lane of p's next round: laneFailing when its last round
// failed.
func laneOf(p *poller) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures > 0 {
		return laneFailing
	}
	return laneAnswering
}

// enter starts a round of p in lane, or has it wait there for a round of
// the lane to end.
func (q *pollQueue) enter(ctx context.Context, p *poller, lane int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p.slot.lane = lane
	l := &q.lanes[lane]
	if l.running >= q.limit {
		l.waiting = append(l.waiting, p)
		return
	}
	l.running++
	q.rounds.Add(1)
	go q.round(ctx, p)
}

// round runs one round of p and queues the next one interval later (at
// once when it was kicked meanwhile).
func (q *pollQueue) round(ctx context.Context, p *poller) {
	defer q.rounds.Done()
	if ctx.Err() == nil && p.ctx.Err() == nil {
		q.doRound(p.ctx, p)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	l := &q.lanes[p.slot.lane]
	l.running--
	q.requeueLocked(ctx, p)
	// The lane's next round waiting, if any (none once ctx ended: run is
	// over, and wait waits only for the rounds started).
	if ctx.Err() == nil && len(l.waiting) > 0 {
		next := l.waiting[0]
		l.waiting[0] = nil
		l.waiting = l.waiting[1:]
		l.running++
		q.rounds.Add(1)
		go q.round(ctx, next)
	}
}

// requeue queues p's next round one interval after the one that ended (at
// once when it was kicked meanwhile).
func (q *pollQueue) requeue(ctx context.Context, p *poller) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.requeueLocked(ctx, p)
}

// requeueLocked is requeue with the queue's mutex held.
func (q *pollQueue) requeueLocked(ctx context.Context, p *poller) {
	p.slot.running = false
	if p.slot.stopped || ctx.Err() != nil {
		return
	}
	p.slot.at = time.Now().Add(q.interval)
	if p.slot.kicked {
		p.slot.kicked = false
		p.slot.at = time.Now()
	}
	heap.Push(&q.due, p)
	q.signal()
}

// wait waits for the rounds in flight (after run returned).
func (q *pollQueue) wait() { q.rounds.Wait() }
