// Package hostreport is the host capabilities report: what a host is (its
// architecture, hardware identity, firmware levels, CPU, NUMA nodes, memory)
// and what it offers for virtualization (KVM, libvirt, guest architectures,
// machines, CPU models, device enums). Its JSON field names are a contract:
// the agent serves it (GET /v1/capabilities), the engine admits and schedules
// hosts by it, vmspec checks definitions against it, and `polyvirt caps -o
// json` prints it.
//
// Package caps builds, collects and prints the report; this package only
// declares it, so that its readers do not link what collecting it needs.
package hostreport

import "polyvirt/internal/arch"

// Report is the host capabilities report. Its JSON field names are a
// contract other tools rely on.
type Report struct {
	// Arch is the real architecture of the host.
	Arch arch.Arch `json:"arch"`
	// EffectiveArch is the architecture the host presents for VMs: the real
	// one, or the fake-KVM architecture.
	EffectiveArch arch.Arch `json:"effectiveArch"`
	// FakeKVM tells whether the host runs guests in fake-KVM mode (TCG,
	// possibly presenting another machine: a profile or another effective
	// architecture). A host whose KVM cannot run guests says so in
	// Virt.Virtualization whether or not it is in fake-KVM mode.
	FakeKVM bool `json:"fakeKvm"`
	// Profile names the built-in host profile the report was read from.
	Profile string `json:"profile,omitempty"`
	// Source says what was read: "live", "root:DIR" or "profile:NAME".
	Source string `json:"source"`

	Hardware Hardware   `json:"hardware"`
	Firmware []Firmware `json:"firmware"`
	CPU      CPU        `json:"cpu"`
	NUMA     []NUMANode `json:"numa"`
	// MemoryMiB is the host's total memory.
	MemoryMiB uint64 `json:"memoryMiB"`
	Virt      Virt   `json:"virt"`
	// Pages are the base and default huge page sizes in KiB.
	Pages Pages `json:"pages"`
	// Unavailable lists what could not be read and why.
	Unavailable []Problem `json:"unavailable,omitempty"`
	// HostPaths, reported by an agent, is where this host lets its VMs'
	// files be (its host path policy, package hostpath): the engine checks
	// definitions and schedules with it.
	HostPaths *HostPaths `json:"hostPaths,omitempty"`
}

// HostPaths is a host's host path policy: the directories allowed per use
// of a file, and the block devices allowed as disks.
type HostPaths struct {
	Disk         []string `json:"disk"`
	CDROM        []string `json:"cdrom"`
	Kernel       []string `json:"kernel"`
	Initrd       []string `json:"initrd"`
	BlockDevices []string `json:"blockDevices"`
}

// Effective is the architecture the host runs VMs as: EffectiveArch, or
// Arch in a report that does not say.
func (r *Report) Effective() arch.Arch {
	if r.EffectiveArch != arch.Unknown {
		return r.EffectiveArch
	}
	return r.Arch
}

// Hardware is the machine's identity.
type Hardware struct {
	Manufacturer string `json:"manufacturer"`
	ProductName  string `json:"productName"`
	Version      string `json:"version"`
	SerialNumber string `json:"serialNumber"`
	UUID         string `json:"uuid"`
	Family       string `json:"family"`
	// Model is the machine type-model ("8247-22L").
	Model string `json:"model"`
	// Source is "dmi", "device-tree", "sysinfo", "cpuinfo" (a POWER host
	// with only the cpuinfo trailer) or "none".
	Source string `json:"source"`
}

// Firmware is one firmware component and its level.
type Firmware struct {
	Component string `json:"component"`
	Vendor    string `json:"vendor,omitempty"`
	Version   string `json:"version"`
	Date      string `json:"date,omitempty"`
}

// CPU is the host CPU: identity, flags, usable models and topology.
type CPU struct {
	Model  string `json:"model"`
	Vendor string `json:"vendor"`
	// FakeIdentity, when set, says that Model and Flags are VDSM's
	// fake-KVM values of a host presenting another architecture (not the
	// CPU it runs on), and names the real one.
	FakeIdentity string `json:"fakeIdentity,omitempty"`
	// MHz is the clock as a number (cpuinfo's value: x86 "cpu MHz",
	// POWER "clock", aarch64 BogoMIPS, s390x "cpu MHz dynamic"); 0 when
	// unknown.
	MHz      float64 `json:"mhz"`
	Revision string  `json:"revision"`
	PVR      string  `json:"pvr,omitempty"`
	Platform string  `json:"platform,omitempty"`
	Machine  string  `json:"machine,omitempty"`
	// Flags are the real flags, the vendor markers (powernv) and one
	// model_X entry per usable CPU model.
	Flags []string `json:"flags"`
	// Models are the usable CPU models (the X of the model_X flags).
	Models []string `json:"models"`
	// TotalCPUs, OnlineCPUs, Sockets, CoresPerSocket and ThreadsPerCore
	// have lscpu's meaning (threads per core counts online threads).
	// TopologySource says where they come from: "sysfs"
	// (sys/devices/system/cpu), "libvirt" (libvirt's NUMA cells, for a
	// captured root without sysfs: a CPU counts where a cell gives its
	// socket, core and siblings, as VDSM counts) or "" when the topology
	// is unavailable (the figures are then zero and Unavailable says why).
	TopologySource string `json:"topologySource,omitempty"`
	TotalCPUs      int    `json:"totalCpus"`
	OnlineCPUs     []int  `json:"onlineCpus"`
	OnlineCPUList  string `json:"onlineCpuList"`
	Sockets        int    `json:"sockets"`
	CoresPerSocket int    `json:"coresPerSocket"`
	ThreadsPerCore int    `json:"threadsPerCore"`
	// Types lists the kinds of cores of a heterogeneous host.
	Types []CPUType `json:"types,omitempty"`
	// NodeInfo is libvirt's reading (virsh nodeinfo).
	NodeInfo NodeInfo `json:"nodeinfo"`
}

