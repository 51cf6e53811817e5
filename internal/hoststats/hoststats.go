// Package hoststats reads a host's live resource figures through a
// filesystem root: CPU time from /proc/stat, memory from /proc/meminfo,
// load from /proc/loadavg. A Sampler turns successive CPU readings into a
// usage percentage.
package hoststats

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/hostinfo"
)

// maxFile bounds every file read: these files are a few KiB on any host.
const maxFile = 4 << 20

// CPUTimes are the aggregate jiffies of the "cpu" line of /proc/stat.
type CPUTimes struct {
	Busy, Total uint64
	// CPUs counts the cpuN lines.
	CPUs int
}

// Memory is /proc/meminfo in KiB.
type Memory struct {
	TotalKiB, FreeKiB, AvailableKiB uint64
}

// Load is /proc/loadavg's three averages.
type Load struct {
	Load1, Load5, Load15 float64
}

func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, maxFile>>20)
	}
	return b, nil
}

// ParseStat reads the aggregate cpu line of /proc/stat: user nice system
// idle iowait irq softirq steal (guest time is already inside user).
func ParseStat(data []byte) (CPUTimes, error) {
	var t CPUTimes
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cpu":
			if len(f) < 5 {
				return t, fmt.Errorf("proc/stat: cpu line has %d fields, want at least 5", len(f)-1)
			}
			var v [8]uint64
			for i := 1; i < len(f) && i <= 8; i++ {
				n, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return t, fmt.Errorf("proc/stat: cpu field %d %q is not a number", i, f[i])
				}
				v[i-1] = n
			}
			idle := v[3] + v[4]
			for _, n := range v {
				t.Total += n
			}
			if t.Total < idle {
				return t, fmt.Errorf("proc/stat: cpu counters overflow")
			}
			t.Busy = t.Total - idle
			found = true
		case strings.HasPrefix(f[0], "cpu"):
			t.CPUs++
		}
	}
	if err := sc.Err(); err != nil {
		return t, fmt.Errorf("proc/stat: %w", err)
	}
	if !found {
		return t, fmt.Errorf("proc/stat: no aggregate cpu line")
	}
	return t, nil
}

// ParseMeminfo reads MemTotal, MemFree and MemAvailable (KiB) with the
// same reader as the host inventory (hostinfo.ParseMeminfo).
func ParseMeminfo(data []byte) (Memory, error) {
	kv := hostinfo.ParseMeminfo(data)
	total, ok := kv["MemTotal"]
	if !ok {
		return Memory{}, fmt.Errorf("proc/meminfo: no readable MemTotal")
	}
	m := Memory{TotalKiB: total, FreeKiB: kv["MemFree"], AvailableKiB: kv["MemAvailable"]}
	if _, ok := kv["MemAvailable"]; !ok {
		m.AvailableKiB = m.FreeKiB
	}
	return m, nil
}

// ParseLoadavg reads the three load averages.
func ParseLoadavg(data []byte) (Load, error) {
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return Load{}, fmt.Errorf("proc/loadavg: %d fields, want at least 3", len(f))
	}
	var v [3]float64
	for i := range v {
		n, err := strconv.ParseFloat(f[i], 64)
		if err != nil || !(n >= 0) || math.IsInf(n, 1) {
			return Load{}, fmt.Errorf("proc/loadavg: field %d %q is not a load average", i+1, f[i])
		}
		v[i] = n
	}
	return Load{v[0], v[1], v[2]}, nil
}

// ReadMemory reads proc/meminfo through the root.
func ReadMemory(fsys fs.FS) (Memory, error) {
	b, err := readFile(fsys, "proc/meminfo")
	if err != nil {
		return Memory{}, err
	}
	return ParseMeminfo(b)
}

// Reading is one sample of the host.
type Reading struct {
	Time   time.Time
	CPU    CPUTimes
	Memory Memory
	Load   Load
}

// Read samples the host once.
func Read(fsys fs.FS) (Reading, error) {
	r := Reading{Time: time.Now()}
	b, err := readFile(fsys, "proc/stat")
	if err != nil {
		return r, err
	}
	if r.CPU, err = ParseStat(b); err != nil {
		return r, err
	}
	if b, err = readFile(fsys, "proc/meminfo"); err != nil {
		return r, err
	}
	if r.Memory, err = ParseMeminfo(b); err != nil {
		return r, err
	}
	if b, err = readFile(fsys, "proc/loadavg"); err != nil {
		return r, err
	}
	r.Load, err = ParseLoadavg(b)
	return r, err
}

// Sampler keeps the last two readings to report CPU usage.
type Sampler struct {
	fsys       fs.FS
	mu         sync.Mutex
	prev, last Reading
	have       int
}

// NewSampler reads through fsys.
func NewSampler(fsys fs.FS) *Sampler { return &Sampler{fsys: fsys} }

// Sample takes a reading and returns it with the busy percentage of all CPUs
// since the previous one (0 on the first).
func (s *Sampler) Sample() (Reading, float64, error) {
	r, err := Read(s.fsys)
	if err != nil {
		return r, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prev, s.last = s.last, r
	if s.have < 2 {
		s.have++
	}
	return r, Usage(s.prev.CPU, r.CPU, s.have), nil
}

// Usage is the busy share (0-100) between two readings.
func Usage(prev, cur CPUTimes, readings int) float64 {
	if readings < 2 || cur.Total <= prev.Total || cur.Busy < prev.Busy {
		return 0
	}
	return 100 * float64(cur.Busy-prev.Busy) / float64(cur.Total-prev.Total)
}
