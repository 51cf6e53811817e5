package hostinfo

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"polyvirt/internal/cpuset"
)

// MaxNodeID is the largest NUMA node number read; nodeN directories above it
// are ignored with a Problem (Linux allows at most 1024 nodes).
const MaxNodeID = 1 << 12

// readNodeDirs lists sys/devices/system/node/nodeN directories and their
// cpuN entries; nil (and no Problem) when the directory does not exist, as
// on hosts without NUMA support.
func readNodeDirs(fsys fs.FS, p *problems) []nodeDirInfo {
	ents, err := readDir(fsys, SysNodePath)
	if err != nil {
		p.addErr("numa", SysNodePath, err, true)
		return nil
	}
	out := []nodeDirInfo{}
	for _, e := range ents {
		id, ok := numberedName(e.Name(), "node", MaxNodeID)
		if !ok {
			if numberedOverflow(e.Name(), "node") {
				p.add("numa", SysNodePath+"/"+e.Name(), fmt.Sprintf("node number above %d ignored", MaxNodeID))
			}
			continue
		}
		dir := SysNodePath + "/" + e.Name()
		sub, err := readDir(fsys, dir)
		if err != nil {
			p.addErr("numa", dir, err, false)
			out = append(out, nodeDirInfo{id: id, path: dir, err: err})
			continue
		}
		nd := nodeDirInfo{id: id}
		for _, s := range sub {
			if c, ok := numberedName(s.Name(), "cpu", cpuset.MaxCPU); ok {
				nd.cpus = append(nd.cpus, c)
			}
		}
		nd.cpus = cpuset.Of(nd.cpus...)
		out = append(out, nd)
	}
	sortNodes(out)
	return out
}

func sortNodes(n []nodeDirInfo) {
	for i := 1; i < len(n); i++ {
		for j := i; j > 0 && n[j].id < n[j-1].id; j-- {
			n[j], n[j-1] = n[j-1], n[j]
		}
	}
}

// readNUMA reads each node's CPUs (cpulist, else cpumap, else the cpuN
// entries), memory (the node's meminfo) and distances.
func readNUMA(fsys fs.FS, p *problems, dirs []nodeDirInfo) []NUMANode {
	out := make([]NUMANode, 0, len(dirs))
	for _, nd := range dirs {
		if nd.err != nil {
			continue // reported by readNodeDirs
		}
		base := fmt.Sprintf("%s/node%d", SysNodePath, nd.id)
		n := NUMANode{ID: nd.id, CPUs: nil}
		if v, ok := readAttr(fsys, p, "numa", base+"/cpulist"); ok {
			if set, err := cpuset.Parse(v); err == nil {
				n.CPUs = set
			} else {
				p.add("numa", base+"/cpulist", err.Error())
			}
		} else if v, ok := readAttr(fsys, p, "numa", base+"/cpumap"); ok {
			if set, err := cpuset.ParseMask(v); err == nil {
				n.CPUs = set
			} else {
				p.add("numa", base+"/cpumap", err.Error())
			}
		}
		if n.CPUs == nil {
			n.CPUs = append(cpuset.Set{}, nd.cpus...)
		}
		if data, err := readFile(fsys, base+"/meminfo", MaxProcFileBytes); err == nil {
			if kib, ok := ParseMeminfo(data)["MemTotal"]; ok {
				n.MemoryKiB = kib
			} else {
				p.add("numa", base+"/meminfo", "no MemTotal line")
			}
		} else {
			p.addErr("numa", base+"/meminfo", err, true)
		}
		if v, ok := readAttr(fsys, p, "numa", base+"/distance"); ok {
			for _, f := range strings.Fields(v) {
				d, err := strconv.Atoi(f)
				if err != nil || d < 0 {
					p.add("numa", base+"/distance", fmt.Sprintf("not a distance: %q", clipString(f)))
					n.Distances = nil
					break
				}
				n.Distances = append(n.Distances, d)
			}
		}
		out = append(out, n)
	}
	return out
}

// MeminfoPath is where the root holds /proc/meminfo.
const MeminfoPath = "proc/meminfo"

// ParseMeminfo reads /proc/meminfo or a NUMA node's meminfo into a map of
// key to KiB: "MemTotal:  16303520 kB" and "Node 0 MemTotal:  32768 kB" both
// give MemTotal. Values without a unit (HugePages_Total) are kept as
// printed; lines that are not "key: number [kB]" are skipped.
func ParseMeminfo(data []byte) map[string]uint64 {
	out := make(map[string]uint64)
	s := string(data)
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		if strings.HasPrefix(key, "Node ") {
			if f := strings.Fields(key); len(f) == 3 {
				key = f[2]
			}
		}
		f := strings.Fields(val)
		if key == "" || len(f) == 0 || len(f) > 2 || (len(f) == 2 && !strings.EqualFold(f[1], "kB")) {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if _, dup := out[key]; !dup {
			out[key] = v
		}
	}
	return out
}
