package hostinfo

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"testing/fstest"

	"polyvirt/internal/cpuset"
)

// Small hosts written for the tests, from the documented facts of each
// platform (not copied from the corpus).

// fxCPU is one logical CPU of a fixture.
type fxCPU struct {
	id, pkg, core, node int
	online              bool
	book, drawer        int // s390x; -1 for none
}

// fxHost describes a fixture host; build turns it into a root.
type fxHost struct {
	cpuinfo   string
	cpus      []fxCPU
	possible  string // "" = the CPUs' ids
	noNodeDir bool
	nodeMemKB map[int]uint64
	distances map[int]string
	memKB     uint64
	files     map[string]string // extra files (dmi, device tree, sysinfo)
	binary    map[string][]byte // extra binary files
	kvm       bool
}

func (f fxHost) build() fstest.MapFS {
	m := fstest.MapFS{}
	put := func(name, data string) { m[name] = &fstest.MapFile{Data: []byte(data), Mode: 0o444} }
	dir := func(name string) { m[name] = &fstest.MapFile{Mode: fs.ModeDir | 0o555} }
	if f.cpuinfo != "" {
		put(CPUInfoPath, f.cpuinfo)
	}
	if f.memKB > 0 {
		put(MeminfoPath, fmt.Sprintf("MemTotal:       %d kB\nMemFree:        %d kB\nHugePages_Total:       0\n", f.memKB, f.memKB/2))
	}
	var ids, online, offline []int
	nodes := map[int][]int{}
	for _, c := range f.cpus {
		ids = append(ids, c.id)
		nodes[c.node] = append(nodes[c.node], c.id)
		if c.online {
			online = append(online, c.id)
		} else {
			offline = append(offline, c.id)
		}
	}
	base := SysCPUPath
	possible := f.possible
	if possible == "" {
		possible = cpuset.Of(ids...).String()
	}
	put(base+"/possible", possible+"\n")
	put(base+"/present", cpuset.Of(ids...).String()+"\n")
	put(base+"/online", cpuset.Of(online...).String()+"\n")
	put(base+"/offline", cpuset.Of(offline...).String()+"\n")
	put(base+"/kernel_max", "2047\n")
	siblings := func(same func(a, b fxCPU) bool, c fxCPU) string {
		var s []int
		for _, o := range f.cpus {
			if o.online && same(c, o) {
				s = append(s, o.id)
			}
		}
		return cpuset.Of(s...).String() + "\n"
	}
	for _, c := range f.cpus {
		d := fmt.Sprintf("%s/cpu%d", base, c.id)
		dir(d)
		if c.id != 0 {
			put(d+"/online", map[bool]string{true: "1\n", false: "0\n"}[c.online])
		}
		if !c.online {
			continue // the kernel removes the topology of an offline CPU
		}
		t := d + "/topology"
		put(t+"/physical_package_id", fmt.Sprintf("%d\n", c.pkg))
		put(t+"/core_id", fmt.Sprintf("%d\n", c.core))
		put(t+"/thread_siblings_list", siblings(func(a, b fxCPU) bool { return a.pkg == b.pkg && a.core == b.core }, c))
		put(t+"/core_siblings_list", siblings(func(a, b fxCPU) bool { return a.pkg == b.pkg }, c))
		if c.book >= 0 && f.hasBooks() {
			put(t+"/book_siblings_list", siblings(func(a, b fxCPU) bool { return a.book == b.book }, c))
			put(t+"/drawer_siblings_list", siblings(func(a, b fxCPU) bool { return a.drawer == b.drawer }, c))
		}
	}
	if !f.noNodeDir {
		var nids []int
		for n := range nodes {
			nids = append(nids, n)
		}
		sort.Ints(nids)
		put(SysNodePath+"/possible", cpuset.Of(nids...).String()+"\n")
		put(SysNodePath+"/online", cpuset.Of(nids...).String()+"\n")
		for _, n := range nids {
			d := fmt.Sprintf("%s/node%d", SysNodePath, n)
			put(d+"/cpulist", cpuset.Of(nodes[n]...).String()+"\n")
			for _, c := range nodes[n] {
				dir(fmt.Sprintf("%s/cpu%d", d, c))
			}
			if kb, ok := f.nodeMemKB[n]; ok {
				put(d+"/meminfo", fmt.Sprintf("Node %d MemTotal:       %d kB\nNode %d MemFree:        %d kB\n", n, kb, n, kb/2))
			}
			if dist, ok := f.distances[n]; ok {
				put(d+"/distance", dist+"\n")
			}
		}
	}
	for name, data := range f.files {
		put(name, data)
	}
	for name, data := range f.binary {
		m[name] = &fstest.MapFile{Data: data, Mode: 0o444}
	}
	if f.kvm {
		m[KVMDevicePath] = &fstest.MapFile{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}
	}
	return m
}

