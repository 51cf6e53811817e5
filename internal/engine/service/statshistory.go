package service

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
)

// The hosts' statistics over the last hour, for the web UI's charts: every
// engine samples the host list it serves (whose statistics the monitoring
// leader writes) every interval and keeps an hour of points per host in
// memory. An engine that starts has no history yet.

// statsHistoryWindow is how far back the history goes.
const statsHistoryWindow = time.Hour

// statsHistory holds the samples of every host.
type statsHistory struct {
	interval time.Duration
	mu       sync.Mutex
	hosts    map[string]*sampleRing
}

// statsSample is one host's point as kept: no pointers, so that the
// collector marks an hour of ten thousand hosts' samples (1.2 million at the
// default interval) without scanning them, and half the size of the API's
// StatsPoint (whose time.Time holds a pointer). Percents and the load are
// kept as float32, more than a chart needs.
type statsSample struct {
	unixMilli    int64
	committedMiB uint64
	cpu, memUsed float32
	load         float32
	vms          int32
}

// point is the sample as the API shows it: float32 values written back with
// the digits they were kept with (12.3, not 12.300000190734863).
func (s statsSample) point() engineapi.StatsPoint {
	f := func(v float32) float64 {
		x, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
		return x
	}
	return engineapi.StatsPoint{Time: time.UnixMilli(s.unixMilli).UTC(), CPUUsagePercent: f(s.cpu), MemoryUsedPercent: f(s.memUsed),
		Load1: f(s.load), VMsRunning: int(s.vms), MemoryCommittedMiB: s.committedMiB}
}

// sampleRing is a host's samples, oldest first from start: the buffer
// grows to max samples (an engine that just started, or a host just
// enrolled, holds few), then the newest replaces the oldest.
type sampleRing struct {
	buf   []statsSample
	start int
	max   int
}

// add appends s, dropping the oldest when the ring is full.
func (r *sampleRing) add(s statsSample) {
	if len(r.buf) < r.max {
		if len(r.buf) == cap(r.buf) {
			grown := make([]statsSample, len(r.buf), min(max(2*cap(r.buf), 8), r.max))
			copy(grown, r.buf)
			r.buf = grown
		}
		r.buf = append(r.buf, s)
		return
	}
	r.buf[r.start] = s
	r.start = (r.start + 1) % len(r.buf)
}

// at is the i-th sample, oldest first.
func (r *sampleRing) at(i int) statsSample { return r.buf[(r.start+i)%len(r.buf)] }

// last is the newest sample (the ring is not empty).
func (r *sampleRing) last() statsSample { return r.at(len(r.buf) - 1) }

func newStatsHistory(interval time.Duration) *statsHistory {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	return &statsHistory{interval: interval, hosts: map[string]*sampleRing{}}
}

func (e *engine) statsHistory() *statsHistory {
	e.statsOnce.Do(func() { e.stats = newStatsHistory(e.cfg.StatsHistoryInterval) })
	return e.stats
}

// max is the number of samples kept per host.
func (s *statsHistory) max() int { return int(statsHistoryWindow/s.interval) + 1 }

// record adds the hosts' current statistics: a sample per host whose
// statistics are newer than its last sample; hosts no longer listed go.
func (s *statsHistory) record(hosts []engineapi.Host) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		seen[h.ID] = true
		if len(h.Stats) == 0 || h.StatsAt.IsZero() {
			continue
		}
		r := s.hosts[h.ID]
		if r != nil && h.StatsAt.UnixMilli() <= r.last().unixMilli {
			continue
		}
		var st agentapi.Stats
		if err := json.Unmarshal(h.Stats, &st); err != nil {
			continue
		}
		p := statsSample{unixMilli: h.StatsAt.UnixMilli(), cpu: float32(st.Host.CPUUsagePercent), load: float32(st.Host.Load1),
			vms: int32(st.Host.VMsRunning), committedMiB: st.Host.MemoryUsedMiB}
		if st.Host.MemTotalMiB > 0 {
			used := st.Host.MemTotalMiB - min(st.Host.MemAvailableMiB, st.Host.MemTotalMiB)
			p.memUsed = float32(100 * float64(used) / float64(st.Host.MemTotalMiB))
		}
		if r == nil {
			r = &sampleRing{max: s.max()}
			s.hosts[h.ID] = r
		}
		r.add(p)
	}
	for id := range s.hosts {
		if !seen[id] {
			delete(s.hosts, id)
		}
	}
}

// points returns a host's points of the last hour, oldest first.
func (s *statsHistory) points(hostID string, now time.Time) []engineapi.StatsPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []engineapi.StatsPoint{}
	r := s.hosts[hostID]
	if r == nil {
		return out
	}
	since := now.Add(-statsHistoryWindow).UnixMilli()
	for i := range len(r.buf) {
		if p := r.at(i); p.unixMilli >= since {
			out = append(out, p.point())
		}
	}
	return out
}

// RecordStats samples the hosts' statistics every interval (the
// configuration's StatsHistoryInterval) until ctx ends.
func (s *Services) RecordStats(ctx context.Context) {
	e := s.e
	h := e.statsHistory()
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for {
		if snap, err := e.hosts.get(ctx, e); err == nil {
			h.record(snap.latestViews(e.monitor()))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// StatsHistory is a host's statistics over the last hour, as this engine
// sampled them.
func (s *Hosts) StatsHistory(ctx context.Context, ref string) (engineapi.HostStatsHistory, error) {
	h, err := s.e.findHost(ctx, ref)
	if err != nil {
		return engineapi.HostStatsHistory{}, coded(err)
	}
	st := s.e.statsHistory()
	return engineapi.HostStatsHistory{Host: h.Name, Interval: st.interval.String(), Points: st.points(h.ID, time.Now())}, nil
}
