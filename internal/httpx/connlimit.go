package httpx

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/api"
)

// ConnLimits bound the connections a server holds at once. Zero leaves a
// bound out.
type ConnLimits struct {
	// Total bounds the connections of all clients together; a connection
	// over it is refused with SERVER_OVERLOADED (503).
	Total int
	// PerClient bounds the connections of one client address; a
	// connection over it is refused with TOO_MANY_CONNECTIONS (429).
	PerClient int
}

// Default connection limits of the engine's API: room for every
// reasonable client (a browser opens about six connections, the CLI one),
// and for a thousand at once, at about 50 KiB of memory each.
const (
	DefaultMaxConns          = 1024
	DefaultMaxConnsPerClient = 128
)

// The refusal of a connection over a limit: how many are answered at once,
// how many more wait for their answer (beyond them, a connection is closed
// without one), and how long one may take from its arrival.
const (
	refusers       = 8
	refusalBacklog = 2048
	refusalTimeout = 5 * time.Second
	// staleNew is how long a connection may stay without a first request
	// (its TLS handshake included) before a new connection may take its
	// place when a limit is reached.
	staleNew = 2 * time.Second
)

// ConnStats count what a Limiter did.
type ConnStats struct {
	// Open is the connections held now.
	Open int `json:"open"`
	// RefusedPerClient and RefusedTotal are the connections refused over
	// each limit (answered, or closed when too many refusals were under
	// way: Dropped of them).
	RefusedPerClient int64 `json:"refusedPerClient"`
	RefusedTotal     int64 `json:"refusedTotal"`
	Dropped          int64 `json:"dropped"`
	// Evicted is the idle (or silent) connections closed to make room.
	Evicted int64 `json:"evicted"`
}

// Limiter is a net.Listener that bounds the connections it hands out, per
// client address and in total, before anything is read from them (a TLS
// handshake included: it wraps the raw listener, under TLS). When a limit
// is reached, a kept-alive connection that is idle (or one that sent no
// request within a couple of seconds) makes room; when none does, the new
// connection is refused with an HTTP answer carrying the code
// (TOO_MANY_CONNECTIONS or SERVER_OVERLOADED, and Retry-After) by a few
// workers, within a few seconds of its arrival; past a backlog of
// refusals waiting for them, a connection is closed at once.
//
// The server that uses it reports its connections' states to ConnState
// (http.Server.ConnState), so that the Limiter knows the idle ones.
type Limiter struct {
	net.Listener
	lim ConnLimits
	tls *tls.Config
	// OnRefuse, when set, hears of every refusal (for a rate-limited log).
	OnRefuse func(client, code string)

	mu      sync.Mutex
	total   int
	clients map[string]*connClient
	// waiting are the connections not known active: idle kept-alive ones
	// and new ones, with since when.
	waiting map[*limitedConn]struct{}

	refusals         chan refusalJob
	done             chan struct{}
	startRefusers    sync.Once
	closeOnce        sync.Once
	refusedPerClient atomic.Int64
	refusedTotal     atomic.Int64
	dropped          atomic.Int64
	evicted          atomic.Int64
}

type connClient struct {
	n     int
	conns map[*limitedConn]struct{}
}

// NewLimiter wraps ln. tlsConfig, when set, is the server's TLS
// configuration: refusals are answered over TLS with it (HTTP/1.1).
func NewLimiter(ln net.Listener, lim ConnLimits, tlsConfig *tls.Config) *Limiter {
	l := &Limiter{Listener: ln, lim: lim, clients: map[string]*connClient{}, waiting: map[*limitedConn]struct{}{},
		refusals: make(chan refusalJob, refusalBacklog), done: make(chan struct{})}
	if tlsConfig != nil {
		l.tls = tlsConfig.Clone()
		l.tls.NextProtos = []string{"http/1.1"}
	}
	return l
}

