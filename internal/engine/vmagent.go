package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/bulkconn"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/store"
)

// agentOps calls the agents' VM API (create, actions, lists, screenshots,
// event streams, consoles) over the engine's mutual TLS, with longer
// timeouts than the monitoring's polls: a VM start may take seconds on a
// busy host. Every call pins the host's enrolled certificate first, so
// that any engine (not only the monitoring leader) can call any agent.
// The calls and the event streams share the monitoring's HTTP/2
// connection to each host (http); a console's websocket takes an
// HTTP/1.1 connection (ws), closed soon after use.
type agentOps struct {
	c       *agentClient
	http    *http.Client
	wsTr    *http.Transport
	ws      *http.Client
	timeout time.Duration
}

// opsTimeout bounds one VM operation on an agent (dial, TLS, answer).
const opsTimeout = 2 * time.Minute

func newAgentOps(c *agentClient) *agentOps {
	o := &agentOps{c: c, timeout: opsTimeout, http: c.http}
	o.wsTr = &http.Transport{
		DialTLSContext:      o.dialTLS,
		MaxIdleConnsPerHost: 1,
		// A console's connection is closed soon after use.
		IdleConnTimeout:       15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
	o.ws = &http.Client{Transport: o.wsTr}
	return o
}

// dialTLS is the monitoring client's dial (the pinned certificate) for a
// console's HTTP/1.1 connection.
func (o *agentOps) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	return o.dial(ctx, network, addr, false)
}

// dialBulkTLS is dialTLS for the storage calls: an upload's data goes in
// large writes (bulkconn).
func (o *agentOps) dialBulkTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	return o.dial(ctx, network, addr, true)
}

