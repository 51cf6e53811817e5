// Package client is the Go client of the engine's REST API (/api/v1),
// used by the CLI and the tests: typed calls over HTTPS with a bearer
// token, errors as *Error with the API's stable codes, and the CLI's login
// configuration (~/.config/polyvirt/config.json and its environment
// overrides).
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/bulkconn"
	"polyvirt/internal/localsock"
)

// Options say which engine to call and how to trust it.
type Options struct {
	// Engine is the engine's URL: https://HOST:PORT, or
	// unix:///PATH for the engine's local socket on this machine (HTTP
	// without TLS; the token is still sent).
	Engine string
	// Token is the API token ("" for the public routes only).
	Token string
	// CAPEM is the engine CA (PEM) to trust; when empty the system's
	// roots are used, unless Fingerprint is set.
	CAPEM []byte
	// Fingerprint pins a certificate of the engine's chain (hex SHA-256
	// of its DER, ':' allowed) instead of a CA.
	Fingerprint string
	// Timeout bounds each call (default 30s).
	Timeout time.Duration
	// Conns is how many connections to the engine are kept open for the
	// next calls (default 16): a program making more calls side by side
	// sets it as high, or the calls beyond it each open a connection
	// (a TLS handshake) and close it.
	Conns int
}

// Client calls one engine.
type Client struct {
	// base prefixes the requests' URLs; engine is the engine as given
	// (https://HOST:PORT or unix:///PATH), for messages.
	base   string
	engine string
	token  string
	http   *http.Client
	// upload sends an upload's data: its own connections, over which the
	// data goes in large writes (bulkconn).
	upload http.RoundTripper
}

// New makes a client.
func New(o Options) (*Client, error) {
	engine, err := EngineURL(o.Engine)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Conns <= 0 {
		o.Conns = 16
	}
	c := &Client{base: engine, engine: engine, token: strings.TrimSpace(o.Token)}
	if path, ok := strings.CutPrefix(engine, "unix://"); ok {
		// The local socket: plain HTTP, every connection to the socket
		// whatever the URL's host; the upload's data in large writes
		// straight from the file.
		c.base = "http://" + localHost
		dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, err
			}
			// The token goes to whoever serves the path: only to root,
			// this user, or the owner of a directory only it may write.
			if err := localsock.CheckServer(c, path); err != nil {
				c.Close()
				return nil, api.NewError(0, api.CodeLocalSocketUntrusted, "%v", err)
			}
			return bulkconn.Plain(c), nil
		}
		tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: o.Conns, IdleConnTimeout: time.Minute, WriteBufferSize: 1 << 20}
		c.http = &http.Client{Transport: tr, Timeout: o.Timeout}
		up := tr.Clone()
		up.MaxIdleConnsPerHost = 2
		c.upload = up
		return c, nil
	}
	cfg, err := TLSConfig(o.CAPEM, o.Fingerprint)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: o.Conns, IdleConnTimeout: time.Minute}
	up := tr.Clone()
	up.DialTLSContext = bulkDial(cfg)
	up.MaxIdleConnsPerHost = 2
	c.http = &http.Client{Transport: tr, Timeout: o.Timeout}
	c.upload = up
	return c, nil
}

// localHost is the host name of the requests sent over the engine's local
// socket (their connections go to the socket whatever it is).
const localHost = "polyvirt-engine.local"

// bulkDial dials the engine for an upload's data: TLS over a
// bulkconn.Conn, HTTP/1.1.
func bulkDial(cfg *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := cfg.Clone()
		if c.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				c.ServerName = host
			}
		}
		c.NextProtos = []string{"http/1.1"}
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return bulkconn.Client(hctx, raw, c)
	}
}

// EngineURL checks and normalizes an engine URL: https://HOST[:PORT], or
// unix:///PATH (an absolute path, clean, that a unix socket can have) for
// the engine's local socket.
func EngineURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "unix://"); ok {
		return socketURL(s, rest)
	}
	s = strings.TrimRight(s, "/")
	if s == "" {
		return "", errors.New("no engine: give --engine https://HOST:PORT, set POLYVIRT_ENGINE, or run polyvirt login")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/api/v1") || u.RawQuery != "" {
		return "", fmt.Errorf("engine %q: want https://HOST:PORT", s)
	}
	return "https://" + u.Host, nil
}

