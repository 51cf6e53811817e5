package service

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/engine/scheduler"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// BenchmarkStartDecision is what a start costs the engine before it calls
// an agent, in a cluster of 1,000 POWER hosts running 10,000 VMs on SQLite:
// reading the cluster's hosts and VMs, adding up what each host commits,
// and the scheduler's decision.
func BenchmarkStartDecision(b *testing.B) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"), store.Options{SQLiteSynchronousNormal: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	c := store.Cluster{Name: "power", Arch: arch.PPC64, CPUType: "IBM POWER8", EmulatedMachine: "pseries-7.2"}
	if err := st.CreateCluster(ctx, &c); err != nil {
		b.Fatal(err)
	}
	rep := hostreport.Report{Arch: "ppc64le", EffectiveArch: "ppc64le", MemoryMiB: 262144}
	rep.CPU.OnlineCPUs = make([]int, 160)
	doc, _ := json.Marshal(rep)
	machines := []string{"pseries"}
	for v := 2; v <= 9; v++ {
		machines = append(machines, fmt.Sprintf("pseries-%d.2", v))
	}
	machines = append(machines, "pseries-7.2")
	hosts := make([]store.Host, 1000)
	err = st.InTx(ctx, func(tx store.Tx) error {
		for i := range hosts {
			h := store.Host{Name: fmt.Sprintf("host-%04d", i), Address: fmt.Sprintf("10.0.%d.%d:7443", i/250, i%250), ClusterID: c.ID,
				Status: store.HostUp, Arch: arch.PPC64LE, CPUType: "IBM POWER8", CPULevel: 1, CPUFlags: []string{"powernv", "model_POWER8"},
				EmulatedMachines: machines, Capabilities: doc, CapabilitiesHash: "h"}
			if err := tx.CreateHost(ctx, &h); err != nil {
				return err
			}
			hosts[i] = h
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// A typical stored definition: the example's, completed.
	def, err := vmspec.Decode([]byte("name: x\narch: ppc64le\nmachine: pseries-7.2\ncpu: {model: POWER8, cores: 2}\nmemory: {sizeMiB: 2048}\nkernel: {path: /var/lib/polyvirt/images/vmlinux, initrd: /var/lib/polyvirt/images/initrd.gz}\n"))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10000; i += 500 {
		err := st.InTx(ctx, func(tx store.Tx) error {
			for j := i; j < i+500; j++ {
				d := def.Clone()
				d.Name = fmt.Sprintf("vm-%05d", j)
				valid, err := vmspec.Validate(d, vmspec.Options{})
				if err != nil {
					return err
				}
				raw, _ := json.Marshal(valid.VM())
				v := store.VM{Name: d.Name, ClusterID: c.ID, HostID: hosts[j%len(hosts)].ID, State: store.VMUp, Definition: raw}
				if err := tx.CreateVM(ctx, &v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	newVM := store.VM{Name: "new", ClusterID: c.ID, State: store.VMDown}
	newVM.Definition, _ = json.Marshal(def)
	if err := st.CreateVM(ctx, &newVM); err != nil {
		b.Fatal(err)
	}
	s := &vmService{e: &engine{st: st}, cfg: VMConfig{}.withDefaults()}
	if testing.Verbose() {
		for _, f := range []struct {
			name string
			fn   func() error
		}{
			{"hosts", func() error { _, err := st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID}); return err }},
			{"vms brief", func() error { _, err := st.ListVMs(ctx, store.VMFilter{ClusterID: c.ID, Brief: true}); return err }},
			{"vms full", func() error { _, err := st.ListVMs(ctx, store.VMFilter{ClusterID: c.ID}); return err }},
		} {
			t0 := time.Now()
			for i := 0; i < 5; i++ {
				if err := f.fn(); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: %s per call", f.name, time.Since(t0)/5)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fleet, _, err := s.fleetFor(ctx, c)
		if err != nil {
			b.Fatal(err)
		}
		req, err := schedRequest(newVM, c, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := scheduler.Schedule(req, fleet, s.cfg.Policy); err != nil {
			b.Fatal(err)
		}
	}
}