func (o *agentOps) dial(ctx context.Context, network, addr string, bulk bool) (net.Conn, error) {
	want := ""
	if v, ok := o.c.pins.Load(addr); ok {
		want = v.(string)
	}
	if want == "" {
		return nil, fmt.Errorf("no enrolled host has the address %s", addr)
	}
	d := net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := o.c.base.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	// An HTTP/1.1 connection: the console is a websocket.
	cfg.NextProtos = []string{"http/1.1"}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return o.c.verify(cs, want) }
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if bulk {
		return bulkconn.Client(hctx, raw, cfg)
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

func (o *agentOps) close() { o.wsTr.CloseIdleConnections() }

// target pins a host's certificate and returns its address.
func (o *agentOps) target(h store.Host) (string, error) {
	if h.CertFingerprint == "" || h.Address == "" {
		return "", api.FieldError(api.CodeHostStatusIllegal, "", "host %s has no enrolled agent yet (polyvirt agent join)", h.Name)
	}
	o.c.pin(h.Address, h.CertFingerprint)
	return h.Address, nil
}

// call sends one request to a host's agent; out (when not nil) receives
// the JSON answer. Errors are *service.AgentError.
func (o *agentOps) call(ctx context.Context, h store.Host, method, path string, body []byte, out any) error {
	addr, err := o.target(h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u := service.CallerFrom(ctx); u != nil {
		req.Header.Set("X-Polyvirt-User", u.Name)
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return &service.AgentError{Host: h.Name, Msg: shortError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	if err != nil {
		return &service.AgentError{Host: h.Name, Msg: fmt.Sprintf("reading the answer of %s %s: %v", method, path, err)}
	}
	if resp.StatusCode >= 300 {
		ae := api.FromAnswer(resp.StatusCode, b)
		ce := &service.AgentError{Host: h.Name, Status: resp.StatusCode, Code: ae.Code, Msg: ae.Message, Errors: ae.Details}
		if len(ce.Msg) > 2000 {
			ce.Msg = ce.Msg[:2000] + "…"
		}
		return ce
	}
	if out != nil {
		if raw, ok := out.(*[]byte); ok {
			*raw = b
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return &service.AgentError{Host: h.Name, Status: http.StatusBadGateway, Code: api.CodeHostCapabilitiesInvalid,
				Msg: fmt.Sprintf("the answer of %s %s is not what was expected: %v", method, path, err)}
		}
	}
	return nil
}

func (o *agentOps) listVMs(ctx context.Context, h store.Host) ([]agentapi.VM, error) {
	var out []agentapi.VM
	err := o.call(ctx, h, http.MethodGet, "/v1/vms", nil, &out)
	return out, err
}

func (o *agentOps) getVM(ctx context.Context, h store.Host, id string) (agentapi.VM, error) {
	var out agentapi.VM
	err := o.call(ctx, h, http.MethodGet, "/v1/vms/"+url.PathEscape(id), nil, &out)
	return out, err
}

func (o *agentOps) createVM(ctx context.Context, h store.Host, def []byte) (agentapi.VM, error) {
	var out agentapi.VM
	err := o.call(ctx, h, http.MethodPost, "/v1/vms", def, &out)
	return out, err
}

func (o *agentOps) deleteVM(ctx context.Context, h store.Host, id string, force bool) error {
	path := "/v1/vms/" + url.PathEscape(id)
	if force {
		path += "?force=true"
	}
	return o.call(ctx, h, http.MethodDelete, path, nil, nil)
}

func (o *agentOps) act(ctx context.Context, h store.Host, id, action string) (agentapi.ActionResult, error) {
	return o.actWith(ctx, h, id, action, nil)
}

// actWith runs an action with a request body (a shutdown's time-out).
func (o *agentOps) actWith(ctx context.Context, h store.Host, id, action string, body []byte) (agentapi.ActionResult, error) {
	var out agentapi.ActionResult
	err := o.call(ctx, h, http.MethodPost, "/v1/vms/"+url.PathEscape(id)+"/"+action, body, &out)
	return out, err
}

func (o *agentOps) screenshot(ctx context.Context, h store.Host, id string) ([]byte, error) {
	var out []byte
	err := o.call(ctx, h, http.MethodGet, "/v1/vms/"+url.PathEscape(id)+"/screenshot", nil, &out)
	return out, err
}

// console opens the agent's websocket to a VM's serial console.
func (o *agentOps) console(ctx context.Context, h store.Host, id, query, user string) (*websocket.Conn, error) {
	return o.websocket(ctx, h, "/v1/vms/"+url.PathEscape(id)+"/console", query, user)
}

// websocket opens one of the agent's websockets (path and query), on
// behalf of a user (for the agent's log).
func (o *agentOps) websocket(ctx context.Context, h store.Host, path, query, user string) (*websocket.Conn, error) {
	addr, err := o.target(h)
	if err != nil {
		return nil, err
	}
	u := "wss://" + addr + path
	if query != "" {
		u += "?" + query
	}
	hdr := http.Header{}
	if user != "" {
		hdr.Set("X-Polyvirt-User", user)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPClient: o.ws, HTTPHeader: hdr})
	if err != nil {
		ce := &service.AgentError{Host: h.Name, Msg: shortError(err)}
		if resp != nil {
			ce.Status, ce.Code = resp.StatusCode, fmt.Sprintf("HTTP_%d", resp.StatusCode)
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				var eb api.ErrorBody
				if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
					ce.Code, ce.Msg = eb.Error.Code, eb.Error.Message
				}
			}
		}
		return nil, ce
	}
	ws.SetReadLimit(1 << 20)
	return ws, nil
}

// agentService is the engine's client as the services call it
// (service.Agents).
type agentService struct {
	c   *agentClient
	ops *agentOps
}

func (a *agentService) Pin(addr, fingerprint string) { a.c.pin(addr, fingerprint) }
func (a *agentService) Unpin(addr string)            { a.c.unpin(addr) }
func (a *agentService) Capabilities(ctx context.Context, addr, etag string) ([]byte, string, bool, error) {
	body, tag, notModified, err := a.c.capabilities(ctx, addr, etag)
	if err != nil {
		err = errors.New(shortError(err))
	}
	return body, tag, notModified, err
}
func (a *agentService) Stats(ctx context.Context, addr string) ([]byte, error) {
	b, err := a.c.stats(ctx, addr)
	if err != nil {
		err = errors.New(shortError(err))
	}
	return b, err
}
func (a *agentService) ListVMs(ctx context.Context, h store.Host) ([]agentapi.VM, error) {
	return a.ops.listVMs(ctx, h)
}
func (a *agentService) GetVM(ctx context.Context, h store.Host, id string) (agentapi.VM, error) {
	return a.ops.getVM(ctx, h, id)
}
func (a *agentService) CreateVM(ctx context.Context, h store.Host, def []byte) (agentapi.VM, error) {
	return a.ops.createVM(ctx, h, def)
}
func (a *agentService) DeleteVM(ctx context.Context, h store.Host, id string, force bool) error {
	return a.ops.deleteVM(ctx, h, id, force)
}
func (a *agentService) Act(ctx context.Context, h store.Host, id, action string, shutdown *agentapi.ShutdownRequest) (agentapi.ActionResult, error) {
	var body []byte
	if shutdown != nil {
		body, _ = json.Marshal(shutdown)
	}
	return a.ops.actWith(ctx, h, id, action, body)
}
func (a *agentService) Screenshot(ctx context.Context, h store.Host, id string) ([]byte, error) {
	return a.ops.screenshot(ctx, h, id)
}
func (a *agentService) Events(ctx context.Context, h store.Host, stats time.Duration, pushed func([]byte)) (service.EventStream, error) {
	s, err := a.ops.events(ctx, h, stats, pushed)
	if err != nil {
		return nil, err
	}
	return s, nil
}
func (a *agentService) FirmwareStatus(ctx context.Context, h store.Host) (agentapi.FirmwareStatus, error) {
	var af agentapi.FirmwareStatus
	resp, err := a.c.firmwareDo(ctx, "GET", h.Address, "/v1/firmware", nil, nil)
	if err != nil {
		return af, &api.Error{Status: http.StatusBadGateway, Code: api.CodeAgentUnreachable, Message: fmt.Sprintf("host %s: %v", h.Name, err), Err: err}
	}
	return af, agentAnswer(resp, &af)
}
func (a *agentService) ProbeGuest(ctx context.Context, h store.Host) (agentapi.ProbeResult, error) {
	var res agentapi.ProbeResult
	resp, err := a.c.firmwareDo(ctx, "POST", h.Address, "/v1/probe", http.Header{"Content-Type": {"application/json"}}, bytes.NewReader([]byte(`{}`)))
	if err != nil {
		return res, api.NewError(http.StatusBadGateway, api.CodeAgentUnreachable, "host %s: %v", h.Name, err)
	}
	return res, agentAnswer(resp, &res)
}
func (a *agentService) FirmwareUpload(ctx context.Context, h store.Host, name, user string, image io.Reader) (agentapi.FirmwareOperation, error) {
	var op agentapi.FirmwareOperation
	hdr := http.Header{"X-Polyvirt-User": {user}, "Content-Type": {"application/octet-stream"}}
	resp, err := a.c.firmwareDo(ctx, "POST", h.Address, "/v1/firmware/image?name="+url.QueryEscape(name), hdr, image)
	if api.CodeOf(err) == api.CodeBodyTooLarge {
		return op, api.NewError(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "firmware image larger than %d bytes", int64(MaxFirmwareUpload))
	}
	if err != nil {
		return op, api.NewError(http.StatusBadGateway, api.CodeAgentUnreachable, "host %s: %v", h.Name, err)
	}
	return op, agentAnswer(resp, &op)
}
func (a *agentService) FirmwareStep(ctx context.Context, h store.Host, step, user string, req agentapi.FirmwareStepRequest) (agentapi.FirmwareOperation, bool, error) {
	var op agentapi.FirmwareOperation
	body := []byte(`{}`)
	if req.Maintenance {
		body, _ = json.Marshal(req)
	}
	hdr := http.Header{"X-Polyvirt-User": {user}, "Content-Type": {"application/json"}}
	resp, err := a.c.firmwareDo(ctx, "POST", h.Address, "/v1/firmware/"+step, hdr, bytes.NewReader(body))
	if err != nil {
		return op, false, &api.Error{Status: http.StatusBadGateway, Code: api.CodeAgentUnreachable, Message: fmt.Sprintf("host %s: %v", h.Name, err), Err: err}
	}
	err = agentAnswer(resp, &op)
	return op, resp.Status == http.StatusOK, err
}

// firmwareTimeout bounds a firmware request to an agent: an upload of a
// large image, or a step the agent answers after at most a few seconds.
const firmwareTimeout = 10 * time.Minute

// MaxFirmwareUpload bounds a firmware image uploaded through the engine.
const MaxFirmwareUpload = 1 << 30

// firmwareDo sends a firmware request to an agent with the engine's client
// certificate and pins, and a timeout fit for images and tools.
func (c *agentClient) firmwareDo(ctx context.Context, method, addr, path string, header http.Header, body io.Reader) (*agentResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, firmwareTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	return &agentResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// agentAnswer decodes an agent's answer into out, or returns its error
// with the agent's status and code (a refused step is the agent's 409).
func agentAnswer(r *agentResponse, out any) error {
	if r.Status >= 400 {
		var eb api.ErrorBody
		if json.Unmarshal(r.Body, &eb) == nil && eb.Error.Code != "" {
			status := r.Status
			if status >= 500 {
				status = http.StatusBadGateway
			}
			return &api.Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message, Field: eb.Error.Field}
		}
		return api.NewError(http.StatusBadGateway, api.CodeAgentError, "the agent answered HTTP %d", r.Status)
	}
	if err := json.Unmarshal(r.Body, out); err != nil {
		return api.NewError(http.StatusBadGateway, api.CodeAgentError, "the agent's answer is not JSON: %v", err)
	}
	return nil
}

// shortError is an agent error without the URL the HTTP client adds.
func shortError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within the poll timeout (" + err.Error() + ")"
	}
	return err.Error()
}