// socketURL checks the path of a unix:// engine URL s.
func socketURL(s, path string) (string, error) {
	switch {
	case !strings.HasPrefix(path, "/"):
		return "", fmt.Errorf("engine %q: want unix:///PATH, an absolute path (unix:// then the path's own /)", s)
	case len(path) > localsock.MaxPathLen:
		return "", fmt.Errorf("engine %q: a socket path has at most %d bytes", s, localsock.MaxPathLen)
	case filepath.Clean(path) != path:
		return "", fmt.Errorf("engine %q: the socket path is not clean (want %s)", s, filepath.Clean(path))
	case strings.ContainsAny(path, "?#\x00"):
		return "", fmt.Errorf("engine %q: the socket path holds '?', '#' or a NUL", s)
	}
	return "unix://" + path, nil
}

// TLSConfig trusts the engine through a CA (PEM), a pinned fingerprint of
// a certificate of its chain, or the system's roots.
func TLSConfig(caPEM []byte, fingerprint string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the engine CA file holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if fingerprint != "" {
		fp, err := NormalizeFingerprint(fingerprint)
		if err != nil {
			return nil, err
		}
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, c := range cs.PeerCertificates {
				if Fingerprint(c) == fp {
					return nil
				}
			}
			if len(cs.PeerCertificates) > 0 {
				return fmt.Errorf("the engine's certificate chain does not hold the pinned fingerprint %.16s… (its certificate is %s)", fp, Fingerprint(cs.PeerCertificates[0]))
			}
			return errors.New("the engine sent no certificate")
		}
	}
	return cfg, nil
}

// Fingerprint is the hex SHA-256 of a certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// NormalizeFingerprint reads a SHA-256 fingerprint: 64 hex digits, with or
// without ':' separators and a "sha256:" prefix, any case.
func NormalizeFingerprint(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "sha256:")
	s = strings.ReplaceAll(s, ":", "")
	if len(s) != 64 {
		return "", fmt.Errorf("fingerprint %q: want the 64 hex digits of a SHA-256", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("fingerprint %q: not hex", s)
	}
	return s, nil
}

// PeerChain connects to an engine without trusting it and returns the
// certificates it presents (leaf first), to show or pin a fingerprint.
func PeerChain(ctx context.Context, engine string) ([]*x509.Certificate, error) {
	base, err := EngineURL(engine)
	if err != nil {
		return nil, err
	}
	host := strings.TrimPrefix(base, "https://")
	if !strings.Contains(host, ":") || strings.HasSuffix(host, "]") {
		host += ":443"
	}
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates, nil
}

// Do sends a request: in (when not nil) as the JSON body, the JSON answer
// decoded into out (when not nil). An error answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.base + "/api/v1" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// Whether the request reached the engine whole: a connection lost
	// after that may have left the engine doing what was asked.
	var sent atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) { sent.Store(i.Err == nil) },
	}))
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if sent.Load() && ctx.Err() == nil {
			return &ConnectionLostError{Method: method, Path: path, Engine: c.engine, Err: err, TimedOut: ue != nil && ue.Timeout(), After: c.http.Timeout}
		}
		return fmt.Errorf("%s %s: %w", method, c.engine, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		if ctx.Err() == nil {
			var ne net.Error
			return &ConnectionLostError{Method: method, Path: path, Engine: c.engine, Err: err, Status: resp.StatusCode,
				TimedOut: errors.As(err, &ne) && ne.Timeout(), After: c.http.Timeout}
		}
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return api.FromAnswer(resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		if raw, ok := out.(*json.RawMessage); ok {
			*raw = append((*raw)[:0], b...)
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: the answer is not what was expected: %v", method, path, err)
		}
	}
	return nil
}

// ConnectionLostError is a request the engine received whole and did not
// answer: the connection broke (the engine went away: killed, restarted,
// its host down) or no answer came in time. The engine may have done, or
// may still do, what was asked; reading the object again tells.
type ConnectionLostError struct {
	// Method and Path are the request's (Path under /api/v1, without
	// its query); Engine is the engine's URL.
	Method, Path, Engine string
	// Err is what the connection said (EOF, a reset, a time-out).
	Err error
	// TimedOut tells that no answer came within After (the client's
	// time-out) rather than the connection breaking.
	TimedOut bool
	After    time.Duration
	// Status is the answer's status when its head came and its body was
	// cut (0 when no answer came at all).
	Status int
}

