package virtcaps

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
)

// ParseCapabilities parses a `virsh capabilities` document (root element
// <capabilities>). Hostile or broken input (more than MaxDocumentSize bytes,
// a DOCTYPE or ENTITY declaration, another root element, malformed XML, a
// value that is not a number where libvirt writes one) is a *ParseError
// naming the document kind, the line when known and the reason.
func ParseCapabilities(data []byte) (c *Capabilities, err error) {
	defer recoverParse(docCaps, &err)
	var doc libvirtxml.Caps
	if err := decodeDocument(docCaps, "capabilities", data, &doc); err != nil {
		return nil, err
	}
	return mapCapabilities(&doc)
}

func mapCapabilities(doc *libvirtxml.Caps) (*Capabilities, error) {
	fail := func(format string, args ...any) error {
		return &ParseError{Doc: docCaps, Reason: fmt.Sprintf(format, args...)}
	}
	c := &Capabilities{HostUUID: strings.TrimSpace(doc.Host.UUID)}
	if cpu := doc.Host.CPU; cpu != nil {
		c.HostArch = arch.Arch(strings.TrimSpace(cpu.Arch))
		c.HostCPUModel = strings.TrimSpace(cpu.Model)
		c.HostCPUVendor = strings.TrimSpace(cpu.Vendor)
		for _, f := range cpu.FeatureFlags {
			c.HostCPUFeatures = append(c.HostCPUFeatures, f.Name)
		}
		if t := cpu.Topology; t != nil {
			c.Topology = Topology{Sockets: t.Sockets, Dies: t.Dies, Clusters: t.Clusters, Cores: t.Cores, Threads: t.Threads}
		}
		for _, p := range cpu.PageSizes {
			kib, err := toKiB(uint64(max(p.Size, 0)), p.Unit)
			if err != nil || p.Size < 0 {
				return nil, fail("host/cpu/pages size %d %s: %v", p.Size, p.Unit, errOr(err, "negative size"))
			}
			c.HostPageSizesKiB = append(c.HostPageSizesKiB, kib)
		}
	}
	if numa := doc.Host.NUMA; numa != nil && numa.Cells != nil {
		for _, dc := range numa.Cells.Cells {
			cell := Cell{ID: dc.ID}
			if m := dc.Memory; m != nil {
				kib, err := toKiB(m.Size, m.Unit)
				if err != nil {
					return nil, fail("cell %d memory: %v", dc.ID, err)
				}
				cell.MemoryKiB = kib
			}
			if dc.Distances != nil && len(dc.Distances.Siblings) > 0 {
				cell.Distances = make(map[int]int, len(dc.Distances.Siblings))
				for _, s := range dc.Distances.Siblings {
					cell.Distances[s.ID] = s.Value
				}
			}
			if dc.CPUS != nil {
				cell.CPUs = make([]CellCPU, 0, len(dc.CPUS.CPUs))
				for _, cp := range dc.CPUS.CPUs {
					cell.CPUs = append(cell.CPUs, CellCPU{
						ID:        cp.ID,
						SocketID:  cp.SocketID,
						DieID:     cp.DieID,
						ClusterID: cp.ClusterID,
						CoreID:    cp.CoreID,
						Siblings:  cp.Siblings,
					})
				}
			}
			c.Cells = append(c.Cells, cell)
		}
	}
	for i, dg := range doc.Guests {
		g := Guest{
			OSType:   strings.TrimSpace(dg.OSType),
			Arch:     arch.Arch(strings.TrimSpace(dg.Arch.Name)),
			Emulator: strings.TrimSpace(dg.Arch.Emulator),
			Machines: mapMachines(dg.Arch.Machines),
		}
		if ws := strings.TrimSpace(dg.Arch.WordSize); ws != "" {
			n, err := strconv.Atoi(ws)
			if err != nil || n < 0 {
				return nil, fail("guest %d (arch %q): wordsize %q is not a number", i+1, g.Arch, truncate(ws, 20))
			}
			g.WordSize = n
		}
		for _, dd := range dg.Arch.Domains {
			g.Domains = append(g.Domains, GuestDomain{
				Type:     strings.TrimSpace(dd.Type),
				Emulator: strings.TrimSpace(dd.Emulator),
				Machines: mapMachines(dd.Machines),
			})
		}
		c.Guests = append(c.Guests, g)
	}
	return c, nil
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}

func mapMachines(ms []libvirtxml.CapsGuestMachine) []Machine {
	if len(ms) == 0 {
		return nil
	}
	out := make([]Machine, 0, len(ms))
	for _, m := range ms {
		out = append(out, Machine{
			Name:       strings.TrimSpace(m.Name),
			Canonical:  strings.TrimSpace(m.Canonical),
			MaxCPUs:    m.MaxCPUs,
			Deprecated: m.Deprecated == "yes",
		})
	}
	return out
}

