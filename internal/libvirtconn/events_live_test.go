package libvirtconn_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/libvirtconn"
	"polyvirt/test/ownlibvirtd"
)

// TestEventStreamsNeverCrashTheDaemon opens and closes connections with a
// lifecycle event stream many times, in every order a client does it
// (reader gone first, connection closed first, both at once), while domains
// are defined and removed so that events flow, against a libvirtd of the
// test's own. libvirtd 9.0 crashed (a double free after "could not find
// event callback N for deletion" and "unexpected domain event deregister
// failure") when a client deregistered a callback while its connection
// closed, which go-libvirt's event streams did whenever their context ended
// just before the connection was closed. The daemon must survive, log none
// of those lines, and still deliver events.
func TestEventStreamsNeverCrashTheDaemon(t *testing.T) {
	d := ownlibvirtd.Start(t, ownlibvirtd.Options{})

	// Domains come and go while the streams open and close.
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Add(1)
	go func() {
		defer churn.Done()
		c, err := libvirtconn.DialDomains(d.URI, 5*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			dom, err := c.DefineDomain(ctx, tinyDomain(fmt.Sprintf("pv-evtest-%d", i)))
			if err == nil {
				err = c.UndefineDomain(ctx, dom, libvirtconn.UndefineAll)
			}
			cancel()
			if err != nil {
				t.Errorf("define/undefine: %v", err)
				return
			}
		}
	}()

	const workers, rounds = 4, 400
	var wg sync.WaitGroup
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
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				events, err := c.Events(ctx)
				if err != nil {
					t.Errorf("events: %v", err)
					c.Close()
					cancel()
					return
				}
				if _, err := c.Events(ctx); err == nil {
					t.Error("a second event stream on one connection was accepted")
				}

				switch (w + i) % 3 {
				case 0: // the reader goes, then the connection
					cancel()
					c.Close()
				case 1: // the connection goes under its reader
					c.Close()
					cancel()
				case 2: // both at once
					go cancel()
					c.Close()
				}
				for range events {
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	churn.Wait()

	requireDaemonUnhurt(t, d, "could not find event callback", "event deregister failure", "not registered")

	// After all that, a stream still sees what happens.
	c, err := libvirtconn.DialAgent(d.URI, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dom, err := c.DefineDomain(ctx, tinyDomain("pv-evtest-last"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.UndefineDomain(context.Background(), dom, libvirtconn.UndefineAll)
	for ev := range events {
		if ev.Domain.UUID == dom.UUID && ev.Event == libvirtconn.EventDefined {
			return
		}
	}
	t.Errorf("no defined event for %s: %v", dom.Name, ctx.Err())
}

// tinyDomain is a defined-only x86_64 domain (never started).
func tinyDomain(name string) string {
	dom := libvirtxml.Domain{
		Type:   "qemu",
		Name:   name,
		Memory: &libvirtxml.DomainMemory{Value: 64, Unit: "MiB"},
		OS:     &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Type: "hvm"}},
	}
	x, err := dom.Marshal()
	if err != nil {
		panic(err)
	}
	return x
}

// requireDaemonUnhurt fails the test when the daemon crashed, and names
// each line of its log that holds one of the symptoms given (the signs of
// its callback-list races, before any crash).
func requireDaemonUnhurt(t *testing.T, d *ownlibvirtd.Daemon, symptoms ...string) {
	t.Helper()
	if d.Crashed() {
		t.Fatalf("libvirtd crashed (%v)", d.ExitError())
	}
	for _, line := range strings.Split(d.Log(), "\n") {
		for _, bad := range symptoms {
			if strings.Contains(line, bad) {
				t.Errorf("libvirtd logged: %s", line)
			}
		}
	}
}
