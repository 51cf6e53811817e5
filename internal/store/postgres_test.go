package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"polyvirt/internal/store"
)

// TestPostgresConcurrentOpen: engines starting together on a new schema
// migrate it once.
func TestPostgresConcurrentOpen(t *testing.T) {
	dsn := postgresDSN(t)
	schema := newSchema(t, dsn)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]store.Store, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			stores[i], errs[i] = store.OpenPostgres(ctx, dsn, pgOptions(schema))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("engine %d: %v", i, err)
			continue
		}
		v, err := stores[i].SchemaVersion(ctx)
		if err != nil || v != store.LatestSchemaVersion() {
			t.Errorf("engine %d: schema version %d, %v", i, v, err)
		}
		stores[i].Close()
	}
	conn := pgConn(t, dsn)
	var rows int
	if err := conn.QueryRow(ctx, "SELECT COUNT(*) FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != store.LatestSchemaVersion() {
		t.Errorf("schema_migrations has %d rows; want %d", rows, store.LatestSchemaVersion())
	}
	// A newer schema is refused.
	if _, err := conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+" VALUES (999, 'future', now())"); err != nil {
		t.Fatal(err)
	}
	_, err := store.OpenPostgres(ctx, dsn, pgOptions(schema))
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "newer than this polyvirt") {
		t.Errorf("open a newer schema: %v", err)
	}
}

func pgConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

