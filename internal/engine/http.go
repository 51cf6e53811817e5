package engine

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
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/store"
	"polyvirt/internal/strictdoc"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

type ctxKey int

const (
	userKey ctxKey = iota
	correlationKey
)

// userFrom is the authenticated user of a request (nil for public routes
// and the engine's own work).
func userFrom(ctx context.Context) *store.User {
	u, _ := ctx.Value(userKey).(*store.User)
	return u
}

func correlationFrom(ctx context.Context) string {
	c, _ := ctx.Value(correlationKey).(string)
	return c
}

// handlerFunc is a route's handler: it writes the answer, or returns the
// error to answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one API route: method, path under /api/v1, whether it needs a
// token, and a summary (the OpenAPI document has the same routes).
type route struct {
	Method  string
	Path    string
	Public  bool
	Summary string
	// MaxBody, when not zero, replaces the request body limit (a
	// firmware image).
	MaxBody int64
	// Role is the least role that may call the route; empty means the
	// default: readonly for GET, admin for the others.
	Role store.Role
	h    handlerFunc
}

// needs is the least role that may call the route (none for a public
// one).
func (rt route) needs() store.Role {
	switch {
	case rt.Public:
		return ""
	case rt.Role != "":
		return rt.Role
	case rt.Method == http.MethodGet || rt.Method == http.MethodHead:
		return store.RoleReadOnly
	}
	return store.RoleAdmin
}

// roleRank orders the roles: each may do what the ones below it may.
var roleRank = map[store.Role]int{store.RoleReadOnly: 1, store.RoleVMManager: 2, store.RoleAdmin: 3}

// allows tells whether a user of role have may call a route that needs
// role need.
func allows(have, need store.Role) bool {
	return need == "" || (roleRank[have] > 0 && roleRank[have] >= roleRank[need])
}

// Handler is the engine's HTTP API (without TLS: Serve adds it).
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	methods := map[string][]string{}
	for _, rt := range e.routes() {
		mux.Handle(rt.Method+" /api/v1"+rt.Path, e.wrap(rt))
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
	}
	// A known path with another method: 405 with a JSON body (the
	// method-less pattern is less specific than the routes).
	for path, ms := range methods {
		allow := strings.Join(ms, ", ")
		mux.HandleFunc("/api/v1"+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, api.NewError(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, api.NewError(http.StatusNotFound, api.CodeNotFound, "no such endpoint: %s %s (see /api/v1/openapi.json)", r.Method, r.URL.Path))
	})
	return mux
}

// wrap adds what every route needs: a correlation ID, authentication and
// the role check, a body limit, JSON errors, and a recover so that a bug
// answers 500 instead of killing the engine.
func (e *Engine) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		corr := r.Header.Get("X-Correlation-ID")
		if !validCorrelation(corr) {
			corr = newCorrelationID()
		}
		w.Header().Set("X-Correlation-ID", corr)
		ctx := context.WithValue(r.Context(), correlationKey, corr)
		defer func() {
			if p := recover(); p != nil {
				e.log.Error("panic in API handler", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				writeError(w, api.NewError(http.StatusInternalServerError, api.CodeInternal, "internal error (correlation ID %s)", corr))
			}
		}()
		if !rt.Public {
			u, err := e.authenticate(ctx, r)
			if err != nil {
				switch ae := asAPIError(err); {
				case ae.Status == http.StatusUnauthorized:
					w.Header().Set("WWW-Authenticate", `Bearer realm="polyvirt"`)
				case ae.Status >= 500:
					e.log.Warn("API error", "method", r.Method, "path", r.URL.Path, "code", ae.Code, "err", ae.Message, "correlation", corr)
				}
				writeError(w, err)
				return
			}
			if need := rt.needs(); !allows(u.Role, need) {
				writeError(w, api.NewError(http.StatusForbidden, api.CodePermissionDenied,
					"user %s has the %s role: %s %s needs the %s role%s", u.Name, u.Role, r.Method, r.URL.Path, need, roleHint(u.Role)))
				return
			}
			ctx = context.WithValue(ctx, userKey, &u)
		}
		limit := int64(maxBody)
		if rt.MaxBody > 0 {
			limit = rt.MaxBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		tw := &trackingWriter{ResponseWriter: w}
		if err := rt.h(tw, r.WithContext(ctx)); err != nil {
			if tw.wrote || r.Context().Err() != nil {
				// The answer was under way, or the client left: nothing
				// more can be said to it.
				e.log.Debug("API answer not completed", "method", r.Method, "path", r.URL.Path, "err", err, "correlation", corr)
				return
			}
			ae := asAPIError(err)
			if ae.Status >= 500 {
				e.log.Warn("API error", "method", r.Method, "path", r.URL.Path, "code", ae.Code, "err", ae.Message, "correlation", corr)
			}
			writeError(w, ae)
		}
		e.log.Debug("API", "method", r.Method, "path", r.URL.Path, "took", time.Since(start), "correlation", corr)
	})
}

