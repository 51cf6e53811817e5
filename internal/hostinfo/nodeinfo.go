package hostinfo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"polyvirt/internal/arch"
	"polyvirt/internal/cpuset"
)

// This file computes libvirt's virNodeInfo the way
// virHostCPUGetInfoPopulateLinux (libvirt src/util/virhostcpu.c) does,
// reimplemented from its rules:
//
//   - For each NUMA node directory nodeN, the node's CPUs are its cpuN
//     entries that are present. Of those, the online ones count as
//     processors; their sockets are physical_package_id (missing or negative
//     = 0), their cores core_id (on s390x the CPU number itself), and the
//     threads per core the largest thread_siblings_list count (missing = 1).
//     Cores per socket is the largest count of distinct core ids in one
//     socket.
//   - An offline CPU is counted as a processor instead of as offline when
//     POWER subcores are in use (threads per subcore > 0): it is a secondary
//     thread (cpu % tps != 0) whose primary (cpu - cpu % tps) is online. The
//     threads figure is then multiplied by tps. Subcores count as in use only
//     when no online CPU is a secondary thread.
//   - Nodes, sockets, cores and threads are the maxima over the nodes, CPUs
//     the sum. Without node directories (or when they hold no CPUs) the
//     whole sys/devices/system/cpu is read as one node (and, as in libvirt,
//     threads per subcore is then 0 when there is no node directory at all).
//   - When nodes × sockets × cores × threads differs from CPUs + offline
//     CPUs, libvirt gives up on the topology: 1 node, 1 socket, CPUs +
//     offline cores, 1 thread.
//   - MHz: x86 the last "cpu MHz" line, POWER "clock", s390x "cpu MHz
//     dynamic", 0 on ARM and unknown architectures; the integer part.
//
// Where libvirt requires sys/devices/system/cpu/present and online, the
// fallbacks of cpuLists are used instead of failing.

// nodeDirInfo is one sys/devices/system/node/nodeN directory.
type nodeDirInfo struct {
	id   int
	cpus []int // its cpuN entries
	// err is why the directory could not be listed (path names it);
	// libvirt fails the nodeinfo there.
	path string
	err  error
}

// nodeInfoInput is what the computation needs.
type nodeInfoInput struct {
	arch     arch.Arch
	present  cpuset.Set
	online   cpuset.Set
	nodeDirs []nodeDirInfo // nil: no node directory at all
	cpuDirs  cpuset.Set    // the cpuN directories of sys/devices/system/cpu
	tps      int           // threads per subcore as KVM would say (0: none)
	topo     func(cpu int) *cpuTopo
}

// nodeInfoError is a failure with the file it concerns.
type nodeInfoError struct {
	path, reason string
}

func (e *nodeInfoError) Error() string { return e.path + ": " + e.reason }

// computeNodeInfo returns libvirt's reading (MHz excepted).
func computeNodeInfo(in nodeInfoInput) (NodeInfo, error) {
	var ni NodeInfo
	offline := 0
	tps := 0
	if in.nodeDirs != nil {
		tps = in.tps
		if !validSubcores(tps, in.online) {
			tps = 0
		}
		for _, nd := range in.nodeDirs {
			if nd.err != nil {
				return NodeInfo{}, &nodeInfoError{nd.path, reason(nd.err)}
			}
			ni.Nodes++
			r, err := parseNode(in, nd.cpus, tps, &offline)
			if err != nil {
				return NodeInfo{}, err
			}
			ni.CPUs += r.processors
			ni.Sockets = max(ni.Sockets, r.sockets)
			ni.Cores = max(ni.Cores, r.cores)
			ni.Threads = max(ni.Threads, r.threads)
		}
	}
	if ni.CPUs == 0 || ni.Nodes == 0 {
		r, err := parseNode(in, in.cpuDirs, tps, &offline)
		if err != nil {
			return NodeInfo{}, err
		}
		ni = NodeInfo{Nodes: 1, CPUs: r.processors, Sockets: r.sockets, Cores: r.cores, Threads: r.threads}
	}
	switch {
	case ni.CPUs == 0:
		return NodeInfo{}, &nodeInfoError{SysCPUPath, "no CPUs found"}
	case ni.Sockets == 0:
		return NodeInfo{}, &nodeInfoError{SysCPUPath, "no sockets found"}
	case ni.Threads == 0:
		return NodeInfo{}, &nodeInfoError{SysCPUPath, "no threads found"}
	}
	if ni.Nodes*ni.Sockets*ni.Cores*ni.Threads != ni.CPUs+offline {
		ni.Nodes, ni.Sockets, ni.Cores, ni.Threads = 1, 1, ni.CPUs+offline, 1
	}
	ni.TotalCPUs = ni.Nodes * ni.Sockets * ni.Cores * ni.Threads
	return ni, nil
}

