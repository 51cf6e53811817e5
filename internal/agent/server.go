package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/bulkconn"
	"polyvirt/internal/httpx"
	"polyvirt/internal/pki"
)

//go:embed openapi.json
var openAPI []byte

// route is one route of the agent's API: its method and path, what it
// does (the OpenAPI document's summary), and its handler — a plain one
// (bounded by the request timeout, errors answered as JSON) or a stream
// (an event stream, a websocket, an upload: its own limits).
type route struct {
	Method, Path, Summary string
	plain                 httpx.Plain
	stream                http.HandlerFunc
}

// routes is the agent's API, in the order of the OpenAPI document.
func (a *Agent) routes() []route {
	rs := []route{
		{Method: "GET", Path: "/v1/openapi.json", Summary: "This document.", plain: a.getOpenAPI},
		{Method: "GET", Path: "/v1/capabilities", Summary: "The host capabilities report.", plain: a.getCapabilities},
		{Method: "GET", Path: "/v1/stats", Summary: "Host and VM statistics.", plain: a.getStats},
		{Method: "GET", Path: "/v1/vms", Summary: "The VMs this host owns.", plain: a.listVMs},
		{Method: "POST", Path: "/v1/vms", Summary: "Define a VM from a definition.", plain: a.createVM},
		{Method: "GET", Path: "/v1/vms/{id}", Summary: "One VM.", plain: a.getVM},
		{Method: "DELETE", Path: "/v1/vms/{id}", Summary: "Undefine a VM.", plain: a.deleteVM},
		{Method: "POST", Path: "/v1/vms/{id}/{action}", Summary: "A lifecycle action.", plain: a.actVM},
		{Method: "GET", Path: "/v1/vms/{id}/screenshot", Summary: "A PNG of the VM's display.", plain: a.getScreenshot},
		{Method: "GET", Path: "/v1/vms/{id}/console", Summary: "The VM's serial console (websocket).", stream: a.serveConsole},
		{Method: "GET", Path: "/v1/vms/{id}/vnc", Summary: "The VM's graphical console: its VNC server on this host's loopback (websocket).", stream: a.serveVNC},
		{Method: "GET", Path: "/v1/events", Summary: "VM lifecycle events (server-sent events).", stream: a.serveEvents},
		{Method: "GET", Path: "/v1/firmware", Summary: "The host's system firmware.", plain: a.getFirmware},
		{Method: "POST", Path: "/v1/firmware/image", Summary: "Upload a firmware image.", stream: a.postFirmwareImage},
		{Method: "POST", Path: "/v1/firmware/{step}", Summary: "A step of the firmware update.", plain: a.postFirmwareStep},
		{Method: "POST", Path: "/v1/probe", Summary: "Start the smallest guest of this host's architecture, see it run, destroy it (a health check).", plain: a.postProbe},
	}
	rs = append(rs, a.snapshotRoutes()...)
	rs = append(rs, a.storageRoutes()...)
	return append(rs, a.migrationRoutes()...)
}

// Handler is the agent's HTTP API (without TLS: Serve adds it).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		h := rt.stream
		if h == nil {
			h = a.plain(rt.plain)
		}
		mux.HandleFunc(rt.Method+" "+rt.Path, h)
	}
	// The metrics are no part of the API (not in its OpenAPI document).
	mux.HandleFunc("GET "+MetricsPath, a.getMetrics)
	mux.HandleFunc("/", httpx.NotFound("/v1/openapi.json"))
	return scrapeOnly(mux)
}

func (a *Agent) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	return httpx.JSONRaw(w, http.StatusOK, openAPI)
}

// getCapabilities answers the report; its hash is its ETag: a monitor asks
// with If-None-Match and gets 304 until the report changes.
func (a *Agent) getCapabilities(w http.ResponseWriter, r *http.Request) error {
	body, etag, err := a.capabilitiesDocument(r.Context(), r.URL.Query().Get("refresh") == "true")
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	return httpx.JSONRaw(w, http.StatusOK, body)
}

