package hostinfo

import (
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseDTStrings(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{"one string", "IBM\x00", []string{"IBM"}, false},
		{"several", "ibm,powernv\x00ibm,firenze\x00", []string{"ibm,powernv", "ibm,firenze"}, false},
		{"without its NUL", "8247-22L", []string{"8247-22L"}, false},
		{"several, last without NUL", "a\x00b", []string{"a", "b"}, false},
		{"padding NULs", "IBM\x00\x00\x00", []string{"IBM"}, false},
		{"empty string inside", "a\x00\x00b\x00", []string{"a", "", "b"}, false},
		{"empty property", "", nil, false},
		{"only NUL", "\x00", nil, false},
		{"numeric cell", "\x00\x00\x00\x20", nil, true},
		{"control byte", "IBM\x01\x00", nil, true},
		{"invalid UTF-8", "\xff\xfe\x00", nil, true},
		{"UTF-8 text", "Système\x00", []string{"Système"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseDTStrings([]byte(c.in))
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want error %v", err, c.wantErr)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadDeviceTreeProblems(t *testing.T) {
	fsys := fstest.MapFS{
		DeviceTreePath + "/vendor":                                           {Data: []byte("IBM")}, // no NUL: read as is
		DeviceTreePath + "/model":                                            {Data: []byte{0, 0, 1, 2}},
		DeviceTreePath + "/model-name":                                       {Data: []byte("IBM Power System S924\x00")},
		DeviceTreePath + "/system-id":                                        {Data: []byte("IBM,02133C8AW\x00")},
		DeviceTreePath + "/ibm,firmware-versions/skiboot":                    {Data: []byte("v7.0\x00")},
		DeviceTreePath + "/ibm,firmware-versions/occ":                        {Data: []byte{0xff, 0xfe}},
		DeviceTreePath + "/cpus/PowerPC,POWER9@8/ibm,ppc-interrupt-server#s": {Data: []byte{0, 0, 0, 8, 0, 0}},
	}
	dt, probs := ReadDeviceTree(fsys)
	want := DeviceTree{
		Found: true, Vendor: "IBM", ModelName: "IBM Power System S924", SystemID: "IBM,02133C8AW",
		Firmware: []Firmware{{Component: "skiboot", Version: "v7.0"}},
	}
	if diff := cmp.Diff(want, dt, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	wantProbs := map[string]bool{
		DeviceTreePath + "/model":                                            true,
		DeviceTreePath + "/ibm,firmware-versions/occ":                        true,
		DeviceTreePath + "/cpus/PowerPC,POWER9@8/ibm,ppc-interrupt-server#s": true,
	}
	for _, p := range probs {
		if !wantProbs[p.Path] {
			t.Errorf("unexpected problem %v", p)
		}
		delete(wantProbs, p.Path)
	}
	for path := range wantProbs {
		t.Errorf("no problem reported for %s", path)
	}
	id := PowerIdentity(dt, CPU{})
	if id.UUID != "IBM02133C8AW" || id.Manufacturer != "IBM" || id.TypeModel != "" {
		t.Errorf("identity %+v: want UUID IBM02133C8AW, manufacturer IBM, no type-model", id)
	}
}

func TestPowerIdentityLPAR(t *testing.T) {
	// A pHyp LPAR: no vendor, no model-name; "IBM,"-prefixed model.
	dt := DeviceTree{Found: true, Model: "IBM,9009-42A", SystemID: "IBM,02783DA8X"}
	cpu := CPU{Platform: "pSeries", Machine: "CHRP IBM,9009-42A", TypeModel: "IBM,9009-42A"}
	want := Identity{Manufacturer: "IBM", Version: "CHRP IBM,9009-42A", SerialNumber: "IBM,02783DA8X",
		UUID: "IBM02783DA8X", Family: "pSeries", TypeModel: "9009-42A"}
	if diff := cmp.Diff(want, PowerIdentity(dt, cpu)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReadDMI(t *testing.T) {
	fsys := fstest.MapFS{
		DMIPath + "/sys_vendor":      {Data: []byte("LENOVO\n")},
		DMIPath + "/product_name":    {Data: []byte("20XW0055GE\n")},
		DMIPath + "/product_version": {Data: []byte("ThinkPad X13 Gen 2i\n")},
		DMIPath + "/product_serial":  {Data: []byte("Not Specified\n")},
		DMIPath + "/product_uuid":    {Data: []byte("x"), Mode: fs.ModeNamedPipe},
		DMIPath + "/bios_version":    {Data: []byte("N32ET75W (1.51 )\n")},
		DMIPath + "/bios_date":       {Data: []byte("03/15/2022\n")},
	}
	id, fw, found, probs := ReadDMI(fsys)
	if !found {
		t.Fatal("DMI not found")
	}
	want := Identity{Manufacturer: "LENOVO", ProductName: "20XW0055GE", Version: "ThinkPad X13 Gen 2i", Source: "dmi"}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Firmware{{Component: "bios", Version: "N32ET75W (1.51 )", Date: "03/15/2022"}}, fw); diff != "" {
		t.Errorf("firmware (-want +got):\n%s", diff)
	}
	if len(probs) != 1 || probs[0].Path != DMIPath+"/product_uuid" {
		t.Errorf("problems = %v, want one for product_uuid (not a regular file)", probs)
	}
	if _, _, found, probs := ReadDMI(fstest.MapFS{}); found || len(probs) != 0 {
		t.Errorf("no DMI: found %v, problems %v", found, probs)
	}
}

func TestParseDmidecode(t *testing.T) {
	in := "# dmidecode 3.4\nGetting SMBIOS data from sysfs.\n\nHandle 0x0000, DMI type 0, 26 bytes\nBIOS Information\n" +
		"\tVendor: American Megatrends Inc.\n\tVersion: 3.4\n\tRelease Date: 01/28/2021\n\tCharacteristics:\n\t\tPCI is supported\n\n" +
		"Handle 0x0001, DMI type 1, 27 bytes\nSystem Information\n\tManufacturer: Supermicro\n\tProduct Name: SYS-2029P\n" +
		"\tVersion: 0123456789\n\tSerial Number: Not Specified\n\tUUID: 00000000-0000-0000-0000-ac1f6b4f1234\n\tFamily: Not Specified\n\n" +
		"Handle 0x0002, DMI type 2, 15 bytes\nBase Board Information\n\tManufacturer: Other\n\tVersion: 1.01\n"
	id, fw, err := ParseDmidecode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Manufacturer: "Supermicro", ProductName: "SYS-2029P", Version: "0123456789",
		UUID: "00000000-0000-0000-0000-ac1f6b4f1234", Source: "dmi"}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Firmware{{Component: "bios", Version: "3.4", Date: "01/28/2021"}}, fw); diff != "" {
		t.Errorf("firmware (-want +got):\n%s", diff)
	}
	if _, _, err := ParseDmidecode([]byte("no sections here\n\tKey: value\n")); err == nil {
		t.Error("text without sections parsed")
	}
}

func TestParseSysinfo(t *testing.T) {
	in := "Manufacturer:         IBM\nType:                 3906\nModel:                708              M04\n" +
		"Sequence Code:        00000000000B1234\nPlant:                02\n\nCPU Topology HW:      0 0 0 4 1 8\n" +
		"CPU Topology SW:      0 0 0 4 1 8\nLPAR Number:          12\nLPAR Name:            ZLP12\nType:                 9999\n"
	si, err := ParseSysinfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Sysinfo{Manufacturer: "IBM", Type: "3906", Model: "708 M04", SequenceCode: "00000000000B1234", Plant: "02",
		LPARName: "ZLP12", LPARNumber: "12", TopologySW: []int{0, 0, 0, 4, 1, 8}}
	if diff := cmp.Diff(want, si); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "hello: world\n", "Manufacturer: IBM\x00"} {
		if _, err := ParseSysinfo([]byte(bad)); err == nil {
			t.Errorf("ParseSysinfo(%q) succeeded", bad)
		}
	}
	// A malformed topology line is ignored, not an error.
	si, err = ParseSysinfo([]byte("Type: 2964\nCPU Topology SW: 0 0 x 1 2 3\n"))
	if err != nil || si.TopologySW != nil {
		t.Errorf("malformed topology: %+v, %v", si, err)
	}
}

func TestParseMeminfo(t *testing.T) {
	got := ParseMeminfo([]byte("MemTotal:       16303520 kB\nMemFree: 1 kB\nHugePages_Total:       4\nNode 1 MemTotal:  8 kB\nbad line\nDirectMap4k: x kB\n"))
	want := map[string]uint64{"MemTotal": 16303520, "MemFree": 1, "HugePages_Total": 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	node := ParseMeminfo([]byte("Node 3 MemTotal:       67098848 kB\nNode 3 MemFree: 10 kB\n"))
	if node["MemTotal"] != 67098848 {
		t.Errorf("node MemTotal = %d", node["MemTotal"])
	}
}
