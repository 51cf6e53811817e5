package virtcaps

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
	"polyvirt/internal/testcorpus"
)

// corpusDir finds the shared real-machine corpus ("" when absent).
func corpusDir(tb testing.TB) string { return testcorpus.Dir(tb) }

// requireCorpus returns the corpus directory or skips the test.
func requireCorpus(tb testing.TB) string {
	tb.Helper()
	d := corpusDir(tb)
	if d == "" {
		tb.Skip("the real-machine corpus (../shared/corpus from the module root) is absent; set POLYVIRT_CORPUS to run the conformance tests")
	}
	return d
}

// corpusXMLFiles lists the XML files of the two libvirt folders of the
// corpus, relative to it, sorted.
func corpusXMLFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	for _, sub := range []string{"libvirt-caps", "libvirt-domcaps"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(p, ".xml") {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("listing %s: %v", sub, err)
		}
	}
	sort.Strings(out)
	return out
}

// isDomCapsFile says from the name alone whether a corpus file is a
// domcapabilities document: everything in libvirt-domcaps/, and the
// virt-manager-*-domcaps*.xml files of libvirt-caps/.
func isDomCapsFile(rel string) bool {
	return strings.HasPrefix(rel, "libvirt-domcaps/") || strings.Contains(filepath.Base(rel), "-domcaps")
}

type capsSummary struct {
	UUID, Arch, Model, Vendor string
	Topology                  Topology
	NumFeatures               int
	FirstFeatures             []string
	PageSizesKiB              []uint64
	Cells                     []cellSummary
	GuestArches               []arch.Arch
	Guests                    map[arch.Arch]guestSummary
}

type cellSummary struct {
	ID                int
	MemoryKiB         uint64
	NumCPUs           int
	FirstCPU, LastCPU string
	Distances         map[int]int
}

type guestSummary struct {
	OSType       string
	WordSize     int
	Emulator     string // Emulator(arch, Preferred)
	DomainTypes  []string
	Preferred    string
	NumMachines  int      // len(MachineNames(arch, Preferred))
	FirstNames   []string // MachineNames(arch, Preferred)[:5]
	Canonical    map[string]string
	Deprecated   []string
	FirstMaxCPUs int
}

func cpuString(c CellCPU) string {
	p := func(v *int) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprint(*v)
	}
	sib := c.Siblings
	if sib == "" {
		sib = "-"
	}
	return fmt.Sprintf("%d s=%s d=%s cl=%s c=%s sib=%s", c.ID, p(c.SocketID), p(c.DieID), p(c.ClusterID), p(c.CoreID), sib)
}

func firstN[T any](s []T, n int) []T {
	if len(s) == 0 {
		return nil
	}
	return s[:min(n, len(s))]
}

func summarizeCaps(c *Capabilities) *capsSummary {
	s := &capsSummary{
		UUID: c.HostUUID, Arch: string(c.HostArch), Model: c.HostCPUModel, Vendor: c.HostCPUVendor,
		Topology:      c.Topology,
		NumFeatures:   len(c.HostCPUFeatures),
		FirstFeatures: firstN(c.HostCPUFeatures, 3),
		PageSizesKiB:  c.HostPageSizesKiB,
		GuestArches:   c.GuestArches(),
		Guests:        map[arch.Arch]guestSummary{},
	}
	for _, cell := range c.Cells {
		cs := cellSummary{ID: cell.ID, MemoryKiB: cell.MemoryKiB, NumCPUs: len(cell.CPUs), Distances: cell.Distances}
		if len(cell.CPUs) > 0 {
			cs.FirstCPU, cs.LastCPU = cpuString(cell.CPUs[0]), cpuString(cell.CPUs[len(cell.CPUs)-1])
		}
		s.Cells = append(s.Cells, cs)
	}
	for _, a := range s.GuestArches {
		pref := c.PreferredDomainType(a)
		ms := c.EmulatedMachines(a, pref)
		names := c.MachineNames(a, pref)
		g := guestSummary{
			Emulator:    c.Emulator(a, pref),
			DomainTypes: c.DomainTypes(a),
			Preferred:   pref,
			NumMachines: len(names),
			FirstNames:  firstN(names, 5),
		}
		for _, gg := range c.Guests {
			if gg.Arch == a {
				g.OSType, g.WordSize = gg.OSType, gg.WordSize
				break
			}
		}
		for _, m := range ms {
			if m.Canonical != "" {
				if g.Canonical == nil {
					g.Canonical = map[string]string{}
				}
				g.Canonical[m.Name] = m.Canonical
			}
			if m.Deprecated {
				g.Deprecated = append(g.Deprecated, m.Name)
			}
		}
		if len(ms) > 0 {
			g.FirstMaxCPUs = ms[0].MaxCPUs
		}
		s.Guests[a] = g
	}
	return s
}

type domcapsSummary struct {
	Emulator, Domain, Machine string
	Arch                      arch.Arch
	MaxVCPUs                  int
	IOThreads                 bool
	Firmware, Loaders         []string
	HostPassthrough, Maximum  bool
	HostModel                 HostModel
	CustomSupported           bool
	NumCustom, NumUsable      int
	FirstCustom               []CPUModel
	FirstUsable               []string
	DeprecatedCustom          []string
	Graphics, Video           []string
	DiskBuses, DiskDevices    []string
	RNGModels, Panics         []string
	TPMModels                 []string
	Devices                   []string
	Features                  []string
}

