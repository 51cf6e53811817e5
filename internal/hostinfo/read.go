package hostinfo

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"polyvirt/internal/arch"
	"polyvirt/internal/cpuset"
)

// KVMDevicePath is the KVM device under the root.
const KVMDevicePath = "dev/kvm"

// Read reads a host through the filesystem root fsys, laid out like / (or
// like an lscpu dump): proc/cpuinfo, proc/device-tree, proc/sysinfo,
// proc/meminfo, sys/devices/system/cpu, sys/devices/system/node,
// sys/class/dmi/id and dev/kvm.
//
// Every file is read with a size limit (MaxCPUInfoBytes, MaxProcFileBytes,
// MaxAttrBytes) and only when it is a regular file, so that a hostile root
// can neither exhaust memory nor block the read. A missing, unreadable or
// malformed piece leaves its values empty and is listed in Host.Problems
// with its file and the reason. Read fails only when nothing at all could be
// read: no cpuinfo, no sysfs CPU tree, no identity source and no meminfo.
//
// The architecture is, in order: Options.Arch; proc/sys/kernel/arch (the
// kernel's uname -m, Linux 6.1+); the cpuinfo format; a POWER device tree;
// an s390x sysinfo. POWER endianness, which neither cpuinfo nor the device
// tree states, comes from the ELF header of the root's bin/sh when it is a
// 64-bit POWER executable; otherwise a POWER7 or older processor means ppc64
// (little-endian Linux needs POWER8) and anything else ppc64le, the
// endianness of every current PowerNV and pSeries distribution.
//
// Threads per subcore, for NodeInfo, is Options.ThreadsPerSubcore when set,
// else derived from the data (DeriveThreadsPerSubcore).
func Read(fsys fs.FS, opts Options) (*Host, error) {
	if fsys == nil {
		return nil, errors.New("hostinfo: no root filesystem")
	}
	var p problems
	h := &Host{}

	// /proc/cpuinfo
	cpuData, err := readFile(fsys, CPUInfoPath, MaxCPUInfoBytes)
	cpuArch := arch.Unknown
	cpuOK := false
	if err != nil {
		p.addErr("cpu", CPUInfoPath, err, false)
		cpuData = nil
	} else if cpu, a, err := ParseCPUInfo(cpuData); err != nil {
		p.add("cpu", CPUInfoPath, err.Error())
	} else {
		h.CPU, cpuArch, cpuOK = cpu, a, true
	}

	// Identity sources.
	var si *Sysinfo
	if s, err := ReadSysinfo(fsys); err == nil {
		si = &s
	} else if !errors.Is(err, fs.ErrNotExist) {
		p.add("identity", SysinfoPath, strings.TrimPrefix(err.Error(), SysinfoPath+": "))
	}
	dt, dtProbs := ReadDeviceTree(fsys)
	p.list = append(p.list, dtProbs...)
	dmiID, dmiFW, dmiFound, dmiProbs := ReadDMI(fsys)
	p.list = append(p.list, dmiProbs...)

	h.Arch, h.ArchSource = detectArch(fsys, &p, archInputs{
		option: opts.Arch, cpuArch: cpuArch, cpu: h.CPU, dt: dt, sysinfo: si != nil,
	})

	h.Identity = buildIdentity(identitySources{
		dmi: dmiID, dmiFound: dmiFound, dt: dt, sysinfo: si, cpu: h.CPU,
		cpuPower: cpuOK && cpuArch.Family() == arch.FamilyPPC,
	})
	switch {
	case dmiFound:
		h.Firmware = dmiFW
	case dt.Found:
		h.Firmware = dt.Firmware
	}

	// sys/devices/system/cpu and node.
	sf := newSysfs(fsys, &p)
	lists := sf.lists()
	nodeDirs := readNodeDirs(fsys, &p)
	h.NUMA = readNUMA(fsys, &p, nodeDirs)
	if lists.found {
		readTopology(h, sf, lists, si)
		h.NodeInfo = readNodeInfo(fsys, &p, h, sf, lists, nodeDirs, dt, opts)
		// libvirt reads the clock from cpuinfo; a malformed clock line
		// leaves the MHz read so far (libvirt only warns).
		if h.NodeInfo.CPUs > 0 && cpuData != nil {
			mhz, err := LibvirtMHz(cpuData, h.Arch)
			if err != nil {
				p.add("nodeinfo", CPUInfoPath, err.Error())
			}
			h.NodeInfo.MHz = mhz
		}
	}

	// Memory and KVM.
	memOK := false
	if data, err := readFile(fsys, MeminfoPath, MaxProcFileBytes); err != nil {
		p.addErr("memory", MeminfoPath, err, false)
	} else if kib, ok := ParseMeminfo(data)["MemTotal"]; ok {
		h.MemTotalKiB, memOK = kib, true
	} else {
		p.add("memory", MeminfoPath, "no MemTotal line")
	}
	h.KVMDevice = exists(fsys, KVMDevicePath)

	h.Problems = p.list
	if !cpuOK && !lists.found && h.Identity.Source == "none" && !memOK && !dt.Found {
		msgs := make([]string, 0, len(p.list))
		for _, pr := range p.list {
			msgs = append(msgs, pr.Path+": "+pr.Reason)
		}
		return nil, fmt.Errorf("hostinfo: nothing readable under the root (%s)", strings.Join(msgs, "; "))
	}
	return h, nil
}

