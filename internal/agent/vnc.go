package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/api"
)

// vncAddress is the loopback address of a running VM's VNC server, from
// its live domain XML (the port libvirt chose).
func (a *Agent) vncAddress(ctx context.Context, e *vmEntry) (string, error) {
	c, err := a.conn.get()
	if err != nil {
		return "", err
	}
	x, err := c.DomainXML(ctx, e.Domain, false)
	if err != nil {
		return "", err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return "", err
	}
	if dom.Devices != nil {
		for _, g := range dom.Devices.Graphics {
			if g.VNC == nil {
				continue
			}
			return vncListenAddress(e.Name, g.VNC)
		}
	}
	return "", api.NewError(http.StatusConflict, api.CodeVMHasNoDisplay, "VM %s has no VNC display", e.Name)
}

// vncListenAddress is where a VNC display listens, when that is this
// host's loopback and a port (the VM runs).
func vncListenAddress(vm string, g *libvirtxml.DomainGraphicVNC) (string, error) {
	if g.Port <= 0 {
		return "", api.NewError(http.StatusConflict, api.CodeVMNotRunning, "VM %s has no VNC port: it is not running", vm)
	}
	listen := g.Listen
	for _, l := range g.Listeners {
		if l.Address != nil && l.Address.Address != "" {
			listen = l.Address.Address
		}
	}
	ip := net.ParseIP(listen)
	if ip == nil || !ip.IsLoopback() {
		return "", api.NewError(http.StatusConflict, api.CodeVNCNotLocal,
			"VM %s's VNC server listens on %q, not on this host's loopback: define it with display.listen 127.0.0.1", vm, listen)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(g.Port)), nil
}

// serveVNC bridges a websocket (binary messages) to a running VM's VNC
// server on this host's loopback: the engine's graphical console.
// (the VM's VNC server does not listen on this host's loopback:
// VNC_NOT_ON_LOOPBACK; the engine refuses such displays).
func (a *Agent) serveVNC(w http.ResponseWriter, r *http.Request) {
	e, err := a.entry(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	cctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout.Duration)
	addr, err := a.vncAddress(cctx, e)
	cancel()
	if err != nil {
		writeError(w, err)
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	tcp, err := d.DialContext(r.Context(), "tcp", addr)
	if err != nil {
		writeError(w, api.NewError(http.StatusBadGateway, api.CodeVMHasNoDisplay, "VM %s's VNC server at %s does not answer: %v", e.Name, addr, err))
		return
	}
	defer tcp.Close()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	user := who(r)
	a.log.Info("graphical console attached", "vm", e.Name, "user", user)
	defer a.log.Info("graphical console detached", "vm", e.Name, "user", user)
	done := make(chan error, 2)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := tcp.Read(buf)
			if n > 0 {
				if werr := ws.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
					done <- werr
					return
				}
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	go func() {
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				done <- err
				return
			}
			if _, err := tcp.Write(msg); err != nil {
				done <- err
				return
			}
		}
	}()
	err = <-done
	// The close frame goes before ctx ends: cancelling a websocket's read
	// closes its connection at once (the client would see no status).
	if cs := websocket.CloseStatus(err); cs != -1 || errors.Is(err, context.Canceled) {
		ws.Close(websocket.StatusNormalClosure, "")
		return
	}
	ws.Close(websocket.StatusGoingAway, "the VNC server closed the connection")
}
