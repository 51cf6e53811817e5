package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/store"
)

// postgresDSN is the test PostgreSQL server (scripts/test.sh starts it and
// sets POLYVIRT_TEST_POSTGRES).
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("POLYVIRT_TEST_POSTGRES")
	if dsn == "" {
		missing(t, "a PostgreSQL server (POLYVIRT_TEST_POSTGRES)")
	}
	return dsn
}

// pgSchema is a new schema name, dropped with the test.
func pgSchema(t *testing.T, dsn string) string {
	t.Helper()
	schema := "e2e_engine_" + randomSuffix()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// TestEngineTwoEnginesPostgres runs two engine processes of one
// installation on one PostgreSQL database: one leads the monitoring, the
// other serves the API; the leader is killed and the other takes over.
func TestEngineTwoEnginesPostgres(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	dsn := postgresDSN(t)
	schema := pgSchema(t, dsn)
	ctx := context.Background()

	// The database URL through the environment, not the command line; its
	// password is in no file init wrote, nor in the second engine's copies:
	// each run gets it from its environment.
	a := initEngine(t, "engine-a", []string{"POLYVIRT_DB=" + dsn}, "--db-schema", schema)
	_, password := store.SplitPassword(dsn)
	if password == "" {
		t.Fatalf("the test database's URL has no password")
	}
	noFileHolds(t, a.dir, password)
	a.start()
	b := a.clone(t, "engine-b")
	noFileHolds(t, b.dir, password)
	b.start()
	if info, err := a.api.Info(ctx); err != nil || !info.Leader || info.Backend != "postgres" {
		t.Fatalf("engine a: %+v %v; want the leader on postgres", info, err)
	}
	if info, err := b.api.Info(ctx); err != nil || info.Leader {
		t.Fatalf("engine b: %+v %v; want a follower", info, err)
	}
	// A second init on that database is refused.
	if out, errOut, code := runCLI(t, []string{"POLYVIRT_DB=" + dsn}, "", "engine", "init", "--data-dir", t.TempDir()+"/x", "--db-schema", schema); code == 0 || !strings.Contains(errOut, "already belongs to an engine") {
		t.Errorf("engine init on a used database: exit %d\n%s%s", code, out, errOut)
	}

	c := newCLI(t)
	c.run(a.token+"\n", "login", "--engine", a.url, "--ca-file", a.caFile)
	c.run("", "cluster", "create", "power", "--arch", "ppc64le")
	agent := joinAgent(t, c, a, "power8", "power", "--profile", "s822l-power8e")
	waitHost(t, a.api, "power8", 60*time.Second, func(h engineapi.Host) bool { return h.Status == "Up" && !h.LastSeen.IsZero() })
	// Engine b sees what engine a did.
	if h, err := b.api.Host(ctx, "power8", false); err != nil || h.Status != "Up" || h.CPUType != "IBM POWER8" {
		t.Errorf("host through engine b: %+v %v", h, err)
	}

	// The leader dies; b takes over.
	a.kill9()
	killed := time.Now()
	deadline := killed.Add(20 * time.Second)
	for {
		info, err := b.api.Info(ctx)
		if err == nil && info.Leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine b did not take over the monitoring within 20s (%+v %v)", info, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("engine b took over %s after engine a was killed", time.Since(killed).Round(10*time.Millisecond))
	page, err := b.api.Events(ctx, client.EventFilter{Kind: "engine", Action: "engine.leader"})
	if err != nil || len(page.Events) == 0 || page.Events[0].Message != "Engine engine-b took over the host monitoring." {
		t.Errorf("leader events: %+v %v", page.Events, err)
	}
	h, _ := b.api.Host(ctx, "power8", false)
	waitHost(t, b.api, "power8", 20*time.Second, func(x engineapi.Host) bool { return x.Status == "Up" && x.LastSeen.After(h.LastSeen) })

	// Engine b drives the statuses now.
	agent.kill9()
	waitHost(t, b.api, "power8", 30*time.Second, hostStatus("NonResponsive"))
	agent.start()
	waitHost(t, b.api, "power8", 60*time.Second, hostStatus("Up"))

	// Engine a comes back as a follower.
	a.start()
	if info, err := a.api.Info(ctx); err != nil || info.Leader {
		t.Errorf("engine a restarted: %+v %v; want a follower", info, err)
	}
	if hs, err := a.api.Hosts(ctx, client.HostFilter{}); err != nil || len(hs) != 1 || hs[0].Status != "Up" {
		t.Errorf("hosts through the restarted engine a: %+v %v", hs, err)
	}
}

// noFileHolds fails the test when a file under dir holds secret.
func noFileHolds(t *testing.T, dir, secret string) {
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
		if strings.Contains(string(b), secret) {
			t.Errorf("%s holds the database password", path)
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walking %s: %v (%d files)", dir, err, n)
	}
}
