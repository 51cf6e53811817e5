package domxml

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"libvirt.org/go/libvirtxml"

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

// FuzzRetarget: every definition that validates, retargeted for every
// architecture, leaves its input as it was, keeps its name and disks'
// sources, and renders (with fake KVM's settings) to a well-formed domain.
func FuzzRetarget(f *testing.F) {
	for _, p := range seedFiles() {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vm, err := vmspec.Decode(data)
		if err != nil {
			return
		}
		v, err := vmspec.Validate(vm, vmspec.Options{})
		if err != nil {
			return
		}
		before := v.VM().Clone()
		for _, a := range archspec.Arches() {
			to, err := archspec.For(a)
			if err != nil {
				t.Fatal(err)
			}
			out := Retarget(v.VM(), to)
			if diff := cmp.Diff(before, v.VM()); diff != "" {
				t.Fatalf("%s: Retarget changed its input:\n%s", a, diff)
			}
			if out.Arch != a || out.Name != before.Name || len(out.Disks) > len(before.Disks) {
				t.Fatalf("%s: %+v", a, out)
			}
			b := &builder{vm: out, spec: to, set: settings{domainType: domainTCG, tcg: true, libvirtAddresses: true},
				dom: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{}}}
			for _, s := range pipeline {
				s.fn(b)
			}
			doc, err := Marshal(b.dom)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			if err := wellFormed(doc); err != nil {
				t.Fatalf("%s: %v\n%s", a, err, doc)
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
