// Package virtcaps turns libvirt's `capabilities` and `domcapabilities`
// documents into structured facts: the host CPU and NUMA cells libvirt sees,
// the guest architectures with their emulated machines, and per guest
// architecture the usable CPU models and the device enums (graphics, video,
// disk buses, ...). It parses captured XML and asks a live daemon through
// package libvirtconn.
package virtcaps

import "polyvirt/internal/arch"

// Capabilities is the parsed `virsh capabilities` document.
type Capabilities struct {
	// HostUUID is host/uuid ("" when absent).
	HostUUID string
	// HostArch is host/cpu/arch, exactly as libvirt spells it.
	HostArch arch.Arch
	// HostCPUModel and HostCPUVendor are host/cpu/model and vendor.
	HostCPUModel  string
	HostCPUVendor string
	// HostCPUFeatures are the host/cpu/feature names.
	HostCPUFeatures []string
	// Topology is host/cpu/topology (zeros when absent).
	Topology Topology
	// HostPageSizesKiB are the host/cpu/pages sizes in KiB, in document
	// order (the base page first, then the huge page sizes).
	HostPageSizesKiB []uint64
	// Cells are the NUMA cells of host/topology/cells.
	Cells []Cell
	// Guests are the guest entries, in document order.
	Guests []Guest
}

// Topology is libvirt's host/cpu/topology.
type Topology struct {
	Sockets, Dies, Clusters, Cores, Threads int
}

// Cell is one NUMA cell of the host topology.
type Cell struct {
	ID int
	// MemoryKiB is the cell's memory in KiB (0 when libvirt printed none).
	MemoryKiB uint64
	CPUs      []CellCPU
	// Distances maps a sibling cell id to its distance.
	Distances map[int]int
}

// CellCPU is one CPU of a cell. SocketID, DieID, ClusterID, CoreID and
// Siblings are empty when libvirt did not print them (the CPU is offline,
// or libvirt is too old to know them).
type CellCPU struct {
	ID        int
	SocketID  *int
	DieID     *int
	ClusterID *int
	CoreID    *int
	Siblings  string
}

// Guest is one guest entry: an OS type on a guest architecture.
type Guest struct {
	OSType string // "hvm", "exe", ...
	// Arch is guest/arch/@name exactly as libvirt spells it (libvirt's
	// names are polyvirt's canonical ones; names polyvirt does not know,
	// such as armv6l or mips, are kept as they are).
	Arch     arch.Arch
	WordSize int
	Emulator string
	// Machines are listed directly under guest/arch.
	Machines []Machine
	// Domains are the domain types (kvm, qemu) with their own machines.
	Domains []GuestDomain
}

// GuestDomain is a guest/arch/domain element.
type GuestDomain struct {
	Type     string
	Emulator string
	Machines []Machine
}

// Machine is one emulated machine type.
type Machine struct {
	Name      string
	Canonical string // the versioned name an alias stands for, or ""
	MaxCPUs   int    // 0 when libvirt did not say
	// Deprecated is true when libvirt marks the machine deprecated='yes'.
	Deprecated bool
}

// DomainCaps is the parsed `virsh domcapabilities` document for one
// emulator, architecture, machine and domain type.
type DomainCaps struct {
	Emulator string
	Domain   string // kvm or qemu
	Machine  string
	Arch     arch.Arch
	MaxVCPUs int
	// IOThreads is true when iothreads are supported.
	IOThreads bool
	CPU       CPUModes
	// Graphics (graphics/type), Video (video/modelType), DiskBuses
	// (disk/bus), DiskDevices (disk/diskDevice) and RNGModels (rng/model)
	// are the enum values of the devices section; an unsupported device
	// leaves its list empty. DeviceEnums has every device enum.
	//
	// InputTypes, InputBuses and Watchdogs stay empty: libvirt's
	// domcapabilities (schema of libvirt 11.3) has no input or watchdog
	// device, and libvirtxml models none.
	Graphics    []string
	Video       []string
	DiskBuses   []string
	DiskDevices []string
	InputTypes  []string
	InputBuses  []string
	RNGModels   []string
	Watchdogs   []string // see above: always empty today
	Panics      []string // devices/panic/enum[@name='model']
	// DeviceEnums maps each supported device of the devices section
	// (disk, graphics, video, hostdev, rng, filesystem, tpm, redirdev,
	// channel, crypto, interface, panic, console) to its enums, by enum
	// name, values in document order.
	DeviceEnums map[string]map[string][]string
	// Firmware lists the os/enum[@name='firmware'] values and Loaders the
	// os/loader/value paths, each when supported.
	Firmware []string
	Loaders  []string
	// Features lists the features with supported='yes' by element name
	// (gic, vmcoreinfo, genid, backingStoreInput, backup, async-teardown,
	// s390-pv, ps2, tdx, sev, sgx, hyperv, launchSecurity), in that order.
	Features []string
}

// CPUModes is the cpu section of domcapabilities; each bool is the mode's
// supported='yes'.
type CPUModes struct {
	HostPassthrough bool
	MaximumMode     bool
	HostModel       HostModel
	Custom          CustomModes
}

// HostModel is mode host-model: the named CPU model libvirt would give a
// guest that asks for the host's CPU.
type HostModel struct {
	Supported bool
	Model     string
	Vendor    string
	Fallback  string // "allow" or "forbid"
}

// CustomModes is mode custom with its models.
type CustomModes struct {
	Supported bool
	Models    []CPUModel
}

// CPUModel is one custom model: Usable is "yes", "no" or "unknown".
type CPUModel struct {
	Name       string
	Usable     string
	Vendor     string
	Deprecated bool
	// Canonical is the versioned model an alias stands for (libvirt ≥ 9.x
	// with QEMU versioned x86 models), or "".
	Canonical string
}
