package archspec

import (
	"polyvirt/internal/api"
	"polyvirt/internal/arch"
)

// The limits below follow the oVirt engine's osinfo (master) and QEMU's
// machine limits; the POWER entries follow the ppc64le feature and libvirt's
// pseries support (see ../shared/reference/cluster-and-vm-rules.md and
// domain-xml.md in the project's shared folder).
const (
	tib = 1024 * 1024 // MiB in one TiB
)

var x86_64 = &Spec{
	Arch:        arch.X86_64,
	Title:       "x86_64 (Intel, AMD)",
	ClusterArch: arch.X86_64,
	GuestArches: []arch.Arch{arch.X86_64, arch.I686},
	Emulator:    "/usr/bin/qemu-system-x86_64",
	GuestOS:     Choice{Allowed: []string{"linux", "windows", "other"}, Default: "linux"},
	Machine: MachineRules{
		Default:           "q35",
		Families:          []string{"q35", "pc"},
		ClusterCandidates: []string{"pc-q35-*", "q35", "pc-i440fx-*", "pc"},
	},
	Firmware: FirmwareRules{Kind: "seabios", Allowed: []string{"bios", "efi"}, Loader: true},
	Platform: PlatformRules{SMBIOS: true, ACPI: true, APIC: true, VMPort: false, HPET: false, PIT: true, HasVMPort: true},
	Clock: ClockRules{Timers: []Timer{
		{Name: "rtc", TickPolicy: "catchup"},
		{Name: "pit", TickPolicy: "delay"},
		{Name: "hpet", Present: "no"},
	}},
	CPU: CPURules{
		Modes:       []string{"custom", "host-model", "host-passthrough", "maximum"},
		DefaultMode: "host-model",
		TCGModel:    "qemu64",
		TCGModels:   []string{"qemu64", "qemu32", "max"},
		MaxVCPUs:    710,
		HotPlug:     true,
	},
	Memory: MemoryRules{MinMiB: 16, MaxMiB: 6 * tib, DefaultMiB: 1024, HotPlug: true},
	Display: DisplayRules{
		Pairs: []DisplayPair{
			{"spice", "qxl"}, {"vnc", "vga"}, {"vnc", "cirrus"}, {"vnc", "qxl"},
			{"vnc", "virtio"}, {"vnc", "bochs"},
		},
		Default:     DisplayPair{"vnc", "vga"},
		MaxMonitors: 4,
	},
	Input: InputRules{
		Buses:    []string{"ps2", "usb", "virtio"},
		Defaults: []InputDevice{{"tablet", "usb"}},
		Implicit: []InputDevice{{"mouse", "ps2"}, {"keyboard", "ps2"}},
	},
	USB: Choice{Allowed: []string{"qemu-xhci", "nec-xhci", "piix3-uhci", "ich9-ehci1"}, Default: "qemu-xhci"},
	Disk: DiskRules{
		Buses:           []string{"virtio", "sata", "scsi", "ide", "usb", "fdc"},
		DefaultBus:      "virtio",
		CDROMBus:        "sata",
		SCSIControllers: []string{"virtio-scsi", "lsilogic"},
		BusMachines:     map[string][]string{"ide": {"pc"}, "sata": {"q35", "pc"}, "fdc": {"pc"}},
		CDROMBusByMachine: map[string]string{
			"pc": "ide",
		},
	},
	NIC:       Choice{Allowed: []string{"virtio", "e1000", "e1000e", "rtl8139"}, Default: "virtio"},
	Sound:     Choice{Allowed: []string{"ich9", "ich6", "ac97"}},
	Watchdog:  Choice{Allowed: []string{"i6300esb", "itco"}},
	RNG:       Choice{Allowed: []string{"virtio"}, Default: "virtio"},
	Console:   ConsoleRules{Element: "serial", TargetType: "isa-serial", TargetModel: "isa-serial", GuestDevice: "ttyS0"},
	Panic:     "isa",
	Floppy:    true,
	PCI:       "pcie",
	Migration: true,
	Pages:     PageSizes{BaseKiB: 4, HugePageKiB: 2048},
	Host: HostRules{
		Vendors: []Vendor{{Name: "Intel", Marker: "vmx", KVM: true, CPUVendorIDs: []string{"GenuineIntel"}},
			{Name: "AMD", Marker: "svm", KVM: true, CPUVendorIDs: []string{"AuthenticAMD"}}},
		FakeCPUModel: "Intel(Fake) CPU",
		FakeFlags: []string{"vmx", "sse2", "nx",
			"model_Nehalem", "model_Westmere", "model_SandyBridge", "model_IvyBridge",
			"model_Haswell-noTSX", "model_Broadwell-noTSX", "model_Skylake-Client",
			"model_Skylake-Server", "model_Cascadelake-Server", "model_qemu64"},
		NestedVirt: true,
		// Debian's qemu-system-ppc, -arm and -misc run these under TCG.
		TCGGuests: []arch.Arch{arch.PPC64LE, arch.PPC64, arch.AArch64, arch.S390X},
	},
}

