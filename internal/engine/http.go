package engine

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"sort"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
	"polyvirt/internal/metrics"
	"polyvirt/internal/store"
	"polyvirt/internal/webui"
)

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
	// Stream marks a long-lived answer (a console's websocket): its
	// duration is not an API latency.
	Stream bool
	h      handlerFunc
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
var roleRank = map[store.Role]int{store.RoleMetrics: 1, store.RoleReadOnly: 2, store.RoleVMManager: 3, store.RoleAdmin: 4}

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
		mux.Handle(rt.Method+" /api/v1"+rt.Path, e.wrap(rt, "/api/v1"+rt.Path))
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
	}
	mux.Handle("GET "+metricsPath, e.wrap(e.metricsRoute(), metricsPath))
	// A known path with another method: 405 with a JSON body (the
	// method-less pattern is less specific than the routes).
	for path, ms := range methods {
		mux.HandleFunc("/api/v1"+path, httpx.MethodNotAllowed(ms))
	}
	mux.HandleFunc("/", httpx.NotFound("/api/v1/openapi.json"))
	e.registerUI(mux)
	return webui.SecurityHeaders(mux)
}

// wrap adds what every route needs: a correlation ID, authentication and
// the role check, a body limit, JSON errors, a recover so that a bug
// answers 500 instead of killing the engine, and the API's metrics (by
// the route's pattern, never the path asked).
func (e *Engine) wrap(rt route, pattern string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := metrics.NewStatusRecorder(w)
		w = rec
		defer func() {
			e.metrics.APIRequest(rt.Method, pattern, answeredStatus(r, rec.Status()), time.Since(start), rt.Stream)
		}()
		corr := httpx.Correlation(w, r)
		defer httpx.Recover(w, corr, func(p any) {
			e.log.Error("panic in API handler", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
		})
		ctx, ae := e.admit(service.WithCorrelation(r.Context(), corr), r, rt)
		if ae == nil {
			httpx.LimitBody(w, r, rt.MaxBody)
			var err error
			if ae, err = httpx.Answer(w, r.WithContext(ctx), httpx.Plain(rt.h), service.Coded); err != nil && ae == nil {
				// The answer was under way, or the client left: nothing
				// more can be said to it.
				e.log.Debug("API answer not completed", "method", r.Method, "path", r.URL.Path, "err", err, "correlation", corr)
			}
		} else {
			httpx.WriteError(w, ae)
		}
		switch {
		case ae != nil && answeredStatus(r, api.StatusOf(ae)) == statusClientClosed:
			e.log.Debug("API request abandoned by its client", "method", r.Method, "path", r.URL.Path, "err", ae.Message, "correlation", corr)
		case ae != nil && api.StatusOf(ae) >= 500:
			e.svc.System.NoteError(ae)
			e.log.Warn("API error", "method", r.Method, "path", r.URL.Path, "code", ae.Code, "err", ae.Message, "correlation", corr)
		}
		e.log.Debug("API", "method", r.Method, "path", r.URL.Path, "took", time.Since(start), "correlation", corr)
	})
}

// admit authenticates the request of a route that is not public and checks
// the user's role against the route's: the context acts for the user, or
// the refusal to answer with.
func (e *Engine) admit(ctx context.Context, r *http.Request, rt route) (context.Context, *api.Error) {
	if rt.Public {
		return ctx, nil
	}
	u, sess, err := e.authenticateRequest(ctx, r)
	if err != nil {
		return ctx, service.Coded(err)
	}
	if need := rt.needs(); !allows(u.Role, need) {
		return ctx, api.NewError(http.StatusForbidden, api.CodePermissionDenied,
			"user %s has the %s role: %s %s needs the %s role%s", u.Name, u.Role, r.Method, r.URL.Path, need, roleHint(u.Role))
	}
	if sess != nil {
		ctx = context.WithValue(ctx, sessionKey{}, sess)
	}
	return service.WithCaller(ctx, &u), nil
}

// roleHint says what a role may do, for a refusal.
func roleHint(r store.Role) string {
	switch r {
	case store.RoleReadOnly:
		return " (readonly reads, and watches consoles)"
	case store.RoleVMManager:
		return " (vm-manager manages VMs, not hosts, clusters, users or firmware)"
	case store.RoleMetrics:
		return " (metrics reads the metrics and the scrape targets only)"
	}
	return ""
}

// authenticate finds the user of the request's bearer token.
func (e *Engine) authenticate(ctx context.Context, r *http.Request) (store.User, error) {
	token, err := httpx.BearerToken(r)
	if err != nil {
		return store.User{}, err
	}
	return e.svc.Users.Authenticate(ctx, token)
}

func invalidField(field, format string, args ...any) *api.Error {
	return api.FieldError(api.CodeInvalidArgument, field, format, args...)
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

// statusClientClosed is the status the request metrics count for a
// request whose client left before its answer (nginx's 499): what failed
// then was the request's own context, not the engine.
const statusClientClosed = 499

// answeredStatus is the status a request is counted with: a server error
// of a request whose client had left (its context cancelled, so the call's
// own reads failed with it) is statusClientClosed.
func answeredStatus(r *http.Request, status int) int {
	if status >= 500 && r.Context().Err() != nil {
		return statusClientClosed
	}
	return status
}
