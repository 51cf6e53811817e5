package service

import (
	"context"
	"encoding/json"
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

// statsHistory holds the points of every host.
type statsHistory struct {
	interval time.Duration
	mu       sync.Mutex
	hosts    map[string][]engineapi.StatsPoint
}

func newStatsHistory(interval time.Duration) *statsHistory {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	return &statsHistory{interval: interval, hosts: map[string][]engineapi.StatsPoint{}}
}

func (e *engine) statsHistory() *statsHistory {
	e.statsOnce.Do(func() { e.stats = newStatsHistory(e.cfg.StatsHistoryInterval) })
	return e.stats
}

// max is the number of points kept per host.
func (s *statsHistory) max() int { return int(statsHistoryWindow/s.interval) + 1 }

// record adds the hosts' current statistics: a point per host whose
// statistics are newer than its last point; hosts no longer listed go.
func (s *statsHistory) record(hosts []engineapi.Host) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		seen[h.ID] = true
		if len(h.Stats) == 0 || h.StatsAt.IsZero() {
			continue
		}
		pts := s.hosts[h.ID]
		if n := len(pts); n > 0 && !h.StatsAt.After(pts[n-1].Time) {
			continue
		}
		var st agentapi.Stats
		if err := json.Unmarshal(h.Stats, &st); err != nil {
			continue
		}
		p := engineapi.StatsPoint{Time: h.StatsAt, CPUUsagePercent: st.Host.CPUUsagePercent, Load1: st.Host.Load1,
			VMsRunning: st.Host.VMsRunning, MemoryCommittedMiB: st.Host.MemoryUsedMiB}
		if st.Host.MemTotalMiB > 0 {
			used := st.Host.MemTotalMiB - min(st.Host.MemAvailableMiB, st.Host.MemTotalMiB)
			p.MemoryUsedPercent = 100 * float64(used) / float64(st.Host.MemTotalMiB)
		}
		pts = append(pts, p)
		if len(pts) > s.max() {
			pts = append(pts[:0:0], pts[len(pts)-s.max():]...)
		}
		s.hosts[h.ID] = pts
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
	for _, p := range s.hosts[hostID] {
		if now.Sub(p.Time) <= statsHistoryWindow {
			out = append(out, p)
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
