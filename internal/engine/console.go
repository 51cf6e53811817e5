package engine

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/store"
)

// runningHost is the host a VM runs on, or a 409 saying it runs nowhere.
func (e *Engine) runningHost(ctx context.Context, v store.VM, what string) (store.Host, error) {
	if v.HostID == "" {
		return store.Host{}, vmStatusError(v, what, "start it first (polyvirt vm start)")
	}
	return e.st.GetHost(ctx, v.HostID)
}

// vmScreenshot answers GET /api/v1/vms/{vm}/screenshot: the PNG the VM's
// host takes of its display.
func (e *Engine) vmScreenshot(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	v, err := e.findVM(ctx, r.PathValue("vm"))
	if err != nil {
		return err
	}
	h, err := e.runningHost(ctx, v, "take a screenshot of")
	if err != nil {
		return err
	}
	img, err := e.vms.ops.screenshot(ctx, h, v.ID)
	if err != nil {
		return agentAPIError(err)
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(img)
	return err
}

// vmConsole answers GET /api/v1/vms/{vm}/console: a websocket bridged to
// the agent's websocket of the VM's serial console (what it printed since
// it started, then what it prints; ?from=end skips the past). What an
// admin or a vm-manager sends is typed into the console; a readonly user
// only watches.
func (e *Engine) vmConsole(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	v, err := e.findVM(ctx, r.PathValue("vm"))
	if err != nil {
		return err
	}
	h, err := e.runningHost(ctx, v, "attach to the console of")
	if err != nil {
		return err
	}
	q := url.Values{}
	if r.URL.Query().Get("from") == "end" {
		q.Set("from", "end")
	}
	u := userFrom(ctx)
	user := ""
	if u != nil {
		user = u.Name
	}
	// The bridge lives as long as both ends, or until the engine stops.
	sctx, cancel := context.WithCancel(e.vms.streams)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	agentWS, err := e.vms.ops.console(sctx, h, v.ID, q.Encode(), user)
	if err != nil {
		return agentAPIError(err)
	}
	defer agentWS.CloseNow()
	// A console outlives the server's read and write timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	clientWS, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil
	}
	defer clientWS.CloseNow()
	clientWS.SetReadLimit(64 << 10)
	e.log.Info("console attached", "vm", v.Name, "host", h.Name, "user", user)
	done := make(chan error, 2)
	go func() { done <- pipe(sctx, agentWS, clientWS) }()
	go func() {
		if u == nil || !u.Role.ManagesVMs() {
			// Watch only: read (and drop) what the client sends, to notice
			// its close.
			for {
				if _, _, err := clientWS.Read(sctx); err != nil {
					done <- err
					return
				}
			}
		}
		done <- pipe(sctx, clientWS, agentWS)
	}()
	err = <-done
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
	e.log.Info("console detached", "vm", v.Name, "host", h.Name, "user", user)
	return nil
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
