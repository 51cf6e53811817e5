package store

// chunked collects a query's rows in chunks while they are read, then
// copies them into one slice of exactly their number: a slice grown by
// append, which grows by a quarter at a time once large, allocates about
// five times its final size on the way (a 10,000-host list ~23 MB instead
// of ~9), all of it garbage the engine's collector then marks.
type chunked[T any] struct {
	done [][]T
	cur  []T
	n    int
}

// maxChunk bounds a chunk's rows.
const maxChunk = 1024

// next is the place of the next row (its zero value).
func (c *chunked[T]) next() *T {
	if len(c.cur) == cap(c.cur) {
		size := 16
		if c.cur != nil {
			c.done = append(c.done, c.cur)
			size = min(2*cap(c.cur), maxChunk)
		}
		c.cur = make([]T, 0, size)
	}
	var zero T
	c.cur = append(c.cur, zero)
	c.n++
	return &c.cur[len(c.cur)-1]
}

// rows are the rows collected, in order (an empty slice when none).
func (c *chunked[T]) rows() []T {
	if len(c.done) == 0 {
		if c.cur == nil {
			return []T{}
		}
		return c.cur
	}
	out := make([]T, 0, c.n)
	for _, d := range c.done {
		out = append(out, d...)
	}
	return append(out, c.cur...)
}
