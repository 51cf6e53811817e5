package profiles

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"testing/fstest"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpuset"
)

// machine describes a host; build turns it into files and libvirt XML.
type machine struct {
	name    string
	aliases []string
	title   string
	arch    arch.Arch

	// chips are the physical packages in CPU-number order.
	chips []chip
	// threadsPerCore is the hardware SMT level; onlineThreads how many of
	// each core's threads are online (1 = SMT off, as on PowerNV KVM hosts).
	threadsPerCore int
	onlineThreads  int
	// interleaved numbers CPUs as x86 firmware does (all first threads,
	// then all second threads); otherwise a core's threads are consecutive
	// (POWER).
	interleaved bool
	// coreID gives a core's sysfs core_id from its chip, its index in the
	// chip and the number of its first thread.
	coreID func(c chip, core, firstCPU int) int
	// distance gives the NUMA distance between two nodes.
	distance func(a, b int) int

	// cpuinfo renders one processor block; cpuinfoTrailer follows the
	// blocks (POWER prints the machine there).
	cpuinfo        func(cpu cpuPlace) string
	cpuinfoTrailer string

	memPerNodeKiB uint64
	dmi           map[string]string
	// deviceTree maps a property path under proc/device-tree to its
	// strings (written NUL-terminated, several NUL-separated).
	deviceTree map[string][]string
	kvmDevice  bool
	// lsmcodeA is the system firmware as `lsmcode -A` prints it (FSP
	// POWER machines).
	lsmcodeA string

	libvirt libvirtHost
}

type chip struct {
	packageID int
	node      int
	cores     int
}

// cpuPlace is where one CPU sits.
type cpuPlace struct {
	cpu, chipIndex, packageID, node, core, coreID, thread int
	siblings                                              []int // online threads of its core
	coresPerChip                                          int
	threadsPerCore                                        int
}

type libvirtHost struct {
	libvirtVersion, qemuVersion string
	cpuModel, cpuVendor         string
	cpuFeatures                 []string
	guests                      []guestArch
	domcaps                     []domcaps
}

type guestArch struct {
	arch     arch.Arch
	wordSize int
	emulator string
	domains  []string
	machines []libvirtxml.CapsGuestMachine
}

type domcaps struct {
	arch        arch.Arch
	domain      string
	machine     string
	emulator    string
	maxVCPUs    uint
	passthrough bool
	hostModel   string
	hostVendor  string
	custom      []libvirtxml.DomainCapsCPUModel
	graphics    []string
	video       []string
	diskBuses   []string
}

func (m *machine) places() []cpuPlace {
	total := 0
	for _, c := range m.chips {
		total += c.cores
	}
	var out []cpuPlace
	coreIndex := 0
	for ci, c := range m.chips {
		for core := 0; core < c.cores; core++ {
			first := m.cpuNumber(coreIndex, 0, total)
			var sib []int
			for t := 0; t < m.onlineThreads; t++ {
				sib = append(sib, m.cpuNumber(coreIndex, t, total))
			}
			for t := 0; t < m.threadsPerCore; t++ {
				out = append(out, cpuPlace{
					cpu: m.cpuNumber(coreIndex, t, total), chipIndex: ci, packageID: c.packageID,
					node: c.node, core: core, coreID: m.coreID(c, core, first), thread: t,
					siblings: sib, coresPerChip: c.cores, threadsPerCore: m.threadsPerCore,
				})
			}
			coreIndex++
		}
	}
	return out
}

func (m *machine) cpuNumber(coreIndex, thread, totalCores int) int {
	if m.interleaved {
		return thread*totalCores + coreIndex
	}
	return coreIndex*m.threadsPerCore + thread
}

