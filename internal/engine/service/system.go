package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// System is the engine itself: what it is, whether it is healthy.
type System struct{ e *engine }

// storageErrorWindow is how long a storage error met by any request or by
// the monitoring keeps the engine unhealthy.
const storageErrorWindow = 30 * time.Second

// storageHealth remembers the last storage error the engine met.
type storageHealth struct {
	mu  sync.Mutex
	at  time.Time
	msg string
}

// note records err when it is a failure of the database's storage or
// availability.
func (h *storageHealth) note(err error) {
	if err == nil || !(errors.Is(err, store.ErrStorage) || errors.Is(err, store.ErrUnavailable) ||
		api.CodeOf(err) == api.CodeDatabaseFailure || api.CodeOf(err) == api.CodeDatabaseUnavailable) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.at, h.msg = time.Now(), err.Error()
}

// last is the last storage error of the window, "" when none.
func (h *storageHealth) last() (string, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at.IsZero() || time.Since(h.at) > storageErrorWindow {
		return "", time.Time{}
	}
	return h.msg, h.at
}

// NoteError records an error the engine met outside the services (an
// answer of its API): a storage failure makes Health unhealthy for a while.
func (s *System) NoteError(err error) { s.e.storage.note(err) }

// Info says which engine answers: its name, version, database, whether it
// leads the monitoring, its CA.
func (s *System) Info(ctx context.Context) (engineapi.Info, error) {
	e := s.e
	v, err := e.st.SchemaVersion(ctx)
	if err != nil {
		return engineapi.Info{}, coded(err)
	}
	return engineapi.Info{Name: e.cfg.Name, Version: e.cfg.Version, Backend: string(e.st.Backend()),
		SchemaVersion: v, Leader: e.leader.Load(), CAFingerprint: e.caFP, Time: time.Now().UTC()}, nil
}

// Health says whether the engine and its database work: healthy is false
// when a real read of the database fails (its schema, its users and its
// hosts), or when a request or the monitoring met a storage error within
// the last half minute (a database whose files cannot be written answers
// reads); the answer says why.
func (s *System) Health(ctx context.Context) (h engineapi.Health, healthy bool) {
	e := s.e
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h = engineapi.Health{Status: "ok", Leader: e.leader.Load()}
	fail := func(err error) (engineapi.Health, bool) {
		e.storage.note(err)
		h.Status, h.Error = "unavailable", err.Error()
		return h, false
	}
	if err := e.st.Ping(ctx); err != nil {
		return fail(err)
	}
	if _, err := e.st.SchemaVersion(ctx); err != nil {
		return fail(err)
	}
	if _, err := e.st.ListUsers(ctx); err != nil {
		return fail(err)
	}
	if _, err := e.st.CountHosts(ctx); err != nil {
		return fail(err)
	}
	if msg, at := e.storage.last(); msg != "" {
		h.Status = "unavailable"
		h.Error = fmt.Sprintf("the database failed %s ago: %s", time.Since(at).Round(time.Second), msg)
		return h, false
	}
	return h, true
}
