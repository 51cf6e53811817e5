package ownlibvirtd

import (
	"context"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/libvirtconn"
)

// TestPrivateDaemon starts a private libvirtd, restarts it and checks that
// it answers on its own socket with its own host UUID.
func TestPrivateDaemon(t *testing.T) {
	d := Start(t, Options{})
	caps := func() string {
		c, err := libvirtconn.Dial(d.URI, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		x, err := c.Capabilities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	first := caps()
	if !strings.Contains(first, "<uuid>") {
		t.Fatalf("capabilities without a host UUID: %.300s", first)
	}
	pid := d.Pid()
	d.Restart()
	if d.Pid() == pid || d.Pid() == 0 {
		t.Errorf("restart: pid %d then %d", pid, d.Pid())
	}
	if d.Crashed() {
		t.Error("a stopped daemon counts as crashed")
	}
	if again := caps(); again != first {
		t.Error("the restarted daemon reports other capabilities")
	}
}
