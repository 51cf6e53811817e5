// Package hostinfo reads a host's hardware inventory through a filesystem
// root: /proc/cpuinfo (one parser per architecture, chosen from the data),
// /sys/devices/system/cpu and node (topology, SMT, NUMA), /proc/meminfo,
// /sys/class/dmi/id (x86_64, aarch64), /proc/device-tree (POWER) and
// /proc/sysinfo (s390x). The root is an fs.FS: os.DirFS("/") on a live host,
// an unpacked snapshot in tests, a built-in profile in fake mode.
//
// Nothing here asks libvirt and nothing decides policy: the values are what
// the files say, read the way lscpu and libvirt read them.
//
// Read is the entry point; each parser is exported on its own as well
// (ParseCPUInfo, ParseSysinfo, ParseDTStrings, ParseMeminfo, ParseDmidecode,
// LibvirtMHz, ParsePVR, ARMNames) and each has a fuzz test.
//
// Two readings of the topology are kept side by side because both are
// reported: Topology (and CPU.Types) with lscpu's meaning, where threads per
// core counts online threads (1 on a POWER KVM host with SMT off), and
// NodeInfo with libvirt's meaning, where the offline secondary threads of
// such a host are counted back (8 threads per core on POWER8).
//
// Decisions the data does not make by itself, documented where they are
// made: the architecture and ppc64/ppc64le (Read), the threads per subcore
// KVM would report (DeriveThreadsPerSubcore), and a
// device-tree property without its NUL (ReadDeviceTree: read as if it had
// one).
//
// Every file is read through a size limit and only if it is a regular file;
// see Read.
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
	// ArchSource says how Arch was found: "option" (Options.Arch),
	// "kernel" (proc/sys/kernel/arch, the kernel's uname -m), "cpuinfo"
	// (the cpuinfo format, refined for POWER endianness by the ELF header
	// of bin/sh when the root has one), "device-tree", "sysinfo", or
	// "none" when nothing said.
	ArchSource string
	// CPU is what /proc/cpuinfo says of the processors.
	CPU CPU
	// Topology is lscpu's reading of the CPUs.
	Topology Topology
	// NodeInfo is libvirt's reading (virsh nodeinfo), POWER rules included.
	NodeInfo NodeInfo
	// NUMA lists the NUMA nodes of /sys/devices/system/node, sorted by id.
	NUMA []NUMANode
	// MemTotalKiB is MemTotal of /proc/meminfo (0 when unavailable).
	MemTotalKiB uint64
	// Identity is the hardware identity (DMI, device tree, sysinfo).
	Identity Identity
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
	// TypeModel is the POWER trailer "model" ("8247-22L" as printed, which
	// may be "IBM,8233-E8B"), the s390x machine type.
	TypeModel string
	// Timebase is the POWER trailer "timebase" ("512000000").
	Timebase string
	// Family is x86 "cpu family" ("6").
	Family string
	// ModelID is the numeric model: x86 "model" ("46"), aarch64 "CPU
	// part" ("0xd46").
	ModelID string
	// Implementer is aarch64 "CPU implementer" as printed ("0x41").
	Implementer string
	// MaxThreadID is s390x "max thread id" (SMT threads per core minus
	// one), which lscpu prefers to sysfs for threads per core.
	MaxThreadID string
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
	// system in lscpu's order (sorted by vendor, model, model name and
	// stepping as cpuinfo prints them: for ARM implementer, part, model
	// name and variant); one entry on every other system. ParseCPUInfo
	// fills the identity of each type; Read adds the topology, keeps only
	// the possible CPUs in each type, and drops a type (other than the
	// first) left without any.
	Types []CPUType
}