func (f fxHost) hasBooks() bool {
	for _, c := range f.cpus {
		if c.book > 0 || c.drawer > 0 {
			return true
		}
	}
	return false
}

// dtProp is a device-tree string property: each string NUL-terminated.
func dtProp(s ...string) string {
	return strings.Join(s, "\x00") + "\x00"
}

// dtCells is a device-tree property of n big-endian 32-bit cells.
func dtCells(vals ...uint32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.BigEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// powerCPUInfo prints a POWER cpuinfo for the given online CPUs.
func powerCPUInfo(ids []int, cpu, clock, revision string, trailer ...string) string {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "processor\t: %d\ncpu\t\t: %s\nclock\t\t: %s\nrevision\t: %s\n\n", id, cpu, clock, revision)
	}
	for i := 0; i+1 < len(trailer); i += 2 {
		fmt.Fprintf(&b, "%s\t\t: %s\n", trailer[i], trailer[i+1])
	}
	return b.String()
}

// x86CPUInfo prints an x86 cpuinfo for the given online CPUs.
func x86CPUInfo(cpus []fxCPU, vendor, family, model, name, stepping, mhz, flags string, cores int) string {
	var b strings.Builder
	for _, c := range cpus {
		if !c.online {
			continue
		}
		fmt.Fprintf(&b, "processor\t: %d\nvendor_id\t: %s\ncpu family\t: %s\nmodel\t\t: %s\nmodel name\t: %s\n"+
			"stepping\t: %s\ncpu MHz\t\t: %s\ncache size\t: 22528 KB\nphysical id\t: %d\ncore id\t\t: %d\n"+
			"cpu cores\t: %d\nflags\t\t: %s\nbogomips\t: 4200.00\naddress sizes\t: 46 bits physical, 48 bits virtual\npower management:\n\n",
			c.id, vendor, family, model, name, stepping, mhz, c.pkg, c.core, cores, flags)
	}
	return b.String()
}

// grid makes sockets × cores × threads CPUs numbered socket-major, thread
// t of core c of socket s being s*cores*threads + c*threads + t; online
// decides which are online; the node is the socket.
func grid(sockets, cores, threads int, coreID func(s, c int) int, online func(id, t int) bool) []fxCPU {
	var out []fxCPU
	for s := 0; s < sockets; s++ {
		for c := 0; c < cores; c++ {
			for t := 0; t < threads; t++ {
				id := s*cores*threads + c*threads + t
				out = append(out, fxCPU{id: id, pkg: s, core: coreID(s, c), node: s, online: online(id, t), book: -1, drawer: -1})
			}
		}
	}
	return out
}

func onlineIDs(cpus []fxCPU) []int {
	var out []int
	for _, c := range cpus {
		if c.online {
			out = append(out, c.id)
		}
	}
	return out
}

