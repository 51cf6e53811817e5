package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// orList writes "a", "a or b", "a, b or c".
func orList(as []arch.Arch) string {
	if len(as) < 2 {
		return arch.Join(as, "")
	}
	return arch.Join(as[:len(as)-1], ", ") + " or " + as[len(as)-1].String()
}

// definitionError is a refused definition: every violation, as one
// answer (api.DefinitionError).
func definitionError(errs api.Errors) error { return api.DefinitionError(errs) }

// vmSizes are what scheduling needs of a definition.
type vmSizes struct {
	Arch      arch.Arch
	Machine   string
	MemoryMiB int64
	VCPUs     int
	CPUModel  string
}

// sizesOf reads the sizes of a stored (completed) definition.
func sizesOf(def json.RawMessage) (vmSizes, error) {
	var d struct {
		Arch    arch.Arch `json:"arch"`
		Machine string    `json:"machine"`
		CPU     *struct {
			Sockets, Cores, Threads int
			Model                   string `json:"model"`
		} `json:"cpu"`
		Memory *struct {
			SizeMiB int64 `json:"sizeMiB"`
		} `json:"memory"`
	}
	if err := json.Unmarshal(def, &d); err != nil {
		return vmSizes{}, fmt.Errorf("the stored definition: %v", err)
	}
	s := vmSizes{Arch: d.Arch, Machine: d.Machine, VCPUs: 1}
	if d.CPU != nil {
		s.VCPUs = max(d.CPU.Sockets, 1) * max(d.CPU.Cores, 1) * max(d.CPU.Threads, 1)
		s.CPUModel = d.CPU.Model
	}
	if d.Memory != nil {
		s.MemoryMiB = d.Memory.SizeMiB
	}
	return s, nil
}

// clusterHostFacts are what a definition's completion needs of a
// cluster's hosts: the architecture of its hosts and the machines they
// offer.
type clusterHostFacts struct {
	// Arches are the hosts' architectures, the Up hosts' first.
	Arches []arch.Arch
	// Machines are the machines some host offers; Known tells whether any
	// host reported its machines.
	Machines map[string]bool
	Known    bool
	// Paths are the path policies the hosts report (none: the default
	// policy is assumed).
	Paths []hostpath.Policy
}

func hostFactsOf(hosts []store.Host) clusterHostFacts {
	f := clusterHostFacts{Machines: map[string]bool{}}
	sorted := slices.Clone(hosts)
	sort.SliceStable(sorted, func(i, j int) bool {
		return sorted[i].Status == store.HostUp && sorted[j].Status != store.HostUp
	})
	for _, h := range sorted {
		if h.Arch != "" && !slices.Contains(f.Arches, h.Arch) {
			f.Arches = append(f.Arches, h.Arch)
		}
		for _, m := range h.EmulatedMachines {
			f.Machines[m] = true
			f.Known = true
		}
	}
	return f
}

// completeDefinition checks a VM definition for a cluster and completes
// it: the VM id as its uuid, the architecture (the cluster's hosts' when
// it names none), the CPU (the cluster CPU type's model when it names
// none), the emulated machine (the cluster's), then every default of the
// architecture (vmspec.Validate). It reports every violation at once:
// vmspec's and the cluster's (architecture, CPU level, machine).
func completeDefinition(def *vmspec.VM, id string, c store.Cluster, hosts clusterHostFacts) (*vmspec.VM, error) {
	if c.Arch == arch.Unknown {
		return nil, &api.Error{Code: api.CodeClusterNoArch, Field: "cluster",
			Message: fmt.Sprintf("Cannot add a VM to cluster %s: the cluster has no architecture yet; set its CPU type (polyvirt cluster update %s --cpu-type ...) or add a host first.", c.Name, c.Name)}
	}
	vm := def.Clone()
	vm.UUID = id
	var errs api.Errors
	guests := archspec.ClusterGuestArches(c.Arch)
	var vmArch arch.Arch
	if vm.Arch == arch.Unknown {
		for _, a := range hosts.Arches {
			if archspec.ClusterRunsNatively(c.Arch, a) {
				vmArch = a
				break
			}
		}
		if vmArch == arch.Unknown {
			errs = append(errs, &api.Error{Code: api.CodeArchRequired, Field: "arch",
				Message: fmt.Sprintf("cluster %s has no host to take the architecture from; give arch %s", c.Name, orList(guests))})
		}
		vm.Arch = vmArch
	} else if a := vm.Arch; a.Known() {
		vmArch = a
		if !archspec.ClusterRunsNatively(c.Arch, a) {
			errs = append(errs, &api.Error{Code: api.CodeVMClusterArch, Field: "arch",
				Message: fmt.Sprintf("a %s VM cannot be in cluster %s, whose architecture is %s; choose a cluster of %s hosts, or give arch %s",
					a, c.Name, c.Arch, a, orList(guests))})
		}
	}
	inCluster := archspec.ClusterRunsNatively(c.Arch, vmArch)
	if ct, ok := cpucatalog.Lookup(c.CPUType); ok && inCluster {
		checkCPUForCluster(vm, ct, vmArch, &errs)
	}
	if vm.Machine == "" {
		if inCluster {
			vm.Machine = c.EmulatedMachine
		}
	} else if inCluster && hosts.Known && vm.Machine != c.EmulatedMachine && !hosts.Machines[vm.Machine] {
		errs = append(errs, &api.Error{Code: api.CodeVMMachineNotInCluster, Field: "machine",
			Message: fmt.Sprintf("no host of cluster %s offers machine %q; leave machine out for the cluster's %s", c.Name, vm.Machine, orNone(c.EmulatedMachine))})
	}
	// The hosts name the console's files (their agents'), never the
	// definition.
	valid, err := vmspec.Validate(vm, vmspec.Options{Arch: vmArch, HostConsole: true})
	refused := map[string]bool{}
	if err != nil {
		var ve api.Errors
		if !asVMSpecErrors(err, &ve) {
			return nil, err
		}
		for _, v := range ve {
			refused[v.Field] = true
			// The cluster's own words for a missing architecture suffice.
			if v.Code == api.CodeArchRequired && errs.Has(api.CodeArchRequired) {
				continue
			}
			errs = append(errs, v)
		}
	}
	errs = append(errs, checkHostPaths(vm, hosts.Paths, refused)...)
	errs = append(errs, checkDisplayListen(vm)...)
	if len(errs) > 0 {
		return nil, definitionError(errs)
	}
	return valid.VM().Clone(), nil
}

