package service

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/password"
	"polyvirt/internal/store"
)

// Sessions are the web UI's sign-ins: a user's password (package password)
// opens a session kept in the database (every engine of a shared database
// knows it), identified by a random value only the browser holds (the
// engine keeps its hash), with a CSRF token its requests that change
// something carry. Failed sign-ins are counted per user name and per
// client address, in this engine's memory.
type Sessions struct{ e *engine }

// SessionConfig tunes the web UI's sessions. Zero fields take the
// defaults.
type SessionConfig struct {
	// Idle ends a session that was not used for this long (default 30m).
	Idle time.Duration
	// Lifetime ends any session this long after its sign-in (default 12h).
	Lifetime time.Duration
	// FailuresPerUser and FailuresPerAddress are the failed sign-ins
	// allowed in FailureWindow for one user name, and from one client
	// address, before sign-ins are refused until the window moves on
	// (defaults 5, 20 and 15m).
	FailuresPerUser    int
	FailuresPerAddress int
	FailureWindow      time.Duration
}

func (c SessionConfig) withDefaults() SessionConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Idle, 30*time.Minute)
	def(&c.Lifetime, 12*time.Hour)
	def(&c.FailureWindow, 15*time.Minute)
	if c.FailuresPerUser <= 0 {
		c.FailuresPerUser = 5
	}
	if c.FailuresPerAddress <= 0 {
		c.FailuresPerAddress = 20
	}
	return c
}

// sessionTouchEvery is how stale a session's last use may be written: a
// session used constantly is written about once a minute.
const sessionTouchEvery = time.Minute

// RetryAfter is the wait a refused sign-in asks for (the cause of a
// SIGN_IN_RATE_LIMITED error: the HTTP answer's Retry-After).
type RetryAfter time.Duration

func (r RetryAfter) Error() string { return fmt.Sprintf("retry after %s", time.Duration(r)) }

// webAuth is the sign-in state an engine keeps in memory: the failure
// counts, and a bound on concurrent password hashing (each takes 19 MiB).
type webAuth struct {
	cfg     SessionConfig
	limiter *failureLimiter
	hashing chan struct{}
	// dummy is a hash checked when the user has no password, so that an
	// unknown name takes as long as a wrong password.
	dummyOnce sync.Once
	dummy     string
}

// auth is the engine's sign-in state, made on first use.
func (e *engine) auth() *webAuth {
	e.webOnce.Do(func() {
		cfg := e.cfg.Sessions.withDefaults()
		e.web = &webAuth{cfg: cfg, limiter: newFailureLimiter(cfg.FailureWindow), hashing: make(chan struct{}, 4)}
	})
	return e.web
}

// verify checks a password against a hash ("" for none: a dummy is
// checked instead and the answer is false), a few at a time.
func (a *webAuth) verify(ctx context.Context, pw, hash string) (bool, error) {
	select {
	case a.hashing <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-a.hashing }()
	if hash == "" {
		a.dummyOnce.Do(func() { a.dummy, _ = password.Hash("polyvirt dummy password") })
		_, _ = password.Verify(pw, a.dummy)
		return false, nil
	}
	return password.Verify(pw, hash)
}

// SignedIn is a new session: the value the browser keeps (its cookie), the
// session and its user.
type SignedIn struct {
	Cookie  string
	Session store.WebSession
	User    store.User
}

