package agent

import (
	"context"
	"testing"
	"time"

	"polyvirt/internal/libvirtconn"
)

// closingConn is a connection whose Close takes until release is closed
// (a close waiting for the calls under way on it).
type closingConn struct {
	*fakeConn
	release chan struct{}
	closed  chan struct{}
}

func (c *closingConn) Close() error {
	<-c.release
	close(c.closed)
	return nil
}

// closeAll returns only once every VM connection is closed — the agent
// stops right after it — while drop closes in the background.
func TestVMConnsCloseAllWaitsForTheCloses(t *testing.T) {
	release := make(chan struct{})
	var made []*closingConn
	v := &vmConns{uri: "test:///", conns: map[string]*vmConn{}, dial: func(string, time.Duration) (libvirtconn.AgentConn, error) {
		c := &closingConn{fakeConn: newFakeConn(), release: release, closed: make(chan struct{})}
		made = append(made, c)
		return c, nil
	}}
	ctx := context.Background()
	for _, id := range []string{"vm-1", "vm-2", "vm-3"} {
		if _, err := v.get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	dropped := make(chan struct{})
	go func() { v.drop("vm-3"); close(dropped) }()
	select {
	case <-dropped:
	case <-time.After(5 * time.Second):
		t.Fatal("drop waited for the close")
	}
	done := make(chan struct{})
	go func() { v.closeAll(); close(done) }()
	select {
	case <-done:
		t.Fatal("closeAll returned before the connections were closed")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("closeAll did not return once the connections closed")
	}
	for i, c := range made[:2] {
		select {
		case <-c.closed:
		default:
			t.Errorf("connection %d not closed when closeAll returned", i)
		}
	}
	if len(v.conns) != 0 {
		t.Errorf("%d connections left in the set", len(v.conns))
	}
}
