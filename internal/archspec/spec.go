// Package archspec is the one place that knows what each CPU architecture
// allows, needs and defaults to: machines, firmware, CPU modes and models,
// displays, inputs, buses, NIC models, consoles, limits, and how a host of
// that architecture shows its CPU level. Every other package asks it; none
// tests an architecture string itself.
//
// Each architecture is one value of Spec in a table (table.go); the methods
// in this package answer the questions that need a little logic on top of
// the table (CPU model flags, KVM usability, allowed display pairs).
package archspec

import (
	"fmt"
	"sort"
	"strings"

	"polyvirt/internal/arch"
)

// Spec describes one guest/host architecture.
type Spec struct {
	// Arch is the canonical architecture.
	Arch arch.Arch `json:"arch"`
	// Title is a human name ("IBM POWER, little endian").
	Title string `json:"title"`
	// ClusterArch is the architecture a cluster of such hosts has: every
	// POWER host belongs to a "ppc64" cluster (one family for both
	// endiannesses), as in oVirt.
	ClusterArch arch.Arch `json:"clusterArch"`
	// GuestArches are the libvirt guest architectures a host of this
	// architecture runs natively (a ppc64le host runs ppc64le and ppc64).
	GuestArches []arch.Arch `json:"guestArches"`
	// Emulator is the QEMU binary that runs guests of this architecture
	// (also under TCG on another host).
	Emulator string `json:"emulator"`
	// GuestOS lists the guest operating system types a VM of this
	// architecture may declare ("linux", "windows", "other") and the default.
	GuestOS Choice `json:"guestOs"`

	Machine  MachineRules  `json:"machine"`
	Firmware FirmwareRules `json:"firmware"`
	Platform PlatformRules `json:"platform"`
	Clock    ClockRules    `json:"clock"`
	CPU      CPURules      `json:"cpu"`
	Memory   MemoryRules   `json:"memory"`
	Display  DisplayRules  `json:"display"`
	Input    InputRules    `json:"input"`
	USB      Choice        `json:"usbController"`
	Disk     DiskRules     `json:"disk"`
	NIC      Choice        `json:"nic"`
	Sound    Choice        `json:"sound"`
	Watchdog Choice        `json:"watchdog"`
	RNG      Choice        `json:"rng"`
	Console  ConsoleRules  `json:"console"`
	// Panic is the <panic model>, "" when the architecture has none.
	Panic string `json:"panic,omitempty"`
	// Floppy tells whether a floppy drive exists on this architecture.
	Floppy bool `json:"floppy"`
	// PCI names the PCI topology: "pcie" (q35, virt), "pci" (pseries), "ccw".
	PCI string `json:"pci"`
	// Migration tells whether live migration is supported between hosts of
	// this architecture.
	Migration bool `json:"migration"`
	// Pages are the base and default huge page sizes of the host kernel.
	Pages PageSizes `json:"pages"`
	// Host describes how a host of this architecture shows its CPU.
	Host HostRules `json:"host"`
}

// MachineRules are the emulated machine types.
type MachineRules struct {
	// Default is the machine used when a VM names none.
	Default string `json:"default"`
	// Families are the machine name stems accepted ("pseries" accepts
	// "pseries" and "pseries-7.2").
	Families []string `json:"families"`
	// ClusterCandidates is the ordered list a cluster chooses its emulated
	// machine from ("pseries-*" style patterns; the first one its first
	// host offers wins).
	ClusterCandidates []string `json:"clusterCandidates"`
	// KVMFamilies are the machine families KVM runs guests on, on a host
	// of this architecture (pseries on POWER: powernv, the embedded and
	// Mac boards are TCG only); empty means every machine. A fake-KVM host
	// reports only these: what the host it imitates would offer.
	KVMFamilies []string `json:"kvmFamilies,omitempty"`
}

