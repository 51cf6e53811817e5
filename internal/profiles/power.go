package profiles

import (
	"fmt"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
)

// The POWER profiles follow the facts of the ppc64le feature and of real
// PowerNV hosts: cpuinfo per processor (cpu, clock, revision) and a trailer
// (timebase, platform, model, machine, firmware, MMU), no CPU flags, SMT
// switched off for KVM (only thread 0 of each core online), sparse NUMA node
// ids (one per chip), identity in /proc/device-tree. Serial numbers and
// firmware levels are representative values in the vendors' formats.

func powerCPUInfo(cpu, clock, revision string) func(cpuPlace) string {
	return func(p cpuPlace) string {
		return fmt.Sprintf("processor\t: %d\ncpu\t\t: %s\nclock\t\t: %s\nrevision\t: %s\n", p.cpu, cpu, clock, revision)
	}
}

func powerTrailer(typeModel, firmware, mmu string) string {
	s := fmt.Sprintf("timebase\t: 512000000\nplatform\t: PowerNV\nmodel\t\t: %s\nmachine\t\t: PowerNV %s\nfirmware\t: %s\n", typeModel, typeModel, firmware)
	if mmu != "" {
		s += "MMU\t\t: " + mmu + "\n"
	}
	return s
}

// powerDistance is the POWER firmware's distance table: 10 local, 20
// within a module, 40 across.
func powerDistance(a, b int) int {
	switch {
	case a == b:
		return 10
	case a/8 == b/8 && a/16 == b/16:
		return 20
	default:
		return 40
	}
}

// pseriesMachines are QEMU 7.2's pseries machine types (every one
// qemu-system-ppc64 7.2 lists: what a KVM POWER host running it offers).
func pseriesMachines() []libvirtxml.CapsGuestMachine {
	out := []libvirtxml.CapsGuestMachine{{Name: "pseries-7.2", MaxCPUs: 2048}, {Name: "pseries", MaxCPUs: 2048, Canonical: "pseries-7.2"}}
	for _, v := range []string{"7.1", "7.0", "6.2", "6.1", "6.0", "5.2", "5.1", "5.0", "4.2", "4.1", "4.0", "3.1", "3.0", "2.12",
		"2.12-sxxm", "2.11", "2.10", "2.9", "2.8", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1"} {
		out = append(out, libvirtxml.CapsGuestMachine{Name: "pseries-" + v, MaxCPUs: 2048})
	}
	return out
}

func powerGuests() []guestArch {
	return []guestArch{
		{arch: arch.PPC64, wordSize: 64, emulator: "/usr/bin/qemu-system-ppc64", domains: []string{"qemu", "kvm"}, machines: pseriesMachines()},
		{arch: arch.PPC64LE, wordSize: 64, emulator: "/usr/bin/qemu-system-ppc64", domains: []string{"qemu", "kvm"}, machines: pseriesMachines()},
	}
}

func powerDomCaps(a arch.Arch, hostModel string) domcaps {
	return domcaps{
		arch: a, domain: "kvm", machine: "pseries-7.2", emulator: "/usr/bin/qemu-system-ppc64",
		maxVCPUs: 1024, passthrough: true, hostModel: hostModel,
		custom: []libvirtxml.DomainCapsCPUModel{
			{Name: "POWER10", Usable: "unknown", Vendor: "IBM"},
			{Name: "POWER9", Usable: "unknown", Vendor: "IBM"},
			{Name: "POWER8", Usable: "unknown", Vendor: "IBM"},
			{Name: "POWER7", Usable: "unknown", Vendor: "IBM"},
		},
		graphics:  []string{"vnc", "egl-headless", "dbus"},
		video:     []string{"vga", "virtio", "bochs", "none"},
		diskBuses: []string{"scsi", "virtio", "usb"},
	}
}

var debianVersions = libvirtHost{libvirtVersion: "9.0.0", qemuVersion: "7.2.0"}

