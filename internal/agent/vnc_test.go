package agent

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/api"
)

func TestVNCListenAddress(t *testing.T) {
	addr := func(a string) []libvirtxml.DomainGraphicListener {
		return []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: a}}}
	}
	for _, tc := range []struct {
		name string
		g    libvirtxml.DomainGraphicVNC
		want string
		code string
	}{
		{"loopback", libvirtxml.DomainGraphicVNC{Port: 5901, Listen: "127.0.0.1", Listeners: addr("127.0.0.1")}, "127.0.0.1:5901", ""},
		{"listener only", libvirtxml.DomainGraphicVNC{Port: 5902, Listeners: addr("127.0.0.1")}, "127.0.0.1:5902", ""},
		{"IPv6 loopback", libvirtxml.DomainGraphicVNC{Port: 5903, Listen: "::1"}, "[::1]:5903", ""},
		{"not running", libvirtxml.DomainGraphicVNC{Port: -1, AutoPort: "yes", Listen: "127.0.0.1"}, "", api.CodeVMNotRunning},
		{"every address", libvirtxml.DomainGraphicVNC{Port: 5904, Listen: "0.0.0.0", Listeners: addr("0.0.0.0")}, "", api.CodeVNCNotLocal},
		{"a network address", libvirtxml.DomainGraphicVNC{Port: 5905, Listen: "192.0.2.7"}, "", api.CodeVNCNotLocal},
		{"no address", libvirtxml.DomainGraphicVNC{Port: 5906}, "", api.CodeVNCNotLocal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vncListenAddress("vm1", &tc.g)
			if got != tc.want || (tc.code == "" && err != nil) || (tc.code != "" && asAPIError(err).Code != tc.code) {
				t.Errorf("vncListenAddress = %q, %v; want %q, %s", got, err, tc.want, tc.code)
			}
		})
	}
}

// TestVNCWebsocket: the websocket passes bytes both ways between the
// engine's side and the VM's VNC server (here a TCP server speaking the
// first bytes of RFB) on the loopback.
func TestVNCWebsocket(t *testing.T) {
	f := newFakeConn()
	a := newTestAgent(t, f)
	id := create(t, a, unitVM).ID
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/vms/" + id + "/vnc"
	if _, resp, err := websocket.Dial(ctx, wsURL, nil); err == nil || resp == nil || resp.StatusCode != 409 {
		t.Errorf("VNC of a VM that does not run: %v", err)
	}

	// The VM's VNC server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("RFB 003.008\n"))
		b := make([]byte, 12)
		io.ReadFull(c, b)
		got <- string(b)
		c.Write(make([]byte, 200<<10)) // a large frame
	}()
	a.Act(ctx, id, "start")
	port := ln.Addr().(*net.TCPAddr).Port
	d, _ := f.dom(a.mustEntry(t, id).Domain)
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(d.xml); err != nil {
		t.Fatal(err)
	}
	dom.Devices.Graphics = []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{Port: port, Listen: "127.0.0.1"}}}
	x, _ := dom.Marshal()
	f.mu.Lock()
	d.xml = x
	f.mu.Unlock()

	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	if ws.Subprotocol() != "binary" {
		t.Errorf("subprotocol %q", ws.Subprotocol())
	}
	typ, msg, err := ws.Read(ctx)
	if err != nil || typ != websocket.MessageBinary || string(msg) != "RFB 003.008\n" {
		t.Fatalf("greeting %v %q %v", typ, msg, err)
	}
	ws.Write(ctx, websocket.MessageBinary, []byte("RFB 003.008\n"))
	if s := <-got; s != "RFB 003.008\n" {
		t.Errorf("the VNC server got %q", s)
	}
	n := 0
	for n < 200<<10 {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		n += len(msg)
	}
	// The VNC server closed: so does the websocket.
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("after the VNC server closed: %v", err)
	}
}

func (a *Agent) mustEntry(t *testing.T, id string) *vmEntry {
	t.Helper()
	e, err := a.entry(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
