package store

import (
	"context"
	"strings"
	"time"
)

const eventCols = `id, occurred_at, username, action, severity, object_kind, object_id, object_name,
	code, message, reason, correlation_id`

func scanEvent(e *Event) func(rowScanner) error {
	return func(r rowScanner) error {
		var sev string
		err := r.Scan(&e.ID, tcol{&e.Time}, &e.User, &e.Action, &sev, &e.ObjectKind, &e.ObjectID, &e.ObjectName,
			&e.Code, &e.Message, &e.Reason, &e.CorrelationID)
		e.Severity = Severity(sev)
		return err
	}
}

// AppendEvent implements Queries.
func (q *queries) AppendEvent(ctx context.Context, in *Event) error {
	const op = "append"
	e := *in
	obj := "event"
	if e.Action != "" {
		obj = "event " + e.Action
	}
	if e.Severity == "" {
		e.Severity = SeverityInfo
	}
	switch {
	case strings.TrimSpace(e.Action) == "":
		return invalid(op, obj, "action", "is empty")
	case strings.TrimSpace(e.Message) == "":
		return invalid(op, obj, "message", "is empty")
	case !e.Severity.Valid():
		return invalid(op, obj, "severity", "unknown severity %q (known: %v)", e.Severity, severities)
	case len(e.Message) > 8192 || len(e.Reason) > 8192:
		return invalid(op, obj, "message", "message and reason are limited to 8192 characters")
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		return w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&e.ID) },
			`INSERT INTO events (occurred_at, username, action, severity, object_kind, object_id, object_name,
			code, message, reason, correlation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			d.ts(e.Time), e.User, e.Action, string(e.Severity), e.ObjectKind, e.ObjectID, e.ObjectName,
			e.Code, e.Message, e.Reason, e.CorrelationID)
	})
	if err == nil {
		*in = e
	}
	return err
}

// ListEvents implements Queries.
func (q *queries) ListEvents(ctx context.Context, f EventFilter) (EventPage, error) {
	const op = "list"
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = 100
	case limit > 1000:
		limit = 1000
	}
	if f.MinSeverity != "" && !f.MinSeverity.Valid() {
		return EventPage{}, invalid(op, "events", "minSeverity", "unknown severity %q (known: %v)", f.MinSeverity, severities)
	}
	d := q.s.d
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"object_kind", f.ObjectKind}, {"object_id", f.ObjectID},
		{"username", f.User}, {"action", f.Action}, {"code", f.Code}, {"correlation_id", f.CorrelationID}} {
		if c.v != "" {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if len(f.ObjectIDs) > 1000 {
		return EventPage{}, invalid(op, "events", "objectIds", "%d object IDs: at most 1000", len(f.ObjectIDs))
	}
	if len(f.ObjectIDs) > 0 {
		where = append(where, "object_id IN ("+placeholders(len(f.ObjectIDs))+")")
		for _, id := range f.ObjectIDs {
			args = append(args, id)
		}
	}
	if f.MinSeverity != "" && f.MinSeverity != SeverityInfo {
		worse := severities[f.MinSeverity.rank():]
		where = append(where, "severity IN ("+placeholders(len(worse))+")")
		for _, s := range worse {
			args = append(args, string(s))
		}
	}
	if !f.Since.IsZero() {
		where, args = append(where, "occurred_at >= ?"), append(args, d.ts(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "occurred_at < ?"), append(args, d.ts(f.Until))
	}
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	query := `SELECT ` + eventCols + ` FROM events`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	page := EventPage{Events: []Event{}}
	err := q.read(op, func() error {
		return q.many(ctx, op, "events", func(r rowScanner) error {
			var e Event
			if err := scanEvent(&e)(r); err != nil {
				return err
			}
			page.Events = append(page.Events, e)
			return nil
		}, query, args...)
	})
	if err != nil {
		return EventPage{}, err
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		page.Next = page.Events[limit-1].ID
	}
	return page, nil
}