// s822l is an IBM Power System S822L (8247-22L): two dual-chip modules of
// POWER8E, 4 chips of 5 cores at SMT8 (160 hardware threads), KVM host with
// SMT off (online CPUs 0,8,...,152), NUMA nodes 0, 1, 16, 17, FSP-based
// firmware reached through OPAL v3.
var s822l = &machine{
	name:    "s822l-power8e",
	aliases: []string{"s822l", "power8", "power8e", "8247-22l"},
	title:   "IBM Power System S822L 8247-22L, POWER8E PowerNV, 20 cores SMT8 with SMT off",
	arch:    arch.PPC64LE,
	chips: []chip{
		{packageID: 0, node: 0, cores: 5}, {packageID: 1, node: 1, cores: 5},
		{packageID: 16, node: 16, cores: 5}, {packageID: 17, node: 17, cores: 5},
	},
	threadsPerCore: 8,
	onlineThreads:  1,
	coreID:         func(c chip, core, first int) int { return 32 + first },
	distance:       powerDistance,
	cpuinfo:        powerCPUInfo("POWER8E (raw), altivec supported", "3690.000000MHz", "2.1 (pvr 004b 0201)"),
	cpuinfoTrailer: powerTrailer("8247-22L", "OPAL v3", "Hash"),
	memPerNodeKiB:  64 * 1024 * 1024,
	deviceTree: map[string][]string{
		"vendor":                    {"IBM"},
		"model":                     {"IBM,8247-22L"},
		"model-name":                {"IBM Power System S822L"},
		"system-id":                 {"IBM,0321C8F7A"},
		"system-brand":              {"S0"},
		"compatible":                {"ibm,powernv", "ibm,firenze"},
		"ibm,opal/firmware/version": {"skiboot-5.4.8"},
		// An FSP-based system: its firmware is managed through the FSP.
		"fsps/name": {"fsps"},
	},
	kvmDevice: true,
	// Both banks on the SV810 stream the reference's update replaces
	// (01SV810_133_081: SV810_133 replacing SV810_081), booted from the
	// temporary side, as lsvpd's lsmcode -A prints them.
	lsmcodeA: "sys0!system:SV810_081 (t) SV810_081 (p) SV810_081 (t)service:",
	libvirt: libvirtHost{
		libvirtVersion: debianVersions.libvirtVersion, qemuVersion: debianVersions.qemuVersion,
		cpuModel: "POWER8", cpuVendor: "IBM",
		guests:  powerGuests(),
		domcaps: []domcaps{powerDomCaps(arch.PPC64LE, "POWER8"), powerDomCaps(arch.PPC64, "POWER8")},
	},
}

// ac922 is an IBM Power System AC922 (8335-GTH, OpenPOWER "Witherspoon"):
// two POWER9 chips of 16 cores at SMT4, SMT off for KVM, NUMA nodes 0 and
// 8, the radix MMU, firmware versions in ibm,firmware-versions.
var ac922 = &machine{
	name:    "ac922-power9",
	aliases: []string{"ac922", "power9", "8335-gth"},
	title:   "IBM Power System AC922 8335-GTH, POWER9 PowerNV, 32 cores SMT4 with SMT off",
	arch:    arch.PPC64LE,
	chips: []chip{
		{packageID: 0, node: 0, cores: 16}, {packageID: 8, node: 8, cores: 16},
	},
	threadsPerCore: 4,
	onlineThreads:  1,
	coreID:         func(c chip, core, first int) int { return first },
	distance:       powerDistance,
	cpuinfo:        powerCPUInfo("POWER9, altivec supported", "3300.000000MHz", "2.2 (pvr 004e 1202)"),
	cpuinfoTrailer: powerTrailer("8335-GTH", "OPAL", "Radix"),
	memPerNodeKiB:  256 * 1024 * 1024,
	deviceTree: map[string][]string{
		"vendor":                                  {"IBM"},
		"model":                                   {"8335-GTH"},
		"model-name":                              {"IBM Power System AC922"},
		"system-id":                               {"13A4F2C"},
		"compatible":                              {"ibm,witherspoon", "ibm,powernv"},
		"ibm,opal/firmware/version":               {"skiboot-v6.4.3"},
		"ibm,firmware-versions/version":           {"open-power-witherspoon-v2.4-4.58"},
		"ibm,firmware-versions/skiboot":           {"v6.4.3"},
		"ibm,firmware-versions/hostboot":          {"b6ae3ff"},
		"ibm,firmware-versions/occ":               {"58e422d"},
		"ibm,firmware-versions/linux":             {"5.3.7-openpower1-p9a8a4b3"},
		"ibm,firmware-versions/petitboot":         {"v1.10.4"},
		"ibm,firmware-versions/buildroot":         {"2019.05.3-14-g17f117295f"},
		"ibm,firmware-versions/machine-xml":       {"site_local-op940-3b5d1bb"},
		"ibm,firmware-versions/hostboot-binaries": {"hw101219a.940"},
	},
	kvmDevice: true,
	libvirt: libvirtHost{
		libvirtVersion: debianVersions.libvirtVersion, qemuVersion: debianVersions.qemuVersion,
		cpuModel: "POWER9", cpuVendor: "IBM",
		guests:  powerGuests(),
		domcaps: []domcaps{powerDomCaps(arch.PPC64LE, "POWER9"), powerDomCaps(arch.PPC64, "POWER9")},
	},
}
