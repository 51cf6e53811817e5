package store_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"polyvirt/internal/arch"
	"polyvirt/internal/store"
)

// The hot paths of an engine monitoring many hosts: a stats report per
// host every few seconds (alone, or batched), an event per state change,
// the host list of the API and the monitor.

type backend struct {
	name string
	open func(b *testing.B) store.Store
}

func backends() []backend {
	return []backend{
		{"sqlite", func(b *testing.B) store.Store { return openSQLite(b) }},
		{"postgres", func(b *testing.B) store.Store { return openPostgres(b) }},
	}
}

// eachBackend opens and seeds every backend once (a benchmark with
// sub-benchmarks runs its body once; the sub-benchmark's body runs for
// every b.N tried) and runs bench on it.
func eachBackend(b *testing.B, hosts int, bench func(b *testing.B, s store.Store, ids []string)) {
	for _, be := range backends() {
		s := be.open(b)
		var ids []string
		if hosts > 0 {
			ids = seedHosts(b, s, hosts)
		}
		b.Run(be.name, func(b *testing.B) { bench(b, s, ids) })
	}
}

// statsDoc is a host stats report of a realistic size (~1 KiB).
var statsDoc = func() json.RawMessage {
	m := map[string]any{"cpuUser": 12.5, "cpuSys": 3.25, "cpuIdle": 84.25, "memFreeMiB": 123456, "memAvailableMiB": 130000,
		"swapFreeMiB": 0, "loadAvg": []float64{1.5, 1.25, 1.0}, "vmCount": 12, "vmActive": 11, "vmMigrating": 0,
		"bootTime": 1700000000, "ksm": map[string]any{"on": true, "pages": 1024}}
	nics := map[string]any{}
	for i := 0; i < 4; i++ {
		nics[fmt.Sprintf("eth%d", i)] = map[string]any{"rxRate": 1.5, "txRate": 2.5, "rxErrors": 0, "txErrors": 0, "speed": 10000}
	}
	m["network"] = nics
	b, _ := json.Marshal(m)
	return b
}()

// seedHosts creates a cluster with n hosts and returns their IDs.
func seedHosts(b *testing.B, s store.Store, n int) []string {
	b.Helper()
	c := store.Cluster{Name: "bench"}
	if err := s.CreateCluster(ctx, &c); err != nil {
		b.Fatal(err)
	}
	caps := json.RawMessage(`{"cpu": {"flags": ["` + strings.Repeat("flag", 100) + `"]}}`)
	ids := make([]string, 0, n)
	for start := 0; start < n; start += 200 {
		err := s.InTx(ctx, func(tx store.Tx) error {
			for i := start; i < start+200 && i < n; i++ {
				h := store.Host{Name: fmt.Sprintf("host-%04d", i), Address: fmt.Sprintf("10.0.%d.%d:54321", i/250, i%250),
					ClusterID: c.ID, Status: store.HostUp, Arch: arch.PPC64LE, CPUFlags: []string{"powernv", "model_POWER9", "model_POWER8"},
					CPUType: "IBM POWER9", CPULevel: 2, EmulatedMachines: []string{"pseries-7.2"}, Capabilities: caps}
				if err := tx.CreateHost(ctx, &h); err != nil {
					return err
				}
				ids = append(ids, h.ID)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.UpdateHostStats(ctx, statsFor(ids)); err != nil {
		b.Fatal(err)
	}
	return ids
}

func statsFor(ids []string) []store.HostStats {
	out := make([]store.HostStats, len(ids))
	for i, id := range ids {
		out[i] = store.HostStats{HostID: id, Stats: statsDoc}
	}
	return out
}

// BenchmarkHostStatsUpdate: one host's report, one transaction (ns/op is
// the latency of one report).
func BenchmarkHostStatsUpdate(b *testing.B) {
	eachBackend(b, 1000, func(b *testing.B, s store.Store, ids []string) {
		for i := 0; i < b.N; i++ {
			if _, err := s.UpdateHostStats(ctx, statsFor(ids[i%len(ids):][:1])); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHostStatsUpdateParallel: reports arriving from many hosts at
// once, one transaction each.
func BenchmarkHostStatsUpdateParallel(b *testing.B) {
	eachBackend(b, 1000, func(b *testing.B, s store.Store, ids []string) {
		var next atomic.Int64
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				if _, err := s.UpdateHostStats(ctx, statsFor([]string{ids[i%int64(len(ids))]})); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkHostStatsBatch100: 100 hosts' reports in one transaction
// (ns/op per batch; divide by 100 for a report).
func BenchmarkHostStatsBatch100(b *testing.B) {
	eachBackend(b, 1000, func(b *testing.B, s store.Store, ids []string) {
		for i := 0; i < b.N; i++ {
			start := (i * 100) % len(ids)
			if _, err := s.UpdateHostStats(ctx, statsFor(ids[start:start+100])); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEventAppend: one audit event, one transaction.
func BenchmarkEventAppend(b *testing.B) {
	eachBackend(b, 0, func(b *testing.B, s store.Store, _ []string) {
		for i := 0; i < b.N; i++ {
			e := store.Event{User: "admin", Action: "host.status", Severity: store.SeverityWarning, ObjectKind: "host",
				ObjectID: "0b5e8a34-2c71-4a55-9d7e-3f1c2f9e8b10", ObjectName: "p8-host-042",
				Code: "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER", Message: "Host p8-host-042 moved to Non-Operational state",
				Reason: "Missing CPU features: model_POWER9"}
			if err := s.AppendEvent(ctx, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkListHosts: the list of 1000 hosts with their stats (no
// capabilities), as the API and the monitor read it.
func BenchmarkListHosts(b *testing.B) {
	eachBackend(b, 1000, func(b *testing.B, s store.Store, _ []string) {
		for i := 0; i < b.N; i++ {
			hosts, err := s.ListHosts(ctx, store.HostFilter{})
			if err != nil || len(hosts) != 1000 {
				b.Fatalf("%d hosts, %v", len(hosts), err)
			}
		}
	})
}

// BenchmarkGetHost: one host with its capabilities.
func BenchmarkGetHost(b *testing.B) {
	eachBackend(b, 1000, func(b *testing.B, s store.Store, ids []string) {
		for i := 0; i < b.N; i++ {
			if _, err := s.GetHost(ctx, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHostStatsBatch1000: 1,000 hosts' reports in one transaction,
// the size of the engine's flushes at 10,000 hosts (ns/op per batch).
func BenchmarkHostStatsBatch1000(b *testing.B) {
	eachBackend(b, 1000, func(b *testing.B, s store.Store, ids []string) {
		for i := 0; i < b.N; i++ {
			if _, err := s.UpdateHostStats(ctx, statsFor(ids)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
