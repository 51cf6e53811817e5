package vmspec

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
)

// LoadHostCaps reads a host capabilities report written by
// `polyvirt caps -o json`. Fields it does not know are ignored (the report
// grows); a report without an architecture is refused.
func LoadHostCaps(path string) (*hostreport.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, err
	}
	return ParseHostCaps(data)
}

// ParseHostCaps decodes a host capabilities report.
func ParseHostCaps(data []byte) (*hostreport.Report, error) {
	var r hostreport.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("host capabilities: %v", err)
	}
	if r.Effective() == arch.Unknown {
		return nil, fmt.Errorf("host capabilities: no arch or effectiveArch; is this a `polyvirt caps -o json` report?")
	}
	return &r, nil
}

// TCGOnly reports whether a host runs guests under TCG only: fake-KVM
// mode, or libvirt's domain type is qemu (no usable KVM).
func TCGOnly(h *hostreport.Report) bool {
	return h != nil && (h.FakeKVM || h.Virt.DomainType == "qemu")
}

// ownMachineUnderTCG reports whether a host is the machine it runs on (no
// profile, no fake CPU of another architecture) and runs its guests under
// TCG because its KVM cannot.
func ownMachineUnderTCG(h *hostreport.Report) bool {
	return h.Virt.Virtualization == "tcg" && h.Profile == "" && h.CPU.FakeIdentity == ""
}

// hostOffer is what a host offers for one guest architecture; an empty
// list means the report does not say, and is not checked.
type hostOffer struct {
	machines, models, graphics, video, diskBuses []string
}

func offerFor(h *hostreport.Report, a arch.Arch) (hostOffer, bool) {
	var o hostOffer
	found := false
	for _, g := range h.Virt.Guests {
		if g.Arch == a {
			found = true
			o.machines = append(o.machines, g.Machines...)
			o.models = append(o.models, g.CPUModels...)
			o.graphics = append(o.graphics, g.Graphics...)
			o.video = append(o.video, g.Video...)
			o.diskBuses = append(o.diskBuses, g.DiskBuses...)
		}
	}
	if h.Effective() == a {
		found = true
		v := h.Virt
		o.machines = append(o.machines, v.EmulatedMachines...)
		o.models = append(o.models, v.CPUModels...)
		o.graphics = append(o.graphics, v.Graphics...)
		o.video = append(o.video, v.Video...)
		o.diskBuses = append(o.diskBuses, v.DiskBuses...)
	}
	return o, found
}

// checkHost checks a completed definition against a host's report.
func checkHost(vm *VM, spec *archspec.Spec, h *hostreport.Report, errs *api.Errors) {
	effArch := h.Effective()
	eff, err := archspec.For(effArch)
	if err != nil {
		if cerr := effArch.Check(); cerr != nil {
			err = cerr
		}
		errs.Add(api.CodeHostCaps, "", "the host report's architecture %q is unknown: %v", clip(effArch.String()), err)
		return
	}
	offer, listed := offerFor(h, spec.Arch)
	if !eff.RunsAtAll(spec.Arch, TCGOnly(h), listed) {
		errs.Add(api.CodeHostArch, "arch", "the host runs %s guests (%s) and cannot run a %s VM; choose a host of that architecture",
			eff.Arch, arch.Join(eff.GuestArches, ", "), spec.Arch)
		return
	}
	if len(offer.machines) > 0 && !contains(offer.machines, vm.Machine) {
		errs.Add(api.CodeHostMachine, "machine", "the host does not offer machine %q for %s; it offers %s", vm.Machine, spec.Arch, shortList(offer.machines))
	}
	c := vm.CPU
	tcg := TCGOnly(h)
	switch c.Mode {
	case "custom":
		// A fake-KVM host runs the models it presents (its model_X flags)
		// and their variants (Cascadelake-Server-noTSX for
		// Cascadelake-Server): the fake-KVM rewrite replaces those TCG
		// cannot emulate.
		if h.FakeKVM && presents(h.CPU.Models, c.Model) {
			break
		}
		// A host that is its own machine with no usable KVM runs any
		// model under TCG (the TCG build gives the VM a model TCG
		// emulates): its cluster's model says what its CPU is, and is
		// not refused for what TCG lacks.
		if h.FakeKVM && ownMachineUnderTCG(h) {
			break
		}
		if len(offer.models) > 0 && !containsFold(offer.models, c.Model) {
			errs.Add(api.CodeHostCPUModel, "cpu.model", "the host cannot run CPU model %s; it offers %s", c.Model, shortList(offer.models))
		}
	case "host-model":
		if c.Model != "" && len(offer.models) > 0 && !containsFold(offer.models, c.Model) {
			errs.Add(api.CodeHostCPUModel, "cpu.model", "the host cannot run compatibility level %s; it offers %s", c.Model, shortList(offer.models))
		}
	}
	// Under TCG host-model and host-passthrough are turned into a named
	// model (fake-KVM rewrite); with KVM the host must support the mode.
	if !tcg && c.Mode != "custom" && len(h.Virt.CPUModes) > 0 && !contains(h.Virt.CPUModes, c.Mode) {
		code := api.CodeHostCPUMode
		if c.Mode == "host-passthrough" {
			code = api.CodeUseHostCPU
		}
		errs.Add(code, "cpu.mode", "the host does not support CPU mode %s; use %s", c.Mode, list(h.Virt.CPUModes))
	}
	if d := vm.Display; d.Type != "none" {
		if len(offer.graphics) > 0 && !contains(offer.graphics, d.Type) {
			errs.Add(api.CodeHostGraphics, "display.type", "the host's QEMU has no %s; use %s", d.Type, list(intersect(offer.graphics, spec.GraphicsProtocols())))
		}
		if len(offer.video) > 0 && !contains(offer.video, d.Video) {
			errs.Add(api.CodeHostVideo, "display.video", "the host's QEMU has no %s video; use %s", d.Video, list(intersect(offer.video, spec.VideoModels(d.Type))))
		}
	}
	if len(offer.diskBuses) > 0 {
		for i, d := range vm.Disks {
			if !contains(offer.diskBuses, d.Bus) {
				errs.Add(api.CodeHostDiskBus, fmt.Sprintf("disks[%d].bus", i), "the host's QEMU has no %s disk bus; use %s", d.Bus, list(intersect(offer.diskBuses, spec.Disk.Buses)))
			}
		}
	}
}

// presents tells whether model is one of models or a variant of one
// (libvirt names variants BASE-SUFFIX).
func presents(models []string, model string) bool {
	m := strings.ToLower(model)
	for _, x := range models {
		x = strings.ToLower(x)
		if m == x || strings.HasPrefix(m, x+"-") {
			return true
		}
	}
	return false
}

func containsFold(l []string, v string) bool {
	for _, x := range l {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range b {
		if contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

// shortList names at most eight entries.
func shortList(l []string) string {
	if len(l) > 8 {
		return strings.Join(l[:8], ", ") + fmt.Sprintf(" and %d more", len(l)-8)
	}
	return strings.Join(l, ", ")
}
