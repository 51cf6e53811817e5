package store

import (
	"fmt"
	"testing"
)

// TestChunked: the rows come back in order, in a slice of exactly their
// number, whatever their number (chunk boundaries included).
func TestChunked(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 48, 1023, 1024, 1025, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var c chunked[int]
			for i := 0; i < n; i++ {
				*c.next() = i
			}
			got := c.rows()
			if got == nil || len(got) != n || (n > 16 && cap(got) != n) {
				t.Fatalf("%d rows: len %d cap %d (nil %v)", n, len(got), cap(got), got == nil)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("row %d is %d", i, v)
				}
			}
		})
	}
}

// BenchmarkChunked10000: ten thousand hosts' rows collected (B/op: what
// the collector sees of a host list read).
func BenchmarkChunked10000(b *testing.B) {
	for b.Loop() {
		var c chunked[Host]
		for i := 0; i < 10000; i++ {
			c.next().Version = int64(i)
		}
		if len(c.rows()) != 10000 {
			b.Fatal("rows lost")
		}
	}
}

// BenchmarkAppend10000 is BenchmarkChunked10000 with append, for the
// comparison.
func BenchmarkAppend10000(b *testing.B) {
	for b.Loop() {
		out := []Host{}
		for i := 0; i < 10000; i++ {
			var h Host
			h.Version = int64(i)
			out = append(out, h)
		}
		if len(out) != 10000 {
			b.Fatal("rows lost")
		}
	}
}
