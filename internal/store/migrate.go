package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one numbered SQL file.
type migration struct {
	Version int
	Name    string
	SQL     string
}

// migrations lists a dialect's migrations, in order. Files are named
// NNNN_name.sql; both dialects have the same versions and names.
func migrations(b Backend) ([]migration, error) {
	dir := "migrations/" + string(b)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(migrationFiles, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{Version: v, Name: rest, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%s migrations: version %d where %d was expected", b, m.Version, i+1)
		}
	}
	return out, nil
}

// LatestSchemaVersion is the schema version this polyvirt migrates to.
func LatestSchemaVersion() int {
	ms, err := migrations(SQLite)
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate applies the pending migrations in one transaction and records
// them in schema_migrations. lock, when set, runs first in the transaction
// to keep two engines from migrating at once (PostgreSQL's advisory
// transaction lock; SQLite's write transaction is exclusive already).
// It refuses a database migrated by a newer polyvirt.
func migrate(ctx context.Context, db *sql.DB, d *dialect, lock string, lockArgs ...any) (int, error) {
	ms, err := migrations(d.backend)
	if err != nil {
		return 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, d.wrap(ctx, err, "migrate", "schema")
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if lock != "" {
		if _, err := tx.ExecContext(ctx, d.q(lock), lockArgs...); err != nil {
			return 0, d.wrap(ctx, err, "migrate", "schema")
		}
	}
	appliedType := "TEXT"
	if d.backend == Postgres {
		appliedType = "TIMESTAMPTZ"
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at `+appliedType+` NOT NULL)`); err != nil {
		return 0, d.wrap(ctx, err, "migrate", "schema")
	}
	applied := map[int]string{}
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return 0, d.wrap(ctx, err, "migrate", "schema")
	}
	for rows.Next() {
		var v int
		var n string
		if err := rows.Scan(&v, &n); err != nil {
			rows.Close()
			return 0, d.wrap(ctx, err, "migrate", "schema")
		}
		applied[v] = n
	}
	if err := rows.Close(); err != nil {
		return 0, d.wrap(ctx, err, "migrate", "schema")
	}
	if err := rows.Err(); err != nil {
		return 0, d.wrap(ctx, err, "migrate", "schema")
	}
	latest := len(ms)
	for v, n := range applied {
		if v > latest {
			return 0, newErr(ErrInvalid, "migrate", "schema", "version",
				fmt.Sprintf("the database has schema version %d (%s), newer than this polyvirt knows (%d): use a newer polyvirt", v, n, latest))
		}
		if ms[v-1].Name != n {
			return 0, newErr(ErrInvalid, "migrate", "schema", "version",
				fmt.Sprintf("the database's migration %d is %q, this polyvirt's is %q", v, n, ms[v-1].Name))
		}
	}
	for _, m := range ms {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return 0, d.wrap(ctx, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err), "migrate", "schema")
		}
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.Version, m.Name, d.ts(now())); err != nil {
			return 0, d.wrap(ctx, err, "migrate", "schema")
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, d.wrap(ctx, err, "migrate", "schema")
	}
	return latest, nil
}
