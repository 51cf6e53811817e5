package bulkconn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

// smallReads hands out its data a few bytes to a few KiB at a time, as a
// network does.
type smallReads struct {
	r   io.Reader
	rnd *rand.Rand
}

func (s *smallReads) Read(p []byte) (int, error) {
	if n := 1 + s.rnd.IntN(20000); n < len(p) {
		p = p[:n]
	}
	return s.r.Read(p)
}

// recorder keeps what is written and the size of each write.
type recorder struct {
	bytes.Buffer
	writes []int
	failAt int // fails the write that would go past this many bytes (0: never)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.failAt > 0 && w.Len()+len(p) > w.failAt {
		return 0, errors.New("disk on fire")
	}
	w.writes = append(w.writes, len(p))
	return w.Buffer.Write(p)
}

func TestCopy(t *testing.T) {
	for _, size := range []int{0, 1, Block - 1, Block, Block + 1, 3*Block + 12345} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			data := randomData(size)
			var w recorder
			n, err := Copy(&w, &smallReads{r: bytes.NewReader(data), rnd: rand.New(rand.NewPCG(1, 2))})
			if err != nil || n != int64(size) {
				t.Fatalf("Copy = %d, %v; want %d, nil", n, err, size)
			}
			if !bytes.Equal(w.Bytes(), data) {
				t.Fatal("the copy differs from the data")
			}
			// Every write is a whole block but the last.
			for i, n := range w.writes {
				if n != Block && i != len(w.writes)-1 {
					t.Fatalf("write %d of %d has %d bytes, want a whole block (%d)", i, len(w.writes), n, Block)
				}
			}
		})
	}
}

func TestCopyErrors(t *testing.T) {
	data := randomData(5 * Block)
	t.Run("reader", func(t *testing.T) {
		boom := errors.New("connection reset")
		r := io.MultiReader(bytes.NewReader(data[:2*Block+7]), iotest.ErrReader(boom))
		var w recorder
		n, err := Copy(&w, r)
		if !errors.Is(err, boom) {
			t.Fatalf("Copy error = %v, want %v", err, boom)
		}
		if n != 2*Block+7 || !bytes.Equal(w.Bytes(), data[:n]) {
			t.Fatalf("Copy wrote %d bytes before the error, want the %d read", n, 2*Block+7)
		}
	})
	t.Run("writer", func(t *testing.T) {
		w := recorder{failAt: 2 * Block}
		n, err := Copy(&w, bytes.NewReader(data))
		if err == nil || err.Error() != "disk on fire" {
			t.Fatalf("Copy error = %v, want the writer's", err)
		}
		if n != 2*Block {
			t.Fatalf("Copy = %d bytes, want %d (two blocks written)", n, 2*Block)
		}
	})
}

func TestReaderWriteTo(t *testing.T) {
	data := randomData(2*Block + 99)
	var w recorder
	n, err := io.Copy(&w, Reader(bytes.NewReader(data)))
	if err != nil || n != int64(len(data)) || !bytes.Equal(w.Bytes(), data) {
		t.Fatalf("io.Copy = %d, %v; want the %d bytes", n, err, len(data))
	}
	if diff := cmp.Diff([]int{Block, Block, 99}, w.writes); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

// TestConnReads reads a stream through a Conn with reads of every size:
// straight, then ahead in blocks, then straight again when the stream
// slows down; the bytes come out whole and in order.
func TestConnReads(t *testing.T) {
	data := randomData(3*ReadAhead + 777)
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		// Large writes, then small ones.
		a.Write(data[:2*ReadAhead])
		for rest := data[2*ReadAhead:]; len(rest) > 0; {
			n := min(len(rest), 1000)
			a.Write(rest[:n])
			rest = rest[n:]
		}
		a.Close()
	}()
	c := Wrap(b)
	rnd := rand.New(rand.NewPCG(3, 4))
	var got []byte
	sawBlock := false
	for {
		p := make([]byte, 1+rnd.IntN(40000))
		n, err := c.Read(p)
		got = append(got, p[:n]...)
		if c.rbuf != nil {
			sawBlock = true
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written (or not the same)", len(got), len(data))
	}
	if !sawBlock {
		t.Error("the stream was never read ahead")
	}
	if c.rbuf != nil {
		t.Error("the read-ahead block is held after the end")
	}
}

// TestGatheredWrites: a TLSConn's write of 1 MiB goes in a few writes of
// the raw connection, not one per 16 KiB record; a write the TLS layer
// makes on its own (the close alert) goes at once.
func TestGatheredWrites(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()

	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: raw}
	cfg.ServerName = "example.com"
	tc, err := Client(context.Background(), counted, cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := counted.writes
	data := randomData(1 << 20)
	if n, err := tc.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if w := counted.writes - before; w > 3 {
		t.Errorf("a 1 MiB write took %d writes of the connection, want at most 3 (its 64 records gathered)", w)
	}
	if err := tc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, data) {
			t.Fatalf("the server read %d bytes, not the %d written", len(b), len(data))
		}
	case <-time.After(time.Minute):
		t.Fatal("the server did not read the data and the close")
	}
}

