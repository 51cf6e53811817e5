package agent

import (
	"context"
	"sync"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/hoststats"
	"polyvirt/internal/libvirtconn"
)

// statsKeeper samples the host and the VMs at a fixed interval and keeps
// the last figures, so that GET /v1/stats answers from memory and CPU usage
// is measured over a known interval.
type statsKeeper struct {
	sampler *hoststats.Sampler

	mu     sync.RWMutex
	last   agentapi.Stats
	err    error
	prevVM map[string]cpuSample
}

type cpuSample struct {
	at   time.Time
	time uint64
}

func newStatsKeeper(s *hoststats.Sampler) *statsKeeper {
	return &statsKeeper{sampler: s, prevVM: map[string]cpuSample{}}
}

func (k *statsKeeper) run(ctx context.Context, a *Agent, every time.Duration) {
	k.sample(ctx, a)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.sample(ctx, a)
		}
	}
}

// sample takes one reading of the host and of every VM this host owns.
func (k *statsKeeper) sample(ctx context.Context, a *Agent) {
	r, usage, err := k.sampler.Sample()
	s := agentapi.Stats{VMs: []agentapi.VMStats{}}
	if err == nil {
		s.Host = agentapi.HostStats{
			Time: r.Time.UTC(), CPUUsagePercent: round2(usage), CPUs: r.CPU.CPUs,
			MemTotalMiB: r.Memory.TotalKiB / 1024, MemFreeMiB: r.Memory.FreeKiB / 1024,
			MemAvailableMiB: r.Memory.AvailableKiB / 1024,
			Load1:           r.Load.Load1, Load5: r.Load.Load5, Load15: r.Load.Load15,
		}
	}
	if c, cerr := a.conn.get(); cerr == nil {
		entries := a.index.list()
		doms := make([]libvirtconn.Domain, len(entries))
		byUUID := map[string]*vmEntry{}
		for i, e := range entries {
			doms[i] = e.Domain
			byUUID[e.Domain.UUID] = e
		}
		ds, derr := c.DomainStats(ctx, doms)
		if derr == nil {
			now := time.Now()
			k.mu.Lock()
			seen := map[string]bool{}
			for _, d := range ds {
				e := byUUID[d.Domain.UUID]
				if e == nil {
					continue
				}
				v := vmStats(e, d)
				if prev, ok := k.prevVM[e.ID]; ok && d.CPUTimeNs >= prev.time && now.After(prev.at) {
					v.CPUUsagePercent = round2(100 * float64(d.CPUTimeNs-prev.time) / float64(now.Sub(prev.at).Nanoseconds()))
				}
				k.prevVM[e.ID] = cpuSample{now, d.CPUTimeNs}
				seen[e.ID] = true
				if v.State == agentapi.StateRunning || v.State == agentapi.StatePaused {
					s.Host.VMsRunning++
					s.Host.VCPUsUsed += v.VCPUs
					s.Host.MemoryUsedMiB += v.MemoryMiB
				}
				s.VMs = append(s.VMs, v)
			}
			for id := range k.prevVM {
				if !seen[id] {
					delete(k.prevVM, id)
				}
			}
			k.mu.Unlock()
		} else if err == nil {
			err = derr
		}
	} else if err == nil {
		err = cerr
	}
	k.mu.Lock()
	k.last, k.err = s, err
	k.mu.Unlock()
}

func vmStats(e *vmEntry, d libvirtconn.DomainStats) agentapi.VMStats {
	v := agentapi.VMStats{
		ID: e.ID, Name: e.Name, State: stateOf(d.State), VCPUs: d.VCPUs, CPUTimeNs: d.CPUTimeNs,
		MemoryMiB: d.BalloonKiB / 1024, MaxMemoryMiB: d.MaxMemoryKiB / 1024,
		Disks: []agentapi.DiskStats{}, NICs: []agentapi.NICStats{},
	}
	for _, b := range d.Blocks {
		v.Disks = append(v.Disks, agentapi.DiskStats{Name: b.Name, ReadBytes: b.ReadBytes, WriteBytes: b.WriteBytes, ReadOps: b.ReadOps, WriteOps: b.WriteOps})
	}
	for _, n := range d.Interfaces {
		v.NICs = append(v.NICs, agentapi.NICStats{Name: n.Name, RxBytes: n.RxBytes, TxBytes: n.TxBytes, RxPkts: n.RxPkts, TxPkts: n.TxPkts})
	}
	return v
}

// current returns the last figures.
func (k *statsKeeper) current() (agentapi.Stats, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.last, k.err
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
