package bulkconn

import (
	"errors"
	"io"
)

// Block is the size of the blocks Reader copies.
const Block = 1 << 20

// blocks is how many blocks a copy has in flight: one being read, one
// being written, one ready in between.
const blocks = 3

// Reader returns r as a reader whose WriteTo (io.Copy's way, and
// net/http's for a request body) copies it in blocks of Block bytes,
// reading the next blocks on a goroutine of its own while the last is
// written: a TLS stream on one side and another on the other are
// decrypted and encrypted on two cores at once, each in large writes.
// Its Read is r's.
func Reader(r io.Reader) io.Reader { return &reader{r: r} }

type reader struct{ r io.Reader }

func (b *reader) Read(p []byte) (int, error) { return b.r.Read(p) }

type block struct {
	b   []byte
	err error
}

// WriteTo copies the rest of the data to w (Copy).
func (b *reader) WriteTo(w io.Writer) (int64, error) { return Copy(w, b.r) }

// Copy copies r to w until r ends, in blocks of Block bytes: a goroutine
// of its own reads the next blocks (each whole, unless r ends) while the
// last is written. When w fails, that goroutine stops after the read under
// way.
func Copy(w io.Writer, r io.Reader) (int64, error) {
	free := make(chan []byte, blocks)
	for i := 0; i < blocks; i++ {
		free <- make([]byte, Block)
	}
	full := make(chan block, blocks)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			n, err := io.ReadFull(r, buf)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			select {
			case full <- block{buf[:n], err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var total int64
	for {
		blk := <-full
		if len(blk.b) > 0 {
			n, err := w.Write(blk.b)
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
		if blk.err == io.EOF {
			return total, nil
		}
		if blk.err != nil {
			return total, blk.err
		}
		free <- blk.b[:cap(blk.b)]
	}
}