// readTopology fills Topology and the per-type figures of CPU.Types.
func readTopology(h *Host, sf *sysfs, l cpuLists, si *Sysinfo) {
	var sw *topoSW
	if si != nil && len(si.TopologySW) == 6 {
		t := si.TopologySW
		sw = &topoSW{drawers: t[2], booksPerDrawer: t[3], socketsPerBook: t[4], coresPerSocket: t[5]}
	}
	// The types' CPUs: those cpuinfo lists, among the possible ones; the
	// possible CPUs cpuinfo does not list go to the first type, as lscpu
	// gives them its default type.
	if len(h.CPU.Types) == 0 {
		h.CPU.Types = []CPUType{{CPUs: cpuset.Set{}}}
	}
	listed := map[int]bool{}
	for i := range h.CPU.Types {
		t := &h.CPU.Types[i]
		var in []int
		for _, c := range t.CPUs {
			if l.possible.Contains(c) && !listed[c] {
				in = append(in, c)
				listed[c] = true
			}
		}
		t.CPUs = cpuset.Set(in)
	}
	var rest []int
	for _, c := range l.possible {
		if !listed[c] {
			rest = append(rest, c)
		}
	}
	h.CPU.Types[0].CPUs = cpuset.Of(append(h.CPU.Types[0].CPUs, rest...)...)
	// A type none of whose processors is a possible CPU describes nothing
	// on this host (and a hostile cpuinfo could list thousands of them).
	kept := h.CPU.Types[:1]
	for _, t := range h.CPU.Types[1:] {
		if len(t.CPUs) > 0 {
			kept = append(kept, t)
		}
	}
	h.CPU.Types = kept
	// The kernel removes the topology directory of an offline CPU: lscpu
	// looks for it on every possible CPU and finds nothing on the offline
	// ones, so only the online CPUs are looked at (on a POWER KVM host with
	// SMT off that saves 7 of 8 lookups).
	online := func(set cpuset.Set) cpuset.Set {
		var out []int
		for _, c := range set {
			if l.online.Contains(c) {
				out = append(out, c)
			}
		}
		return cpuset.Set(out)
	}
	for i := range h.CPU.Types {
		t := &h.CPU.Types[i]
		r := lscpuTopology(online(t.CPUs), sf.topology, h.CPU.MaxThreadID, sw)
		t.ThreadsPerCore, t.CoresPerSocket, t.Sockets = r.threadsPerCore, r.coresPerSocket, r.sockets
		t.SocketsPerBook, t.Books, t.BooksPerDrawer, t.Drawers = r.socketsPerBook, r.books, r.booksPerDrawer, r.draw
	}

	all := lscpuTopology(online(l.possible), sf.topology, h.CPU.MaxThreadID, sw)
	var offline []int
	for _, c := range l.present {
		if !l.online.Contains(c) {
			offline = append(offline, c)
		}
	}
	h.Topology = Topology{
		TotalCPUs:      len(l.present),
		Online:         l.online,
		Offline:        cpuset.Set(offline),
		ThreadsPerCore: all.threadsPerCore,
		CoresPerSocket: all.coresPerSocket,
		Sockets:        all.sockets,
		SocketsPerBook: all.socketsPerBook,
		Books:          all.books,
		BooksPerDrawer: all.booksPerDrawer,
		Drawers:        all.draw,
	}
	if h.Topology.Offline == nil {
		h.Topology.Offline = cpuset.Set{}
	}
}

// readNodeInfo computes libvirt's nodeinfo (MHz aside).
func readNodeInfo(fsys fs.FS, p *problems, h *Host, sf *sysfs, l cpuLists, nodeDirs []nodeDirInfo, dt DeviceTree, opts Options) NodeInfo {
	tps := opts.ThreadsPerSubcore
	if tps == 0 {
		subcores := 1
		if n, ok := readIntAttr(fsys, p, "nodeinfo", SysCPUPath+"/subcores_per_core"); ok {
			subcores = n
		}
		tps = DeriveThreadsPerSubcore(h.Arch, h.CPU, dt.ThreadsPerCore, subcores)
	}
	if tps < 0 {
		tps = 0
	}
	ni, err := computeNodeInfo(nodeInfoInput{
		arch: h.Arch, present: l.present, online: l.online,
		nodeDirs: nodeDirs, cpuDirs: l.dirs, tps: tps, topo: sf.topology,
	})
	if err != nil {
		var ne *nodeInfoError
		if errors.As(err, &ne) {
			p.add("nodeinfo", ne.path, ne.reason)
		} else {
			p.add("nodeinfo", SysCPUPath, err.Error())
		}
		return NodeInfo{}
	}
	return ni
}
