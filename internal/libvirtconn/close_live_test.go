package libvirtconn_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"polyvirt/internal/libvirtconn"
	"polyvirt/test/ownlibvirtd"
)

// TestCloseWithCallsUnderWayNeverCrashesTheDaemon closes connections, each
// with its event stream, while calls of theirs are still under way — as an
// agent does when it stops in the middle of a statistics round — against a
// libvirtd of the test's own. libvirtd 9.0 ran its client-close path twice
// at once then (the main loop for the close, a worker whose reply found the
// client closing), both walking and freeing the callback list without a
// lock: "unexpected incomplete domain callback", "could not find event
// callback N for deletion", then a segfault, within a few hundred such
// closes. Close waits for the calls under way; the daemon must survive and
// log none of those lines.
func TestCloseWithCallsUnderWayNeverCrashesTheDaemon(t *testing.T) {
	d := ownlibvirtd.Start(t, ownlibvirtd.Options{})
	const workers, rounds, callers = 2, 300, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	ended := 0 // callers whose calls failed once their connection closed
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				c, err := libvirtconn.DialAgent(d.URI, 10*time.Second)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				if _, err := c.Events(context.Background()); err != nil {
					t.Errorf("events: %v", err)
					c.Close()
					return
				}
				var calls sync.WaitGroup
				for k := 0; k < callers; k++ {
					calls.Add(1)
					go func() {
						defer calls.Done()
						for {
							if _, err := c.Capabilities(context.Background()); err != nil {
								mu.Lock()
								ended++
								mu.Unlock()
								return
							}
						}
					}()
				}
				time.Sleep(time.Duration(1+(w+i)%6) * time.Millisecond)
				if err := c.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
				calls.Wait()
			}
		}(w)
	}
	wg.Wait()

	requireDaemonUnhurt(t, d, "incomplete domain callback", "could not find event callback", "event deregister failure")
	if ended != workers*rounds*callers {
		t.Errorf("%d callers ended, want all %d (each calls until its connection closes)", ended, workers*rounds*callers)
	}
	// It still answers.
	c, err := libvirtconn.Dial(d.URI, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Capabilities(context.Background()); err != nil {
		t.Errorf("after the closes: %v", err)
	}
}
