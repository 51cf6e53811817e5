package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// streamIdle is how long a host's event stream may stay silent before the
// engine gives it up as dead: the agents write at least a keep-alive
// comment every 15 seconds (and their statistics every push interval).
const streamIdle = 45 * time.Second

// streamBuffer is the size of the buffer an event stream's answer headers
// are read with (the body's bytes read with them are kept: streamConn.rest).
const streamBuffer = 1 << 10

// streamDial dials addr with TLS; wrap, when not nil, wraps the TCP
// connection under the TLS one.
type streamDial func(ctx context.Context, network, addr string, wrap func(net.Conn) net.Conn) (net.Conn, error)

// streamConn is an event stream's connection of its own once its answer's
// headers came: its body is read by the streams' readers (streamReaders),
// a turn at a time, when data came on the connection.
type streamConn struct {
	conn net.Conn  // the TLS connection
	raw  *pollConn // the TCP connection under it

	header  http.Header
	status  int
	chunked bool  // the body is in HTTP/1.1's chunked coding
	length  int64 // the body's length (-1: until the connection closes)
	rest    []byte

	idle       time.Duration
	deadlineAt time.Time // when the read deadline was last moved
	stop       func() bool
	once       sync.Once
}

// openStream sends GET path on a connection of its own (dial, HTTP/1.1)
// and returns it once the answer's headers came (within timeout). No
// goroutine of an HTTP client waits beside it and no HTTP/2 framing or
// flow control sits in between: at ten thousand hosts, each with its
// stream open for good, that is a goroutine and a connection's buffers
// fewer per host. The connection closes with Close, when ctx ends, or
// when nothing came for idle (a host gone without a reset).
func openStream(ctx context.Context, dial streamDial, addr, path string, timeout, idle time.Duration) (*streamConn, error) {
	var raw *pollConn
	dctx, cancel := context.WithTimeout(ctx, timeout)
	conn, err := dial(dctx, "tcp", addr, func(c net.Conn) net.Conn {
		raw = newPollConn(c)
		return raw
	})
	cancel()
	if err != nil {
		return nil, err
	}
	s := &streamConn{conn: conn, raw: raw, idle: idle}
	s.stop = context.AfterFunc(ctx, s.closeConn)
	if raw == nil || raw.rc == nil {
		s.Close()
		return nil, errors.New("an event stream needs a TCP connection of its own")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		s.Close()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if err := req.Write(conn); err != nil {
		s.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, streamBuffer)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		s.Close()
		if timedOut(err) {
			err = fmt.Errorf("no answer within %s: %w", timeout, err)
		}
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	s.header, s.status, s.length = resp.Header, resp.StatusCode, resp.ContentLength
	s.chunked = len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		s.rest = bytes.Clone(b)
	}
	// From here the body is read a turn at a time, never waiting.
	raw.nonblocking = true
	s.extend(time.Now())
	return s, nil
}

// read reads what the connection has now, without waiting: errWouldBlock
// when it has nothing more yet. It moves the read deadline at most once a
// second.
func (s *streamConn) read(p []byte) (int, error) {
	n, err := s.conn.Read(p)
	if n > 0 {
		if now := time.Now(); now.Sub(s.deadlineAt) >= time.Second {
			s.extend(now)
		}
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errWouldBlock) {
		err = s.cause(err)
	}
	return n, err
}

// wait waits until data came on the connection (or it closed, or it was
// silent for idle).
func (s *streamConn) wait() error {
	if err := s.raw.waitReadable(); err != nil {
		return s.cause(err)
	}
	return nil
}

func (s *streamConn) extend(now time.Time) {
	s.deadlineAt = now
	_ = s.conn.SetReadDeadline(now.Add(s.idle))
}

// cause names a read that timed out as the stream gone silent.
func (s *streamConn) cause(err error) error {
	if timedOut(err) {
		return fmt.Errorf("the agent's event stream was silent for %s: %w", s.idle, err)
	}
	return err
}

// timedOut tells whether err is a deadline's.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close closes the stream and its connection.
func (s *streamConn) Close() error {
	s.stop()
	s.closeConn()
	return nil
}

func (s *streamConn) closeConn() { s.once.Do(func() { s.conn.Close() }) }

// pollConn is the TCP connection under a stream's TLS one. Until the
// stream's headers came it reads as any connection does; then
// (nonblocking) a read takes what the socket has and returns errWouldBlock
// when it has nothing, and waitReadable waits for data without reading
// it. Waiting allocates nothing: a goroutine that allocates during a
// garbage collection must first do some of its marking (at least 64 KiB
// of it, the runtime's minimum), and ten thousand goroutines waiting on
// their hosts' streams must not be those.
type pollConn struct {
	net.Conn
	rc syscall.RawConn
	// nonblocking is set once the stream's headers came (openStream),
	// before any reader takes a turn.
	nonblocking bool

	// A read's buffer and outcome, for readFn (made once).
	p      []byte
	n      int
	err    error
	readFn func(fd uintptr) bool
	peekFn func(fd uintptr) bool
	peek   [1]byte
	// peeked tells that the wait under way looked at the socket once
	// already: a later look follows the poller's word that data came.
	peeked bool
}

func newPollConn(c net.Conn) *pollConn {
	pc := &pollConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			pc.rc = rc
		}
	}
	pc.readFn = pc.readNow
	pc.peekFn = pc.hasData
	return pc
}

// errWouldBlock is a read's when the socket has nothing yet. A temporary
// network error: crypto/tls keeps what it read of a record and returns
// it, and a later read goes on from there.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "nothing to read yet" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// Read reads: waiting for data before the stream's headers came, not
// after.
func (c *pollConn) Read(p []byte) (int, error) {
	if !c.nonblocking {
		return c.Conn.Read(p)
	}
	c.p = p
	err := c.rc.Read(c.readFn)
	n, rerr := c.n, c.err
	c.p, c.n, c.err = nil, 0, nil
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// readNow reads what the socket has, once.
func (c *pollConn) readNow(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), c.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			c.n, c.err = 0, errWouldBlock
		case err != nil:
			c.n, c.err = 0, os.NewSyscallError("read", err)
		case n == 0 && len(c.p) > 0:
			c.n, c.err = 0, io.EOF
		default:
			c.n, c.err = n, nil
		}
		return true
	}
}

// waitReadable waits until the socket has data (or an end, or an error),
// or the read deadline passed, or the connection closed.
func (c *pollConn) waitReadable() error {
	c.peeked = false
	return c.rc.Read(c.peekFn)
}

// hasData tells whether a read would not block: the first time by looking
// (data may have come before the wait began, and the poller tells only of
// what comes after), then as the poller said (it calls again only when
// it saw the socket readable). Wrong at worst once: the read finds nothing
// and the stream waits again.
func (c *pollConn) hasData(fd uintptr) bool {
	if c.peeked {
		return true
	}
	c.peeked = true
	for {
		_, _, err := syscall.Recvfrom(int(fd), c.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return err != syscall.EAGAIN
	}
}
