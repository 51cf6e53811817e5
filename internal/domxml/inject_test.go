package domxml

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/vmspec"
)

// TestNoInjection: hostile values end up as text or attribute values, never
// as elements, and come back unchanged.
func TestNoInjection(t *testing.T) {
	hostile := map[string]string{
		"close":   "]]></vm></metadata><devices><hostdev/></devices><metadata>",
		"quotes":  `a"b'c<d>&e;&amp;`,
		"newline": "line1\nline2\t<tab>",
		"entity":  "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/shadow'>]>&e;",
	}
	vm := &vmspec.VM{
		Name: "inject", Arch: "x86_64",
		Display:  &vmspec.Display{Type: "vnc", Password: `"/><x`},
		Disks:    []vmspec.Disk{{Source: `/img/a"><source file='/etc/shadow'/>.qcow2`}},
		Kernel:   &vmspec.Kernel{Path: "/boot/<vmlinuz>", Cmdline: `console=ttyS0 x="</cmdline><kernel>/evil</kernel>"`},
		Metadata: hostile,
	}
	v, err := vmspec.Validate(vm, vmspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := wellFormed(out); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if len(dom.Devices.Hostdevs) != 0 || len(dom.Devices.Disks) != 1 || dom.OS.Kernel != "/boot/<vmlinuz>" ||
		dom.OS.Cmdline != vm.Kernel.Cmdline || dom.Devices.Disks[0].Source.File.File != vm.Disks[0].Source ||
		dom.Devices.Graphics[0].VNC.Passwd != vm.Display.Password {
		t.Errorf("a value changed the domain:\n%s", out)
	}
	md, err := ParseMetadata(&dom)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range md.Entries {
		got[e.Key] = e.Value
	}
	if diff := cmp.Diff(hostile, got); diff != "" || md.OSType != "linux" {
		t.Errorf("metadata did not come back (-sent +got):\n%s", diff)
	}
	if strings.Count(out, "<metadata>") != 1 {
		t.Errorf("more than one <metadata>:\n%s", out)
	}
}

func TestParseMetadataWithoutOurs(t *testing.T) {
	for _, dom := range []*libvirtxml.Domain{nil, {}, {Metadata: &libvirtxml.DomainMetadata{XML: `<other xmlns="urn:x"/>`}}} {
		if md, err := ParseMetadata(dom); md != nil || err != nil {
			t.Errorf("%+v: got %+v, %v", dom, md, err)
		}
	}
}

func TestPipelineSteps(t *testing.T) {
	want := []string{"identity", "os", "platform", "cpu", "memory", "disks", "controllers", "nics", "graphics",
		"video", "inputs", "console", "sound", "watchdog", "rng", "panic", "balloon", "metadata"}
	if diff := cmp.Diff(want, Steps()); diff != "" {
		t.Errorf("pipeline (-want +got):\n%s", diff)
	}
}