// power is the shared description of POWER; ppc64le and ppc64 differ in
// their guest architectures, CPU models and title only.
func power(a arch.Arch, title string, guests []arch.Arch, models []string) *Spec {
	return &Spec{
		Arch:        a,
		Title:       title,
		ClusterArch: arch.PPC64,
		GuestArches: guests,
		// qemu-system-ppc64 runs both endiannesses.
		Emulator: "/usr/bin/qemu-system-ppc64",
		GuestOS:  Choice{Allowed: []string{"linux", "other"}, Default: "linux"},
		Machine: MachineRules{
			Default:           "pseries",
			Families:          []string{"pseries"},
			ClusterCandidates: []string{"pseries-*", "pseries"},
			KVMFamilies:       []string{"pseries"},
		},
		// SLOF is built into QEMU: no <loader>, no SMBIOS, no ACPI.
		Firmware: FirmwareRules{Kind: "slof", Allowed: []string{"slof"}, Loader: false},
		Platform: PlatformRules{},
		CPU: CPURules{
			Modes:        []string{"custom", "host-model", "host-passthrough"},
			DefaultMode:  "host-model",
			Models:       models,
			CompatLadder: models,
			TCGModel:     "POWER8",
			// QEMU's TCG emulates every POWER level of the ladder.
			TCGModels: models,
			MaxVCPUs:  384,
			HotPlug:   true,
		},
		Memory: MemoryRules{MinMiB: 256, MaxMiB: 6 * tib, DefaultMiB: 1024, MultipleMiB: 256,
			MultipleCode: api.CodeMemoryNotMultipleOnPPC, HotPlug: true},
		Display: DisplayRules{
			Pairs:       []DisplayPair{{"vnc", "vga"}, {"vnc", "virtio"}},
			Default:     DisplayPair{"vnc", "vga"},
			MaxMonitors: 1,
		},
		// No PS/2 bus on pseries: a tablet and a keyboard on USB.
		Input: InputRules{
			Buses:    []string{"usb"},
			Defaults: []InputDevice{{"tablet", "usb"}, {"keyboard", "usb"}},
		},
		USB: Choice{Allowed: []string{"qemu-xhci", "nec-xhci", "pci-ohci"}, Default: "qemu-xhci"},
		Disk: DiskRules{
			Buses:              []string{"virtio", "scsi", "usb"},
			DefaultBus:         "virtio",
			CDROMBus:           "scsi",
			SCSIControllers:    []string{"spapr-vscsi", "virtio-scsi"},
			MaxSPAPRVSCSIDisks: 7,
		},
		NIC:       Choice{Allowed: []string{"virtio", "spapr-vlan"}, Default: "virtio"},
		Sound:     Choice{},
		Watchdog:  Choice{Allowed: []string{"i6300esb"}},
		RNG:       Choice{Allowed: []string{"virtio"}, Default: "virtio"},
		Console:   ConsoleRules{Element: "console", TargetType: "serial", TargetModel: "spapr-vty", GuestDevice: "hvc0"},
		Panic:     "pseries",
		Floppy:    false,
		PCI:       "pci",
		Migration: true,
		Pages:     PageSizes{BaseKiB: 64, HugePageKiB: 16384},
		Host: HostRules{
			Vendors:             []Vendor{{Name: "IBM POWER", Marker: "powernv", Added: true}},
			ModelsFromHostModel: true,
			FakeCPUModel:        "POWER 8 (fake)",
			FakeFlags:           []string{"powernv", "model_POWER8"},
			NestedVirt:          false,
			VDSMSerial:          "type-model",
			FirmwareUpdate:      "update_flash",
		},
	}
}

var ppc64le = power(arch.PPC64LE, "IBM POWER, little endian (ppc64le)",
	[]arch.Arch{arch.PPC64LE, arch.PPC64}, []string{"POWER10", "POWER9", "POWER8"})

var ppc64 = power(arch.PPC64, "IBM POWER, big endian (ppc64)",
	[]arch.Arch{arch.PPC64}, []string{"POWER10", "POWER9", "POWER8", "POWER7"})

