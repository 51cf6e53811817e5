package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestMigrateUsersToRoles: a SQLite database of schema 1 (admin and
// readonly only) is migrated to the vm-manager role: its users are kept,
// a vm-manager can be added, an unknown role is still refused by the
// database itself.
func TestMigrateUsersToRoles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "polyvirt.db")
	ms, err := migrations(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{ms[0].SQL,
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '` + ms[0].Name + `', '2026-01-01T00:00:00.000000Z')`,
		`INSERT INTO users (id, name, role, token_hash, version, created_at, updated_at)
		 VALUES ('u1', 'admin', 'admin', 'abc', 3, '2026-01-01T00:00:00.000000Z', '2026-01-02T00:00:00.000000Z')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("schema 1: %v", err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO users (id, name, role, version, created_at, updated_at)
		VALUES ('u2', 'op', 'vm-manager', 1, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')`); err == nil {
		t.Fatal("schema 1 took a vm-manager")
	}
	db.Close()

	st, err := OpenSQLite(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.SchemaVersion(ctx); err != nil || v != LatestSchemaVersion() || v < 2 {
		t.Fatalf("schema version %d %v", v, err)
	}
	u, err := st.GetUserByTokenHash(ctx, "abc")
	if err != nil || u.ID != "u1" || u.Role != RoleAdmin || u.Version != 3 {
		t.Errorf("the administrator after the migration: %+v %v", u, err)
	}
	op := User{Name: "op", Role: RoleVMManager}
	if err := st.CreateUser(ctx, &op); err != nil {
		t.Errorf("a vm-manager after the migration: %v", err)
	}
	raw := st.(*sqlStore).db
	if _, err := raw.ExecContext(ctx, `INSERT INTO users (id, name, role, version, created_at, updated_at)
		VALUES ('u3', 'root', 'superuser', 1, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')`); err == nil {
		t.Error("the migrated table took an unknown role")
	}
}