// TestPostgresMoreCallersThanConnections: many callers on a store of two
// connections all get through, queries and transactions alike — the
// connections database/sql keeps between queries are the pool's, and it
// must never ask the pool for a third while it keeps one idle (that ask
// would wait for ever).
func TestPostgresMoreCallersThanConnections(t *testing.T) {
	dsn := postgresDSN(t)
	opts := pgOptions(newSchema(t, dsn))
	opts.MaxConns = 2
	s, err := store.OpenPostgres(ctx, dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := store.Cluster{Name: "c"}
	if err := s.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 25 {
				id := fmt.Sprintf("w%d-%d", w, n)
				if err := s.InTx(cctx, func(tx store.Tx) error {
					h := store.Host{ID: id, Name: id, Address: "a:1", ClusterID: c.ID}
					return tx.CreateHost(cctx, &h)
				}); err != nil {
					errs <- fmt.Errorf("create %s: %w", id, err)
					return
				}
				if _, err := s.GetHost(cctx, id); err != nil {
					errs <- fmt.Errorf("get %s: %w", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if hosts, err := s.ListHosts(ctx, store.HostFilter{}); err != nil || len(hosts) != 16*25 {
		t.Errorf("%d hosts, %v; want %d", len(hosts), err, 16*25)
	}
}

// TestPostgresTwoEngines: two stores on one schema see each other's writes
// and conflict on stale versions.
func TestPostgresTwoEngines(t *testing.T) {
	dsn := postgresDSN(t)
	schema := newSchema(t, dsn)
	a, err := store.OpenPostgres(ctx, dsn, pgOptions(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := store.OpenPostgres(ctx, dsn, pgOptions(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := store.Cluster{Name: "power"}
	if err := a.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	cb, err := b.GetClusterByName(ctx, "power")
	if err != nil || cb.ID != c.ID {
		t.Fatalf("engine b reads %+v, %v", cb, err)
	}
	c.CPUType = "IBM POWER8"
	if err := a.UpdateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	cb.CPUType = "IBM POWER9"
	if err := b.UpdateCluster(ctx, &cb); !errors.Is(err, store.ErrConflict) {
		t.Errorf("engine b's stale update: %v; want a conflict", err)
	}
	if err := b.CreateCluster(ctx, &store.Cluster{Name: "power"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("engine b's duplicate: %v", err)
	}
}

// TestPostgresLeaderElection: of two engines one leads; when its lock's
// connection closes or is killed, the other's next try leads.
func TestPostgresLeaderElection(t *testing.T) {
	dsn := postgresDSN(t)
	schema := newSchema(t, dsn)
	open := func() store.Store {
		s, err := store.OpenPostgres(ctx, dsn, pgOptions(schema))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	acquire := func(s store.Store, want bool, what string) store.Leadership {
		t.Helper()
		l, ok, err := s.TryAcquireLeadership(ctx, store.RoleMonitoring)
		if err != nil || ok != want {
			t.Fatalf("%s: granted %v, %v; want %v", what, ok, err, want)
		}
		return l
	}
	la := acquire(a, true, "a first")
	acquire(b, false, "b while a leads")
	// Another installation (schema) on the same database has its own lock.
	other, err := store.OpenPostgres(ctx, dsn, pgOptions(newSchema(t, dsn)))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	acquire(other, true, "another schema")

	// 1. a releases.
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb := acquire(b, true, "b after a released")
	acquire(a, false, "a while b leads")

	// 2. b's lock connection is killed (its process died, the network
	// broke): the lock goes at once, b notices within its check interval.
	conn := pgConn(t, dsn)
	tag, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
		"polyvirt leader "+schema+"/"+store.RoleMonitoring)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("terminate b's lock connection: %v (%d rows)", err, tag.RowsAffected())
	}
	select {
	case <-lb.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("b did not notice that its lock's connection was killed")
	}
	if err := lb.Check(ctx); err == nil {
		t.Error("b's Check passed after the loss")
	}
	la = waitLeadership(t, a, 5*time.Second)

	// 3. a's store is closed (the engine stops).
	a.Close()
	select {
	case <-la.Lost():
	case <-time.After(time.Second):
		t.Error("Close did not end a's leadership")
	}
	lb = waitLeadership(t, b, 5*time.Second)
	if err := lb.Check(ctx); err != nil {
		t.Error(err)
	}
}

func waitLeadership(t *testing.T, s store.Store, within time.Duration) store.Leadership {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l, ok, err := s.TryAcquireLeadership(ctx, store.RoleMonitoring)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leadership within %v", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPostgresLeaderProcessKilled runs an engine in another process, lets
// it lead, kills it (SIGKILL), and takes over.
func TestPostgresLeaderProcessKilled(t *testing.T) {
	if os.Getenv("POLYVIRT_STORE_LEADER_HELPER") == "1" {
		leaderHelper()
		return
	}
	dsn := postgresDSN(t)
	schema := newSchema(t, dsn)
	s, err := store.OpenPostgres(ctx, dsn, pgOptions(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresLeaderProcessKilled$", "-test.count=1")
	cmd.Env = append(os.Environ(), "POLYVIRT_STORE_LEADER_HELPER=1", "POLYVIRT_STORE_LEADER_SCHEMA="+schema)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		if line != "LEADER" {
			t.Fatalf("the other engine says %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the other engine did not start")
	}
	if _, ok, err := s.TryAcquireLeadership(ctx, store.RoleMonitoring); err != nil || ok {
		t.Fatalf("granted while the other engine leads: %v %v", ok, err)
	}
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l := waitLeadership(t, s, 10*time.Second)
	t.Logf("took over %v after the leader was killed", time.Since(killed).Round(time.Millisecond))
	if err := l.Check(ctx); err != nil {
		t.Error(err)
	}
}

// leaderHelper is the other engine: lead, say so, wait to be killed.
func leaderHelper() {
	s, err := store.OpenPostgres(context.Background(), os.Getenv("POLYVIRT_TEST_POSTGRES"),
		pgOptions(os.Getenv("POLYVIRT_STORE_LEADER_SCHEMA")))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	_, ok, err := s.TryAcquireLeadership(context.Background(), store.RoleMonitoring)
	if err != nil || !ok {
		fmt.Println("NOT", ok, err)
		os.Exit(1)
	}
	fmt.Println("LEADER")
	time.Sleep(time.Minute)
	os.Exit(1)
}
