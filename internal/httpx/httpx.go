// Package httpx is what polyvirt's HTTP servers (the engine's API and the
// agent's) share: reading JSON request bodies strictly and within a size
// limit, writing JSON answers and coded error answers (every error an
// api.Error with the status of its code), bearer tokens and correlation
// IDs, a recover that answers 500 instead of killing the server, and a
// cap on concurrent connections per client and in total.
//
// The handlers on top are a few lines each: decode, call a service, encode.
package httpx

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/strictdoc"
)

// DefaultMaxBody bounds a JSON request body unless a route says otherwise.
const DefaultMaxBody = 1 << 20

// ErrorOf turns any error into the error to answer with: an *api.Error in
// err's chain as it is, several violations (api.Errors) as one refused
// definition, and anything else as the first translate that knows it
// says (the store's errors, libvirt's), or an internal error.
func ErrorOf(err error, translate ...func(error) *api.Error) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	var ve api.Errors
	if errors.As(err, &ve) {
		return api.DefinitionError(ve)
	}
	for _, t := range translate {
		if ae := t(err); ae != nil {
			return ae
		}
	}
	return &api.Error{Code: api.CodeInternal, Message: err.Error(), Err: err}
}

// WriteJSON writes v as the JSON answer (compact: clients indent what
// they show).
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// WriteError writes the error answer of e: its status (api.StatusOf) and
// its body (api.ErrorBody); a 503 says when to try again, a 401 how to
// authenticate.
func WriteError(w http.ResponseWriter, e *api.Error) {
	status := api.StatusOf(e)
	switch status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "2")
	case http.StatusUnauthorized:
		Challenge(w)
	}
	_ = WriteJSON(w, status, e.Body())
}

// LimitBody bounds what a handler may read of the request body (n bytes;
// DefaultMaxBody when n <= 0). Reading past it fails with an
// REQUEST_BODY_TOO_LARGE *api.Error.
func LimitBody(w http.ResponseWriter, r *http.Request, n int64) {
	if n <= 0 {
		n = DefaultMaxBody
	}
	r.Body = &limitedBody{rc: http.MaxBytesReader(w, r.Body, n), n: n}
}

// limitedBody turns the body limit's error into the API's.
type limitedBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = api.NewError(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "request body larger than %d bytes", b.n)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// ReadBody reads the request body (within the limit LimitBody set): a
// body too large is REQUEST_BODY_TOO_LARGE (413), one that did not arrive
// within the server's read deadline is BAD_REQUEST (408).
func ReadBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var ae *api.Error
	if errors.As(err, &ae) {
		return nil, ae
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, api.NewError(http.StatusRequestTimeout, api.CodeBadRequest, "request body not received in time")
	}
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "reading the request body: %v", err)
	}
	return b, nil
}

// Optional lets DecodeJSON take an empty body (the request's fields all
// have defaults).
const Optional = true

// DecodeJSON reads a JSON request body into v strictly: one object, no
// unknown fields, no key twice (DUPLICATE_KEY), no Unicode format
// character in any string (VALUE_HAS_FORMAT_CHARACTERS), nothing after it.
// optional lets an empty body through (v untouched).
func DecodeJSON(r *http.Request, v any, optional bool) error {
	b, err := ReadBody(r)
	if err != nil {
		return err
	}
	return Unmarshal(b, v, optional)
}

// Unmarshal is DecodeJSON's check and decoding of a body already read.
func Unmarshal(b []byte, v any, optional bool) error {
	if len(strings.TrimSpace(string(b))) == 0 {
		if optional {
			return nil
		}
		return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "the request body is empty: want a JSON object")
	}
	// A key given twice (the last would silently win; encoding/json also
	// matches a field's name in any case) and invisible format characters
	// in any string (text a person reads: names, descriptions, reasons,
	// definitions) are refused first.
	if p := strictdoc.JSON(b, strictdoc.Checks{FormatCharacters: true, FoldCase: true}); p != nil {
		code := api.CodeDuplicateKey
		if p.Kind == strictdoc.FormatCharacter {
			code = api.CodeFormatChars
		}
		return &api.Error{Status: http.StatusBadRequest, Code: code, Field: p.Path, Message: p.Error()}
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "the request body is not valid JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return api.FieldError(api.CodeInvalidArgument, te.Field, "%s: want a JSON %s, not %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return api.FieldError(api.CodeInvalidArgument, f, "unknown field %q", f)
		}
		return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "the request body: %v", err)
	}
	if dec.More() {
		return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "the request body has data after its JSON object")
	}
	return nil
}

