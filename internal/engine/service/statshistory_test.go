package service

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
)

// hasPointers says whether a value of type t holds a pointer the collector
// would have to follow.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}

// An hour of ten thousand hosts' samples is kept: the samples must stay
// small and free of pointers (the collector then marks their buffers
// without reading them).
func TestStatsSampleIsSmallAndFlat(t *testing.T) {
	if hasPointers(reflect.TypeOf(statsSample{})) {
		t.Errorf("statsSample holds a pointer")
	}
	if !hasPointers(reflect.TypeOf(engineapi.StatsPoint{})) {
		t.Errorf("the check finds no pointer in engineapi.StatsPoint (its time.Time has one)")
	}
	if got, point := reflect.TypeOf(statsSample{}).Size(), reflect.TypeOf(engineapi.StatsPoint{}).Size(); got > 32 || got*2 > point {
		t.Errorf("statsSample is %d bytes (StatsPoint %d): want at most 32, half a StatsPoint", got, point)
	}
}

// The samples come back as they were recorded: the float32 values with the
// digits they were given, the time to the millisecond, in order across the
// ring's wrap.
func TestStatsHistoryValues(t *testing.T) {
	h := newStatsHistory(20 * time.Minute) // 4 samples per host
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 123456789, time.UTC)
	for i := range 6 {
		b, _ := json.Marshal(agentapi.Stats{Host: agentapi.HostStats{CPUUsagePercent: 12.3 + float64(i), MemTotalMiB: 3000,
			MemAvailableMiB: 1000, Load1: 0.07, VMsRunning: i, MemoryUsedMiB: 1 << 40}})
		h.record([]engineapi.Host{{ID: "a", StatsAt: t0.Add(time.Duration(i) * 20 * time.Minute), Stats: b}})
	}
	pts := h.points("a", t0.Add(100*time.Minute))
	want := []engineapi.StatsPoint{}
	for i := 2; i < 6; i++ {
		want = append(want, engineapi.StatsPoint{Time: t0.Add(time.Duration(i) * 20 * time.Minute).Truncate(time.Millisecond),
			CPUUsagePercent: []float64{14.3, 15.3, 16.3, 17.3}[i-2], MemoryUsedPercent: 66.666664, Load1: 0.07, VMsRunning: i,
			MemoryCommittedMiB: 1 << 40})
	}
	if !reflect.DeepEqual(pts, want) {
		t.Errorf("points:\n got %+v\nwant %+v", pts, want)
	}
}

// BenchmarkStatsHistoryHour fills an hour of samples (the default 30 s
// interval) for 10,000 hosts and reports the heap it holds per host.
func BenchmarkStatsHistoryHour(b *testing.B) {
	const hosts = 10000
	stats, _ := json.Marshal(agentapi.Stats{Host: agentapi.HostStats{CPUUsagePercent: 12.5, MemTotalMiB: 1000, MemAvailableMiB: 500, Load1: 1}})
	list := make([]engineapi.Host, hosts)
	for i := range list {
		list[i] = engineapi.Host{ID: fmt.Sprintf("host-%05d", i), Stats: stats}
	}
	t0 := time.Now()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h := newStatsHistory(30 * time.Second)
		for s := range h.max() {
			for i := range list {
				list[i].StatsAt = t0.Add(time.Duration(s) * 30 * time.Second)
			}
			h.record(list)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/hosts, "heapB/host")
		runtime.KeepAlive(h)
	}
}