// CPUType is one kind of core on a host, with lscpu's topology for it.
type CPUType struct {
	// Model is lscpu's "Model name" of the type: x86 "model name", POWER
	// "cpu", aarch64 the part's name from lscpu's tables (or "model
	// name"), and "" where lscpu prints "-" (s390x, an unknown ARM part).
	Model string
	// Vendor is lscpu's "Vendor ID": x86 vendor_id, the aarch64
	// implementer's name, "IBM/S390"; "IBM" on POWER.
	Vendor string
	// Revision has CPU.Revision's meaning for this type.
	Revision string
	// Flags are the feature flags of the type's first processor (CPU.Flags'
	// meaning); the cores of a heterogeneous host may differ.
	Flags []string
	// CPUs are the CPUs of this type: those cpuinfo lists with it, and for
	// the first type also the possible CPUs cpuinfo does not list (as
	// lscpu gives them its default type).
	CPUs cpuset.Set
	// ThreadsPerCore, CoresPerSocket and Sockets are lscpu's "Thread(s)
	// per core", "Core(s) per socket" and "Socket(s)" for this type (see
	// Topology).
	ThreadsPerCore int
	// CoresPerSocket is lscpu's "Core(s) per socket" for this type.
	CoresPerSocket int
	// Sockets is lscpu's "Socket(s)" for this type.
	Sockets int
	// SocketsPerBook, Books, BooksPerDrawer and Drawers are set on s390x
	// (lscpu's "Socket(s) per book", "Book(s)", "Book(s) per drawer",
	// "Drawer(s)"); Books is then the total (BooksPerDrawer × Drawers when
	// there are drawers) and Sockets is SocketsPerBook × Books.
	SocketsPerBook int
	// Books is the total number of books (lscpu's "Book(s)").
	Books int
	// BooksPerDrawer is lscpu's "Book(s) per drawer".
	BooksPerDrawer int
	// Drawers is lscpu's "Drawer(s)".
	Drawers int
}

// Topology is lscpu's reading of the CPUs ("CPU(s)", "On-line CPU(s)
// list", "Thread(s) per core", "Core(s) per socket", "Socket(s)").
type Topology struct {
	// TotalCPUs is lscpu's "CPU(s)": the present CPUs
	// (sys/devices/system/cpu/present; when that file is missing, the
	// possible CPUs, then the cpuN directories).
	TotalCPUs int
	// Online is the online CPU list.
	Online cpuset.Set
	// Offline is the offline CPU list ("Off-line CPU(s) list").
	Offline cpuset.Set
	// ThreadsPerCore counts online threads per core, as lscpu prints
	// (the largest online thread_siblings set; s390x "max thread id"+1).
	ThreadsPerCore int
	// CoresPerSocket is the distinct thread_siblings sets (cores) divided
	// by the distinct core_siblings sets (sockets), or /proc/sysinfo's
	// "CPU Topology SW" on s390x.
	CoresPerSocket int
	// Sockets is lscpu's "Socket(s)"; on s390x with books it is the total
	// (SocketsPerBook × Books) and SocketsPerBook/Books are set.
	// Topology is computed over all CPUs as one type; on a heterogeneous
	// host the per-type figures lscpu prints are in CPU.Types.
	Sockets int
	// SocketsPerBook, Books, BooksPerDrawer and Drawers have CPUType's
	// meaning.
	SocketsPerBook int
	// Books is the total number of books (s390x).
	Books int
	// BooksPerDrawer is lscpu's "Book(s) per drawer" (s390x).
	BooksPerDrawer int
	// Drawers is lscpu's "Drawer(s)" (s390x).
	Drawers int
}

// NodeInfo is libvirt's virNodeInfo as `virsh nodeinfo` prints it, computed
// with libvirt's rules (offline SMT threads and subcores on POWER). It is
// all zero where libvirt's reading would fail (no sys/devices/system/cpu,
// a malformed topology file, an unreadable node directory); a Problem with
// Field "nodeinfo" or "topology" then says why.
type NodeInfo struct {
	// CPUs is the number of online CPUs libvirt counts ("CPUs: N/…").
	CPUs int
	// TotalCPUs is libvirt's maximum: Nodes × Sockets × Cores × Threads.
	TotalCPUs int
	// MHz is the clock libvirt reads from cpuinfo (see LibvirtMHz).
	MHz int
	// Nodes is the number of NUMA nodes.
	Nodes int
	// Sockets counts sockets per NUMA node, as libvirt does.
	Sockets int
	// Cores is the largest number of cores in one socket.
	Cores int
	// Threads is threads per core, times the threads per subcore on a
	// POWER host whose secondary threads are offline for KVM.
	Threads int
}

