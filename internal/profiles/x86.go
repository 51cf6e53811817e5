package profiles

import (
	"fmt"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
)

// cascadeLakeFlags are the cpuinfo flags of a Xeon Gold 6230 under Linux 6.1.
const cascadeLakeFlags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cdp_l3 invpcid_single intel_ppin ssbd mba ibrs ibpb stibp ibrs_enhanced tpr_shadow vnmi flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid cqm mpx rdt_a avx512f avx512dq rdseed adx smap clflushopt clwb intel_pt avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local dtherm ida arat pln pts pku ospke avx512_vnni md_clear flush_l1d arch_capabilities"

func xeonCPUInfo(p cpuPlace) string {
	return fmt.Sprintf(`processor	: %d
vendor_id	: GenuineIntel
cpu family	: 6
model		: 85
model name	: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
stepping	: 7
microcode	: 0x5003604
cpu MHz		: 2100.000
cache size	: 28160 KB
physical id	: %d
siblings	: %d
core id		: %d
cpu cores	: %d
apicid		: %d
initial apicid	: %d
fpu		: yes
fpu_exception	: yes
cpuid level	: 22
wp		: yes
flags		: %s
bugs		: spectre_v1 spectre_v2 spec_store_bypass swapgs taa itlb_multihit mmio_stale_data retbleed eibrs_pbrsb gds bhi
bogomips	: 4200.00
clflush size	: 64
cache_alignment	: 64
address sizes	: 46 bits physical, 48 bits virtual
power management:
`, p.cpu, p.packageID, p.coresPerChip*p.threadsPerCore, p.coreID, p.coresPerChip,
		p.packageID*64+p.coreID*2+p.thread, p.packageID*64+p.coreID*2+p.thread, cascadeLakeFlags)
}

func x86Machines() []libvirtxml.CapsGuestMachine {
	out := []libvirtxml.CapsGuestMachine{
		{Name: "pc-i440fx-7.2", MaxCPUs: 255}, {Name: "pc", MaxCPUs: 255, Canonical: "pc-i440fx-7.2"},
		{Name: "pc-q35-7.2", MaxCPUs: 288}, {Name: "q35", MaxCPUs: 288, Canonical: "pc-q35-7.2"},
	}
	for _, v := range []string{"7.1", "7.0", "6.2", "6.1", "6.0", "5.2", "5.1", "5.0", "4.2"} {
		out = append(out, libvirtxml.CapsGuestMachine{Name: "pc-q35-" + v, MaxCPUs: 288},
			libvirtxml.CapsGuestMachine{Name: "pc-i440fx-" + v, MaxCPUs: 255})
	}
	return out
}

// x86Models are QEMU 7.2's x86 models a Cascade Lake host runs (usable='yes').
var x86Models = []string{"qemu64", "qemu32", "kvm64", "kvm32", "Conroe", "Penryn", "Nehalem", "Nehalem-IBRS",
	"Westmere", "Westmere-IBRS", "SandyBridge", "SandyBridge-IBRS", "IvyBridge", "IvyBridge-IBRS",
	"Haswell-noTSX", "Haswell-noTSX-IBRS", "Broadwell-noTSX", "Broadwell-noTSX-IBRS",
	"Skylake-Client-noTSX-IBRS", "Skylake-Server-noTSX-IBRS", "Cascadelake-Server-noTSX", "Cascadelake-Server"}

func x86DomCaps() domcaps {
	d := domcaps{
		arch: arch.X86_64, domain: "kvm", machine: "pc-q35-7.2", emulator: "/usr/bin/qemu-system-x86_64",
		maxVCPUs: 288, passthrough: true, hostModel: "Cascadelake-Server", hostVendor: "Intel",
		graphics:  []string{"sdl", "vnc", "spice", "egl-headless", "dbus"},
		video:     []string{"vga", "cirrus", "vmvga", "qxl", "virtio", "none", "bochs", "ramfb"},
		diskBuses: []string{"ide", "fdc", "scsi", "virtio", "usb", "sata"},
	}
	for _, m := range x86Models {
		d.custom = append(d.custom, libvirtxml.DomainCapsCPUModel{Name: m, Usable: "yes", Vendor: "Intel"})
	}
	for _, m := range []string{"Icelake-Server", "SapphireRapids", "EPYC", "EPYC-Rome", "EPYC-Milan"} {
		d.custom = append(d.custom, libvirtxml.DomainCapsCPUModel{Name: m, Usable: "no"})
	}
	return d
}

// x86Server is a Dell PowerEdge R740 with two Intel Xeon Gold 6230 (20
// cores, 2 threads each: 80 CPUs, Linux's interleaved numbering), one NUMA
// node per socket, DMI identity and BIOS level.
var x86Server = &machine{
	name:    "x86-2s-intel",
	aliases: []string{"x86_64", "x86", "r740", "intel"},
	title:   "Dell PowerEdge R740, 2 × Intel Xeon Gold 6230 (Cascade Lake), 80 CPUs",
	arch:    arch.X86_64,
	chips: []chip{
		{packageID: 0, node: 0, cores: 20}, {packageID: 1, node: 1, cores: 20},
	},
	threadsPerCore: 2,
	onlineThreads:  2,
	interleaved:    true,
	coreID:         func(c chip, core, first int) int { return core },
	distance: func(a, b int) int {
		if a == b {
			return 10
		}
		return 21
	},
	cpuinfo:       xeonCPUInfo,
	memPerNodeKiB: 192 * 1024 * 1024,
	dmi: map[string]string{
		"sys_vendor":      "Dell Inc.",
		"product_name":    "PowerEdge R740",
		"product_version": "Not Specified",
		"product_serial":  "7XJ4MN3",
		"product_uuid":    "4c4c4544-0058-4a10-8034-b7c04f4d4e33",
		"product_family":  "PowerEdge",
		"product_sku":     "SKU=NotProvided;ModelName=PowerEdge R740",
		"board_vendor":    "Dell Inc.",
		"board_name":      "0WRPXK",
		"chassis_vendor":  "Dell Inc.",
		"chassis_type":    "23",
		"bios_vendor":     "Dell Inc.",
		"bios_version":    "2.12.2",
		"bios_date":       "07/09/2021",
	},
	kvmDevice: true,
	libvirt: libvirtHost{
		libvirtVersion: debianVersions.libvirtVersion, qemuVersion: debianVersions.qemuVersion,
		cpuModel: "Cascadelake-Server", cpuVendor: "Intel",
		cpuFeatures: []string{"ss", "vmx", "pdcm", "pcid", "dca", "osxsave", "tsc_adjust", "umip", "md-clear", "stibp", "arch-capabilities", "xsaves", "ibpb", "ibrs", "amd-stibp", "amd-ssbd", "rdctl-no", "ibrs-all", "skip-l1dfl-vmentry", "mds-no", "pschange-mc-no", "tsx-ctrl"},
		guests: []guestArch{
			{arch: arch.I686, wordSize: 32, emulator: "/usr/bin/qemu-system-i386", domains: []string{"qemu", "kvm"}, machines: x86Machines()},
			{arch: arch.X86_64, wordSize: 64, emulator: "/usr/bin/qemu-system-x86_64", domains: []string{"qemu", "kvm"}, machines: x86Machines()},
		},
		domcaps: []domcaps{x86DomCaps()},
	},
}

// machines are the built-in profiles.
var machines = []*machine{s822l, ac922, x86Server}
