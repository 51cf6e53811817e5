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
func Admit(h HostCPU, c ClusterCPU) Decision {
	hostCA, archErr := archspec.ClusterArch(h.Arch)
	best, ok := BestFor(h.Arch, h.Flags)
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
	d := Decision{Best: best}
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
