// Package sse decodes a server-sent-events stream (the text/event-stream
// format) from the body of an HTTP/1.1 answer — chunked, or running until
// the connection closes — fed the bytes as they come off the connection,
// in pieces of any size. Nothing blocks and nothing reads: the caller owns
// the connection, which is what lets a few goroutines decode the streams
// of thousands of connections, each fed when its data has arrived.
//
// Events are given as they complete: their name and their data (the data
// lines joined by newlines), valid during the call only. A decoder keeps
// one partial line and one partial event between feeds, each bounded.
package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Handler is given each complete event: its name (the last "event" field,
// empty when none) and its data. Both are the decoder's buffers, valid
// during the call only.
type Handler func(name, data []byte)

// maxChunkLine bounds a chunk's size line (with its extensions) and a
// trailer line.
const maxChunkLine = 4096

// Decoder decodes one stream. The zero value is not usable: see
// NewDecoder.
type Decoder struct {
	chunked bool
	max     int

	// The chunked coding's state.
	chunk     chunkState
	remaining int64  // bytes of the current chunk's data not yet seen
	sizeLine  []byte // the size (or trailer) line so far

	// The event stream's state.
	line    []byte // the line so far, when a feed ended inside it
	name    []byte
	data    []byte
	hasData bool

	err error // sticky: the stream ended, or was wrong
}

type chunkState uint8

const (
	chunkSize    chunkState = iota // reading a chunk's size line
	chunkData                      // reading its data
	chunkDataEnd                   // expecting the CR LF after its data
	chunkDataLF                    // expecting the LF after that CR
	chunkTrailer                   // reading the trailer lines after the last chunk
	chunkDone                      // the body ended
)

// NewDecoder is a decoder of a body in HTTP/1.1's chunked coding (when
// chunked) or of a body that runs until the connection closes, whose lines
// and events may be up to max bytes each.
func NewDecoder(chunked bool, max int) *Decoder {
	return &Decoder{chunked: chunked, max: max}
}

// ErrEnded is what Feed returns once the body ended (its last chunk and
// trailer came): io.EOF itself, the end of the stream's reading. Nothing
// may follow.
var ErrEnded = io.EOF

// Feed decodes p, giving each event it completes to h. It returns an error
// naming what was wrong (and nothing more is decoded after it), or
// ErrEnded when the body's last chunk came; bytes after the end are an
// error.
func (d *Decoder) Feed(p []byte, h Handler) error {
	if d.err != nil {
		if d.err == ErrEnded && len(p) > 0 {
			return errors.New("sse: bytes after the end of the chunked body")
		}
		return d.err
	}
	if !d.chunked {
		d.err = d.text(p, h)
		return d.err
	}
	for len(p) > 0 && d.err == nil {
		switch d.chunk {
		case chunkSize, chunkTrailer:
			i := bytes.IndexByte(p, '\n')
			part := p
			if i >= 0 {
				part = p[:i]
			}
			if len(d.sizeLine)+len(part) > maxChunkLine {
				d.err = fmt.Errorf("sse: chunk %s line: longer than %d bytes", d.lineKind(), maxChunkLine)
				break
			}
			d.sizeLine = append(d.sizeLine, part...)
			if i < 0 {
				return nil
			}
			p = p[i+1:]
			d.err = d.chunkLine(bytes.TrimSuffix(d.sizeLine, []byte("\r")))
			d.sizeLine = d.sizeLine[:0]
		case chunkData:
			n := int64(len(p))
			if n > d.remaining {
				n = d.remaining
			}
			d.remaining -= n
			d.err = d.text(p[:n], h)
			p = p[n:]
			if d.remaining == 0 {
				d.chunk = chunkDataEnd
			}
		case chunkDataEnd, chunkDataLF:
			switch {
			case p[0] == '\r' && d.chunk == chunkDataEnd:
				d.chunk = chunkDataLF
			case p[0] == '\n':
				d.chunk = chunkSize
			default:
				d.err = fmt.Errorf("sse: chunk data: followed by %q instead of CR LF", p[0])
			}
			p = p[1:]
		case chunkDone:
			d.err = errors.New("sse: bytes after the end of the chunked body")
		}
	}
	if d.err == nil && d.chunk == chunkDone {
		d.err = ErrEnded
	}
	return d.err
}

func (d *Decoder) lineKind() string {
	if d.chunk == chunkTrailer {
		return "trailer"
	}
	return "size"
}

// chunkLine takes a complete size or trailer line.
func (d *Decoder) chunkLine(line []byte) error {
	if d.chunk == chunkTrailer {
		if len(line) == 0 {
			d.chunk = chunkDone
		}
		return nil
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // an extension: ignored
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 {
		return errors.New("sse: chunk size: empty")
	}
	var n int64
	for _, c := range line {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return fmt.Errorf("sse: chunk size %q: not hexadecimal", line)
		}
		if n > (1<<40)>>4 {
			return fmt.Errorf("sse: chunk size %q: too large", line)
		}
		n = n<<4 | int64(v)
	}
	if n == 0 {
		d.chunk = chunkTrailer
		return nil
	}
	d.remaining = n
	d.chunk = chunkData
	return nil
}

// text decodes the event stream's own bytes.
func (d *Decoder) text(p []byte, h Handler) error {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(d.line)+len(p) > d.max {
				return fmt.Errorf("sse: line: longer than %d bytes", d.max)
			}
			d.line = append(d.line, p...)
			return nil
		}
		line := p[:i]
		p = p[i+1:]
		if len(d.line)+len(line) > d.max {
			return fmt.Errorf("sse: line: longer than %d bytes", d.max)
		}
		if len(d.line) > 0 {
			d.line = append(d.line, line...)
			line = d.line
		}
		err := d.field(bytes.TrimSuffix(line, []byte("\r")), h)
		d.line = d.line[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// field takes one line: a field, a comment, or the blank line that ends an
// event.
func (d *Decoder) field(line []byte, h Handler) error {
	if len(line) == 0 {
		if d.hasData {
			h(d.name, d.data)
		}
		d.name, d.data, d.hasData = d.name[:0], d.data[:0], false
		return nil
	}
	if line[0] == ':' {
		return nil // a comment: the agents' keep-alive
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		value = bytes.TrimPrefix(value, []byte(" "))
	}
	switch string(name) {
	case "event":
		d.name = append(d.name[:0], value...)
	case "data":
		if d.hasData {
			d.data = append(d.data, '\n')
		}
		if len(d.data)+len(value) > d.max {
			return fmt.Errorf("sse: event data: longer than %d bytes", d.max)
		}
		d.data = append(d.data, value...)
		d.hasData = true
	}
	// id, retry and unknown fields: not used.
	return nil
}