// fixturePowerNVP8 is an IBM Power System S822L (8247-22L, POWER8E) KVM
// host with SMT off: 2 sockets × 3 cores × 8 threads, only thread 0 of each
// core online (0,8,16,…,40), as for KVM.
func fixturePowerNVP8() fstest.MapFS {
	cpus := grid(2, 3, 8, func(s, c int) int { return 32 + 8*(s*3+c) }, func(id, t int) bool { return t == 0 })
	return fxHost{
		cpuinfo: powerCPUInfo(onlineIDs(cpus), "POWER8E (raw), altivec supported", "3690.000000MHz", "2.1 (pvr 004b 0201)",
			"timebase", "512000000", "platform", "PowerNV", "model", "8247-22L", "machine", "PowerNV 8247-22L",
			"firmware", "OPAL v3", "MMU", "Hash"),
		cpus:      cpus,
		memKB:     268435456,
		nodeMemKB: map[int]uint64{0: 134217728, 1: 134217728},
		distances: map[int]string{0: "10 20", 1: "20 10"},
		files: map[string]string{
			DeviceTreePath + "/vendor":                                 dtProp("IBM"),
			DeviceTreePath + "/model":                                  dtProp("8247-22L"),
			DeviceTreePath + "/model-name":                             dtProp("IBM Power System S822L"),
			DeviceTreePath + "/system-id":                              dtProp("2148A7A"),
			DeviceTreePath + "/compatible":                             dtProp("ibm,powernv", "ibm,firestone"),
			DeviceTreePath + "/ibm,opal/firmware/version":              dtProp("skiboot-5.4.3"),
			DeviceTreePath + "/ibm,firmware-versions/name":             dtProp("ibm,firmware-versions"),
			DeviceTreePath + "/ibm,firmware-versions/skiboot":          dtProp("5.4.3"),
			DeviceTreePath + "/ibm,firmware-versions/hostboot":         dtProp("hostboot-1.17-2"),
			DeviceTreePath + "/ibm,firmware-versions/open-power":       dtProp("open-power-firestone-v1.17-106"),
			DeviceTreePath + "/ibm,firmware-versions/linux":            dtProp("4.4.30-openpower1"),
			DeviceTreePath + "/cpus/PowerPC,POWER8@20/device_type":     dtProp("cpu"),
			DeviceTreePath + "/cpus/PowerPC,POWER8@20/ibm,chip-id":     "\x00\x00\x00\x00",
			DeviceTreePath + "/ibm,firmware-versions/phandle":          "\x00\x00\x00\x2a",
			DeviceTreePath + "/cpus/PowerPC,POWER8@20/ibm,pa-features": "\x18\x00",
		},
		binary: map[string][]byte{
			DeviceTreePath + "/cpus/PowerPC,POWER8@20/ibm,ppc-interrupt-server#s": dtCells(0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27),
		},
		kvm: true,
	}.build()
}

// fixturePowerNVP9 is an IBM Power System AC922 (8335-GTH, POWER9) KVM host
// with SMT4 on: 2 sockets × 2 cores × 4 threads, all online.
func fixturePowerNVP9() fstest.MapFS {
	cpus := grid(2, 2, 4, func(s, c int) int { return 4 * (s*2 + c) }, func(id, t int) bool { return true })
	return fxHost{
		cpuinfo: powerCPUInfo(onlineIDs(cpus), "POWER9, altivec supported", "3800.000000MHz", "2.2 (pvr 004e 1202)",
			"timebase", "512000000", "platform", "PowerNV", "model", "8335-GTH", "machine", "PowerNV 8335-GTH",
			"firmware", "OPAL", "MMU", "Radix"),
		cpus:      cpus,
		memKB:     535822336,
		nodeMemKB: map[int]uint64{0: 267911168, 1: 267911168},
		distances: map[int]string{0: "10 40", 1: "40 10"},
		files: map[string]string{
			DeviceTreePath + "/vendor":                        dtProp("IBM"),
			DeviceTreePath + "/model":                         dtProp("8335-GTH"),
			DeviceTreePath + "/model-name":                    dtProp("IBM Power System AC922"),
			DeviceTreePath + "/system-id":                     dtProp("7813A8A"),
			DeviceTreePath + "/compatible":                    dtProp("ibm,powernv", "ibm,witherspoon"),
			DeviceTreePath + "/ibm,opal/firmware/version":     dtProp("skiboot-v6.5.3"),
			DeviceTreePath + "/ibm,firmware-versions/skiboot": dtProp("v6.5.3"),
			DeviceTreePath + "/ibm,firmware-versions/version": dtProp("witherspoon-OP9-v2.4-4.41"),
		},
		binary: map[string][]byte{
			DeviceTreePath + "/cpus/PowerPC,POWER9@0/ibm,ppc-interrupt-server#s": dtCells(0, 1, 2, 3),
			// A little-endian 64-bit POWER shell: the ELF header says ppc64le.
			"bin/sh": elfHeader(1, 21),
		},
		kvm: true,
	}.build()
}