// validSubcores reports whether subcores are in use the way KVM needs them:
// tps > 0 and no online CPU is a secondary thread.
func validSubcores(tps int, online cpuset.Set) bool {
	if tps <= 0 {
		return false
	}
	for _, c := range online {
		if c%tps != 0 {
			return false
		}
	}
	return true
}

type nodeResult struct {
	processors, sockets, cores, threads int
}

// parseNode reads one node's CPUs (entries) as libvirt's virHostCPUParseNode.
func parseNode(in nodeInfoInput, entries []int, tps int, offline *int) (nodeResult, error) {
	var r nodeResult
	var nodeCPUs []int
	for _, c := range entries {
		if in.present.Contains(c) {
			nodeCPUs = append(nodeCPUs, c)
		}
	}
	nodeCPUs = cpuset.Of(nodeCPUs...)
	coresOf := make(map[int]map[int]bool)
	for _, c := range nodeCPUs {
		if !in.online.Contains(c) {
			continue
		}
		s, err := socketOf(in.topo(c))
		if err != nil {
			return r, err
		}
		if coresOf[s] == nil {
			coresOf[s] = make(map[int]bool)
		}
	}
	for _, c := range nodeCPUs {
		if !in.online.Contains(c) {
			if tps > 0 && c%tps != 0 && in.online.Contains(c-c%tps) {
				r.processors++
			} else {
				*offline++
			}
			continue
		}
		r.processors++
		t := in.topo(c)
		s, err := socketOf(t)
		if err != nil {
			return r, err
		}
		core := c
		if in.arch.Family() != arch.FamilyS390 {
			if core, err = coreOf(t); err != nil {
				return r, err
			}
		}
		coresOf[s][core] = true
		n, err := siblingsOf(t)
		if err != nil {
			return r, err
		}
		r.threads = max(r.threads, n)
	}
	r.sockets = len(coresOf)
	for _, cores := range coresOf {
		r.cores = max(r.cores, len(cores))
	}
	if tps > 0 {
		r.threads *= tps
	}
	return r, nil
}

func socketOf(t *cpuTopo) (int, error) {
	if !t.hasPackage {
		return 0, nil
	}
	if t.packageErr != nil {
		return 0, &nodeInfoError{t.packagePath, t.packageErr.Error()}
	}
	return max(t.packageID, 0), nil
}

func coreOf(t *cpuTopo) (int, error) {
	if !t.hasCore {
		return 0, nil
	}
	if t.coreErr != nil {
		return 0, &nodeInfoError{t.corePath, t.coreErr.Error()}
	}
	if t.coreID < 0 {
		return 0, &nodeInfoError{t.corePath, "negative core id"}
	}
	return t.coreID, nil
}

func siblingsOf(t *cpuTopo) (int, error) {
	if !t.hasThread {
		return 1, nil
	}
	if t.threadErr != nil {
		return 0, &nodeInfoError{t.threadPath, t.threadErr.Error()}
	}
	if len(t.thread) == 0 {
		return 0, &nodeInfoError{t.threadPath, "empty thread siblings list"}
	}
	return len(t.thread), nil
}

// LibvirtMHz returns the CPU frequency libvirt's nodeinfo reports for
// cpuinfo text of architecture a: the integer part of the last line that
// starts with "cpu MHz" (x86), "clock" (POWER), "cpu MHz dynamic" (s390x)
// followed by a colon; 0 on ARM and on architectures libvirt does not know.
// A malformed value stops the reading with an error; the value read so far
// is returned with it, as libvirt keeps it.
func LibvirtMHz(cpuinfo []byte, a arch.Arch) (int, error) {
	var prefix string
	switch a.Family() {
	case arch.FamilyX86:
		prefix = "cpu MHz"
	case arch.FamilyPPC:
		prefix = "clock"
	case arch.FamilyS390:
		prefix = "cpu MHz dynamic"
	default:
		return 0, nil
	}
	mhz := 0
	s := string(cpuinfo)
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		rest = strings.TrimLeft(rest, " \t\r\v\f")
		if rest == "" {
			return mhz, errors.New("missing or invalid CPU frequency")
		}
		if rest[0] != ':' {
			continue // another key with the same beginning
		}
		rest = strings.TrimLeft(rest[1:], " \t\r\v\f")
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		v, err := strconv.ParseUint(rest[:n], 10, 32)
		if n == 0 || err != nil || (n < len(rest) && rest[n] != '.' && !isSpace(rest[n])) {
			return mhz, fmt.Errorf("missing or invalid CPU frequency %q", clipString(strings.TrimSpace(rest)))
		}
		mhz = int(v)
	}
	return mhz, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
