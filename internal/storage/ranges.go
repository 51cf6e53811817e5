package storage

import (
	"fmt"
	"strconv"
	"strings"

	"polyvirt/internal/api/agentapi"
)

// UploadOffsetHeader carries where an upload's data starts (a request) or
// where the upload stands (an answer).
const UploadOffsetHeader = agentapi.UploadOffsetHeader

// ParseOffset reads an Upload-Offset header: a decimal byte offset, 0 to
// MaxUploadSize.
func ParseOffset(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 19 {
		return 0, fmt.Errorf("%s %q: want a byte offset (a decimal number)", UploadOffsetHeader, clipString(s))
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s %q: want a byte offset (a decimal number)", UploadOffsetHeader, clipString(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxUploadSize {
		return 0, fmt.Errorf("%s %q: at most %d", UploadOffsetHeader, clipString(s), int64(MaxUploadSize))
	}
	return n, nil
}

// ParseContentRange reads a request's Content-Range, "bytes FIRST-LAST/SIZE"
// (or "bytes */SIZE" for no data): where the data starts and ends, and the
// whole upload's size. A range that does not fit in the size is refused.
func ParseContentRange(s string) (first, last, size int64, err error) {
	bad := func(why string) (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: %s (want bytes FIRST-LAST/SIZE)", clipString(s), why)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !ok {
		return bad("not a byte range")
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no size")
	}
	size, err = ParseOffset(total)
	if err != nil || size == 0 {
		return bad("the size is not a positive number")
	}
	if rng == "*" {
		return 0, -1, size, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("no FIRST-LAST")
	}
	if first, err = ParseOffset(a); err != nil {
		return bad("FIRST is not a number")
	}
	if last, err = ParseOffset(b); err != nil {
		return bad("LAST is not a number")
	}
	if first > last || last >= size {
		return bad("the range is empty or past the size")
	}
	return first, last, size, nil
}
