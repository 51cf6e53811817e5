package caps

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpuset"
	"polyvirt/internal/hostinfo"
	"polyvirt/internal/virtcaps"
)

// Input is everything a report is built from.
type Input struct {
	// Host is the hardware read through the root.
	Host *hostinfo.Host
	// Libvirt is nil when libvirt was not asked (LibvirtError says why, or
	// is empty when it was skipped on purpose).
	Libvirt      *virtcaps.Live
	LibvirtError string
	// CPUSource, when set, is where the usable CPU models are read from
	// instead of Libvirt: a profile host's own documents, when Libvirt is
	// the daemon that emulates it.
	CPUSource *virtcaps.Live
	// FakeArch, when set, is the effective architecture of a fake-KVM
	// host (VDSM's fake_kvm_architecture).
	FakeArch arch.Arch
	// FakeKVM tells that the host runs its guests in fake-KVM mode (under
	// TCG) even as its own architecture: an agent whose KVM cannot run
	// guests. FakeArch and Profile imply it.
	FakeKVM bool
	// Profile, when set, names the built-in profile the host was read
	// from; a profile host is always a fake-KVM host of its own arch.
	Profile string
	// Source says what was read ("live", "root:DIR", "profile:NAME").
	Source string
}

// Build joins the inputs into a report.
//
// A host that is the machine it runs on reports that machine's CPU (its
// model, vendor and flags), whether or not KVM can run its guests; when
// KVM cannot (no /dev/kvm, a CPU without what KVM needs, no kvm domain in
// libvirt's capabilities, fake-KVM mode) Virt.Virtualization is "tcg" and
// Virt.KVMReason says why. VDSM's fake-KVM CPU values (archspec's
// FakeCPUModel and FakeFlags) are reported only by a host that presents
// another architecture than the one it runs on, and CPU.FakeIdentity says
// so. A host that imitates another machine (a profile, another
// architecture) reports the guest architectures and machines that machine
// would offer a KVM guest (archspec KVMMachines), not every board the
// local QEMU emulates.
//
// When the root has no sys/devices/system/cpu (a captured root of
// cpuinfo and libvirt documents), the topology and the NUMA nodes come
// from libvirt's NUMA cells.
func Build(in Input) *hostreport.Report {
	h := in.Host
	if h == nil {
		h = &hostinfo.Host{}
	}
	r := &hostreport.Report{
		Arch:   h.Arch,
		Source: in.Source,
	}
	effective := h.Arch
	if in.FakeArch != arch.Unknown {
		effective = in.FakeArch
	}
	r.EffectiveArch = effective
	r.FakeKVM = in.FakeKVM || in.FakeArch != arch.Unknown || in.Profile != ""
	r.Profile = in.Profile

	realSpec, _ := archspec.For(h.Arch)
	effSpec, _ := archspec.For(effective)
	// pretends: the host presents an architecture it does not run
	// natively; imitates: it presents another machine than this one.
	pretends := in.FakeArch != arch.Unknown && (realSpec == nil || !realSpec.RunsNatively(in.FakeArch))
	imitates := pretends || in.Profile != ""

	r.Hardware = hostreport.Hardware{
		Manufacturer: h.Identity.Manufacturer,
		ProductName:  h.Identity.ProductName,
		Version:      h.Identity.Version,
		SerialNumber: h.Identity.SerialNumber,
		UUID:         h.Identity.UUID,
		Family:       h.Identity.Family,
		Model:        h.Identity.TypeModel,
		Source:       h.Identity.Source,
	}
	r.Firmware = make([]hostreport.Firmware, 0, len(h.Firmware))
	for _, f := range h.Firmware {
		r.Firmware = append(r.Firmware, hostreport.Firmware(f))
	}
	r.CPU = cpuOf(h)
	r.NUMA = make([]hostreport.NUMANode, 0, len(h.NUMA))
	for _, n := range h.NUMA {
		r.NUMA = append(r.NUMA, hostreport.NUMANode{ID: n.ID, CPUs: ints(n.CPUs), MemoryMiB: n.MemoryKiB / 1024, Distances: n.Distances})
	}
	fromCells := false
	if r.CPU.TopologySource == "" {
		if cells := cellsOf(in); len(cells) > 0 {
			r.NUMA = topologyFromCells(&r.CPU, cells)
			fromCells = true
		}
	}
	r.MemoryMiB = h.MemTotalKiB / 1024
	if realSpec != nil {
		r.Pages = hostreport.Pages{BaseKiB: realSpec.Pages.BaseKiB, HugePageKiB: realSpec.Pages.HugePageKiB}
	}

	kvmPart(r, h, in, realSpec, effective)
	libvirtPart(r, in, effective, imitates, effSpec)
	flagsPart(r, h, in, realSpec, effSpec, pretends)

	for _, p := range h.Problems {
		if fromCells && (p.Field == "topology" || p.Field == "numa") {
			// Read from libvirt's cells instead.
			continue
		}
		r.Unavailable = append(r.Unavailable, hostreport.Problem{Field: p.Field, Path: p.Path, Reason: p.Reason})
	}
	if in.Libvirt == nil && in.LibvirtError != "" {
		r.Unavailable = append(r.Unavailable, hostreport.Problem{Field: "virt", Reason: in.LibvirtError})
	}
	return r
}