func (e *ConnectionLostError) Error() string {
	if e.TimedOut {
		return fmt.Sprintf("%s %s: the engine at %s did not answer within %s (%v)", e.Method, e.Path, e.Engine, e.After, e.Err)
	}
	return fmt.Sprintf("%s %s: the engine at %s went away before it answered (the connection was lost: %v)", e.Method, e.Path, e.Engine, e.Err)
}

// Unwrap is what the connection said.
func (e *ConnectionLostError) Unwrap() error { return e.Err }

func esc(s string) string { return url.PathEscape(s) }

// Health asks whether the engine and its database answer (no token).
func (c *Client) Health(ctx context.Context) (engineapi.Health, error) {
	var h engineapi.Health
	err := c.Do(ctx, "GET", "/health", nil, nil, &h)
	return h, err
}

// Info describes the engine.
func (c *Client) Info(ctx context.Context) (engineapi.Info, error) {
	var i engineapi.Info
	err := c.Do(ctx, "GET", "/info", nil, nil, &i)
	return i, err
}

// WhoAmI is the token's user.
func (c *Client) WhoAmI(ctx context.Context) (engineapi.User, error) {
	var u engineapi.User
	err := c.Do(ctx, "GET", "/whoami", nil, nil, &u)
	return u, err
}

// Users lists the users.
func (c *Client) Users(ctx context.Context) ([]engineapi.User, error) {
	var out []engineapi.User
	err := c.Do(ctx, "GET", "/users", nil, nil, &out)
	return out, err
}

// CreateUser adds a user; its token is in the answer, once.
func (c *Client) CreateUser(ctx context.Context, name, role string) (engineapi.UserToken, error) {
	var out engineapi.UserToken
	err := c.Do(ctx, "POST", "/users", nil, engineapi.UserRequest{Name: name, Role: role}, &out)
	return out, err
}

// DeleteUser removes a user.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", "/users/"+esc(name), nil, nil, nil)
}

// RotateToken gives a user a new token.
func (c *Client) RotateToken(ctx context.Context, name string) (engineapi.UserToken, error) {
	var out engineapi.UserToken
	err := c.Do(ctx, "POST", "/users/"+esc(name)+"/token", nil, nil, &out)
	return out, err
}

// CPUTypes lists the cluster CPU types ("" arch: all).
func (c *Client) CPUTypes(ctx context.Context, arch string) ([]engineapi.CPUType, error) {
	var out []engineapi.CPUType
	q := url.Values{}
	if arch != "" {
		q.Set("arch", arch)
	}
	err := c.Do(ctx, "GET", "/cpu-types", q, nil, &out)
	return out, err
}

// Clusters lists the clusters.
func (c *Client) Clusters(ctx context.Context) ([]engineapi.Cluster, error) {
	var out []engineapi.Cluster
	err := c.Do(ctx, "GET", "/clusters", nil, nil, &out)
	return out, err
}

// Cluster shows a cluster (by name or ID).
func (c *Client) Cluster(ctx context.Context, ref string) (engineapi.Cluster, error) {
	var out engineapi.Cluster
	err := c.Do(ctx, "GET", "/clusters/"+esc(ref), nil, nil, &out)
	return out, err
}

// CreateCluster creates a cluster.
func (c *Client) CreateCluster(ctx context.Context, req engineapi.ClusterRequest) (engineapi.Cluster, error) {
	var out engineapi.Cluster
	err := c.Do(ctx, "POST", "/clusters", nil, req, &out)
	return out, err
}

// UpdateCluster changes a cluster.
func (c *Client) UpdateCluster(ctx context.Context, ref string, upd engineapi.ClusterUpdate) (engineapi.Cluster, error) {
	var out engineapi.Cluster
	err := c.Do(ctx, "PATCH", "/clusters/"+esc(ref), nil, upd, &out)
	return out, err
}

// DeleteCluster deletes a cluster.
func (c *Client) DeleteCluster(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", "/clusters/"+esc(ref), nil, nil, nil)
}

// HostFilter selects hosts.
type HostFilter struct {
	Cluster  string
	Statuses []string
	// Details adds each host's CPU flags and emulated machines.
	Details bool
}

// Hosts lists every host a filter selects, ordered by name: it follows
// the engine's pages (HostPage) to the last.
func (c *Client) Hosts(ctx context.Context, f HostFilter) ([]engineapi.Host, error) {
	out := []engineapi.Host{}
	cont := ""
	for {
		p, err := c.HostPage(ctx, f, engineapi.MaxHostPageSize, cont)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Hosts...)
		if p.Continue == "" {
			return out, nil
		}
		if p.Continue == cont {
			return nil, fmt.Errorf("GET /hosts: the engine answered the same page again (continue %q)", cont)
		}
		cont = p.Continue
	}
}