// Close stops listening and ends the refusals under way.
func (l *Limiter) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Accept hands out the next connection within the limits; the ones over
// them are refused meanwhile.
func (l *Limiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientOf(c.RemoteAddr())
		lc, code, n, victims := l.admit(c, ip)
		for _, v := range victims {
			l.evicted.Add(1)
			_ = v.Conn.Close()
		}
		if lc != nil {
			return lc, nil
		}
		l.refuse(c, ip, code, n)
	}
}

// admit takes c into the counts, making room by evicting waiting
// connections, or says which limit refuses it (and the count at it).
func (l *Limiter) admit(c net.Conn, ip string) (lc *limitedConn, code string, n int, victims []*limitedConn) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	cl := l.clients[ip]
	if cl == nil {
		cl = &connClient{conns: map[*limitedConn]struct{}{}}
	}
	if l.lim.PerClient > 0 && cl.n >= l.lim.PerClient {
		v := oldestWaiting(cl.conns, l.waiting, now, nil)
		if v == nil {
			return nil, api.CodeTooManyRequests, cl.n, nil
		}
		victims = append(victims, v)
	}
	if l.lim.Total > 0 && l.total-len(victims) >= l.lim.Total {
		var skip *limitedConn
		if len(victims) > 0 {
			skip = victims[0]
		}
		v := oldestWaiting(l.waiting, l.waiting, now, skip)
		if v == nil {
			return nil, api.CodeOverloaded, l.total, nil
		}
		victims = append(victims, v)
	}
	for _, v := range victims {
		// (A victim whose Close is under way frees its place itself.)
		if v.released.CompareAndSwap(false, true) {
			l.releaseLocked(v)
		}
	}
	lc = &limitedConn{Conn: c, l: l, client: ip, since: now}
	cl.n++
	cl.conns[lc] = struct{}{}
	l.clients[ip] = cl
	l.total++
	l.waiting[lc] = struct{}{}
	return lc, "", 0, victims
}

// oldestWaiting is the connection of set that has waited longest among
// those that may make room: idle ones first, then new ones silent for
// staleNew.
func oldestWaiting(set, waiting map[*limitedConn]struct{}, now time.Time, skip *limitedConn) *limitedConn {
	var idle, stale *limitedConn
	for c := range set {
		if c == skip {
			continue
		}
		if _, ok := waiting[c]; !ok {
			continue
		}
		switch {
		case c.idle:
			if idle == nil || c.since.Before(idle.since) {
				idle = c
			}
		case now.Sub(c.since) >= staleNew:
			if stale == nil || c.since.Before(stale.since) {
				stale = c
			}
		}
	}
	if idle != nil {
		return idle
	}
	return stale
}

func (l *Limiter) releaseLocked(c *limitedConn) {
	delete(l.waiting, c)
	if cl := l.clients[c.client]; cl != nil {
		delete(cl.conns, c)
		cl.n--
		if cl.n <= 0 {
			delete(l.clients, c.client)
		}
	}
	l.total--
}

// ConnState follows the server's connections (http.Server.ConnState): an
// idle kept-alive connection may make room for a new one, an active or
// hijacked one (a console) may not.
func (l *Limiter) ConnState(c net.Conn, s http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.released.Load() {
		return
	}
	switch s {
	case http.StateIdle:
		lc.idle, lc.since = true, time.Now()
		l.waiting[lc] = struct{}{}
	case http.StateActive, http.StateHijacked, http.StateClosed:
		lc.idle = false
		delete(l.waiting, lc)
	}
}

// Stats counts the connections held and refused.
func (l *Limiter) Stats() ConnStats {
	l.mu.Lock()
	open := l.total
	l.mu.Unlock()
	return ConnStats{Open: open, RefusedPerClient: l.refusedPerClient.Load(), RefusedTotal: l.refusedTotal.Load(),
		Dropped: l.dropped.Load(), Evicted: l.evicted.Load()}
}

