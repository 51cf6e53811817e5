package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// streamServer is an HTTPS server (HTTP/2 offered) whose /events writes
// lines as an agent's stream does, then stays silent until the client goes.
func streamServer(t *testing.T, lines int, every time.Duration) (*httptest.Server, chan string) {
	t.Helper()
	protos := make(chan string, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		if r.URL.Path != "/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Test", "yes")
		rc := http.NewResponseController(w)
		for i := 0; i < lines; i++ {
			fmt.Fprintf(w, "event: stats\ndata: %d\n\n", i)
			if rc.Flush() != nil {
				return
			}
			time.Sleep(every)
		}
		<-r.Context().Done()
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, protos
}

// testDial dials addr with TLS (HTTP/1.1, any certificate), wrapping the
// TCP connection as the engine's dial does.
func testDial(ctx context.Context, network, addr string, wrap func(net.Conn) net.Conn) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		raw = wrap(raw)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// tcpPair is two ends of a loopback TCP connection, closed when the test
// ends.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// nextStats is the data of the stream's next statistics.
func nextStats(s *eventStream) (string, error) {
	ev, err := s.Next()
	return string(ev.Stats), err
}

// TestOpenStreamReadsOverItsOwnHTTP1Connection: the stream's answer is
// read line by line as it comes, over HTTP/1.1 (the server offered HTTP/2
// too), with its status and headers.
func TestOpenStreamReadsOverItsOwnHTTP1Connection(t *testing.T) {
	srv, protos := streamServer(t, 3, 50*time.Millisecond)
	addr := strings.TrimPrefix(srv.URL, "https://")
	c, err := openStream(context.Background(), testDial, addr, "/events", 5*time.Second, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.status != http.StatusOK || c.header.Get("X-Test") != "yes" || !c.chunked || c.length != -1 {
		t.Errorf("status %d, headers %v, chunked %v, length %d", c.status, c.header, c.chunked, c.length)
	}
	if p := <-protos; p != "HTTP/1.1" {
		t.Errorf("the stream came as %s, want HTTP/1.1", p)
	}
	s := newEventStream(c, testReaders(t, 1), nil)
	var got []string
	for len(got) < 3 {
		d, err := nextStats(s)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, d)
	}
	if strings.Join(got, ",") != "0,1,2" {
		t.Errorf("statistics %q", got)
	}
	// A missing path is an answer, not an error.
	c2, err := openStream(context.Background(), testDial, addr, "/nothing", 5*time.Second, 5*time.Second)
	if err != nil || c2.status != http.StatusNotFound {
		t.Fatalf("404: %v", err)
	}
	c2.Close()
}

// TestOpenStreamSilentIsGivenUp: a stream silent for longer than idle ends
// with an error that says so.
func TestOpenStreamSilentIsGivenUp(t *testing.T) {
	srv, _ := streamServer(t, 1, 0)
	addr := strings.TrimPrefix(srv.URL, "https://")
	c, err := openStream(context.Background(), testDial, addr, "/events", 5*time.Second, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s := newEventStream(c, testReaders(t, 1), nil)
	defer s.Close()
	start := time.Now()
	if d, err := nextStats(s); d != "0" || err != nil {
		t.Fatalf("the first statistics: %q, %v", d, err)
	}
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), "silent for 300ms") {
		t.Errorf("end of a silent stream: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a stream silent for 300ms was given up after %s", d)
	}
}

// TestOpenStreamEndsWithItsContext: the caller's context ending closes the
// connection, and a read waiting on it returns.
func TestOpenStreamEndsWithItsContext(t *testing.T) {
	srv, _ := streamServer(t, 1, 0)
	addr := strings.TrimPrefix(srv.URL, "https://")
	ctx, cancel := context.WithCancel(context.Background())
	c, err := openStream(ctx, testDial, addr, "/events", 5*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s := newEventStream(c, testReaders(t, 1), nil)
	defer s.Close()
	done := make(chan int, 1)
	go func() {
		n := 0
		for {
			if _, err := s.Next(); err != nil {
				break
			}
			n++
		}
		done <- n
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case n := <-done:
		// The event, then the end (an error or EOF, whichever the
		// closed connection gives).
		if n != 1 {
			t.Errorf("%d events before the end, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not end with the context")
	}
}

// TestOpenStreamNoAnswer: an address where nothing answers the request
// fails within the timeout, saying so.
func TestOpenStreamNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A server's TLS configuration (its certificate) to answer with.
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// TLS, then nothing.
			go func() {
				defer c.Close()
				_ = tls.Server(c, srv.TLS).Handshake()
				time.Sleep(3 * time.Second)
			}()
		}
	}()
	_, err = openStream(context.Background(), testDial, ln.Addr().String(), "/events", 500*time.Millisecond, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "no answer within 500ms") {
		t.Errorf("no answer: %v", err)
	}
}
