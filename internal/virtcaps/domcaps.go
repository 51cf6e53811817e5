package virtcaps

import (
	"strings"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
)

// ParseDomainCapabilities parses a `virsh domcapabilities` document (root
// element <domainCapabilities>). Bad input is refused as by
// ParseCapabilities, with a *ParseError naming "libvirt domcapabilities".
func ParseDomainCapabilities(data []byte) (d *DomainCaps, err error) {
	defer recoverParse(docDomCaps, &err)
	var doc libvirtxml.DomainCaps
	if err := decodeDocument(docDomCaps, "domainCapabilities", data, &doc); err != nil {
		return nil, err
	}
	return mapDomainCaps(&doc), nil
}

func yes(s string) bool { return strings.TrimSpace(s) == "yes" }

func mapDomainCaps(doc *libvirtxml.DomainCaps) *DomainCaps {
	dc := &DomainCaps{
		Emulator: strings.TrimSpace(doc.Path),
		Domain:   strings.TrimSpace(doc.Domain),
		Machine:  strings.TrimSpace(doc.Machine),
		Arch:     arch.Arch(strings.TrimSpace(doc.Arch)),
	}
	if doc.VCPU != nil {
		dc.MaxVCPUs = int(min(doc.VCPU.Max, uint(maxInt)))
	}
	if doc.IOThreads != nil {
		dc.IOThreads = yes(doc.IOThreads.Supported)
	}
	if os := doc.OS; os != nil && yes(os.Supported) {
		dc.Firmware = enumValues(os.Enums, "firmware")
		if l := os.Loader; l != nil && yes(l.Supported) {
			dc.Loaders = cloneStrings(l.Values)
		}
	}
	if doc.CPU != nil {
		for _, m := range doc.CPU.Modes {
			switch strings.TrimSpace(m.Name) {
			case "host-passthrough":
				dc.CPU.HostPassthrough = yes(m.Supported)
			case "maximum":
				dc.CPU.MaximumMode = yes(m.Supported)
			case "host-model":
				hm := HostModel{Supported: yes(m.Supported), Vendor: strings.TrimSpace(m.Vendor)}
				if len(m.Models) > 0 {
					hm.Model = strings.TrimSpace(m.Models[0].Name)
					hm.Fallback = strings.TrimSpace(m.Models[0].Fallback)
				}
				dc.CPU.HostModel = hm
			case "custom":
				dc.CPU.Custom.Supported = yes(m.Supported)
				for _, cm := range m.Models {
					dc.CPU.Custom.Models = append(dc.CPU.Custom.Models, CPUModel{
						Name:       strings.TrimSpace(cm.Name),
						Usable:     strings.TrimSpace(cm.Usable),
						Vendor:     strings.TrimSpace(cm.Vendor),
						Deprecated: yes(cm.Deprecated),
						Canonical:  strings.TrimSpace(cm.Canonical),
					})
				}
			}
		}
	}
	if d := doc.Devices; d != nil {
		devs := []struct {
			name string
			dev  *libvirtxml.DomainCapsDevice
		}{
			{"disk", d.Disk}, {"graphics", d.Graphics}, {"video", d.Video},
			{"hostdev", d.HostDev}, {"rng", d.RNG}, {"filesystem", d.FileSystem},
			{"tpm", d.TPM}, {"redirdev", d.Redirdev}, {"channel", d.Channel},
			{"crypto", d.Crypto}, {"interface", d.Interface}, {"panic", d.Panic},
			{"console", d.Console},
		}
		for _, x := range devs {
			if x.dev == nil || !yes(x.dev.Supported) {
				continue
			}
			if dc.DeviceEnums == nil {
				dc.DeviceEnums = make(map[string]map[string][]string, len(devs))
			}
			enums := make(map[string][]string, len(x.dev.Enums))
			for _, e := range x.dev.Enums {
				enums[e.Name] = append(enums[e.Name], e.Values...)
			}
			dc.DeviceEnums[x.name] = enums
		}
		dc.Graphics = supportedEnum(d.Graphics, "type")
		dc.Video = supportedEnum(d.Video, "modelType")
		dc.DiskBuses = supportedEnum(d.Disk, "bus")
		dc.DiskDevices = supportedEnum(d.Disk, "diskDevice")
		dc.RNGModels = supportedEnum(d.RNG, "model")
		dc.Panics = supportedEnum(d.Panic, "model")
	}
	if f := doc.Features; f != nil {
		add := func(name, supported string) {
			if yes(supported) {
				dc.Features = append(dc.Features, name)
			}
		}
		if f.GIC != nil {
			add("gic", f.GIC.Supported)
		}
		if f.VMCoreInfo != nil {
			add("vmcoreinfo", f.VMCoreInfo.Supported)
		}
		if f.GenID != nil {
			add("genid", f.GenID.Supported)
		}
		if f.BackingStoreInput != nil {
			add("backingStoreInput", f.BackingStoreInput.Supported)
		}
		if f.Backup != nil {
			add("backup", f.Backup.Supported)
		}
		if f.AsyncTeardown != nil {
			add("async-teardown", f.AsyncTeardown.Supported)
		}
		if f.S390PV != nil {
			add("s390-pv", f.S390PV.Supported)
		}
		if f.PS2 != nil {
			add("ps2", f.PS2.Supported)
		}
		if f.TDX != nil {
			add("tdx", f.TDX.Supported)
		}
		if f.SEV != nil {
			add("sev", f.SEV.Supported)
		}
		if f.SGX != nil {
			add("sgx", f.SGX.Supported)
		}
		if f.HyperV != nil {
			add("hyperv", f.HyperV.Supported)
		}
		if f.LaunchSecurity != nil {
			add("launchSecurity", f.LaunchSecurity.Supported)
		}
	}
	return dc
}

const maxInt = int(^uint(0) >> 1)

// supportedEnum is the values of enum name of a device, when the device is
// present and supported.
func supportedEnum(d *libvirtxml.DomainCapsDevice, name string) []string {
	if d == nil || !yes(d.Supported) {
		return nil
	}
	return enumValues(d.Enums, name)
}

func enumValues(enums []libvirtxml.DomainCapsEnum, name string) []string {
	var out []string
	for _, e := range enums {
		if e.Name == name {
			out = append(out, e.Values...)
		}
	}
	return out
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

// UsableCustomModels lists the CPU models of mode custom that libvirt marks
// usable='yes', in document order, when mode custom is supported. (POWER
// hosts often report no usable custom model; deriving models from
// host-model there is the business of the caller, not of this package.)
func (d *DomainCaps) UsableCustomModels() []string {
	if d == nil || !d.CPU.Custom.Supported {
		return nil
	}
	var out []string
	for _, m := range d.CPU.Custom.Models {
		if m.Usable == "yes" {
			out = append(out, m.Name)
		}
	}
	return out
}

// CustomModelNames lists every CPU model of mode custom, whatever its
// usability, in document order, when mode custom is supported.
func (d *DomainCaps) CustomModelNames() []string {
	if d == nil || !d.CPU.Custom.Supported {
		return nil
	}
	var out []string
	for _, m := range d.CPU.Custom.Models {
		out = append(out, m.Name)
	}
	return out
}

// HostModelName is the model of mode host-model when that mode is
// supported, else "".
func (d *DomainCaps) HostModelName() string {
	if d == nil || !d.CPU.HostModel.Supported {
		return ""
	}
	return d.CPU.HostModel.Model
}
