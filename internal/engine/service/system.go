package service

import (
	"context"
	"time"

	"polyvirt/internal/api/engineapi"
)

// System is the engine itself: what it is, whether it is healthy.
type System struct{ e *engine }

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

// Health says whether the engine and its database answer; healthy is
// false when they do not (the answer says why).
func (s *System) Health(ctx context.Context) (h engineapi.Health, healthy bool) {
	e := s.e
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h = engineapi.Health{Status: "ok", Leader: e.leader.Load()}
	if err := e.st.Ping(ctx); err != nil {
		h.Status, h.Error = "unavailable", err.Error()
		return h, false
	}
	return h, true
}
