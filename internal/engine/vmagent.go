package engine

import (
	"bufio"
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
	"strings"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/store"
)

// agentOps calls the agents' VM API (create, actions, lists, screenshots,
// event streams, consoles) over the engine's mutual TLS, with longer
// timeouts than the monitoring's polls: a VM start may take seconds on a
// busy host. Every call pins the host's enrolled certificate first, so
// that any engine (not only the monitoring leader) can call any agent.
type agentOps struct {
	c       *agentClient
	tr      *http.Transport
	http    *http.Client
	timeout time.Duration
}

// opsTimeout bounds one VM operation on an agent (dial, TLS, answer).
const opsTimeout = 2 * time.Minute

func newAgentOps(c *agentClient) *agentOps {
	o := &agentOps{c: c, timeout: opsTimeout}
	o.tr = &http.Transport{
		DialTLSContext:      o.dialTLS,
		MaxIdleConnsPerHost: 4,
		// The event stream holds one connection per host for good; the
		// others (a resync, an action) are closed soon after use, so that
		// a thousand hosts do not keep a thousand more idle TLS
		// connections (and their goroutines and buffers).
		IdleConnTimeout:       15 * time.Second,
		ResponseHeaderTimeout: opsTimeout,
		DisableCompression:    true,
	}
	o.http = &http.Client{Transport: o.tr}
	return o
}

// dialTLS is the monitoring client's dial (the pinned certificate), with
// the operations' timeouts.
func (o *agentOps) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
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
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

func (o *agentOps) close() { o.tr.CloseIdleConnections() }

// target pins a host's certificate and returns its address.
func (o *agentOps) target(h store.Host) (string, error) {
	if h.CertFingerprint == "" || h.Address == "" {
		return "", api.NewError(http.StatusConflict, api.CodeHostStatusIllegal, "host %s has no enrolled agent yet (polyvirt agent join)", h.Name)
	}
	o.c.pin(h.Address, h.CertFingerprint)
	return h.Address, nil
}

// agentCallError is an agent's error answer, or a failure to reach it.
type agentCallError struct {
	Host   string
	Status int // 0: the agent was not reached
	Code   string
	Msg    string
	Errors api.Errors
}

func (e *agentCallError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("host %s does not answer: %s", e.Host, e.Msg)
	}
	return fmt.Sprintf("host %s: %s: %s", e.Host, e.Code, e.Msg)
}

// notFound tells whether the agent does not know the VM (or the route).
func (e *agentCallError) notFound() bool { return e.Status == http.StatusNotFound }

// apiError turns an agent's refusal into the engine's answer: the agent's
// code and message (its 4xx status), or 502 when it failed or was not
// reached.
func (e *agentCallError) apiError() *api.Error {
	status := e.Status
	code := e.Code
	switch {
	case status == 0:
		status, code = http.StatusBadGateway, api.CodeAgentUnreachable
	case status >= 500:
		status = http.StatusBadGateway
	}
	msg := fmt.Sprintf("host %s: %s", e.Host, e.Msg)
	if e.Status == 0 {
		msg = e.Error()
	}
	return &api.Error{Status: status, Code: code, Message: msg, Details: e.Errors}
}

func asAgentError(err error) *agentCallError {
	var ae *agentCallError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// call sends one request to a host's agent; out (when not nil) receives
// the JSON answer. Errors are *agentCallError.
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
	if u := userFrom(ctx); u != nil {
		req.Header.Set("X-Polyvirt-User", u.Name)
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return &agentCallError{Host: h.Name, Msg: shortError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	if err != nil {
		return &agentCallError{Host: h.Name, Msg: fmt.Sprintf("reading the answer of %s %s: %v", method, path, err)}
	}
	if resp.StatusCode >= 300 {
		ae := api.FromAnswer(resp.StatusCode, b)
		ce := &agentCallError{Host: h.Name, Status: resp.StatusCode, Code: ae.Code, Msg: ae.Message, Errors: ae.Details}
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
			return &agentCallError{Host: h.Name, Status: http.StatusBadGateway, Code: api.CodeHostCapabilitiesInvalid,
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

// errNoEvents: the agent has no event stream (a host simulator).
var errNoEvents = errors.New("the agent has no event stream (GET /v1/events: 404)")

// eventStream is an agent's GET /v1/events, read event by event.
type eventStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// events subscribes to a host's VM events (server-sent events).
func (o *agentOps) events(ctx context.Context, h store.Host) (*eventStream, error) {
	addr, err := o.target(h)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/events", nil)
	if err != nil {
		return nil, err
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return nil, &agentCallError{Host: h.Name, Msg: shortError(err)}
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, errNoEvents
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &agentCallError{Host: h.Name, Status: resp.StatusCode, Code: fmt.Sprintf("HTTP_%d", resp.StatusCode), Msg: "GET /v1/events"}
	}
	sc := bufio.NewScanner(resp.Body)
	// Events are small: start with a small buffer (a thousand hosts keep a
	// thousand streams open), grow to 1 MiB for an odd long line.
	sc.Buffer(make([]byte, 0, 2<<10), 1<<20)
	return &eventStream{body: resp.Body, sc: sc}, nil
}

// next returns the next VM event; io.EOF when the stream ended.
func (s *eventStream) next() (agentapi.Event, error) {
	var data strings.Builder
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			var ev agentapi.Event
			if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
				data.Reset()
				continue
			}
			return ev, nil
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := s.sc.Err(); err != nil {
		return agentapi.Event{}, err
	}
	return agentapi.Event{}, io.EOF
}

func (s *eventStream) close() { s.body.Close() }

// console opens the agent's websocket to a VM's serial console.
func (o *agentOps) console(ctx context.Context, h store.Host, id, query, user string) (*websocket.Conn, error) {
	addr, err := o.target(h)
	if err != nil {
		return nil, err
	}
	u := "wss://" + addr + "/v1/vms/" + url.PathEscape(id) + "/console"
	if query != "" {
		u += "?" + query
	}
	hdr := http.Header{}
	if user != "" {
		hdr.Set("X-Polyvirt-User", user)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPClient: o.http, HTTPHeader: hdr})
	if err != nil {
		ce := &agentCallError{Host: h.Name, Msg: shortError(err)}
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
