package hostinfo

import (
	"slices"
	"strings"
)

// identitySources are the inputs of buildIdentity.
type identitySources struct {
	dmi      Identity
	dmiFound bool
	dt       DeviceTree
	sysinfo  *Sysinfo // nil when absent or unreadable
	cpu      CPU
	cpuPower bool // cpuinfo is a POWER cpuinfo
}

// buildIdentity picks the identity source: DMI, else the device tree (with
// the POWER cpuinfo trailer), else the s390x sysinfo, else the POWER cpuinfo
// trailer alone, else none.
func buildIdentity(s identitySources) Identity {
	switch {
	case s.dmiFound:
		return s.dmi
	case s.dt.Found && (s.dt.Vendor != "" || s.dt.Model != "" || s.dt.ModelName != "" ||
		s.dt.SystemID != "" || len(s.dt.Compatible) > 0):
		id := PowerIdentity(s.dt, s.cpu)
		id.Source = "device-tree"
		return id
	case s.sysinfo != nil:
		return SysinfoIdentity(*s.sysinfo)
	case s.cpuPower && (s.cpu.Platform != "" || s.cpu.Machine != "" || s.cpu.TypeModel != ""):
		id := PowerIdentity(DeviceTree{}, s.cpu)
		id.Source = "cpuinfo"
		return id
	}
	return Identity{Source: "none"}
}

// PowerIdentity builds the identity of a POWER machine (or of any machine
// described by a device tree) from the device tree's root properties and
// the cpuinfo trailer:
//
//   - Manufacturer: vendor; else "IBM" when the model or system-id is
//     written "IBM,…" (pHyp LPARs print no vendor);
//   - ProductName: model-name; else the model when it is a name rather than
//     a type-model (it holds a blank: "IBM pSeries (emulated by qemu)");
//   - Version: cpuinfo machine ("PowerNV 8247-22L");
//   - SerialNumber: system-id;
//   - UUID: system-id without NULs and commas ("IBM,03061C14A" →
//     "IBM03061C14A"), else the pseries guest's vm,uuid;
//   - Family: cpuinfo platform ("PowerNV", "pSeries"); else "PowerNV" for a
//     tree compatible with "ibm,powernv", "pSeries" for "qemu,pseries";
//   - TypeModel: cpuinfo model, else the tree's model, without an "IBM,"
//     prefix, when it is a type-model (no blank).
//
// Source is left for the caller.
func PowerIdentity(dt DeviceTree, cpu CPU) Identity {
	id := Identity{
		Manufacturer: dt.Vendor,
		ProductName:  dt.ModelName,
		Version:      cpu.Machine,
		SerialNumber: dt.SystemID,
		UUID:         strings.NewReplacer("\x00", "", ",", "").Replace(dt.SystemID),
		Family:       cpu.Platform,
		TypeModel:    typeModel(cpu.TypeModel),
	}
	if id.Manufacturer == "" && (strings.HasPrefix(dt.Model, "IBM,") || strings.HasPrefix(dt.SystemID, "IBM,") ||
		strings.HasPrefix(cpu.TypeModel, "IBM,")) {
		id.Manufacturer = "IBM"
	}
	if id.ProductName == "" && strings.ContainsAny(dt.Model, " \t") {
		id.ProductName = dt.Model
	}
	if id.UUID == "" {
		id.UUID = dt.VMUUID
	}
	if id.Family == "" {
		switch {
		case slices.Contains(dt.Compatible, "ibm,powernv"):
			id.Family = "PowerNV"
		case slices.Contains(dt.Compatible, "qemu,pseries"):
			id.Family = "pSeries"
		}
	}
	if id.TypeModel == "" {
		id.TypeModel = typeModel(dt.Model)
	}
	return id
}

// typeModel returns a machine type-model without its "IBM," prefix, or ""
// when v is not one (empty, or a name with blanks).
func typeModel(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "IBM,")
	if v == "" || strings.ContainsAny(v, " \t") {
		return ""
	}
	return v
}

// SysinfoIdentity builds an s390x identity from /proc/sysinfo:
// Manufacturer, ProductName = Type (as VDSM reads it), SerialNumber =
// Sequence Code, Family = Type (as libvirt reads it), TypeModel = Type.
func SysinfoIdentity(si Sysinfo) Identity {
	return Identity{
		Manufacturer: si.Manufacturer,
		ProductName:  si.Type,
		SerialNumber: si.SequenceCode,
		Family:       si.Type,
		TypeModel:    si.Type,
		Source:       "sysinfo",
	}
}
