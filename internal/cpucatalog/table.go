package cpucatalog

import "polyvirt/internal/archspec"

// groups are the vendor groups, as archspec has them (the architectures'
// vendor markers). A host belongs to the group whose marker flag it
// reports; levels are compared within one group only.
var groups = func() []Group {
	var out []Group
	for _, v := range archspec.Vendors() {
		out = append(out, Group{Name: v.Name, Marker: v.Marker, Arch: v.ClusterArch})
	}
	return out
}()

// vendor is the group named name; the table below names known groups only.
func vendor(name string) Group {
	for _, g := range groups {
		if g.Name == name {
			return g
		}
	}
	panic("cpucatalog: no vendor group " + name + " in archspec")
}

// secure are the flags (as Linux prints them) and libvirt features of the
// "Secure" Intel variants: the Spectre v2 (spec_ctrl, printed as ibrs by
// Linux), Spectre v4 (ssbd) and MDS (md_clear) mitigations.
var (
	secureFlags    = []string{"spec_ctrl", "ssbd", "md_clear"}
	secureFeatures = []string{"spec-ctrl", "ssbd", "md-clear"}
)

// intel builds the plain and the Secure entry of one Intel family.
func intel(level int, family, model string, extra ...string) []Type {
	g := vendor("Intel")
	flags := append(append([]string{g.Marker, "nx"}, extra...), "model_"+model)
	plain := Type{Level: level, Name: "Intel " + family + " Family", Flags: flags,
		Model: model, Arch: g.Arch, Vendor: g.Name}
	sflags := append(append(append([]string{g.Marker, "nx"}, extra...), secureFlags...), "model_"+model)
	secure := Type{Level: level + 1, Name: "Secure Intel " + family + " Family", Flags: sflags,
		Model: model, Features: secureFeatures, Arch: g.Arch, Vendor: g.Name}
	return []Type{plain, secure}
}

// intelSecure builds a family whose Secure entry runs another libvirt model
// (the TSX-less IBRS variant that hosts with TSX disabled offer).
func intelSecure(level int, family, model, secureModel string) []Type {
	out := intel(level, family, model)
	s := &out[1]
	s.Model = secureModel
	s.Flags = append(append([]string{vendor("Intel").Marker, "nx"}, secureFlags...), "model_"+secureModel)
	return out
}

func amd(level int, name, model string) Type {
	g := vendor("AMD")
	return Type{Level: level, Name: name, Flags: []string{g.Marker, "nx", "model_" + model},
		Model: model, Arch: g.Arch, Vendor: g.Name}
}

func power(level int, model string) Type {
	g := vendor("IBM POWER")
	return Type{Level: level, Name: "IBM " + model, Flags: []string{g.Marker, "model_" + model},
		Model: model, Arch: g.Arch, Vendor: g.Name}
}

func ibmz(level int, name, model string) Type {
	g := vendor("IBM Z")
	return Type{Level: level, Name: name, Flags: []string{g.Marker, "model_" + model},
		Model: model, Arch: g.Arch, Vendor: g.Name}
}

func arm(level int, name, model string) Type {
	g := vendor("ARM")
	t := Type{Level: level, Name: name, Flags: []string{g.Marker}, Model: model,
		Arch: g.Arch, Vendor: g.Name}
	if model != "" {
		t.Flags = append(t.Flags, "model_"+model)
	}
	return t
}

func concat(parts ...[]Type) []Type {
	var out []Type
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// catalog is every cluster CPU type, in table order: by architecture, then
// vendor group, then level. Model names are libvirt's (cpu_map and QEMU's
// s390x names: gen15a is the z15, gen16a the z16).
var catalog = concat(
	intel(1, "Nehalem", "Nehalem"),
	intel(3, "Westmere", "Westmere", "aes"),
	intel(5, "SandyBridge", "SandyBridge"),
	intel(7, "IvyBridge", "IvyBridge"),
	intel(9, "Haswell", "Haswell-noTSX"),
	intel(11, "Broadwell", "Broadwell-noTSX"),
	intelSecure(13, "Skylake Client", "Skylake-Client", "Skylake-Client-noTSX-IBRS"),
	intelSecure(15, "Skylake Server", "Skylake-Server", "Skylake-Server-noTSX-IBRS"),
	intel(17, "Cascadelake Server", "Cascadelake-Server-noTSX"),
	intel(19, "Icelake Server", "Icelake-Server-noTSX"),
	intel(21, "Sapphire Rapids", "SapphireRapids"),
	[]Type{
		amd(1, "AMD Opteron G4", "Opteron_G4"),
		amd(2, "AMD Opteron G5", "Opteron_G5"),
		amd(3, "AMD EPYC", "EPYC"),
		amd(4, "AMD EPYC-Rome", "EPYC-Rome"),
		amd(5, "AMD EPYC-Milan", "EPYC-Milan"),
		amd(6, "AMD EPYC-Genoa", "EPYC-Genoa"),

		power(1, "POWER8"),
		power(2, "POWER9"),
		power(3, "POWER10"),

		ibmz(1, "IBM z114, z196", "z196-base"),
		ibmz(2, "IBM zBC12, zEC12", "zEC12-base"),
		ibmz(3, "IBM z13s, z13", "z13-base"),
		ibmz(4, "IBM z14", "z14-base"),
		ibmz(5, "IBM z15", "gen15a-base"),
		ibmz(6, "IBM z16", "gen16a-base"),

		// A KVM host on ARM often offers no named models (custom mode is
		// TCG-only there): level 1 runs the host's own CPU.
		withMode(arm(1, "ARM 64-bit (host CPU)", ""), "host-passthrough"),
		arm(2, "ARM Cortex-A57", "cortex-a57"),
		arm(3, "ARM Cortex-A72", "cortex-a72"),
		arm(4, "ARM Neoverse-N1", "Neoverse-N1"),
	},
)

func withMode(t Type, mode string) Type {
	t.Mode = mode
	return t
}

// implied lists what a host reporting a flag can also do, as data: a CPU
// with TSX runs the model without it; Linux prints "ibrs" where libvirt and
// the Secure types say spec_ctrl; a z114 (business class) runs the z196's
// base model, and so on for every IBM Z pair. Flags are compared in their
// canonical spelling (see canon). The POWER compatibility ladder (a POWER9
// runs POWER8 guests) comes from archspec, not from this table.
var implied = map[string][]string{
	"ibrs":                     {"spec_ctrl"},
	"model_Haswell":            {"model_Haswell-noTSX"},
	"model_Broadwell":          {"model_Broadwell-noTSX"},
	"model_Cascadelake-Server": {"model_Cascadelake-Server-noTSX"},
	"model_Icelake-Server":     {"model_Icelake-Server-noTSX"},
	"model_z114-base":          {"model_z196-base"},
	"model_zBC12-base":         {"model_zEC12-base"},
	"model_z13s-base":          {"model_z13-base"},
	"model_z14ZR1-base":        {"model_z14-base"},
	"model_gen15b-base":        {"model_gen15a-base"},
	"model_gen16b-base":        {"model_gen16a-base"},
}
