package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api/engineapi"
)

// TestMigrationProgress: what vm migrate prints when its output is not a
// terminal — the start with the disks, one line per pass, the outcome.
func TestMigrationProgress(t *testing.T) {
	start := engineapi.Migration{Name: "deb", Source: "power8-a", Destination: "power8-b", Policy: "minimal-downtime", Phase: "preparing",
		CopiedDisks: []string{"vdb"}, SharedDisks: []string{"vda"}}
	steps := []engineapi.Migration{
		{Phase: "copying-disks", DiskTotal: 64 << 20, DiskProcessed: 16 << 20, DiskRemaining: 48 << 20, ElapsedMs: 900},
		{Phase: "copying-memory", Pass: 1, MemoryTotal: 512 << 20, MemoryProcessed: 300 << 20, MemoryRemaining: 212 << 20, MemoryRate: 80 << 20,
			AllowedDowntimeMs: 100, ElapsedMs: 2400},
		{Phase: "copying-memory", Pass: 1, MemoryTotal: 512 << 20, MemoryProcessed: 310 << 20, MemoryRemaining: 202 << 20, ElapsedMs: 2500},
		{Phase: "copying-memory", Pass: 3, MemoryTotal: 512 << 20, MemoryProcessed: 512 << 20, MemoryRemaining: 1 << 20, MemoryRate: 81 << 20,
			AllowedDowntimeMs: 150, ElapsedMs: 3100},
	}
	var b bytes.Buffer
	p := newMigrationProgress(&b, "table")
	p.started(start)
	for _, m := range steps {
		m.Name, m.Source, m.Destination = start.Name, start.Source, start.Destination
		p.update(m)
	}
	p.end()
	p.outcome(engineapi.Migration{Name: "deb", Source: "power8-a", Destination: "power8-b", Phase: "completed", ElapsedMs: 3240, DowntimeMs: 82,
		EngineMs: 35, Steps: []string{"allowed downtime 100 ms", "allowed downtime 150 ms at pass 3"}})
	want := `Migrating VM deb from power8-a to power8-b (policy minimal-downtime)
  disks: vdb copied to power8-b (only power8-a has it); vda on storage both hosts see (not copied)
  copying-disks    disks 16.0 MiB of 64.0 MiB copied  900ms
  copying-memory  pass 1  memory 300.0 MiB sent, 212.0 MiB left of 512.0 MiB  at 80.0 MiB/s  (downtime allowed 100 ms)  2.4s
  copying-memory  pass 3  memory 512.0 MiB sent, 1.0 MiB left of 512.0 MiB  at 81.0 MiB/s  (downtime allowed 150 ms)  3.1s
  step: allowed downtime 100 ms
  step: allowed downtime 150 ms at pass 3
Migrated VM deb to power8-b in 3.2s (downtime 82 ms; the engine's share 35 ms).
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	failed := engineapi.Migration{Name: "deb", Source: "power8-a", Destination: "power8-b", Phase: "failed", Code: "MIGRATION_NOT_CONVERGING",
		Finished: time.Now().Add(-time.Minute), ElapsedMs: 61000}
	if got := migrationText(engineapi.VM{Migration: &failed}); got != "last: power8-a → power8-b failed 1m0s ago after 1m1s (MIGRATION_NOT_CONVERGING)" {
		t.Errorf("vm show: %q", got)
	}
}
