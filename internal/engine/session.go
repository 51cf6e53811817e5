package engine

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
	"polyvirt/internal/store"
)

// The web UI's sign-in as HTTP: the session's identifier in a cookie that
// scripts cannot read (HttpOnly), sent over HTTPS only (Secure, and the
// __Host- prefix) and never with a request another site starts
// (SameSite=Strict); a request of a session that changes something carries
// the session's CSRF token in the X-CSRF-Token header and comes from this
// site (Origin, Sec-Fetch-Site). The rules are service.Sessions'. API
// tokens work as before.

const (
	// SessionCookie is the name of the web UI's session cookie.
	SessionCookie = "__Host-polyvirt-session"
	// CSRFHeader carries a session's CSRF token.
	CSRFHeader = "X-CSRF-Token"
)

// SessionConfig tunes the web UI's sessions.
type SessionConfig = service.SessionConfig

// sessionRoutes are the sign-in routes.
func (e *Engine) sessionRoutes() []route {
	everyone := store.RoleReadOnly // every signed-in user
	return []route{
		{Method: "GET", Path: "/session", Summary: "The caller: its user, what it may call, and a signed-in browser's CSRF token", h: e.getSession},
		{Method: "POST", Path: "/session", Public: true, Summary: "Sign in to the web UI with a user's name and password (sets the session cookie)", h: e.signIn},
		{Method: "DELETE", Path: "/session", Role: everyone, Summary: "Sign out: end the browser's session", h: e.signOut},
		{Method: "PUT", Path: "/users/{user}/password", Role: everyone, Summary: "Set a user's web UI password (an admin: anyone's; others: their own)", h: e.setPassword},
	}
}

// sessionKey is the context key of a request's web session.
type sessionKey struct{}

// sessionFrom is the web session of a request (nil for API tokens).
func sessionFrom(ctx context.Context) *store.WebSession {
	s, _ := ctx.Value(sessionKey{}).(*store.WebSession)
	return s
}

// authenticateRequest finds the user of a request: by its session cookie
// when it has one and no Authorization header, else by its API token.
func (e *Engine) authenticateRequest(ctx context.Context, r *http.Request) (store.User, *store.WebSession, error) {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" && r.Header.Get("Authorization") == "" {
		changes := r.Method != http.MethodGet && r.Method != http.MethodHead
		if changes {
			if err := checkSameSite(r); err != nil {
				return store.User{}, nil, err
			}
		}
		return e.svc.Sessions.Authenticate(ctx, c.Value, service.Change{Changes: changes,
			CSRFToken: r.Header.Get(CSRFHeader), What: r.Method + " " + r.URL.Path})
	}
	u, err := e.authenticate(ctx, r)
	return u, nil, err
}

// checkSameSite refuses a request a browser says another site started
// (Sec-Fetch-Site, Origin): defence beside the SameSite cookie and the
// CSRF token.
func checkSameSite(r *http.Request) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return api.NewError(http.StatusForbidden, api.CodeCSRFTokenInvalid, "the request came from another site (Sec-Fetch-Site: %s)", site)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return api.NewError(http.StatusForbidden, api.CodeCSRFTokenInvalid, "the request came from another origin (%s)", o)
		}
	}
	return nil
}

func (e *Engine) signIn(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.SignInRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	if err := checkSameSite(r); err != nil {
		return err
	}
	in, err := e.svc.Sessions.SignIn(r.Context(), req, httpx.RemoteIP(r))
	var wait service.RetryAfter
	if errors.As(err, &wait) {
		w.Header().Set("Retry-After", strconv.Itoa(int(time.Duration(wait).Seconds())))
	}
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: in.Cookie, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(e.svc.Sessions.Lifetime().Seconds())})
	w.Header().Set("Cache-Control", "no-store")
	return httpx.WriteJSON(w, http.StatusOK, e.sessionView(in.User, &in.Session))
}

func (e *Engine) getSession(w http.ResponseWriter, r *http.Request) error {
	u := service.CallerFrom(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	return httpx.WriteJSON(w, http.StatusOK, e.sessionView(*u, sessionFrom(r.Context())))
}

// sessionView is the caller as the web UI sees it: its user, the routes it
// may call, and a session's CSRF token and expiry.
func (e *Engine) sessionView(u store.User, s *store.WebSession) engineapi.Session {
	out := engineapi.Session{User: engineapi.User{ID: u.ID, Name: u.Name, Role: string(u.Role), Version: u.Version, Created: u.Created, Updated: u.Updated},
		Via: "token", Allowed: []string{}}
	for _, rt := range e.routes() {
		if !rt.Public && allows(u.Role, rt.needs()) {
			out.Allowed = append(out.Allowed, rt.Method+" "+rt.Path)
		}
	}
	if s != nil {
		out.Via, out.CSRFToken, out.Expires = "session", s.CSRFToken, s.Expires
	}
	return out
}

func (e *Engine) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := e.svc.Sessions.SignOut(r.Context(), sessionFrom(r.Context())); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Engine) setPassword(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.PasswordRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	return noContent(w, e.svc.Sessions.SetPassword(r.Context(), r.PathValue("user"), req, sessionFrom(r.Context())))
}
