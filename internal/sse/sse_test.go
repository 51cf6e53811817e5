package sse

import (
	"bytes"
	"errors"
	"fmt"
	"net/http/httputil"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type event struct{ Name, Data string }

// decode feeds b to a new decoder in pieces of at most step bytes (all at
// once when step is 0) and returns the events and the first error.
func decode(chunked bool, max int, b []byte, step int) ([]event, error) {
	d := NewDecoder(chunked, max)
	var got []event
	h := func(name, data []byte) { got = append(got, event{string(name), string(data)}) }
	if step == 0 {
		step = len(b) + 1
	}
	for len(b) > 0 {
		n := min(step, len(b))
		if err := d.Feed(b[:n], h); err != nil && !(errors.Is(err, ErrEnded) && n < len(b)) {
			return got, err
		}
		b = b[n:]
	}
	return got, nil
}

// chunk is s in HTTP/1.1's chunked coding, in pieces of n bytes, with the
// last chunk.
func chunk(s string, n int) []byte {
	var buf bytes.Buffer
	w := httputil.NewChunkedWriter(&buf)
	for len(s) > 0 {
		k := min(n, len(s))
		fmt.Fprint(w, s[:k])
		s = s[k:]
	}
	w.Close()
	buf.WriteString("\r\n") // the trailer section's end
	return buf.Bytes()
}

const agentStream = "event: stats\ndata: {\"cpu\":\ndata: 1}\n\n" +
	": keep-alive\n\n" +
	"event: vm\r\ndata: {\"event\":\"started\",\"vm\":\"v1\"}\r\n\r\n" +
	"data: no name\n\n" +
	"event: ignored without data\n\n" +
	"data\n\n" +
	"id: 7\nretry: 10\nevent: stats\ndata:{\"cpu\":2}\n\n"

var agentEvents = []event{
	{"stats", "{\"cpu\":\n1}"},
	{"vm", `{"event":"started","vm":"v1"}`},
	{"", "no name"},
	{"", ""},
	{"stats", `{"cpu":2}`},
}

// TestDecoderEvents: the events of a stream, whatever the pieces it comes
// in, chunked in any sizes or not chunked: names, data lines joined,
// comments and other fields skipped, CR LF or LF.
func TestDecoderEvents(t *testing.T) {
	for _, chunkSize := range []int{1, 3, 17, 1000} {
		body := chunk(agentStream, chunkSize)
		for _, step := range []int{0, 1, 2, 5, 64} {
			got, err := decode(true, 1<<20, body, step)
			if !errors.Is(err, ErrEnded) {
				t.Errorf("chunks of %d, fed %d at a time: %v, want the end", chunkSize, step, err)
			}
			if diff := cmp.Diff(agentEvents, got); diff != "" {
				t.Errorf("chunks of %d, fed %d at a time (-want +got):\n%s", chunkSize, step, diff)
			}
		}
	}
	for _, step := range []int{0, 1, 7} {
		got, err := decode(false, 1<<20, []byte(agentStream), step)
		if err != nil {
			t.Errorf("not chunked, fed %d at a time: %v", step, err)
		}
		if diff := cmp.Diff(agentEvents, got); diff != "" {
			t.Errorf("not chunked, fed %d at a time (-want +got):\n%s", step, diff)
		}
	}
}

// TestDecoderChunkSyntax: chunk extensions and trailers are accepted; what
// is wrong is named, and nothing is decoded after it.
func TestDecoderChunkSyntax(t *testing.T) {
	ok := "5;ext=1\r\ndata:\r\n3\r\n x\n\r\n1\n\n\n0\r\nTrailer: yes\r\n\r\n"
	got, err := decode(true, 1<<20, []byte(ok), 1)
	if !errors.Is(err, ErrEnded) || len(got) != 1 || got[0].Data != "x" {
		t.Errorf("extensions and trailers: %v, %v", got, err)
	}
	for _, c := range []struct{ in, want string }{
		{"zz\r\ndata: a\n\n", `sse: chunk size "zz": not hexadecimal`},
		{"\r\n", "sse: chunk size: empty"},
		{"3\r\nabcXY", `sse: chunk data: followed by 'X' instead of CR LF`},
		{"fffffffffffffff\r\n", "too large"},
		{strings.Repeat("1", maxChunkLine+1), "sse: chunk size line: longer than 4096 bytes"},
		{"0\r\n" + strings.Repeat("x", maxChunkLine+1), "sse: chunk trailer line: longer than 4096 bytes"},
		{"0\r\n\r\nmore", "sse: bytes after the end of the chunked body"},
	} {
		_, err := decode(true, 1<<20, []byte(c.in), 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
		// Fed byte by byte: the same error.
		_, err2 := decode(true, 1<<20, []byte(c.in), 1)
		if err2 == nil || err2.Error() != err.Error() {
			t.Errorf("%q fed byte by byte: %v, want %v", c.in, err2, err)
		}
	}
}

// TestDecoderBounds: a line or an event's data longer than the bound is an
// error, whichever way it came; up to it is not.
func TestDecoderBounds(t *testing.T) {
	long := "data: " + strings.Repeat("x", 100) + "\n\n"
	if _, err := decode(false, 106, []byte(long), 0); err != nil {
		t.Errorf("a line of 106 bytes with a bound of 106: %v", err)
	}
	for _, step := range []int{0, 1, 10} {
		_, err := decode(false, 105, []byte(long), step)
		if err == nil || err.Error() != "sse: line: longer than 105 bytes" {
			t.Errorf("a line of 106 bytes with a bound of 105, fed %d at a time: %v", step, err)
		}
	}
	many := strings.Repeat("data: "+strings.Repeat("y", 40)+"\n", 10) + "\n"
	_, err := decode(false, 300, []byte(many), 7)
	if err == nil || err.Error() != "sse: event data: longer than 300 bytes" {
		t.Errorf("an event of 409 bytes with a bound of 300: %v", err)
	}
}

// TestDecoderKeepsNoAllocation: once its buffers grew, decoding the next
// event of the same size allocates nothing.
func TestDecoderKeepsNoAllocation(t *testing.T) {
	d := NewDecoder(true, 1<<20)
	ev := chunk("event: stats\ndata: {\"cpu\":1,\"vms\":[]}\n\n", 1000)
	ev = ev[:len(ev)-len("0\r\n\r\n")] // no last chunk: the stream goes on
	n := 0
	h := func(name, data []byte) { n++ }
	if err := d.Feed(ev, h); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Feed(ev[:10], h); err != nil {
			t.Fatal(err)
		}
		if err := d.Feed(ev[10:], h); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || n != 102 {
		t.Errorf("%v allocations per event, %d events", allocs, n)
	}
}

// FuzzDecoder: any bytes, in any pieces, end in events or an error that
// says "sse:", never a panic; fed whole or byte by byte, the same events
// and the same error; what httputil's chunked writer encodes decodes to
// what the unchunked stream gives.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte(agentStream), uint8(3))
	f.Add(chunk(agentStream, 5), uint8(1))
	f.Add([]byte("5\r\ndata:\r\n0\r\n\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		for _, chunked := range []bool{true, false} {
			whole, errWhole := decode(chunked, 64, b, 0)
			pieces, errPieces := decode(chunked, 64, b, int(step%16)+1)
			if diff := cmp.Diff(whole, pieces); diff != "" {
				t.Fatalf("chunked %v: whole and in pieces differ (-whole +pieces):\n%s", chunked, diff)
			}
			if (errWhole == nil) != (errPieces == nil) || errWhole != nil && errWhole.Error() != errPieces.Error() {
				t.Fatalf("chunked %v: %v whole, %v in pieces", chunked, errWhole, errPieces)
			}
			if errWhole != nil && !errors.Is(errWhole, ErrEnded) && !strings.HasPrefix(errWhole.Error(), "sse: ") {
				t.Fatalf("an error that does not say where: %v", errWhole)
			}
		}
		plain, errPlain := decode(false, 64, b, 0)
		if errPlain != nil {
			return
		}
		chunkedEvents, err := decode(true, 64, chunk(string(b), int(step%16)+1), 0)
		if !errors.Is(err, ErrEnded) {
			t.Fatalf("the chunked coding of %q: %v", b, err)
		}
		if diff := cmp.Diff(plain, chunkedEvents); diff != "" {
			t.Fatalf("chunked and not differ (-plain +chunked):\n%s", diff)
		}
	})
}
