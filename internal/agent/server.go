package agent

import (
	"bytes"
	"context"
	"crypto/tls"
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
	"polyvirt/internal/pki"
)

//go:embed openapi.json
var openAPI []byte

// Handler is the agent's HTTP API (without TLS: Serve adds it).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	mux.HandleFunc("GET /v1/capabilities", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		// The report's hash is its ETag: a monitor asks with If-None-Match
		// and gets 304 until the report changes.
		body, etag, err := a.capabilitiesDocument(r.Context(), r.URL.Query().Get("refresh") == "true")
		if err != nil {
			return err
		}
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, err = w.Write(body)
		return err
	}))
	mux.HandleFunc("GET /v1/stats", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		s, err := a.stats.current()
		if err != nil && s.Host.Time.IsZero() {
			return err
		}
		// Whether libvirt answers is told as of now, not as of the sample.
		st := a.conn.status()
		s.Libvirt = &st
		return writeJSON(w, http.StatusOK, s)
	}))
	mux.HandleFunc("GET /v1/vms", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		vms, err := a.ListVMs(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, vms)
	}))
	mux.HandleFunc("POST /v1/vms", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		body, err := a.readBody(w, r)
		if err != nil {
			return err
		}
		vm, err := a.CreateVM(r.Context(), body)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, vm)
	}))
	mux.HandleFunc("GET /v1/vms/{id}", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		vm, err := a.GetVM(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, vm)
	}))
	mux.HandleFunc("DELETE /v1/vms/{id}", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
		if err := a.DeleteVM(r.Context(), r.PathValue("id"), force); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.HandleFunc("POST /v1/vms/{id}/{action}", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		var opts ActOptions
		b, err := a.readBody(w, r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if r.PathValue("action") != "shutdown" {
				return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "%s takes no request body", r.PathValue("action"))
			}
			var sd agentapi.ShutdownRequest
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&sd); err != nil {
				return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "request body: %v", err)
			}
			if sd.TimeoutSeconds < 0 || sd.TimeoutSeconds > maxShutdownTimeout {
				return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "timeoutSeconds %d: want 0 to %d", sd.TimeoutSeconds, maxShutdownTimeout)
			}
			if sd.Force && sd.TimeoutSeconds == 0 {
				return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "force needs a timeoutSeconds (use destroy to power off at once)")
			}
			opts.Shutdown = sd
		}
		res, err := a.ActWith(r.Context(), r.PathValue("id"), r.PathValue("action"), opts)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	}))
	mux.HandleFunc("GET /v1/vms/{id}/screenshot", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		img, err := a.Screenshot(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		_, err = w.Write(img)
		return err
	}))
	mux.HandleFunc("GET /v1/vms/{id}/console", func(w http.ResponseWriter, r *http.Request) {
		a.serveConsole(w, r, r.PathValue("id"))
	})
	mux.HandleFunc("GET /v1/events", a.serveEvents)
	mux.HandleFunc("GET /v1/firmware", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		st, err := a.FirmwareStatus(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, st)
	}))
	mux.HandleFunc("POST /v1/firmware/image", func(w http.ResponseWriter, r *http.Request) {
		// An image is large and may come slowly: its own limits.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(30 * time.Minute))
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxFirmwareBytes)
		name := r.URL.Query().Get("name")
		op, err := a.FirmwareUpload(r.Context(), r.Body, name, who(r))
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = api.NewError(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "firmware image larger than %d bytes", a.cfg.MaxFirmwareBytes)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		_ = writeJSON(w, http.StatusOK, op)
	})
	mux.HandleFunc("POST /v1/firmware/{step}", a.plain(func(w http.ResponseWriter, r *http.Request) error {
		var body agentapi.FirmwareStepRequest
		b, err := a.readBody(w, r)
		if err != nil {
			return err
		}
		if len(b) > 0 {
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "request body: %v", err)
			}
		}
		op, done, err := a.FirmwareAction(r.Context(), r.PathValue("step"), who(r), body.Maintenance)
		if err != nil {
			return err
		}
		status := http.StatusOK
		if !done {
			status = http.StatusAccepted
		}
		return writeJSON(w, status, op)
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, api.NewError(http.StatusNotFound, api.CodeNotFound, "no such endpoint: %s %s (see /v1/openapi.json)", r.Method, r.URL.Path))
	})
	return mux
}

// plain wraps a request/response handler: the request and its body must
// arrive, and the answer leave, within the request timeout; errors become
// JSON error answers.
func (a *Agent) plain(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(a.cfg.RequestTimeout.Duration)
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline.Add(5 * time.Second))
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		defer cancel()
		if err := h(w, r.WithContext(ctx)); err != nil {
			writeError(w, err)
		}
	}
}

// readBody reads a JSON request body within the size limit.
func (a *Agent) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, api.NewError(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "request body larger than %d bytes", a.cfg.MaxBodyBytes)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, api.NewError(http.StatusRequestTimeout, api.CodeBadRequest, "request body not received within %s", a.cfg.RequestTimeout.Duration)
	}
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "reading the request body: %v", err)
	}
	return b, nil
}

// serveEvents streams VM events as server-sent events, with a comment line
// every 15 s to keep idle connections open.
func (a *Agent) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	events, cancel := a.hub.subscribe()
	defer cancel()
	fmt.Fprintf(w, ": polyvirt agent %s events\n\n", a.cfg.HostID)
	if rc.Flush() != nil {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case ev, ok := <-events:
			if !ok {
				return
			}
			b, _ := json.Marshal(ev)
			fmt.Fprintf(w, "event: vm\ndata: %s\n\n", b)
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	e := asAPIError(err)
	_ = writeJSON(w, e.Status, e.Body())
}

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
	err = srv.ServeTLS(ln, "", "")
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
	return pki.ServerTLS(cert, key, ca)
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
