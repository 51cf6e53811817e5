package domxml

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

// FuzzRender: every definition that validates renders, for every host,
// with and without fake KVM, to one well-formed domain whose elements are
// libvirt's (or polyvirt's metadata) and that round-trips through
// libvirtxml unchanged. (A sample of accepted definitions also goes
// through xmllint in TestRandomDefinitionsPassSchema.)
func FuzzRender(f *testing.F) {
	for _, p := range seedFiles() {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("name: a\narch: x86_64\nmetadata: {k: \"]]></vm><evil/>\", k2: \"&amp;\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vm, err := vmspec.Decode(data)
		if err != nil {
			return
		}
		v, err := vmspec.Validate(vm, vmspec.Options{})
		if err != nil {
			return
		}
		for _, opts := range renderVariants() {
			out, err := Render(v, opts)
			if err != nil {
				t.Fatalf("%+v: %v", opts, err)
			}
			if err := wellFormed(out); err != nil {
				t.Fatalf("%+v: %v\n%s", opts, err, out)
			}
		}
	})
}

// FuzzFakeKVM: the fake-KVM rewrite of any domain libvirtxml parses, for
// every host architecture, never panics and marshals again.
func FuzzFakeKVM(f *testing.F) {
	golden, _ := filepath.Glob("testdata/*.xml")
	for _, p := range golden {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("<domain/>"))
	f.Add([]byte("<domain><os/><devices/><cpu/></domain>"))
	f.Add([]byte(`<domain><os><type arch="x86_64"/></os><devices><disk><target bus="ide"/></disk><graphics type="spice"/><video/><serial/></devices><cpu mode="host-passthrough"><numa><cell memory="100" unit="GiB"/></numa></cpu></domain>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, host := range archspec.Arches() {
			var dom libvirtxml.Domain
			if err := dom.Unmarshal(string(data)); err != nil {
				return
			}
			if err := FakeKVM(&dom, Fake{HostArch: host, MemoryCapMiB: 300}); err != nil {
				t.Fatal(err)
			}
			if _, err := dom.Marshal(); err != nil {
				t.Fatalf("host %s: %v", host, err)
			}
			if dom.Type != "qemu" {
				t.Fatalf("host %s: type %q", host, dom.Type)
			}
		}
	})
}

func seedFiles() []string {
	var out []string
	for _, g := range []string{"testdata/*.yaml", "../../examples/*.yaml", "../../examples/invalid/*.yaml"} {
		m, _ := filepath.Glob(g)
		out = append(out, m...)
	}
	return out
}

// renderVariants are the option sets every accepted definition is rendered
// with: plain, and fake KVM on each host architecture with a memory cap.
func renderVariants() []Options {
	out := []Options{{}}
	for _, a := range archspec.Arches() {
		out = append(out, Options{FakeKVM: true, HostArch: a, MemoryCapMiB: 700})
	}
	return out
}

func TestFakeKVMOnMinimalDomains(t *testing.T) {
	docs := []string{
		"<domain></domain>",
		"<domain><os></os></domain>",
		`<domain><os><type arch="x86_64">hvm</type></os></domain>`,
		`<domain><os><type arch="x86_64">hvm</type></os><devices></devices></domain>`,
		`<domain><cpu mode="host-model"></cpu></domain>`,
		`<domain><memory>1048576</memory><cpu><numa><cell memory="1048576"></cell></numa></cpu></domain>`,
		`<domain><os><type arch="sparc">hvm</type></os></domain>`,
	}
	for _, doc := range docs {
		for _, host := range []arch.Arch{arch.X86_64, arch.PPC64LE} {
			var dom libvirtxml.Domain
			if err := dom.Unmarshal(doc); err != nil {
				t.Fatal(err)
			}
			if err := FakeKVM(&dom, Fake{HostArch: host, MemoryCapMiB: 300}); err != nil {
				t.Errorf("%s on %s: %v", doc, host, err)
				continue
			}
			out, err := dom.Marshal()
			if err != nil || !strings.Contains(out, `type="qemu"`) {
				t.Errorf("%s on %s: %v\n%s", doc, host, err, out)
			}
		}
	}
	if err := FakeKVM(nil, Fake{HostArch: arch.X86_64}); err == nil {
		t.Error("nil domain accepted")
	}
	if err := FakeKVM(&libvirtxml.Domain{}, Fake{HostArch: arch.I686}); err == nil {
		t.Error("host without rules accepted")
	}
}