type countingConn struct {
	net.Conn
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

// sendAndCheck sends req, whose body is data, to a countAndHash server
// and checks that the server got every byte.
func sendAndCheck(t *testing.T, client *http.Client, req *http.Request, data []byte, what string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := sha256.Sum256(data)
	if want := fmt.Sprintf("%d %s", len(data), hex.EncodeToString(s[:])); string(b) != want {
		t.Errorf("%s: the server says %q, want %q", what, b, want)
	}
}

// countAndHash answers a request with its body's length and SHA-256.
func countAndHash(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
}

// TestHTTPUpload sends request bodies of several sizes over HTTP/1.1
// through both sides (a server on a Listener, a client dialing with
// Client, the body copied by ReadFrom) on kept-alive connections, and
// checks the server got every byte.
func TestHTTPUpload(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(countAndHash))
	srv.Listener = Listener{Listener: srv.Listener}
	srv.StartTLS()
	defer srv.Close()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.ServerName = "example.com"
	var dials atomic.Int32
	tr := &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Client(ctx, raw, cfg)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for _, size := range []int{0, 10, 5*Block + 3, 1 << 20, 300} {
		data := randomData(size)
		for _, length := range []int64{int64(size), -1} {
			req, err := http.NewRequest("PUT", srv.URL, &smallReads{r: bytes.NewReader(data), rnd: rand.New(rand.NewPCG(5, 6))})
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = length
			sendAndCheck(t, client, req, data, fmt.Sprintf("%d bytes (length %d)", size, length))
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connections dialed, want 1 kept alive", n)
	}
}

// TestCloseWhileWriteBlocks: a write the peer does not read (straight, or
// a TLS write's gathered records) does not keep Close waiting; Close ends
// it with an error.
func TestCloseWhileWriteBlocks(t *testing.T) {
	for _, gathered := range []bool{false, true} {
		t.Run(fmt.Sprintf("gathered=%v", gathered), func(t *testing.T) {
			a, b := net.Pipe() // a write waits for its read
			defer a.Close()
			c := Wrap(b)
			errc := make(chan error, 1)
			go func() {
				if !gathered {
					_, err := c.Write(make([]byte, 1000))
					errc <- err
					return
				}
				c.beginGather()
				if _, err := c.Write(make([]byte, 1000)); err != nil {
					errc <- err
					return
				}
				errc <- c.endGather()
			}()
			time.Sleep(50 * time.Millisecond) // the write waits for the peer
			closed := make(chan error, 1)
			go func() { closed <- c.Close() }()
			select {
			case <-closed:
			case <-time.After(30 * time.Second):
				t.Fatal("Close waits for the blocked write")
			}
			select {
			case err := <-errc:
				if err == nil {
					t.Error("the write nobody read succeeded")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the blocked write did not end with the connection")
			}
		})
	}
}

// TestPlainHTTPUpload: over a unix socket without TLS, a request body
// goes through a PlainConn in large writes (not the net package's 32 KiB
// ones) and arrives whole, on a kept-alive connection.
func TestPlainHTTPUpload(t *testing.T) {
	path := t.TempDir() + "/s"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(countAndHash))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	var conns []*countingConn
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		raw, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		if err != nil {
			return nil, err
		}
		c := &countingConn{Conn: raw}
		conns = append(conns, c)
		return Plain(c), nil
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for _, size := range []int{0, 10, 5*Block + 3, 300} {
		data := randomData(size)
		req, err := http.NewRequest("PUT", "http://local/", &smallReads{r: bytes.NewReader(data), rnd: rand.New(rand.NewPCG(5, 6))})
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(size)
		before := 0
		if len(conns) > 0 {
			before = conns[0].writes
		}
		sendAndCheck(t, client, req, data, fmt.Sprintf("%d bytes", size))
		// The headers, then blocks of Block bytes, never 32 KiB pieces.
		if w := conns[0].writes - before; size > Block && w > size/Block+3 {
			t.Errorf("%d bytes took %d writes of the connection, want at most %d", size, w, size/Block+3)
		}
	}
	if len(conns) != 1 {
		t.Errorf("%d connections dialed, want 1 kept alive", len(conns))
	}
}
