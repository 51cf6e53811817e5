package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"polyvirt/internal/store"
)

var ctx = context.Background()

// required tells whether the real components (here PostgreSQL) must be
// there: scripts/test.sh sets POLYVIRT_REQUIRE_LIBVIRT=1.
func required() bool { return os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" }

var (
	pgOnce sync.Once
	pgErr  error
)

// postgresDSN is the test server's DSN (POLYVIRT_TEST_POSTGRES); without
// it, or when the server does not answer, the test fails when real
// components are required and is skipped otherwise.
func postgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("POLYVIRT_TEST_POSTGRES")
	if dsn == "" {
		if required() {
			tb.Fatal("POLYVIRT_TEST_POSTGRES is not set and POLYVIRT_REQUIRE_LIBVIRT=1: run scripts/test.sh (ensure_postgres)")
		}
		tb.Skip("POLYVIRT_TEST_POSTGRES is not set: skipping the PostgreSQL tests (scripts/lib.sh ensure_postgres sets it)")
	}
	pgOnce.Do(func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, dsn)
		if err != nil {
			pgErr = err
			return
		}
		pgErr = conn.Ping(cctx)
		conn.Close(cctx)
	})
	if pgErr != nil {
		if required() {
			tb.Fatalf("PostgreSQL at POLYVIRT_TEST_POSTGRES does not answer: %v", pgErr)
		}
		tb.Skipf("PostgreSQL at POLYVIRT_TEST_POSTGRES does not answer, skipping: %v", pgErr)
	}
	return dsn
}

// newSchema names a fresh schema and drops it (with everything in it)
// when the test ends.
func newSchema(tb testing.TB, dsn string) string {
	tb.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	schema := "polyvirt_test_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, dsn)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(cctx)
		if _, err := conn.Exec(cctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func pgOptions(schema string) store.Options {
	return store.Options{Schema: schema, MaxConns: 6, LeaderCheckInterval: 200 * time.Millisecond}
}

// openPostgres opens a store in a schema of its own.
func openPostgres(tb testing.TB) store.Store {
	tb.Helper()
	dsn := postgresDSN(tb)
	schema := newSchema(tb, dsn)
	s, err := store.OpenPostgres(ctx, dsn, pgOptions(schema))
	if err != nil {
		tb.Fatalf("open PostgreSQL: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// openSQLite opens a store in a file of its own.
func openSQLite(tb testing.TB) store.Store {
	tb.Helper()
	s, err := store.OpenSQLite(ctx, filepath.Join(tb.TempDir(), "polyvirt.db"), store.Options{})
	if err != nil {
		tb.Fatalf("open SQLite: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// eachStore runs test on a fresh store of each backend, as a subtest named
// after it (PostgreSQL's needs POLYVIRT_TEST_POSTGRES: postgresDSN).
func eachStore(t *testing.T, test func(t *testing.T, s store.Store)) {
	for _, b := range []struct {
		name string
		open func(testing.TB) store.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		t.Run(b.name, func(t *testing.T) {
			if b.name == "postgres" {
				postgresDSN(t)
			}
			test(t, b.open(t))
		})
	}
}
