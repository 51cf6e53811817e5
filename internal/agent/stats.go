package agent

import (
	"context"
	"sort"
	"sync"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/hoststats"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/metrics"
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
	// metric is the last round for the metrics (metrics.go), have
	// whether there was one.
	metric metrics.AgentSample
	have   bool
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

// statsParallel bounds the VMs whose QEMU is asked at the same time.
const statsParallel = 8

// sample takes one reading of the host and of every VM this host owns:
// the states of all at once (libvirt answers them without asking any QEMU),
// then, for each running VM on its own connection, whether its QEMU answers
// (probe), and the figures of all those that answer in one call of
// libvirt's bulk statistics — a QEMU that does not answer costs its own
// VM's figures only. It also makes sure every running VM's console is
// drained.
func (k *statsKeeper) sample(ctx context.Context, a *Agent) {
	start := time.Now()
	r, usage, err := k.sampler.Sample()
	hostOK := err == nil
	var figures []vmFigure
	s := agentapi.Stats{VMs: []agentapi.VMStats{}}
	if err == nil {
		s.Host = agentapi.HostStats{
			Time: r.Time.UTC(), CPUUsagePercent: round2(usage), CPUs: r.CPU.CPUs,
			MemTotalMiB: r.Memory.TotalKiB / 1024, MemFreeMiB: r.Memory.FreeKiB / 1024,
			MemAvailableMiB: r.Memory.AvailableKiB / 1024,
			Load1:           r.Load.Load1, Load5: r.Load.Load5, Load15: r.Load.Load15,
		}
	}
	if ds, derr := k.vmFigures(ctx, a); derr == nil {
		figures = ds
		now := time.Now()
		k.mu.Lock()
		seen := map[string]bool{}
		for _, f := range ds {
			e, d := f.e, f.d
			v := vmStats(e, d)
			if prev, ok := k.prevVM[e.ID]; ok && d.CPUTimeNs >= prev.time && now.After(prev.at) && d.CPUTimeNs > 0 {
				v.CPUUsagePercent = round2(100 * float64(d.CPUTimeNs-prev.time) / float64(now.Sub(prev.at).Nanoseconds()))
			}
			if d.CPUTimeNs > 0 {
				k.prevVM[e.ID] = cpuSample{now, d.CPUTimeNs}
			}
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
	m := sampleForMetrics(start, r, usage, hostOK, s.Host, figures)
	k.mu.Lock()
	k.last, k.err = s, err
	k.metric, k.have = m, true
	k.mu.Unlock()
}

// vmFigure is one VM's figures; full tells whether libvirt's bulk
// statistics had them (else the state only).
type vmFigure struct {
	e    *vmEntry
	d    libvirtconn.DomainStats
	full bool
}

// statsConnKey names, among the VMs' own connections (vmConns), the one
// the bulk statistics are read on: a QEMU that stops answering during the
// call holds that connection, not the agent's main one.
const statsConnKey = "\x00statistics"

// vmFigures reads the VMs' states (all at once, without any QEMU), probes
// the running ones (each its QEMU's query-status on its own connection)
// and then reads the figures of every running VM whose QEMU answers in
// one call of libvirt's bulk statistics. A VM whose QEMU is busy or does
// not answer keeps its state only.
func (k *statsKeeper) vmFigures(ctx context.Context, a *Agent) ([]vmFigure, error) {
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	entries := a.index.list()
	doms := make([]libvirtconn.Domain, len(entries))
	byUUID := map[string]*vmEntry{}
	for i, e := range entries {
		doms[i] = e.Domain
		byUUID[e.Domain.UUID] = e
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	states, err := c.DomainStats(sctx, doms, libvirtconn.StatsOptions{StateOnly: true})
	cancel()
	if err != nil {
		return nil, err
	}
	out := make([]vmFigure, 0, len(states))
	var running []vmFigure
	var wg sync.WaitGroup
	sem := make(chan struct{}, statsParallel)
	for _, st := range states {
		e := byUUID[st.Domain.UUID]
		if e == nil {
			continue
		}
		a.index.setState(e.ID, st.State)
		if st.State != libvirtconn.StateRunning && st.State != libvirtconn.StatePaused && st.State != libvirtconn.StateBlocked {
			out = append(out, vmFigure{e: e, d: st})
			continue
		}
		running = append(running, vmFigure{e: e, d: st})
		wg.Add(1)
		go func(e *vmEntry) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if !a.consoles.draining(e.ID) {
				a.drainConsole(ctx, e)
			}
			a.probe(ctx, e)
		}(e)
	}
	wg.Wait()
	out = append(out, a.bulkFigures(ctx, running)...)
	sort.Slice(out, func(i, j int) bool { return out[i].e.Name < out[j].e.Name })
	return out, nil
}

// bulkFigures reads the figures of the running VMs in one call of
// libvirt's bulk statistics (NoWait: a VM whose job another call holds is
// skipped by libvirt, not waited for), on the statistics connection.
// Only the VMs whose QEMU answered its probe and that no other call uses
// now are asked: their turns (qemuGate) are held during the call, so that
// nothing else is sent to their QEMU meanwhile. When the call has no
// answer within the QEMU time-out (a QEMU stopped answering since its
// probe), the turns are given back, the statistics connection is dropped
// (the next round dials another), and the round has the states only; the
// next probe of that VM finds it NotResponding.
func (a *Agent) bulkFigures(ctx context.Context, running []vmFigure) []vmFigure {
	var asked []libvirtconn.Domain
	var gates []*qemuGate
	for _, f := range running {
		if a.health.notResponding(f.e.ID) != "" {
			continue
		}
		g := a.health.gate(f.e.ID)
		select {
		case g.turn <- struct{}{}:
			asked = append(asked, f.e.Domain)
			gates = append(gates, g)
		default:
		}
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			for _, g := range gates {
				<-g.turn
			}
		})
	}
	if len(asked) == 0 {
		return running
	}
	c, err := a.vmConns.get(ctx, statsConnKey)
	if err != nil {
		release()
		return running
	}
	type result struct {
		ds  []libvirtconn.DomainStats
		err error
	}
	done := make(chan result, 1)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), libvirtconn.MaxCallTime)
	go func() {
		defer cancel()
		defer release()
		ds, err := c.DomainStats(cctx, asked, libvirtconn.StatsOptions{NoWait: true})
		done <- result{ds, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(a.cfg.QEMUTimeout.Duration):
		release()
		a.vmConns.drop(statsConnKey)
		a.log.Warn("libvirt's bulk statistics did not answer in time: a QEMU stopped answering? (the states only this round)",
			"vms", len(asked), "timeout", a.cfg.QEMUTimeout.Duration)
		return running
	case <-ctx.Done():
		return running
	}
	if r.err != nil {
		a.log.Debug("bulk statistics", "err", r.err)
		return running
	}
	figs := make(map[string]libvirtconn.DomainStats, len(r.ds))
	for _, d := range r.ds {
		figs[d.Domain.UUID] = d
	}
	out := make([]vmFigure, len(running))
	for i, f := range running {
		out[i] = f
		if d, ok := figs[f.e.Domain.UUID]; ok {
			out[i].d, out[i].full = d, true
		}
	}
	return out
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

// forget drops a deleted VM from the last figures at once (the next
// sample would not list it either).
func (k *statsKeeper) forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	vms := k.last.VMs[:0:0]
	for _, v := range k.last.VMs {
		if v.ID != id {
			vms = append(vms, v)
			continue
		}
		if v.State == agentapi.StateRunning || v.State == agentapi.StatePaused {
			k.last.Host.VMsRunning--
			k.last.Host.VCPUsUsed -= v.VCPUs
			k.last.Host.MemoryUsedMiB -= v.MemoryMiB
		}
	}
	k.last.VMs = vms
	delete(k.prevVM, id)
}

// current returns the last figures.
func (k *statsKeeper) current() (agentapi.Stats, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.last, k.err
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
