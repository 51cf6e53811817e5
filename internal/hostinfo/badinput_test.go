package hostinfo

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"polyvirt/internal/cpuset"
)

// endlessFS serves name as a regular file of endless cpuinfo text whose
// Stat claims size bytes (0 as /proc does, or a lie), and everything else
// from the underlying FS.
type endlessFS struct {
	fs.FS
	name string
	size int64
}

func (e endlessFS) Open(name string) (fs.File, error) {
	if name == e.name {
		return &endlessFile{name: name, size: e.size}, nil
	}
	return e.FS.Open(name)
}

func (e endlessFS) Stat(name string) (fs.FileInfo, error) {
	if name == e.name {
		return endlessInfo{name: name, size: e.size}, nil
	}
	return fs.Stat(e.FS, name)
}

type endlessFile struct {
	name string
	size int64
	read int64
}

func (f *endlessFile) Stat() (fs.FileInfo, error) {
	return endlessInfo{name: f.name, size: f.size}, nil
}
func (f *endlessFile) Close() error { return nil }
func (f *endlessFile) Read(p []byte) (int, error) {
	const line = "processor\t: 0\ncpu\t\t: POWER9, altivec supported\n\n"
	for i := range p {
		p[i] = line[(f.read+int64(i))%int64(len(line))]
	}
	f.read += int64(len(p))
	return len(p), nil
}

type endlessInfo struct {
	name string
	size int64
}

func (i endlessInfo) Name() string       { return filepath.Base(i.name) }
func (i endlessInfo) Size() int64        { return i.size }
func (i endlessInfo) Mode() fs.FileMode  { return 0o444 }
func (i endlessInfo) ModTime() time.Time { return time.Time{} }
func (i endlessInfo) IsDir() bool        { return false }
func (i endlessInfo) Sys() any           { return nil }

// findProblem returns the first problem about path.
func findProblem(h *Host, path string) (Problem, bool) {
	for _, p := range h.Problems {
		if p.Path == path {
			return p, true
		}
	}
	return Problem{}, false
}

func TestHugeCPUInfo(t *testing.T) {
	for _, size := range []int64{0, 100 << 20} {
		fsys := endlessFS{FS: fixtureX86NoDMI(), name: CPUInfoPath, size: size}
		start := time.Now()
		h, err := Read(fsys, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("size %d: Read took %v", size, d)
		}
		p, ok := findProblem(h, CPUInfoPath)
		if !ok || !strings.Contains(p.Reason, "limit") || p.Field != "cpu" {
			t.Errorf("size %d: problem %+v, want the cpuinfo size limit", size, p)
		}
		if h.CPU.Model != "" || h.Topology.TotalCPUs != 4 {
			t.Errorf("size %d: model %q, %d CPUs; want no model and the sysfs topology", size, h.CPU.Model, h.Topology.TotalCPUs)
		}
	}
	if _, _, err := ReadCPUInfo(endlessFS{FS: fstest.MapFS{}, name: CPUInfoPath}); err == nil ||
		!strings.Contains(err.Error(), CPUInfoPath) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("ReadCPUInfo error %v, want the file and the limit", err)
	}
}

