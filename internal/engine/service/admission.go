package service

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/store"
)

// hostFacts is what admission needs of a host's capabilities report.
type hostFacts struct {
	// Arch is the architecture the host presents for VMs (the report's
	// effective architecture: ppc64le for a POWER host, fake or not).
	Arch     arch.Arch
	CPUModel string
	Flags    []string
	Machines []string
	// Emulated tells that the host's own KVM cannot run guests (they run
	// under TCG) and it presents no other machine; Vendor is its CPU's
	// vendor (cpuinfo vendor_id): admission then goes by the vendor.
	Emulated bool
	Vendor   string
}

// factsFromReport reads the facts of a capabilities report (JSON).
func factsFromReport(doc []byte) (hostFacts, error) {
	var r hostreport.Report
	if err := json.Unmarshal(doc, &r); err != nil {
		return hostFacts{}, fmt.Errorf("capabilities report: %v", err)
	}
	// An architecture unknown to polyvirt stays as the report writes it:
	// admission refuses it by its CPU type.
	emulated := r.Virt.Virtualization == "tcg" && r.Profile == "" && r.CPU.FakeIdentity == "" && r.Effective() == r.Arch
	return hostFacts{Arch: r.Effective(), CPUModel: r.CPU.Model, Flags: r.CPU.Flags, Machines: r.Virt.EmulatedMachines,
		Emulated: emulated, Vendor: r.CPU.Vendor}, nil
}

// admission is the outcome of admitting a host into its cluster.
type admission struct {
	// OK tells whether the host may be Up; Code and Message say why not.
	OK      bool
	Code    string
	Message string
	// Missing are the cluster CPU type's flags the host lacks.
	Missing []string
	// Best is the host's best CPU type (zero when none matches).
	Best cpucatalog.Type
	// Cluster is the cluster after admission; ClusterChanged tells that
	// the host set its architecture, CPU type or emulated machine, and
	// ClusterChange says how (for the audit log).
	Cluster        store.Cluster
	ClusterChanged bool
	ClusterChange  string
}

// admit applies the reference engine's admission rules (package
// cpucatalog: CPU type matching, architecture, the first host setting the
// cluster's CPU type and architecture, missing flags) and then the
// emulated machine rule: the cluster takes the first of its candidate
// patterns its first Up host offers (archspec.BestMachine); later hosts
// must offer the chosen machine. The cluster changes only when the host is
// admitted.
func admit(hostName string, f hostFacts, c store.Cluster) admission {
	d := cpucatalog.Admit(cpucatalog.HostCPU{Name: hostName, Arch: f.Arch, Flags: f.Flags, Emulated: f.Emulated, Vendor: f.Vendor},
		cpucatalog.ClusterCPU{Name: c.Name, Arch: c.Arch, CPUType: c.CPUType})
	out := admission{Best: d.Best, Cluster: c}
	if !d.OK {
		out.Code, out.Message, out.Missing = d.Code, d.Message, d.Missing
		return out
	}
	nc := c
	nc.EmulatedMachineCandidates = slices.Clone(c.EmulatedMachineCandidates)
	var changes []string
	if d.SetCPUType != "" {
		if nc.Arch == arch.Unknown {
			nc.Arch = d.SetArch
			changes = append(changes, "architecture "+d.SetArch.String())
		}
		nc.CPUType = d.SetCPUType
		changes = append(changes, "CPU type "+d.SetCPUType)
	}
	if len(nc.EmulatedMachineCandidates) == 0 {
		if spec, err := archspec.For(nc.Arch); err == nil {
			nc.EmulatedMachineCandidates = slices.Clone(spec.Machine.ClusterCandidates)
		}
	}
	if nc.EmulatedMachine == "" {
		m := archspec.BestMachine(nc.EmulatedMachineCandidates, f.Machines)
		if m == "" {
			out.Code = api.CodeEmulatedMachines
			out.Message = fmt.Sprintf("Host %s does not comply with the cluster %s emulated machines. The cluster's candidate emulated machines are %s and the host supported emulated machines are %s.",
				hostName, c.Name, strings.Join(nc.EmulatedMachineCandidates, ", "), shortList(f.Machines))
			return out
		}
		nc.EmulatedMachine = m
		changes = append(changes, "emulated machine "+m)
	} else if !slices.Contains(f.Machines, nc.EmulatedMachine) {
		out.Code = api.CodeEmulatedMachines
		out.Message = fmt.Sprintf("Host %s does not comply with the cluster %s emulated machine. The cluster current emulated machine is %s and the host supported emulated machines are %s.",
			hostName, c.Name, nc.EmulatedMachine, shortList(f.Machines))
		return out
	}
	out.OK = true
	out.Cluster = nc
	if len(changes) > 0 {
		out.ClusterChanged = true
		out.ClusterChange = fmt.Sprintf("Cluster %s was given %s by its first host %s.", c.Name, joinAnd(changes), hostName)
		if d.Note != "" && d.SetCPUType != "" {
			out.ClusterChange = fmt.Sprintf("Cluster %s was given %s by its first host %s (%s).", c.Name, joinAnd(changes), hostName, d.Note)
		}
	}
	return out
}

// shortList prints a list, at most 24 entries.
func shortList(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	if len(l) > 24 {
		return strings.Join(l[:24], ", ") + fmt.Sprintf(" and %d more", len(l)-24)
	}
	return strings.Join(l, ", ")
}

func joinAnd(l []string) string {
	switch len(l) {
	case 0:
		return ""
	case 1:
		return l[0]
	}
	return strings.Join(l[:len(l)-1], ", ") + " and " + l[len(l)-1]
}
