package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/sse"
	"polyvirt/internal/store"
)

// maxEvent bounds an event of a host's stream (a line, and an event's
// data): statistics of many VMs fit.
const maxEvent = 1 << 20

// turnBytes bounds what one turn of a stream's reader reads, so that a
// stream that never pauses does not keep a reader from the others.
const turnBytes = 64 << 10

// events subscribes to a host's VM events (server-sent events), with its
// statistics every stats (when not 0 and the agent can), which go to
// pushed (when not nil: see eventStream). The stream has an HTTP/1.1
// connection of its own (streamConn); the other requests to the host
// share its HTTP/2 connection, which closes when they stop.
func (o *agentOps) events(ctx context.Context, h store.Host, stats time.Duration, pushed func([]byte)) (*eventStream, error) {
	addr, err := o.target(h)
	if err != nil {
		return nil, err
	}
	path := "/v1/events"
	if stats >= agentapi.MinStatsPush && stats <= agentapi.MaxStatsPush {
		path += "?stats=" + url.QueryEscape(stats.String())
	}
	dial := func(ctx context.Context, network, addr string, wrap func(net.Conn) net.Conn) (net.Conn, error) {
		return o.c.dialAgent(ctx, network, addr, wrap, "http/1.1")
	}
	c, err := openStream(ctx, dial, addr, path, o.c.timeout, streamIdle)
	if err != nil {
		return nil, &service.AgentError{Host: h.Name, Msg: shortError(err)}
	}
	switch {
	case c.status == http.StatusNotFound:
		c.Close()
		return nil, service.ErrNoEvents
	case c.status != http.StatusOK:
		c.Close()
		return nil, &service.AgentError{Host: h.Name, Status: c.status, Code: fmt.Sprintf("HTTP_%d", c.status), Msg: "GET /v1/events"}
	case !c.chunked && c.length >= 0:
		c.Close()
		return nil, &service.AgentError{Host: h.Name, Msg: "GET /v1/events: an answer of a fixed length, not a stream"}
	}
	return newEventStream(c, o.c.readers, pushed), nil
}

// eventStream is a host's VM event stream. Its goroutine (the caller of
// Next) only waits: for data on the connection, then for one of the
// streams' readers (streamReaders) to take a turn at it — read what came,
// decode it, give the statistics the agent pushed to pushed and keep the
// VM events for Next. A few readers decode the streams of ten thousand
// hosts, and the hosts' goroutines allocate nothing while they wait or
// hand over: a goroutine that allocates during a garbage collection must
// first do some of its marking (64 KiB at least), and ten thousand of
// them doing it for each push's few bytes held the collection's CPU and
// the API's requests behind it.
type eventStream struct {
	c       *streamConn
	dec     *sse.Decoder
	readers *streamReaders
	pushed  func([]byte)
	onEvent sse.Handler // s.event, made once

	pending []agentapi.Event
	err     error
	// waiting tells that the last turn read all the connection had: the
	// next waits for more.
	waiting bool
	done    chan struct{}
}

func newEventStream(c *streamConn, readers *streamReaders, pushed func([]byte)) *eventStream {
	s := &eventStream{c: c, dec: sse.NewDecoder(c.chunked, maxEvent), readers: readers, pushed: pushed,
		done: make(chan struct{}, 1)}
	s.onEvent = s.event
	return s
}

// PushesStats tells whether the agent pushes its statistics on the
// stream.
func (s *eventStream) PushesStats() bool { return s.c.header.Get(agentapi.StatsHeader) != "" }

// Next returns the next VM event — or, when the stream has no pushed
// function, the statistics the agent pushed (an event agentapi.EventStats
// whose Stats is the data as it came, when it is JSON); io.EOF when the
// stream ended. Events that cannot be read are skipped.
func (s *eventStream) Next() (agentapi.Event, error) {
	for {
		if len(s.pending) > 0 {
			ev := s.pending[0]
			s.pending[0] = agentapi.Event{}
			s.pending = s.pending[1:]
			if len(s.pending) == 0 {
				s.pending = nil
			}
			return ev, nil
		}
		if s.err != nil {
			return agentapi.Event{}, s.err
		}
		if s.waiting {
			if err := s.c.wait(); err != nil {
				s.err = err
				continue
			}
		}
		if !s.readers.take(s) {
			s.err = errors.New("the engine is stopping")
		}
	}
}

// turn reads what the connection has (up to turnBytes) and decodes it, on
// a reader's goroutine with its buffer.
func (s *eventStream) turn(buf []byte) {
	if s.c.rest != nil {
		rest := s.c.rest
		s.c.rest = nil
		if s.feed(rest) {
			return
		}
	}
	for read := 0; read < turnBytes; {
		n, err := s.c.read(buf)
		read += n
		if n > 0 && s.feed(buf[:n]) {
			return
		}
		switch {
		case errors.Is(err, errWouldBlock):
			s.waiting = true
			return
		case err != nil:
			s.err = err
			return
		}
	}
	s.waiting = false
}

// feed decodes b, telling whether the stream ended (its error then
// io.EOF, sse.ErrEnded, when the body's last chunk came).
func (s *eventStream) feed(b []byte) bool {
	if err := s.dec.Feed(b, s.onEvent); err != nil {
		s.err = err
		return true
	}
	return false
}

// event takes a decoded event.
func (s *eventStream) event(name, data []byte) {
	if string(bytes.TrimSpace(name)) == agentapi.EventStats {
		// Kept as the host's statistics, written in a batch with every
		// other host's: a document that is not JSON would fail them all.
		// Skipped, as a malformed event is.
		if !json.Valid(data) {
			return
		}
		b := bytes.Clone(data)
		if s.pushed != nil {
			s.pushed(b)
			return
		}
		s.pending = append(s.pending, agentapi.Event{Event: agentapi.EventStats, Stats: b})
		return
	}
	var ev agentapi.Event
	if json.Unmarshal(data, &ev) == nil {
		s.pending = append(s.pending, ev)
	}
}

// Close ends the stream.
func (s *eventStream) Close() { s.c.Close() }

// streamReaders are the few goroutines that read and decode the hosts'
// event streams, a turn each when data came (eventStream).
type streamReaders struct {
	work chan *eventStream
	quit chan struct{}
	once sync.Once
}

// streamReaderBuffer is a reader's buffer: a TLS record's most.
const streamReaderBuffer = 16 << 10

func newStreamReaders(n int) *streamReaders {
	r := &streamReaders{work: make(chan *eventStream), quit: make(chan struct{})}
	for range max(n, 1) {
		go r.run()
	}
	return r
}

func (r *streamReaders) run() {
	buf := make([]byte, streamReaderBuffer)
	for {
		select {
		case s := <-r.work:
			s.turn(buf)
			s.done <- struct{}{}
		case <-r.quit:
			return
		}
	}
}

// take has a reader take a turn at s and waits for it; false when the
// readers stopped.
func (r *streamReaders) take(s *eventStream) bool {
	select {
	case r.work <- s:
		<-s.done
		return true
	case <-r.quit:
		return false
	}
}

// close stops the readers (after the turns under way).
func (r *streamReaders) close() { r.once.Do(func() { close(r.quit) }) }
