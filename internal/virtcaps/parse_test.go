package virtcaps

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
)

// rhelCaps is a small capabilities document in the shapes the rules must
// handle: a RHEL-built QEMU listing its machines directly under the arch
// with an empty kvm domain (ppc64le), and a kvm domain with its own
// emulator and machines (x86_64).
const rhelCaps = `<?xml version="1.0"?>
<!-- a comment before the root is fine -->
<capabilities>
  <host>
    <uuid>0e5c9a3a-1111-2222-3333-444455556666</uuid>
    <cpu>
      <arch>ppc64le</arch>
      <model>POWER8</model>
      <vendor>IBM</vendor>
      <topology sockets='1' cores='5' threads='1'/>
      <pages unit='KiB' size='64'/>
      <pages unit='MiB' size='16'/>
    </cpu>
    <topology>
      <cells num='2'>
        <cell id='0'>
          <memory unit='KiB'>67108864</memory>
          <distances><sibling id='0' value='10'/><sibling id='16' value='40'/></distances>
          <cpus num='2'>
            <cpu id='0' socket_id='0' core_id='32' siblings='0'/>
            <cpu id='1'/>
          </cpus>
        </cell>
        <cell id='16'>
          <memory unit='GiB'>64</memory>
          <cpus num='1'><cpu id='80' socket_id='1' core_id='2080' siblings='80'/></cpus>
        </cell>
      </cells>
    </topology>
  </host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='ppc64le'>
      <wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-kvm</emulator>
      <machine maxCpus='1024'>pseries-rhel7.2.0</machine>
      <machine canonical='pseries-rhel7.2.0' maxCpus='1024'>pseries</machine>
      <domain type='qemu'/>
      <domain type='kvm'>
        <emulator>/usr/libexec/qemu-kvm</emulator>
      </domain>
    </arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <machine>pc-i440fx-2.0</machine>
      <domain type='qemu'/>
      <domain type='kvm'>
        <emulator>/usr/bin/qemu-kvm</emulator>
        <machine canonical='pc-q35-8.0' maxCpus='288'>q35</machine>
        <machine maxCpus='288' deprecated='yes'>pc-q35-8.0</machine>
      </domain>
    </arch>
  </guest>
</capabilities>
`

func mustCaps(t *testing.T, doc string) *Capabilities {
	t.Helper()
	c, err := ParseCapabilities([]byte(doc))
	if err != nil {
		t.Fatalf("ParseCapabilities: %v", err)
	}
	return c
}

func intp(v int) *int { return &v }

