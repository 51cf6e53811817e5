package service

import (
	"encoding/json"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
)

func TestFailureLimiter(t *testing.T) {
	l := newFailureLimiter(time.Minute)
	t0 := time.Now()
	for i := 0; i < 3; i++ {
		l.fail("k", t0.Add(time.Duration(i)*10*time.Second))
	}
	for _, tc := range []struct {
		at    time.Duration
		limit int
		want  time.Duration
	}{
		{20 * time.Second, 4, 0},
		{20 * time.Second, 3, 40 * time.Second},
		{20 * time.Second, 2, 50 * time.Second},
		{61 * time.Second, 3, 0},
		{75 * time.Second, 2, 0},
	} {
		if got := l.blocked("k", tc.limit, t0.Add(tc.at)); got != tc.want {
			t.Errorf("at %s, limit %d: blocked %s; want %s", tc.at, tc.limit, got, tc.want)
		}
	}
	l.reset("k")
	if got := l.blocked("k", 1, t0.Add(25*time.Second)); got != 0 {
		t.Errorf("after reset: %s", got)
	}
}

func TestStatsHistory(t *testing.T) {
	h := newStatsHistory(time.Minute)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	stats := func(cpu float64, avail uint64) json.RawMessage {
		b, _ := json.Marshal(agentapi.Stats{Host: agentapi.HostStats{CPUUsagePercent: cpu, MemTotalMiB: 1000, MemAvailableMiB: avail, Load1: 0.5, VMsRunning: 2}})
		return b
	}
	for i := 0; i < 70; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		h.record([]engineapi.Host{
			{ID: "a", StatsAt: at, Stats: stats(float64(i), 250)},
			{ID: "b"}, // no statistics yet
		})
		// The same statistics again: no new point.
		h.record([]engineapi.Host{{ID: "a", StatsAt: at, Stats: stats(99, 0)}})
	}
	pts := h.points("a", t0.Add(69*time.Minute))
	if len(pts) != 61 || pts[0].CPUUsagePercent != 9 || pts[60].CPUUsagePercent != 69 || pts[60].MemoryUsedPercent != 75 || pts[60].VMsRunning != 2 {
		t.Errorf("%d points, first %+v, last %+v", len(pts), pts[0], pts[len(pts)-1])
	}
	if pts := h.points("a", t0.Add(3*time.Hour)); len(pts) != 0 {
		t.Errorf("points older than an hour: %d", len(pts))
	}
	if pts := h.points("b", t0); len(pts) != 0 {
		t.Errorf("a host without statistics: %v", pts)
	}
	h.record(nil)
	if pts := h.points("a", t0.Add(69*time.Minute)); len(pts) != 0 {
		t.Errorf("a removed host keeps %d points", len(pts))
	}
}
