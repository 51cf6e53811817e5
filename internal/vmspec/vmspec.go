// Package vmspec is the VM definition: the type a user writes once (YAML or
// JSON), its strict decoding, the defaults each architecture fills in, and
// its validation — every violation at once, each with a stable code, the
// field path and a sentence saying what to do instead.
//
// What an architecture allows comes from package archspec; this package
// never tests an architecture name itself. The format is documented in
// docs/vm-definition.md.
package vmspec

import "polyvirt/internal/arch"

// VM is one VM definition. Every field but the name is optional: Validate
// fills in the architecture's defaults.
type VM struct {
	// Name is the libvirt domain name: letters, digits, '.', '_' and '-',
	// starting with a letter or digit, at most 64 characters.
	Name string `json:"name"`
	// UUID is the domain UUID (8-4-4-4-12 hex digits); libvirt makes one
	// when it is empty.
	UUID string `json:"uuid,omitempty"`
	// Arch is the guest architecture (x86_64, ppc64le, ppc64, aarch64,
	// s390x, or an alias such as amd64 or ppc64el).
	Arch arch.Arch `json:"arch,omitempty"`
	// OSType is the guest operating system type: linux, windows, other.
	OSType string `json:"osType,omitempty"`
	// Machine is the emulated machine (q35, pc-i440fx-7.2, pseries, ...).
	Machine string `json:"machine,omitempty"`
	// Firmware is bios or efi on x86_64, slof on POWER, efi on aarch64.
	Firmware string `json:"firmware,omitempty"`
	// CPU is the vCPU topology and model.
	CPU *CPU `json:"cpu,omitempty"`
	// Memory is the guest memory.
	Memory *Memory `json:"memory,omitempty"`
	// Disks are the disks, CD-ROMs and floppies in order.
	Disks []Disk `json:"disks,omitempty"`
	// NICs are the network interfaces.
	NICs []NIC `json:"nics,omitempty"`
	// Display is the graphical console; nil gives the architecture's
	// default, Type "none" gives a headless VM.
	Display *Display `json:"display,omitempty"`
	// Inputs are the input devices; nil gives the architecture's defaults
	// for a VM with a display, an empty list none at all.
	Inputs []Input `json:"inputs,omitempty"`
	// USB is the USB controller; nil gives the architecture's default.
	USB *USB `json:"usb,omitempty"`
	// Console is the serial console; nil gives a pty console.
	Console *Console `json:"console,omitempty"`
	// Sound is the sound card; nil gives none.
	Sound *Sound `json:"sound,omitempty"`
	// Watchdog is the watchdog device; nil gives none.
	Watchdog *Watchdog `json:"watchdog,omitempty"`
	// RNG is the random number generator; nil gives the architecture's
	// default (virtio fed by /dev/urandom).
	RNG *RNG `json:"rng,omitempty"`
	// Kernel is a direct kernel boot; nil boots from the devices.
	Kernel *Kernel `json:"kernel,omitempty"`
	// Metadata are free-form key/value pairs stored in the domain's
	// <metadata> under polyvirt's namespace.
	Metadata map[string]string `json:"metadata,omitempty" vm:"text"`
}

// CPU is the vCPU topology and the CPU model.
type CPU struct {
	// Sockets, Cores (per socket) and Threads (per core) are the topology;
	// 0 means 1.
	Sockets int `json:"sockets,omitempty"`
	Cores   int `json:"cores,omitempty"`
	Threads int `json:"threads,omitempty"`
	// Mode is custom (a named model), host-model, host-passthrough or
	// maximum; empty means custom when Model is set, else the
	// architecture's default mode.
	Mode string `json:"mode,omitempty"`
	// Model is the named model in custom mode (Nehalem, POWER9, ...), or
	// with host-model on POWER the compatibility level (POWER8).
	Model string `json:"model,omitempty"`
}

// VCPUs is sockets × cores × threads.
func (c *CPU) VCPUs() int { return c.Sockets * c.Cores * c.Threads }

// Memory is the guest memory in MiB.
type Memory struct {
	// SizeMiB is the memory at start.
	SizeMiB int64 `json:"sizeMiB,omitempty"`
	// MaxMiB, when set, is the most memory hot plug may reach.
	MaxMiB int64 `json:"maxMiB,omitempty"`
}

