package hostpath

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/domxml"
	"polyvirt/internal/vmspec"
)

// TestFromDomainMatchesDefinition: the host paths of the domain polyvirt
// renders from a definition are the definition's own, with the same
// fields (the agent checks the domain at start and names the definition's
// fields), for every golden definition and example.
func TestFromDomainMatchesDefinition(t *testing.T) {
	files, _ := filepath.Glob("../domxml/testdata/*.yaml")
	examples, _ := filepath.Glob("../../examples/*.yaml")
	files = append(files, examples...)
	if len(files) < 5 {
		t.Fatalf("only %d definitions found", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			def, err := vmspec.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			v, err := vmspec.Validate(def, vmspec.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, opts := range []domxml.Options{{}, {FakeKVM: true, HostArch: arch.X86_64}} {
				dom, err := domxml.Build(v, opts)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(FromDefinition(v.VM()), FromDomain(dom)); diff != "" {
					t.Errorf("fake %v on %s: definition (-) and domain (+) differ:\n%s", opts.FakeKVM, opts.HostArch, diff)
				}
			}
		})
	}
}

// TestFromDomainRefusesForeignDevices: what polyvirt never renders comes
// back as Other (always refused).
func TestFromDomainRefusesForeignDevices(t *testing.T) {
	dom := &libvirtxml.Domain{
		OS: &libvirtxml.DomainOS{Kernel: "/k", DTB: "/etc/shadow"},
		Devices: &libvirtxml.DomainDeviceList{
			Disks: []libvirtxml.DomainDisk{
				{Device: "disk", Source: &libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{Protocol: "nbd"}}},
				{Device: "disk", Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: "/i/a.qcow2"}},
					Driver:       &libvirtxml.DomainDiskDriver{Type: "qcow2"},
					BackingStore: &libvirtxml.DomainDiskBackingStore{Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: "/etc/shadow"}}}},
			},
			Filesystems: []libvirtxml.DomainFilesystem{{}},
			Hostdevs:    []libvirtxml.DomainHostdev{{}},
			Serials: []libvirtxml.DomainSerial{{Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Path: "/run/x.sock"}},
				Log: &libvirtxml.DomainChardevLog{File: "/etc/passwd"}}},
			RNGs: []libvirtxml.DomainRNG{{Backend: &libvirtxml.DomainRNGBackend{EGD: &libvirtxml.DomainRNGBackendEGD{}}}},
		},
	}
	want := []Ref{
		{Field: "kernel.path", Path: "/k", Use: Kernel},
		{Field: "os.dtb", Path: "/etc/shadow", Use: Kernel},
		{Field: "disks[0].source", Use: Other},
		{Field: "disks[1].source", Path: "/i/a.qcow2", Use: Disk, Format: "qcow2"},
		{Field: "disks[1].backingStore", Use: Other},
		{Field: "console", Path: "/run/x.sock", Use: Other},
		{Field: "console.log", Path: "/etc/passwd", Use: Console},
		{Field: "rng.backend", Use: Other},
		{Field: "filesystems[0]", Use: Other},
		{Field: "hostdevs[0]", Use: Other},
	}
	if diff := cmp.Diff(want, FromDomain(dom)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
