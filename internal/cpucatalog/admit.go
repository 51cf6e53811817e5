package cpucatalog

import (
	"fmt"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
)

// HostCPU is what admission needs to know of a host.
type HostCPU struct {
	// Name is the host's name, for the messages.
	Name string
	// Arch is the host's architecture (ppc64le, x86_64, ...).
	Arch arch.Arch
	// Flags is the host's flag list (vendor marker and model_X included).
	Flags []string
	// Emulated tells that the host's own KVM cannot run guests, so they
	// run under TCG (and the host presents no other machine): its flags
	// then lack the virtualization marker (vmx, svm) that puts it in its
	// vendor group, and Vendor (cpuinfo's vendor_id) names the group.
	Emulated bool
	Vendor   string
}

// ClusterCPU is what admission needs to know of a cluster.
type ClusterCPU struct {
	// Name is the cluster's name, for the messages.
	Name string
	// Arch is the cluster architecture, Unknown while undefined.
	Arch arch.Arch
	// CPUType is the name of the cluster's CPU type, "" while undefined.
	CPUType string
}

// Decision is the outcome of admitting a host into a cluster.
type Decision struct {
	// OK tells whether the host may be Up in the cluster.
	OK bool
	// Code and Message say why not ("" when OK).
	Code    string
	Message string
	// Missing are the flags of the cluster's CPU type the host lacks.
	Missing []string
	// Best is the host's best CPU type (zero when none matches).
	Best Type
	// SetArch and SetCPUType are set when the cluster had no CPU type: the
	// host is its first, and gives it its architecture and CPU type.
	SetArch    arch.Arch
	SetCPUType string
	// Note says how an emulated host's type was chosen ("" otherwise).
	Note string
}

// Admit applies the reference engine's rules, in order, when a host's
// flags or its cluster change:
//
//  1. no CPU type matches the flags at all → CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER;
//  2. the cluster has an architecture and the host's is another →
//     ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER;
//  3. the cluster has no CPU type yet → the host sets it (its best type)
//     and the architecture;
//  4. the host lacks a flag of the cluster's CPU type →
//     CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER naming the missing flags.
//
// The emulated machine (rule 5) is the engine's business: it needs the
// cluster's other hosts.
//
// A host whose guests run under TCG (HostCPU.Emulated) is of the vendor
// group its CPU's vendor names (an AMD machine is never admitted as an
// Intel type): its best type is the highest of that group its flags
// support once the virtualization marker TCG does not need is granted,
// else the group's lowest type (EmulatedBest); a cluster type of that
// group admits it whatever its level, since TCG emulates any model, and a
// type of another vendor refuses it.
func Admit(h HostCPU, c ClusterCPU) Decision {
	hostCA, archErr := archspec.ClusterArch(h.Arch)
	best, ok := BestFor(h.Arch, h.Flags)
	note := ""
	if h.Emulated {
		if eb, en, eok := EmulatedBest(h.Arch, h.Vendor, h.Flags); eok && (!ok || eb.Vendor != best.Vendor || eb.Level > best.Level) {
			best, ok, note = eb, true, en
		}
	}
	if !ok {
		// A host whose flags match another architecture's types is still
		// incompatible; say so by the flags, as the reference does.
		msg := fmt.Sprintf("Host %s moved to Non-Operational state as host CPU type is not supported in this cluster compatibility version or is not supported at all", h.Name)
		if len(h.Flags) == 0 {
			msg = fmt.Sprintf("Host %s moved to Non-Operational state as it reported no CPU flags", h.Name)
		} else if archErr != nil {
			msg = fmt.Sprintf("Host %s moved to Non-Operational state as its architecture %q is not supported: %v", h.Name, h.Arch, archErr)
		}
		return Decision{Code: api.CodeCPUTypeIncompatible, Message: msg}
	}
	d := Decision{Best: best, Note: note}
	if c.Arch != arch.Unknown {
		clusterCA, err := archspec.ClusterArch(c.Arch)
		if err != nil {
			clusterCA = c.Arch
		}
		if clusterCA != hostCA {
			d.Code = api.CodeArchIncompatible
			d.Message = fmt.Sprintf("Host %s has architecture %s and cannot join cluster %s which has architecture %s",
				h.Name, h.Arch, c.Name, c.Arch)
			return d
		}
	}
	if strings.TrimSpace(c.CPUType) == "" {
		d.OK = true
		d.SetArch = hostCA
		d.SetCPUType = best.Name
		return d
	}
	ct, found := Lookup(c.CPUType)
	if !found {
		d.Code = api.CodeCPUTypeIncompatible
		d.Message = fmt.Sprintf("Host %s moved to Non-Operational state as the CPU type %q of cluster %s is not supported at all", h.Name, c.CPUType, c.Name)
		return d
	}
	if ct.Arch != hostCA {
		d.Code = api.CodeArchIncompatible
		d.Message = fmt.Sprintf("Host %s has architecture %s and cannot join cluster %s which has architecture %s",
			h.Name, h.Arch, c.Name, ct.Arch)
		return d
	}
	if h.Emulated {
		if ct.Vendor != best.Vendor {
			d.Code = api.CodeCPUTypeIncompatible
			d.Message = fmt.Sprintf("Host %s moved to Non-Operational state as its CPU is %s (%s) and the CPU type %s of cluster %s is %s: a host whose guests run under TCG is admitted with a type of its own CPU's vendor",
				h.Name, best.Vendor, strings.TrimSpace(h.Vendor), ct.Name, c.Name, ct.Vendor)
			return d
		}
		d.OK = true
		return d
	}
	if miss := Missing(ct, h.Flags); len(miss) > 0 {
		d.Code = api.CodeCPUTypeIncompatible
		d.Missing = miss
		d.Message = fmt.Sprintf("Host %s moved to Non-Operational state as host does not meet the cluster's minimum CPU level. Missing CPU features: %s",
			h.Name, strings.Join(miss, ", "))
		return d
	}
	d.OK = true
	return d
}

// EmulatedBest is the CPU type of a host whose guests run under TCG: the
// vendor group is the one archspec names for its CPU's vendor (cpuinfo
// vendor_id), and within it the highest type its flags support once the
// group's marker (vmx, svm: what KVM needs, not TCG) is granted, else the
// group's lowest type — the one claim its real CPU supports. The note says
// how it was chosen. It is false when the vendor names no group.
func EmulatedBest(a arch.Arch, vendor string, flags []string) (Type, string, bool) {
	spec, err := archspec.For(a)
	if err != nil {
		return Type{}, "", false
	}
	g, ok := spec.VendorOfCPU(vendor)
	if !ok {
		return Type{}, "", false
	}
	var group []Type
	for _, t := range Types(a) {
		if t.Vendor == g.Name {
			group = append(group, t)
		}
	}
	if len(group) == 0 {
		return Type{}, "", false
	}
	have := expand(append(append([]string(nil), flags...), g.Marker))
	var found Type
	for _, t := range group {
		if supportsSet(t, have) && t.Level > found.Level {
			found = t
		}
	}
	if !found.IsZero() {
		return cloneType(found), fmt.Sprintf("its %s CPU runs guests under TCG: the highest %s type whose models TCG runs here", g.Name, g.Name), true
	}
	lowest := group[0]
	for _, t := range group[1:] {
		if t.Level < lowest.Level {
			lowest = t
		}
	}
	return cloneType(lowest), fmt.Sprintf("its %s CPU runs guests under TCG, which emulates any model: the lowest %s type, as its vendor says nothing more", g.Name, g.Name), true
}
