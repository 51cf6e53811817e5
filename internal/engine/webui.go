package engine

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/httpx"
	"polyvirt/internal/store"
	"polyvirt/internal/webui"
)

// The engine's faces of the web UI (package webui has its files): the
// page and its files at the engine's address, with the security headers
// every answer carries, and the API routes the UI needs besides the
// others — the sign-in (session.go), what a cluster's VMs may be, a
// definition checked without creating it, the event stream, a host's
// statistics of the last hour, console tickets and the graphical console's
// websocket (vnc.go).

// uiFiles are the UI's files served (the embedded ones unless replaced).
type uiFiles struct {
	once  sync.Once
	files atomic.Pointer[webui.UI]
}

func (u *uiFiles) get() *webui.UI {
	u.once.Do(func() {
		if u.files.Load() == nil {
			u.files.Store(webui.New())
		}
	})
	return u.files.Load()
}

// SetUIFiles replaces the UI's files (the embedded ones by default).
func (e *Engine) SetUIFiles(u *webui.UI) {
	e.ui.once.Do(func() {})
	e.ui.files.Store(u)
}

// registerUI adds the UI's page and files to the engine's mux.
func (e *Engine) registerUI(mux *http.ServeMux) {
	for _, p := range webui.Patterns {
		mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.ui.get().ServeHTTP(w, r)
		}))
	}
}

// webRoutes are the API routes of the web UI.
func (e *Engine) webRoutes() []route {
	return append(e.sessionRoutes(),
		route{Method: "GET", Path: "/clusters/{cluster}/vm-options", Summary: "What a VM of the cluster may be: its architectures' machines, CPU models, memory, displays, NICs and buses", h: e.getVMOptions},
		route{Method: "POST", Path: "/clusters/{cluster}/vm-check", Role: store.RoleReadOnly, Summary: "Check a VM definition (YAML or JSON) for the cluster without creating it: every violation", h: e.checkVM},
		route{Method: "GET", Path: "/overview", Summary: "The web UI's overview in one small answer: each cluster with its hosts counted by status and its VMs by state, the totals, the hosts that need attention", h: e.getOverview},
		route{Method: "GET", Path: "/events/stream", Summary: "The audit log's new events as they happen (server-sent events)", h: e.streamEvents},
		route{Method: "GET", Path: "/hosts/{host}/stats/history", Summary: "A host's statistics over the last hour", h: e.getStatsHistory},
		route{Method: "POST", Path: "/vms/{vm}/console-ticket", Role: store.RoleVMManager, Summary: "A short-lived, one-use ticket to open a running VM's graphical console", h: e.consoleTicket},
		route{Method: "GET", Path: "/vms/{vm}/vnc", Public: true, Summary: "The graphical console (VNC) of a running VM (websocket; a console ticket authenticates)", h: e.vmVNC},
	)
}

func (e *Engine) getOverview(w http.ResponseWriter, r *http.Request) error {
	o, err := e.svc.Clusters.Overview(r.Context())
	return answer(w, http.StatusOK, o, err)
}

func (e *Engine) getVMOptions(w http.ResponseWriter, r *http.Request) error {
	o, err := e.svc.VMs.Options(r.Context(), r.PathValue("cluster"))
	return answer(w, http.StatusOK, o, err)
}

func (e *Engine) checkVM(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.VMCheckRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	c, err := e.svc.VMs.Check(r.Context(), r.PathValue("cluster"), req)
	return answer(w, http.StatusOK, c, err)
}

func (e *Engine) getStatsHistory(w http.ResponseWriter, r *http.Request) error {
	h, err := e.svc.Hosts.StatsHistory(r.Context(), r.PathValue("host"))
	return answer(w, http.StatusOK, h, err)
}

// streamEvents answers GET /api/v1/events/stream: text/event-stream, one
// "event" per audit event (its JSON, the id its ID) and a comment every
// 15 s. A client that reconnects with Last-Event-ID gets what it missed
// first.
func (e *Engine) streamEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ch, done := e.svc.Events.Subscribe()
	defer done()
	var missed []engineapi.Event
	if id, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && id > 0 {
		missed, _ = e.svc.Events.After(ctx, id)
	}
	rc := http.NewResponseController(w)
	httpx.NoDeadlines(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	sent := int64(0)
	send := func(ev engineapi.Event) error {
		if ev.ID <= sent {
			return nil
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		sent = ev.ID
		_, err = fmt.Fprintf(w, "id: %d\nevent: event\ndata: %s\n\n", ev.ID, b)
		return err
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n: polyvirt events\n\n"); err != nil {
		return nil
	}
	for _, ev := range missed {
		if send(ev) != nil {
			return nil
		}
	}
	_ = rc.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	streams := e.svc.Events.Streams()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-streams.Done():
			return nil
		case ev := <-ch:
			if send(ev) != nil {
				return nil
			}
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
		}
		if rc.Flush() != nil {
			return nil
		}
	}
}
