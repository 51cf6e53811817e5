package service

import (
	"context"
	"strconv"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// Events are the audit log: every change and action, who made it, why.
type Events struct{ e *engine }

// EventQuery selects events, newest first: those of a host or a cluster
// (and its hosts), of a kind of object or one object, of a user, an
// action, a code, a correlation ID, at least of a severity, between two
// times; Before (an event ID) pages back, Limit bounds the page.
type EventQuery struct {
	Host, Cluster                                 string
	Kind, Object, User, Action, Code, Correlation string
	Severity                                      string
	Since, Until                                  time.Time
	Before                                        int64
	Limit                                         int
}

// EventQueryFrom reads a query from named text values (an HTTP query's
// host, cluster, kind, object, user, action, code, correlation, severity,
// since and until as RFC 3339 times, before and limit as numbers).
func EventQueryFrom(get func(name string) string) (EventQuery, error) {
	q := EventQuery{Host: get("host"), Cluster: get("cluster"), Kind: get("kind"), Object: get("object"), User: get("user"),
		Action: get("action"), Code: get("code"), Correlation: get("correlation"), Severity: get("severity")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if v := get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return q, invalidField(p.name, "%s %q: want an RFC 3339 time (2024-05-01T12:00:00Z)", p.name, v)
			}
			*p.dst = t
		}
	}
	for _, p := range []struct {
		name     string
		min, max int64
		set      func(int64)
	}{
		{"before", 1, 1 << 62, func(v int64) { q.Before = v }},
		{"limit", 1, 1000, func(v int64) { q.Limit = int(v) }},
	} {
		if v := get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < p.min || n > p.max {
				return q, invalidField(p.name, "%s %q: want a number from %d to %d", p.name, v, p.min, p.max)
			}
			p.set(n)
		}
	}
	return q, nil
}

func eventView(ev store.Event) engineapi.Event {
	return engineapi.Event{ID: ev.ID, Time: ev.Time, User: ev.User, Action: ev.Action, Severity: string(ev.Severity),
		ObjectKind: ev.ObjectKind, ObjectID: ev.ObjectID, ObjectName: ev.ObjectName, Code: ev.Code,
		Message: ev.Message, Reason: ev.Reason, CorrelationID: ev.CorrelationID}
}

// List lists the events a query selects, and the ID to page back from.
func (s *Events) List(ctx context.Context, q EventQuery) (engineapi.EventPage, error) {
	page, err := s.e.listEvents(ctx, q)
	return page, coded(err)
}

func (e *engine) listEvents(ctx context.Context, q EventQuery) (engineapi.EventPage, error) {
	f := store.EventFilter{ObjectKind: q.Kind, ObjectID: q.Object, User: q.User, Action: q.Action, Code: q.Code,
		CorrelationID: q.Correlation, MinSeverity: store.Severity(q.Severity), Since: q.Since, Until: q.Until,
		Before: q.Before, Limit: q.Limit}
	if f.MinSeverity != "" && !f.MinSeverity.Valid() {
		return engineapi.EventPage{}, invalidField("severity", "severity %q: want info, warning, error or alert", f.MinSeverity)
	}
	if q.Host != "" {
		h, err := e.findHost(ctx, q.Host)
		if err != nil {
			return engineapi.EventPage{}, err
		}
		f.ObjectKind, f.ObjectID = "host", h.ID
	}
	if q.Cluster != "" {
		c, err := e.findCluster(ctx, q.Cluster)
		if err != nil {
			return engineapi.EventPage{}, err
		}
		hosts, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID, Brief: true})
		if err != nil {
			return engineapi.EventPage{}, err
		}
		ids := []string{c.ID}
		for _, h := range hosts {
			ids = append(ids, h.ID)
		}
		if len(ids) > 1000 {
			ids = ids[:1000]
		}
		f.ObjectIDs = ids
	}
	page, err := e.st.ListEvents(ctx, f)
	if err != nil {
		return engineapi.EventPage{}, err
	}
	out := engineapi.EventPage{Events: make([]engineapi.Event, 0, len(page.Events)), Next: page.Next}
	for _, ev := range page.Events {
		out.Events = append(out.Events, eventView(ev))
	}
	return out, nil
}