// kvmPart decides whether KVM runs the guests, and why not.
func kvmPart(r *hostreport.Report, h *hostinfo.Host, in Input, realSpec *archspec.Spec, effective arch.Arch) {
	v := &r.Virt
	if realSpec != nil {
		v.KVM, v.KVMReason = realSpec.KVMUsable(h.KVMDevice, h.CPU.Flags)
	} else {
		v.KVMReason = "no rules for architecture " + quoteOrUnknown(h.Arch)
	}
	if v.KVM && !r.FakeKVM && in.Libvirt != nil && in.Libvirt.Capabilities != nil {
		caps := in.Libvirt.Capabilities
		kvm := false
		for _, g := range realSpec.GuestArches {
			kvm = kvm || caps.HasDomainType(g, "kvm")
		}
		if !kvm {
			v.KVM, v.KVMReason = false, fmt.Sprintf("libvirt's capabilities offer no kvm domain for %s guests (its QEMU cannot use /dev/kvm)", h.Arch)
		}
	}
	if r.FakeKVM && v.KVM {
		what := "fake KVM"
		if in.Profile != "" {
			what += " (profile " + in.Profile + ")"
		}
		v.KVM, v.KVMReason = false, what+": "+effective.String()+" guests run emulated by QEMU (TCG)"
	}
	v.DomainType, v.Virtualization = "qemu", "tcg"
	if v.KVM {
		v.DomainType, v.Virtualization = "kvm", "kvm"
	}
}

// cellsOf are the NUMA cells of the libvirt documents that describe the
// host itself (a profile's own when a daemon emulates it).
func cellsOf(in Input) []virtcaps.Cell {
	src := in.Libvirt
	if in.CPUSource != nil {
		src = in.CPUSource
	}
	if src == nil || src.Capabilities == nil {
		return nil
	}
	return src.Capabilities.Cells
}