// NUMANode is one node of /sys/devices/system/node.
type NUMANode struct {
	// ID is the N of nodeN (node numbers may be sparse: 0, 1, 16, 17).
	ID int
	// CPUs come from the node's cpulist, else its cpumap, else its cpuN
	// entries.
	CPUs cpuset.Set
	// MemoryKiB is "Node N MemTotal" of the node's meminfo (0 when absent).
	MemoryKiB uint64
	// Distances is the node's row of the distance table, in node order;
	// empty when the kernel does not print it.
	Distances []int
}

// Identity is the machine's hardware identity. Empty fields are unknown.
// Where each field comes from, per source:
//
//	field         dmi              device-tree (+ cpuinfo trailer)          sysinfo (s390x)
//	Manufacturer  sys_vendor       vendor (else "IBM" for an "IBM,…" model)  Manufacturer
//	ProductName   product_name     model-name (else a model with spaces)    Type
//	Version       product_version  cpuinfo machine                          -
//	SerialNumber  product_serial   system-id                                Sequence Code
//	UUID          product_uuid     system-id without NULs and commas        -
//	Family        product_family   cpuinfo platform (else from compatible)  Type (as libvirt)
//	TypeModel     -                cpuinfo model / dt model without "IBM,"  Type
//
// DMI values "Not Specified" are omitted.
type Identity struct {
	// Manufacturer is the system manufacturer ("IBM", "Dell Inc.").
	Manufacturer string
	// ProductName is the product ("IBM Power System S822L").
	ProductName string
	// Version is the product version ("PowerNV 8247-22L" on POWER).
	Version string
	// SerialNumber is the machine serial.
	SerialNumber string
	// UUID is the system UUID (on POWER, derived from system-id).
	UUID string
	// Family is the product family ("PowerNV", "pSeries" on POWER).
	Family string
	// TypeModel is the machine type-model ("8247-22L", s390x "2817").
	TypeModel string
	// Source names where the identity came from: "dmi", "device-tree",
	// "sysinfo", "cpuinfo" (a POWER host without a device tree: only the
	// cpuinfo trailer), or "none" when the host has none of them.
	Source string
}

// Firmware is one firmware component and its level.
type Firmware struct {
	// Component names it: "bios" (DMI), "opal" (ibm,opal/firmware/version),
	// or the property name under ibm,firmware-versions ("skiboot", ...).
	Component string
	// Vendor is who made it, when the source says (DMI bios_vendor).
	Vendor string
	// Version is the component's level as the source prints it.
	Version string
	// Date is the release date when the source gives one (DMI bios_date).
	Date string
}

// Problem is a value that could not be read.
type Problem struct {
	// Field is the report field concerned ("cpu.model", "numa", ...).
	Field string
	// Path is the file relative to the root ("proc/cpuinfo"); empty when
	// the problem is not one file's.
	Path string
	// Reason says why, in a few words.
	Reason string
}

// Error prints the problem as "path: reason (field unavailable)".
func (p Problem) Error() string {
	return fmt.Sprintf("%s: %s (%s unavailable)", p.Path, p.Reason, p.Field)
}

// Options tune a Read.
type Options struct {
	// Arch, when set, overrides the architecture recognised from the data.
	Arch arch.Arch
	// ThreadsPerSubcore is what KVM says of POWER subcores (the
	// KVM_CAP_PPC_SMT value libvirt asks /dev/kvm for). Zero means: derive
	// it from the data as libvirt would on that host (see
	// DeriveThreadsPerSubcore); a negative value means KVM reports none
	// (no kvm_hv, a guest), which is libvirt's 0.
	ThreadsPerSubcore int
}