// roleHint says what a role may do, for a refusal.
func roleHint(r store.Role) string {
	switch r {
	case store.RoleReadOnly:
		return " (readonly reads, and watches consoles)"
	case store.RoleVMManager:
		return " (vm-manager manages VMs, not hosts, clusters, users or firmware)"
	}
	return ""
}

// trackingWriter notes whether the answer's header was written.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

// WriteHeader notes that the answer started.
func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

// Write notes that the answer started.
func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Flush sends what was written (server-sent events).
func (t *trackingWriter) Flush() {
	t.wrote = true
	_ = http.NewResponseController(t.ResponseWriter).Flush()
}

// Hijack hands the connection over (websockets).
func (t *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	t.wrote = true
	return http.NewResponseController(t.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the connection.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// authenticate finds the user of the request's bearer token.
func (e *Engine) authenticate(ctx context.Context, r *http.Request) (store.User, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return store.User{}, api.NewError(http.StatusUnauthorized, api.CodeUnauthenticated,
			"missing Authorization header: send \"Authorization: Bearer TOKEN\" (polyvirt login)")
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return store.User{}, api.NewError(http.StatusUnauthorized, api.CodeUnauthenticated, "the Authorization header is not \"Bearer TOKEN\"")
	}
	u, err := e.st.GetUserByTokenHash(ctx, store.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, api.NewError(http.StatusUnauthorized, api.CodeUnauthenticated, "invalid API token (revoked, or from another engine?)")
	}
	return u, err
}

// writeJSON writes v as the JSON answer (compact: lists of a thousand
// hosts are the common case; clients indent what they show).
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	ae := asAPIError(err)
	if ae.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "2")
	}
	_ = writeJSON(w, ae.Status, ae.Body())
}

// decodeBody reads a JSON request body into v: one object, no unknown
// fields, no key twice, no format character. optional lets an empty body
// through.
func decodeBody(r *http.Request, v any, optional bool) error {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return api.NewError(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "request body larger than %d bytes", maxBody)
	}
	if err != nil {
		return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "reading the request body: %v", err)
	}
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
			return invalidField(te.Field, "%s: want a JSON %s, not %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalidField(f, "unknown field %q", f)
		}
		return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "the request body: %v", err)
	}
	if dec.More() {
		return api.NewError(http.StatusBadRequest, api.CodeBadRequest, "the request body has data after its JSON object")
	}
	return nil
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

func newCorrelationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// appendEvent adds an event to the audit log, with the request's user and
// correlation ID.
func (e *Engine) appendEvent(ctx context.Context, q store.Queries, ev store.Event) error {
	if u := userFrom(ctx); u != nil && ev.User == "" {
		ev.User = u.Name
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = correlationFrom(ctx)
	}
	if ev.Severity == "" {
		ev.Severity = store.SeverityInfo
	}
	return q.AppendEvent(ctx, &ev)
}

// userName is the request's user, for messages.
func userName(ctx context.Context) string {
	if u := userFrom(ctx); u != nil {
		return u.Name
	}
	return "the engine"
}

// routePaths lists the routes as "METHOD /api/v1/path", sorted.
func (e *Engine) routePaths() []string {
	var out []string
	for _, rt := range e.routes() {
		out = append(out, fmt.Sprintf("%s /api/v1%s", rt.Method, rt.Path))
	}
	sort.Strings(out)
	return out
}
