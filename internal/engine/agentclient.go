package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/pki"
)

// maxAgentBody bounds an agent's answer.
const maxAgentBody = 16 << 20

// agentClient calls the agents' APIs over mutual TLS: it presents the
// engine's client certificate, and accepts an agent only when its
// certificate is signed by the engine CA and is the one enrolled for the
// address it answers at (the fingerprint recorded at join). The host name
// in the certificate is not checked: the pinned fingerprint is stronger,
// and a host keeps working when its address changes.
//
// A host's VM event stream (with the statistics the agent pushes on it)
// has an HTTP/1.1 connection of its own (openStream), waited on by the
// goroutine that follows it and read by the streams' few readers
// (eventStream): the one connection each host keeps open for good.
// The rest — the monitoring's polls, the VM operations, the firmware
// steps — share one HTTP/2 connection per host, opened when needed and
// closed after idleAgentConn without a request; a console's websocket
// takes an HTTP/1.1 connection of its own (agentOps.ws). Every request is
// bounded by its context (the poll timeout for the monitoring, longer for
// the operations), not by the transport; an HTTP/2 connection that stops
// answering is found by pings and closed, a stream that goes silent by
// its read deadline.
type agentClient struct {
	http    *http.Client
	tr      *http.Transport
	base    *tls.Config
	roots   *x509.CertPool
	timeout time.Duration
	// pins maps an address to the fingerprint of the certificate expected
	// there.
	pins sync.Map
	// ops calls the VM API, with longer timeouts.
	ops *agentOps
	// readers read the hosts' event streams.
	readers *streamReaders
}

// streamReaderCount is the number of goroutines that read the hosts'
// event streams (streamReaders): a push takes one some 50 µs, and ten
// thousand hosts push five thousand times a second.
const streamReaderCount = 4

// idleAgentConn is how long a host's HTTP/2 connection stays open without
// a request: long enough for an operation's requests, which come a second
// apart at most, to share it; short enough that ten thousand hosts, each
// with its event stream's connection open, do not keep a second one each
// (memory, open files) — a fleet enrolling has both only for the moments
// between the stream's start and the last poll.
const idleAgentConn = 5 * time.Second

// service is the client as the services call it.
func (c *agentClient) service() service.Agents { return &agentService{c: c, ops: c.ops} }

func newAgentClient(p *pkiFiles, timeout time.Duration) (*agentClient, error) {
	cert, err := tls.X509KeyPair(p.clientPEM, p.clientKey)
	if err != nil {
		return nil, fmt.Errorf("engine client certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	c := &agentClient{roots: roots, timeout: timeout, readers: newStreamReaders(streamReaderCount)}
	c.base = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// Verified in VerifyConnection: the chain to the engine CA and the
		// pinned fingerprint (not the name).
		InsecureSkipVerify: true,
	}
	c.tr = &http.Transport{
		DialTLSContext:    c.dialTLS,
		ForceAttemptHTTP2: true,
		MaxIdleConns:      0, // no global limit: one connection per host
		IdleConnTimeout:   idleAgentConn,
		// An agent speaking HTTP/1.1 only (an older one) gets a few.
		MaxIdleConnsPerHost: 2,
		DisableCompression:  true,
		HTTP2: &http.HTTP2Config{
			// A connection with no frame for this long is pinged, and
			// closed when the ping is not answered in time (a host that
			// vanished without a reset).
			SendPingTimeout: 20 * time.Second,
			PingTimeout:     timeout,
			// The headers of the engine's requests and of the agents'
			// answers are few and short, and rare on a connection whose
			// traffic is its event stream: no dynamic compression table
			// (32 bytes is less than any entry's size; HPACK's static table
			// and Huffman coding remain). A table of 512 bytes cost each
			// connection 3 KiB (its entries and their maps, both ways).
			MaxDecoderHeaderTableSize: 32,
			MaxEncoderHeaderTableSize: 32,
		},
	}
	c.http = &http.Client{Transport: c.tr}
	c.ops = newAgentOps(c)
	return c, nil
}

// pin records the certificate expected at an address.
func (c *agentClient) pin(addr, fingerprint string) {
	if old, ok := c.pins.Load(addr); ok && old.(string) == fingerprint {
		return
	}
	c.pins.Store(addr, fingerprint)
}

func (c *agentClient) unpin(addr string) { c.pins.Delete(addr) }

func (c *agentClient) close() {
	c.tr.CloseIdleConnections()
	c.ops.close()
	c.readers.close()
}

// dialTLS dials an agent for HTTP/2 (HTTP/1.1 when it cannot).
func (c *agentClient) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.dialAgent(ctx, network, addr, nil, "h2", "http/1.1")
}