// FirmwareRules is the guest firmware.
type FirmwareRules struct {
	// Kind is "seabios", "slof", "uefi" or "none".
	Kind string `json:"kind"`
	// Allowed lists the firmware choices a VM may ask for.
	Allowed []string `json:"allowed"`
	// Loader tells whether a <loader>/<nvram> may be given (no on pseries:
	// SLOF is built into QEMU).
	Loader bool `json:"loader"`
}

// PlatformRules are the machine-wide features.
type PlatformRules struct {
	SMBIOS bool `json:"smbios"`
	ACPI   bool `json:"acpi"`
	APIC   bool `json:"apic"`
	GIC    bool `json:"gic"`
	VMPort bool `json:"vmport"`
	HPET   bool `json:"hpet"`
	PIT    bool `json:"pit"`
	// HasVMPort tells whether the machine has a VMware I/O port at all, so
	// that VMPort false is written as <vmport state='off'/> (x86 only).
	HasVMPort bool `json:"hasVmport,omitempty"`
}

// ClockRules are the guest clock timers written into <clock>.
type ClockRules struct {
	// Timers are written in order; an empty list leaves the clock to the
	// machine's defaults (pseries has an RTC only).
	Timers []Timer `json:"timers,omitempty"`
}

// Timer is one <timer> of the guest clock.
type Timer struct {
	Name       string `json:"name"`
	TickPolicy string `json:"tickPolicy,omitempty"`
	// Present is "no" to remove a timer the machine has by default.
	Present string `json:"present,omitempty"`
}

// CPURules are the guest CPU choices.
type CPURules struct {
	// Modes lists the allowed CPU modes: "custom", "host-model",
	// "host-passthrough", "maximum".
	Modes []string `json:"modes"`
	// DefaultMode is the mode used when the VM names none.
	DefaultMode string `json:"defaultMode"`
	// Models are the named models a VM may ask for (custom mode), newest
	// first; empty means any model the host's domcapabilities offer.
	Models []string `json:"models,omitempty"`
	// CompatLadder is the ordered list of compatibility levels, newest
	// first: a host of one level also runs guests of every later entry
	// (POWER10 → POWER9 → POWER8).
	CompatLadder []string `json:"compatLadder,omitempty"`
	// TCGModel is the model used under TCG when the VM asks for
	// host-model or host-passthrough (which TCG cannot give).
	TCGModel string `json:"tcgModel"`
	// TCGModels are the named models QEMU's TCG emulates well enough to be
	// kept as they are in fake-KVM mode; any other named model is replaced
	// by TCGModel.
	TCGModels []string `json:"tcgModels,omitempty"`
	// MaxVCPUs is the largest vCPU count of one VM.
	MaxVCPUs int `json:"maxVcpus"`
	// HotPlug tells whether vCPUs can be added to a running VM.
	HotPlug bool `json:"hotPlug"`
}

// MemoryRules are the guest memory limits.
type MemoryRules struct {
	// MinMiB and MaxMiB bound the memory of one VM.
	MinMiB uint64 `json:"minMiB"`
	MaxMiB uint64 `json:"maxMiB"`
	// DefaultMiB is the memory of a VM that names none.
	DefaultMiB uint64 `json:"defaultMiB"`
	// MultipleMiB, when not zero, is the granule memory must be a
	// multiple of (256 MiB, the LMB size, on POWER).
	MultipleMiB uint64 `json:"multipleMiB,omitempty"`
	// MultipleCode is the validation error code of a size that is not a
	// multiple of MultipleMiB (the reference engine's code).
	MultipleCode string `json:"multipleCode,omitempty"`
	// HotPlug tells whether memory can be added to a running VM.
	HotPlug bool `json:"hotPlug"`
}

// DisplayRules are the graphics protocols and video models.
type DisplayRules struct {
	// Pairs are the allowed graphics/video combinations.
	Pairs []DisplayPair `json:"pairs"`
	// Default is the pair a VM with a display gets when it names none.
	Default DisplayPair `json:"default"`
	// MaxMonitors is the largest number of heads of one video device.
	MaxMonitors int `json:"maxMonitors"`
	// Headless tells that a VM of this architecture gets no display unless
	// its definition asks for one (s390x); elsewhere a VM that says nothing
	// gets the Default pair.
	Headless bool `json:"headless,omitempty"`
}