// The migration calls (internal/agent's migrate.go and incoming.go).

func (a *agentService) MigrationPlan(ctx context.Context, h store.Host, id string) (agentapi.MigrationPlan, error) {
	var out agentapi.MigrationPlan
	err := a.ops.call(ctx, h, http.MethodPost, "/v1/vms/"+url.PathEscape(id)+"/migration/plan", nil, &out)
	return out, err
}

func (a *agentService) Announce(ctx context.Context, h store.Host, req agentapi.IncomingRequest) (agentapi.Incoming, error) {
	var out agentapi.Incoming
	body, err := json.Marshal(req)
	if err != nil {
		return out, err
	}
	err = a.ops.call(ctx, h, http.MethodPost, "/v1/incoming", body, &out)
	return out, err
}

func (a *agentService) Incoming(ctx context.Context, h store.Host, id string) (agentapi.Incoming, error) {
	var out agentapi.Incoming
	err := a.ops.call(ctx, h, http.MethodGet, "/v1/incoming/"+url.PathEscape(id), nil, &out)
	return out, err
}

func (a *agentService) Withdraw(ctx context.Context, h store.Host, id string) (agentapi.Incoming, error) {
	var out agentapi.Incoming
	err := a.ops.call(ctx, h, http.MethodDelete, "/v1/incoming/"+url.PathEscape(id), nil, &out)
	return out, err
}

func (a *agentService) Migrate(ctx context.Context, h store.Host, id string, order agentapi.MigrationOrder) (agentapi.MigrationStatus, error) {
	var out agentapi.MigrationStatus
	body, err := json.Marshal(order)
	if err != nil {
		return out, err
	}
	err = a.ops.call(ctx, h, http.MethodPost, "/v1/vms/"+url.PathEscape(id)+"/migrate", body, &out)
	return out, err
}

func (a *agentService) MigrationStatus(ctx context.Context, h store.Host, id string) (agentapi.MigrationStatus, error) {
	var out agentapi.MigrationStatus
	err := a.ops.call(ctx, h, http.MethodGet, "/v1/vms/"+url.PathEscape(id)+"/migration", nil, &out)
	return out, err
}

func (a *agentService) CancelMigration(ctx context.Context, h store.Host, id string) (agentapi.MigrationStatus, error) {
	var out agentapi.MigrationStatus
	err := a.ops.call(ctx, h, http.MethodDelete, "/v1/vms/"+url.PathEscape(id)+"/migration", nil, &out)
	return out, err
}
