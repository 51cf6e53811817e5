// Package bulkconn moves bulk data — an upload's gigabytes — over TLS
// connections with few system calls and thread switches. Go's TLS writes
// one 16 KiB record per system call and reads about one record per
// system call; on a virtual machine, where every call and every wake-up
// of a sleeping thread costs, that overhead outweighs the encryption.
// Conn sits under TLS: while data streams in it reads ahead in large
// blocks, and it sends the records of one TLS write together. Reader
// copies a stream in large blocks, reading the next block while the last
// is written.
package bulkconn

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
)

const (
	// ReadAhead is the size of the block a streaming connection reads
	// at once.
	ReadAhead = 256 << 10
	// gatherMax is how much of a TLS write's records are sent together.
	gatherMax = 1 << 20
)

var (
	readPool   = sync.Pool{New: func() any { b := make([]byte, ReadAhead); return &b }}
	gatherPool = sync.Pool{New: func() any { b := make([]byte, 0, gatherMax); return &b }}
)

// Conn is a raw connection meant to carry TLS. Its reads go straight to
// the connection until one fills the caller's buffer (more data waits:
// the connection streams); then it reads ahead in blocks of ReadAhead, as
// long as each read brings at least what the caller asked for. An idle
// connection holds no buffer. Its writes go straight to the connection,
// except during a write of the TLSConn over it, whose records are sent
// together (up to 1 MiB at a time).
type Conn struct {
	net.Conn

	// The read side: one reader at a time (TLS reads under its lock).
	rbuf      *[]byte
	r, w      int
	streaming bool

	wmu    sync.Mutex
	gather int
	wbuf   *[]byte
}

// Wrap wraps a raw connection.
func Wrap(c net.Conn) *Conn { return &Conn{Conn: c} }

// Read reads from the read-ahead block, or from the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.r < c.w {
		return c.take(p), nil
	}
	if !c.streaming || len(p) >= ReadAhead {
		n, err := c.Conn.Read(p)
		c.streaming = n == len(p) && err == nil
		return n, err
	}
	if c.rbuf == nil {
		c.rbuf = readPool.Get().(*[]byte)
	}
	n, err := c.Conn.Read(*c.rbuf)
	c.r, c.w = 0, n
	// A block that brings less than was asked: the data does not stream
	// (any more); the next reads go straight to the connection.
	c.streaming = n > len(p) && err == nil
	if n == 0 {
		c.release()
		return 0, err
	}
	// The data read comes before the error (it is the connection's next
	// read's answer, once the block is taken).
	return c.take(p), nil
}

// take copies buffered data into p, and gives the block back once it is
// taken whole.
func (c *Conn) take(p []byte) int {
	n := copy(p, (*c.rbuf)[c.r:c.w])
	c.r += n
	if c.r == c.w {
		c.release()
	}
	return n
}

func (c *Conn) release() {
	c.r, c.w = 0, 0
	if c.rbuf != nil {
		readPool.Put(c.rbuf)
		c.rbuf = nil
	}
}

// Write writes p, or gathers it while a TLS write is under way. A write
// that goes straight holds no lock while it waits for the peer.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	if c.gather == 0 || len(p) >= gatherMax {
		err := c.flushLocked()
		c.wmu.Unlock()
		if err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	defer c.wmu.Unlock()
	if c.wbuf == nil {
		c.wbuf = gatherPool.Get().(*[]byte)
	}
	if len(*c.wbuf)+len(p) > gatherMax {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	*c.wbuf = append(*c.wbuf, p...)
	return len(p), nil
}

func (c *Conn) flushLocked() error {
	if c.wbuf == nil || len(*c.wbuf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(*c.wbuf)
	*c.wbuf = (*c.wbuf)[:0]
	return err
}

// beginGather starts gathering writes (a TLS write begins).
func (c *Conn) beginGather() {
	c.wmu.Lock()
	c.gather++
	c.wmu.Unlock()
}

// endGather sends what was gathered (a TLS write ended); the buffer goes
// when nothing is gathered any more.
func (c *Conn) endGather() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.gather--
	err := c.flushLocked()
	if c.gather == 0 && c.wbuf != nil {
		gatherPool.Put(c.wbuf)
		c.wbuf = nil
	}
	return err
}

// CloseWrite half-closes the connection (tls.Conn.CloseWrite's last
// step), when it can. Nothing gathered waits: a TLS write sends its
// records before it returns.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// TLSConn is a TLS connection over a Conn: the records of each of its
// writes are sent together. It is still a *tls.Conn inside (its
// ConnectionState, NetConn and the rest).
type TLSConn struct {
	*tls.Conn
	raw *Conn
}

// Write encrypts p into records and sends them together.
func (t *TLSConn) Write(p []byte) (int, error) {
	t.raw.beginGather()
	n, err := t.Conn.Write(p)
	if ferr := t.raw.endGather(); err == nil && ferr != nil {
		err = ferr
	}
	return n, err
}

// ReadFrom copies r into the connection in large writes (Copy): what
// net/http does with a request's body.
func (t *TLSConn) ReadFrom(r io.Reader) (int64, error) { return Copy(writeOnly{t}, r) }

// writeOnly hides a writer's other methods (ReadFrom).
type writeOnly struct{ io.Writer }

// Client makes a TLS client connection over raw (wrapped in a Conn) and
// completes its handshake within ctx. On failure raw is closed.
func Client(ctx context.Context, raw net.Conn, cfg *tls.Config) (*TLSConn, error) {
	c := Wrap(raw)
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return &TLSConn{Conn: tc, raw: c}, nil
}

// Listener hands out its connections wrapped in a Conn: a TLS server over
// it reads a stream of data in large blocks (its writes, answers, go
// straight).
type Listener struct{ net.Listener }

// Accept accepts the next connection, wrapped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// PlainConn is a connection without TLS (a local unix socket) whose
// ReadFrom, what net/http does with a request's body, copies in large
// writes (Copy) instead of the 32 KiB ones of the net package's own.
type PlainConn struct{ net.Conn }

// Plain wraps a connection that carries no TLS.
func Plain(c net.Conn) *PlainConn { return &PlainConn{Conn: c} }

// ReadFrom copies r into the connection in blocks of Block bytes, the
// next read while the last is written.
func (p *PlainConn) ReadFrom(r io.Reader) (int64, error) { return Copy(writeOnly{p.Conn}, r) }
