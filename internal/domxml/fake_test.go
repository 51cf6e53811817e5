package domxml

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

func spec(t *testing.T, a arch.Arch) *archspec.Spec {
	t.Helper()
	s, err := archspec.For(a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// completed is a definition as vmspec.Validate completes it.
func completed(t *testing.T, vm *vmspec.VM) *vmspec.VM {
	t.Helper()
	v, err := vmspec.Validate(vm, vmspec.Options{})
	if err != nil {
		t.Fatalf("%s: %v", vm.Name, err)
	}
	return v.VM()
}

func TestRetarget(t *testing.T) {
	pty := &vmspec.Console{Type: "pty"}
	urandom := &vmspec.RNG{Model: "virtio", Backend: "/dev/urandom"}
	usbInputs := []vmspec.Input{{Type: "tablet", Bus: "usb"}, {Type: "keyboard", Bus: "usb"}}
	cases := []struct {
		name string
		in   *vmspec.VM
		to   arch.Arch
		want *vmspec.VM
	}{{
		name: "x86_64 defaults on POWER: pseries, SLOF, a USB keyboard besides the tablet",
		in:   &vmspec.VM{Name: "tiny", Arch: "x86_64"},
		to:   arch.PPC64LE,
		want: &vmspec.VM{
			Name: "tiny", Arch: "ppc64le", OSType: "linux", Machine: "pseries", Firmware: "slof",
			CPU:     &vmspec.CPU{Sockets: 1, Cores: 1, Threads: 1, Mode: "host-model"},
			Memory:  &vmspec.Memory{SizeMiB: 1024},
			Display: &vmspec.Display{Type: "vnc", Video: "vga", Monitors: 1, Listen: "127.0.0.1"},
			Inputs:  usbInputs, USB: &vmspec.USB{Model: "qemu-xhci"}, Console: pty, RNG: urandom,
		},
	}, {
		name: "legacy pc on POWER: no IDE, floppy or PS/2, virtio NIC, vga, guest OS type kept",
		in: &vmspec.VM{
			Name: "legacy", Arch: "x86_64", OSType: "windows", Machine: "pc", Firmware: "bios",
			CPU:    &vmspec.CPU{Sockets: 2, Model: "Nehalem"},
			Memory: &vmspec.Memory{SizeMiB: 2000},
			Disks: []vmspec.Disk{
				{Source: "/img/win.qcow2", Bus: "ide"},
				{Device: "cdrom", Source: "/iso/win.iso"},
				{Device: "floppy", Source: "/img/drivers.img"},
			},
			NICs:    []vmspec.NIC{{Model: "rtl8139"}},
			Display: &vmspec.Display{Type: "vnc", Video: "cirrus", Listen: "0.0.0.0"},
			Inputs:  []vmspec.Input{{Type: "mouse", Bus: "ps2"}, {Type: "keyboard", Bus: "ps2"}, {Type: "tablet", Bus: "usb"}},
			USB:     &vmspec.USB{Model: "piix3-uhci"},
			RNG:     &vmspec.RNG{Model: "none"},
		},
		to: arch.PPC64LE,
		want: &vmspec.VM{
			Name: "legacy", Arch: "ppc64le", OSType: "windows", Machine: "pseries", Firmware: "slof",
			CPU:    &vmspec.CPU{Sockets: 2, Cores: 1, Threads: 1, Mode: "host-model"},
			Memory: &vmspec.Memory{SizeMiB: 2048},
			Disks: []vmspec.Disk{
				{Source: "/img/win.qcow2", Type: "file", Format: "qcow2", Device: "disk", Bus: "virtio", Target: "vda"},
				{Source: "/iso/win.iso", Type: "file", Format: "raw", Device: "cdrom", Bus: "scsi", Target: "sda", ReadOnly: true},
			},
			NICs:    []vmspec.NIC{{Model: "virtio"}},
			Display: &vmspec.Display{Type: "vnc", Video: "vga", Monitors: 1, Listen: "0.0.0.0"},
			Inputs:  usbInputs, USB: &vmspec.USB{Model: "qemu-xhci"}, Console: pty, RNG: &vmspec.RNG{Model: "none"},
		},
	}, {
		name: "SPICE desktop on POWER: VNC with its 8-byte password, SCSI controllers, no sound or itco",
		in: &vmspec.VM{
			Name: "desk", Arch: "x86_64", Machine: "q35",
			CPU:    &vmspec.CPU{Mode: "maximum"},
			Memory: &vmspec.Memory{SizeMiB: 16},
			Disks: []vmspec.Disk{
				{Source: "/img/a.raw", Bus: "scsi", Controller: "lsilogic"},
				{Source: "/img/b.raw", Bus: "scsi"},
				{Device: "cdrom", Source: "/iso/c.iso"},
			},
			Display:  &vmspec.Display{Type: "spice", Monitors: 3, Password: "0123456é89"},
			Sound:    &vmspec.Sound{},
			Watchdog: &vmspec.Watchdog{Model: "itco"},
			Console:  &vmspec.Console{Type: "file", Path: "/var/log/desk.log"},
		},
		to: arch.PPC64LE,
		want: &vmspec.VM{
			Name: "desk", Arch: "ppc64le", OSType: "linux", Machine: "pseries", Firmware: "slof",
			CPU:    &vmspec.CPU{Sockets: 1, Cores: 1, Threads: 1, Mode: "host-model"},
			Memory: &vmspec.Memory{SizeMiB: 256},
			Disks: []vmspec.Disk{
				{Source: "/img/a.raw", Type: "file", Format: "raw", Device: "disk", Bus: "scsi", Controller: "spapr-vscsi", Target: "sda"},
				{Source: "/img/b.raw", Type: "file", Format: "raw", Device: "disk", Bus: "scsi", Controller: "virtio-scsi", Target: "sdb"},
				{Source: "/iso/c.iso", Type: "file", Format: "raw", Device: "cdrom", Bus: "scsi", Target: "sdc", ReadOnly: true},
			},
			Display: &vmspec.Display{Type: "vnc", Video: "vga", Monitors: 1, Listen: "127.0.0.1", Password: "0123456"},
			Inputs:  usbInputs, USB: &vmspec.USB{Model: "qemu-xhci"},
			Console: &vmspec.Console{Type: "file", Path: "/var/log/desk.log"}, RNG: urandom,
		},
	}, {
		name: "POWER9 VM on aarch64: UEFI, host-passthrough, virtio video and NIC, no hot plug",
		in: &vmspec.VM{
			Name: "p9", Arch: "ppc64le",
			CPU:      &vmspec.CPU{Cores: 2, Mode: "host-model", Model: "POWER9"},
			Memory:   &vmspec.Memory{SizeMiB: 1024, MaxMiB: 4096},
			Disks:    []vmspec.Disk{{Source: "/img/d.qcow2", Bus: "scsi"}},
			NICs:     []vmspec.NIC{{Model: "spapr-vlan"}},
			Watchdog: &vmspec.Watchdog{},
		},
		to: arch.AArch64,
		want: &vmspec.VM{
			Name: "p9", Arch: "aarch64", OSType: "linux", Machine: "virt", Firmware: "efi",
			CPU:     &vmspec.CPU{Sockets: 1, Cores: 2, Threads: 1, Mode: "host-passthrough"},
			Memory:  &vmspec.Memory{SizeMiB: 1024},
			Disks:   []vmspec.Disk{{Source: "/img/d.qcow2", Type: "file", Format: "qcow2", Device: "disk", Bus: "scsi", Controller: "virtio-scsi", Target: "sda"}},
			NICs:    []vmspec.NIC{{Model: "virtio"}},
			Display: &vmspec.Display{Type: "vnc", Video: "virtio", Monitors: 1, Listen: "127.0.0.1"},
			Inputs:  usbInputs, USB: &vmspec.USB{Model: "qemu-xhci"}, Console: pty, RNG: urandom,
		},
	}, {
		name: "pc with a kernel on s390x: no firmware, no USB, virtio inputs, kernel kept",
		in: &vmspec.VM{
			Name: "z", Arch: "x86_64", Machine: "pc", Firmware: "efi",
			Disks:  []vmspec.Disk{{Device: "cdrom", Source: "/iso/c.iso"}, {Device: "floppy", Source: "/img/f.img"}},
			Kernel: &vmspec.Kernel{Path: "/boot/vmlinuz"},
		},
		to: arch.S390X,
		want: &vmspec.VM{
			Name: "z", Arch: "s390x", OSType: "linux", Machine: "s390-ccw-virtio",
			CPU:     &vmspec.CPU{Sockets: 1, Cores: 1, Threads: 1, Mode: "host-model"},
			Memory:  &vmspec.Memory{SizeMiB: 1024},
			Disks:   []vmspec.Disk{{Source: "/iso/c.iso", Type: "file", Format: "raw", Device: "cdrom", Bus: "scsi", Target: "sda", ReadOnly: true}},
			Display: &vmspec.Display{Type: "vnc", Video: "virtio", Monitors: 1, Listen: "127.0.0.1"},
			Inputs:  []vmspec.Input{{Type: "tablet", Bus: "virtio"}, {Type: "keyboard", Bus: "virtio"}},
			USB:     &vmspec.USB{}, Console: pty, RNG: urandom,
			Kernel: &vmspec.Kernel{Path: "/boot/vmlinuz", Cmdline: "console=ttyS0"},
		},
	}, {
		name: "more vCPUs than POWER takes, headless, no USB",
		in: &vmspec.VM{
			Name: "big", Arch: "x86_64",
			CPU:     &vmspec.CPU{Sockets: 2, Cores: 200},
			Display: &vmspec.Display{Type: "none"},
			USB:     &vmspec.USB{Model: "none"},
			Inputs:  []vmspec.Input{{Type: "keyboard", Bus: "ps2"}},
			Console: &vmspec.Console{Type: "none"},
		},
		to: arch.PPC64LE,
		want: &vmspec.VM{
			Name: "big", Arch: "ppc64le", OSType: "linux", Machine: "pseries", Firmware: "slof",
			CPU:     &vmspec.CPU{Sockets: 1, Cores: 384, Threads: 1, Mode: "host-model"},
			Memory:  &vmspec.Memory{SizeMiB: 1024},
			Display: &vmspec.Display{Type: "none"},
			USB:     &vmspec.USB{Model: "none"}, Console: &vmspec.Console{Type: "none"}, RNG: urandom,
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := completed(t, c.in)
			before := in.Clone()
			got := Retarget(in, spec(t, c.to))
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, in); diff != "" {
				t.Errorf("Retarget changed its input (-before +after):\n%s", diff)
			}
		})
	}
	if got := Retarget(nil, spec(t, arch.PPC64LE)); got != nil {
		t.Errorf("Retarget(nil) = %+v", got)
	}
}

// TestRetargetedDefinitionsValidate: a realistic definition of any
// architecture, retargeted for any other, is one the target's rules
// accept (but for the guest OS type, which Retarget keeps).
func TestRetargetedDefinitionsValidate(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	accepted := 0
	for i := 0; i < 3000 && accepted < 200; i++ {
		v, err := vmspec.Validate(randomVM(r, i), vmspec.Options{})
		if err != nil {
			continue
		}
		accepted++
		for _, a := range archspec.Arches() {
			to := spec(t, a)
			if to == v.Spec() {
				continue
			}
			out := Retarget(v.VM(), to)
			out.OSType = ""
			if _, err := vmspec.Validate(out, vmspec.Options{}); err != nil {
				t.Errorf("%s (%s) retargeted for %s: %v\n%+v", v.VM().Name, v.Spec().Arch, a, err, out)
			}
		}
	}
	if accepted < 200 {
		t.Fatalf("only %d random definitions validated; the generator drifted", accepted)
	}
}

func TestFakeKVMSettings(t *testing.T) {
	cases := []struct {
		vm, host arch.Arch
		capMiB   uint64
		wantArch arch.Arch
		want     settings
	}{
		{arch.PPC64LE, arch.X86_64, 300, arch.PPC64LE, settings{domainType: "qemu", tcg: true, memoryCapMiB: 512}},
		{arch.PPC64, arch.PPC64LE, 0, arch.PPC64, settings{domainType: "qemu", tcg: true}},
		{arch.X86_64, arch.X86_64, 700, arch.X86_64, settings{domainType: "qemu", tcg: true, memoryCapMiB: 700}},
		{arch.S390X, arch.X86_64, 0, arch.S390X, settings{domainType: "qemu", tcg: true}},
		{arch.X86_64, arch.PPC64LE, 1000, arch.PPC64LE, settings{domainType: "qemu", tcg: true, memoryCapMiB: 1024, libvirtAddresses: true}},
		{arch.AArch64, arch.S390X, 0, arch.S390X, settings{domainType: "qemu", tcg: true, libvirtAddresses: true}},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s VM on a %s host, cap %d", c.vm, c.host, c.capMiB)
		in := completed(t, &vmspec.VM{Name: "v", Arch: c.vm})
		vm, s, set := fakeKVM(in, spec(t, c.vm), spec(t, c.host), c.capMiB)
		if s.Arch != c.wantArch || vm.Arch != c.wantArch {
			t.Errorf("%s: built for %s (definition %s), want %s", name, s.Arch, vm.Arch, c.wantArch)
		}
		if (vm == in) == c.want.libvirtAddresses {
			t.Errorf("%s: definition retargeted = %v, want %v", name, vm != in, c.want.libvirtAddresses)
		}
		if diff := cmp.Diff(c.want, set, cmp.AllowUnexported(settings{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// TestFakeKVMMemory: the cap lowers the memory at start (and the NUMA
// cell of a hot plug VM), never the maximum, and applies in fake KVM only.
func TestFakeKVMMemory(t *testing.T) {
	type mem struct{ memory, current, max, cell uint }
	cases := []struct {
		name      string
		vm        arch.Arch
		size, max int64
		opts      Options
		want      mem
	}{
		{"x86_64 4 GiB capped to 512", arch.X86_64, 4096, 0, Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 512}, mem{512, 512, 0, 0}},
		{"POWER cap on the 256 MiB granule", arch.PPC64LE, 4096, 0, Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 300}, mem{512, 512, 0, 0}},
		{"below the cap kept", arch.X86_64, 256, 0, Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 512}, mem{256, 256, 0, 0}},
		{"hot plug: the cell follows, the maximum stays", arch.PPC64LE, 8192, 32768, Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 1000}, mem{1024, 1024, 32768, 1024}},
		{"maximum equal to the size is no hot plug", arch.X86_64, 1024, 1024, Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 512}, mem{512, 512, 0, 0}},
		{"no cap without fake KVM", arch.X86_64, 4096, 0, Options{MemoryCapMiB: 512}, mem{4096, 4096, 0, 0}},
		{"retargeted onto the POWER granule", arch.X86_64, 1000, 0, Options{FakeKVM: true, HostArch: arch.PPC64LE}, mem{1024, 1024, 0, 0}},
	}
	for _, c := range cases {
		v, err := vmspec.Validate(&vmspec.VM{Name: "m", Arch: c.vm, Memory: &vmspec.Memory{SizeMiB: c.size, MaxMiB: c.max}}, vmspec.Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		dom, err := Build(v, c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := mem{memory: dom.Memory.Value, current: dom.CurrentMemory.Value}
		if dom.MaximumMemory != nil {
			got.max = dom.MaximumMemory.Value
		}
		if dom.CPU.Numa != nil {
			got.cell = dom.CPU.Numa.Cell[0].Memory
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestFakeKVMBuild: what the pipeline writes from the settings — the domain
// type, the emulator of the architecture built for, the TCG CPU, and the
// SCSI addresses left to libvirt for a retargeted VM.
func TestFakeKVMBuild(t *testing.T) {
	vm := &vmspec.VM{Name: "b", Arch: "x86_64", Machine: "q35",
		CPU:   &vmspec.CPU{Mode: "host-passthrough"},
		Disks: []vmspec.Disk{{Source: "/img/a.raw", Bus: "scsi"}, {Device: "cdrom", Source: "/iso/c.iso"}}}
	type out struct {
		Type, Arch, Emulator, CPUMode, CPUModel string
		SCSIAddresses                           int
		Controllers                             []string
	}
	cases := []struct {
		name string
		opts Options
		want out
	}{
		{"KVM", Options{}, out{"kvm", "x86_64", "/usr/bin/qemu-system-x86_64", "host-passthrough", "", 1, []string{"scsi virtio-scsi", "usb qemu-xhci"}}},
		{"TCG on x86_64", Options{FakeKVM: true, HostArch: arch.X86_64}, out{"qemu", "x86_64", "/usr/bin/qemu-system-x86_64", "custom", "qemu64", 1, []string{"scsi virtio-scsi", "usb qemu-xhci"}}},
		{"retargeted for POWER", Options{FakeKVM: true, HostArch: arch.PPC64LE}, out{"qemu", "ppc64le", "/usr/bin/qemu-system-ppc64", "custom", "POWER8", 0, []string{"scsi virtio-scsi", "usb qemu-xhci"}}},
	}
	for _, c := range cases {
		dom, err := Build(vmValid(t, vm), c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := out{Type: dom.Type, Arch: dom.OS.Type.Arch, Emulator: dom.Devices.Emulator, CPUMode: dom.CPU.Mode}
		if dom.CPU.Model != nil {
			got.CPUModel = dom.CPU.Model.Value
		}
		for _, d := range dom.Devices.Disks {
			if d.Address != nil {
				got.SCSIAddresses++
			}
		}
		for _, ctl := range dom.Devices.Controllers {
			got.Controllers = append(got.Controllers, ctl.Type+" "+ctl.Model)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	if _, err := Build(vmValid(t, vm), Options{FakeKVM: true, HostArch: arch.I686}); err == nil {
		t.Error("a fake-KVM host without rules accepted")
	}
}

func vmValid(t *testing.T, vm *vmspec.VM) *vmspec.Valid {
	t.Helper()
	v, err := vmspec.Validate(vm, vmspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestNoAddressForADiskWithoutController: a SCSI disk that names no
// controller (only Retarget makes one) gets neither an address nor a
// controller of its own; libvirt places it.
func TestNoAddressForADiskWithoutController(t *testing.T) {
	vm := completed(t, &vmspec.VM{Name: "n", Arch: "ppc64le"})
	vm.Disks = []vmspec.Disk{{Source: "/iso/c.iso", Type: "file", Format: "raw", Device: "cdrom", Bus: "scsi", Target: "sda", ReadOnly: true}}
	b := &builder{vm: vm, spec: spec(t, arch.PPC64LE), set: settings{domainType: domainKVM},
		dom: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{}}}
	configureDisks(b)
	configureControllers(b)
	if d := b.dom.Devices.Disks; len(d) != 1 || d[0].Address != nil {
		t.Errorf("disks: %+v", d)
	}
	for _, c := range b.dom.Devices.Controllers {
		if c.Type == "scsi" {
			t.Errorf("a SCSI controller for a disk that names none: %+v", c)
		}
	}
}
