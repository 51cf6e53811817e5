package engine

import (
	"context"
	"net/http"
	"net/url"

	"github.com/coder/websocket"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/httpx"
)

// The graphical console: the browser (noVNC) opens a websocket to the
// engine with a console ticket; the engine opens the agent's VNC websocket
// of the VM's host over its mutual TLS; the agent connects to the VM's VNC
// server on the host's loopback. The RFB protocol's bytes pass through
// unchanged. The browser never reaches a host.

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
	// The RFB bytes both ways until either side ends (a VM that migrates
	// ends its graphical console: the viewer connects again).
	done := make(chan struct{}, 2)
	go func() { _ = pipe(ctx, clientWS, agentWS); done <- struct{}{} }()
	go func() { _ = pipe(ctx, agentWS, clientWS); done <- struct{}{} }()
	<-done
	cancel()
	e.log.Info("graphical console detached", "vm", c.VM.Name, "host", c.Host.Name, "user", c.User)
	return nil
}