// elfHeader is the first 20 bytes of a 64-bit ELF executable with the
// given data encoding (1 little, 2 big endian) and machine.
func elfHeader(data byte, machine uint16) []byte {
	h := []byte{0x7f, 'E', 'L', 'F', 2, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0}
	if data == 1 {
		binary.LittleEndian.PutUint16(h[18:], machine)
		h[16] = 2
	} else {
		binary.BigEndian.PutUint16(h[18:], machine)
		h[16], h[17] = 0, 2
	}
	return append(h, make([]byte, 44)...)
}

// fixturePseriesGuest is a KVM guest on qemu's pseries machine: -cpu
// POWER9 -smp 4,cores=2,threads=2, as seen from inside.
func fixturePseriesGuest() fstest.MapFS {
	cpus := grid(1, 2, 2, func(s, c int) int { return 2 * c }, func(id, t int) bool { return true })
	return fxHost{
		cpuinfo: powerCPUInfo(onlineIDs(cpus), "POWER9 (architected), altivec supported", "2750.000000MHz", "2.2 (pvr 004e 1202)",
			"timebase", "512000000", "platform", "pSeries", "model", "IBM pSeries (emulated by qemu)",
			"machine", "CHRP IBM pSeries (emulated by qemu)", "MMU", "Radix"),
		cpus:      cpus,
		memKB:     4062720,
		nodeMemKB: map[int]uint64{0: 4194304},
		files: map[string]string{
			DeviceTreePath + "/model":      dtProp("IBM pSeries (emulated by qemu)"),
			DeviceTreePath + "/compatible": dtProp("qemu,pseries"),
			DeviceTreePath + "/vm,uuid":    dtProp("6f3e2c84-3b2a-4d6e-9a1f-2b7c5d8e9f01"),
			DeviceTreePath + "/name":       dtProp(""),
		},
		binary: map[string][]byte{
			DeviceTreePath + "/cpus/PowerPC,POWER9@0/ibm,ppc-interrupt-server#s": dtCells(0, 1),
		},
	}.build()
}

