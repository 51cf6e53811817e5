package vmspec

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
)

func mustDecode(t *testing.T, doc string) *VM {
	t.Helper()
	vm, err := Decode([]byte(doc))
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, doc)
	}
	return vm
}

func loadCaps(t *testing.T, name string) *hostreport.Report {
	t.Helper()
	h, err := LoadHostCaps("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestInvalidDefinitions is the table of definitions each architecture must
// refuse, with the exact violations.
func TestInvalidDefinitions(t *testing.T) {
	tcg := loadCaps(t, "hostcaps-x86_64-tcg.json")
	p9 := loadCaps(t, "hostcaps-power9-kvm.json")
	cases := []struct {
		name string
		doc  string
		opts Options
		want []violation
	}{
		// ppc64le / ppc64
		{"SPICE on ppc64le", "name: a\narch: ppc64le\ndisplay: {type: spice}\n", Options{},
			[]violation{{api.CodeDisplayType, "display.type"}}},
		{"qxl with VNC on ppc64le", "name: a\narch: ppc64le\ndisplay: {type: vnc, video: qxl}\n", Options{},
			[]violation{{api.CodeVideoModel, "display.video"}}},
		{"memory off 256 MiB on ppc64le", "name: a\narch: ppc64le\nmemory: {sizeMiB: 1000}\n", Options{},
			[]violation{{"MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC", "memory.sizeMiB"}}},
		{"max memory off 256 MiB on ppc64", "name: a\narch: ppc64\nmemory: {sizeMiB: 1024, maxMiB: 2000}\n", Options{},
			[]violation{{"MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC", "memory.maxMiB"}}},
		{"eight sPAPR VSCSI disks", "name: a\narch: ppc64le\ndisks:\n" + strings.Repeat("  - {bus: scsi, device: cdrom}\n", 8), Options{},
			[]violation{{api.CodeSPAPRVSCSIMax, "disks"}}},
		{"floppy on ppc64le", "name: a\narch: ppc64le\ndisks: [{device: floppy, source: /f.img}]\n", Options{},
			[]violation{{api.CodeFloppy, "disks[0].device"}}},
		{"IDE on ppc64le", "name: a\narch: ppc64le\ndisks: [{source: /a.img, bus: ide}]\n", Options{},
			[]violation{{api.CodeDiskBus, "disks[0].bus"}}},
		{"SATA on ppc64le", "name: a\narch: ppc64le\ndisks: [{source: /a.img, bus: sata}]\n", Options{},
			[]violation{{api.CodeDiskBus, "disks[0].bus"}}},
		{"sound on ppc64le", "name: a\narch: ppc64le\nsound: {model: ich9}\n", Options{},
			[]violation{{api.CodeSoundArch, "sound"}}},
		{"PS/2 on ppc64le", "name: a\narch: ppc64le\ninputs: [{type: mouse, bus: ps2}]\n", Options{},
			[]violation{{api.CodeInputBus, "inputs[0].bus"}}},
		{"e1000 on ppc64le", "name: a\narch: ppc64le\nnics: [{model: e1000}]\n", Options{},
			[]violation{{api.CodeNICModel, "nics[0].model"}}},
		{"lsilogic on ppc64le", "name: a\narch: ppc64le\ndisks: [{source: /a, bus: scsi, controller: lsilogic}]\n", Options{},
			[]violation{{api.CodeSCSIController, "disks[0].controller"}}},
		{"Nehalem on ppc64le", "name: a\narch: ppc64le\ncpu: {model: Nehalem}\n", Options{},
			[]violation{{api.CodeCPUModel, "cpu.model"}}},
		{"POWER7 on ppc64le", "name: a\narch: ppc64le\ncpu: {model: POWER7}\n", Options{},
			[]violation{{api.CodeCPUModel, "cpu.model"}}},
		{"bad compat level", "name: a\narch: ppc64le\ncpu: {mode: host-model, model: POWER6}\n", Options{},
			[]violation{{api.CodeCPUCompat, "cpu.model"}}},
		{"maximum mode on ppc64le", "name: a\narch: ppc64le\ncpu: {mode: maximum}\n", Options{},
			[]violation{{api.CodeCPUMode, "cpu.mode"}}},
		{"windows on ppc64le", "name: a\narch: ppc64le\nosType: windows\n", Options{},
			[]violation{{api.CodeOSType, "osType"}}},
		{"q35 on ppc64le", "name: a\narch: ppc64le\nmachine: q35\n", Options{},
			[]violation{{api.CodeMachineNotForArch, "machine"}}},
		{"EFI on ppc64le", "name: a\narch: ppc64le\nfirmware: efi\n", Options{},
			[]violation{{api.CodeGuestFirmware, "firmware"}}},
		{"too many vCPUs on ppc64le", "name: a\narch: ppc64le\ncpu: {sockets: 2, cores: 25, threads: 8}\n", Options{},
			[]violation{{api.CodeMaxVCPUs, "cpu"}}},
		{"USB input without USB", "name: a\narch: ppc64le\nusb: {model: none}\ninputs: [{type: tablet, bus: usb}]\n", Options{},
			[]violation{{api.CodeUSBMissing, "inputs[0].bus"}}},
		{"every POWER rule at once", `
name: power-everything
arch: ppc64le
memory: {sizeMiB: 1000}
display: {type: spice}
sound: {}
disks:
  - {device: floppy, source: /f.img}
  - {bus: ide, source: /b.img}
`, Options{}, []violation{
			{"MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC", "memory.sizeMiB"},
			{api.CodeFloppy, "disks[0].device"},
			{api.CodeDiskBus, "disks[1].bus"},
			{api.CodeDisplayType, "display.type"},
			{api.CodeSoundArch, "sound"},
		}},

		// x86_64
		{"spapr-vlan on x86_64", "name: a\narch: x86_64\nnics: [{model: spapr-vlan}]\n", Options{},
			[]violation{{api.CodeNICModel, "nics[0].model"}}},
		{"spapr-vscsi on x86_64", "name: a\narch: x86_64\ndisks: [{source: /a, bus: scsi, controller: spapr-vscsi}]\n", Options{},
			[]violation{{api.CodeSCSIController, "disks[0].controller"}}},
		{"IDE on q35", "name: a\narch: x86_64\nmachine: q35\ndisks: [{source: /a, bus: ide}]\n", Options{},
			[]violation{{api.CodeDiskBusMachine, "disks[0].bus"}}},
		{"floppy on q35", "name: a\narch: x86_64\ndisks: [{device: floppy}]\n", Options{},
			[]violation{{api.CodeDiskBusMachine, "disks[0].bus"}}},
		{"pseries on x86_64", "name: a\narch: x86_64\nmachine: pseries\n", Options{},
			[]violation{{api.CodeMachineNotForArch, "machine"}}},
		{"POWER9 compat on x86_64", "name: a\narch: x86_64\ncpu: {mode: host-model, model: POWER9}\n", Options{},
			[]violation{{api.CodeCPUCompat, "cpu.model"}}},
		{"slof on x86_64", "name: a\narch: x86_64\nfirmware: slof\n", Options{},
			[]violation{{api.CodeGuestFirmware, "firmware"}}},
		{"VNC password too long", "name: a\narch: x86_64\ndisplay: {type: vnc, password: \"123456789\"}\n", Options{},
			[]violation{{api.CodePassword, "display.password"}}},
		{"five monitors", "name: a\narch: x86_64\ndisplay: {type: spice, monitors: 5}\n", Options{},
			[]violation{{api.CodeMonitors, "display.monitors"}}},
		{"listen on a name", "name: a\narch: x86_64\ndisplay: {listen: localhost}\n", Options{},
			[]violation{{api.CodeListen, "display.listen"}}},
		{"headless with video", "name: a\narch: x86_64\ndisplay: {type: none, video: vga}\n", Options{},
			[]violation{{api.CodeHeadlessField, "display"}}},
		{"custom mode without model", "name: a\narch: x86_64\ncpu: {mode: custom}\n", Options{},
			[]violation{{api.CodeCPUModelMissing, "cpu.model"}}},
		{"model with host-passthrough", "name: a\narch: x86_64\ncpu: {mode: host-passthrough, model: Haswell}\n", Options{},
			[]violation{{api.CodeCPUModelForMode, "cpu.model"}}},
		{"unknown CPU mode", "name: a\narch: x86_64\ncpu: {mode: host}\n", Options{},
			[]violation{{api.CodeCPUMode, "cpu.mode"}}},
		{"five IDE devices", "name: a\narch: x86_64\nmachine: pc\ndisks:\n" + strings.Repeat("  - {device: cdrom, bus: ide}\n", 5), Options{},
			[]violation{{api.CodeTooManyDevices, "disks"}}},
		{"virtio CD-ROM", "name: a\narch: x86_64\ndisks: [{device: cdrom, bus: virtio}]\n", Options{},
			[]violation{{api.CodeDiskBusDevice, "disks[0].bus"}}},
		{"controller on virtio", "name: a\narch: x86_64\ndisks: [{source: /a, controller: virtio-scsi}]\n", Options{},
			[]violation{{api.CodeControllerNoBus, "disks[0].controller"}}},
		{"sound model of another arch", "name: a\narch: x86_64\nsound: {model: pcspk}\n", Options{},
			[]violation{{api.CodeSoundModel, "sound.model"}}},
		{"watchdog action", "name: a\narch: x86_64\nwatchdog: {action: explode}\n", Options{},
			[]violation{{api.CodeWatchdogAct, "watchdog.action"}}},

		// aarch64 and s390x
		{"SPICE on aarch64", "name: a\narch: aarch64\ndisplay: {type: spice}\n", Options{},
			[]violation{{api.CodeDisplayType, "display.type"}}},
		{"memory hot plug on aarch64", "name: a\narch: aarch64\nmemory: {sizeMiB: 1024, maxMiB: 4096}\n", Options{},
			[]violation{{api.CodeHotPlugMemory, "memory.maxMiB"}}},
		{"watchdog on aarch64", "name: a\narch: aarch64\nwatchdog: {}\n", Options{},
			[]violation{{api.CodeWatchdogArch, "watchdog"}}},
		{"BIOS on aarch64", "name: a\narch: aarch64\nfirmware: bios\n", Options{},
			[]violation{{api.CodeGuestFirmware, "firmware"}}},
		{"USB on s390x", "name: a\narch: s390x\nusb: {model: qemu-xhci}\n", Options{},
			[]violation{{api.CodeUSBModel, "usb.model"}}},
		{"firmware on s390x", "name: a\narch: s390x\nfirmware: efi\n", Options{},
			[]violation{{api.CodeGuestFirmware, "firmware"}}},
		{"i6300esb on s390x", "name: a\narch: s390x\nwatchdog: {model: i6300esb}\n", Options{},
			[]violation{{api.CodeWatchdogModel, "watchdog.model"}}},
		{"floppy on s390x", "name: a\narch: s390x\ndisks: [{device: floppy}]\n", Options{},
			[]violation{{api.CodeFloppy, "disks[0].device"}}},

		// any architecture
		{"no name", "arch: x86_64\n", Options{}, []violation{{api.CodeNameRequired, "name"}}},
		{"XML in the name", "name: \"a'/><evil/><x a='\"\narch: x86_64\n", Options{}, []violation{{api.CodeNameInvalid, "name"}}},
		{"ampersand in the name", "name: a&b\narch: x86_64\n", Options{}, []violation{{api.CodeNameInvalid, "name"}}},
		{"bad UUID", "name: a\narch: x86_64\nuuid: abc\n", Options{}, []violation{{api.CodeUUIDInvalid, "uuid"}}},
		{"null UUID", "name: a\narch: x86_64\nuuid: 00000000-0000-0000-0000-000000000000\n", Options{}, []violation{{api.CodeUUIDInvalid, "uuid"}}},
		{"no arch", "name: a\n", Options{}, []violation{{api.CodeArchRequired, "arch"}}},
		{"unknown arch", "name: a\narch: mips\n", Options{}, []violation{{api.CodeArchUnknown, "arch"}}},
		{"arch without rules", "name: a\narch: i686\n", Options{}, []violation{{api.CodeArchUnknown, "arch"}}},
		{"arch conflicts with --arch", "name: a\narch: x86_64\n", Options{Arch: arch.PPC64LE}, []violation{{api.CodeArchConflict, "arch"}}},
		{"newline in a path", "name: a\narch: x86_64\ndisks: [{source: \"/a\\n<b/>\"}]\n", Options{}, []violation{{api.CodePathInvalid, "disks[0].source"}}},
		{"relative path", "name: a\narch: x86_64\ndisks: [{source: images/a.qcow2}]\n", Options{}, []violation{{api.CodePathInvalid, "disks[0].source"}}},
		{"dot-dot path", "name: a\narch: x86_64\nkernel: {path: /boot/../etc/shadow}\n", Options{}, []violation{{api.CodePathInvalid, "kernel.path"}}},
		{"NUL in a kernel cmdline", "name: a\narch: x86_64\nkernel: {path: /k, cmdline: \"a\\0b\"}\n", Options{}, []violation{{api.CodeControlChars, "kernel.cmdline"}}},
		{"newline in the cmdline", "name: a\narch: x86_64\nkernel: {path: /k, cmdline: \"a\\nb\"}\n", Options{}, []violation{{api.CodeControlChars, "kernel.cmdline"}}},
		{"initrd without kernel", "name: a\narch: x86_64\nkernel: {initrd: /i}\n", Options{}, []violation{{api.CodeKernelRequired, "kernel.path"}}},
		{"negative memory", "name: a\narch: x86_64\nmemory: {sizeMiB: -1}\n", Options{}, []violation{{api.CodeMemoryRange, "memory.sizeMiB"}}},
		{"absurd memory", "name: a\narch: x86_64\nmemory: {sizeMiB: 9223372036854775807}\n", Options{}, []violation{{api.CodeMemoryRange, "memory.sizeMiB"}}},
		{"max below size", "name: a\narch: x86_64\nmemory: {sizeMiB: 2048, maxMiB: 1024}\n", Options{}, []violation{{api.CodeMaxMemory, "memory.maxMiB"}}},
		{"negative cores", "name: a\narch: x86_64\ncpu: {cores: -2}\n", Options{}, []violation{{api.CodeCPUTopology, "cpu.cores"}}},
		{"absurd vCPUs", "name: a\narch: x86_64\ncpu: {sockets: 2000000, cores: 2000000, threads: 2000000}\n", Options{}, []violation{{api.CodeMaxVCPUs, "cpu"}}},
		{"disk without source", "name: a\narch: x86_64\ndisks: [{bus: virtio}]\n", Options{}, []violation{{api.CodeDiskSource, "disks[0].source"}}},
		{"same target twice", "name: a\narch: x86_64\ndisks: [{source: /a, target: vda}, {source: /b, target: vda}]\n", Options{},
			[]violation{{api.CodeDiskTargetDup, "disks[1].target"}}},
		{"target of another bus", "name: a\narch: x86_64\ndisks: [{source: /a, target: sda}]\n", Options{}, []violation{{api.CodeDiskTarget, "disks[0].target"}}},
		{"same image twice", "name: a\narch: x86_64\ndisks: [{source: /a}, {source: /a}]\n", Options{}, []violation{{api.CodeDiskSourceDup, "disks[1].source"}}},
		{"same MAC twice", "name: a\narch: x86_64\nnics: [{mac: \"52:54:00:00:00:01\"}, {mac: \"52:54:00:00:00:01\"}]\n", Options{},
			[]violation{{api.CodeMACDuplicate, "nics[1].mac"}}},
		{"same MAC in another case", "name: a\narch: x86_64\nnics: [{mac: \"52:54:00:AA:00:01\"}, {mac: \"52:54:00:aa:00:01\"}]\n", Options{},
			[]violation{{api.CodeMACDuplicate, "nics[1].mac"}}},
		{"multicast MAC", "name: a\narch: x86_64\nnics: [{mac: \"01:00:5e:00:00:01\"}]\n", Options{}, []violation{{api.CodeMACInvalid, "nics[0].mac"}}},
		{"bad MAC", "name: a\narch: x86_64\nnics: [{mac: \"52:54:00:00:01\"}]\n", Options{}, []violation{{api.CodeMACInvalid, "nics[0].mac"}}},
		{"bridge and network", "name: a\narch: x86_64\nnics: [{bridge: br0, network: default}]\n", Options{}, []violation{{api.CodeNICSource, "nics[0]"}}},
		{"bridge with a slash", "name: a\narch: x86_64\nnics: [{bridge: \"br0/../x\"}]\n", Options{}, []violation{{api.CodeNICName, "nics[0].bridge"}}},
		{"same boot order twice", "name: a\narch: x86_64\ndisks: [{source: /a, bootOrder: 1}]\nnics: [{bootOrder: 1}]\n", Options{},
			[]violation{{api.CodeBootOrderDup, "nics[0].bootOrder"}}},
		{"negative boot order", "name: a\narch: x86_64\ndisks: [{source: /a, bootOrder: -1}]\n", Options{}, []violation{{api.CodeBootOrder, "disks[0].bootOrder"}}},
		{"two identical inputs", "name: a\narch: x86_64\ninputs: [{type: tablet, bus: usb}, {type: tablet, bus: usb}]\n", Options{},
			[]violation{{api.CodeInputDup, "inputs[1]"}}},
		{"unknown input", "name: a\narch: x86_64\ninputs: [{type: joystick}]\n", Options{}, []violation{{api.CodeInputType, "inputs[0].type"}}},
		{"file console without path", "name: a\narch: x86_64\nconsole: {type: file}\n", Options{}, []violation{{api.CodeConsolePath, "console.path"}}},
		{"pty console with a path", "name: a\narch: x86_64\nconsole: {path: /tmp/x}\n", Options{}, []violation{{api.CodeConsoleField, "console.path"}}},
		{"bad metadata key", "name: a\narch: x86_64\nmetadata: {\"<x>\": v}\n", Options{}, []violation{{api.CodeMetadataKey, `metadata["<x>"]`}}},
		{"control character in metadata", "name: a\narch: x86_64\nmetadata: {k: \"a\\x1bb\"}\n", Options{}, []violation{{api.CodeControlChars, "metadata.k"}}},
		{"bidi override in metadata", "name: a\narch: x86_64\nmetadata: {owner: \"alice\u202e\"}\n", Options{}, []violation{{api.CodeFormatChars, "metadata.owner"}}},
		{"bidi isolate in metadata", "name: a\narch: x86_64\nmetadata: {owner: \"\u2066x\u2069\"}\n", Options{}, []violation{{api.CodeFormatChars, "metadata.owner"}}},
		{"zero width space in the cmdline", "name: a\narch: x86_64\nkernel: {path: /k, cmdline: \"quiet\u200b\"}\n", Options{}, []violation{{api.CodeFormatChars, "kernel.cmdline"}}},
		{"bidi override in a path", "name: a\narch: x86_64\ndisks: [{source: \"/var/lib/polyvirt/images/\u202egpj.qcow2\"}]\n", Options{}, []violation{{api.CodePathInvalid, "disks[0].source"}}},
		{"soft hyphen in a bridge", "name: a\narch: x86_64\nnics: [{bridge: \"br\u00ad0\"}]\n", Options{}, []violation{{api.CodeFormatChars, "nics[0].bridge"}}},
		{"console path where the host names it", "name: a\narch: x86_64\nconsole: {type: file, path: /etc/passwd}\n", Options{HostConsole: true},
			[]violation{{api.CodePathNotAllowed, "console.path"}}},
		{"console log where the host names it", "name: a\narch: x86_64\nconsole: {log: /etc/cron.d/x}\n", Options{HostConsole: true},
			[]violation{{api.CodePathNotAllowed, "console.log"}}},
		{"pty console with a path where the host names it", "name: a\narch: x86_64\nconsole: {path: /tmp/x}\n", Options{HostConsole: true},
			[]violation{{api.CodePathNotAllowed, "console.path"}}},
		{"huge string", "name: a\narch: x86_64\nmachine: " + strings.Repeat("q", 2000) + "\n", Options{}, []violation{{api.CodeTooLong, "machine"}}},

		// against a host's capabilities
		{"x86_64 VM on a POWER9 host", "name: a\narch: x86_64\n", Options{Host: p9}, []violation{{api.CodeHostArch, "arch"}}},
		{"POWER10 on a POWER9 host", "name: a\narch: ppc64le\ncpu: {model: POWER10}\n", Options{Host: p9}, []violation{{api.CodeHostCPUModel, "cpu.model"}}},
		{"host-passthrough on a host without it", "name: a\narch: ppc64le\ncpu: {mode: host-passthrough}\n", Options{Host: p9},
			[]violation{{api.CodeUseHostCPU, "cpu.mode"}}},
		{"versioned machine the host lacks", "name: a\narch: ppc64le\nmachine: pseries-9.0\n", Options{Host: p9}, []violation{{api.CodeHostMachine, "machine"}}},
		{"USB disk bus the host lacks", "name: a\narch: x86_64\ndisks: [{source: /a, bus: usb}]\n", Options{Host: loadCapsNoUSB(t, tcg)},
			[]violation{{api.CodeHostDiskBus, "disks[0].bus"}}},
		{"bochs the POWER9 host lacks", "name: a\narch: ppc64le\ndisplay: {video: virtio}\ninputs: []\n", Options{Host: withoutVideo(p9, "virtio")},
			[]violation{{api.CodeHostVideo, "display.video"}}},
		{"Haswell on the TCG host", "name: a\narch: x86_64\ncpu: {model: Haswell}\n", Options{Host: tcg}, []violation{{api.CodeHostCPUModel, "cpu.model"}}},
		{"a model a fake-KVM host does not present", "name: a\narch: x86_64\ncpu: {model: Icelake-Server-noTSX}\n", Options{Host: fakeX86(t)}, []violation{{api.CodeHostCPUModel, "cpu.model"}}},
		{"a model a fake-KVM profile host does not present", "name: a\narch: x86_64\ncpu: {model: Opteron_G4}\n", Options{Host: func() *hostreport.Report { r := ownTCG(t); r.Profile = "x86-2s-intel"; return r }()}, []violation{{api.CodeHostCPUModel, "cpu.model"}}},
		{"s390x on the x86_64 TCG host", "name: a\narch: s390x\n", Options{Host: tcg}, []violation{{api.CodeHostArch, "arch"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Validate(mustDecode(t, c.doc), c.opts)
			if v != nil {
				t.Errorf("accepted: %+v", v.VM())
			}
			if diff := cmp.Diff(c.want, violations(err)); diff != "" {
				t.Errorf("(-want +got):\n%s\n%v", diff, err)
			}
			var es api.Errors
			if errors.As(err, &es) {
				for _, e := range es {
					if !strings.Contains(e.Message, ";") && !strings.Contains(e.Message, "needs") && !strings.Contains(e.Message, "give") {
						t.Errorf("%s: the message does not say what to do: %q", e.Code, e.Message)
					}
				}
			}
		})
	}
}

// fakeX86 is the TCG host in fake-KVM mode presenting a Cascadelake (as
// archspec's fake x86_64 flags do: model_Cascadelake-Server).
func fakeX86(t *testing.T) *hostreport.Report {
	t.Helper()
	c := *loadCaps(t, "hostcaps-x86_64-tcg.json")
	c.FakeKVM = true
	c.CPU.Models = []string{"Nehalem", "Cascadelake-Server", "qemu64"}
	return &c
}

// ownTCG is the x86_64 TCG host as an agent on a machine without usable
// KVM reports it: its own CPU, virtualization tcg, fake-KVM mode.
func ownTCG(t *testing.T) *hostreport.Report {
	t.Helper()
	c := *loadCaps(t, "hostcaps-x86_64-tcg.json")
	c.FakeKVM = true
	c.Virt.Virtualization, c.Virt.KVMReason = "tcg", "/dev/kvm is absent"
	return &c
}

func loadCapsNoUSB(t *testing.T, h *hostreport.Report) *hostreport.Report {
	t.Helper()
	c := *h
	c.Virt.DiskBuses = []string{"ide", "fdc", "scsi", "virtio", "sata"}
	return &c
}

func withoutVideo(h *hostreport.Report, video string) *hostreport.Report {
	c := *h
	c.Virt.Video = nil
	for _, v := range h.Virt.Video {
		if v != video {
			c.Virt.Video = append(c.Virt.Video, v)
		}
	}
	return &c
}

// TestDefaults checks what each architecture fills in.
func TestDefaults(t *testing.T) {
	ppc := validOK(t, "name: p\narch: ppc64el\ndisks: [{source: /a.qcow2}, {device: cdrom}]\nnics: [{}]\n", Options{})
	want := &VM{
		Name: "p", Arch: "ppc64le", OSType: "linux", Machine: "pseries", Firmware: "slof",
		CPU:    &CPU{Sockets: 1, Cores: 1, Threads: 1, Mode: "host-model"},
		Memory: &Memory{SizeMiB: 1024},
		Disks: []Disk{
			{Source: "/a.qcow2", Type: "file", Format: "qcow2", Device: "disk", Bus: "virtio", Target: "vda"},
			{Type: "file", Format: "raw", Device: "cdrom", Bus: "scsi", Controller: "spapr-vscsi", Target: "sda", ReadOnly: true},
		},
		NICs:    []NIC{{Model: "virtio"}},
		Display: &Display{Type: "vnc", Video: "vga", Monitors: 1, Listen: "127.0.0.1"},
		Inputs:  []Input{{"tablet", "usb"}, {"keyboard", "usb"}},
		USB:     &USB{Model: "qemu-xhci"},
		Console: &Console{Type: "pty"},
		RNG:     &RNG{Model: "virtio", Backend: "/dev/urandom"},
	}
	if diff := cmp.Diff(want, ppc); diff != "" {
		t.Errorf("ppc64le defaults (-want +got):\n%s", diff)
	}

	cases := []struct {
		name string
		doc  string
		opts Options
		got  func(*VM) any
		want any
	}{
		{"x86 cdrom on q35 is sata", "name: a\narch: x86_64\ndisks: [{device: cdrom}]\n", Options{}, func(v *VM) any { return v.Disks[0].Bus }, "sata"},
		{"x86 cdrom on pc is ide", "name: a\narch: x86_64\nmachine: pc-i440fx-7.2\ndisks: [{device: cdrom}]\n", Options{}, func(v *VM) any { return v.Disks[0].Target }, "hda"},
		{"x86 inputs", "name: a\narch: x86_64\n", Options{}, func(v *VM) any { return v.Inputs }, []Input{{"tablet", "usb"}}},
		{"x86 spice video", "name: a\narch: x86_64\ndisplay: {type: spice}\n", Options{}, func(v *VM) any { return v.Display.Video }, "qxl"},
		{"x86 firmware", "name: a\narch: x86_64\n", Options{}, func(v *VM) any { return v.Firmware }, "bios"},
		{"s390x is headless", "name: a\narch: s390x\n", Options{}, func(v *VM) any { return v.Display.Type }, "none"},
		{"s390x has no inputs", "name: a\narch: s390x\n", Options{}, func(v *VM) any { return v.Inputs }, []Input(nil)},
		{"aarch64 CPU", "name: a\narch: aarch64\n", Options{}, func(v *VM) any { return v.CPU.Mode }, "host-passthrough"},
		{"model means custom", "name: a\narch: ppc64le\ncpu: {model: power9}\n", Options{}, func(v *VM) any { return *v.CPU }, CPU{1, 1, 1, "custom", "POWER9"}},
		{"kernel cmdline on POWER", "name: a\narch: ppc64le\nkernel: {path: /vmlinux}\n", Options{}, func(v *VM) any { return v.Kernel.Cmdline }, "console=hvc0"},
		{"kernel cmdline on x86", "name: a\narch: x86_64\nkernel: {path: /vmlinuz}\n", Options{}, func(v *VM) any { return v.Kernel.Cmdline }, "console=ttyS0"},
		{"no USB: no USB inputs", "name: a\narch: ppc64le\nusb: {model: none}\n", Options{}, func(v *VM) any { return v.Inputs }, []Input(nil)},
		{"explicitly no inputs", "name: a\narch: ppc64le\ninputs: []\n", Options{}, func(v *VM) any { return len(v.Inputs) }, 0},
		{"arch from --arch", "name: a\n", Options{Arch: arch.PPC64LE}, func(v *VM) any { return v.Arch }, arch.PPC64LE},
		{"arch from the host", "name: a\n", Options{Host: loadCaps(t, "hostcaps-power9-kvm.json")}, func(v *VM) any { return v.Arch }, arch.PPC64LE},
		{"UUID canonical", "name: a\narch: x86_64\nuuid: 6F1C1A9E3D2B4C559A0E2B7D1C9E4F10\n", Options{}, func(v *VM) any { return v.UUID }, "6f1c1a9e-3d2b-4c55-9a0e-2b7d1c9e4f10"},
		{"MAC lower case", "name: a\narch: x86_64\nnics: [{mac: \"52:54:00:AB:CD:EF\"}]\n", Options{}, func(v *VM) any { return v.NICs[0].MAC }, "52:54:00:ab:cd:ef"},
		{"targets skip taken names", "name: a\narch: x86_64\ndisks: [{source: /a}, {source: /b, target: vda}]\n", Options{}, func(v *VM) any { return v.Disks[0].Target }, "vdb"},
		{"ppc64le on the x86 TCG host", "name: a\narch: ppc64le\ncpu: {model: POWER9}\n", Options{Host: loadCaps(t, "hostcaps-x86_64-tcg.json")}, func(v *VM) any { return v.Arch }, arch.PPC64LE},
		{"a model a fake-KVM host presents but TCG lacks", "name: a\narch: x86_64\ncpu: {model: Cascadelake-Server}\n", Options{Host: fakeX86(t)}, func(v *VM) any { return v.CPU.Model }, "Cascadelake-Server"},
		{"a variant of a model a fake-KVM host presents", "name: a\narch: x86_64\ncpu: {model: Cascadelake-Server-noTSX}\n", Options{Host: fakeX86(t)}, func(v *VM) any { return v.CPU.Model }, "Cascadelake-Server-noTSX"},
		{"any model on a host that is its own machine under TCG (its cluster's AMD type)", "name: a\narch: x86_64\ncpu: {model: Opteron_G4}\n", Options{Host: ownTCG(t)}, func(v *VM) any { return v.CPU.Model }, "Opteron_G4"},
		{"host-model on the TCG host", "name: a\narch: x86_64\n", Options{Host: loadCaps(t, "hostcaps-x86_64-tcg.json")}, func(v *VM) any { return v.CPU.Mode }, "host-model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := validOK(t, c.doc, c.opts)
			if diff := cmp.Diff(c.want, c.got(v)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func validOK(t *testing.T, doc string, opts Options) *VM {
	t.Helper()
	in := mustDecode(t, doc)
	before := in.Clone()
	v, err := Validate(in, opts)
	if err != nil {
		t.Fatalf("refused: %v\n%s", err, doc)
	}
	if diff := cmp.Diff(before, in); diff != "" {
		t.Errorf("Validate changed its input:\n%s", diff)
	}
	return v.VM()
}

func TestDriveLetters(t *testing.T) {
	for n, want := range map[int]string{0: "a", 1: "b", 25: "z", 26: "aa", 27: "ab", 701: "zz", 702: "aaa"} {
		if got := driveLetters(n); got != want {
			t.Errorf("driveLetters(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestErrorText(t *testing.T) {
	es := api.Errors{{Code: "A", Field: "x.y", Message: "bad; do this"}, {Code: "B", Message: "worse; do that"}}
	if got, want := es.Error(), "A: x.y: bad; do this\nB: worse; do that"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if diff := cmp.Diff([]string{"A", "B"}, es.Codes()); diff != "" || !es.Has("B") || es.Has("C") {
		t.Errorf("Codes/Has wrong: %s", diff)
	}
}

// TestHostConsole: where the host names the console's files, a file
// console needs no path and a pty console no log; without HostConsole a
// file console still needs its path.
func TestHostConsole(t *testing.T) {
	for _, doc := range []string{
		"name: a\narch: x86_64\nconsole: {type: file}\n",
		"name: a\narch: ppc64le\nconsole: {type: pty}\n",
		"name: a\narch: ppc64le\n",
		"name: a\narch: ppc64le\nconsole: {type: none}\n",
	} {
		vm := validOK(t, doc, Options{HostConsole: true})
		if vm.Console.Path != "" || vm.Console.Log != "" {
			t.Errorf("%q: the console names a file: %+v", doc, vm.Console)
		}
	}
	vm := validOK(t, "name: a\narch: x86_64\nconsole: {type: file, path: /var/log/a.log}\n", Options{})
	if vm.Console.Path != "/var/log/a.log" {
		t.Errorf("offline file console: %+v", vm.Console)
	}
}
