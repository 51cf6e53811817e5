package engine

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"

	"github.com/coder/websocket"

	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
)

// vmConsole answers GET /api/v1/vms/{vm}/console: a websocket bridged to
// the agent's websocket of the VM's serial console (what it printed since
// it started, then what it prints; ?from=end skips the past). What an
// admin or a vm-manager sends is typed into the console; a readonly user
// only watches.
func (e *Engine) vmConsole(w http.ResponseWriter, r *http.Request) error {
	c, err := e.svc.VMs.Console(r.Context(), r.PathValue("vm"))
	if err != nil {
		return err
	}
	// The bridge lives as long as both ends, or until the engine stops.
	ctx, cancel := context.WithCancel(e.svc.Streams())
	defer cancel()
	defer context.AfterFunc(r.Context(), cancel)()
	agentWS, err := e.agents.ops.console(ctx, c.Host, c.VM.ID, consoleQuery(r), c.User)
	if err != nil {
		return err
	}
	defer agentWS.CloseNow()
	// A console outlives the server's read and write timeouts.
	httpx.NoDeadlines(w)
	clientWS, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil
	}
	defer clientWS.CloseNow()
	clientWS.SetReadLimit(64 << 10)
	e.log.Info("console attached", "vm", c.VM.Name, "host", c.Host.Name, "user", c.User)
	e.bridge(ctx, cancel, c, clientWS, agentWS)
	e.log.Info("console detached", "vm", c.VM.Name, "user", c.User)
	return nil
}

// consoleQuery is the agent console's query: from=end passed on.
func consoleQuery(r *http.Request) string {
	if r.URL.Query().Get("from") != "end" {
		return ""
	}
	return url.Values{"from": {"end"}}.Encode()
}

// bridge passes the console's messages both ways (the client's only when
// it may type) until one end closes, then closes both with the status
// the first end gave. When the VM migrates, the bridge follows it: the
// console of its new host (its output since it arrived there) takes the
// place of the old one, and the client stays attached.
func (e *Engine) bridge(ctx context.Context, cancel context.CancelFunc, c service.Console, clientWS, agentWS *websocket.Conn) {
	var mu sync.Mutex
	cur := agentWS
	current := func() *websocket.Conn {
		mu.Lock()
		defer mu.Unlock()
		return cur
	}
	clientDone := make(chan error, 1)
	go func() {
		for {
			typ, b, err := clientWS.Read(ctx)
			if err != nil {
				clientDone <- err
				return
			}
			if !c.Writable {
				// Watch only: what the client sends is dropped.
				continue
			}
			// A write lost while the console moves is typing lost, not the
			// end of the console.
			_ = current().Write(ctx, typ, b)
		}
	}()
	var err error
	for {
		moved := e.svc.VMs.Moved(c.VM.ID)
		// A move signalled before this round's signal was taken.
		e.follow(ctx, &c, &mu, &cur, "")
		agentDone := make(chan error, 1)
		a := current()
		go func() { agentDone <- pipe(ctx, a, clientWS) }()
		switched := false
		select {
		case err = <-clientDone:
		case err = <-agentDone:
			// The host's console ended: the VM may have moved.
			switched = e.follow(ctx, &c, &mu, &cur, "")
		case <-moved:
			switched = e.follow(ctx, &c, &mu, &cur, "")
			if switched {
				a.CloseNow()
				<-agentDone
			}
		}
		if !switched {
			break
		}
	}
	// The close frames go before ctx ends: cancelling a websocket's read
	// closes its connection at once, and the client would see no status.
	status, reason := passedClose(err, "console closed")
	_ = clientWS.Close(status, reason)
	_ = current().Close(websocket.StatusNormalClosure, "")
	cancel()
}

// follow attaches a bridge to the console of the VM's new host after it
// moved; false when it did not move (or its new console cannot be had).
func (e *Engine) follow(ctx context.Context, c *service.Console, mu *sync.Mutex, cur **websocket.Conn, query string) bool {
	nc, err := e.svc.VMs.Console(service.WithCaller(ctx, nil), c.VM.ID)
	if err != nil || nc.Host.ID == c.Host.ID {
		return false
	}
	ws, err := e.agents.ops.console(ctx, nc.Host, c.VM.ID, query, c.User)
	if err != nil {
		e.log.Warn("console: the VM moved but its new host's console is not there", "vm", c.VM.Name, "host", nc.Host.Name, "err", err)
		return false
	}
	e.log.Info("console follows its VM", "vm", c.VM.Name, "from", c.Host.Name, "to", nc.Host.Name, "user", c.User)
	mu.Lock()
	old := *cur
	*cur = ws
	mu.Unlock()
	old.CloseNow()
	c.Host = nc.Host
	return true
}

// passedClose is the close status and reason a bridge gives its client
// when the other end's read ended with err: the other end's own (a
// close frame), a normal closure when the bridge itself ended, else
// StatusGoingAway with the reason given.
func passedClose(err error, goingAway string) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.StatusNoStatusRcvd:
		// A close frame without a status (which may not be sent on).
		return websocket.StatusNormalClosure, ""
	case errors.As(err, &ce):
		return ce.Code, ce.Reason
	case err == nil || errors.Is(err, context.Canceled):
		return websocket.StatusNormalClosure, ""
	}
	return websocket.StatusGoingAway, goingAway
}

// pipe copies messages from one websocket to the other until one fails.
func pipe(ctx context.Context, from, to *websocket.Conn) error {
	for {
		typ, b, err := from.Read(ctx)
		if err != nil {
			return err
		}
		if err := to.Write(ctx, typ, b); err != nil {
			return err
		}
	}
}
