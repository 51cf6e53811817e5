package service

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// The host list's pages (GET /api/v1/hosts?limit=&continue=): ordered by
// host name, a page starts after the last name of the one before. The
// cursor (the continue token) is that name and a fingerprint of the query
// it was given for, as base64url of a small JSON object; it holds no state
// of the engine, so any engine of a group answers the next page, and a page
// is as cheap as the first. Hosts added or removed meanwhile show or not
// according to their names; a host is never listed twice nor skipped
// while it keeps its name.

// maxContinueLen bounds a continue token: a host name is at most 255
// bytes, its token about 4/3 of that and the fingerprint.
const maxContinueLen = 1024

// hostCursor is where a page starts: after the host named After, for the
// query of fingerprint Query.
type hostCursor struct {
	V     int    `json:"v"`
	After string `json:"a"`
	Query string `json:"q"`
}

// cursorVersion is the cursor's format; a token of another is refused.
const cursorVersion = 1

// queryFingerprint identifies what a query selects (its cluster's ID, its
// statuses, details or not), so that a token is not taken for another
// query's.
func queryFingerprint(f store.HostFilter, details bool) string {
	st := make([]string, 0, len(f.Statuses))
	for _, s := range f.Statuses {
		st = append(st, string(s))
	}
	slices.Sort(st)
	st = slices.Compact(st)
	h := fnv.New64a()
	fmt.Fprintf(h, "%q|%q|%t", f.ClusterID, strings.Join(st, ","), details)
	return strconv.FormatUint(h.Sum64(), 36)
}

// encodeContinue is the continue token of the page after the host named
// after.
func encodeContinue(after, query string) string {
	b, _ := json.Marshal(hostCursor{V: cursorVersion, After: after, Query: query})
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseContinue reads a continue token given for the query of fingerprint
// query and answers the name the page starts after. Any token the engine
// did not give for this query is refused with CONTINUE_TOKEN_INVALID.
func parseContinue(tok, query string) (string, error) {
	bad := func(format string, args ...any) error {
		return api.FieldError(api.CodeContinueInvalid, "continue", "continue token: "+format+
			"; give the continue of the previous page of the same query, or none for the first page", args...)
	}
	if len(tok) > maxContinueLen {
		return "", bad("%d characters, at most %d", len(tok), maxContinueLen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", bad("not base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c hostCursor
	if err := dec.Decode(&c); err != nil || dec.More() {
		return "", bad("not a cursor of the host list")
	}
	switch {
	case c.V != cursorVersion:
		return "", bad("version %d, this engine reads version %d", c.V, cursorVersion)
	case c.After == "":
		return "", bad("no position")
	case c.Query != query:
		return "", bad("given for another query (cluster, status or details differ)")
	}
	return c.After, nil
}

// parseLimit reads a page size: empty is the default one.
func parseLimit(s string) (int, error) {
	if s == "" {
		return engineapi.DefaultHostPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > engineapi.MaxHostPageSize {
		return 0, invalidField("limit", "limit %q: want a number from 1 to %d", s, engineapi.MaxHostPageSize)
	}
	return n, nil
}

// pageStart begins a page's JSON answer in a buffer of pageBuffers; the
// hosts' JSON follow, joined by commas, then pageEnd.
func pageStart() []byte {
	var out []byte
	if p, ok := pageBuffers.Get().(*[]byte); ok {
		out = (*p)[:0]
	}
	return append(out, `{"hosts":[`...)
}

// pageEnd ends a page's JSON answer with the next page's token.
func pageEnd(out []byte, next string) []byte {
	out = append(out, ']')
	if next != "" {
		out = append(out, `,"continue":`...)
		q, _ := json.Marshal(next)
		out = append(out, q...)
	}
	return append(out, "}\n"...)
}

// pageBuffers keep the buffers of answered pages (half a megabyte for
// 500 hosts, ten of them a second) for the next pages.
var pageBuffers sync.Pool

// Release gives the list's encoded page back for another page's use,
// once it was written: neither Encoded nor anything read from it may be
// used after.
func (l *HostList) Release() {
	if l.Encoded != nil {
		b := l.Encoded[:0]
		pageBuffers.Put(&b)
		l.Encoded = nil
	}
}
