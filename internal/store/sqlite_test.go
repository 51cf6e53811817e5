package store_test

import (
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/store"
)

func TestSQLiteReopenKeepsDataAndMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "polyvirt.db") // the directory is created
	s, err := store.Open(ctx, "sqlite:"+path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := store.Cluster{Name: "power"}
	if err := s.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		s, err := store.Open(ctx, path, store.Options{})
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		got, err := s.GetClusterByName(ctx, "power")
		if err != nil || got.ID != c.ID {
			t.Errorf("reopen %d: cluster %+v, %v", i, got, err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != store.LatestSchemaVersion() {
			t.Errorf("reopen %d: schema version %d, %v", i, v, err)
		}
		s.Close()
	}
	db := rawSQLite(t, path)
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != store.LatestSchemaVersion() {
		t.Errorf("schema_migrations has %d rows (%v); want %d", n, err, store.LatestSchemaVersion())
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q, %v; want wal", mode, err)
	}
}

// migratedSQLite makes a SQLite database file migrated to the latest
// schema, closed, and answers its path.
func migratedSQLite(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "polyvirt.db")
	s, err := store.OpenSQLite(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	return path
}

func rawSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSQLiteNewerSchemaRefused(t *testing.T) {
	path := migratedSQLite(t)
	if _, err := rawSQLite(t, path).Exec(`INSERT INTO schema_migrations VALUES (999, 'future', '2099-01-01T00:00:00.000000Z')`); err != nil {
		t.Fatal(err)
	}
	_, err := store.OpenSQLite(ctx, path, store.Options{})
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "newer than this polyvirt") {
		t.Errorf("open a newer schema: %v", err)
	}
}

func TestOpenBadURLs(t *testing.T) {
	cases := []struct {
		url  string
		kind error
	}{
		{"", store.ErrInvalid},
		{"mysql://x", store.ErrInvalid},
		{"sqlite:/tmp/a?b.db", store.ErrInvalid},
		{"postgres://user:secret@[::1", store.ErrInvalid},
	}
	for _, c := range cases {
		s, err := store.Open(ctx, c.url, store.Options{})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, c.kind) {
			t.Errorf("Open(%q) = %v; want %v", c.url, err, c.kind)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q): the error shows the password: %v", c.url, err)
		}
	}
	_, err := store.OpenPostgres(ctx, "postgres://u@127.0.0.1:1/db", store.Options{Schema: "Bad-Schema"})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad schema name: %v", err)
	}
	// Nothing listens on port 1: unavailable, retryable, no password shown.
	_, err = store.OpenPostgres(ctx, "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2", store.Options{})
	if !store.IsRetryable(err) || strings.Contains(err.Error(), "secret") {
		t.Errorf("open an unreachable server: %v", err)
	}
}

// TestSQLiteFileDeleted deletes the database under an open store: every
// call fails with ErrStorage saying so, and no new empty file appears.
func TestSQLiteFileDeleted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "polyvirt.db")
	s, err := store.OpenSQLite(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := store.Cluster{Name: "power"}
	if err := s.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	calls := map[string]error{
		"create": s.CreateCluster(ctx, &store.Cluster{Name: "x86"}),
		"update": func() error { c.Description = "x"; return s.UpdateCluster(ctx, &c) }(),
		"get":    func() error { _, err := s.GetCluster(ctx, c.ID); return err }(),
		"list":   func() error { _, err := s.ListClusters(ctx); return err }(),
		"event":  s.AppendEvent(ctx, &store.Event{Action: "a", Message: "m"}),
		"tx":     s.InTx(ctx, func(tx store.Tx) error { return nil }),
		"ping":   s.Ping(ctx),
	}
	for name, err := range calls {
		if !errors.Is(err, store.ErrStorage) || !strings.Contains(err.Error(), "deleted while polyvirt had it open") {
			t.Errorf("%s after deletion: %v", name, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a database file reappeared: %v", err)
	}
}

// TestSQLiteFileReplaced swaps the file under an open store.
func TestSQLiteFileReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "polyvirt.db")
	s, err := store.OpenSQLite(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other := filepath.Join(dir, "other.db")
	o, err := store.OpenSQLite(ctx, other, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	err = s.CreateCluster(ctx, &store.Cluster{Name: "power"})
	if !errors.Is(err, store.ErrStorage) || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("create after replacement: %v", err)
	}
}

// TestSQLiteDiskFull fills a small tmpfs: the failing transactions leave
// nothing half-written, the error says the disk is full, and the store
// works again once there is room. It needs root (mount); elsewhere the
// same fault is tested with max_page_count (TestSQLiteFull).
func TestSQLiteDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs; TestSQLiteFull covers SQLITE_FULL without it")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); TestSQLiteFull covers SQLITE_FULL", err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	}()
	path := filepath.Join(dir, "polyvirt.db")
	s, err := store.OpenSQLite(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ballast := filepath.Join(dir, "ballast")
	fillUntilFull(t, s, func() {
		// Make room.
		if err := os.Remove(ballast); err != nil {
			t.Error(err)
		}
	}, func() {
		// Take the disk but 256 KiB: room for a few hosts, then full.
		f, err := os.Create(ballast)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		var size int64
		for {
			n, err := f.Write(buf)
			size += int64(n)
			if err != nil {
				break
			}
		}
		if err := f.Truncate(size - 256<<10); err != nil {
			t.Fatal(err)
		}
	})
}