// dialAgent dials an agent with mutual TLS, offering protos, and accepts
// it when it presents the certificate pinned for its address. Wrap, when
// not nil, wraps the TCP connection under the TLS one.
func (c *agentClient) dialAgent(ctx context.Context, network, addr string, wrap func(net.Conn) net.Conn, protos ...string) (net.Conn, error) {
	want := ""
	if v, ok := c.pins.Load(addr); ok {
		want = v.(string)
	}
	if want == "" {
		return nil, fmt.Errorf("no enrolled host has the address %s", addr)
	}
	d := net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		raw = wrap(raw)
	}
	cfg := c.base.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	cfg.NextProtos = protos
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return c.verify(cs, want) }
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// errWrongAgent is a TLS refusal of an agent's certificate.
var errWrongAgent = errors.New("wrong agent certificate")

func (c *agentClient) verify(cs tls.ConnectionState, want string) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the agent sent no certificate", errWrongAgent)
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, x := range cs.PeerCertificates[1:] {
		inter.AddCert(x)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("%w: not signed by the engine CA (was the agent enrolled with polyvirt agent join?): %v", errWrongAgent, err)
	}
	if got := pki.Fingerprint(leaf); got != want {
		return fmt.Errorf("%w: the agent's certificate (SHA-256 %.16s…) is not the one enrolled for this host (%.16s…): another agent answers at this address, or it was enrolled again", errWrongAgent, got, want)
	}
	return nil
}

// agentResponse is an agent's answer.
type agentResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends one request to the agent at addr and reads its answer.
func (c *agentClient) do(ctx context.Context, method, addr, path string, header http.Header, body io.Reader) (*agentResponse, error) {
	return c.doWith(ctx, c.http, method, addr, path, header, body)
}

// doWith is do with a client.
func (c *agentClient) doWith(ctx context.Context, hc *http.Client, method, addr, path string, header http.Header, body io.Reader) (*agentResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if len(b) > maxAgentBody {
		return nil, fmt.Errorf("the answer of %s %s is larger than %d bytes", method, path, maxAgentBody)
	}
	return &agentResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// agentError turns an agent's error answer into an error.
func agentError(path string, r *agentResponse) error {
	var eb api.ErrorBody
	if json.Unmarshal(r.Body, &eb) == nil && eb.Error.Code != "" {
		return fmt.Errorf("GET %s: %d %s: %s", path, r.Status, eb.Error.Code, eb.Error.Message)
	}
	return fmt.Errorf("GET %s: HTTP %d", path, r.Status)
}

// capabilities asks for the report; with etag, a 304 answer means it did
// not change (notModified, no body).
func (c *agentClient) capabilities(ctx context.Context, addr, etag string) (body []byte, newTag string, notModified bool, err error) {
	// On the host's HTTP/2 connection: a whole report (tens of KiB) grows
	// its read buffers, but that connection closes when idle; the one a
	// host keeps open for good is its event stream's.
	h := http.Header{}
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	r, err := c.doWith(ctx, c.http, http.MethodGet, addr, "/v1/capabilities", h, nil)
	if err != nil {
		return nil, "", false, err
	}
	switch r.Status {
	case http.StatusNotModified:
		return nil, etag, true, nil
	case http.StatusOK:
		if !json.Valid(r.Body) {
			return nil, "", false, errors.New("GET /v1/capabilities: the answer is not JSON")
		}
		return r.Body, r.Header.Get("ETag"), false, nil
	}
	return nil, "", false, agentError("/v1/capabilities", r)
}

// stats reads the agent's statistics (compacted JSON).
func (c *agentClient) stats(ctx context.Context, addr string) ([]byte, error) {
	r, err := c.do(ctx, http.MethodGet, addr, "/v1/stats", nil, nil)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, agentError("/v1/stats", r)
	}
	return compactJSON(r.Body)
}

func compactJSON(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("the answer is not JSON: %v", err)
	}
	return buf.Bytes(), nil
}
