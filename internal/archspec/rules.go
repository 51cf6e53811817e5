package archspec

import (
	"sort"
	"strings"
)

// MachineFamily returns the family a machine name belongs to ("pseries" for
// "pseries-7.2", "q35" for "pc-q35-7.2", "pc" for "pc-i440fx-7.2") and
// whether it is one of this architecture's families. The longest matching
// stem wins, and "pc-q35-*" counts as q35.
func (s *Spec) MachineFamily(machine string) (string, bool) {
	m := strings.ToLower(strings.TrimSpace(machine))
	if strings.HasPrefix(m, "pc-q35") && contains(s.Machine.Families, "q35") {
		return "q35", true
	}
	best := ""
	for _, f := range s.Machine.Families {
		if (m == f || strings.HasPrefix(m, f+"-")) && len(f) > len(best) {
			best = f
		}
	}
	return best, best != ""
}

// AcceptsMachine reports whether machine is an emulated machine of this
// architecture.
func (s *Spec) AcceptsMachine(machine string) bool {
	_, ok := s.MachineFamily(machine)
	return ok
}

// KVMMachines returns the machines of a list that KVM runs guests on, on a
// host of this architecture (Machine.KVMFamilies; the list as it is when
// the architecture names none): what a host this one imitates in fake-KVM
// mode offers, whatever more the local QEMU emulates.
func (s *Spec) KVMMachines(machines []string) []string {
	if len(s.Machine.KVMFamilies) == 0 {
		return machines
	}
	out := []string{}
	for _, m := range machines {
		l := strings.ToLower(strings.TrimSpace(m))
		for _, f := range s.Machine.KVMFamilies {
			if l == f || strings.HasPrefix(l, f+"-") {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// VendorOfCPU returns the vendor group whose CPUs the kernel names vendor
// (cpuinfo vendor_id, "AuthenticAMD"), for a host that lacks the group's
// marker flag (its KVM cannot run guests).
func (s *Spec) VendorOfCPU(vendor string) (Vendor, bool) {
	v := strings.TrimSpace(vendor)
	for _, g := range s.Host.Vendors {
		for _, id := range g.CPUVendorIDs {
			if id == v {
				return g, true
			}
		}
	}
	return Vendor{}, false
}

// DiskBusAllowed reports whether bus exists on the given machine.
func (s *Spec) DiskBusAllowed(bus, machine string) bool {
	if !contains(s.Disk.Buses, bus) {
		return false
	}
	only, restricted := s.Disk.BusMachines[bus]
	if !restricted {
		return true
	}
	fam, _ := s.MachineFamily(machineOrDefault(s, machine))
	return contains(only, fam)
}

// CDROMBus is the default CD-ROM bus on the given machine.
func (s *Spec) CDROMBus(machine string) string {
	fam, _ := s.MachineFamily(machineOrDefault(s, machine))
	if b, ok := s.Disk.CDROMBusByMachine[fam]; ok {
		return b
	}
	return s.Disk.CDROMBus
}

func machineOrDefault(s *Spec, machine string) string {
	if machine == "" {
		return s.Machine.Default
	}
	return machine
}

// GraphicsAllowed reports whether the graphics protocol exists at all.
func (s *Spec) GraphicsAllowed(graphics string) bool {
	for _, p := range s.Display.Pairs {
		if p.Graphics == graphics {
			return true
		}
	}
	return false
}

// DisplayAllowed reports whether the graphics protocol and video model may
// be combined.
func (s *Spec) DisplayAllowed(graphics, video string) bool {
	for _, p := range s.Display.Pairs {
		if p.Graphics == graphics && p.Video == video {
			return true
		}
	}
	return false
}

// VideoModels lists the video models allowed with a graphics protocol.
func (s *Spec) VideoModels(graphics string) []string {
	var out []string
	for _, p := range s.Display.Pairs {
		if p.Graphics == graphics && !contains(out, p.Video) {
			out = append(out, p.Video)
		}
	}
	return out
}

// GraphicsProtocols lists the graphics protocols that exist, in table order.
func (s *Spec) GraphicsProtocols() []string {
	var out []string
	for _, p := range s.Display.Pairs {
		if !contains(out, p.Graphics) {
			out = append(out, p.Graphics)
		}
	}
	return out
}

// CPUModeAllowed reports whether a CPU mode is allowed.
func (s *Spec) CPUModeAllowed(mode string) bool { return contains(s.CPU.Modes, mode) }

// CPUModelAllowed reports whether a named CPU model is allowed; when the
// table names no models, any model is (the host's domcapabilities decide).
func (s *Spec) CPUModelAllowed(model string) bool {
	if len(s.CPU.Models) == 0 {
		return model != ""
	}
	for _, m := range s.CPU.Models {
		if strings.EqualFold(m, model) {
			return true
		}
	}
	return false
}

// InputBusAllowed reports whether an input bus exists.
func (s *Spec) InputBusAllowed(bus string) bool { return contains(s.Input.Buses, bus) }

// HostFlags returns the flag list a host of this architecture reports: its
// real flags plus the vendor markers the kernel does not print (POWER
// prints no flags at all, so "powernv" marks the IBM POWER vendor group).
func (s *Spec) HostFlags(real []string) []string {
	out := make([]string, 0, len(real)+1)
	for _, v := range s.Host.Vendors {
		if v.Added {
			out = append(out, v.Marker)
		}
	}
	for _, f := range real {
		if !contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// UsableCPUModels returns the CPU models a host can run, from what its
// domcapabilities say: hostModel is the host-model's <model> ("" when that
// mode is unsupported), usable the custom models marked usable='yes'.
//
// On POWER the host-model is the usable one, and every older level of the
// compatibility ladder is usable too (a POWER9 host runs POWER8-compat
// guests); QEMU reports no compatibility modes itself. Elsewhere the usable
// custom models are the answer.
func (s *Spec) UsableCPUModels(hostModel string, usable []string) []string {
	var out []string
	add := func(m string) {
		if m != "" && !contains(out, m) {
			out = append(out, m)
		}
	}
	if s.Host.ModelsFromHostModel && hostModel != "" {
		idx := -1
		for i, m := range s.CPU.CompatLadder {
			if strings.EqualFold(m, hostModel) {
				idx = i
			}
		}
		if idx < 0 {
			add(hostModel)
		} else {
			for _, m := range s.CPU.CompatLadder[idx:] {
				add(m)
			}
		}
		return out
	}
	for _, m := range usable {
		add(m)
	}
	return out
}

// ModelFlags turns CPU model names into the engine's "model_NAME" flags.
func ModelFlags(models []string) []string {
	out := make([]string, len(models))
	for i, m := range models {
		out[i] = "model_" + m
	}
	return out
}

// KVMUsable decides whether KVM can accelerate guests on a host of this
// architecture: /dev/kvm must exist and, where the architecture needs a CPU
// feature for it (x86 vmx/svm, s390x sie), the flags must hold one. The
// reason says why not.
func (s *Spec) KVMUsable(devicePresent bool, flags []string) (bool, string) {
	if !devicePresent {
		return false, "/dev/kvm is absent"
	}
	var need []string
	for _, v := range s.Host.Vendors {
		if v.KVM {
			need = append(need, v.Marker)
		}
	}
	if len(need) == 0 {
		return true, ""
	}
	for _, f := range need {
		if contains(flags, f) {
			return true, ""
		}
	}
	return false, "the CPU has none of the virtualization flags " + strings.Join(need, ", ") +
		" (/dev/kvm is present but cannot run guests)"
}

// MachineMatches reports whether a machine name fits a cluster candidate
// pattern: "pseries-*" matches every versioned pseries, a plain name only
// itself.
func MachineMatches(pattern, machine string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(machine, p)
	}
	return pattern == machine
}

// BestMachine picks from machines the first one that matches the candidate
// patterns in order; among several matching one pattern it takes the
// highest version. It returns "" when none matches.
func BestMachine(candidates, machines []string) string {
	for _, pat := range candidates {
		var hits []string
		for _, m := range machines {
			if MachineMatches(pat, m) {
				hits = append(hits, m)
			}
		}
		if len(hits) > 0 {
			sort.Slice(hits, func(i, j int) bool { return versionLess(hits[j], hits[i]) })
			return hits[0]
		}
	}
	return ""
}

// versionLess compares machine names by their numeric parts ("pseries-7.2"
// < "pseries-10.0").
func versionLess(a, b string) bool {
	pa, pb := splitNum(a), splitNum(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	if len(pa) != len(pb) {
		return len(pa) < len(pb)
	}
	return a < b
}

func splitNum(s string) []int {
	var out []int
	n, in := 0, false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			n = n*10 + int(r-'0')
			in = true
			if n > 1<<20 {
				n = 1 << 20
			}
			continue
		}
		if in {
			out = append(out, n)
			n, in = 0, false
		}
	}
	if in {
		out = append(out, n)
	}
	return out
}
