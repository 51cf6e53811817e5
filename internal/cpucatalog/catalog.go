// Package cpucatalog is the list of cluster CPU types of every architecture,
// as data, and the rules that match a host's CPU flags against it (the
// oVirt engine's ServerCPUList and its CPU-level rules).
//
// A host reports a flag list: its real CPU flags, a vendor marker
// ("powernv" on POWER, which prints no flags) and one "model_X" entry per
// libvirt CPU model it can run. A host supports a CPU type when every flag
// the type requires is in that list. Within a vendor group (archspec's
// vendors and their marker flags: vmx for Intel, svm for AMD, powernv for
// IBM POWER, sie for IBM Z, asimd for ARM) a host's best CPU type is the
// highest level whose flags it all has.
//
// Flags are compared in a canonical spelling (lower case, '-' and '_' alike:
// libvirt says md-clear where Linux says md_clear), after adding what the
// host's flags imply (a CPU with TSX runs the noTSX model; a POWER9 runs
// POWER8 guests in compatibility mode).
package cpucatalog

import (
	"fmt"
	"sort"
	"strings"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
)

// Type is one cluster CPU type.
type Type struct {
	// Level orders the types of one vendor group: a higher level runs
	// everything a lower one does.
	Level int `json:"level"`
	// Name is the display name, unique in the catalog ("IBM POWER8").
	Name string `json:"name"`
	// Flags are the flags a host must report to support this type.
	Flags []string `json:"flags"`
	// Model is the libvirt CPU model a VM of a cluster of this type gets
	// ("" when Mode is host-passthrough).
	Model string `json:"model"`
	// Features are libvirt CPU features required on top of Model (the
	// mitigations of the Secure Intel types).
	Features []string `json:"features,omitempty"`
	// Mode is the libvirt CPU mode: "" for a custom (named) model,
	// "host-passthrough" for a type that runs the host's own CPU.
	Mode string `json:"mode,omitempty"`
	// Arch is the cluster architecture (ppc64 for every POWER host).
	Arch arch.Arch `json:"arch"`
	// Vendor is the name of the vendor group ("Intel", "IBM POWER").
	Vendor string `json:"vendor"`
}

// Group is a vendor group: the types whose hosts report one marker flag.
type Group struct {
	// Name is the vendor group's name ("IBM POWER").
	Name string `json:"name"`
	// Marker is the flag that puts a host in this group ("powernv").
	Marker string `json:"marker"`
	// Arch is the cluster architecture of the group.
	Arch arch.Arch `json:"arch"`
}

// API is the type as the engine API's document (the same JSON).
func (t Type) API() engineapi.CPUType {
	t = cloneType(t)
	return engineapi.CPUType{Level: t.Level, Name: t.Name, Flags: t.Flags, Model: t.Model, Features: t.Features,
		Mode: t.Mode, Arch: t.Arch, Vendor: t.Vendor}
}

// APITypes is API of every type of a list.
func APITypes(ts []Type) []engineapi.CPUType {
	out := make([]engineapi.CPUType, len(ts))
	for i, t := range ts {
		out[i] = t.API()
	}
	return out
}

// IsZero reports whether t is the zero Type (no type).
func (t Type) IsZero() bool { return t.Name == "" }

// Groups lists the vendor groups, in archspec.Vendors order.
func Groups() []Group { return append([]Group(nil), groups...) }

// All lists every CPU type, ordered by architecture, vendor group and level.
func All() []Type { return clone(catalog) }

// Types lists the CPU types of the cluster architecture of a (ppc64le and
// ppc64 both give the POWER types), ordered by vendor group and level. An
// architecture without rules, or without types, gives none.
func Types(a arch.Arch) []Type {
	ca, err := archspec.ClusterArch(a)
	if err != nil {
		return nil
	}
	var out []Type
	for _, t := range catalog {
		if t.Arch == ca {
			out = append(out, cloneType(t))
		}
	}
	return out
}