var aarch64 = &Spec{
	Arch:        arch.AArch64,
	Title:       "64-bit ARM (aarch64)",
	ClusterArch: arch.AArch64,
	GuestArches: []arch.Arch{arch.AArch64},
	Emulator:    "/usr/bin/qemu-system-aarch64",
	GuestOS:     Choice{Allowed: []string{"linux", "windows", "other"}, Default: "linux"},
	Machine: MachineRules{
		Default:           "virt",
		Families:          []string{"virt"},
		ClusterCandidates: []string{"virt-*", "virt"},
		KVMFamilies:       []string{"virt"},
	},
	// The virt machine boots through UEFI (AAVMF).
	Firmware: FirmwareRules{Kind: "uefi", Allowed: []string{"efi"}, Loader: true},
	Platform: PlatformRules{ACPI: true, GIC: true},
	CPU: CPURules{
		Modes:       []string{"host-passthrough", "custom", "maximum"},
		DefaultMode: "host-passthrough",
		TCGModel:    "max",
		TCGModels:   []string{"max", "cortex-a57", "cortex-a72"},
		MaxVCPUs:    512,
		HotPlug:     false,
	},
	Memory: MemoryRules{MinMiB: 128, MaxMiB: 4 * tib, DefaultMiB: 1024, HotPlug: false},
	Display: DisplayRules{
		Pairs:       []DisplayPair{{"vnc", "virtio"}, {"vnc", "ramfb"}},
		Default:     DisplayPair{"vnc", "virtio"},
		MaxMonitors: 4,
	},
	Input: InputRules{
		Buses:    []string{"usb", "virtio"},
		Defaults: []InputDevice{{"tablet", "usb"}, {"keyboard", "usb"}},
	},
	USB: Choice{Allowed: []string{"qemu-xhci", "nec-xhci"}, Default: "qemu-xhci"},
	Disk: DiskRules{
		Buses:           []string{"virtio", "scsi", "usb"},
		DefaultBus:      "virtio",
		CDROMBus:        "scsi",
		SCSIControllers: []string{"virtio-scsi"},
	},
	NIC:       Choice{Allowed: []string{"virtio"}, Default: "virtio"},
	Sound:     Choice{},
	Watchdog:  Choice{},
	RNG:       Choice{Allowed: []string{"virtio"}, Default: "virtio"},
	Console:   ConsoleRules{Element: "serial", TargetType: "system-serial", TargetModel: "pl011", GuestDevice: "ttyAMA0"},
	Floppy:    false,
	PCI:       "pcie",
	Migration: true,
	Pages:     PageSizes{BaseKiB: 4, HugePageKiB: 2048},
	Host: HostRules{
		Vendors:      []Vendor{{Name: "ARM", Marker: "asimd"}},
		FakeCPUModel: "Cortex-A57 (fake)",
		FakeFlags:    []string{"fp", "asimd", "model_cortex-a57"},
		NestedVirt:   false,
		VDSMCPUModel: "model-id",
	},
}

var s390x = &Spec{
	Arch:        arch.S390X,
	Title:       "IBM Z (s390x)",
	ClusterArch: arch.S390X,
	GuestArches: []arch.Arch{arch.S390X},
	Emulator:    "/usr/bin/qemu-system-s390x",
	GuestOS:     Choice{Allowed: []string{"linux", "other"}, Default: "linux"},
	Machine: MachineRules{
		Default:           "s390-ccw-virtio",
		Families:          []string{"s390-ccw-virtio"},
		ClusterCandidates: []string{"s390-ccw-virtio-*", "s390-ccw-virtio"},
		KVMFamilies:       []string{"s390-ccw-virtio"},
	},
	Firmware: FirmwareRules{Kind: "none", Allowed: []string{}, Loader: false},
	Platform: PlatformRules{},
	CPU: CPURules{
		Modes:       []string{"host-model", "host-passthrough", "custom"},
		DefaultMode: "host-model",
		TCGModel:    "qemu",
		TCGModels:   []string{"qemu", "max"},
		MaxVCPUs:    248,
		HotPlug:     true,
	},
	Memory: MemoryRules{MinMiB: 128, MaxMiB: 4 * tib, DefaultMiB: 1024, HotPlug: false},
	Display: DisplayRules{
		Pairs:       []DisplayPair{{"vnc", "virtio"}},
		Default:     DisplayPair{"vnc", "virtio"},
		MaxMonitors: 1,
		Headless:    true,
	},
	Input: InputRules{
		Buses:    []string{"virtio"},
		Defaults: []InputDevice{{"tablet", "virtio"}, {"keyboard", "virtio"}},
	},
	USB: Choice{},
	Disk: DiskRules{
		Buses:           []string{"virtio", "scsi"},
		DefaultBus:      "virtio",
		CDROMBus:        "scsi",
		SCSIControllers: []string{"virtio-scsi"},
	},
	NIC:       Choice{Allowed: []string{"virtio"}, Default: "virtio"},
	Sound:     Choice{},
	Watchdog:  Choice{Allowed: []string{"diag288"}},
	RNG:       Choice{Allowed: []string{"virtio"}, Default: "virtio"},
	Console:   ConsoleRules{Element: "console", TargetType: "sclp", TargetModel: "sclpconsole", GuestDevice: "ttysclp0"},
	Panic:     "s390",
	Floppy:    false,
	PCI:       "ccw",
	Migration: true,
	Pages:     PageSizes{BaseKiB: 4, HugePageKiB: 1024},
	Host: HostRules{
		Vendors:      []Vendor{{Name: "IBM Z", Marker: "sie", KVM: true, CPUVendorIDs: []string{"IBM/S390"}}},
		FakeCPUModel: "IBM z (fake)",
		FakeFlags:    []string{"sie", "model_z14-base"},
		NestedVirt:   true,
	},
}

var specs = map[arch.Arch]*Spec{
	arch.X86_64:  x86_64,
	arch.PPC64LE: ppc64le,
	arch.PPC64:   ppc64,
	arch.AArch64: aarch64,
	arch.S390X:   s390x,
}
