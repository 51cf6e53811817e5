package engine

import (
	"context"
	"errors"
	"net/http"
	"net/url"

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
	bridge(ctx, cancel, c, clientWS, agentWS)
	e.log.Info("console detached", "vm", c.VM.Name, "host", c.Host.Name, "user", c.User)
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
// the first end gave.
func bridge(ctx context.Context, cancel context.CancelFunc, c service.Console, clientWS, agentWS *websocket.Conn) {
	done := make(chan error, 2)
	go func() { done <- pipe(ctx, agentWS, clientWS) }()
	go func() {
		if !c.Writable {
			// Watch only: read (and drop) what the client sends, to notice
			// its close.
			for {
				if _, _, err := clientWS.Read(ctx); err != nil {
					done <- err
					return
				}
			}
		}
		done <- pipe(ctx, clientWS, agentWS)
	}()
	err := <-done
	cancel()
	status := websocket.StatusNormalClosure
	reason := ""
	if cs := websocket.CloseStatus(err); cs != -1 {
		status = cs
	} else if err != nil && !errors.Is(err, context.Canceled) {
		status, reason = websocket.StatusGoingAway, "console closed"
	}
	_ = clientWS.Close(status, reason)
	_ = agentWS.Close(websocket.StatusNormalClosure, "")
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
