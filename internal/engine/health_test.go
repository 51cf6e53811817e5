package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
)

// immutable makes files immutable with chattr +i (undone when the test
// ends); false when this machine's file system or user cannot.
func immutable(t *testing.T, files ...string) bool {
	t.Helper()
	probe := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(probe, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if exec.Command("chattr", "+i", probe).Run() != nil {
		return false
	}
	refused := os.WriteFile(probe, []byte("y"), 0o600) != nil
	_ = exec.Command("chattr", "-i", probe).Run()
	if !refused {
		return false
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		if out, err := exec.Command("chattr", "+i", f).CombinedOutput(); err != nil {
			t.Fatalf("chattr +i %s: %v %s", f, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", f).Run() })
	}
	return true
}

// TestHealthWithImmutableDatabase: with the SQLite files made immutable
// (the probe), changes fail with 503 DATABASE_FAILURE and
// GET /health says 503 too — not 200 {"status":"ok"}. Where chattr does
// not work, deleting the files is the fault.
func TestHealthWithImmutableDatabase(t *testing.T) {
	te := startEngine(t, testMonitor)
	if h, err := te.admin.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health before: %+v %v", h, err)
	}
	var files []string
	for _, f := range []string{"polyvirt.db", "polyvirt.db-wal", "polyvirt.db-shm"} {
		files = append(files, filepath.Join(te.dir, f))
	}
	if !immutable(t, files...) {
		t.Log("chattr +i does not work here: the database files are deleted instead")
		for _, f := range files {
			os.Remove(f)
		}
	}
	_, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "after"})
	var ce *api.Error
	if !asClientError(err, &ce) || ce.Status != 503 || ce.Code != api.CodeDatabaseFailure {
		t.Errorf("a change with the database immutable: %v; want 503 %s", err, api.CodeDatabaseFailure)
	}
	h, err := te.admin.Health(ctx)
	if errOf(err).Status != 503 {
		t.Errorf("health with the database immutable: %+v %v; want 503", h, err)
	}
}