func (m *machine) build() (*Profile, error) {
	files := fstest.MapFS{}
	put := func(path, content string) { files[path] = &fstest.MapFile{Data: []byte(content), Mode: 0o444} }

	places := m.places()
	byCPU := make([]cpuPlace, len(places))
	var online, offline []int
	for _, p := range places {
		byCPU[p.cpu] = p
	}
	for _, p := range byCPU {
		if p.thread < m.onlineThreads {
			online = append(online, p.cpu)
		} else {
			offline = append(offline, p.cpu)
		}
	}
	onSet := cpuset.Of(online...)
	n := len(byCPU)
	sys := "sys/devices/system/"
	put(sys+"cpu/possible", fmt.Sprintf("0-%d\n", n-1))
	put(sys+"cpu/present", fmt.Sprintf("0-%d\n", n-1))
	put(sys+"cpu/online", onSet.String()+"\n")
	put(sys+"cpu/offline", cpuset.Of(offline...).String()+"\n")
	put(sys+"cpu/kernel_max", "2047\n")

	var cpuinfo strings.Builder
	for _, p := range byCPU {
		dir := fmt.Sprintf("%scpu/cpu%d/", sys, p.cpu)
		isOnline := onSet.Contains(p.cpu)
		if p.cpu != 0 {
			put(dir+"online", map[bool]string{true: "1\n", false: "0\n"}[isOnline])
		}
		if !isOnline {
			// The kernel removes the topology of an offline CPU.
			continue
		}
		var pkg []int
		for _, q := range byCPU {
			if q.packageID == p.packageID && onSet.Contains(q.cpu) {
				pkg = append(pkg, q.cpu)
			}
		}
		put(dir+"topology/core_id", strconv.Itoa(p.coreID)+"\n")
		put(dir+"topology/physical_package_id", strconv.Itoa(p.packageID)+"\n")
		put(dir+"topology/thread_siblings_list", cpuset.Of(p.siblings...).String()+"\n")
		put(dir+"topology/thread_siblings", mask(p.siblings, n)+"\n")
		put(dir+"topology/core_siblings_list", cpuset.Of(pkg...).String()+"\n")
		put(dir+"topology/core_siblings", mask(pkg, n)+"\n")
		cpuinfo.WriteString(m.cpuinfo(p))
		cpuinfo.WriteString("\n")
	}
	cpuinfo.WriteString(m.cpuinfoTrailer)
	put("proc/cpuinfo", cpuinfo.String())

	nodes := m.nodes()
	var nodeIDs []int
	for _, id := range nodes {
		nodeIDs = append(nodeIDs, id)
	}
	nodeSet := cpuset.Of(nodeIDs...)
	put(sys+"node/online", nodeSet.String()+"\n")
	put(sys+"node/possible", nodeSet.String()+"\n")
	put(sys+"node/has_cpu", nodeSet.String()+"\n")
	put(sys+"node/has_memory", nodeSet.String()+"\n")
	for _, id := range nodeSet {
		var cpus []int
		for _, p := range byCPU {
			if p.node == id && onSet.Contains(p.cpu) {
				cpus = append(cpus, p.cpu)
			}
		}
		dir := fmt.Sprintf("%snode/node%d/", sys, id)
		// A node directory holds an entry per CPU of the node, online or
		// not (symlinks to the cpu directories on a real host; copies
		// here), which is where libvirt's nodeinfo reads the topology.
		for _, p := range byCPU {
			if p.node != id {
				continue
			}
			src := fmt.Sprintf("%scpu/cpu%d/", sys, p.cpu)
			dst := fmt.Sprintf("%scpu%d/", dir, p.cpu)
			for name, f := range files {
				if rest, ok := strings.CutPrefix(name, src); ok {
					files[dst+rest] = f
				}
			}
		}
		put(dir+"cpulist", cpuset.Of(cpus...).String()+"\n")
		put(dir+"cpumap", mask(cpus, n)+"\n")
		var dist []string
		for _, other := range nodeSet {
			dist = append(dist, strconv.Itoa(m.distance(id, other)))
		}
		put(dir+"distance", strings.Join(dist, " ")+"\n")
		put(dir+"meminfo", fmt.Sprintf("Node %d MemTotal:       %d kB\nNode %d MemFree:        %d kB\nNode %d MemUsed:        %d kB\n",
			id, m.memPerNodeKiB, id, m.memPerNodeKiB*15/16, id, m.memPerNodeKiB/16))
	}
	total := m.memPerNodeKiB * uint64(len(nodeSet))
	put("proc/meminfo", fmt.Sprintf("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\nBuffers:          204800 kB\nCached:          4194304 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nHugepagesize:   %d kB\n",
		total, total*15/16, total*29/32, m.hugePageKiB()))

	// The statistics of an idle machine, read through this root by the
	// agent of a host presenting the profile: its online CPUs (one cpuN
	// line each), no load.
	var stat strings.Builder
	const idle = 1000000
	fmt.Fprintf(&stat, "cpu  0 0 0 %d 0 0 0 0 0 0\n", idle*len(online))
	for _, c := range online {
		fmt.Fprintf(&stat, "cpu%d 0 0 0 %d 0 0 0 0 0 0\n", c, idle)
	}
	stat.WriteString("intr 0\nctxt 0\nbtime 1700000000\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n")
	put("proc/stat", stat.String())
	put("proc/loadavg", fmt.Sprintf("0.00 0.00 0.00 1/%d 1\n", len(online)*4))

	for k, v := range m.dmi {
		put("sys/class/dmi/id/"+k, v+"\n")
	}
	for k, vs := range m.deviceTree {
		put("proc/device-tree/"+k, strings.Join(vs, "\x00")+"\x00")
	}
	if m.kvmDevice {
		put("dev/kvm", "")
	}

	caps, err := m.capabilities(byCPU, onSet, nodeSet)
	if err != nil {
		return nil, err
	}
	dcs := map[arch.Arch][]byte{}
	for _, d := range m.libvirt.domcaps {
		doc, err := d.xml()
		if err != nil {
			return nil, err
		}
		dcs[d.arch] = doc
	}
	return &Profile{
		Name: m.name, Aliases: m.aliases, Title: m.title, Arch: m.arch,
		Root: files, Capabilities: caps, DomainCapabilities: dcs,
		LibvirtVersion: m.libvirt.libvirtVersion, QEMUVersion: m.libvirt.qemuVersion,
		LsmcodeA: m.lsmcodeA,
	}, nil
}