// Arches lists the cluster architectures that have CPU types, sorted.
func Arches() []arch.Arch {
	seen := map[arch.Arch]bool{}
	var out []arch.Arch
	for _, t := range catalog {
		if !seen[t.Arch] {
			seen[t.Arch] = true
			out = append(out, t.Arch)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Lookup finds a type by its name, ignoring case and surrounding space.
func Lookup(name string) (Type, bool) {
	key := strings.ToLower(strings.TrimSpace(name))
	for _, t := range catalog {
		if strings.ToLower(t.Name) == key {
			return cloneType(t), true
		}
	}
	return Type{}, false
}

// Find is Lookup with an error that says what is wrong: an unknown name,
// or a type of another cluster architecture than a (when a is known).
func Find(a arch.Arch, name string) (Type, error) {
	t, ok := Lookup(name)
	if !ok {
		return Type{}, fmt.Errorf("unknown CPU type %q (see `polyvirt cpu-types`)", name)
	}
	if a != arch.Unknown {
		ca, err := archspec.ClusterArch(a)
		if err != nil {
			return Type{}, err
		}
		if t.Arch != ca {
			return Type{}, fmt.Errorf("CPU type %q is a %s type, not %s", t.Name, t.Arch, ca)
		}
	}
	return t, nil
}

// GroupOf returns the vendor group of a type.
func GroupOf(t Type) (Group, bool) {
	for _, g := range groups {
		if g.Name == t.Vendor {
			return g, true
		}
	}
	return Group{}, false
}

// Supports reports whether a host with these flags supports t: every flag
// t requires is present (or implied).
func Supports(t Type, flags []string) bool {
	if t.IsZero() {
		return false
	}
	return len(Missing(t, flags)) == 0
}

// Missing lists the flags of t the host lacks, in t's order and spelling:
// the "Missing CPU features" of CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER.
func Missing(t Type, flags []string) []string {
	have := expand(flags)
	var out []string
	for _, f := range t.Flags {
		if !have[canon(f)] {
			out = append(out, f)
		}
	}
	return out
}

// Best returns the host's best CPU type: the highest level, within the
// vendor group the flags mark, whose flags are all present. It is false
// when no type matches. Were a flag list to mark several groups, the group
// listed first in Groups wins.
func Best(flags []string) (Type, bool) { return best(catalog, flags) }

// BestFor is Best among the types of the cluster architecture of a host
// architecture a.
func BestFor(a arch.Arch, flags []string) (Type, bool) {
	ts := Types(a)
	if len(ts) == 0 {
		return Type{}, false
	}
	return best(ts, flags)
}

// Matching lists every type the flags support, in catalog order.
func Matching(flags []string) []Type {
	have := expand(flags)
	var out []Type
	for _, t := range catalog {
		if supportsSet(t, have) {
			out = append(out, cloneType(t))
		}
	}
	return out
}

// AtLeast reports whether host runs everything cluster does: both are of
// one vendor group and host's level is not lower.
func AtLeast(host, cluster Type) bool {
	return !host.IsZero() && !cluster.IsZero() && host.Vendor == cluster.Vendor &&
		host.Arch == cluster.Arch && host.Level >= cluster.Level
}

func best(types []Type, flags []string) (Type, bool) {
	have := expand(flags)
	for _, g := range groups {
		if !have[canon(g.Marker)] {
			continue
		}
		var found Type
		for _, t := range types {
			if t.Vendor == g.Name && supportsSet(t, have) && t.Level > found.Level {
				found = t
			}
		}
		if !found.IsZero() {
			return cloneType(found), true
		}
	}
	return Type{}, false
}

func supportsSet(t Type, have map[string]bool) bool {
	for _, f := range t.Flags {
		if !have[canon(f)] {
			return false
		}
	}
	return true
}

// canon is the spelling flags are compared in: lower case, '_' for '-'.
func canon(f string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(f)), "-", "_")
}

// impliedCanon is implied plus the compatibility ladders of archspec, in
// canonical spelling, closed transitively at lookup time by expand.
var impliedCanon = func() map[string][]string {
	m := map[string][]string{}
	add := func(from, to string) {
		k := canon(from)
		for _, x := range m[k] {
			if x == canon(to) {
				return
			}
		}
		m[k] = append(m[k], canon(to))
	}
	for from, tos := range implied {
		for _, to := range tos {
			add(from, to)
		}
	}
	for _, a := range archspec.Arches() {
		s, err := archspec.For(a)
		if err != nil {
			continue
		}
		ladder := s.CPU.CompatLadder
		for i := 0; i+1 < len(ladder); i++ {
			add("model_"+ladder[i], "model_"+ladder[i+1])
		}
	}
	return m
}()

// expand returns the canonical set of the flags and of everything they
// imply.
func expand(flags []string) map[string]bool {
	have := make(map[string]bool, len(flags)+8)
	queue := make([]string, 0, len(flags))
	for _, f := range flags {
		if c := canon(f); c != "" && !have[c] {
			have[c] = true
			queue = append(queue, c)
		}
	}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		for _, g := range impliedCanon[f] {
			if !have[g] {
				have[g] = true
				queue = append(queue, g)
			}
		}
	}
	return have
}

func cloneType(t Type) Type {
	t.Flags = append([]string(nil), t.Flags...)
	if t.Features != nil {
		t.Features = append([]string(nil), t.Features...)
	}
	return t
}

func clone(ts []Type) []Type {
	out := make([]Type, len(ts))
	for i, t := range ts {
		out[i] = cloneType(t)
	}
	return out
}
