package libvirtconn

import (
	"sync"
	"time"
)

// inflight counts a connection's calls under way, so that Close can wait
// for them before the connection ends (see rpcConn), and refuses new ones
// once the close has begun. Its zero value is ready.
type inflight struct {
	mu      sync.Mutex
	n       int
	closing bool
	idle    chan struct{} // closed when n reaches 0 during a drain
}

// begin counts a call that starts; false when the connection is closing.
func (f *inflight) begin() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.n++
	return true
}

// end counts a call that ended (its reply arrived, or the connection broke).
func (f *inflight) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
}

// drain refuses new calls, waits up to within for the ones under way, and
// returns how many are still under way then.
func (f *inflight) drain(within time.Duration) int {
	f.mu.Lock()
	f.closing = true
	if f.n == 0 {
		f.mu.Unlock()
		return 0
	}
	idle := make(chan struct{})
	f.idle = idle
	f.mu.Unlock()
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}
