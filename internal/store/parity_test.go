package store_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"polyvirt/internal/store"
)

// TestSchemaParity: both backends migrated to the same version have the
// same tables, columns and indexes.
func TestSchemaParity(t *testing.T) {
	db := rawSQLite(t, migratedSQLite(t))
	lite := map[string][]string{}
	rows, err := db.Query(`SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		lite[table] = append(lite[table], col)
	}
	rows.Close()
	rows, err = db.Query(`SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, idx string
		if err := rows.Scan(&table, &idx); err != nil {
			t.Fatal(err)
		}
		lite["index "+table] = append(lite["index "+table], idx)
	}
	rows.Close()
	for k := range lite {
		if strings.HasPrefix(k, "index ") {
			sort.Strings(lite[k])
		}
	}
	if len(lite) < 7 {
		t.Fatalf("SQLite schema has only %v", lite)
	}

	dsn := postgresDSN(t)
	schema := newSchema(t, dsn)
	ps, err := store.OpenPostgres(ctx, dsn, pgOptions(schema))
	if err != nil {
		t.Fatal(err)
	}
	ps.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pg := map[string][]string{}
	prows, err := conn.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = $1 ORDER BY table_name, ordinal_position`, schema)
	if err != nil {
		t.Fatal(err)
	}
	for prows.Next() {
		var table, col string
		if err := prows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		pg[table] = append(pg[table], col)
	}
	prows.Close()
	// Indexes of PRIMARY KEY and UNIQUE constraints are implicit in SQLite.
	prows, err = conn.Query(ctx, `SELECT tablename, indexname FROM pg_indexes WHERE schemaname = $1
		AND indexname NOT LIKE '%\_pkey' AND indexname NOT LIKE '%\_key' ORDER BY indexname`, schema)
	if err != nil {
		t.Fatal(err)
	}
	for prows.Next() {
		var table, idx string
		if err := prows.Scan(&table, &idx); err != nil {
			t.Fatal(err)
		}
		pg["index "+table] = append(pg["index "+table], idx)
	}
	prows.Close()
	if diff := cmp.Diff(lite, pg); diff != "" {
		t.Errorf("schemas differ (-sqlite +postgres):\n%s", diff)
	}
}
