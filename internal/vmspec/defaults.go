package vmspec

import (
	"sort"
	"strings"

	"polyvirt/internal/archspec"
)

// DefaultListen is the address a display listens on when the definition
// names none: local only, reached through an SSH tunnel or the web console.
const DefaultListen = "127.0.0.1"

// DefaultRNGBackend is the host device feeding a VM's RNG.
const DefaultRNGBackend = "/dev/urandom"

// applyDefaults fills in what the definition leaves out, from the
// architecture's rules. It never fails: values it cannot make sense of are
// left for the checks to report.
func applyDefaults(vm *VM, spec *archspec.Spec) {
	if vm.OSType == "" {
		vm.OSType = spec.GuestOS.Default
	}
	if vm.Machine == "" {
		vm.Machine = spec.Machine.Default
	}
	if vm.Firmware == "" {
		vm.Firmware = spec.DefaultFirmware()
	}
	if vm.CPU == nil {
		vm.CPU = &CPU{}
	}
	c := vm.CPU
	for _, n := range []*int{&c.Sockets, &c.Cores, &c.Threads} {
		if *n == 0 {
			*n = 1
		}
	}
	if c.Mode == "" {
		if c.Model != "" {
			c.Mode = "custom"
		} else {
			c.Mode = spec.CPU.DefaultMode
		}
	}
	if vm.Memory == nil {
		vm.Memory = &Memory{}
	}
	if vm.Memory.SizeMiB == 0 {
		vm.Memory.SizeMiB = int64(spec.Memory.DefaultMiB)
	}

	for i := range vm.Disks {
		d := &vm.Disks[i]
		if d.Device == "" {
			d.Device = "disk"
		}
		if d.Type == "" {
			d.Type = "file"
			if strings.HasPrefix(d.Source, "/dev/") {
				d.Type = "block"
			}
		}
		if d.Format == "" {
			d.Format = "raw"
			name := d.Source
			if name == "" {
				name = d.Volume
			}
			if strings.HasSuffix(strings.ToLower(name), ".qcow2") {
				d.Format = "qcow2"
			}
		}
		if d.Bus == "" {
			switch d.Device {
			case "cdrom":
				d.Bus = spec.CDROMBus(vm.Machine)
			case "floppy":
				d.Bus = "fdc"
			default:
				d.Bus = spec.Disk.DefaultBus
			}
		}
		if d.Bus == "scsi" && d.Controller == "" {
			d.Controller = spec.DefaultSCSIController()
		}
		if d.Device == "cdrom" {
			d.ReadOnly = true
		}
	}
	for i := range vm.NICs {
		if vm.NICs[i].Model == "" {
			vm.NICs[i].Model = spec.NIC.Default
		}
	}

	if vm.Display == nil {
		vm.Display = &Display{}
		if spec.Display.Headless {
			vm.Display.Type = "none"
		}
	}
	d := vm.Display
	if d.Type == "" {
		d.Type = spec.Display.Default.Graphics
	}
	if d.Type != "none" {
		if d.Video == "" {
			d.Video = spec.DefaultVideo(d.Type)
		}
		if d.Monitors == 0 {
			d.Monitors = 1
		}
		if d.Listen == "" {
			d.Listen = DefaultListen
		}
	}

	if vm.USB == nil {
		vm.USB = &USB{}
	}
	if vm.USB.Model == "" {
		vm.USB.Model = spec.USB.Default
	}
	usb := vm.USB.Model != "" && vm.USB.Model != "none"
	if vm.Inputs == nil && d.Type != "none" {
		for _, in := range spec.Input.Defaults {
			if in.Bus != "usb" || usb {
				vm.Inputs = append(vm.Inputs, Input{Type: in.Type, Bus: in.Bus})
			}
		}
	}
	for i := range vm.Inputs {
		if vm.Inputs[i].Bus == "" && len(spec.Input.Buses) > 0 {
			vm.Inputs[i].Bus = spec.Input.Buses[0]
		}
	}

	if vm.Console == nil {
		vm.Console = &Console{}
	}
	if vm.Console.Type == "" {
		vm.Console.Type = "pty"
	}
	if s := vm.Sound; s != nil && s.Model == "" && len(spec.Sound.Allowed) > 0 {
		s.Model = spec.Sound.Allowed[0]
	}
	if w := vm.Watchdog; w != nil {
		if w.Model == "" && len(spec.Watchdog.Allowed) > 0 {
			w.Model = spec.Watchdog.Allowed[0]
		}
		if w.Action == "" {
			w.Action = "reset"
		}
	}
	if vm.RNG == nil {
		vm.RNG = &RNG{}
	}
	if vm.RNG.Model == "" {
		vm.RNG.Model = spec.RNG.Default
	}
	if vm.RNG.Model != "" && vm.RNG.Model != "none" && vm.RNG.Backend == "" {
		vm.RNG.Backend = DefaultRNGBackend
	}
	if k := vm.Kernel; k != nil && k.Cmdline == "" && vm.Console.Type != "none" {
		k.Cmdline = "console=" + spec.Console.GuestDevice
	}
}

// AssignTargets gives every disk without a target the next free device
// name of its bus (vda, vdb, ...; sda, ... shared by scsi, sata and usb),
// as libvirt names them. Validate calls it; a transformation that moves
// disks to another bus clears their targets and calls it again.
func AssignTargets(vm *VM) {
	taken := map[string]bool{}
	for _, d := range vm.Disks {
		if d.Target != "" {
			taken[d.Target] = true
		}
	}
	next := map[string]int{}
	for i := range vm.Disks {
		d := &vm.Disks[i]
		if d.Target != "" {
			continue
		}
		prefix := targetPrefix[d.Bus]
		for {
			name := prefix + driveLetters(next[prefix])
			next[prefix]++
			if !taken[name] {
				d.Target = name
				taken[name] = true
				break
			}
		}
	}
}

// driveLetters is libvirt's disk suffix: 0 → a, 25 → z, 26 → aa.
func driveLetters(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('a' + n%26)}, b...)
		n = n/26 - 1
		if n < 0 {
			return string(b)
		}
	}
}

func sortStrings(s []string) { sort.Strings(s) }