// fillUntilFull writes hosts, each with its event in one transaction,
// until the storage is full (fill makes it so), checks the error and that
// every host has its event, then makes room (free) and writes again.
func fillUntilFull(t *testing.T, s store.Store, free, fill func()) {
	t.Helper()
	c := store.Cluster{Name: "c"}
	if err := s.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	caps := []byte(`{"pad": "` + strings.Repeat("x", 8000) + `"}`)
	write := func(i int) error {
		return s.InTx(ctx, func(tx store.Tx) error {
			h := store.Host{Name: "h" + strconv.Itoa(i), Address: "a:1", ClusterID: c.ID, Capabilities: caps}
			if err := tx.CreateHost(ctx, &h); err != nil {
				return err
			}
			return tx.AppendEvent(ctx, &store.Event{Action: "host.add", ObjectKind: "host", ObjectID: h.ID, Message: "added " + h.Name})
		})
	}
	fill()
	var full error
	i := 0
	for ; i < 10000; i++ {
		if err := write(i); err != nil {
			full = err
			break
		}
	}
	if full == nil {
		t.Fatal("the storage never filled up")
	}
	if i == 0 {
		t.Error("the first write failed already: the test does not exercise a disk filling up")
	}
	if !errors.Is(full, store.ErrStorage) || !strings.Contains(full.Error(), "disk is full") {
		t.Errorf("error when full: %v", full)
	}
	t.Logf("full after %d hosts: %v", i, full)
	checkHostsHaveEvents(t, s)
	free()
	if err := write(i + 1); err != nil {
		t.Errorf("write after making room: %v", err)
	}
	checkHostsHaveEvents(t, s)
}

// checkHostsHaveEvents checks that hosts and their "host.add" events were
// written together: every host has exactly one, every event its host.
func checkHostsHaveEvents(t *testing.T, s store.Store) (hosts int) {
	t.Helper()
	list, err := s.ListHosts(ctx, store.HostFilter{})
	if err != nil {
		t.Fatalf("list hosts: %v", err)
	}
	events := map[string]int{}
	f := store.EventFilter{Action: "host.add", Limit: 1000}
	for {
		page, err := s.ListEvents(ctx, f)
		if err != nil {
			t.Fatalf("list events: %v", err)
		}
		for _, e := range page.Events {
			events[e.ObjectID]++
		}
		if page.Next == 0 {
			break
		}
		f.Before = page.Next
	}
	for _, h := range list {
		if events[h.ID] != 1 {
			t.Errorf("host %s has %d host.add events; want 1", h.Name, events[h.ID])
		}
		delete(events, h.ID)
	}
	for id, n := range events {
		t.Errorf("%d host.add events for host %s, which does not exist (half-written)", n, id)
	}
	return len(list)
}

// TestSQLiteOneLeaderPerFile: stores of one process on one file share
// leadership; closing the holder frees the role.
func TestSQLiteOneLeaderPerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "polyvirt.db")
	a, err := store.OpenSQLite(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.OpenSQLite(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	la, ok, err := a.TryAcquireLeadership(ctx, store.RoleMonitoring)
	if err != nil || !ok {
		t.Fatalf("a: %v %v", ok, err)
	}
	if _, ok, err := b.TryAcquireLeadership(ctx, store.RoleMonitoring); err != nil || ok {
		t.Fatalf("b got the role a holds: %v %v", ok, err)
	}
	a.Close()
	select {
	case <-la.Lost():
	case <-time.After(time.Second):
		t.Error("closing the store did not end its leadership")
	}
	lb, ok, err := b.TryAcquireLeadership(ctx, store.RoleMonitoring)
	if err != nil || !ok {
		t.Fatalf("b after a closed: %v %v", ok, err)
	}
	if err := lb.Check(ctx); err != nil {
		t.Error(err)
	}
}