// SignIn checks a user's name and password, from a client address, and
// opens a session: SIGN_IN_FAILED for a wrong name or password,
// SIGN_IN_RATE_LIMITED (its cause a RetryAfter) after too many failures
// for the name or from the address.
func (s *Sessions) SignIn(ctx context.Context, req engineapi.SignInRequest, addr string) (SignedIn, error) {
	e := s.e
	a := e.auth()
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return SignedIn{}, invalidField("name", "no user name")
	}
	if len(req.Password) > password.MaxBytes {
		return SignedIn{}, invalidField("password", "longer than %d bytes", password.MaxBytes)
	}
	userKey, addrKey := "user:"+strings.ToLower(name), "addr:"+addr
	for _, k := range []struct {
		key   string
		limit int
	}{{userKey, a.cfg.FailuresPerUser}, {addrKey, a.cfg.FailuresPerAddress}} {
		if wait := a.limiter.blocked(k.key, k.limit, time.Now()); wait > 0 {
			secs := int(wait.Seconds() + 1)
			return SignedIn{}, &api.Error{Code: api.CodeSignInRateLimited, Err: RetryAfter(time.Duration(secs) * time.Second),
				Message: fmt.Sprintf("too many failed sign-ins for this user or from this address: try again in %d seconds", secs)}
		}
	}
	u, err := e.st.GetUserByName(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return SignedIn{}, coded(err)
	}
	hash := ""
	if err == nil {
		if hash, err = e.st.GetUserPassword(ctx, u.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return SignedIn{}, coded(err)
		}
	}
	ok, err := a.verify(ctx, req.Password, hash)
	if err != nil && hash != "" {
		e.log.Warn("a stored password hash cannot be read", "user", u.Name, "err", err)
	}
	if !ok {
		now := time.Now()
		a.limiter.fail(userKey, now)
		a.limiter.fail(addrKey, now)
		e.log.Info("failed sign-in", "user", name, "address", addr)
		return SignedIn{}, fail(api.CodeSignInFailed, "wrong user name or password")
	}
	a.limiter.reset(userKey)
	cookie, idHash, err := store.NewToken()
	if err != nil {
		return SignedIn{}, coded(err)
	}
	csrf, _, err := store.NewToken()
	if err != nil {
		return SignedIn{}, coded(err)
	}
	ws := store.WebSession{IDHash: idHash, UserID: u.ID, CSRFToken: csrf, Expires: time.Now().Add(min(a.cfg.Idle, a.cfg.Lifetime))}
	ctx = WithCaller(ctx, &u)
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateWebSession(ctx, &ws); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.signin", ObjectKind: "user", ObjectID: u.ID, ObjectName: u.Name,
			Message: fmt.Sprintf("User %s signed in to the web UI from %s.", u.Name, addr)})
	})
	if err != nil {
		return SignedIn{}, coded(err)
	}
	return SignedIn{Cookie: cookie, Session: ws, User: u}, nil
}

// Lifetime is how long a session may last at most (the cookie's
// Max-Age).
func (s *Sessions) Lifetime() time.Duration { return s.e.auth().cfg.Lifetime }

// Change says whether a request changes something and, then, the CSRF
// token it came with.
type Change struct {
	Changes bool
	// CSRFToken is the token the request carries ("" for none).
	CSRFToken string
	// What names the request, for the refusal ("POST /api/v1/vms").
	What string
}

// Authenticate finds the session of a browser's cookie and its user: the
// session exists and has not ended (SESSION_EXPIRED), and a request that
// changes something carries the session's CSRF token
// (CSRF_TOKEN_INVALID). The session's expiry moves on as it is used.
func (s *Sessions) Authenticate(ctx context.Context, cookie string, ch Change) (store.User, *store.WebSession, error) {
	e := s.e
	ws, err := e.st.GetWebSession(ctx, store.HashToken(cookie))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
		return store.User{}, nil, fail(api.CodeSessionExpired, "the web session ended: sign in again")
	}
	if err != nil {
		return store.User{}, nil, coded(err)
	}
	if ch.Changes {
		if ch.CSRFToken == "" || subtle.ConstantTimeCompare([]byte(ch.CSRFToken), []byte(ws.CSRFToken)) != 1 {
			return store.User{}, nil, fail(api.CodeCSRFTokenInvalid,
				"%s of a web session needs the session's CSRF token in the X-CSRF-Token header", ch.What)
		}
	}
	u, err := e.st.GetUser(ctx, ws.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, nil, fail(api.CodeSessionExpired, "the web session's user was removed")
	}
	if err != nil {
		return store.User{}, nil, coded(err)
	}
	now := time.Now()
	if now.Sub(ws.LastSeen) >= sessionTouchEvery {
		cfg := e.auth().cfg
		exp := now.Add(cfg.Idle)
		if end := ws.Created.Add(cfg.Lifetime); exp.After(end) {
			exp = end
		}
		if err := e.st.TouchWebSession(ctx, ws.IDHash, now, exp); err == nil {
			ws.LastSeen, ws.Expires = now, exp
		}
	}
	return u, &ws, nil
}