// tempRoot writes a fixture to a real directory, for the cases fstest
// cannot express (FIFOs, symlinks, device nodes).
func tempRoot(t *testing.T, m fstest.MapFS) string {
	t.Helper()
	root := t.TempDir()
	for name, f := range m {
		p := filepath.Join(root, filepath.FromSlash(name))
		if f.Mode.IsDir() {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if f.Mode&fs.ModeDevice != 0 {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// readWithin runs Read and fails the test if it does not return in time.
func readWithin(t *testing.T, fsys fs.FS, d time.Duration) *Host {
	t.Helper()
	type result struct {
		h   *Host
		err error
	}
	done := make(chan result, 1)
	go func() {
		h, err := Read(fsys, Options{})
		done <- result{h, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.h
	case <-time.After(d):
		t.Fatalf("Read did not return within %v", d)
	}
	return nil
}

func TestSpecialFiles(t *testing.T) {
	root := tempRoot(t, fixtureX86NoDMI())
	cpuinfo := filepath.Join(root, "proc", "cpuinfo")
	if err := os.Remove(cpuinfo); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(cpuinfo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	online := filepath.Join(root, "sys", "devices", "system", "cpu", "online")
	os.Remove(online)
	if err := os.Symlink("/dev/zero", online); err != nil {
		t.Fatal(err)
	}
	meminfo := filepath.Join(root, "proc", "meminfo")
	os.Remove(meminfo)
	if err := os.Mkdir(meminfo, 0o755); err != nil {
		t.Fatal(err)
	}
	h := readWithin(t, os.DirFS(root), 10*time.Second)
	for path, want := range map[string]string{
		CPUInfoPath:            "not a regular file",
		SysCPUPath + "/online": "not a regular file",
		MeminfoPath:            "is a directory",
	} {
		if p, ok := findProblem(h, path); !ok || !strings.Contains(p.Reason, want) {
			t.Errorf("%s: problem %+v, want %q", path, p, want)
		}
	}
	// The online list falls back to the CPUs' online files (all online).
	if got := h.Topology.Online.String(); got != "0-3" {
		t.Errorf("online = %q, want 0-3 from cpuN/online", got)
	}
}

func TestSymlinkLoops(t *testing.T) {
	root := tempRoot(t, fixtureX86DMI())
	topo := filepath.Join(root, "sys", "devices", "system", "cpu", "cpu1", "topology")
	if err := os.RemoveAll(topo); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("topology", topo); err != nil {
		t.Fatal(err)
	}
	node1 := filepath.Join(root, "sys", "devices", "system", "node", "node1")
	os.RemoveAll(node1)
	if err := os.Symlink("node1", node1); err != nil {
		t.Fatal(err)
	}
	sib := filepath.Join(root, "sys", "devices", "system", "cpu", "cpu2", "topology", "thread_siblings_list")
	os.Remove(sib)
	if err := os.Symlink("core_siblings_list/../thread_siblings_list", sib); err != nil {
		t.Fatal(err)
	}
	h := readWithin(t, os.DirFS(root), 10*time.Second)
	for _, path := range []string{
		SysCPUPath + "/cpu1/topology",
		SysNodePath + "/node1",
		SysCPUPath + "/cpu2/topology/thread_siblings_list",
	} {
		if p, ok := findProblem(h, path); !ok || p.Reason == "" {
			t.Errorf("no problem reported for %s (problems: %v)", path, h.Problems)
		}
	}
	if h.Topology.TotalCPUs != 8 || len(h.NUMA) != 1 {
		t.Errorf("%d CPUs, %d nodes: the rest of the host must still be read", h.Topology.TotalCPUs, len(h.NUMA))
	}
	// libvirt fails the nodeinfo on a node directory it cannot list.
	if h.NodeInfo != (NodeInfo{}) {
		t.Errorf("nodeinfo %+v read past an unreadable node directory", h.NodeInfo)
	}
	nodeinfoProblem := false
	for _, p := range h.Problems {
		nodeinfoProblem = nodeinfoProblem || (p.Field == "nodeinfo" && p.Path == SysNodePath+"/node1")
	}
	if !nodeinfoProblem {
		t.Errorf("no nodeinfo problem naming node1: %v", h.Problems)
	}
}

func TestHostileSysfs(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(m fstest.MapFS)
		path   string
		reason string
		check  func(t *testing.T, h *Host)
	}{
		{
			name: "absurd CPU number",
			edit: func(m fstest.MapFS) {
				m[SysCPUPath+"/cpu4294967295/online"] = &fstest.MapFile{Data: []byte("1\n")}
			},
			path: SysCPUPath, reason: "above",
			check: func(t *testing.T, h *Host) {
				if h.Topology.TotalCPUs != 4 {
					t.Errorf("%d CPUs", h.Topology.TotalCPUs)
				}
			},
		},
		{
			name: "absurd online range",
			edit: func(m fstest.MapFS) {
				m[SysCPUPath+"/online"] = &fstest.MapFile{Data: []byte("0-4294967295\n")}
			},
			path: SysCPUPath + "/online", reason: "not a CPU number",
			check: func(t *testing.T, h *Host) {
				if got := h.Topology.Online.String(); got != "0-3" {
					t.Errorf("online %q, want the per-CPU fallback 0-3", got)
				}
			},
		},
		{
			name: "garbage core id",
			edit: func(m fstest.MapFS) {
				m[SysCPUPath+"/cpu2/topology/core_id"] = &fstest.MapFile{Data: []byte("two\n")}
			},
			path: SysCPUPath + "/cpu2/topology/core_id", reason: "not an integer",
			check: func(t *testing.T, h *Host) {
				if h.NodeInfo.CPUs != 0 {
					t.Errorf("nodeinfo %+v, want none: libvirt fails on a malformed core_id", h.NodeInfo)
				}
				p, ok := findProblem(h, SysCPUPath+"/cpu2/topology/core_id")
				if !ok {
					t.Fatal("no problem")
				}
				found := false
				for _, q := range h.Problems {
					found = found || (q.Field == "nodeinfo" && q.Path == p.Path)
				}
				if !found {
					t.Errorf("no nodeinfo problem naming %s: %v", p.Path, h.Problems)
				}
				if h.Topology.ThreadsPerCore != 1 {
					t.Errorf("lscpu topology lost: %+v", h.Topology)
				}
			},
		},
		{
			name: "huge node number",
			edit: func(m fstest.MapFS) {
				m[SysNodePath+"/node99999999/cpulist"] = &fstest.MapFile{Data: []byte("0\n")}
			},
			path: SysNodePath + "/node99999999", reason: "above",
			check: func(t *testing.T, h *Host) {
				if len(h.NUMA) != 0 {
					t.Errorf("NUMA %+v", h.NUMA)
				}
			},
		},
		{
			name: "binary cpuinfo",
			edit: func(m fstest.MapFS) {
				m[CPUInfoPath] = &fstest.MapFile{Data: []byte("\x7fELF\x02\x01\x01\x00\x00\x00")}
			},
			path: CPUInfoPath, reason: "binary",
			check: func(t *testing.T, h *Host) {
				if h.Arch != "" || h.ArchSource != "none" {
					t.Errorf("arch %q from %q", h.Arch, h.ArchSource)
				}
			},
		},
		{
			name: "oversized sysfs attribute",
			edit: func(m fstest.MapFS) {
				m[SysCPUPath+"/present"] = &fstest.MapFile{Data: []byte(strings.Repeat("0,", MaxAttrBytes))}
			},
			path: SysCPUPath + "/present", reason: "limit",
			check: func(t *testing.T, h *Host) {
				if h.Topology.TotalCPUs != 4 {
					t.Errorf("%d CPUs, want 4 from possible", h.Topology.TotalCPUs)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := fixtureX86NoDMI()
			c.edit(m)
			h, err := Read(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, ok := findProblem(h, c.path)
			if !ok || !strings.Contains(p.Reason, c.reason) {
				t.Errorf("problem for %s = %+v, want one saying %q (all: %v)", c.path, p, c.reason, h.Problems)
			}
			c.check(t, h)
		})
	}
}

// TestCPUInfoWorstCase parses cpuinfo texts of megabytes made of as many
// distinct processors as fit: the parsers stay linear, and Read keeps only
// the types of processors that exist.
func TestCPUInfoWorstCase(t *testing.T) {
	gen := map[string]func(i int) string{
		"x86": func(i int) string {
			return fmt.Sprintf("processor : %d\nvendor_id : V%d\nmodel name : M%d\nflags : lm\n\n", i%60000, i, i)
		},
		"arm": func(i int) string {
			return fmt.Sprintf("processor : %d\nCPU part : 0x%x\n\nFeatures : fp\n\n", i%60000, i)
		},
		"power": func(i int) string {
			return fmt.Sprintf("processor : %d\ncpu : POWER%d\nclock : 1MHz\n\ntimebase : %d\n\n", i%60000, i, i)
		},
	}
	for name, g := range gen {
		var b strings.Builder
		const size = MaxCPUInfoBytes / 4 // quadratic work would show already
		for i := 0; b.Len() < size; i++ {
			b.WriteString(g(i))
		}
		data := []byte(b.String()[:size])
		start := time.Now()
		cpu, _, err := ParseCPUInfo(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: %d processors, %d types parsed in %v", name, cpu.Processors, len(cpu.Types), d)
		}
		m := fixtureX86NoDMI()
		m[CPUInfoPath] = &fstest.MapFile{Data: data}
		start = time.Now()
		h, err := Read(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second || len(h.CPU.Types) > 4 {
			t.Errorf("%s: Read took %v and kept %d types for 4 CPUs", name, d, len(h.CPU.Types))
		}
	}
}

func TestTruncatedCPUInfo(t *testing.T) {
	full := fixturePowerNVP8()[CPUInfoPath].Data
	for _, n := range []int{10, 40, len(full) / 2, len(full) - 5} {
		cpu, a, err := ParseCPUInfo(full[:n])
		if err != nil {
			if n > 40 {
				t.Errorf("cut at %d: %v", n, err)
			}
			continue
		}
		if a.Family() != "ppc" || cpu.Vendor != "IBM" {
			t.Errorf("cut at %d: %s %+v", n, a, cpu)
		}
	}
}

func TestNothingToRead(t *testing.T) {
	if _, err := Read(fstest.MapFS{}, Options{}); err == nil || !strings.Contains(err.Error(), "nothing readable") {
		t.Errorf("empty root: %v", err)
	}
	if _, err := Read(nil, Options{}); err == nil {
		t.Error("nil root read")
	}
	// Only a meminfo: something useful, no error.
	h, err := Read(fstest.MapFS{MeminfoPath: {Data: []byte("MemTotal: 1024 kB\n")}}, Options{})
	if err != nil || h.MemTotalKiB != 1024 || h.Identity.Source != "none" {
		t.Errorf("meminfo only: %+v, %v", h, err)
	}
}

func TestTopologyWithoutSysfs(t *testing.T) {
	// cpuinfo only: the CPU is read, topology and nodeinfo are not (a
	// Problem says why; libvirt fails without sysfs).
	m := fstest.MapFS{CPUInfoPath: fixturePowerNVP9()[CPUInfoPath]}
	h, err := Read(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := findProblem(h, SysCPUPath); !ok || p.Reason != "missing" {
		t.Errorf("problem %+v, want sys/devices/system/cpu missing", p)
	}
	if h.Topology.TotalCPUs != 0 || h.NodeInfo != (NodeInfo{}) || h.CPU.Types[0].CPUs.String() != cpuset.Of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15).String() {
		t.Errorf("topology %+v, nodeinfo %+v, types %+v", h.Topology, h.NodeInfo, h.CPU.Types)
	}
}

var _ io.Reader = (*endlessFile)(nil)

// TestOnlineNeverCopiesPresent: an online list that cannot be read or says
// something absurd is derived from the CPUs' own online files, or reported
// unavailable; the present CPUs are never taken for the online ones (on an
// SMT-off POWER8 that would be 8 times its capacity).
func TestOnlineNeverCopiesPresent(t *testing.T) {
	onlineList := SysCPUPath + "/online"
	perCPU := func(m fstest.MapFS) {
		for name := range m {
			if strings.HasPrefix(name, SysCPUPath+"/cpu") && strings.HasSuffix(name, "/online") {
				delete(m, name)
			}
		}
	}
	cases := []struct {
		name    string
		fixture func() fstest.MapFS
		edit    func(m fstest.MapFS)
		// online is the list wanted; "" means unavailable (nil).
		online string
		// path and reason name the Problem that must be reported.
		path, reason string
	}{
		{name: "absurd range on an SMT-off POWER8", fixture: fixturePowerNVP8,
			edit:   func(m fstest.MapFS) { m[onlineList] = &fstest.MapFile{Data: []byte("0-4294967295\n")} },
			online: "0,8,16,24,32,40", path: onlineList, reason: "not a CPU number"},
		{name: "a list naming absent CPUs on an SMT-off POWER8", fixture: fixturePowerNVP8,
			edit:   func(m fstest.MapFS) { m[onlineList] = &fstest.MapFile{Data: []byte("0-65535\n")} },
			online: "0,8,16,24,32,40", path: onlineList, reason: "not present"},
		{name: "unreadable list on an SMT-off POWER8", fixture: fixturePowerNVP8,
			edit:   func(m fstest.MapFS) { m[onlineList] = &fstest.MapFile{Mode: fs.ModeDir} },
			online: "0,8,16,24,32,40", path: onlineList, reason: "directory"},
		{name: "no list and no per-CPU file", fixture: fixturePowerNVP8,
			edit:   func(m fstest.MapFS) { delete(m, onlineList); perCPU(m) },
			online: "", path: onlineList, reason: "unavailable"},
		{name: "absurd list and no per-CPU file", fixture: fixturePowerNVP8,
			edit: func(m fstest.MapFS) {
				m[onlineList] = &fstest.MapFile{Data: []byte("0-4294967295\n")}
				perCPU(m)
			},
			online: "", path: onlineList, reason: "unavailable"},
		{name: "a malformed per-CPU file", fixture: fixtureX86NoDMI,
			edit: func(m fstest.MapFS) {
				delete(m, onlineList)
				m[SysCPUPath+"/cpu2/online"] = &fstest.MapFile{Data: []byte("yes\n")}
			},
			online: "", path: SysCPUPath + "/cpu2/online", reason: "neither 0 nor 1"},
		{name: "an unreadable per-CPU file", fixture: fixtureX86NoDMI,
			edit: func(m fstest.MapFS) {
				delete(m, onlineList)
				m[SysCPUPath+"/cpu3/online"] = &fstest.MapFile{Data: []byte(strings.Repeat("1", MaxAttrBytes+1))}
			},
			online: "", path: SysCPUPath + "/cpu3/online", reason: "limit"},
		{name: "the boot CPU has no file", fixture: fixtureX86NoDMI,
			edit:   func(m fstest.MapFS) { delete(m, onlineList) },
			online: "0-3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.fixture()
			c.edit(m)
			h, err := Read(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if c.online == "" {
				if h.Topology.Online != nil {
					t.Errorf("online %q, want unavailable (present %d CPUs)", h.Topology.Online, h.Topology.TotalCPUs)
				}
				if h.NodeInfo != (NodeInfo{}) {
					t.Errorf("nodeinfo %+v without the online CPUs", h.NodeInfo)
				}
			} else if got := h.Topology.Online.String(); got != c.online {
				t.Errorf("online %q, want %q", got, c.online)
			}
			if c.path != "" {
				found := false
				for _, p := range h.Problems {
					found = found || (p.Path == c.path && strings.Contains(p.Reason, c.reason))
				}
				if !found {
					t.Errorf("no problem for %s saying %q (all: %v)", c.path, c.reason, h.Problems)
				}
			}
		})
	}
}