// HostPage lists one page of the hosts a filter selects: at most limit
// (0: the engine's default), after the position of cont (the Continue
// of the page before; empty: the first page).
func (c *Client) HostPage(ctx context.Context, f HostFilter, limit int, cont string) (engineapi.HostPage, error) {
	var out engineapi.HostPage
	err := c.HostPageInto(ctx, f, limit, cont, &out)
	return out, err
}

// HostPageInto is HostPage decoding the page into out, a type of the
// caller's (fields it does not name are skipped, not decoded: a reader of
// ten thousand hosts that needs a few of their fields).
func (c *Client) HostPageInto(ctx context.Context, f HostFilter, limit int, cont string, out any) error {
	q := url.Values{}
	if f.Cluster != "" {
		q.Set("cluster", f.Cluster)
	}
	if len(f.Statuses) > 0 {
		q.Set("status", strings.Join(f.Statuses, ","))
	}
	if f.Details {
		q.Set("details", "true")
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cont != "" {
		q.Set("continue", cont)
	}
	return c.Do(ctx, "GET", "/hosts", q, nil, out)
}

// Host shows a host; withCaps includes its capabilities report.
func (c *Client) Host(ctx context.Context, ref string, withCaps bool) (engineapi.Host, error) {
	var out engineapi.Host
	var q url.Values
	if withCaps {
		q = url.Values{"capabilities": {"true"}}
	}
	err := c.Do(ctx, "GET", "/hosts/"+esc(ref), q, nil, &out)
	return out, err
}

// AddHost adds a host and returns its one-time join token.
func (c *Client) AddHost(ctx context.Context, req engineapi.HostRequest) (engineapi.JoinToken, error) {
	var out engineapi.JoinToken
	err := c.Do(ctx, "POST", "/hosts", nil, req, &out)
	return out, err
}

// UpdateHost changes a host.
func (c *Client) UpdateHost(ctx context.Context, ref string, upd engineapi.HostUpdate) (engineapi.Host, error) {
	var out engineapi.Host
	err := c.Do(ctx, "PATCH", "/hosts/"+esc(ref), nil, upd, &out)
	return out, err
}

// Maintenance switches a host to Maintenance.
func (c *Client) Maintenance(ctx context.Context, ref, reason string) (engineapi.Host, error) {
	var out engineapi.Host
	err := c.Do(ctx, "POST", "/hosts/"+esc(ref)+"/maintenance", nil, engineapi.ActionRequest{Reason: reason}, &out)
	return out, err
}

// Activate activates a host.
func (c *Client) Activate(ctx context.Context, ref, reason string) (engineapi.Host, error) {
	var out engineapi.Host
	err := c.Do(ctx, "POST", "/hosts/"+esc(ref)+"/activate", nil, engineapi.ActionRequest{Reason: reason}, &out)
	return out, err
}

// RemoveHost removes a host.
func (c *Client) RemoveHost(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", "/hosts/"+esc(ref), nil, nil, nil)
}

// JoinToken issues a new join token for a host ("" ttl: the default).
func (c *Client) JoinToken(ctx context.Context, ref, ttl string) (engineapi.JoinToken, error) {
	var out engineapi.JoinToken
	err := c.Do(ctx, "POST", "/hosts/"+esc(ref)+"/join-token", nil, engineapi.JoinTokenRequest{TokenTTL: ttl}, &out)
	return out, err
}

// EventFilter selects events.
type EventFilter struct {
	Host, Cluster, Kind, Object, User, Action, Code, Severity string
	Since, Until                                              time.Time
	Before                                                    int64
	Limit                                                     int
}

// Events reads a page of the audit log, newest first.
func (c *Client) Events(ctx context.Context, f EventFilter) (engineapi.EventPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"host": f.Host, "cluster": f.Cluster, "kind": f.Kind, "object": f.Object,
		"user": f.User, "action": f.Action, "code": f.Code, "severity": f.Severity} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.Before > 0 {
		q.Set("before", strconv.FormatInt(f.Before, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out engineapi.EventPage
	err := c.Do(ctx, "GET", "/events", q, nil, &out)
	return out, err
}