// toKiB converts a libvirt scaled size (unit as libvirt writes it: b,
// bytes, KiB, k, KB, MiB, M, MB, ... EiB; empty means KiB) to KiB, rounding
// bytes up.
func toKiB(v uint64, unit string) (uint64, error) {
	var mult uint64
	switch strings.TrimSpace(unit) {
	case "", "k", "K", "KiB", "kib":
		return v, nil
	case "b", "B", "bytes":
		return v/1024 + min(v%1024, 1), nil
	case "KB", "kB":
		mult = 1000
	case "M", "MiB":
		mult = 1 << 20
	case "MB":
		mult = 1000 * 1000
	case "G", "GiB":
		mult = 1 << 30
	case "GB":
		mult = 1000 * 1000 * 1000
	case "T", "TiB":
		mult = 1 << 40
	case "TB":
		mult = 1000 * 1000 * 1000 * 1000
	case "P", "PiB":
		mult = 1 << 50
	case "PB":
		mult = 1000 * 1000 * 1000 * 1000 * 1000
	case "E", "EiB":
		mult = 1 << 60
	case "EB":
		mult = 1000 * 1000 * 1000 * 1000 * 1000 * 1000
	default:
		return 0, fmt.Errorf("unknown unit %q", truncate(unit, 20))
	}
	hi, lo := bits.Mul64(v, mult)
	if hi != 0 || lo > math.MaxUint64-1023 {
		return 0, fmt.Errorf("size %d %s is too large", v, unit)
	}
	return (lo + 1023) / 1024, nil
}

// GuestArches lists the distinct guest architectures, in document order.
func (c *Capabilities) GuestArches() []arch.Arch {
	if c == nil {
		return nil
	}
	var out []arch.Arch
	seen := make(map[arch.Arch]bool, len(c.Guests))
	for _, g := range c.Guests {
		if !seen[g.Arch] {
			seen[g.Arch] = true
			out = append(out, g.Arch)
		}
	}
	return out
}

// DomainTypes lists the distinct domain types ("qemu", "kvm", ...) libvirt
// offers for guest architecture a, in document order.
func (c *Capabilities) DomainTypes(a arch.Arch) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, g := range c.Guests {
		if g.Arch != a {
			continue
		}
		for _, d := range g.Domains {
			if !contains(out, d.Type) {
				out = append(out, d.Type)
			}
		}
	}
	return out
}

// HasDomainType reports whether libvirt offers domain type t (e.g. "kvm")
// for guest architecture a.
func (c *Capabilities) HasDomainType(a arch.Arch, t string) bool {
	return contains(c.DomainTypes(a), t)
}

// PreferredDomainType is the domain type to ask domcapabilities for: "kvm"
// when libvirt lists a kvm domain for a, else "qemu" when it lists one,
// else the first type listed, else "" (a is not a guest architecture).
func (c *Capabilities) PreferredDomainType(a arch.Arch) string {
	types := c.DomainTypes(a)
	switch {
	case contains(types, "kvm"):
		return "kvm"
	case contains(types, "qemu"):
		return "qemu"
	case len(types) > 0:
		return types[0]
	}
	return ""
}

// Emulator is the emulator binary for guest architecture a and domain type
// domainType: the domain's own <emulator> when it has one, else the arch's.
// An empty domainType gives the arch's emulator. It is "" when libvirt
// lists no such guest.
func (c *Capabilities) Emulator(a arch.Arch, domainType string) string {
	if c == nil {
		return ""
	}
	for _, g := range c.Guests {
		if g.Arch != a {
			continue
		}
		if domainType == "" {
			return g.Emulator
		}
		for _, d := range g.Domains {
			if d.Type == domainType {
				if d.Emulator != "" {
					return d.Emulator
				}
				return g.Emulator
			}
		}
	}
	return ""
}

// EmulatedMachines follows VDSM's rule: the machines under
// guest/arch[@name=guestArch]/domain[@type=domainType] of the first guest
// that has such a domain; when that list is empty (or no guest has the
// domain type), the machines listed directly under the first
// guest/arch[@name=guestArch] (RHEL-built QEMU lists them there). An empty
// domainType gives the arch-level list. The result is a fresh slice, in
// document order; nil when the arch is not offered.
func (c *Capabilities) EmulatedMachines(guestArch arch.Arch, domainType string) []Machine {
	if c == nil {
		return nil
	}
	if domainType != "" {
	guests:
		for _, g := range c.Guests {
			if g.Arch != guestArch {
				continue
			}
			for _, d := range g.Domains {
				if d.Type == domainType {
					if len(d.Machines) > 0 {
						return append([]Machine(nil), d.Machines...)
					}
					break guests
				}
			}
		}
	}
	for _, g := range c.Guests {
		if g.Arch == guestArch {
			if len(g.Machines) == 0 {
				return nil
			}
			return append([]Machine(nil), g.Machines...)
		}
	}
	return nil
}

// MachineNames flattens EmulatedMachines into names: each machine's name
// followed by its canonical name, without duplicates, in document order
// (VDSM's emulatedMachines list, in a stable order).
func (c *Capabilities) MachineNames(guestArch arch.Arch, domainType string) []string {
	return machineNames(c.EmulatedMachines(guestArch, domainType))
}

func machineNames(ms []Machine) []string {
	if len(ms) == 0 {
		return nil
	}
	out := make([]string, 0, len(ms)+len(ms)/4)
	seen := make(map[string]bool, len(ms)+len(ms)/4)
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, m := range ms {
		add(m.Name)
		add(m.Canonical)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