func summarizeDomCaps(d *DomainCaps) *domcapsSummary {
	usable := d.UsableCustomModels()
	s := &domcapsSummary{
		Emulator: d.Emulator, Domain: d.Domain, Machine: d.Machine, Arch: d.Arch,
		MaxVCPUs: d.MaxVCPUs, IOThreads: d.IOThreads,
		Firmware: d.Firmware, Loaders: d.Loaders,
		HostPassthrough: d.CPU.HostPassthrough, Maximum: d.CPU.MaximumMode,
		HostModel:       d.CPU.HostModel,
		CustomSupported: d.CPU.Custom.Supported,
		NumCustom:       len(d.CPU.Custom.Models),
		NumUsable:       len(usable),
		FirstCustom:     firstN(d.CPU.Custom.Models, 3),
		FirstUsable:     firstN(usable, 8),
		Graphics:        d.Graphics, Video: d.Video,
		DiskBuses: d.DiskBuses, DiskDevices: d.DiskDevices,
		RNGModels: d.RNGModels, Panics: d.Panics,
		TPMModels: d.DeviceEnums["tpm"]["model"],
		Features:  d.Features,
	}
	for _, m := range d.CPU.Custom.Models {
		if m.Deprecated {
			s.DeprecatedCustom = append(s.DeprecatedCustom, m.Name)
		}
	}
	for name := range d.DeviceEnums {
		s.Devices = append(s.Devices, name)
	}
	sort.Strings(s.Devices)
	return s
}

