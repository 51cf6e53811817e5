package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/store"
)

// postgresDSN is the test server's DSN; without it the test is skipped
// (failed when the project's test command requires the real services).
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("POLYVIRT_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" {
			t.Fatal("POLYVIRT_TEST_POSTGRES is not set: run scripts/test.sh (ensure_postgres)")
		}
		t.Skip("POLYVIRT_TEST_POSTGRES is not set")
	}
	return dsn
}

func randomName(prefix string) string {
	var b [5]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// TestPostgresConnectionsLost kills every database connection of a
// PostgreSQL engine, three times, while clients use the API and the
// monitor writes (what a server restart does to its clients): the API
// answers or says 503 DATABASE_UNAVAILABLE, never anything else; the engine
// takes the lead back; no host is marked NonResponsive for it; the
// statistics are written again.
func TestPostgresConnectionsLost(t *testing.T) {
	base := postgresDSN(t)
	schema := randomName("engine_test_")
	app := randomName("polyvirt_test_")
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	dsn := base + sep + "application_name=" + app
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		admin.Close(context.Background())
	})

	dir := t.TempDir()
	res, err := Init(ctx, InitOptions{DataDir: dir, Name: "localhost", DB: dsn, DBSchema: schema, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	mc := testMonitor
	e, err := Open(ctx, Config{DataDir: dir, DB: dsn, URL: "https://" + ln.Addr().String(), Monitor: mc,
		Store:  store.Options{LeaderCheckInterval: 300 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.Serve(sctx, ln); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		e.Close()
		if t.Failed() {
			t.Logf("engine log:\n%s", logs.String())
		}
	})
	caPEM, _ := os.ReadFile(filepath.Join(dir, FileCA))
	te := &testEngine{e: e, dir: dir, url: "https://" + ln.Addr().String(), token: res.AdminToken, caPEM: caPEM, log: logs}
	te.admin = te.client(t, res.AdminToken)

	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power"}); err != nil {
		t.Fatal(err)
	}
	names := []string{"h1", "h2", "h3"}
	for _, n := range names {
		simHost(t, te, sim, n, "s822l-power8e", "power")
	}
	for _, n := range names {
		waitHost(t, te.admin, n, 10*time.Second, status("Up"))
	}

	// Load: readers and writers until the end.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := map[string]int{}
	var ok, unavailable atomic.Int64
	record := func(err error) {
		switch code := api.CodeOf(err); {
		case err == nil:
			ok.Add(1)
		case code == api.CodeDatabaseUnavailable:
			unavailable.Add(1)
		default:
			mu.Lock()
			bad[err.Error()]++
			mu.Unlock()
		}
	}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				if i == 0 {
					_, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: randomName("c")})
					record(err)
				} else {
					_, err := te.admin.Hosts(ctx, client.HostFilter{})
					record(err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(i)
	}
	for round := 0; round < 3; round++ {
		time.Sleep(500 * time.Millisecond)
		var killed int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN ($1, $2)`,
			app, "polyvirt leader "+schema+"/monitoring").Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Errorf("round %d: no engine connection to kill", round)
		}
	}
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("answers other than success or %s while connections were lost: %v", api.CodeDatabaseUnavailable, bad)
	}
	t.Logf("%d calls answered, %d said %s", ok.Load(), unavailable.Load(), api.CodeDatabaseUnavailable)
	if !strings.Contains(logs.String(), "lost the lead") {
		t.Errorf("the engine did not notice that it lost the lead with its connection")
	}

	// The engine leads again, the hosts stayed Up, the statistics flow.
	deadline := time.Now().Add(10 * time.Second)
	for !e.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !e.IsLeader() {
		t.Fatalf("the engine did not take the lead back")
	}
	after := time.Now()
	for _, n := range names {
		h := waitHost(t, te.admin, n, 10*time.Second, func(h engineapi.Host) bool { return h.LastSeen.After(after) })
		if h.Status != "Up" {
			t.Errorf("host %s: %s %q", n, h.Status, h.StatusMessage)
		}
	}
	page, err := te.admin.Events(ctx, client.EventFilter{Action: "host.status", Code: api.CodeAgentUnreachable})
	if err != nil || len(page.Events) > 0 {
		t.Errorf("hosts marked unreachable because the database was: %+v %v", page.Events, err)
	}
}

// TestInitKeepsTheDatabasePasswordOut: engine init with a PostgreSQL URL
// holding the password (as POLYVIRT_DB gives it) writes it into no file of
// the data directory; the engine runs with the password from the
// environment (the whole URL again, or PGPASSWORD) or from a 0600 file
// engine.json names — and without any of them it cannot connect.
func TestInitKeepsTheDatabasePasswordOut(t *testing.T) {
	dsn := postgresDSN(t)
	clean, password := store.SplitPassword(dsn)
	if len(password) < 6 {
		t.Fatalf("the test database's URL has no password worth looking for (%q)", clean)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	newSchema := func() string {
		schema := randomName("engine_secret_")
		t.Cleanup(func() {
			admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		})
		return schema
	}
	// No password from the environment unless a case gives one.
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "no-pgpass"))
	noSecretIn := func(dir string) {
		t.Helper()
		n := 0
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			n++
			if strings.Contains(string(b), password) {
				t.Errorf("%s holds the database password", path)
			}
			return nil
		})
		if err != nil || n < 7 {
			t.Fatalf("walking %s: %v (%d files)", dir, err, n)
		}
	}
	open := func(cfg Config) error {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		e, err := Open(ctx, cfg)
		if err == nil {
			e.Close()
		}
		return err
	}

	// The password in the URL: used to create the database, kept nowhere.
	dir := t.TempDir()
	res, err := Init(ctx, InitOptions{DataDir: dir, Name: "localhost", DB: dsn, DBSchema: newSchema(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	noSecretIn(dir)
	s, err := LoadSettings(dir)
	if err != nil || s.DB != clean || s.DBPasswordFile != "" {
		t.Errorf("engine.json: %+v %v; want the URL %q without its password", s, err, clean)
	}
	if res.Database != clean || !strings.Contains(res.DatabasePassword, "not stored") {
		t.Errorf("init's answer: database %q, password %q", res.Database, res.DatabasePassword)
	}
	if err := open(Config{DataDir: dir}); err == nil {
		t.Errorf("the engine connected without being given the password: it is stored somewhere")
	}
	if err := open(Config{DataDir: dir, DB: dsn}); err != nil {
		t.Errorf("the engine with the URL from the environment (POLYVIRT_DB): %v", err)
	}
	t.Setenv("PGPASSWORD", password)
	if err := open(Config{DataDir: dir}); err != nil {
		t.Errorf("the engine with PGPASSWORD: %v", err)
	}
	t.Setenv("PGPASSWORD", "")

	// A secret file: refused while others may read it.
	secret := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(secret, []byte(password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := open(Config{DataDir: dir, DBPasswordFile: secret}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a secret file others may read: %v; want a refusal", err)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := open(Config{DataDir: dir, DBPasswordFile: secret}); err != nil {
		t.Errorf("the engine with --db-password-file: %v", err)
	}

	// Init with the secret file: engine.json names it; the runs read it.
	dir2 := t.TempDir()
	if _, err := Init(ctx, InitOptions{DataDir: dir2, Name: "localhost", DB: clean, DBPasswordFile: secret, DBSchema: newSchema(), Listen: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	noSecretIn(dir2)
	if s, err := LoadSettings(dir2); err != nil || s.DB != clean || s.DBPasswordFile != secret {
		t.Errorf("engine.json: %+v %v; want the URL without password and the secret file", s, err)
	}
	if err := open(Config{DataDir: dir2}); err != nil {
		t.Errorf("the engine with engine.json's dbPasswordFile: %v", err)
	}
}