// checkHostPaths checks the host paths of a definition (those vmspec did
// not refuse already) against the path policies of the cluster's hosts, as
// written: each must be allowed by at least one host (the scheduler then
// chooses one that allows them all; its agent follows the links when it
// starts the VM). A cluster whose hosts report no policy is checked
// against the default one.
func checkHostPaths(vm *vmspec.VM, policies []hostpath.Policy, refused map[string]bool) api.Errors {
	if len(policies) == 0 {
		policies = []hostpath.Policy{hostpath.Default()}
	}
	var refs []hostpath.Ref
	for _, r := range hostpath.FromDefinition(vm) {
		// vmspec refuses console files (HostConsole) and bad paths itself.
		if r.Use != hostpath.Console && !refused[r.Field] {
			refs = append(refs, r)
		}
	}
	return hostpath.CheckLexically(refs, policies...)
}

// checkCPUForCluster gives a VM without a CPU model the cluster CPU
// type's, and refuses a named model above the cluster's level or of
// another vendor (a VM must run on every host of its cluster).
func checkCPUForCluster(vm *vmspec.VM, ct cpucatalog.Type, vmArch arch.Arch, errs *api.Errors) {
	if vm.CPU == nil {
		vm.CPU = &vmspec.CPU{}
	}
	c := vm.CPU
	if c.Model == "" && c.Mode == "" {
		if ct.Model != "" {
			c.Model = ct.Model
		} else {
			c.Mode = ct.Mode
		}
		return
	}
	if c.Model == "" {
		return
	}
	spec, err := archspec.For(vmArch)
	if err != nil {
		return
	}
	model := spec.CanonicalCPUModel(c.Model)
	for _, t := range cpucatalog.Types(vmArch) {
		if !strings.EqualFold(t.Model, model) {
			continue
		}
		if cpucatalog.AtLeast(ct, t) {
			return
		}
		*errs = append(*errs, &api.Error{Code: api.CodeVMCPUAboveCluster, Field: "cpu.model",
			Message: fmt.Sprintf("CPU model %s (%s, level %d) is above the cluster's CPU type %s (%s, level %d): not every host of the cluster runs it; use %s or leave cpu.model out",
				model, t.Vendor, t.Level, ct.Name, ct.Vendor, ct.Level, orNone(ct.Model))})
		return
	}
}

// asVMSpecErrors unwraps vmspec's violations.
func asVMSpecErrors(err error, out *api.Errors) bool {
	ve, ok := err.(api.Errors)
	if ok {
		*out = ve
	}
	return ok
}

// decodeDefinition reads a request's definition strictly.
func decodeDefinition(raw json.RawMessage) (*vmspec.VM, error) {
	if len(strings.TrimSpace(string(raw))) == 0 || string(raw) == "null" {
		return nil, invalidField("definition", "no definition: give the VM definition (docs/vm-definition.md) as a JSON object")
	}
	def, err := vmspec.Decode(raw)
	if err != nil {
		var ve api.Errors
		if asVMSpecErrors(err, &ve) {
			return nil, definitionError(ve)
		}
		return nil, invalidField("definition", "%v", err)
	}
	return def, nil
}

// checkHostPathDisks refuses the disks of a definition that name an
// explicit host path (a source, not a volume of a pool) when the caller
// is no administrator: with pools in place such a disk is an
// administrator's exception within the directories the hosts allow
// (DISK_HOST_PATH_ADMIN_ONLY, naming the disk). kept are the host paths
// the VM's definition has already (an administrator gave them): a change
// by another user that keeps them is not refused. The engine's own work
// (no caller) is not refused either.
func checkHostPathDisks(ctx context.Context, def *vmspec.VM, kept map[string]bool) error {
	u := CallerFrom(ctx)
	if u == nil || u.Role == store.RoleAdmin {
		return nil
	}
	var errs api.Errors
	for i, d := range def.Disks {
		if d.Volume != "" || d.Source == "" || kept[d.Source] {
			continue
		}
		errs = append(errs, &api.Error{Code: api.CodeDiskHostPathAdminOnly, Field: fmt.Sprintf("disks[%d].source", i),
			Message: fmt.Sprintf("disks[%d] (%s %s) is the host path %s: only an administrator may give a VM a host path (user %s is %s); use a volume of a pool (pool and volume) or an image, or ask an administrator",
				i, d.Device, d.Target, d.Source, u.Name, u.Role)})
	}
	if len(errs) > 0 {
		return definitionError(errs)
	}
	return nil
}

// hostPathDisks are the host paths of a stored definition's disks that
// are not volumes of a pool.
func hostPathDisks(stored json.RawMessage) map[string]bool {
	def, err := vmspec.Decode(stored)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, d := range def.Disks {
		if d.Volume == "" && d.Source != "" {
			out[d.Source] = true
		}
	}
	return out
}