func (a *Agent) getStats(w http.ResponseWriter, r *http.Request) error {
	s, err := a.statsNow()
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, s)
}

// statsNow is the last statistics, with whether libvirt answers as of now
// (not as of the sample).
func (a *Agent) statsNow() (agentapi.Stats, error) {
	s, err := a.stats.current()
	if err != nil && s.Host.Time.IsZero() {
		return s, err
	}
	st := a.conn.status()
	s.Libvirt = &st
	return s, nil
}

func (a *Agent) listVMs(w http.ResponseWriter, r *http.Request) error {
	vms, err := a.ListVMs(r.Context())
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, vms)
}

func (a *Agent) createVM(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r)
	if err != nil {
		return err
	}
	vm, err := a.CreateVM(r.Context(), body)
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusCreated, vm)
}

func (a *Agent) getVM(w http.ResponseWriter, r *http.Request) error {
	vm, err := a.GetVM(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, vm)
}

func (a *Agent) deleteVM(w http.ResponseWriter, r *http.Request) error {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	if err := a.DeleteVM(r.Context(), r.PathValue("id"), force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *Agent) actVM(w http.ResponseWriter, r *http.Request) error {
	opts, err := actOptions(r)
	if err != nil {
		return err
	}
	res, err := a.ActWith(r.Context(), r.PathValue("id"), r.PathValue("action"), opts)
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, res)
}

// actOptions reads an action's request body: shutdown's time-out and
// force, nothing for the others.
func actOptions(r *http.Request) (ActOptions, error) {
	var opts ActOptions
	var sd agentapi.ShutdownRequest
	b, err := httpx.ReadBody(r)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return opts, err
	}
	if r.PathValue("action") != "shutdown" {
		return opts, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "%s takes no request body", r.PathValue("action"))
	}
	if err := httpx.Unmarshal(b, &sd, false); err != nil {
		return opts, err
	}
	if sd.TimeoutSeconds < 0 || sd.TimeoutSeconds > maxShutdownTimeout {
		return opts, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "timeoutSeconds %d: want 0 to %d", sd.TimeoutSeconds, maxShutdownTimeout)
	}
	if sd.Force && sd.TimeoutSeconds == 0 {
		return opts, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "force needs a timeoutSeconds (use destroy to power off at once)")
	}
	opts.Shutdown = sd
	return opts, nil
}

func (a *Agent) getScreenshot(w http.ResponseWriter, r *http.Request) error {
	img, err := a.Screenshot(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpx.Bytes(w, "image/png", img)
}

func (a *Agent) getFirmware(w http.ResponseWriter, r *http.Request) error {
	st, err := a.FirmwareStatus(r.Context())
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, st)
}

// postFirmwareImage takes an image: it is large and may come slowly, so it
// has its own limits.
func (a *Agent) postFirmwareImage(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(30 * time.Minute))
	httpx.LimitBody(w, r, a.cfg.MaxFirmwareBytes)
	_, _ = httpx.Answer(w, r, func(w http.ResponseWriter, r *http.Request) error {
		op, err := a.FirmwareUpload(r.Context(), r.Body, r.URL.Query().Get("name"), who(r))
		if api.CodeOf(err) == api.CodeBodyTooLarge {
			return api.NewError(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "firmware image larger than %d bytes", a.cfg.MaxFirmwareBytes)
		}
		if err != nil {
			return err
		}
		return httpx.WriteJSON(w, http.StatusOK, op)
	}, agentError)
}

func (a *Agent) postFirmwareStep(w http.ResponseWriter, r *http.Request) error {
	var body agentapi.FirmwareStepRequest
	if err := httpx.DecodeJSON(r, &body, httpx.Optional); err != nil {
		return err
	}
	op, done, err := a.FirmwareAction(r.Context(), r.PathValue("step"), who(r), body.Maintenance)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !done {
		status = http.StatusAccepted
	}
	return httpx.WriteJSON(w, status, op)
}