// BearerToken is the token of the request's "Authorization: Bearer TOKEN"
// header, or UNAUTHENTICATED saying what is missing.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", api.NewError(http.StatusUnauthorized, api.CodeUnauthenticated,
			"missing Authorization header: send \"Authorization: Bearer TOKEN\" (polyvirt login)")
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", api.NewError(http.StatusUnauthorized, api.CodeUnauthenticated, "the Authorization header is not \"Bearer TOKEN\"")
	}
	return token, nil
}

// Challenge adds the WWW-Authenticate header an UNAUTHENTICATED answer
// carries.
func Challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="polyvirt"`)
}

// Correlation is the request's X-Correlation-ID when it is a sane one
// (letters, digits, - _ ., at most 64), else a new random one; it is set
// on the answer too.
func Correlation(w http.ResponseWriter, r *http.Request) string {
	c := r.Header.Get("X-Correlation-ID")
	if !validCorrelation(c) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Correlation-ID", c)
	return c
}

func validCorrelation(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// RemoteIP is the address the request came from, without its port.
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Recover answers 500 INTERNAL_ERROR (naming the correlation ID) when the
// handler panics, after report saw the panic; use it deferred.
func Recover(w http.ResponseWriter, corr string, report func(p any)) {
	if p := recover(); p != nil {
		report(p)
		WriteError(w, api.NewError(http.StatusInternalServerError, api.CodeInternal, "internal error (correlation ID %s)", corr))
	}
}

// NoDeadlines lifts the server's read and write deadlines of a long-lived
// answer (a console, an event stream, an upload).
func NoDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

// NotFound answers every request no route takes: 404 NOT_FOUND naming the
// API's document.
func NotFound(doc string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, api.NewError(http.StatusNotFound, api.CodeNotFound, "no such endpoint: %s %s (see %s)", r.Method, r.URL.Path, doc))
	}
}

// MethodNotAllowed answers a known path asked with another method: 405
// METHOD_NOT_ALLOWED with the Allow header.
func MethodNotAllowed(allow []string) http.HandlerFunc {
	list := strings.Join(allow, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", list)
		WriteError(w, api.NewError(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, list))
	}
}

// TrackingWriter notes whether the answer was started, so that an error
// after it is logged rather than written into the middle of an answer.
type TrackingWriter struct {
	http.ResponseWriter
	// Wrote tells that the answer's header was written.
	Wrote bool
}

// WriteHeader notes that the answer started.
func (t *TrackingWriter) WriteHeader(code int) {
	t.Wrote = true
	t.ResponseWriter.WriteHeader(code)
}

// Write notes that the answer started.
func (t *TrackingWriter) Write(b []byte) (int, error) {
	t.Wrote = true
	return t.ResponseWriter.Write(b)
}

// Flush sends what was written (server-sent events).
func (t *TrackingWriter) Flush() {
	t.Wrote = true
	_ = http.NewResponseController(t.ResponseWriter).Flush()
}

// Hijack hands the connection over (websockets).
func (t *TrackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	t.Wrote = true
	return http.NewResponseController(t.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the connection.
func (t *TrackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// Plain is a request/response handler: it writes the answer, or returns
// the error to answer with.
type Plain func(w http.ResponseWriter, r *http.Request) error

// Answer runs a Plain handler and writes its error when the answer has not
// started; translate turns foreign errors into API errors (ErrorOf). It
// returns the error answered (nil when none, or when the answer was under
// way or the handler gave up because the client went away, and only the
// log can hear of it). Any other error is answered even when the request's
// context has ended: a body that did not arrive within the read deadline
// cancels the context too (net/http does on a read error), and is a 408,
// never an empty 200.
func Answer(w http.ResponseWriter, r *http.Request, h Plain, translate ...func(error) *api.Error) (answered *api.Error, err error) {
	tw := &TrackingWriter{ResponseWriter: w}
	if err := h(tw, r); err != nil {
		if tw.Wrote || (errors.Is(err, context.Canceled) && errors.Is(r.Context().Err(), context.Canceled)) {
			return nil, err
		}
		ae := ErrorOf(err, translate...)
		WriteError(w, ae)
		return ae, err
	}
	return nil, nil
}

// JSONRaw writes a JSON document already encoded.
func JSONRaw(w http.ResponseWriter, status int, doc []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(doc)
	return err
}

// Bytes writes a binary answer (a PNG) of a content type, not cached.
func Bytes(w http.ResponseWriter, contentType string, b []byte) error {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	_, err := w.Write(b)
	return err
}
