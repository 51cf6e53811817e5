package libvirtconn

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A close waits for the calls the daemon still works on — also one its
// caller gave up on — and no call starts after it.
func TestCloseWaitsForCallsUnderWay(t *testing.T) {
	c := &rpcConn{}
	block := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := call(ctx, c, "ConnectGetAllDomainStats", func() (int, error) { <-block; return 0, nil }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("the blocked call: %v, want a timeout", err)
	}
	drained := make(chan int, 1)
	go func() { drained <- c.calls.drain(10 * time.Second) }()
	select {
	case n := <-drained:
		t.Fatalf("drain returned (%d under way) while the call was still under way", n)
	case <-time.After(50 * time.Millisecond):
	}
	close(block)
	select {
	case n := <-drained:
		if n != 0 {
			t.Errorf("drain: %d calls under way after the last ended", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not return when the call ended")
	}
	ran := false
	_, err := call(context.Background(), c, "DomainCreate", func() (int, error) { ran = true; return 0, nil })
	if !errors.Is(err, ErrUnavailable) || ran {
		t.Errorf("a call after the close began: ran=%v, err=%v; want it refused with ErrUnavailable", ran, err)
	}
}

// A call that never ends holds the close for the time given, not longer,
// and is counted.
func TestDrainGivesUp(t *testing.T) {
	var f inflight
	if !f.begin() || !f.begin() {
		t.Fatal("begin refused before any close")
	}
	f.end()
	start := time.Now()
	if n := f.drain(30 * time.Millisecond); n != 1 {
		t.Errorf("drain: %d under way, want 1", n)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Errorf("drain returned after %s, before its 30ms", waited)
	}
	f.end() // the stuck call ends after all: nothing is waiting for it
	var idle inflight
	if n := idle.drain(time.Hour); n != 0 {
		t.Errorf("drain of an idle connection: %d", n)
	}
}