// DisplayPair is one graphics protocol with one video model.
type DisplayPair struct {
	Graphics string `json:"graphics"`
	Video    string `json:"video"`
}

// InputRules are the input devices.
type InputRules struct {
	// Buses lists the allowed input buses ("ps2", "usb", "virtio").
	Buses []string `json:"buses"`
	// Defaults are the input devices a VM with a display gets.
	Defaults []InputDevice `json:"defaults"`
	// Implicit are the inputs the machine has whether asked or not (PS/2
	// mouse and keyboard on x86), never written to the domain.
	Implicit []InputDevice `json:"implicit,omitempty"`
}

// InputDevice is one input: type (tablet, mouse, keyboard) on a bus.
type InputDevice struct {
	Type string `json:"type"`
	Bus  string `json:"bus"`
}

// Choice is an allowed list with its default ("" when nothing is added
// by default). An empty Allowed list means the device class does not exist.
type Choice struct {
	Allowed []string `json:"allowed"`
	Default string   `json:"default,omitempty"`
}

// Allows reports whether v is in the allowed list.
func (c Choice) Allows(v string) bool { return contains(c.Allowed, v) }

// DiskRules are the disk and CD-ROM buses and SCSI controllers.
type DiskRules struct {
	// Buses are the allowed disk buses.
	Buses []string `json:"buses"`
	// DefaultBus is the bus of a disk that names none.
	DefaultBus string `json:"defaultBus"`
	// CDROMBus is the default bus of a CD-ROM.
	CDROMBus string `json:"cdromBus"`
	// SCSIControllers are the allowed SCSI controller models, the default
	// first.
	SCSIControllers []string `json:"scsiControllers"`
	// MaxSPAPRVSCSIDisks limits the disks of one sPAPR VSCSI controller
	// (0 when the controller does not exist).
	MaxSPAPRVSCSIDisks int `json:"maxSpaprVscsiDisks,omitempty"`
	// BusMachines restricts a bus to machine families (IDE exists on the
	// x86 "pc" machine only); a bus not listed exists on every machine.
	BusMachines map[string][]string `json:"busMachines,omitempty"`
	// CDROMBusByMachine overrides CDROMBus for a machine family.
	CDROMBusByMachine map[string]string `json:"cdromBusByMachine,omitempty"`
}

// ConsoleRules are the serial console.
type ConsoleRules struct {
	// Element is "serial" (a <serial> with a <console> alias) or "console"
	// (a <console> alone).
	Element string `json:"element"`
	// TargetType and TargetModel are the libvirt target (serial/isa-serial,
	// serial/spapr-vty, serial/pl011, sclp/sclpconsole).
	TargetType  string `json:"targetType"`
	TargetModel string `json:"targetModel,omitempty"`
	// GuestDevice is the guest's console device, for console= on the kernel
	// command line (ttyS0, hvc0, ttyAMA0, ttysclp0).
	GuestDevice string `json:"guestDevice"`
}

// PageSizes are page sizes in KiB.
type PageSizes struct {
	BaseKiB     int `json:"baseKiB"`
	HugePageKiB int `json:"hugePageKiB"`
}