// corpusCases are the expectations for every libvirt XML file of the
// corpus, read off the files themselves. Exactly one of caps and domcaps is
// set, by the kind of document.
var corpusCases = []struct {
	file    string
	caps    *capsSummary
	domcaps *domcapsSummary
}{
	{
		file: "libvirt-caps/debian12-libvirt9-tcg-x86_64-host.xml",
		caps: &capsSummary{
			UUID: "09942ec1-d701-45f7-987c-f375c9b30530", Arch: "x86_64", Model: "kvm64", Vendor: "AMD",
			Topology:    Topology{Sockets: 1, Dies: 1, Clusters: 0, Cores: 2, Threads: 1},
			NumFeatures: 69, FirstFeatures: []string{"vme", "ht", "pclmuldq"},
			PageSizesKiB: []uint64{4, 2048, 1048576},
			Cells: []cellSummary{
				{ID: 0, MemoryKiB: 5465888, NumCPUs: 2, FirstCPU: "0 s=0 d=0 cl=- c=0 sib=0", LastCPU: "1 s=0 d=0 cl=- c=1 sib=1", Distances: map[int]int{0: 10}},
			},
			GuestArches: []arch.Arch{"i686", "ppc", "ppc64", "ppc64le", "x86_64"},
			Guests: map[arch.Arch]guestSummary{
				"i686":    {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-i386", DomainTypes: []string{"qemu", "kvm"}, Preferred: "kvm", NumMachines: 60, FirstNames: []string{"pc-i440fx-7.2", "pc", "pc-q35-5.2", "pc-i440fx-2.12", "pc-i440fx-2.0"}, Canonical: map[string]string{"pc": "pc-i440fx-7.2", "q35": "pc-q35-7.2"}, Deprecated: []string{"pc-i440fx-1.5", "pc-i440fx-1.7", "pc-i440fx-1.4", "pc-i440fx-1.6"}, FirstMaxCPUs: 255},
				"ppc":     {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-ppc", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 10, FirstNames: []string{"g3beige", "virtex-ml507", "mac99", "ppce500", "sam460ex"}, Canonical: nil, Deprecated: nil, FirstMaxCPUs: 1},
				"ppc64":   {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-ppc64", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 42, FirstNames: []string{"pseries-7.2", "pseries", "powernv9", "powernv", "pseries-4.1"}, Canonical: map[string]string{"pseries": "pseries-7.2", "powernv": "powernv9"}, Deprecated: nil, FirstMaxCPUs: 4096},
				"ppc64le": {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-ppc64le", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 42, FirstNames: []string{"pseries-7.2", "pseries", "powernv9", "powernv", "pseries-4.1"}, Canonical: map[string]string{"pseries": "pseries-7.2", "powernv": "powernv9"}, Deprecated: nil, FirstMaxCPUs: 4096},
				"x86_64":  {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-x86_64", DomainTypes: []string{"qemu", "kvm"}, Preferred: "kvm", NumMachines: 60, FirstNames: []string{"pc-i440fx-7.2", "pc", "pc-q35-5.2", "pc-i440fx-2.12", "pc-i440fx-2.0"}, Canonical: map[string]string{"pc": "pc-i440fx-7.2", "q35": "pc-q35-7.2"}, Deprecated: []string{"pc-i440fx-1.5", "pc-i440fx-1.7", "pc-i440fx-1.4", "pc-i440fx-1.6"}, FirstMaxCPUs: 255},
			},
		},
	},
	{
		file: "libvirt-caps/virt-manager-kvm-aarch64-domcaps.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-aarch64", Domain: "kvm", Machine: "virt-8.2", Arch: "aarch64", MaxVCPUs: 512, IOThreads: true,
			Firmware:        []string{"efi"},
			Loaders:         []string{"/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.qcow2", "/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.raw", "/usr/share/edk2/aarch64/QEMU_EFI-pflash.qcow2", "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw"},
			HostPassthrough: true, Maximum: true,
			HostModel:       HostModel{Supported: false, Model: "", Vendor: "", Fallback: ""},
			CustomSupported: true, NumCustom: 47, NumUsable: 0,
			FirstCustom: []CPUModel{
				{Name: "neoverse-n2", Usable: "unknown", Vendor: "unknown", Canonical: "", Deprecated: false},
				{Name: "pxa270-c0", Usable: "unknown", Vendor: "unknown", Canonical: "", Deprecated: false},
				{Name: "cortex-a15", Usable: "unknown", Vendor: "unknown", Canonical: "", Deprecated: false},
			},
			FirstUsable:      nil,
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "spice", "egl-headless", "dbus"},
			Video:            []string{"vga", "cirrus", "virtio", "none", "bochs", "ramfb"},
			DiskBuses:        []string{"fdc", "scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "floppy", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           []string{"pvpanic"},
			TPMModels:        []string{"tpm-tis"},
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "panic", "redirdev", "rng", "tpm", "video"},
			Features:         []string{"gic", "vmcoreinfo", "backingStoreInput", "backup", "async-teardown"},
		},
	},
	{
		file: "libvirt-caps/virt-manager-kvm-aarch64.xml",
		caps: &capsSummary{
			UUID: "5103525c-cea0-03cb-2f27-aed3d1dea18a", Arch: "aarch64", Model: "Neoverse-N1", Vendor: "ARM",
			Topology:    Topology{Sockets: 1, Dies: 1, Clusters: 1, Cores: 80, Threads: 1},
			NumFeatures: 16, FirstFeatures: []string{"fp", "asimd", "evtstrm"},
			PageSizesKiB: []uint64{4, 64, 2048, 32768, 1048576},
			Cells: []cellSummary{
				{ID: 0, MemoryKiB: 263763320, NumCPUs: 80, FirstCPU: "0 s=56 d=0 cl=456 c=4608 sib=0", LastCPU: "79 s=56 d=0 cl=236 c=1793 sib=79", Distances: map[int]int{0: 10, 1: 20}},
				{ID: 1, MemoryKiB: 262082520, NumCPUs: 80, FirstCPU: "80 s=76 d=0 cl=1736 c=70144 sib=80", LastCPU: "159 s=76 d=0 cl=1516 c=67329 sib=159", Distances: map[int]int{0: 20, 1: 10}},
			},
			GuestArches: []arch.Arch{"armv7l", "aarch64"},
			Guests: map[arch.Arch]guestSummary{
				"armv7l":  {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-aarch64", DomainTypes: []string{"qemu", "kvm"}, Preferred: "kvm", NumMachines: 119, FirstNames: []string{"virt-8.2", "virt", "qcom-dc-scm-v1-bmc", "mori-bmc", "ast2600-evb"}, Canonical: map[string]string{"virt": "virt-8.2"}, Deprecated: nil, FirstMaxCPUs: 512},
				"aarch64": {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-aarch64", DomainTypes: []string{"qemu", "kvm"}, Preferred: "kvm", NumMachines: 119, FirstNames: []string{"virt-8.2", "virt", "qcom-dc-scm-v1-bmc", "mori-bmc", "ast2600-evb"}, Canonical: map[string]string{"virt": "virt-8.2"}, Deprecated: nil, FirstMaxCPUs: 512},
			},
		},
	},
	{
		file: "libvirt-caps/virt-manager-kvm-s390x-domcaps.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-s390x", Domain: "kvm", Machine: "s390-ccw-virtio-6.0", Arch: "s390x", MaxVCPUs: 248, IOThreads: true,
			Firmware:        nil,
			Loaders:         []string{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF32_CODE.fd", "/usr/share/OVMF/OVMF_CODE.fd"},
			HostPassthrough: true, Maximum: true,
			HostModel:       HostModel{Supported: true, Model: "gen15a-base", Vendor: "", Fallback: "forbid"},
			CustomSupported: true, NumCustom: 74, NumUsable: 74,
			FirstCustom: []CPUModel{
				{Name: "z800-base", Usable: "yes", Vendor: "", Canonical: "", Deprecated: false},
				{Name: "z890.2-base", Usable: "yes", Vendor: "", Canonical: "", Deprecated: false},
				{Name: "z9EC.2", Usable: "yes", Vendor: "", Canonical: "", Deprecated: false},
			},
			FirstUsable:      []string{"z800-base", "z890.2-base", "z9EC.2", "z13.2", "z990.5-base", "z9BC-base", "z890.2", "z890"},
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "egl-headless"},
			Video:            []string{"virtio", "none"},
			DiskBuses:        []string{"fdc", "scsi", "virtio"},
			DiskDevices:      []string{"disk", "cdrom", "floppy", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           nil,
			TPMModels:        nil,
			Devices:          []string{"disk", "filesystem", "graphics", "hostdev", "rng", "video"},
			Features:         []string{"backingStoreInput", "s390-pv"},
		},
	},
	{
		file: "libvirt-caps/virt-manager-kvm-s390x.xml",
		caps: &capsSummary{
			UUID: "b88e553c-5920-4aa8-bb09-cc0ab8e6e0c2", Arch: "s390x", Model: "host", Vendor: "",
			Topology:    Topology{Sockets: 2, Dies: 0, Clusters: 0, Cores: 2, Threads: 1},
			NumFeatures: 0, FirstFeatures: nil,
			PageSizesKiB: []uint64{4, 1024},
			Cells: []cellSummary{
				{ID: 0, MemoryKiB: 2878860, NumCPUs: 4, FirstCPU: "0 s=0 d=- cl=- c=0 sib=0", LastCPU: "3 s=1 d=- cl=- c=1 sib=3", Distances: nil},
			},
			GuestArches: []arch.Arch{"s390x"},
			Guests: map[arch.Arch]guestSummary{
				"s390x": {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-s390x", DomainTypes: []string{"qemu", "kvm"}, Preferred: "kvm", NumMachines: 20, FirstNames: []string{"s390-ccw-virtio-6.1", "s390-ccw-virtio", "s390-ccw-virtio-4.0", "s390-ccw-virtio-5.2", "s390-ccw-virtio-3.1"}, Canonical: map[string]string{"s390-ccw-virtio": "s390-ccw-virtio-6.1"}, Deprecated: nil, FirstMaxCPUs: 248},
			},
		},
	},
	{
		file: "libvirt-caps/virt-manager-kvm-x86_64-domcaps-latest.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-x86_64", Domain: "kvm", Machine: "pc-q35-9.0", Arch: "x86_64", MaxVCPUs: 4096, IOThreads: true,
			Firmware:        []string{"efi"},
			Loaders:         []string{"/usr/share/edk2/ovmf/OVMF_CODE_4M.secboot.qcow2", "/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd", "/usr/share/edk2/ovmf/OVMF_CODE_4M.qcow2", "/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF.amdsev.fd", "/usr/share/edk2/ovmf/OVMF.inteltdx.secboot.fd"},
			HostPassthrough: true, Maximum: true,
			HostModel:       HostModel{Supported: true, Model: "Skylake-Client-IBRS", Vendor: "Intel", Fallback: "forbid"},
			CustomSupported: true, NumCustom: 55, NumUsable: 28,
			FirstCustom: []CPUModel{
				{Name: "qemu64", Usable: "yes", Vendor: "unknown", Canonical: "", Deprecated: false},
				{Name: "qemu32", Usable: "yes", Vendor: "unknown", Canonical: "", Deprecated: false},
				{Name: "phenom", Usable: "no", Vendor: "AMD", Canonical: "", Deprecated: false},
			},
			FirstUsable:      []string{"qemu64", "qemu32", "pentium3", "pentium2", "pentium", "n270", "kvm64", "kvm32"},
			DeprecatedCustom: []string{"Icelake-Client-noTSX", "Icelake-Client"},
			Graphics:         []string{"sdl", "vnc", "spice", "egl-headless", "dbus"},
			Video:            []string{"vga", "cirrus", "vmvga", "qxl", "virtio", "none", "bochs", "ramfb"},
			DiskBuses:        []string{"fdc", "scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "floppy", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           []string{"isa", "hyperv", "pvpanic"},
			TPMModels:        []string{"tpm-tis", "tpm-crb"},
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "panic", "redirdev", "rng", "tpm", "video"},
			Features:         []string{"vmcoreinfo", "genid", "backingStoreInput", "backup", "async-teardown", "hyperv"},
		},
	},
	{
		file: "libvirt-caps/virt-manager-kvm-x86_64.xml",
		caps: &capsSummary{
			UUID: "c4271571-d892-4ec0-9034-ef2ebc38c943", Arch: "x86_64", Model: "Skylake-Client-noTSX-IBRS", Vendor: "Intel",
			Topology:    Topology{Sockets: 1, Dies: 1, Clusters: 0, Cores: 4, Threads: 2},
			NumFeatures: 25, FirstFeatures: []string{"ds", "acpi", "ss"},
			PageSizesKiB: []uint64{4, 2048, 1048576},
			Cells: []cellSummary{
				{ID: 0, MemoryKiB: 32731708, NumCPUs: 8, FirstCPU: "0 s=0 d=0 cl=- c=0 sib=0,4", LastCPU: "7 s=0 d=0 cl=- c=3 sib=3,7", Distances: map[int]int{0: 10}},
			},
			GuestArches: []arch.Arch{"armv6l", "armv7l", "aarch64", "i686", "ppc", "ppc64", "ppc64le", "s390x", "x86_64"},
			Guests: map[arch.Arch]guestSummary{
				"armv6l":  {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-arm", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 92, FirstNames: []string{"integratorcp", "ast2600-evb", "borzoi", "spitz", "virt-2.7"}, Canonical: map[string]string{"virt": "virt-6.1", "raspi2": "raspi2b"}, Deprecated: []string{"swift-bmc"}, FirstMaxCPUs: 1},
				"armv7l":  {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-arm", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 92, FirstNames: []string{"integratorcp", "ast2600-evb", "borzoi", "spitz", "virt-2.7"}, Canonical: map[string]string{"virt": "virt-6.1", "raspi2": "raspi2b"}, Deprecated: []string{"swift-bmc"}, FirstMaxCPUs: 1},
				"aarch64": {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-aarch64", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 98, FirstNames: []string{"integratorcp", "ast2600-evb", "borzoi", "spitz", "virt-2.7"}, Canonical: map[string]string{"virt": "virt-6.1", "raspi3": "raspi3b", "raspi2": "raspi2b"}, Deprecated: []string{"swift-bmc"}, FirstMaxCPUs: 1},
				"i686":    {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-i386", DomainTypes: []string{"qemu", "kvm"}, Preferred: "kvm", NumMachines: 56, FirstNames: []string{"pc-i440fx-6.1", "pc", "pc-q35-5.2", "pc-i440fx-2.12", "pc-i440fx-2.0"}, Canonical: map[string]string{"pc": "pc-i440fx-6.1", "q35": "pc-q35-6.1", "xenfv": "xenfv-3.1"}, Deprecated: nil, FirstMaxCPUs: 255},
				"ppc":     {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-ppc", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 11, FirstNames: []string{"g3beige", "virtex-ml507", "mac99", "ppce500", "sam460ex"}, Canonical: nil, Deprecated: nil, FirstMaxCPUs: 1},
				"ppc64":   {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-ppc64", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 39, FirstNames: []string{"pseries-6.1", "pseries", "powernv9", "powernv", "taihu"}, Canonical: map[string]string{"pseries": "pseries-6.1", "powernv": "powernv9"}, Deprecated: nil, FirstMaxCPUs: 2147483647},
				"ppc64le": {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-ppc64", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 39, FirstNames: []string{"pseries-6.1", "pseries", "powernv9", "powernv", "taihu"}, Canonical: map[string]string{"pseries": "pseries-6.1", "powernv": "powernv9"}, Deprecated: nil, FirstMaxCPUs: 2147483647},
				"s390x":   {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-s390x", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 20, FirstNames: []string{"s390-ccw-virtio-6.1", "s390-ccw-virtio", "s390-ccw-virtio-4.0", "s390-ccw-virtio-5.2", "s390-ccw-virtio-3.1"}, Canonical: map[string]string{"s390-ccw-virtio": "s390-ccw-virtio-6.1"}, Deprecated: nil, FirstMaxCPUs: 248},
				"x86_64":  {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-x86_64", DomainTypes: []string{"qemu", "kvm"}, Preferred: "kvm", NumMachines: 56, FirstNames: []string{"pc-i440fx-6.1", "pc", "pc-q35-5.2", "pc-i440fx-2.12", "pc-i440fx-2.0"}, Canonical: map[string]string{"pc": "pc-i440fx-6.1", "q35": "pc-q35-6.1", "xenfv": "xenfv-3.1"}, Deprecated: nil, FirstMaxCPUs: 255},
			},
		},
	},
	{
		file: "libvirt-caps/virt-manager-test-qemu-no-kvm.xml",
		caps: &capsSummary{
			UUID: "", Arch: "x86_64", Model: "core2duo", Vendor: "",
			Topology:    Topology{Sockets: 1, Dies: 0, Clusters: 0, Cores: 2, Threads: 1},
			NumFeatures: 13, FirstFeatures: []string{"lahf_lm", "xtpr", "cx16"},
			PageSizesKiB: nil,
			Cells: []cellSummary{
				{ID: 0, MemoryKiB: 0, NumCPUs: 2, FirstCPU: "0 s=- d=- cl=- c=- sib=-", LastCPU: "1 s=- d=- cl=- c=- sib=-", Distances: nil},
			},
			GuestArches: []arch.Arch{"i686", "x86_64", "arm", "mips", "mipsel", "sparc", "ppc"},
			Guests: map[arch.Arch]guestSummary{
				"i686":   {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 5, FirstNames: []string{"pc-0.12", "pc", "pc-0.11", "pc-0.10", "isapc"}, Canonical: map[string]string{"pc": "pc-0.12"}, Deprecated: nil, FirstMaxCPUs: 0},
				"x86_64": {OSType: "hvm", WordSize: 64, Emulator: "/usr/bin/qemu-system-x86_64", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 5, FirstNames: []string{"pc-0.12", "pc", "pc-0.11", "pc-0.10", "isapc"}, Canonical: map[string]string{"pc": "pc-0.12"}, Deprecated: nil, FirstMaxCPUs: 0},
				"arm":    {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-arm", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 24, FirstNames: []string{"integratorcp", "syborg", "musicpal", "mainstone", "n800"}, Canonical: nil, Deprecated: nil, FirstMaxCPUs: 0},
				"mips":   {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-mips", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 5, FirstNames: []string{"malta", "mipssim", "magnum", "pica61", "mips"}, Canonical: nil, Deprecated: nil, FirstMaxCPUs: 0},
				"mipsel": {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-mipsel", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 5, FirstNames: []string{"malta", "mipssim", "magnum", "pica61", "mips"}, Canonical: nil, Deprecated: nil, FirstMaxCPUs: 0},
				"sparc":  {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-sparc", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 12, FirstNames: []string{"SS-5", "SS-10", "SS-600MP", "SS-20", "Voyager"}, Canonical: nil, Deprecated: nil, FirstMaxCPUs: 0},
				"ppc":    {OSType: "hvm", WordSize: 32, Emulator: "/usr/bin/qemu-system-ppc", DomainTypes: []string{"qemu"}, Preferred: "qemu", NumMachines: 7, FirstNames: []string{"g3beige", "mpc8544ds", "bamboo", "ref405ep", "taihu"}, Canonical: nil, Deprecated: nil, FirstMaxCPUs: 0},
			},
		},
	},
	{
		file: "libvirt-domcaps/debian12-libvirt9-qemu7.2-tcg.ppc64.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-ppc64", Domain: "qemu", Machine: "pseries-7.2", Arch: "ppc64", MaxVCPUs: 4096, IOThreads: true,
			Firmware:        nil,
			Loaders:         nil,
			HostPassthrough: false, Maximum: false,
			HostModel:       HostModel{Supported: false, Model: "", Vendor: "", Fallback: ""},
			CustomSupported: true, NumCustom: 4, NumUsable: 0,
			FirstCustom: []CPUModel{
				{Name: "POWER10", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "POWER9", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "POWER8", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
			},
			FirstUsable:      nil,
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "spice", "egl-headless", "dbus"},
			Video:            []string{"vga", "cirrus", "vmvga", "virtio", "none", "bochs"},
			DiskBuses:        []string{"scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           nil,
			TPMModels:        []string{"tpm-spapr", "spapr-tpm-proxy"},
			Devices:          []string{"channel", "disk", "filesystem", "graphics", "hostdev", "redirdev", "rng", "tpm", "video"},
			Features:         []string{"backingStoreInput", "backup"},
		},
	},
	{
		file: "libvirt-domcaps/qemu_4.2.0.ppc64.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-ppc64", Domain: "kvm", Machine: "pseries-4.2", Arch: "ppc64", MaxVCPUs: 1024, IOThreads: true,
			Firmware:        nil,
			Loaders:         []string{"/obviously/fake/firmware1.fd", "/obviously/fake/firmware2.fd"},
			HostPassthrough: true, Maximum: true,
			HostModel:       HostModel{Supported: true, Model: "POWER8", Vendor: "", Fallback: "allow"},
			CustomSupported: true, NumCustom: 3, NumUsable: 0,
			FirstCustom: []CPUModel{
				{Name: "POWER9", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "POWER8", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "POWER7", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
			},
			FirstUsable:      nil,
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "egl-headless"},
			Video:            []string{"vga", "cirrus", "vmvga", "virtio", "none", "bochs"},
			DiskBuses:        []string{"scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           nil,
			TPMModels:        []string{"spapr-tpm-proxy"},
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "interface", "rng", "tpm", "video"},
			Features:         []string{"backingStoreInput"},
		},
	},
	{
		file: "libvirt-domcaps/qemu_5.0.0.ppc64.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-ppc64", Domain: "kvm", Machine: "pseries-5.0", Arch: "ppc64", MaxVCPUs: 1024, IOThreads: true,
			Firmware:        nil,
			Loaders:         []string{"/obviously/fake/firmware1.fd", "/obviously/fake/firmware2.fd"},
			HostPassthrough: true, Maximum: true,
			HostModel:       HostModel{Supported: true, Model: "POWER8", Vendor: "", Fallback: "allow"},
			CustomSupported: true, NumCustom: 4, NumUsable: 0,
			FirstCustom: []CPUModel{
				{Name: "POWER10", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "POWER9", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "POWER8", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
			},
			FirstUsable:      nil,
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "egl-headless"},
			Video:            []string{"vga", "cirrus", "vmvga", "virtio", "none", "bochs"},
			DiskBuses:        []string{"scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           nil,
			TPMModels:        []string{"tpm-spapr", "spapr-tpm-proxy"},
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "interface", "rng", "tpm", "video"},
			Features:         []string{"backingStoreInput"},
		},
	},
	{
		file: "libvirt-domcaps/qemu_7.1.0.ppc64.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-ppc64", Domain: "kvm", Machine: "pseries-7.1", Arch: "ppc64", MaxVCPUs: 2147483647, IOThreads: true,
			Firmware:        nil,
			Loaders:         []string{"/obviously/fake/firmware1.fd", "/obviously/fake/firmware2.fd"},
			HostPassthrough: true, Maximum: false,
			HostModel:       HostModel{Supported: true, Model: "POWER8", Vendor: "", Fallback: "allow"},
			CustomSupported: true, NumCustom: 4, NumUsable: 0,
			FirstCustom: []CPUModel{
				{Name: "POWER10", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "POWER7", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "POWER8", Usable: "unknown", Vendor: "IBM", Canonical: "", Deprecated: false},
			},
			FirstUsable:      nil,
			DeprecatedCustom: nil,
			Graphics:         []string{"vnc"},
			Video:            []string{"vga", "cirrus", "vmvga", "virtio", "none", "bochs"},
			DiskBuses:        []string{"scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           []string{"pseries", "pvpanic"},
			TPMModels:        []string{"tpm-spapr", "spapr-tpm-proxy"},
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "interface", "panic", "redirdev", "rng", "tpm", "video"},
			Features:         []string{"backingStoreInput", "backup"},
		},
	},
	{
		file: "libvirt-domcaps/qemu_8.2.0-virt.aarch64.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-aarch64", Domain: "kvm", Machine: "virt-8.2", Arch: "aarch64", MaxVCPUs: 512, IOThreads: true,
			Firmware:        []string{"efi"},
			Loaders:         []string{"/obviously/fake/firmware1.fd", "/obviously/fake/firmware2.fd"},
			HostPassthrough: true, Maximum: true,
			HostModel:       HostModel{Supported: false, Model: "", Vendor: "", Fallback: ""},
			CustomSupported: true, NumCustom: 47, NumUsable: 0,
			FirstCustom: []CPUModel{
				{Name: "a64fx", Usable: "unknown", Vendor: "unknown", Canonical: "", Deprecated: false},
				{Name: "arm1026", Usable: "unknown", Vendor: "unknown", Canonical: "", Deprecated: false},
				{Name: "arm1136", Usable: "unknown", Vendor: "unknown", Canonical: "", Deprecated: false},
			},
			FirstUsable:      nil,
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "rdp", "egl-headless", "dbus"},
			Video:            []string{"vga", "cirrus", "virtio", "none", "bochs", "ramfb"},
			DiskBuses:        []string{"fdc", "scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "floppy", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           []string{"pvpanic"},
			TPMModels:        []string{"tpm-tis"},
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "interface", "panic", "redirdev", "rng", "tpm", "video"},
			Features:         []string{"gic", "vmcoreinfo", "backingStoreInput", "backup", "async-teardown"},
		},
	},
	{
		file: "libvirt-domcaps/qemu_9.2.0-q35.x86_64.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-x86_64", Domain: "kvm", Machine: "pc-q35-9.2", Arch: "x86_64", MaxVCPUs: 4096, IOThreads: true,
			Firmware:        []string{"bios", "efi"},
			Loaders:         []string{"/obviously/fake/firmware1.fd", "/obviously/fake/firmware2.fd"},
			HostPassthrough: true, Maximum: true,
			HostModel:       HostModel{Supported: true, Model: "EPYC-Rome", Vendor: "AMD", Fallback: "forbid"},
			CustomSupported: true, NumCustom: 145, NumUsable: 38,
			FirstCustom: []CPUModel{
				{Name: "486", Usable: "yes", Vendor: "unknown", Canonical: "486-v1", Deprecated: false},
				{Name: "486-v1", Usable: "yes", Vendor: "unknown", Canonical: "", Deprecated: false},
				{Name: "Broadwell", Usable: "no", Vendor: "Intel", Canonical: "Broadwell-v1", Deprecated: false},
			},
			FirstUsable:      []string{"486", "486-v1", "Conroe", "Conroe-v1", "Dhyana", "Dhyana-v1", "EPYC", "EPYC-IBPB"},
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "rdp", "spice", "egl-headless", "dbus"},
			Video:            []string{"vga", "cirrus", "vmvga", "qxl", "virtio", "none", "bochs", "ramfb"},
			DiskBuses:        []string{"fdc", "scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "floppy", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           []string{"isa", "hyperv", "pvpanic"},
			TPMModels:        []string{"tpm-tis", "tpm-crb"},
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "interface", "panic", "redirdev", "rng", "tpm", "video"},
			Features:         []string{"vmcoreinfo", "genid", "backingStoreInput", "backup", "async-teardown", "ps2", "hyperv"},
		},
	},
	{
		file: "libvirt-domcaps/qemu_9.2.0-tcg.x86_64.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-x86_64", Domain: "qemu", Machine: "pc-i440fx-9.2", Arch: "x86_64", MaxVCPUs: 255, IOThreads: true,
			Firmware:        []string{"bios", "efi"},
			Loaders:         []string{"/obviously/fake/firmware1.fd", "/obviously/fake/firmware2.fd"},
			HostPassthrough: false, Maximum: true,
			HostModel:       HostModel{Supported: true, Model: "EPYC", Vendor: "AMD", Fallback: "forbid"},
			CustomSupported: true, NumCustom: 145, NumUsable: 36,
			FirstCustom: []CPUModel{
				{Name: "486", Usable: "yes", Vendor: "unknown", Canonical: "486-v1", Deprecated: false},
				{Name: "486-v1", Usable: "yes", Vendor: "unknown", Canonical: "", Deprecated: false},
				{Name: "Broadwell", Usable: "no", Vendor: "Intel", Canonical: "Broadwell-v1", Deprecated: false},
			},
			FirstUsable:      []string{"486", "486-v1", "Conroe", "Conroe-v1", "Nehalem", "Nehalem-v1", "Opteron_G1", "Opteron_G1-v1"},
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "rdp", "spice", "egl-headless", "dbus"},
			Video:            []string{"vga", "cirrus", "vmvga", "qxl", "virtio", "none", "bochs", "ramfb"},
			DiskBuses:        []string{"ide", "fdc", "scsi", "virtio", "usb", "sata"},
			DiskDevices:      []string{"disk", "cdrom", "floppy", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           []string{"isa", "hyperv", "pvpanic"},
			TPMModels:        []string{"tpm-tis", "tpm-crb"},
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "interface", "panic", "redirdev", "rng", "tpm", "video"},
			Features:         []string{"vmcoreinfo", "genid", "backingStoreInput", "backup", "async-teardown", "ps2", "hyperv"},
		},
	},
	{
		file: "libvirt-domcaps/qemu_9.2.0.s390x.xml",
		domcaps: &domcapsSummary{
			Emulator: "/usr/bin/qemu-system-s390x", Domain: "kvm", Machine: "s390-ccw-virtio-9.2", Arch: "s390x", MaxVCPUs: 248, IOThreads: true,
			Firmware:        nil,
			Loaders:         []string{"/obviously/fake/firmware1.fd", "/obviously/fake/firmware2.fd"},
			HostPassthrough: true, Maximum: true,
			HostModel:       HostModel{Supported: true, Model: "gen16a-base", Vendor: "", Fallback: "forbid"},
			CustomSupported: true, NumCustom: 78, NumUsable: 78,
			FirstCustom: []CPUModel{
				{Name: "gen15a", Usable: "yes", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "gen15a-base", Usable: "yes", Vendor: "IBM", Canonical: "", Deprecated: false},
				{Name: "gen15b", Usable: "yes", Vendor: "IBM", Canonical: "", Deprecated: false},
			},
			FirstUsable:      []string{"gen15a", "gen15a-base", "gen15b", "gen15b-base", "gen16a", "gen16a-base", "gen16b", "gen16b-base"},
			DeprecatedCustom: nil,
			Graphics:         []string{"sdl", "vnc", "rdp", "egl-headless", "dbus"},
			Video:            []string{"virtio", "none"},
			DiskBuses:        []string{"fdc", "scsi", "virtio", "usb"},
			DiskDevices:      []string{"disk", "cdrom", "floppy", "lun"},
			RNGModels:        []string{"virtio", "virtio-transitional", "virtio-non-transitional"},
			Panics:           []string{"s390"},
			TPMModels:        nil,
			Devices:          []string{"channel", "crypto", "disk", "filesystem", "graphics", "hostdev", "interface", "panic", "redirdev", "rng", "video"},
			Features:         []string{"backingStoreInput", "backup", "async-teardown", "s390-pv", "launchSecurity"},
		},
	},
}

func TestCorpusConformance(t *testing.T) {
	dir := requireCorpus(t)
	files := corpusXMLFiles(t, dir)
	if len(files) == 0 {
		t.Fatalf("no libvirt XML files under %s", dir)
	}
	want := map[string]int{}
	for i, c := range corpusCases {
		want[c.file] = i
	}
	for _, f := range files {
		if _, ok := want[f]; !ok {
			t.Errorf("corpus file %s has no expectation in corpusCases: read it and add one", f)
		}
	}
	for _, c := range corpusCases {
		t.Run(c.file, func(t *testing.T) {
			if !slices.Contains(files, c.file) {
				t.Fatalf("expected corpus file %s is missing from %s", c.file, dir)
			}
			data, err := os.ReadFile(filepath.Join(dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if (c.domcaps != nil) != isDomCapsFile(c.file) {
				t.Fatalf("table says domcaps=%v for %s, its name says otherwise", c.domcaps != nil, c.file)
			}
			if c.caps != nil {
				got, err := ParseCapabilities(data)
				if err != nil {
					t.Fatalf("ParseCapabilities: %v", err)
				}
				if diff := cmp.Diff(c.caps, summarizeCaps(got)); diff != "" {
					t.Errorf("capabilities mismatch (-want +got):\n%s", diff)
				}
				// The other parser must refuse it by its root element.
				if _, err := ParseDomainCapabilities(data); err == nil || !strings.Contains(err.Error(), "root element is <capabilities>") {
					t.Errorf("ParseDomainCapabilities on a capabilities document: err = %v, want a root element error", err)
				}
				return
			}
			got, err := ParseDomainCapabilities(data)
			if err != nil {
				t.Fatalf("ParseDomainCapabilities: %v", err)
			}
			if diff := cmp.Diff(c.domcaps, summarizeDomCaps(got)); diff != "" {
				t.Errorf("domcapabilities mismatch (-want +got):\n%s", diff)
			}
			if _, err := ParseCapabilities(data); err == nil || !strings.Contains(err.Error(), "root element is <domainCapabilities>") {
				t.Errorf("ParseCapabilities on a domcapabilities document: err = %v, want a root element error", err)
			}
		})
	}
}

// TestCorpusVDSMFacts checks, on the corpus, the facts the host report is
// built from, as the reference documents state them.
func TestCorpusVDSMFacts(t *testing.T) {
	dir := requireCorpus(t)
	readCaps := func(t *testing.T, rel string) *Capabilities {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCapabilities(data)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	readDom := func(t *testing.T, rel string) *DomainCaps {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseDomainCapabilities(data)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("debian12 TCG host: ppc guests without kvm fall back to arch-level machines", func(t *testing.T) {
		c := readCaps(t, "libvirt-caps/debian12-libvirt9-tcg-x86_64-host.xml")
		if diff := cmp.Diff([]arch.Arch{"i686", "ppc", "ppc64", "ppc64le", "x86_64"}, c.GuestArches()); diff != "" {
			t.Errorf("guest arches (-want +got):\n%s", diff)
		}
		for _, a := range []arch.Arch{arch.PPC64, arch.PPC64LE} {
			if c.HasDomainType(a, "kvm") {
				t.Errorf("%s: kvm domain reported; the file lists only qemu", a)
			}
			names := c.MachineNames(a, "kvm")
			for _, m := range []string{"pseries", "pseries-7.2", "powernv", "powernv9", "pseries-2.12-sxxm"} {
				if !slices.Contains(names, m) {
					t.Errorf("%s: machine %q missing from %v", a, m, names)
				}
			}
			if got := c.Emulator(a, "qemu"); got != "/usr/bin/qemu-system-"+string(a) {
				t.Errorf("%s: emulator %q", a, got)
			}
		}
		// x86_64 and i686 do list a kvm domain here (/dev/kvm exists,
		// unusable): libvirt says so, we report it.
		if !c.HasDomainType(arch.X86_64, "kvm") {
			t.Error("x86_64: kvm domain missing")
		}
		names := c.MachineNames(arch.X86_64, "kvm")
		for _, m := range []string{"pc", "pc-i440fx-7.2", "q35", "pc-q35-7.2", "microvm"} {
			if !slices.Contains(names, m) {
				t.Errorf("x86_64: machine %q missing", m)
			}
		}
	})

	t.Run("x86_64 Skylake host", func(t *testing.T) {
		c := readCaps(t, "libvirt-caps/virt-manager-kvm-x86_64.xml")
		ms := c.EmulatedMachines(arch.X86_64, "kvm")
		idx := slices.IndexFunc(ms, func(m Machine) bool { return m.Name == "q35" })
		if idx < 0 || ms[idx].Canonical != "pc-q35-6.1" || ms[idx].MaxCPUs != 288 {
			t.Errorf("q35 machine: got %+v", ms[max(idx, 0)])
		}
		if got := c.MachineNames(arch.S390X, "kvm"); len(got) != 20 || got[0] != "s390-ccw-virtio-6.1" || got[1] != "s390-ccw-virtio" {
			t.Errorf("s390x names on the x86_64 host: %v", got)
		}
	})

	t.Run("ppc64 domcaps: host-model and models", func(t *testing.T) {
		for _, f := range []string{"qemu_4.2.0.ppc64.xml", "qemu_5.0.0.ppc64.xml", "qemu_7.1.0.ppc64.xml"} {
			d := readDom(t, "libvirt-domcaps/"+f)
			if got := d.HostModelName(); got != "POWER8" {
				t.Errorf("%s: host-model %q, want POWER8", f, got)
			}
			if got := d.UsableCustomModels(); got != nil {
				t.Errorf("%s: usable custom models %v, want none (all usable='unknown')", f, got)
			}
			if got := d.CustomModelNames(); !slices.Contains(got, "POWER9") || !slices.Contains(got, "POWER8") {
				t.Errorf("%s: custom models %v lack POWER8/POWER9", f, got)
			}
			if slices.Contains(d.Graphics, "spice") {
				t.Errorf("%s: spice listed: %v", f, d.Graphics)
			}
		}
		d := readDom(t, "libvirt-domcaps/debian12-libvirt9-qemu7.2-tcg.ppc64.xml")
		if d.HostModelName() != "" {
			t.Errorf("TCG ppc64: host-model %q, want none (unsupported)", d.HostModelName())
		}
		if diff := cmp.Diff([]string{"POWER10", "POWER9", "POWER8", "POWER7"}, d.CustomModelNames()); diff != "" {
			t.Errorf("TCG ppc64 custom models (-want +got):\n%s", diff)
		}
	})

	t.Run("x86_64 domcaps: usable models", func(t *testing.T) {
		d := readDom(t, "libvirt-caps/virt-manager-kvm-x86_64-domcaps-latest.xml")
		u := d.UsableCustomModels()
		if len(u) != 28 || !slices.Contains(u, "Skylake-Client-noTSX-IBRS") || slices.Contains(u, "Skylake-Client-IBRS") || slices.Contains(u, "phenom") {
			t.Errorf("usable models: %v", u)
		}
		if d.HostModelName() != "Skylake-Client-IBRS" {
			t.Errorf("host-model %q", d.HostModelName())
		}
	})
}

func TestFromDocumentsCorpus(t *testing.T) {
	dir := requireCorpus(t)
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	live, err := FromDocuments(read("libvirt-caps/debian12-libvirt9-tcg-x86_64-host.xml"), [][]byte{
		read("libvirt-domcaps/debian12-libvirt9-qemu7.2-tcg.ppc64.xml"),
		read("libvirt-domcaps/qemu_9.2.0-tcg.x86_64.xml"),
		read("libvirt-domcaps/qemu_7.1.0.ppc64.xml"),
	})
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Arch             arch.Arch
		Emulator, Domain string
		Machine          string
	}
	var got []entry
	for _, e := range live.DomainCaps {
		got = append(got, entry{e.Arch, e.Emulator, e.DomainType, e.Caps.Machine})
		if e.Err != "" || e.XML == "" {
			t.Errorf("%s: err %q, xml %d bytes", e.Arch, e.Err, len(e.XML))
		}
	}
	want := []entry{
		{"ppc64", "/usr/bin/qemu-system-ppc64", "qemu", "pseries-7.2"},
		{"x86_64", "/usr/bin/qemu-system-x86_64", "qemu", "pc-i440fx-9.2"},
		{"ppc64", "/usr/bin/qemu-system-ppc64", "kvm", "pseries-7.1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if d := live.DomainCapsFor(arch.PPC64); d == nil || d.Machine != "pseries-7.2" {
		t.Errorf("DomainCapsFor(ppc64) = %+v, want the first ppc64 document", d)
	}
	if d := live.DomainCapsFor(arch.AArch64); d != nil {
		t.Errorf("DomainCapsFor(aarch64) = %+v, want nil", d)
	}
	if live.Capabilities == nil || live.Capabilities.HostCPUModel != "kvm64" || live.CapabilitiesXML == "" {
		t.Errorf("capabilities not kept: %+v", live.Capabilities)
	}

	// A broken document names its position.
	_, err = FromDocuments(nil, [][]byte{read("libvirt-domcaps/qemu_7.1.0.ppc64.xml"), []byte("<domainCapabilities><arch>")})
	var de *DocumentError
	if !errors.As(err, &de) || de.Index != 1 || !strings.Contains(err.Error(), "domcapabilities document #2") {
		t.Errorf("broken second document: err = %v", err)
	}
	// A capabilities file given as domcapabilities is refused.
	_, err = FromDocuments(nil, [][]byte{read("libvirt-caps/virt-manager-kvm-s390x.xml")})
	if err == nil || !strings.Contains(err.Error(), "root element is <capabilities>, want <domainCapabilities>") {
		t.Errorf("capabilities given as domcaps: err = %v", err)
	}
}