// hugePageKiB is the architecture's default huge page size (archspec).
func (m *machine) hugePageKiB() int {
	spec, err := archspec.For(m.arch)
	if err != nil {
		return 0
	}
	return spec.Pages.HugePageKiB
}

// nodes returns the node ids in chip order, without duplicates.
func (m *machine) nodes() []int {
	var out []int
	seen := map[int]bool{}
	for _, c := range m.chips {
		if !seen[c.node] {
			seen[c.node] = true
			out = append(out, c.node)
		}
	}
	return out
}

// mask prints a CPU set as the kernel's comma-separated 32-bit hex words.
func mask(cpus []int, n int) string {
	words := (n + 31) / 32
	w := make([]uint32, words)
	for _, c := range cpus {
		w[c/32] |= 1 << (c % 32)
	}
	parts := make([]string, words)
	for i := range w {
		parts[words-1-i] = fmt.Sprintf("%08x", w[i])
	}
	return strings.Join(parts, ",")
}

func (m *machine) capabilities(byCPU []cpuPlace, onSet cpuset.Set, nodeSet cpuset.Set) ([]byte, error) {
	lv := m.libvirt
	c := libvirtxml.Caps{
		Host: libvirtxml.CapsHost{
			CPU: &libvirtxml.CapsHostCPU{Arch: string(m.arch), Model: lv.cpuModel, Vendor: lv.cpuVendor},
		},
	}
	// libvirt's host topology: sockets per node, cores per socket, threads.
	coresPerChip := m.chips[0].cores
	c.Host.CPU.Topology = &libvirtxml.CapsHostCPUTopology{Sockets: 1, Dies: 1, Cores: coresPerChip, Threads: m.threadsPerCore}
	for _, f := range lv.cpuFeatures {
		c.Host.CPU.FeatureFlags = append(c.Host.CPU.FeatureFlags, libvirtxml.CapsHostCPUFeatureFlag{Name: f})
	}
	cells := &libvirtxml.CapsHostNUMACells{Num: uint(len(nodeSet))}
	for _, id := range nodeSet {
		cell := libvirtxml.CapsHostNUMACell{
			ID:     id,
			Memory: &libvirtxml.CapsHostNUMAMemory{Size: m.memPerNodeKiB, Unit: "KiB"},
			CPUS:   &libvirtxml.CapsHostNUMACPUs{},
		}
		dist := &libvirtxml.CapsHostNUMADistances{}
		for _, other := range nodeSet {
			dist.Siblings = append(dist.Siblings, libvirtxml.CapsHostNUMASibling{ID: other, Value: m.distance(id, other)})
		}
		cell.Distances = dist
		for _, p := range byCPU {
			if p.node != id {
				continue
			}
			cpu := libvirtxml.CapsHostNUMACPU{ID: p.cpu}
			if onSet.Contains(p.cpu) {
				sock, core := p.packageID, p.coreID
				die := 0
				cpu.SocketID, cpu.DieID, cpu.CoreID = &sock, &die, &core
				cpu.Siblings = cpuset.Of(p.siblings...).String()
			}
			cell.CPUS.CPUs = append(cell.CPUS.CPUs, cpu)
		}
		cell.CPUS.Num = uint(len(cell.CPUS.CPUs))
		cells.Cells = append(cells.Cells, cell)
	}
	c.Host.NUMA = &libvirtxml.CapsHostNUMATopology{Cells: cells}
	for _, g := range lv.guests {
		ga := libvirtxml.CapsGuestArch{
			Name: string(g.arch), WordSize: strconv.Itoa(g.wordSize), Emulator: g.emulator, Machines: g.machines,
		}
		for _, d := range g.domains {
			ga.Domains = append(ga.Domains, libvirtxml.CapsGuestDomain{Type: d})
		}
		c.Guests = append(c.Guests, libvirtxml.CapsGuest{OSType: "hvm", Arch: ga})
	}
	out, err := xml.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("capabilities: %w", err)
	}
	return append(out, '\n'), nil
}

