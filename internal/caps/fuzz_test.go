package caps

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"polyvirt/internal/cpuset"
	"polyvirt/internal/hostinfo"
	"polyvirt/internal/testcorpus"
	"polyvirt/internal/virtcaps"
)

// FuzzTopologyFromCells feeds hostile capabilities documents to the
// reading of a root without sysfs: the topology comes from the cells, its
// figures stay consistent, and nothing panics.
func FuzzTopologyFromCells(f *testing.F) {
	if dir := testcorpus.Dir(f); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "libvirt-caps", "*.xml"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`<capabilities><host><topology><cells num='1'><cell id='0'><cpus num='2'>` +
		`<cpu id='0' socket_id='0' core_id='0' siblings='0-4294967295'/><cpu id='0' socket_id='-1' core_id='0' siblings='0'/>` +
		`</cpus></cell></cells></topology></host></capabilities>`))
	f.Add([]byte(`<capabilities><host><topology><cells num='1'><cell id='7'><memory unit='KiB'>99999999999999999999</memory>` +
		`<distances><sibling id='7' value='10'/></distances><cpus num='1'><cpu id='65536'/></cpus></cell></cells></topology></host></capabilities>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		lv, err := virtcaps.FromDocuments(doc, nil)
		if err != nil {
			return
		}
		r := Build(Input{Host: &hostinfo.Host{}, Libvirt: lv})
		c := r.CPU
		if c.TopologySource == "" {
			return
		}
		if len(c.OnlineCPUs) > c.TotalCPUs || c.Sockets > len(c.OnlineCPUs) || c.CoresPerSocket*c.Sockets > len(c.OnlineCPUs) {
			t.Fatalf("%d online of %d, %d sockets × %d cores", len(c.OnlineCPUs), c.TotalCPUs, c.Sockets, c.CoresPerSocket)
		}
		if cpuset.Set(c.OnlineCPUs).String() != c.OnlineCPUList {
			t.Fatalf("online %v listed %q", c.OnlineCPUs, c.OnlineCPUList)
		}
		n := 0
		for _, node := range r.NUMA {
			n += len(node.CPUs)
		}
		if n != len(c.OnlineCPUs) && len(cpuset.Of(c.OnlineCPUs...)) == len(c.OnlineCPUs) {
			// A CPU listed in two cells counts once online but in both
			// nodes; otherwise the nodes hold exactly the online CPUs.
			seen := map[int]int{}
			for _, node := range r.NUMA {
				for _, cpu := range node.CPUs {
					seen[cpu]++
				}
			}
			if len(seen) != len(c.OnlineCPUs) {
				t.Fatalf("nodes hold %d CPUs, %d online", len(seen), len(c.OnlineCPUs))
			}
		}
	})
}

// FuzzMHz: the clock as cpuinfo prints it becomes a finite, non-negative
// JSON number.
func FuzzMHz(f *testing.F) {
	for _, s := range []string{"3690.000000", "2533.402", "", "fast", "1e400", "-5", "NaN", "Inf", "0x1p3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := mhzOf(s)
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("mhzOf(%q) = %v", s, v)
		}
		if txt := mhzText(v); txt == "" {
			t.Fatalf("mhzText(%v) empty", v)
		}
	})
}