func TestParseCapabilitiesFull(t *testing.T) {
	got := mustCaps(t, rhelCaps)
	want := &Capabilities{
		HostUUID:         "0e5c9a3a-1111-2222-3333-444455556666",
		HostArch:         arch.PPC64LE,
		HostCPUModel:     "POWER8",
		HostCPUVendor:    "IBM",
		Topology:         Topology{Sockets: 1, Cores: 5, Threads: 1},
		HostPageSizesKiB: []uint64{64, 16384},
		Cells: []Cell{
			{ID: 0, MemoryKiB: 67108864, Distances: map[int]int{0: 10, 16: 40}, CPUs: []CellCPU{
				{ID: 0, SocketID: intp(0), CoreID: intp(32), Siblings: "0"},
				{ID: 1},
			}},
			{ID: 16, MemoryKiB: 64 << 20, CPUs: []CellCPU{{ID: 80, SocketID: intp(1), CoreID: intp(2080), Siblings: "80"}}},
		},
		Guests: []Guest{
			{OSType: "hvm", Arch: arch.PPC64LE, WordSize: 64, Emulator: "/usr/bin/qemu-kvm",
				Machines: []Machine{{Name: "pseries-rhel7.2.0", MaxCPUs: 1024}, {Name: "pseries", Canonical: "pseries-rhel7.2.0", MaxCPUs: 1024}},
				Domains:  []GuestDomain{{Type: "qemu"}, {Type: "kvm", Emulator: "/usr/libexec/qemu-kvm"}}},
			{OSType: "hvm", Arch: arch.X86_64, WordSize: 64, Emulator: "/usr/bin/qemu-system-x86_64",
				Machines: []Machine{{Name: "pc-i440fx-2.0"}},
				Domains: []GuestDomain{{Type: "qemu"}, {Type: "kvm", Emulator: "/usr/bin/qemu-kvm", Machines: []Machine{
					{Name: "q35", Canonical: "pc-q35-8.0", MaxCPUs: 288},
					{Name: "pc-q35-8.0", MaxCPUs: 288, Deprecated: true},
				}}}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestEmulatedMachinesRule(t *testing.T) {
	c := mustCaps(t, rhelCaps)
	cases := []struct {
		arch       arch.Arch
		domainType string
		want       []string
	}{
		// kvm domain lists none → arch level (RHEL-built QEMU)
		{arch.PPC64LE, "kvm", []string{"pseries-rhel7.2.0", "pseries"}},
		{arch.PPC64LE, "qemu", []string{"pseries-rhel7.2.0", "pseries"}},
		{arch.PPC64LE, "", []string{"pseries-rhel7.2.0", "pseries"}},
		// no such domain type → arch level, as VDSM does
		{arch.PPC64LE, "xen", []string{"pseries-rhel7.2.0", "pseries"}},
		// the kvm domain has its own list: that one wins; canonicals
		// are merged without duplicates
		{arch.X86_64, "kvm", []string{"q35", "pc-q35-8.0"}},
		{arch.X86_64, "qemu", []string{"pc-i440fx-2.0"}},
		{arch.S390X, "kvm", nil},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, c.MachineNames(tc.arch, tc.domainType)); diff != "" {
			t.Errorf("MachineNames(%s, %q) (-want +got):\n%s", tc.arch, tc.domainType, diff)
		}
	}
	// The result is a copy: changing it leaves the capabilities alone.
	ms := c.EmulatedMachines(arch.X86_64, "kvm")
	ms[0].Name = "changed"
	if c.Guests[1].Domains[1].Machines[0].Name != "q35" {
		t.Error("EmulatedMachines returned the internal slice")
	}
}

func TestCapabilitiesHelpers(t *testing.T) {
	c := mustCaps(t, rhelCaps)
	if diff := cmp.Diff([]arch.Arch{arch.PPC64LE, arch.X86_64}, c.GuestArches()); diff != "" {
		t.Errorf("GuestArches (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"qemu", "kvm"}, c.DomainTypes(arch.PPC64LE)); diff != "" {
		t.Errorf("DomainTypes (-want +got):\n%s", diff)
	}
	emu := []struct {
		a    arch.Arch
		t    string
		want string
	}{
		{arch.PPC64LE, "kvm", "/usr/libexec/qemu-kvm"},
		{arch.PPC64LE, "qemu", "/usr/bin/qemu-kvm"},
		{arch.PPC64LE, "", "/usr/bin/qemu-kvm"},
		{arch.PPC64LE, "xen", ""},
		{arch.X86_64, "kvm", "/usr/bin/qemu-kvm"},
		{arch.S390X, "kvm", ""},
	}
	for _, e := range emu {
		if got := c.Emulator(e.a, e.t); got != e.want {
			t.Errorf("Emulator(%s, %q) = %q, want %q", e.a, e.t, got, e.want)
		}
	}
	if got := c.PreferredDomainType(arch.X86_64); got != "kvm" {
		t.Errorf("PreferredDomainType(x86_64) = %q", got)
	}
	if got := c.PreferredDomainType(arch.S390X); got != "" {
		t.Errorf("PreferredDomainType(s390x) = %q", got)
	}
	var nilCaps *Capabilities
	if nilCaps.GuestArches() != nil || nilCaps.MachineNames(arch.X86_64, "kvm") != nil || nilCaps.Emulator(arch.X86_64, "") != "" {
		t.Error("nil *Capabilities must answer empty")
	}
}

const smallDomCaps = `<domainCapabilities>
  <path>/usr/bin/qemu-system-ppc64</path>
  <domain>kvm</domain>
  <machine>pseries-9.2</machine>
  <arch>ppc64</arch>
  <vcpu max='2048'/>
  <os supported='yes'>
    <enum name='firmware'/>
    <loader supported='no'><value>/x.fd</value></loader>
  </os>
  <cpu>
    <mode name='host-passthrough' supported='yes'/>
    <mode name='host-model' supported='yes'>
      <model fallback='allow'>POWER9</model>
    </mode>
    <mode name='custom' supported='no'>
      <model usable='yes'>POWER8</model>
    </mode>
  </cpu>
  <devices>
    <disk supported='yes'>
      <enum name='bus'><value>scsi</value><value>virtio</value></enum>
    </disk>
    <graphics supported='no'>
      <enum name='type'><value>spice</value></enum>
    </graphics>
    <video supported='yes'>
      <enum name='modelType'><value>vga</value></enum>
      <enum name='modelType'><value>virtio</value></enum>
    </video>
  </devices>
  <features>
    <gic supported='no'/>
    <s390-pv supported='yes'/>
  </features>
</domainCapabilities>`

func TestParseDomainCapabilitiesSmall(t *testing.T) {
	got, err := ParseDomainCapabilities([]byte(smallDomCaps))
	if err != nil {
		t.Fatal(err)
	}
	want := &DomainCaps{
		Emulator: "/usr/bin/qemu-system-ppc64", Domain: "kvm", Machine: "pseries-9.2", Arch: arch.PPC64,
		MaxVCPUs: 2048,
		CPU: CPUModes{
			HostPassthrough: true,
			HostModel:       HostModel{Supported: true, Model: "POWER9", Fallback: "allow"},
			Custom:          CustomModes{Models: []CPUModel{{Name: "POWER8", Usable: "yes"}}},
		},
		DiskBuses: []string{"scsi", "virtio"},
		Video:     []string{"vga", "virtio"},
		DeviceEnums: map[string]map[string][]string{
			"disk":  {"bus": {"scsi", "virtio"}},
			"video": {"modelType": {"vga", "virtio"}},
		},
		Features: []string{"s390-pv"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// custom mode unsupported: no usable models even if one says yes
	if u := got.UsableCustomModels(); u != nil {
		t.Errorf("UsableCustomModels = %v, want nil (custom mode unsupported)", u)
	}
	if got.HostModelName() != "POWER9" {
		t.Errorf("HostModelName = %q", got.HostModelName())
	}
	got.CPU.HostModel.Supported = false
	if got.HostModelName() != "" {
		t.Errorf("HostModelName of an unsupported host-model = %q", got.HostModelName())
	}
	var nilDC *DomainCaps
	if nilDC.HostModelName() != "" || nilDC.UsableCustomModels() != nil {
		t.Error("nil *DomainCaps must answer empty")
	}
}

func TestHostileAndBrokenXML(t *testing.T) {
	huge := make([]byte, MaxDocumentSize+1)
	for i := range huge {
		huge[i] = ' '
	}
	cases := []struct {
		name    string
		domcaps bool
		doc     string
		want    []string // substrings of the error
	}{
		{"external entity", false, `<?xml version="1.0"?>
<!DOCTYPE capabilities [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<capabilities><host><uuid>&xxe;</uuid></host></capabilities>`, []string{"libvirt capabilities XML", "line 2", "DOCTYPE/ENTITY"}},
		{"billion laughs", true, `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><domainCapabilities>&lol2;</domainCapabilities>`, []string{"libvirt domcapabilities XML", "DOCTYPE/ENTITY"}},
		{"directive inside", false, `<capabilities><host><!ENTITY x "y"></host></capabilities>`, []string{"DOCTYPE/ENTITY"}},
		{"undeclared entity", false, `<capabilities><host><uuid>&xxe;</uuid></host></capabilities>`, []string{"malformed XML", "entity"}},
		{"too big", false, string(huge), []string{"more than the limit of 16777216 bytes"}},
		{"empty", true, "  \n", []string{"libvirt domcapabilities XML: document is empty"}},
		{"wrong root", false, `<domain type='kvm'/>`, []string{"root element is <domain>, want <capabilities>"}},
		{"namespaced root", true, `<x:domainCapabilities xmlns:x="urn:x"/>`, []string{"root element is <urn:x:domainCapabilities>"}},
		{"mismatched tags", false, "<capabilities>\n<host>\n</guest>\n</capabilities>", []string{"line 3", "malformed XML"}},
		{"truncated", true, "<domainCapabilities>\n<cpu>\n<mode name='custom'", []string{"libvirt domcapabilities XML", "line 3"}},
		{"binary", false, "\x00\x01\x02\xff\xfe", []string{"libvirt capabilities XML"}},
		{"not a number", false, "<capabilities>\n<host><topology><cells><cell id='zero'/></cells></topology></host></capabilities>", []string{"line 2", `"zero" is not a valid number`}},
		{"bad wordsize", false, `<capabilities><guest><arch name='x86_64'><wordsize>sixty-four</wordsize></arch></guest></capabilities>`, []string{"wordsize", "sixty-four"}},
		{"bad unit", false, `<capabilities><host><topology><cells><cell id='0'><memory unit='parsecs'>1</memory></cell></cells></topology></host></capabilities>`, []string{"cell 0 memory", "unknown unit"}},
		{"overflowing size", false, `<capabilities><host><topology><cells><cell id='0'><memory unit='EiB'>99999</memory></cell></cells></topology></host></capabilities>`, []string{"too large"}},
		{"second root", true, `<domainCapabilities/><domainCapabilities/>`, []string{"second root element"}},
		{"text after root", false, `<capabilities/>junk`, []string{"text \"junk\" after the root element"}},
		{"text before root", false, `junk<capabilities/>`, []string{"text \"junk\" before the root element"}},
		{"no root", true, `<?xml version="1.0"?><!-- nothing -->`, []string{"no root element <domainCapabilities>"}},
		{"foreign encoding", false, `<?xml version="1.0" encoding="ISO-8859-1"?><capabilities/>`, []string{"ISO-8859-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.domcaps {
				_, err = ParseDomainCapabilities([]byte(tc.doc))
			} else {
				_, err = ParseCapabilities([]byte(tc.doc))
			}
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *ParseError: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMinimalDocuments(t *testing.T) {
	c, err := ParseCapabilities([]byte(`<capabilities/>`))
	if err != nil || c == nil || len(c.Guests) != 0 {
		t.Fatalf("empty capabilities: %+v, %v", c, err)
	}
	d, err := ParseDomainCapabilities([]byte("\ufeff<domainCapabilities><arch>s390x</arch></domainCapabilities>"))
	if err != nil || d == nil || d.Arch != arch.S390X {
		t.Fatalf("domcapabilities with a byte order mark: %+v, %v", d, err)
	}
	// Deeply nested unknown elements are skipped, not a crash or a hang.
	deep := "<capabilities>" + strings.Repeat("<a>", 200000) + strings.Repeat("</a>", 200000) + "<guest><arch name='ppc64'/></guest></capabilities>"
	c, err = ParseCapabilities([]byte(deep))
	if err != nil || len(c.Guests) != 1 {
		t.Fatalf("deep document: %v", err)
	}
}

func TestToKiB(t *testing.T) {
	cases := []struct {
		v    uint64
		unit string
		want uint64
	}{
		{4, "KiB", 4}, {4, "", 4}, {2048, "b", 2}, {2049, "bytes", 3},
		{16, "MiB", 16384}, {1, "GiB", 1 << 20}, {1, "G", 1 << 20}, {1, "TiB", 1 << 30},
		{1, "MB", 977}, {1, "KB", 1},
	}
	for _, tc := range cases {
		got, err := toKiB(tc.v, tc.unit)
		if err != nil || got != tc.want {
			t.Errorf("toKiB(%d, %q) = %d, %v; want %d", tc.v, tc.unit, got, err, tc.want)
		}
	}
	if _, err := toKiB(1<<62, "EiB"); err == nil {
		t.Error("overflow not detected")
	}
}
