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
	// HostArch is host/cpu/arch.
	HostArch arch.Arch
	// HostCPUModel and HostCPUVendor are host/cpu/model and vendor.
	HostCPUModel  string
	HostCPUVendor string
	// HostCPUFeatures are the host/cpu/feature names.
	HostCPUFeatures []string
	// Topology is host/cpu/topology (zeros when absent).
	Topology Topology
	// Cells are the NUMA cells of host/topology/cells.
	Cells []Cell
	// Guests are the guest entries, in document order.
	Guests []Guest
}

// Topology is libvirt's host/cpu/topology.
type Topology struct {
	Sockets, Dies, Cores, Threads int
}

// Cell is one NUMA cell of the host topology.
type Cell struct {
	ID        int
	MemoryKiB uint64
	CPUs      []CellCPU
	// Distances maps a sibling cell id to its distance.
	Distances map[int]int
}

// CellCPU is one CPU of a cell. SocketID, CoreID and Siblings are empty
// when libvirt did not print them (the CPU is offline).
type CellCPU struct {
	ID       int
	SocketID *int
	CoreID   *int
	Siblings string
}

// Guest is one guest entry: an OS type on a guest architecture.
type Guest struct {
	OSType   string // "hvm", "exe", ...
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
	MaxCPUs   int
}

// DomainCaps is the parsed `virsh domcapabilities` document for one
// emulator, architecture, machine and domain type.
type DomainCaps struct {
	Emulator string
	Domain   string // kvm or qemu
	Machine  string
	Arch     arch.Arch
	MaxVCPUs int
	CPU      CPUModes
	// Graphics, Video, DiskBuses, DiskDevices, InputBuses, InputTypes,
	// HostdevModes, RNGBackends, ... are the supported enum values of the
	// devices section; an unsupported device leaves its list empty.
	Graphics    []string
	Video       []string
	DiskBuses   []string
	DiskDevices []string
	InputTypes  []string
	InputBuses  []string
	RNGModels   []string
	Watchdogs   []string // watchdog models (libvirt ≥ 10), empty when not listed
	Panics      []string // panic models from features
	// Firmware lists os/firmware values and loader paths when supported.
	Firmware []string
	Loaders  []string
	// Features lists the supported features by name (gic, vmcoreinfo,
	// sev, s390-pv, ...).
	Features []string
}

// CPUModes is the cpu section of domcapabilities.
type CPUModes struct {
	HostPassthrough bool
	MaximumMode     bool
	HostModel       HostModel
	Custom          CustomModes
}

// HostModel is mode host-model.
type HostModel struct {
	Supported bool
	Model     string
	Vendor    string
	Fallback  string
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
}