// topologyFromCells fills the CPU topology from libvirt's NUMA cells, as
// VDSM counts: a CPU counts only where a cell gives its socket_id, core_id
// and siblings; sockets are the distinct socket ids, cores the distinct
// sibling lists, the online CPUs those CPUs. Threads per core is the
// largest sibling list. It returns the NUMA nodes of the cells (their
// counted CPUs, memory and distances).
func topologyFromCells(c *hostreport.CPU, cells []virtcaps.Cell) []hostreport.NUMANode {
	all := map[int]bool{}
	sockets := map[int]bool{}
	siblings := map[string]bool{}
	var online []int
	threads := 0
	nodes := make([]hostreport.NUMANode, 0, len(cells))
	for _, cell := range cells {
		node := hostreport.NUMANode{ID: cell.ID, CPUs: []int{}, MemoryMiB: cell.MemoryKiB / 1024}
		for _, cpu := range cell.CPUs {
			if all[cpu.ID] {
				continue // listed twice: counted where it came first
			}
			all[cpu.ID] = true
			if cpu.SocketID == nil || cpu.CoreID == nil || cpu.Siblings == "" {
				continue
			}
			sockets[*cpu.SocketID] = true
			if !siblings[cpu.Siblings] {
				siblings[cpu.Siblings] = true
				if set, err := cpuset.Parse(cpu.Siblings); err == nil {
					threads = max(threads, len(set))
				}
			}
			online = append(online, cpu.ID)
			node.CPUs = append(node.CPUs, cpu.ID)
		}
		sort.Ints(node.CPUs)
		if len(cell.Distances) > 0 {
			ids := make([]int, 0, len(cell.Distances))
			for id := range cell.Distances {
				ids = append(ids, id)
			}
			sort.Ints(ids)
			for _, id := range ids {
				node.Distances = append(node.Distances, cell.Distances[id])
			}
		}
		nodes = append(nodes, node)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	set := cpuset.Of(online...)
	c.TotalCPUs = len(all)
	c.OnlineCPUs = ints(set)
	c.OnlineCPUList = set.String()
	c.Sockets = len(sockets)
	if c.Sockets > 0 {
		c.CoresPerSocket = len(siblings) / c.Sockets
	}
	c.ThreadsPerCore = threads
	c.TopologySource = "libvirt"
	return nodes
}

func quoteOrUnknown(a arch.Arch) string {
	if a == arch.Unknown {
		return "(unknown)"
	}
	return strconv.Quote(a.String())
}

func cpuOf(h *hostinfo.Host) hostreport.CPU {
	c := hostreport.CPU{
		Model:         h.CPU.Model,
		Vendor:        h.CPU.Vendor,
		MHz:           mhzOf(h.CPU.MHz),
		Revision:      h.CPU.Revision,
		PVR:           h.CPU.PVR,
		Platform:      h.CPU.Platform,
		Machine:       h.CPU.Machine,
		TotalCPUs:     h.Topology.TotalCPUs,
		OnlineCPUs:    ints(h.Topology.Online),
		OnlineCPUList: h.Topology.Online.String(),
		// nil online CPUs: sysfs missing, or its online list unavailable.
		TopologySource: map[bool]string{true: "sysfs"}[h.Topology.Online != nil],
		Sockets:        h.Topology.Sockets,
		CoresPerSocket: h.Topology.CoresPerSocket,
		ThreadsPerCore: h.Topology.ThreadsPerCore,
		NodeInfo:       hostreport.NodeInfo(h.NodeInfo),
	}
	if len(h.CPU.Types) > 1 {
		for _, t := range h.CPU.Types {
			c.Types = append(c.Types, hostreport.CPUType{Model: t.Model, CPUs: t.CPUs.String(),
				ThreadsPerCore: t.ThreadsPerCore, CoresPerSocket: t.CoresPerSocket, Sockets: t.Sockets})
		}
	}
	return c
}

// mhzOf reads the clock as cpuinfo prints it ("3690.000000",
// "2533.402") as a number; 0 when it is not one.
func mhzOf(s string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return f
}

// flagsPart fills cpu.flags and cpu.models: the real flags with the vendor
// markers and one model_X per usable model, or, on a host presenting an
// architecture it does not run, the architecture's fake values (labelled
// in cpu.fakeIdentity).
func flagsPart(r *hostreport.Report, h *hostinfo.Host, in Input, realSpec, effSpec *archspec.Spec, pretends bool) {
	if pretends && effSpec != nil {
		real := strings.TrimSpace(h.CPU.Model + ", " + h.CPU.Vendor)
		if h.CPU.Model == "" && h.CPU.Vendor == "" {
			real = "unknown"
		}
		r.CPU.FakeIdentity = fmt.Sprintf("VDSM's fake-KVM CPU of a host presenting %s; the CPU it runs on is %s (%s)",
			effSpec.Arch, strings.Trim(real, ", "), quoteOrUnknown(h.Arch))
		r.CPU.Model = effSpec.Host.FakeCPUModel
		r.CPU.Flags = append([]string(nil), effSpec.Host.FakeFlags...)
		r.CPU.Models = modelsOfFlags(r.CPU.Flags)
		return
	}
	spec := realSpec
	if spec == nil {
		r.CPU.Flags = append([]string{}, h.CPU.Flags...)
		r.CPU.Models = []string{}
		return
	}
	flags := spec.HostFlags(h.CPU.Flags)
	var models []string
	src := in.Libvirt
	if in.CPUSource != nil {
		src = in.CPUSource
	}
	if dc := nativeDomainCaps(src, spec); dc != nil {
		models = spec.UsableCPUModels(hostModelOf(dc), usableModels(dc))
	}
	if models == nil {
		models = []string{}
	}
	r.CPU.Models = models
	r.CPU.Flags = append(flags, archspec.ModelFlags(models)...)
}

// nativeDomainCaps is the domcapabilities of the first guest architecture
// the host runs natively (a ppc64le host: ppc64le, else ppc64).
func nativeDomainCaps(lv *virtcaps.Live, spec *archspec.Spec) *virtcaps.DomainCaps {
	if lv == nil {
		return nil
	}
	for _, a := range spec.GuestArches {
		if dc := lv.DomainCapsFor(a); dc != nil {
			return dc
		}
	}
	return nil
}

func modelsOfFlags(flags []string) []string {
	out := []string{}
	for _, f := range flags {
		if len(f) > len("model_") && f[:len("model_")] == "model_" {
			out = append(out, f[len("model_"):])
		}
	}
	return out
}

func hostModelOf(dc *virtcaps.DomainCaps) string {
	if dc.CPU.HostModel.Supported {
		return dc.CPU.HostModel.Model
	}
	return ""
}

// usableModels lists the custom models a guest can get: usable='yes', and
// under TCG (domain type qemu) also 'unknown', since libvirt cannot check
// usability there and QEMU emulates every model it lists.
func usableModels(dc *virtcaps.DomainCaps) []string {
	if !dc.CPU.Custom.Supported {
		return nil
	}
	var out []string
	for _, m := range dc.CPU.Custom.Models {
		if m.Usable == "yes" || (dc.Domain == "qemu" && m.Usable == "unknown") {
			out = append(out, m.Name)
		}
	}
	return out
}

// libvirtPart fills what libvirt offers. A host that imitates another
// machine reports the guests that machine runs natively and, of each, the
// machines its KVM would offer.
func libvirtPart(r *hostreport.Report, in Input, effective arch.Arch, imitates bool, effSpec *archspec.Spec) {
	v := &r.Virt
	v.Guests = []hostreport.Guest{}
	v.EmulatedMachines = []string{}
	v.CPUModels = []string{}
	v.Graphics, v.Video, v.DiskBuses = []string{}, []string{}, []string{}
	lv := in.Libvirt
	if lv == nil {
		v.LibvirtError = in.LibvirtError
		return
	}
	v.Libvirt = true
	v.LibvirtVersion = lv.LibvirtVersion
	v.QEMUVersion = lv.QEMUVersion
	if lv.Capabilities == nil {
		return
	}
	errs := map[arch.Arch]string{}
	for _, d := range lv.DomainCaps {
		if d.Err != "" {
			errs[d.Arch] = d.Err
		}
	}
	seen := map[arch.Arch]bool{}
	for _, g := range lv.Capabilities.Guests {
		if seen[g.Arch] {
			continue
		}
		seen[g.Arch] = true
		spec, _ := archspec.For(g.Arch)
		if imitates && (effSpec == nil || !effSpec.RunsNatively(g.Arch)) {
			continue
		}
		gr := hostreport.Guest{Arch: g.Arch, DomainTypes: lv.Capabilities.DomainTypes(g.Arch), Emulator: g.Emulator}
		dt := bestDomainType(gr.DomainTypes, v.DomainType)
		gr.Machines = nonNil(lv.Capabilities.MachineNames(g.Arch, dt))
		if imitates && spec != nil {
			gr.Machines = spec.KVMMachines(gr.Machines)
		}
		if dc := lv.DomainCapsFor(g.Arch); dc != nil {
			gr.HostModel = hostModelOf(dc)
			if spec != nil {
				gr.CPUModels = spec.UsableCPUModels(gr.HostModel, usableModels(dc))
			} else {
				gr.CPUModels = usableModels(dc)
			}
			gr.Graphics, gr.Video, gr.DiskBuses = dc.Graphics, dc.Video, dc.DiskBuses
		}
		if e, ok := errs[g.Arch]; ok {
			gr.Error = e
		}
		v.Guests = append(v.Guests, gr)
		if g.Arch == effective {
			v.EmulatedMachines = gr.Machines
			if gr.CPUModels != nil {
				v.CPUModels = gr.CPUModels
			}
			v.HostModel = gr.HostModel
			if dc := lv.DomainCapsFor(g.Arch); dc != nil {
				v.Graphics, v.Video, v.DiskBuses = nonNil(dc.Graphics), nonNil(dc.Video), nonNil(dc.DiskBuses)
				v.InputBuses = dc.InputBuses
				v.CPUModes = cpuModes(dc)
			}
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func cpuModes(dc *virtcaps.DomainCaps) []string {
	var out []string
	if dc.CPU.HostPassthrough {
		out = append(out, "host-passthrough")
	}
	if dc.CPU.HostModel.Supported {
		out = append(out, "host-model")
	}
	if dc.CPU.Custom.Supported {
		out = append(out, "custom")
	}
	if dc.CPU.MaximumMode {
		out = append(out, "maximum")
	}
	return out
}

// bestDomainType is the preferred domain type if the guest has it, else
// qemu, else the first.
func bestDomainType(types []string, preferred string) string {
	for _, want := range []string{preferred, "qemu"} {
		if contains(types, want) {
			return want
		}
	}
	if len(types) > 0 {
		return types[0]
	}
	return ""
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func ints(s []int) []int {
	out := make([]int, len(s))
	copy(out, s)
	return out
}