func (d domcaps) xml() ([]byte, error) {
	yesNo := map[bool]string{true: "yes", false: "no"}
	doc := libvirtxml.DomainCaps{
		Path: d.emulator, Domain: d.domain, Machine: d.machine, Arch: string(d.arch),
		VCPU: &libvirtxml.DomainCapsVCPU{Max: d.maxVCPUs},
		CPU: &libvirtxml.DomainCapsCPU{Modes: []libvirtxml.DomainCapsCPUMode{
			{Name: "host-passthrough", Supported: yesNo[d.passthrough]},
			{Name: "maximum", Supported: "no"},
		}},
		Devices: &libvirtxml.DomainCapsDevices{
			Disk: &libvirtxml.DomainCapsDevice{Supported: "yes", Enums: []libvirtxml.DomainCapsEnum{
				{Name: "diskDevice", Values: []string{"disk", "cdrom", "lun"}},
				{Name: "bus", Values: d.diskBuses},
			}},
			Graphics: &libvirtxml.DomainCapsDevice{Supported: "yes", Enums: []libvirtxml.DomainCapsEnum{{Name: "type", Values: d.graphics}}},
			Video:    &libvirtxml.DomainCapsDevice{Supported: "yes", Enums: []libvirtxml.DomainCapsEnum{{Name: "modelType", Values: d.video}}},
		},
	}
	hm := libvirtxml.DomainCapsCPUMode{Name: "host-model", Supported: yesNo[d.hostModel != ""]}
	if d.hostModel != "" {
		hm.Models = []libvirtxml.DomainCapsCPUModel{{Name: d.hostModel, Fallback: "forbid"}}
		hm.Vendor = d.hostVendor
	}
	doc.CPU.Modes = append(doc.CPU.Modes, hm,
		libvirtxml.DomainCapsCPUMode{Name: "custom", Supported: yesNo[len(d.custom) > 0], Models: d.custom})
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("domcapabilities %s: %w", d.arch, err)
	}
	return append(out, '\n'), nil
}