// HostRules describe a host of this architecture.
type HostRules struct {
	// Vendors are the CPU vendor groups of hosts of this architecture, and
	// the flag that marks each: the one table of vendor flags (cluster CPU
	// types, the host's flag list and KVM usability all read it).
	Vendors []Vendor `json:"vendors"`
	// ModelsFromHostModel: the usable CPU models come from domcapabilities'
	// host-model (plus CompatLadder), not from custom usable='yes' (POWER,
	// where custom mode is often unsupported under KVM).
	ModelsFromHostModel bool `json:"modelsFromHostModel,omitempty"`
	// FakeCPUModel and FakeFlags are what a fake-KVM host of this effective
	// architecture reports (VDSM's values).
	FakeCPUModel string   `json:"fakeCpuModel"`
	FakeFlags    []string `json:"fakeFlags"`
	// NestedVirt tells whether nested virtualization can exist.
	NestedVirt bool `json:"nestedVirt"`
	// TCGGuests are the foreign guest architectures a host of this
	// architecture runs emulated, as they are, in fake-KVM mode (an x86_64
	// host runs a pseries VM with qemu-system-ppc64). A VM of any other
	// foreign architecture is rewritten for the host's own architecture.
	TCGGuests []arch.Arch `json:"tcgGuests,omitempty"`
	// VDSMSerial says what VDSM's getHardwareInfo reports as
	// systemSerialNumber: "type-model" (POWER: the cpuinfo model line,
	// "8247-22L"; the device tree's system-id is systemUUID), or "" for
	// the machine's serial number.
	VDSMSerial string `json:"vdsmSerial,omitempty"`
	// VDSMCPUModel says what VDSM's getCapabilities reports as cpuModel:
	// "model-id" (aarch64: the raw "CPU part", "0x000"), or "" for the
	// model name.
	VDSMCPUModel string `json:"vdsmCpuModel,omitempty"`
	// FirmwareUpdate names how the host's system firmware is inventoried
	// and updated from the running OS: "update_flash" (POWER: lsmcode for
	// the levels, powerpc-utils' update_flash to validate, flash, commit
	// and reject), or "" when polyvirt has no such mechanism for the
	// architecture (firmware actions answer NOT_SUPPORTED_ON_ARCH).
	FirmwareUpdate string `json:"firmwareUpdate,omitempty"`
}

// Vendor is a CPU vendor group: the cluster CPU types of one vendor are
// levelled among themselves (package cpucatalog), and a host belongs to the
// group whose marker is in its flag list.
type Vendor struct {
	// Name is the group's name ("Intel", "IBM POWER").
	Name string `json:"name"`
	// Marker is the flag that puts a host in the group ("vmx", "powernv").
	Marker string `json:"marker"`
	// Added tells that the kernel prints no such flag: polyvirt adds the
	// marker to the host's flag list (POWER prints no flags at all).
	Added bool `json:"added,omitempty"`
	// KVM tells that the marker is the CPU feature KVM needs (vmx, svm,
	// sie): where an architecture has such markers, KVM is usable only
	// when the host has one; elsewhere /dev/kvm suffices.
	KVM bool `json:"kvm,omitempty"`
	// CPUVendorIDs are the vendor names the kernel prints for the group's
	// CPUs (cpuinfo vendor_id: "GenuineIntel"): a host whose KVM cannot
	// run guests lacks the marker (vmx, svm) but is still of its vendor.
	CPUVendorIDs []string `json:"cpuVendorIds,omitempty"`
}

// For returns the Spec of an architecture, or an error naming the
// architectures polyvirt has rules for.
func For(a arch.Arch) (*Spec, error) {
	s, ok := specs[a]
	if !ok {
		return nil, fmt.Errorf("no rules for architecture %q: polyvirt has rules for %s", a, ArchList())
	}
	return s, nil
}

// Lookup parses an architecture name or alias and returns its Spec.
func Lookup(name string) (*Spec, error) {
	a, err := arch.Parse(name)
	if err != nil {
		return nil, fmt.Errorf("unknown architecture %q: polyvirt has rules for %s (or an alias such as amd64, ppc64el or arm64)", name, ArchList())
	}
	return For(a)
}

// Arches lists the architectures with rules, sorted.
func Arches() []arch.Arch {
	out := make([]arch.Arch, 0, len(specs))
	for a := range specs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ArchList names the architectures polyvirt has rules for, the one list
// every message shows ("aarch64, ppc64, ppc64le, s390x, x86_64").
func ArchList() string {
	var names []string
	for _, a := range Arches() {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
