package caps

import (
	"strconv"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
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
	// Profile, when set, names the built-in profile the host was read
	// from; a profile host is always a fake-KVM host of its own arch.
	Profile string
	// Source says what was read ("live", "root:DIR", "profile:NAME").
	Source string
}

// Build joins the inputs into a report.
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
	r.FakeKVM = in.FakeArch != arch.Unknown || in.Profile != ""
	r.Profile = in.Profile

	realSpec, _ := archspec.For(h.Arch)
	effSpec, _ := archspec.For(effective)

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
	r.MemoryMiB = h.MemTotalKiB / 1024
	if realSpec != nil {
		r.Pages = hostreport.Pages{BaseKiB: realSpec.Pages.BaseKiB, HugePageKiB: realSpec.Pages.HugePageKiB}
	}

	// KVM: real usability of this host.
	if realSpec != nil {
		r.Virt.KVM, r.Virt.KVMReason = realSpec.KVMUsable(h.KVMDevice, h.CPU.Flags)
	} else {
		r.Virt.KVMReason = "no rules for architecture " + quoteOrUnknown(h.Arch)
	}
	if r.FakeKVM {
		r.Virt.KVM, r.Virt.KVMReason = false, "fake KVM: "+string(effective)+" guests run emulated by QEMU (TCG)"
	}
	r.Virt.DomainType = "qemu"
	if r.Virt.KVM {
		r.Virt.DomainType = "kvm"
	}

	libvirtPart(r, in, effective)
	flagsPart(r, h, in, realSpec, effSpec)

	for _, p := range h.Problems {
		r.Unavailable = append(r.Unavailable, hostreport.Problem{Field: p.Field, Path: p.Path, Reason: p.Reason})
	}
	if in.Libvirt == nil && in.LibvirtError != "" {
		r.Unavailable = append(r.Unavailable, hostreport.Problem{Field: "virt", Reason: in.LibvirtError})
	}
	return r
}

func quoteOrUnknown(a arch.Arch) string {
	if a == arch.Unknown {
		return "(unknown)"
	}
	return strconv.Quote(a.String())
}

func cpuOf(h *hostinfo.Host) hostreport.CPU {
	c := hostreport.CPU{
		Model:          h.CPU.Model,
		Vendor:         h.CPU.Vendor,
		MHz:            h.CPU.MHz,
		Revision:       h.CPU.Revision,
		PVR:            h.CPU.PVR,
		Platform:       h.CPU.Platform,
		Machine:        h.CPU.Machine,
		TotalCPUs:      h.Topology.TotalCPUs,
		OnlineCPUs:     ints(h.Topology.Online),
		OnlineCPUList:  h.Topology.Online.String(),
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

// flagsPart fills cpu.flags and cpu.models: the real flags with the vendor
// markers and one model_X per usable model, or, on a fake-KVM host without
// a profile, the architecture's fake values.
func flagsPart(r *hostreport.Report, h *hostinfo.Host, in Input, realSpec, effSpec *archspec.Spec) {
	if in.FakeArch != arch.Unknown && effSpec != nil {
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

func libvirtPart(r *hostreport.Report, in Input, effective arch.Arch) {
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
		gr := hostreport.Guest{Arch: g.Arch, DomainTypes: lv.Capabilities.DomainTypes(g.Arch), Emulator: g.Emulator}
		dt := bestDomainType(gr.DomainTypes, v.DomainType)
		gr.Machines = nonNil(lv.Capabilities.MachineNames(g.Arch, dt))
		if dc := lv.DomainCapsFor(g.Arch); dc != nil {
			spec, _ := archspec.For(g.Arch)
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
