package hostinfo

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"polyvirt/internal/cpuset"
)

// Paths of the sysfs trees under the root.
const (
	SysCPUPath  = "sys/devices/system/cpu"
	SysNodePath = "sys/devices/system/node"
)

// cpuLists are the CPU sets of sys/devices/system/cpu, with the fallbacks
// used when a file is missing.
type cpuLists struct {
	// possible, present and online as read; nil when the file is missing
	// or unreadable.
	possibleFile, presentFile, onlineFile cpuset.Set
	// dirs are the cpuN directories.
	dirs cpuset.Set
	// possible, present and online with the fallbacks applied: present
	// falls back to possible, then to the cpuN directories; possible to
	// present; online to each CPU's cpuN/online (missing: online, as
	// for a CPU that cannot be offlined).
	possible, present, online cpuset.Set
	// found reports whether sys/devices/system/cpu exists at all.
	found bool
}

// sysfs reads sys/devices/system/cpu and caches each CPU's topology files,
// which both lscpu's and libvirt's readings use.
type sysfs struct {
	fsys fs.FS
	p    *problems
	topo map[int]*cpuTopo
	// dirs are the cpuN directories once lists ran: a CPU without one has
	// no files to read, whatever the CPU lists claim.
	dirs cpuset.Set
}

// cpuTopo is what cpuN/topology says of one CPU.
type cpuTopo struct {
	exists bool // the topology directory exists

	packageID, coreID       int
	hasPackage, hasCore     bool
	packageErr, coreErr     error
	thread, core            cpuset.Set // thread_siblings, core_siblings
	book, drawer            cpuset.Set
	hasThread, hasCoreSib   bool
	hasBook, hasDrawer      bool
	threadErr               error
	threadPath, packagePath string
	corePath                string
}

func newSysfs(fsys fs.FS, p *problems) *sysfs {
	return &sysfs{fsys: fsys, p: p, topo: make(map[int]*cpuTopo)}
}

// readList reads a CPU list file; nil when missing. A malformed list is a
// Problem and nil.
func (s *sysfs) readList(name, field string) cpuset.Set {
	data, err := readFile(s.fsys, name, MaxAttrBytes)
	if err != nil {
		s.p.addErr(field, name, err, true)
		return nil
	}
	set, err := cpuset.Parse(string(data))
	if err != nil {
		s.p.add(field, name, err.Error())
		return nil
	}
	return set
}

// lists reads possible, present, online and the cpuN directories.
func (s *sysfs) lists() cpuLists {
	var l cpuLists
	ents, err := readDir(s.fsys, SysCPUPath)
	if err != nil {
		s.p.addErr("topology", SysCPUPath, err, false)
		return l
	}
	l.found = true
	var dirs []int
	tooBig := 0
	for _, e := range ents {
		n, ok := numberedName(e.Name(), "cpu", cpuset.MaxCPU)
		if !ok {
			if numberedOverflow(e.Name(), "cpu") {
				tooBig++
			}
			continue
		}
		dirs = append(dirs, n)
	}
	if tooBig > 0 {
		s.p.add("topology", SysCPUPath, fmt.Sprintf("%d cpuN entries with a number above %d ignored", tooBig, cpuset.MaxCPU))
	}
	l.dirs = cpuset.Of(dirs...)
	s.dirs = l.dirs
	l.possibleFile = s.readList(path.Join(SysCPUPath, "possible"), "topology")
	l.presentFile = s.readList(path.Join(SysCPUPath, "present"), "topology")
	l.onlineFile = s.readList(path.Join(SysCPUPath, "online"), "topology")

	l.present = firstSet(l.presentFile, l.possibleFile, l.dirs)
	l.possible = firstSet(l.possibleFile, l.presentFile, l.dirs)
	l.online = l.onlineFile
	if l.online != nil {
		if extra := notIn(l.online, l.present); len(extra) > 0 {
			// The kernel's online list is a subset of the present one: a
			// list naming other CPUs says nothing true.
			s.p.add("topology", path.Join(SysCPUPath, "online"),
				fmt.Sprintf("names %d CPUs that are not present (%s), refusing it", len(extra), clipString(extra.String())))
			l.online = nil
		}
	}
	if l.online == nil {
		l.online = s.onlineFromCPUs(l.present)
	}
	return l
}

// ReadOnline reads the online CPUs of the root's sys/devices/system/cpu
// with Read's rules (the online list, else each CPU's online file; never
// the present CPUs). The error says why they are unavailable.
func ReadOnline(fsys fs.FS) (cpuset.Set, error) {
	var p problems
	l := newSysfs(fsys, &p).lists()
	if !l.found || l.online == nil {
		for _, pr := range p.list {
			if pr.Field == "topology" {
				return nil, pr
			}
		}
		return nil, fmt.Errorf("%s: the online CPUs are unavailable", SysCPUPath)
	}
	return l.online, nil
}