// CPUType is one kind of core of a heterogeneous host.
type CPUType struct {
	Model          string `json:"model"`
	CPUs           string `json:"cpus"`
	ThreadsPerCore int    `json:"threadsPerCore"`
	CoresPerSocket int    `json:"coresPerSocket"`
	Sockets        int    `json:"sockets"`
}

// NodeInfo has libvirt's meaning: TotalCPUs is nodes × sockets × cores ×
// threads, sockets are per NUMA node.
type NodeInfo struct {
	CPUs      int `json:"cpus"`
	TotalCPUs int `json:"totalCpus"`
	MHz       int `json:"mhz"`
	Nodes     int `json:"nodes"`
	Sockets   int `json:"sockets"`
	Cores     int `json:"cores"`
	Threads   int `json:"threads"`
}

// NUMANode is one NUMA node.
type NUMANode struct {
	ID        int    `json:"id"`
	CPUs      []int  `json:"cpus"`
	MemoryMiB uint64 `json:"memoryMiB"`
	Distances []int  `json:"distances,omitempty"`
}

// Virt is what the host offers for virtualization.
type Virt struct {
	// KVM tells whether KVM can accelerate guests here; KVMReason says why
	// not.
	KVM       bool   `json:"kvm"`
	KVMReason string `json:"kvmReason,omitempty"`
	// Virtualization is how guests run here: "kvm", or "tcg" (QEMU's
	// emulation) when KVM cannot run them — the device is missing, the
	// CPU lacks what KVM needs, libvirt offers no kvm domain, or the host
	// is in fake-KVM mode; KVMReason says which.
	Virtualization string `json:"virtualization"`
	// Libvirt tells whether libvirt answered; LibvirtError says why not.
	Libvirt        bool   `json:"libvirt"`
	LibvirtError   string `json:"libvirtError,omitempty"`
	LibvirtVersion string `json:"libvirtVersion"`
	QEMUVersion    string `json:"qemuVersion"`
	// DomainType is the libvirt domain type VMs get here: kvm or qemu.
	DomainType string `json:"domainType"`
	// Guests are the guest architectures libvirt offers.
	Guests []Guest `json:"guests"`
	// EmulatedMachines are the machines of the effective architecture,
	// canonical names included.
	EmulatedMachines []string `json:"emulatedMachines"`
	// CPUModels are the CPU models the effective architecture's
	// domcapabilities list as usable (custom mode) or as host-model.
	CPUModels []string `json:"cpuModels"`
	// HostModel is the effective architecture's host-model CPU.
	HostModel string `json:"hostModel,omitempty"`
	// CPUModes are the supported CPU modes of the effective architecture.
	CPUModes []string `json:"cpuModes,omitempty"`
	// Graphics, Video and DiskBuses are the effective architecture's
	// domcapabilities device enums.
	Graphics  []string `json:"graphics"`
	Video     []string `json:"video"`
	DiskBuses []string `json:"diskBuses"`
	// NICModels and InputBuses, when domcapabilities list them.
	InputBuses []string `json:"inputBuses,omitempty"`
}

// Guest is one guest architecture with its machines.
type Guest struct {
	Arch        arch.Arch `json:"arch"`
	DomainTypes []string  `json:"domainTypes"`
	Emulator    string    `json:"emulator,omitempty"`
	Machines    []string  `json:"machines"`
	// CPUModels, Graphics, Video and DiskBuses come from this arch's
	// domcapabilities when they were read.
	CPUModels []string `json:"cpuModels,omitempty"`
	HostModel string   `json:"hostModel,omitempty"`
	Graphics  []string `json:"graphics,omitempty"`
	Video     []string `json:"video,omitempty"`
	DiskBuses []string `json:"diskBuses,omitempty"`
	// Error says why this arch's domcapabilities could not be read.
	Error string `json:"error,omitempty"`
}

// Pages are page sizes in KiB.
type Pages struct {
	BaseKiB     int `json:"baseKiB"`
	HugePageKiB int `json:"hugePageKiB"`
}

// Problem is a value that could not be read.
type Problem struct {
	Field  string `json:"field"`
	Path   string `json:"path,omitempty"`
	Reason string `json:"reason"`
}
