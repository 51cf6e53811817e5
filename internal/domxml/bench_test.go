package domxml

import (
	"fmt"
	"testing"

	"polyvirt/internal/vmspec"
)

// twentyDevices is an x86_64 definition with 20 devices: 8 disks, 4 NICs,
// a display with its video, 2 inputs, a USB controller, a console, a sound
// card and a watchdog (plus the RNG, panic and balloon polyvirt adds).
func twentyDevices(tb testing.TB) *vmspec.Valid {
	vm := &vmspec.VM{
		Name: "bench", Arch: "x86_64",
		CPU:      &vmspec.CPU{Cores: 4, Mode: "host-model"},
		Memory:   &vmspec.Memory{SizeMiB: 4096},
		Display:  &vmspec.Display{Type: "spice", Monitors: 2},
		Inputs:   []vmspec.Input{{Type: "tablet", Bus: "usb"}, {Type: "keyboard", Bus: "usb"}},
		Sound:    &vmspec.Sound{Model: "ich9"},
		Watchdog: &vmspec.Watchdog{},
		Metadata: map[string]string{"owner": "bench"},
	}
	for i := 0; i < 8; i++ {
		bus := []string{"virtio", "scsi", "sata", "virtio"}[i%4]
		vm.Disks = append(vm.Disks, vmspec.Disk{Source: fmt.Sprintf("/var/lib/img/disk%d.qcow2", i), Bus: bus})
	}
	for i := 0; i < 4; i++ {
		vm.NICs = append(vm.NICs, vmspec.NIC{Bridge: "br0", MAC: fmt.Sprintf("52:54:00:00:00:%02x", i+1)})
	}
	v, err := vmspec.Validate(vm, vmspec.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// BenchmarkRender20Devices is the figure in docs/benchmarks.md: a
// validated 20-device definition to domain XML text.
func BenchmarkRender20Devices(b *testing.B) {
	v := twentyDevices(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Render(v, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuild20Devices is the pipeline alone (libvirtxml structs, no
// XML text).
func BenchmarkBuild20Devices(b *testing.B) {
	v := twentyDevices(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Build(v, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate20Devices is the validation and defaults of the same
// definition.
func BenchmarkValidate20Devices(b *testing.B) {
	vm := twentyDevices(b).VM()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := vmspec.Validate(vm, vmspec.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTwentyDevices(t *testing.T) {
	dom, err := Build(twentyDevices(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := dom.Devices
	n := len(d.Disks) + len(d.Interfaces) + len(d.Graphics) + len(d.Videos) + len(d.Inputs) +
		len(d.Consoles) + len(d.Sounds) + len(d.Watchdogs)
	for _, c := range d.Controllers {
		if c.Type == "usb" {
			n++
		}
	}
	if n != 20 {
		t.Errorf("the benchmark definition has %d devices, not 20", n)
	}
}
