package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// Options says what a VM of a cluster may be: the guest architectures its
// hosts run, each with what archspec allows for it and the CPU models the
// cluster's CPU type allows (the web UI's VM form follows it).
func (s *VMs) Options(ctx context.Context, clusterRef string) (engineapi.VMOptions, error) {
	e := s.e
	c, err := e.findCluster(ctx, clusterRef)
	if err != nil {
		return engineapi.VMOptions{}, coded(err)
	}
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID, Brief: true})
	if err != nil {
		return engineapi.VMOptions{}, coded(err)
	}
	return vmOptions(c, hostFactsOf(hosts)), nil
}

// vmOptions is what a VM of cluster c may be.
func vmOptions(c store.Cluster, hosts clusterHostFacts) engineapi.VMOptions {
	out := engineapi.VMOptions{Cluster: c.Name, ClusterArch: string(c.Arch), CPUType: c.CPUType,
		EmulatedMachine: c.EmulatedMachine, Arches: []engineapi.ArchOptions{}}
	if !c.Arch.Known() {
		return out
	}
	for _, a := range hosts.Arches {
		if archspec.ClusterRunsNatively(c.Arch, a) {
			out.DefaultArch = string(a)
			break
		}
	}
	ct, hasType := cpucatalog.Lookup(c.CPUType)
	for _, g := range archspec.ClusterGuestArches(c.Arch) {
		s, err := archspec.For(g)
		if err != nil {
			continue
		}
		o := engineapi.ArchOptions{Arch: string(s.Arch), Title: s.Title, Machine: s.Machine.Default,
			OSTypes: nonNil(s.GuestOS.Allowed), DefaultOSType: s.GuestOS.Default, Firmware: nonNil(s.Firmware.Allowed),
			CPUModes: nonNil(s.CPU.Modes), DefaultCPUMode: s.CPU.DefaultMode, MaxVCPUs: s.CPU.MaxVCPUs,
			MinMemoryMiB: s.Memory.MinMiB, MaxMemoryMiB: s.Memory.MaxMiB, DefaultMemoryMiB: s.Memory.DefaultMiB,
			MemoryMultipleMiB: s.Memory.MultipleMiB, DefaultDisplay: s.Display.Default.Graphics, Headless: s.Display.Headless,
			NICModels: nonNil(s.NIC.Allowed), DefaultNIC: s.NIC.Default, DiskBuses: nonNil(s.Disk.Buses),
			DefaultDiskBus: s.Disk.DefaultBus, CDROMBus: s.Disk.CDROMBus, InputBuses: nonNil(s.Input.Buses),
			ConsoleDevice: s.Console.GuestDevice, CPUModels: clusterCPUModels(s, ct, hasType), Displays: []engineapi.DisplayOption{}}
		for _, gr := range s.GraphicsProtocols() {
			o.Displays = append(o.Displays, engineapi.DisplayOption{Type: gr, Videos: nonNil(s.VideoModels(gr)), DefaultVideo: s.DefaultVideo(gr)})
		}
		out.Arches = append(out.Arches, o)
	}
	return out
}

// clusterCPUModels are the named CPU models of an architecture a VM may
// ask for in a cluster of CPU type ct: the architecture's models and the
// catalog's, without those above the cluster's type (checkCPUForCluster's
// rule).
func clusterCPUModels(s *archspec.Spec, ct cpucatalog.Type, hasType bool) []string {
	out := []string{}
	allowed := func(model string) bool {
		if !hasType {
			return true
		}
		for _, t := range cpucatalog.Types(s.Arch) {
			if strings.EqualFold(t.Model, model) {
				return cpucatalog.AtLeast(ct, t)
			}
		}
		return true
	}
	for _, m := range s.CPU.Models {
		if allowed(m) && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	for _, t := range cpucatalog.Types(s.Arch) {
		if t.Model != "" && !slices.Contains(out, t.Model) && allowed(t.Model) {
			out = append(out, t.Model)
		}
	}
	return out
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// Check checks a VM definition (a JSON object, or the YAML or JSON text of
// a file) for a cluster without creating anything: the definition as read,
// as it would be created, and every violation (the codes and fields of
// Create). A check that finds violations is no error.
func (s *VMs) Check(ctx context.Context, clusterRef string, req engineapi.VMCheckRequest) (engineapi.VMCheck, error) {
	e := s.e
	c, err := e.findCluster(ctx, clusterRef)
	if err != nil {
		return engineapi.VMCheck{}, coded(err)
	}
	raw := []byte(req.Definition)
	switch {
	case req.Text != "" && len(req.Definition) > 0:
		return engineapi.VMCheck{}, invalidField("text", "give the definition or its text, not both")
	case req.Text != "":
		raw = []byte(req.Text)
	}
	out := engineapi.VMCheck{Errors: []api.Error{}}
	if len(strings.TrimSpace(string(raw))) == 0 {
		out.Errors = []api.Error{{Code: api.CodeDefinitionEmpty, Field: "definition", Message: "no definition: give the VM definition (docs/vm-definition.md)"}}
		return out, nil
	}
	def, err := vmspec.Decode(raw)
	if err != nil {
		out.Errors = errorList(err)
		return out, nil
	}
	if out.Definition, err = json.Marshal(def); err != nil {
		return engineapi.VMCheck{}, coded(err)
	}
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID})
	if err != nil {
		return engineapi.VMCheck{}, coded(err)
	}
	id, err := vmID(def)
	if err == nil {
		var full *vmspec.VM
		if full, err = completeDefinition(def, id, c, e.vms.hostFacts(ctx, hosts)); err == nil {
			if herr := checkHostPathDisks(ctx, full, nil); herr != nil {
				err = herr
			} else if nerr := store.ValidName(full.Name); nerr != nil {
				err = api.FieldError(api.CodeNameInvalid, "name", "%v", nerr)
			} else if out.Completed, err = json.Marshal(full); err != nil {
				return engineapi.VMCheck{}, coded(err)
			}
		}
	}
	if err != nil {
		out.Errors = errorList(err)
	}
	return out, nil
}

// errorList is every violation of a refused definition.
func errorList(err error) []api.Error {
	ae := asAPIError(err)
	if ae.Code == api.CodeInternal {
		var ve api.Errors
		if !errors.As(err, &ve) {
			ae = &api.Error{Code: api.CodeDefinitionSyntax, Field: "definition", Message: err.Error()}
		}
	}
	if len(ae.Details) == 0 {
		return []api.Error{{Code: ae.Code, Field: ae.Field, Message: ae.Message}}
	}
	out := make([]api.Error, 0, len(ae.Details))
	for _, d := range ae.Details {
		out = append(out, api.Error{Code: d.Code, Field: d.Field, Message: d.Message})
	}
	return out
}

// checkDisplayListen refuses a display that would listen on an address
// other hosts reach: the engine's VMs listen on their host's loopback,
// where the agent reaches them for the graphical console.
func checkDisplayListen(vm *vmspec.VM) api.Errors {
	if vm.Display == nil || vm.Display.Listen == "" {
		return nil
	}
	if ip := net.ParseIP(vm.Display.Listen); ip != nil && !ip.IsLoopback() {
		return api.Errors{api.FieldError(api.CodeDisplayNotLoopback, "display.listen",
			"%s", fmt.Sprintf("the display would listen on %s, open to the network; leave listen out (127.0.0.1): the web UI's graphical console reaches it through the engine and the host's agent", vm.Display.Listen))}
	}
	return nil
}