// SignOut ends a session (of the caller).
func (s *Sessions) SignOut(ctx context.Context, ws *store.WebSession) error {
	e := s.e
	u := CallerFrom(ctx)
	if ws == nil || u == nil {
		return fail(api.CodeBadRequest, "this request has no web session to end (it came with an API token)")
	}
	return coded(e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteWebSession(ctx, ws.IDHash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.signout", ObjectKind: "user", ObjectID: u.ID, ObjectName: u.Name,
			Message: fmt.Sprintf("User %s signed out of the web UI.", u.Name)})
	}))
}

// SetPassword sets a user's web UI password: an admin anyone's, another
// user its own only; a signed-in browser (ws) changing its own user's
// password gives the current one. Every session of the user ends.
func (s *Sessions) SetPassword(ctx context.Context, ref string, req engineapi.PasswordRequest, ws *store.WebSession) error {
	e := s.e
	me := CallerFrom(ctx)
	if me == nil {
		return fail(api.CodeUnauthenticated, "no user: the engine itself asks")
	}
	target, err := e.findUser(ctx, ref)
	if err != nil {
		return coded(err)
	}
	self := me.ID == target.ID
	if !self && me.Role != store.RoleAdmin {
		return fail(api.CodePermissionDenied, "user %s has the %s role: it may set its own password, not %s's", me.Name, me.Role, target.Name)
	}
	if err := password.Check(req.Password); err != nil {
		return api.FieldError(api.CodePasswordInvalid, "password", "%v", err)
	}
	if self && ws != nil {
		// A browser left signed in does not change its user's password
		// without it.
		hash, err := e.st.GetUserPassword(ctx, me.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return coded(err)
		}
		if ok, _ := e.auth().verify(ctx, req.CurrentPassword, hash); !ok {
			ae := api.FieldError(api.CodePasswordInvalid, "currentPassword", "the current password is wrong")
			ae.Status = 403
			return ae
		}
	}
	hash, err := password.Hash(req.Password)
	if err != nil {
		return coded(err)
	}
	return coded(e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.SetUserPassword(ctx, target.ID, hash); err != nil {
			return err
		}
		// Every browser signed in as this user signs in again.
		if _, err := tx.DeleteUserWebSessions(ctx, target.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.password", ObjectKind: "user", ObjectID: target.ID, ObjectName: target.Name,
			Message: fmt.Sprintf("User %s was given a new web UI password by %s.", target.Name, me.Name)})
	}))
}

// failureLimiter counts failures per key over a sliding window.
type failureLimiter struct {
	mu     sync.Mutex
	window time.Duration
	fails  map[string][]time.Time
}

// maxLimiterKeys bounds the keys kept: beyond it, the keys without a
// failure in the window go first, then any.
const maxLimiterKeys = 10000

func newFailureLimiter(window time.Duration) *failureLimiter {
	return &failureLimiter{window: window, fails: map[string][]time.Time{}}
}

// recent drops the failures older than the window (with the lock held).
func (l *failureLimiter) recent(key string, now time.Time) []time.Time {
	ts := l.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
		return nil
	}
	l.fails[key] = ts
	return ts
}

// blocked tells how long until key may try again (0: now) given limit
// failures per window.
func (l *failureLimiter) blocked(key string, limit int, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.recent(key, now)
	if len(ts) < limit {
		return 0
	}
	return ts[len(ts)-limit].Add(l.window).Sub(now)
}

// fail records a failure of key.
func (l *failureLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= maxLimiterKeys {
		for k := range l.fails {
			l.recent(k, now)
		}
		for k := range l.fails {
			if len(l.fails) < maxLimiterKeys {
				break
			}
			delete(l.fails, k)
		}
	}
	ts := append(l.recent(key, now), now)
	if len(ts) > 100 {
		ts = ts[len(ts)-100:]
	}
	l.fails[key] = ts
}

// reset forgets key's failures.
func (l *failureLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}
