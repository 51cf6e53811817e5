// Package hostinfo reads a host's hardware inventory through a filesystem
// root: /proc/cpuinfo (one parser per architecture, chosen from the data),
// /sys/devices/system/cpu and node (topology, SMT, NUMA), /proc/meminfo,
// /sys/class/dmi/id (x86_64, aarch64), /proc/device-tree (POWER) and
// /proc/sysinfo (s390x). The root is an fs.FS: os.DirFS("/") on a live host,
// an unpacked snapshot in tests, a built-in profile in fake mode.
//
// Nothing here asks libvirt and nothing decides policy: the values are what
// the files say, read the way lscpu and libvirt read them.
package hostinfo

import (
	"fmt"

	"polyvirt/internal/arch"
	"polyvirt/internal/cpuset"
)

// Host is everything read from one root.
type Host struct {
	// Arch is the real architecture, recognised from the data (cpuinfo
	// format, device tree, sysinfo) or given by Options.Arch.
	Arch arch.Arch
	// ArchSource says how Arch was found: "cpuinfo", "device-tree",
	// "sysinfo", "option" or "runtime".
	ArchSource string
	CPU        CPU
	// Topology is lscpu's reading of the CPUs.
	Topology Topology
	// NodeInfo is libvirt's reading (virsh nodeinfo), POWER rules included.
	NodeInfo NodeInfo
	// NUMA lists the NUMA nodes of /sys/devices/system/node, sorted by id.
	NUMA []NUMANode
	// MemTotalKiB is MemTotal of /proc/meminfo (0 when unavailable).
	MemTotalKiB uint64
	Identity    Identity
	// Firmware lists firmware components and their levels.
	Firmware []Firmware
	// KVMDevice reports whether dev/kvm exists under the root. Whether KVM
	// is usable is decided by the caller (archspec knows what each
	// architecture needs).
	KVMDevice bool
	// Problems lists what could not be read, each with its file and reason.
	// The values it concerns are left empty (and reported "unavailable").
	Problems []Problem
}

// CPU is what /proc/cpuinfo (and, on s390x, /proc/sysinfo) says of the
// processors, in the vocabulary of the architecture that printed it.
type CPU struct {
	// Model is the model name: x86 "model name", POWER "cpu" (e.g.
	// "POWER8E (raw), altivec supported"), aarch64 the CPU part's name
	// (as lscpu names it), s390x the machine type ("2817").
	Model string
	// Vendor is x86 vendor_id, "IBM" on POWER (even where nothing says so),
	// the implementer's name on aarch64 ("ARM"), "IBM/S390" on s390x.
	Vendor string
	// MHz is the clock as the source prints it, without unit: x86
	// "cpu MHz" ("2533.402"), POWER "clock" without "MHz" ("3690.000000"),
	// aarch64 BogoMIPS, s390x "cpu MHz dynamic". Empty when absent.
	MHz string
	// Revision is POWER "revision" ("2.1 (pvr 004b 0201)"), x86 "stepping",
	// aarch64 "r1p1" (variant/revision), s390x the version.
	Revision string
	// PVR is the POWER processor version register as 8 hex digits
	// ("004b0201"); empty elsewhere.
	PVR string
	// Platform is the POWER trailer "platform" (PowerNV, pSeries).
	Platform string
	// Machine is the POWER trailer "machine" ("PowerNV 8247-22L",
	// "CHRP IBM,8233-E8B"); s390x the machine type.
	Machine string
	// TypeModel is the POWER trailer "model" ("8247-22L"), the s390x type.
	TypeModel string
	// FirmwareInterface is the POWER trailer "firmware" ("OPAL v3").
	FirmwareInterface string
	// MMU is the POWER trailer "MMU" ("Radix", "Hash").
	MMU string
	// Flags are the real feature flags of the first processor block (x86
	// "flags", aarch64 "Features", s390x "features"); POWER prints none.
	Flags []string
	// Processors counts the processor blocks of /proc/cpuinfo.
	Processors int
	// Types lists the distinct CPU types of a heterogeneous (big.LITTLE)
	// system in lscpu's order; one entry on every other system.
	Types []CPUType
}

// CPUType is one kind of core on a host, with lscpu's topology for it.
type CPUType struct {
	Model          string
	Vendor         string
	Revision       string
	CPUs           cpuset.Set // the CPUs of this type
	ThreadsPerCore int
	CoresPerSocket int
	Sockets        int
}

// Topology is lscpu's reading of the CPUs ("CPU(s)", "On-line CPU(s)
// list", "Thread(s) per core", "Core(s) per socket", "Socket(s)").
type Topology struct {
	// TotalCPUs is lscpu's "CPU(s)": the possible (or present) CPUs.
	TotalCPUs int
	// Online is the online CPU list.
	Online cpuset.Set
	// Offline is the offline CPU list ("Off-line CPU(s) list").
	Offline cpuset.Set
	// ThreadsPerCore counts online threads per core, as lscpu prints.
	ThreadsPerCore int
	CoresPerSocket int
	// Sockets is lscpu's "Socket(s)"; on s390x with books it is the total
	// (SocketsPerBook × Books) and SocketsPerBook/Books are set.
	Sockets        int
	SocketsPerBook int
	Books          int
	Drawers        int
}

// NodeInfo is libvirt's virNodeInfo as `virsh nodeinfo` prints it, computed
// with libvirt's rules (offline SMT threads and subcores on POWER).
type NodeInfo struct {
	// CPUs is the number of online CPUs libvirt counts ("CPUs: N/…").
	CPUs int
	// TotalCPUs is libvirt's maximum: Nodes × Sockets × Cores × Threads.
	TotalCPUs int
	MHz       int
	Nodes     int
	// Sockets counts sockets per NUMA node, as libvirt does.
	Sockets int
	Cores   int
	Threads int
}

// NUMANode is one node of /sys/devices/system/node.
type NUMANode struct {
	ID        int
	CPUs      cpuset.Set
	MemoryKiB uint64
	// Distances is the node's row of the distance table, in node order;
	// empty when the kernel does not print it.
	Distances []int
}

// Identity is the machine's hardware identity.
type Identity struct {
	Manufacturer string
	ProductName  string
	Version      string
	SerialNumber string
	UUID         string
	Family       string
	// TypeModel is the machine type-model ("8247-22L", s390x "2817").
	TypeModel string
	// Source names where the identity came from: "dmi", "device-tree",
	// "sysinfo", or "none" when the host has none of them.
	Source string
}

// Firmware is one firmware component and its level.
type Firmware struct {
	// Component names it: "bios" (DMI), "opal" (ibm,opal/firmware/version),
	// or the property name under ibm,firmware-versions ("skiboot", ...).
	Component string
	Version   string
	// Date is the release date when the source gives one (DMI bios_date).
	Date string
}

// Problem is a value that could not be read.
type Problem struct {
	// Field is the report field concerned ("cpu.model", "numa", ...).
	Field string
	// Path is the file relative to the root ("proc/cpuinfo").
	Path string
	// Reason says why, in a few words.
	Reason string
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s: %s (%s unavailable)", p.Path, p.Reason, p.Field)
}

// Options tune a Read.
type Options struct {
	// Arch, when set, overrides the architecture recognised from the data.
	Arch arch.Arch
	// ThreadsPerSubcore is what KVM says of POWER subcores (the
	// KVM_CAP_PPC_SMT value libvirt asks /dev/kvm for). Zero means: derive
	// it from the data as libvirt would on that host.
	ThreadsPerSubcore int
}