// refusalJob is a connection waiting for its refusal.
type refusalJob struct {
	c        net.Conn
	e        *api.Error
	deadline time.Time
}

// refuse hands a connection over a limit to the refusal workers, or closes
// it at once when too many wait already.
func (l *Limiter) refuse(c net.Conn, ip, code string, n int) {
	if code == api.CodeTooManyRequests {
		l.refusedPerClient.Add(1)
	} else {
		l.refusedTotal.Add(1)
	}
	if l.OnRefuse != nil {
		l.OnRefuse(ip, code)
	}
	l.startRefusers.Do(func() {
		for i := 0; i < refusers; i++ {
			go l.refuser()
		}
	})
	select {
	case l.refusals <- refusalJob{c: c, e: refusal(ip, code, n), deadline: time.Now().Add(refusalTimeout)}:
	default:
		l.dropped.Add(1)
		_ = c.Close()
	}
}

// refuser answers the refused connections until the Limiter is closed.
func (l *Limiter) refuser() {
	for {
		select {
		case <-l.done:
			for {
				select {
				case j := <-l.refusals:
					_ = j.c.Close()
				default:
					return
				}
			}
		case j := <-l.refusals:
			if time.Now().After(j.deadline) {
				l.dropped.Add(1)
				_ = j.c.Close()
				continue
			}
			// A client that says nothing holds a worker two seconds at most.
			deadline := j.deadline
			if d := time.Now().Add(2 * time.Second); d.Before(deadline) {
				deadline = d
			}
			l.answer(j.c, j.e, deadline)
		}
	}
}

// refusal is the error a refused connection is answered with.
func refusal(ip, code string, n int) *api.Error {
	if code == api.CodeTooManyRequests {
		return &api.Error{Code: code, Message: fmt.Sprintf("client %s holds %d connections to the API, as many as one client may: "+
			"reuse or close them, or retry when one is done", ip, n)}
	}
	return &api.Error{Code: code, Message: fmt.Sprintf("the API holds %d connections, as many as it may: retry in a moment", n)}
}

// answer reads the request of a refused connection (its TLS handshake
// first) and answers it with e, then closes the connection, all before
// deadline.
func (l *Limiter) answer(c net.Conn, e *api.Error, deadline time.Time) {
	defer c.Close()
	_ = c.SetDeadline(deadline)
	rw := c
	if l.tls != nil {
		tc := tls.Server(c, l.tls)
		if err := tc.Handshake(); err != nil {
			return
		}
		rw = tc
	}
	br := bufio.NewReader(rw)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.ContentLength > 0 && req.ContentLength <= DefaultMaxBody {
		_, _ = io.Copy(io.Discard, req.Body)
	}
	body, _ := json.Marshal(e.Body())
	body = append(body, '\n')
	resp := &http.Response{StatusCode: api.StatusOf(e), ProtoMajor: 1, ProtoMinor: 1, Close: true,
		Header: http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}},
		Body:   io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req}
	if err := resp.Write(rw); err != nil {
		return
	}
	// A lingering close: the client reads the answer before the
	// connection goes (a close with unread input would reset it).
	if cw, ok := rw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if linger := time.Now().Add(500 * time.Millisecond); linger.Before(deadline) {
		_ = c.SetReadDeadline(linger)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(rw, 64<<10))
}

// limitedConn is a connection counted by its Limiter until it is closed.
type limitedConn struct {
	net.Conn
	l        *Limiter
	client   string
	released atomic.Bool
	// idle and since (guarded by l.mu): whether the server waits for its
	// next request, and since when it waits (its first request included).
	idle  bool
	since time.Time
}

// Close closes the connection and frees its place.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.l.mu.Lock()
		c.l.releaseLocked(c)
		c.l.mu.Unlock()
	}
	return err
}

// CloseWrite half-closes a TCP connection (tls.Conn.CloseWrite uses it).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// clientOf is the client address of a connection: its IP without port.
func clientOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
