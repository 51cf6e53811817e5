package domxml

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

// randomVM makes a definition from pools of right, wrong and hostile
// values, so that a good share validates.
func randomVM(r *rand.Rand, i int) *vmspec.VM {
	pick := func(l ...string) string { return l[r.Intn(len(l))] }
	arches := []string{"x86_64", "ppc64le", "ppc64", "aarch64", "s390x"}
	a := arches[r.Intn(len(arches))]
	s, _ := archspec.Lookup(a)
	fromSpec := func(l []string) string {
		if len(l) == 0 || r.Intn(5) == 0 {
			return ""
		}
		return l[r.Intn(len(l))]
	}
	vm := &vmspec.VM{
		Name:    fmt.Sprintf("rnd-%d", i),
		Arch:    arch.Arch(a),
		Machine: pick("", s.Machine.Default, s.Machine.Default+"-7.2", "pc"),
	}
	if r.Intn(2) == 0 {
		vm.UUID = fmt.Sprintf("%08x-0000-4000-8000-%012x", r.Uint32(), r.Int63()&0xffffffffffff)
	}
	if r.Intn(2) == 0 {
		vm.CPU = &vmspec.CPU{Sockets: r.Intn(3), Cores: r.Intn(5), Threads: r.Intn(3),
			Mode: fromSpec(s.CPU.Modes), Model: fromSpec(append(s.CPU.Models, "qemu64"))}
	}
	if r.Intn(2) == 0 {
		vm.Memory = &vmspec.Memory{SizeMiB: int64(256 * (1 + r.Intn(16)))}
		if r.Intn(3) == 0 {
			vm.Memory.MaxMiB = vm.Memory.SizeMiB * 2
		}
	}
	for n := r.Intn(6); n > 0; n-- {
		d := vmspec.Disk{Device: pick("", "disk", "cdrom"), Bus: fromSpec(s.Disk.Buses)}
		if d.Device != "cdrom" || r.Intn(2) == 0 {
			d.Source = pick("/var/lib/img/", "/dev/vg/", "/srv/a&b <c>/") + fmt.Sprintf("d%d.qcow2", r.Intn(100))
		}
		if d.Bus == "scsi" {
			d.Controller = fromSpec(s.Disk.SCSIControllers)
		}
		if r.Intn(4) == 0 {
			d.BootOrder = 1 + r.Intn(5)
		}
		vm.Disks = append(vm.Disks, d)
	}
	for n := r.Intn(3); n > 0; n-- {
		nic := vmspec.NIC{Model: fromSpec(s.NIC.Allowed)}
		switch r.Intn(3) {
		case 0:
			nic.Bridge = "br0"
		case 1:
			nic.Network = "default"
		}
		if r.Intn(2) == 0 {
			nic.MAC = fmt.Sprintf("52:54:00:%02x:%02x:%02x", r.Intn(256), r.Intn(256), r.Intn(256))
		}
		vm.NICs = append(vm.NICs, nic)
	}
	if r.Intn(2) == 0 {
		g := fromSpec(append(s.GraphicsProtocols(), "none"))
		vm.Display = &vmspec.Display{Type: g, Video: fromSpec(s.VideoModels(g)), Password: pick("", "pw<&>'\"")}
	}
	if r.Intn(3) == 0 {
		vm.Console = &vmspec.Console{Type: pick("pty", "file", "none")}
		if vm.Console.Type == "file" {
			vm.Console.Path = "/var/log/polyvirt/" + vm.Name + ".log"
		}
	}
	if r.Intn(4) == 0 {
		vm.Sound = &vmspec.Sound{Model: fromSpec(s.Sound.Allowed)}
	}
	if r.Intn(4) == 0 {
		vm.Watchdog = &vmspec.Watchdog{Model: fromSpec(s.Watchdog.Allowed)}
	}
	if r.Intn(4) == 0 {
		vm.Kernel = &vmspec.Kernel{Path: "/boot/vmlinux", Initrd: pick("", "/boot/initrd.img"), Cmdline: pick("", "console=hvc0 a=\"<b>&\"")}
	}
	if r.Intn(2) == 0 {
		vm.Metadata = map[string]string{"owner": pick("alice", "]]></vm><evil/>", "a\nmulti-line\tvalue & <more>")}
	}
	return vm
}

// TestRandomDefinitionsPassSchema renders a sample of accepted random
// definitions, plain and in fake-KVM mode, and checks every output with
// libvirt's schema in one xmllint run.
func TestRandomDefinitionsPassSchema(t *testing.T) {
	r := rand.New(rand.NewSource(20240601))
	dir := t.TempDir()
	var files []string
	accepted := 0
	variants := []Options{{}, {FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 512}, {FakeKVM: true, HostArch: arch.PPC64LE}}
	for i := 0; i < 2000 && accepted < 60; i++ {
		v, err := vmspec.Validate(randomVM(r, i), vmspec.Options{})
		if err != nil {
			continue
		}
		accepted++
		for j, opts := range variants {
			out, err := Render(v, opts)
			if err != nil {
				t.Fatalf("%s: %v", v.VM().Name, err)
			}
			if err := wellFormed(out); err != nil {
				t.Fatalf("%s: %v\n%s", v.VM().Name, err, out)
			}
			f := filepath.Join(dir, fmt.Sprintf("%s-%d.xml", v.VM().Name, j))
			if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	if accepted < 60 {
		t.Fatalf("only %d random definitions validated; the generator drifted", accepted)
	}
	validateSchema(t, files...)
}
