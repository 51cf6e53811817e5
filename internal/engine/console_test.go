package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestConsolesEndWithTheHostsCloseStatus: when the host's end of a
// console closes (its VM stopped), the client gets the host's close
// status and reason through the engine — every time, not an abrupt end of
// the connection (the bridges used to end their reads before sending the
// close frame, which the websocket library answers by closing the
// connection at once: a race the client lost now and then).
func TestConsolesEndWithTheHostsCloseStatus(t *testing.T) {
	l := newPowerLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v := l.startedOn(t, "ender", "p8a")
	want := "bye from " + l.agent(v.Host).name
	openVNC := func() (*websocket.Conn, error) { return l.te.openVNC(ctx, "ender") }
	openSerial := func() (*websocket.Conn, error) { return l.te.admin.Console(ctx, "ender", false) }
	for _, tc := range []struct {
		name string
		open func() (*websocket.Conn, error)
	}{{"serial console", openSerial}, {"graphical console", openVNC}} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 40; i++ {
				ws, err := tc.open()
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := ws.Read(ctx); err != nil {
					ws.CloseNow()
					t.Fatalf("round %d: the greeting: %v", i, err)
				}
				if err := ws.Write(ctx, websocket.MessageBinary, []byte("bye")); err != nil {
					ws.CloseNow()
					t.Fatal(err)
				}
				_, _, err = ws.Read(ctx)
				ws.CloseNow()
				var ce websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != want {
					t.Fatalf("round %d: the console ended with %v; want status %d and reason %q", i, err, websocket.StatusGoingAway, want)
				}
			}
		})
	}
}