// Disk is one disk, CD-ROM or floppy.
type Disk struct {
	// Source is the image file or block device; a CD-ROM may have none
	// (an empty tray).
	Source string `json:"source,omitempty" vm:"path"`
	// Type is file or block; empty means block for /dev/ paths, else file.
	Type string `json:"type,omitempty"`
	// Format is the image format: raw or qcow2; empty means qcow2 for a
	// .qcow2 file, else raw.
	Format string `json:"format,omitempty"`
	// Device is disk, cdrom or floppy (default disk).
	Device string `json:"device,omitempty"`
	// Bus is virtio, scsi, sata, ide, usb or fdc; empty gives the
	// architecture's default for the device.
	Bus string `json:"bus,omitempty"`
	// Controller is the SCSI controller model of a scsi disk
	// (spapr-vscsi, virtio-scsi, lsilogic); empty gives the default.
	Controller string `json:"controller,omitempty"`
	// Target is the guest device name (vda, sdb, hdc, fda); empty gives
	// the next free name of the bus.
	Target string `json:"target,omitempty"`
	// ReadOnly makes the disk read-only (always so for a CD-ROM).
	ReadOnly bool `json:"readOnly,omitempty"`
	// BootOrder, when not zero, is the disk's place in the boot order.
	BootOrder int `json:"bootOrder,omitempty"`
	// Pool and Volume name the disk's image as a volume of a storage
	// pool (docs/vm-definition.md, "Disks from pools"): the engine fills
	// Source with the volume's file in the pool's directory, and the host's
	// agent checks that it resolves inside the pool.
	Pool   string `json:"pool,omitempty"`
	Volume string `json:"volume,omitempty"`
}

// NIC is one network interface.
type NIC struct {
	// Model is the device model (virtio, e1000, spapr-vlan, ...).
	Model string `json:"model,omitempty"`
	// Bridge is a host bridge to attach to; Network a libvirt network.
	// With neither the NIC uses user-mode networking.
	Bridge  string `json:"bridge,omitempty"`
	Network string `json:"network,omitempty"`
	// MAC is the unicast MAC address; libvirt makes one when empty.
	MAC string `json:"mac,omitempty"`
	// BootOrder, when not zero, is the NIC's place in the boot order.
	BootOrder int `json:"bootOrder,omitempty"`
}

// Display is the graphical console.
type Display struct {
	// Type is vnc, spice or none.
	Type string `json:"type,omitempty"`
	// Video is the video model (vga, virtio, qxl, cirrus, bochs, ramfb).
	Video string `json:"video,omitempty"`
	// Monitors is the number of heads (default 1).
	Monitors int `json:"monitors,omitempty"`
	// Listen is the IP address the display listens on (default
	// 127.0.0.1).
	Listen string `json:"listen,omitempty"`
	// Password protects the display (VNC takes at most 8 characters).
	Password string `json:"password,omitempty"`
}

// Input is one input device.
type Input struct {
	// Type is tablet, mouse or keyboard.
	Type string `json:"type"`
	// Bus is usb, ps2 or virtio; empty gives the architecture's first
	// input bus.
	Bus string `json:"bus,omitempty"`
}

// USB is the USB controller.
type USB struct {
	// Model is the controller model (qemu-xhci, nec-xhci, piix3-uhci, ...)
	// or "none" for no USB at all.
	Model string `json:"model,omitempty"`
}

// Console is the serial console.
type Console struct {
	// Type is pty (default), file or none.
	Type string `json:"type,omitempty"`
	// Path is the file a file console writes to.
	Path string `json:"path,omitempty" vm:"path"`
	// Log, when set, is a file that also receives a pty console's output.
	Log string `json:"log,omitempty" vm:"path"`
}

// Sound is the sound card.
type Sound struct {
	// Model is ich9, ich6 or ac97; empty gives the architecture's first.
	Model string `json:"model,omitempty"`
}

// Watchdog is the watchdog device.
type Watchdog struct {
	// Model is i6300esb, itco, diag288; empty gives the architecture's
	// first.
	Model string `json:"model,omitempty"`
	// Action is reset (default), poweroff, shutdown, pause, dump,
	// inject-nmi or none.
	Action string `json:"action,omitempty"`
}

// RNG is the random number generator.
type RNG struct {
	// Model is virtio, or "none" for no RNG.
	Model string `json:"model,omitempty"`
	// Backend is the host device that feeds it (default /dev/urandom).
	Backend string `json:"backend,omitempty" vm:"path"`
}

// Kernel is a direct kernel boot.
type Kernel struct {
	// Path is the kernel image on the host.
	Path string `json:"path" vm:"path"`
	// Initrd is the initial ramdisk on the host.
	Initrd string `json:"initrd,omitempty" vm:"path"`
	// Cmdline is the kernel command line; empty gives console=DEV for the
	// architecture's console device (hvc0 on POWER).
	Cmdline string `json:"cmdline,omitempty" vm:"long"`
}
