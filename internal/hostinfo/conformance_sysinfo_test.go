package hostinfo

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// libvirtSysinfo is the part of libvirt's <sysinfo type='smbios'> reading
// compared here.
type libvirtSysinfo struct {
	System     []libvirtEntry   `xml:"system>entry"`
	Processors []libvirtEntries `xml:"processor"`
}

type libvirtEntries struct {
	Entries []libvirtEntry `xml:"entry"`
}

type libvirtEntry struct {
	Name  string `xml:"name,attr"`
	Value string `xml:",chardata"`
}

func entryMap(es []libvirtEntry) map[string]string {
	m := map[string]string{}
	for _, e := range es {
		m[e.Name] = e.Value
	}
	return m
}

// systemFields are the <system> entries compared.
var systemFields = []string{"manufacturer", "product", "version", "serial", "uuid", "family"}

// libvirtSystemView maps an Identity to libvirt's <system> entries. Two
// documented differences in vocabulary: on POWER libvirt (like VDSM) puts the
// cpuinfo type-model in "serial", which hostinfo keeps as TypeModel (its
// SerialNumber is the real serial, device-tree system-id); on s390x libvirt
// prints no product, where hostinfo gives the machine type as VDSM does.
func libvirtSystemView(id Identity, power, s390 bool) map[string]string {
	m := map[string]string{
		"manufacturer": id.Manufacturer, "product": id.ProductName, "version": id.Version,
		"serial": id.SerialNumber, "uuid": id.UUID, "family": id.Family,
	}
	if power && id.SerialNumber == "" {
		m["serial"] = id.TypeModel
	}
	if s390 {
		m["product"] = ""
	}
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// sysinfoCase is one libvirt sysinfo dataset: which files feed which reader.
type sysinfoCase struct {
	name      string // the .expect file is NAMEsysinfo.expect
	dmidecode string // dmidecode output, parsed with ParseDmidecode
	cpuinfo   string // placed as proc/cpuinfo
	sysinfo   string // placed as proc/sysinfo
}

var sysinfoCases = []sysinfoCase{
	{name: "x86", dmidecode: "x86sysinfo.data"},
	{name: "aarch64-gigabyte", dmidecode: "aarch64-gigabytesysinfo.data", cpuinfo: "aarch64-gigabytecpuinfo.data"},
	{name: "aarch64-hpe-apollo", dmidecode: "aarch64-hpe-apollosysinfo.data"},
	{name: "aarch64-moonshot", cpuinfo: "aarch64-moonshotcpuinfo.data"},
	{name: "aarch64", cpuinfo: "aarch64cpuinfo.data"},
	{name: "arm", cpuinfo: "armcpuinfo.data"},
	{name: "arm-rpi2", cpuinfo: "arm-rpi2cpuinfo.data"},
	{name: "ppc", cpuinfo: "ppccpuinfo.data"},
	{name: "s390", cpuinfo: "s390cpuinfo.data", sysinfo: "s390sysinfo.data"},
	{name: "s390-freq", cpuinfo: "s390-freqcpuinfo.data", sysinfo: "s390-freqsysinfo.data"},
}

// TestConformanceLibvirtSysinfo compares the identity read from every
// libvirt sysinfo dataset with libvirt's own reading (.expect).
func TestConformanceLibvirtSysinfo(t *testing.T) {
	dir := needCorpus(t, "libvirt-sysinfo")
	expects, _ := filepath.Glob(filepath.Join(dir, "*sysinfo.expect"))
	covered := map[string]bool{}
	for _, c := range sysinfoCases {
		covered[c.name+"sysinfo.expect"] = true
	}
	for _, e := range expects {
		if !covered[filepath.Base(e)] {
			t.Errorf("%s is not covered by sysinfoCases", filepath.Base(e))
		}
	}
	read := func(t *testing.T, name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, c := range sysinfoCases {
		t.Run(c.name, func(t *testing.T) {
			var want libvirtSysinfo
			if err := xml.Unmarshal(read(t, c.name+"sysinfo.expect"), &want); err != nil {
				t.Fatalf("%ssysinfo.expect: %v", c.name, err)
			}
			wantSys := map[string]string{}
			for k, v := range entryMap(want.System) {
				for _, f := range systemFields {
					if k == f {
						wantSys[k] = v
					}
				}
			}
			var id Identity
			var h *Host
			if c.dmidecode != "" {
				var err error
				if id, _, err = ParseDmidecode(read(t, c.dmidecode)); err != nil {
					t.Fatal(err)
				}
			}
			if c.cpuinfo != "" || c.sysinfo != "" {
				fsys := fstest.MapFS{}
				if c.cpuinfo != "" {
					fsys[CPUInfoPath] = &fstest.MapFile{Data: read(t, c.cpuinfo)}
				}
				if c.sysinfo != "" {
					fsys[SysinfoPath] = &fstest.MapFile{Data: read(t, c.sysinfo)}
				}
				var err error
				if h, err = Read(fsys, Options{}); err != nil {
					t.Fatal(err)
				}
				if c.dmidecode == "" {
					id = h.Identity
				}
			}
			power := h != nil && h.Arch.Family() == "ppc"
			s390 := h != nil && h.Arch.Family() == "s390"
			got := libvirtSystemView(id, power, s390)
			if diff := cmp.Diff(wantSys, got); diff != "" {
				t.Errorf("<system> (-libvirt +hostinfo):\n%s\nidentity: %+v", diff, id)
			}
			// The first <processor> of POWER and s390x, which libvirt reads
			// from cpuinfo as hostinfo does.
			if h != nil && (power || s390) && len(want.Processors) > 0 {
				p := entryMap(want.Processors[0].Entries)
				gotP := map[string]string{}
				if power {
					gotP["type"], gotP["version"] = h.CPU.Model, h.CPU.Revision
				} else {
					gotP["family"], gotP["manufacturer"], gotP["version"] = h.CPU.Machine, h.CPU.Vendor, h.CPU.Revision
				}
				for k := range p {
					if _, ok := gotP[k]; !ok {
						delete(p, k)
					}
				}
				if diff := cmp.Diff(p, gotP); diff != "" {
					t.Errorf("<processor> (-libvirt +hostinfo):\n%s", diff)
				}
			}
			if len(wantSys) == 0 && id.Source != "none" && id.Source != "" {
				t.Errorf("libvirt reads no <system>, hostinfo reads source %q: %+v", id.Source, id)
			}
		})
	}
}

// TestConformanceDeviceTree reads the root properties of the corpus's real
// PowerNV device trees.
func TestConformanceDeviceTree(t *testing.T) {
	dir := needCorpus(t, "device-tree")
	want := map[string]Identity{
		"p8-840-spira": {Manufacturer: "IBM", ProductName: "IBM Power System S814", SerialNumber: "TU00163",
			UUID: "TU00163", Family: "PowerNV", TypeModel: "8286-41A", Source: "device-tree"},
		"p10-rainier": {Manufacturer: "IBM", ProductName: "ibm,rainier-2s2u", SerialNumber: "139F260",
			UUID: "139F260", Family: "PowerNV", TypeModel: "9105-22A", Source: "device-tree"},
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		name := e.Name()
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expected identity for %s", name)
			}
			fsys := fstest.MapFS{}
			files, _ := os.ReadDir(filepath.Join(dir, name))
			for _, f := range files {
				data, err := os.ReadFile(filepath.Join(dir, name, f.Name()))
				if err != nil {
					t.Fatal(err)
				}
				fsys[DeviceTreePath+"/"+f.Name()] = &fstest.MapFile{Data: data}
			}
			h, err := Read(fsys, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(w, h.Identity); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
			if h.Arch != "ppc64le" || h.ArchSource != "device-tree" {
				t.Errorf("arch %q from %q, want ppc64le from the device tree", h.Arch, h.ArchSource)
			}
			dt, probs := ReadDeviceTree(fsys)
			if len(probs) > 0 {
				t.Errorf("problems reading a real tree: %v", probs)
			}
			if len(dt.Compatible) < 2 || dt.Compatible[0] != "ibm,powernv" {
				t.Errorf("compatible = %q, want ibm,powernv first of several", dt.Compatible)
			}
			for _, s := range dt.Compatible {
				if strings.ContainsRune(s, 0) || s == "" {
					t.Errorf("compatible string %q", s)
				}
			}
		})
	}
	if _, ok := want["p8-840-spira"]; ok && len(ents) != len(want) {
		t.Errorf("%d trees in the corpus, %d expected identities", len(ents), len(want))
	}
}