// onlineFromCPUs derives the online CPUs from each present CPU's
// cpuN/online when the online list cannot be used: "1" is online, "0"
// offline, and a CPU without the file cannot be taken offline (the boot CPU
// of most systems), so it is online — provided other CPUs have the file,
// which shows the kernel prints it. It returns nil (unavailable, with a
// Problem) when a file is unreadable or malformed, a present CPU has no
// directory, or no CPU has the file: the present CPUs are never taken for
// the online ones.
func (s *sysfs) onlineFromCPUs(present cpuset.Set) cpuset.Set {
	var on []int
	withFile := 0
	var noFile []int
	for _, c := range present {
		if !s.dirs.Contains(c) {
			s.p.add("topology", fmt.Sprintf("%s/cpu%d", SysCPUPath, c), "a present CPU without its directory: the online CPUs are unavailable")
			return nil
		}
		name := fmt.Sprintf("%s/cpu%d/online", SysCPUPath, c)
		data, err := readFile(s.fsys, name, MaxAttrBytes)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			noFile = append(noFile, c)
			continue
		case err != nil:
			s.p.add("topology", name, reason(err)+": the online CPUs are unavailable")
			return nil
		}
		withFile++
		switch v := trimValue(data); v {
		case "1":
			on = append(on, c)
		case "0":
		default:
			s.p.add("topology", name, fmt.Sprintf("%q is neither 0 nor 1: the online CPUs are unavailable", clipString(v)))
			return nil
		}
	}
	if len(present) > 0 && withFile == 0 {
		s.p.add("topology", path.Join(SysCPUPath, "online"), "no online list and no CPU has an online file: the online CPUs are unavailable")
		return nil
	}
	return cpuset.Of(append(on, noFile...)...)
}

// notIn returns the CPUs of a that are not in b.
func notIn(a, b cpuset.Set) cpuset.Set {
	var out []int
	for _, c := range a {
		if !b.Contains(c) {
			out = append(out, c)
		}
	}
	return cpuset.Set(out)
}

func firstSet(sets ...cpuset.Set) cpuset.Set {
	for _, s := range sets {
		if s != nil {
			return s
		}
	}
	return cpuset.Set{}
}

// topology returns CPU cpu's topology files, read once.
func (s *sysfs) topology(cpu int) *cpuTopo {
	if t, ok := s.topo[cpu]; ok {
		return t
	}
	t := &cpuTopo{}
	s.topo[cpu] = t
	if !s.dirs.Contains(cpu) {
		return t
	}
	dir := fmt.Sprintf("%s/cpu%d/topology", SysCPUPath, cpu)
	ents, err := readDir(s.fsys, dir)
	if err != nil {
		s.p.addErr("topology", dir, err, true)
		return t
	}
	t.exists = true
	files := make(map[string]fs.FileMode, len(ents))
	for _, e := range ents {
		files[e.Name()] = e.Type()
	}
	read := func(name string) ([]byte, string, bool, error) {
		mode, ok := files[name]
		if !ok {
			return nil, "", false, nil
		}
		p := dir + "/" + name
		if mode&fs.ModeSymlink != 0 || mode.Type() != 0 {
			// Not known to be a regular file: let Stat decide.
			data, err := readFile(s.fsys, p, MaxAttrBytes)
			return data, p, true, err
		}
		data, err := readRegular(s.fsys, p, 0, MaxAttrBytes)
		return data, p, true, err
	}
	readInt := func(name string) (int, string, bool, error) {
		data, p, ok, err := read(name)
		if !ok {
			return 0, "", false, nil
		}
		if err != nil {
			s.p.add("topology", p, reason(err))
			return 0, p, true, err
		}
		v, err := strconv.Atoi(trimValue(data))
		if err != nil {
			err = fmt.Errorf("not an integer: %q", clipString(trimValue(data)))
			s.p.add("topology", p, err.Error())
		}
		return v, p, true, err
	}
	readSet := func(base string) (cpuset.Set, string, bool, error) {
		data, p, ok, err := read(base + "_list")
		parse := cpuset.Parse
		if !ok {
			data, p, ok, err = read(base)
			parse = cpuset.ParseMask
		}
		if !ok {
			return nil, "", false, nil
		}
		if err != nil {
			s.p.add("topology", p, reason(err))
			return nil, p, true, err
		}
		set, err := parse(string(data))
		if err != nil {
			s.p.add("topology", p, err.Error())
		}
		return set, p, true, err
	}
	t.packageID, t.packagePath, t.hasPackage, t.packageErr = readInt("physical_package_id")
	t.coreID, t.corePath, t.hasCore, t.coreErr = readInt("core_id")
	t.thread, t.threadPath, t.hasThread, t.threadErr = readSet("thread_siblings")
	var err2 error
	t.core, _, t.hasCoreSib, err2 = readSet("core_siblings")
	t.hasCoreSib = t.hasCoreSib && err2 == nil
	t.book, _, t.hasBook, err2 = readSet("book_siblings")
	t.hasBook = t.hasBook && err2 == nil
	t.drawer, _, t.hasDrawer, err2 = readSet("drawer_siblings")
	t.hasDrawer = t.hasDrawer && err2 == nil
	return t
}

// readAttr reads a small sysfs or device-tree file and trims it; ok is false
// when it is missing (silently) or unreadable (a Problem).
func readAttr(fsys fs.FS, p *problems, field, name string) (string, bool) {
	data, err := readFile(fsys, name, MaxAttrBytes)
	if err != nil {
		p.addErr(field, name, err, true)
		return "", false
	}
	return trimValue(data), true
}

// readIntAttr reads an integer sysfs attribute; ok is false when missing or
// malformed (a Problem).
func readIntAttr(fsys fs.FS, p *problems, field, name string) (int, bool) {
	v, ok := readAttr(fsys, p, field, name)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.add(field, name, fmt.Sprintf("not an integer: %q", clipString(v)))
		return 0, false
	}
	return n, true
}

func clipString(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// keyOf is a map key for a CPU set.
func keyOf(s cpuset.Set) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(c))
	}
	return b.String()
}