// fixtureX86DMI is a 2-socket Intel server with DMI: 2 × 2 cores × 2
// threads, 16 possible CPUs of which 8 are present.
func fixtureX86DMI() fstest.MapFS {
	cpus := grid(2, 2, 2, func(s, c int) int { return c }, func(id, t int) bool { return true })
	// Linux numbers the second thread of each core after all first
	// threads: renumber thread 1 of core c of socket s to 4+2s+c.
	for i := range cpus {
		s, c, t := cpus[i].pkg, cpus[i].core, i%2
		cpus[i].id = t*4 + s*2 + c
	}
	flags := "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc vmx avx2 avx512f"
	return fxHost{
		cpuinfo:   x86CPUInfo(sortedCPUs(cpus), "GenuineIntel", "6", "85", "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "4", "2100.000", flags, 2),
		cpus:      cpus,
		possible:  "0-15",
		memKB:     394937344,
		nodeMemKB: map[int]uint64{0: 197468672, 1: 197468672},
		distances: map[int]string{0: "10 21", 1: "21 10"},
		files: map[string]string{
			DMIPath + "/sys_vendor":      "Dell Inc.\n",
			DMIPath + "/product_name":    "PowerEdge R740\n",
			DMIPath + "/product_version": "Not Specified\n",
			DMIPath + "/product_serial":  "7XYZ123\n",
			DMIPath + "/product_uuid":    "4c4c4544-0058-5910-8031-b7c04f313233\n",
			DMIPath + "/product_family":  "PowerEdge\n",
			DMIPath + "/bios_vendor":     "Dell Inc.\n",
			DMIPath + "/bios_version":    "2.12.2\n",
			DMIPath + "/bios_date":       "07/09/2021\n",
		},
		kvm: true,
	}.build()
}

func sortedCPUs(c []fxCPU) []fxCPU {
	out := append([]fxCPU(nil), c...)
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// fixtureX86NoDMI is an x86_64 virtual machine with neither DMI nor a
// device tree nor NUMA directories: 4 vCPUs, one socket.
func fixtureX86NoDMI() fstest.MapFS {
	cpus := grid(1, 4, 1, func(s, c int) int { return c }, func(id, t int) bool { return true })
	return fxHost{
		cpuinfo:   x86CPUInfo(cpus, "AuthenticAMD", "25", "1", "AMD EPYC 7B13", "0", "2450.000", "fpu vme de pse tsc msr pae mce cx8 apic sep lm svm", 4),
		cpus:      cpus,
		noNodeDir: true,
		memKB:     16393868,
	}.build()
}

// fixtureAArch64 is an Ampere Altra (Neoverse-N1) server with DMI: 4 cores,
// one socket, one node.
func fixtureAArch64() fstest.MapFS {
	cpus := grid(1, 4, 1, func(s, c int) int { return c }, func(id, t int) bool { return true })
	var b strings.Builder
	for _, c := range cpus {
		fmt.Fprintf(&b, "processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\n"+
			"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n", c.id)
	}
	return fxHost{
		cpuinfo:   b.String(),
		cpus:      cpus,
		memKB:     131072000,
		nodeMemKB: map[int]uint64{0: 131072000},
		files: map[string]string{
			DMIPath + "/sys_vendor":     "WIWYNN\n",
			DMIPath + "/product_name":   "Mt.Jade Server System B81.030Z1.0007\n",
			DMIPath + "/product_serial": "B8103000012\n",
			DMIPath + "/product_uuid":   "b6f1c4a2-9d3e-11eb-8000-b4a9fc3d1e20\n",
			DMIPath + "/product_family": "Mt.Jade\n",
			DMIPath + "/bios_vendor":    "Ampere(R)\n",
			DMIPath + "/bios_version":   "1.07.20210713\n",
		},
		kvm: true,
	}.build()
}

// fixtureS390 is an s390x LPAR of an IBM z15 (8561): 6 CPUs in 2 sockets
// of one book of one drawer, CPU 5 deconfigured (offline).
func fixtureS390() fstest.MapFS {
	var cpus []fxCPU
	for i := 0; i < 6; i++ {
		cpus = append(cpus, fxCPU{id: i, pkg: i / 3, core: i, node: 0, online: i != 5, book: 1, drawer: 1})
	}
	var b strings.Builder
	b.WriteString("vendor_id       : IBM/S390\n# processors    : 5\nbogomips per cpu: 24038.00\nmax thread id   : 0\n" +
		"features\t: esan3 zarch stfle msa ldisp eimm dfp edat etf3eh highgprs te vx vxd vxe gs vxe2 vxp sort dflt sie\n" +
		"facilities      : 0 1 2 3 4 6 7 8 9 10\n" +
		"cache0          : level=1 type=Data scope=Private size=128K line_size=256 associativity=8\n")
	for _, c := range cpus {
		if c.online {
			fmt.Fprintf(&b, "processor %d: version = 00,  identification = 1A2B38,  machine = 8561\n", c.id)
		}
	}
	for _, c := range cpus {
		if c.online {
			fmt.Fprintf(&b, "\ncpu number      : %d\ncpu MHz dynamic : 5200\ncpu MHz static  : 5200\n", c.id)
		}
	}
	return fxHost{
		cpuinfo: b.String(),
		cpus:    cpus,
		memKB:   32505856,
		files: map[string]string{
			SysinfoPath: "Manufacturer:         IBM\nType:                 8561\nModel:                716              T01\n" +
				"Sequence Code:        00000000000A1B2C\nPlant:                02\n\n" +
				"CPU Topology HW:      0 0 4 5 4 12\nCPU Topology SW:      0 0 1 1 2 3\n" +
				"LPAR Number:          21\nLPAR Name:            LP21\n",
		},
		noNodeDir: true,
	}.build()
}
