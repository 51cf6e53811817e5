package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// streamIdle is how long a host's event stream may stay silent before the
// engine gives it up as dead: the agents write at least a keep-alive
// comment every 15 seconds (and their statistics every push interval).
const streamIdle = 45 * time.Second

// streamBuffer is the size of a stream's read buffer: the answer's
// headers, then the chunks of small events.
const streamBuffer = 1 << 10

// openStream sends GET path on a connection of its own (dial, HTTP/1.1) and
// returns the answer's body, headers and status once the headers came
// (within timeout). The body is read by its caller's goroutine straight
// from the connection: no goroutine of the HTTP client waits beside it,
// and no HTTP/2 framing or flow control sits in between — at ten thousand
// hosts, each with its stream open for good, that is a goroutine and a
// connection's buffers fewer per host, and one wake-up per event instead
// of two. The connection closes with the body, when ctx ends, or when
// nothing came for idle (a host gone without a reset).
func openStream(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	addr, path string, timeout, idle time.Duration) (io.ReadCloser, http.Header, int, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	conn, err := dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, nil, 0, err
	}
	s := &streamConn{conn: conn, idle: idle}
	s.stop = context.AfterFunc(ctx, s.closeConn)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		s.Close()
		return nil, nil, 0, err
	}
	req.Header.Set("Accept", "text/event-stream")
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if err := req.Write(conn); err != nil {
		s.Close()
		return nil, nil, 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, streamBuffer), req)
	if err != nil {
		s.Close()
		if timedOut(err) {
			err = fmt.Errorf("no answer within %s: %w", timeout, err)
		}
		return nil, nil, 0, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	s.body = resp.Body
	s.extend(time.Now())
	return s, resp.Header, resp.StatusCode, nil
}

// streamConn is an event stream's body over its own connection.
type streamConn struct {
	conn net.Conn
	body io.ReadCloser
	idle time.Duration
	stop func() bool
	// deadlineAt is when the read deadline was last moved (by the reading
	// goroutine only).
	deadlineAt time.Time

	once sync.Once
}

// Read reads the body, moving the read deadline at most once a second.
func (s *streamConn) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(s.deadlineAt) >= time.Second {
		s.extend(now)
	}
	n, err := s.body.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = s.cause(err)
	}
	return n, err
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
