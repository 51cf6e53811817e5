package engine

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
)

// The graphical console: the browser (noVNC) opens a websocket to the
// engine with a console ticket; the engine opens the agent's VNC websocket
// of the VM's host over its mutual TLS; the agent connects to the VM's VNC
// server on the host's loopback. The RFB protocol's bytes pass through
// unchanged. The browser never reaches a host.
//
// An RFB session cannot pass from one VNC server to another (each greets
// its viewer and agrees on its encodings), so a graphical console does not
// follow its VM as the serial console does: when the VM migrates, the
// engine closes the viewer's websocket with StatusVMMoved and the reason
// "the VM moved to HOST", and the web UI's console page opens it again
// with a fresh ticket, on the new host.

// StatusVMMoved is the websocket close status of a graphical console whose
// VM migrated to another host (an application's status, 4000–4999): its
// reason is "the VM moved to HOST".
const StatusVMMoved websocket.StatusCode = 4000

// movedWait bounds the wait, once the source's VNC server closed, for the
// migration in flight to finish (the source QEMU ends as it completes).
const movedWait = 2 * time.Minute

func (e *Engine) consoleTicket(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.ConsoleTicketRequest
	if err := httpx.DecodeJSON(r, &req, true); err != nil {
		return err
	}
	t, err := e.svc.VMs.ConsoleTicket(r.Context(), r.PathValue("vm"), req)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpx.WriteJSON(w, http.StatusCreated, t)
}

// vmVNC answers GET /api/v1/vms/{vm}/vnc?ticket=: a websocket (binary
// messages, RFB) bridged to the VM's VNC server through its host's agent.
func (e *Engine) vmVNC(w http.ResponseWriter, r *http.Request) error {
	c, err := e.svc.VMs.GraphicalConsole(r.Context(), r.PathValue("vm"), r.URL.Query().Get("ticket"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(e.svc.Streams())
	defer cancel()
	defer context.AfterFunc(r.Context(), cancel)()
	// Taken before the agent's websocket opens: a move from then on is seen.
	moved := e.svc.VMs.Moved(c.VM.ID)
	agentWS, err := e.agents.ops.websocket(ctx, c.Host, "/v1/vms/"+url.PathEscape(c.VM.ID)+"/vnc", "", c.User)
	if err != nil {
		return err
	}
	defer agentWS.CloseNow()
	agentWS.SetReadLimit(4 << 20)
	httpx.NoDeadlines(w)
	clientWS, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		return nil
	}
	defer clientWS.CloseNow()
	clientWS.SetReadLimit(1 << 20)
	e.log.Info("graphical console attached", "vm", c.VM.Name, "host", c.Host.Name, "user", c.User)
	// The RFB bytes both ways until either side ends, or the VM moves.
	clientDone := make(chan error, 1)
	agentDone := make(chan error, 1)
	go func() { clientDone <- pipe(ctx, clientWS, agentWS) }()
	go func() { agentDone <- pipe(ctx, agentWS, clientWS) }()
	// Every close frame goes before ctx ends: cancelling a websocket's read
	// closes its connection at once, and the viewer would see no status.
	select {
	case <-clientDone:
	case <-moved:
		if !e.closeMoved(clientWS, c, e.movedTo(ctx, c)) {
			_ = clientWS.Close(websocket.StatusGoingAway, "the graphical console closed")
		}
	case err := <-agentDone:
		// The VNC server closed: its QEMU ends as its migration completes.
		if !e.closeMoved(clientWS, c, e.awaitMove(ctx, c, moved)) {
			_ = clientWS.Close(passedClose(err, "the VNC server closed the connection"))
		}
	}
	_ = agentWS.Close(websocket.StatusNormalClosure, "")
	cancel()
	e.log.Info("graphical console detached", "vm", c.VM.Name, "host", c.Host.Name, "user", c.User)
	return nil
}

// closeMoved closes a graphical console whose VM moved to the host named
// to (StatusVMMoved); false, and nothing done, when to is "".
func (e *Engine) closeMoved(clientWS *websocket.Conn, c service.Console, to string) bool {
	if to == "" {
		return false
	}
	e.log.Info("graphical console closed: its VM moved", "vm", c.VM.Name, "from", c.Host.Name, "to", to, "user", c.User)
	reason := "the VM moved to " + to
	if len(reason) > 123 {
		reason = reason[:123]
	}
	_ = clientWS.Close(StatusVMMoved, reason)
	return true
}

// movedTo is the name of the VM's host when it is not the console's any
// more, else "".
func (e *Engine) movedTo(ctx context.Context, c service.Console) string {
	nc, err := e.svc.VMs.Console(service.WithCaller(ctx, nil), c.VM.ID)
	if err != nil || nc.Host.ID == c.Host.ID {
		return ""
	}
	return nc.Host.Name
}

// awaitMove is where the VM went when its console's VNC server closed
// because it migrated: it waits for a migration in flight to finish
// (movedWait at most); "" when the VM did not move.
func (e *Engine) awaitMove(ctx context.Context, c service.Console, moved <-chan struct{}) string {
	if to := e.movedTo(ctx, c); to != "" {
		return to
	}
	m, err := e.svc.VMs.Migration(service.WithCaller(ctx, nil), c.VM.ID)
	if err != nil || m.SourceID != c.Host.ID || (agentapi.MigrationFinished(m.Phase) && m.Phase != agentapi.PhaseCompleted) {
		return ""
	}
	t := time.NewTimer(movedWait)
	defer t.Stop()
	select {
	case <-moved:
		return e.movedTo(ctx, c)
	case <-t.C:
	case <-ctx.Done():
	}
	return ""
}
