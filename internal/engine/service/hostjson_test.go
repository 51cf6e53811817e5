package service

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api/engineapi"
)

// TestHostJSON: a view's JSON made from its base and its statistics is
// json.Marshal's, byte for byte, with or without statistics, firmware
// levels, a report or pools; a statistics document that is not JSON is
// left out.
func TestHostJSON(t *testing.T) {
	at := time.Date(2026, 12, 5, 17, 0, 1, 123456000, time.UTC)
	base := engineapi.Host{ID: "h1", Name: "p8", Address: "p8:9443", ClusterID: "c1", Cluster: "power", Status: "Up",
		StatusMessage: `a "quoted", "version": message`, CPUFlags: []string{"powernv", "model_POWER8"}, EmulatedMachines: []string{},
		Firmware: []engineapi.HostFirmwareLevel{{}}, Enrolled: true, Version: 7, Created: at, Updated: at}
	stats := json.RawMessage(`{"host":{"cpuUsagePercent":12.5,"version":3},"vms":[],"libvirt":{"connected":true}}`)
	tests := map[string]func(*engineapi.Host){
		"no statistics":          func(*engineapi.Host) {},
		"last seen only":         func(h *engineapi.Host) { h.LastSeen = at },
		"statistics":             func(h *engineapi.Host) { h.LastSeen, h.StatsAt, h.Stats = at, at.Add(-time.Second), stats },
		"statistics not compact": func(h *engineapi.Host) { h.StatsAt, h.Stats = at, json.RawMessage("{ \"host\" : {\n\"a\": 1 } }") },
		"with a report": func(h *engineapi.Host) {
			h.StatsAt, h.Stats, h.Capabilities = at, stats, json.RawMessage(`{"arch":"ppc64le"}`)
		},
		"with pools": func(h *engineapi.Host) { h.StatsAt, h.Stats, h.Pools = at, stats, []engineapi.HostPool{{}} },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			v := base
			change(&v)
			want, err := json.Marshal(&v)
			if err != nil {
				t.Fatal(err)
			}
			got := spliced(t, &v)
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("(-json.Marshal +spliced):\n%s", diff)
			}
		})
	}
	v := base
	v.StatsAt, v.Stats = at, json.RawMessage(`{"host":`)
	got := spliced(t, &v)
	var back engineapi.Host
	if err := json.Unmarshal(got, &back); err != nil || back.Stats != nil || !back.StatsAt.Equal(at) || back.Name != "p8" {
		t.Errorf("bad statistics: %s (%v), want the host without them", got, err)
	}
}

// BenchmarkHostJSON compares encoding a view whole with splicing its
// statistics into its base.
func BenchmarkHostJSON(b *testing.B) {
	at := time.Now().UTC()
	v := engineapi.Host{ID: "0b0c3d1e-95b4-4c36-9a59-6a2f3c1d2e4f", Name: "sim-04711", Address: "127.0.0.2:40123", ClusterID: "c1",
		Cluster: "sim", Status: "Up", CPUFlags: []string{}, EmulatedMachines: []string{}, Enrolled: true, Version: 9, Created: at, Updated: at,
		LastSeen: at, StatsAt: at, Stats: json.RawMessage(`{"host":{"time":"2026-12-05T17:00:01.123456Z","cpuUsagePercent":41.27,"cpus":160,"memTotalMiB":262144,"memFreeMiB":200000,"memAvailableMiB":210000,"load1":4.1,"load5":3.4,"load15":2.7},"vms":[],"libvirt":{"connected":true,"uri":"qemu:///system"}}`)}
	b.Run("marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	j, err := newHostJSON(&v)
	if err != nil {
		b.Fatal(err)
	}
	// Into a page's buffer, reused from page to page (pageBuffers).
	b.Run("splice", func(b *testing.B) {
		var page []byte
		for b.Loop() {
			var err error
			if page, err = j.appendWith(page[:0], &v, laidOf(&v)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzHostJSONStats: whatever statistics document an agent pushed, the
// host's JSON stays valid JSON of the same host (with the document when it
// is JSON, without it otherwise).
func FuzzHostJSONStats(f *testing.F) {
	f.Add([]byte(`{"host":{"cpuUsagePercent":1}}`))
	f.Add([]byte(`{"host":`))
	f.Add([]byte(" [1, 2] "))
	f.Add([]byte(`"\u2028<&>"`))
	at := time.Date(2026, 12, 5, 17, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, stats []byte) {
		v := engineapi.Host{ID: "h1", Name: "p8", Status: "Up", CPUFlags: []string{}, EmulatedMachines: []string{}, Version: 1,
			Created: at, Updated: at, StatsAt: at, LastSeen: at, Stats: stats}
		got := spliced(t, &v)
		var back engineapi.Host
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("not JSON: %q (%v)", got, err)
		}
		if back.Name != "p8" || back.Version != 1 || !back.StatsAt.Equal(at) {
			t.Fatalf("another host: %+v", back)
		}
		if json.Valid(stats) != (back.Stats != nil) {
			t.Fatalf("statistics %q (valid %v) came back as %q", stats, json.Valid(stats), back.Stats)
		}
	})
}

// spliced is a view's JSON made in the two steps of the leader's list.
func spliced(t *testing.T, v *engineapi.Host) []byte {
	t.Helper()
	j, err := newHostJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.appendWith(nil, v, laidOf(v))
	if err != nil {
		t.Fatal(err)
	}
	return got
}
