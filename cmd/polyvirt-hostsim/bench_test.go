package main

import "testing"

// TestCPUSpent: processes that ended are not counted, new ones (and new
// ones with a reused id) count from zero; the figure is never negative.
func TestCPUSpent(t *testing.T) {
	before := map[int]float64{1: 10, 2: 5, 3: 7}
	after := map[int]float64{1: 12.5, 3: 1, 4: 0.5}
	if got, want := cpuSpent(before, after), 2.5+1+0.5; got != want {
		t.Errorf("cpuSpent = %v, want %v", got, want)
	}
	if got := cpuSpent(before, map[int]float64{}); got != 0 {
		t.Errorf("all ended: %v, want 0", got)
	}
}
