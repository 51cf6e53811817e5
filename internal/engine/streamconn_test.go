package engine

import (
	"bufio"
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
			fmt.Fprintf(w, "data: %d\n\n", i)
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

func testDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
	return d.DialContext(ctx, network, addr)
}

// TestOpenStreamReadsOverItsOwnHTTP1Connection: the stream's answer is
// read line by line as it comes, over HTTP/1.1 (the server offered HTTP/2
// too), with its status and headers.
func TestOpenStreamReadsOverItsOwnHTTP1Connection(t *testing.T) {
	srv, protos := streamServer(t, 3, 50*time.Millisecond)
	addr := strings.TrimPrefix(srv.URL, "https://")
	body, hdr, status, err := openStream(context.Background(), testDial, addr, "/events", 5*time.Second, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if status != http.StatusOK || hdr.Get("X-Test") != "yes" {
		t.Errorf("status %d, headers %v", status, hdr)
	}
	if p := <-protos; p != "HTTP/1.1" {
		t.Errorf("the stream came as %s, want HTTP/1.1", p)
	}
	sc := bufio.NewScanner(body)
	var got []string
	for len(got) < 3 && sc.Scan() {
		if l := sc.Text(); l != "" {
			got = append(got, l)
		}
	}
	if strings.Join(got, ",") != "data: 0,data: 1,data: 2" {
		t.Errorf("lines %q (scan error %v)", got, sc.Err())
	}
	// A missing path is an answer, not an error.
	b2, _, st2, err := openStream(context.Background(), testDial, addr, "/nothing", 5*time.Second, 5*time.Second)
	if err != nil || st2 != http.StatusNotFound {
		t.Fatalf("404: status %d, err %v", st2, err)
	}
	b2.Close()
}

// TestOpenStreamSilentIsGivenUp: a stream silent for longer than idle ends
// with an error that says so.
func TestOpenStreamSilentIsGivenUp(t *testing.T) {
	srv, _ := streamServer(t, 1, 0)
	addr := strings.TrimPrefix(srv.URL, "https://")
	body, _, _, err := openStream(context.Background(), testDial, addr, "/events", 5*time.Second, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	start := time.Now()
	sc := bufio.NewScanner(body)
	for sc.Scan() {
	}
	if err := sc.Err(); err == nil || !strings.Contains(err.Error(), "silent for 300ms") {
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
	body, _, _, err := openStream(ctx, testDial, addr, "/events", 5*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	done := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(body)
		n := 0
		for sc.Scan() {
			n++
		}
		done <- n
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case n := <-done:
		// The event and its blank line, then the end (an error or EOF,
		// whichever the closed connection gives).
		if n != 2 {
			t.Errorf("%d lines before the end, want 2", n)
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
	_, _, _, err = openStream(context.Background(), testDial, ln.Addr().String(), "/events", 500*time.Millisecond, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "no answer within 500ms") {
		t.Errorf("no answer: %v", err)
	}
}
