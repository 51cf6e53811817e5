package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL's statistics writes go through COPY: ten thousand hosts'
// documents every few seconds, as parameters of multi-row UPDATEs, made
// pgx copy each document three times into buffers it grows and drops
// after every statement (about 40% of the engine's allocations at 10,000
// hosts). COPY streams the rows through a small buffer pgx reuses, into a
// temporary table of the connection's, from which one UPDATE takes them.

// statsInTable is the connection's temporary table of a statistics batch
// (its rows go at the transaction's end).
const statsInTable = "host_stats_in"

// copyHostStats writes reports (one per host, checked) in one transaction
// on one of db's connections: COPY into statsInTable, then the UPDATE of
// host_stats from it. It answers the hosts that have no statistics row.
func copyHostStats(ctx context.Context, db *sql.DB, d *dialect, op string, reports []HostStats) (missing []string, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, d.wrap(ctx, err, op, "")
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("a PostgreSQL connection is a %T, not pgx's", dc)
		}
		missing, err = copyHostStatsOn(ctx, sc.Conn(), reports)
		return err
	})
	if err != nil {
		return nil, d.wrap(ctx, err, op, "hosts")
	}
	return missing, nil
}

// copyHostStatsOn is copyHostStats on a pgx connection.
func copyHostStatsOn(ctx context.Context, c *pgx.Conn, reports []HostStats) (missing []string, err error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit: nothing to undo
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE IF NOT EXISTS `+statsInTable+` (
		host_id TEXT NOT NULL, stats JSONB, at TIMESTAMPTZ NOT NULL) ON COMMIT DELETE ROWS`); err != nil {
		return nil, err
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{statsInTable}, []string{"host_id", "stats", "at"}, &statsRows{reports: reports})
	if err != nil {
		return nil, err
	}
	if n != int64(len(reports)) {
		return nil, fmt.Errorf("COPY took %d statistics of %d", n, len(reports))
	}
	rows, err := tx.Query(ctx, `UPDATE host_stats SET
		stats = COALESCE(v.stats, host_stats.stats),
		stats_at = CASE WHEN v.stats IS NULL THEN host_stats.stats_at ELSE v.at END,
		last_seen_at = v.at
		FROM `+statsInTable+` AS v
		WHERE host_stats.host_id = v.host_id
		RETURNING host_stats.host_id`)
	if err != nil {
		return nil, err
	}
	done := make(map[string]bool, len(reports))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		done[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return appendNotDone(nil, reports, done), nil
}

// statsRows is a batch's rows for COPY: each row's values point into the
// batch (a pointer in an interface costs no allocation; a string, a slice
// or a time would).
type statsRows struct {
	reports []HostStats
	i       int
	row     [3]any
}

// Next implements pgx.CopyFromSource.
func (r *statsRows) Next() bool {
	r.i++
	return r.i <= len(r.reports)
}

// Values implements pgx.CopyFromSource.
func (r *statsRows) Values() ([]any, error) {
	s := &r.reports[r.i-1]
	if s.At.IsZero() {
		return nil, errors.New("a statistics report without its time")
	}
	r.row[0], r.row[1], r.row[2] = &s.HostID, nil, &s.At
	if len(s.Stats) > 0 {
		// As bytes: pgx encodes a json.RawMessage through json.Marshal (a
		// copy of each document).
		r.row[1] = (*[]byte)(&s.Stats)
	}
	return r.row[:], nil
}

// Err implements pgx.CopyFromSource.
func (r *statsRows) Err() error { return nil }