// plain wraps a request/response handler: the request and its body must
// arrive, and the answer leave, within the request timeout; errors become
// JSON error answers.
func (a *Agent) plain(h httpx.Plain) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(a.cfg.RequestTimeout.Duration)
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline.Add(5 * time.Second))
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		defer cancel()
		httpx.LimitBody(w, r, a.cfg.MaxBodyBytes)
		_, _ = httpx.Answer(w, r.WithContext(ctx), h, agentError)
	}
}

// serveEvents streams VM events as server-sent events, with a comment line
// every 15 s to keep idle connections open; with ?stats=INTERVAL, the
// host's statistics every INTERVAL too (statspush.go).
func (a *Agent) serveEvents(w http.ResponseWriter, r *http.Request) {
	push, err := statsPushInterval(r)
	if err != nil {
		writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	var stats <-chan time.Time
	if push > 0 {
		w.Header().Set(agentapi.StatsHeader, push.String())
		t := time.NewTicker(push)
		defer t.Stop()
		stats = t.C
	}
	w.WriteHeader(http.StatusOK)
	events, cancel := a.hub.subscribe()
	defer cancel()
	fmt.Fprintf(w, ": polyvirt agent %s events\n\n", a.cfg.HostID)
	if push > 0 {
		// The statistics at once: the client need not poll first.
		a.sendStats(w)
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for rc.Flush() == nil && a.sendEvent(r.Context(), w, events, keepalive.C, stats) {
	}
}

// sendEvent writes the next event, the statistics when they are due, or a
// keepalive comment when nothing came for a while; false when the stream
// ends (the client left, the hub closed it).
func (a *Agent) sendEvent(ctx context.Context, w io.Writer, events <-chan agentapi.Event, keepalive, stats <-chan time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-keepalive:
		fmt.Fprint(w, ": keepalive\n\n")
	case <-stats:
		a.sendStats(w)
	case ev, ok := <-events:
		if !ok {
			return false
		}
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w, "event: vm\ndata: %s\n\n", b)
	}
	return true
}

// writeError answers an error (a stream's, before it started).
func writeError(w http.ResponseWriter, err error) { httpx.WriteError(w, asAPIError(err)) }

// Serve runs the HTTPS API with mutual TLS until ctx ends: a client
// without a certificate signed by the configured CA is refused at the
// handshake.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	tlsCfg, err := a.tlsConfig()
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	// Under TLS, the connections read an upload's data in large blocks
	// (bulkconn).
	err = srv.ServeTLS(bulkconn.Listener{Listener: ln}, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (a *Agent) tlsConfig() (*tls.Config, error) {
	ca, err := os.ReadFile(a.cfg.TLS.CA)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}
	cert, err := os.ReadFile(a.cfg.TLS.Cert)
	if err != nil {
		return nil, fmt.Errorf("tls cert: %w", err)
	}
	key, err := os.ReadFile(a.cfg.TLS.Key)
	if err != nil {
		return nil, fmt.Errorf("tls key: %w", err)
	}
	cfg, err := pki.ServerTLS(cert, key, ca)
	if err != nil {
		return nil, err
	}
	// A host's libvirt certificate (signed by the same CA, for libvirt's
	// TLS between hosts) never orders an agent: only the engine does.
	cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) > 0 && len(chains[0]) > 0 && pki.IsLibvirtPeer(chains[0][0]) {
			return errors.New("a host's libvirt certificate cannot call an agent")
		}
		return nil
	}
	return cfg, nil
}

// Close releases the libvirt connections and the console drains.
func (a *Agent) Close() {
	for _, e := range a.index.list() {
		a.consoles.stop(e.ID)
	}
	a.vmConns.closeAll()
	a.conn.close()
}

// who is the user a request acts for: the engine names it in
// X-Polyvirt-User; otherwise the client certificate's subject.
func who(r *http.Request) string {
	if u := r.Header.Get("X-Polyvirt-User"); u != "" && len(u) <= 128 {
		return u
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0].Subject.CommonName
	}
	return "unknown"
}
