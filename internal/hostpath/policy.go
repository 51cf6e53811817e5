// Package hostpath is the host path policy: which files on a host a VM may
// open — its disk images, CD-ROM images, kernel and initrd, block devices,
// the device feeding its RNG, its console's file — and the check that a
// path given for one of these uses, followed through every symbolic link
// on the host, ends where the host's configuration allows that use.
//
// The agent checks every VM with it when the VM is created and again right
// before every start (from the domain libvirt is about to start), so that
// a link changed after the creation is caught; the engine checks a
// definition against its cluster's hosts' policies (lexically: it does not
// see their files) when it is created or changed, and schedules a VM only
// on a host whose policy allows its paths.
//
// A refused path is a PATH_NOT_ALLOWED violation naming the definition's
// field (disks[0].source, kernel.initrd) and the places allowed for that
// use.
package hostpath

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Use is what a VM does with a host file.
type Use string

// The uses.
const (
	// Disk is a disk or floppy image file (read and written by the guest).
	Disk Use = "disk"
	// CDROM is a CD-ROM image file (read only).
	CDROM Use = "cdrom"
	// Kernel is a kernel booted directly (and a device tree).
	Kernel Use = "kernel"
	// Initrd is the initial ramdisk of a direct kernel boot.
	Initrd Use = "initrd"
	// Block is a host block device used as a disk.
	Block Use = "block"
	// RNG is the host device that feeds a VM's random number generator.
	RNG Use = "rng"
	// Console is the file a serial console writes to, or its log.
	Console Use = "console"
	// Other is a host resource polyvirt never gives a VM (a shared
	// directory, a host device, a socket): always refused.
	Other Use = "other"
)

// The default places: polyvirt's images directory, and the directory of
// Debian's installer images (debian-installer-12-netboot-* packages: the
// kernels and initrds the examples boot).
const (
	ImagesDir          = "/var/lib/polyvirt/images"
	DebianInstallerDir = "/usr/lib/debian-installer/images"
)

// RNGDevices are the host devices that may feed a VM's RNG.
var RNGDevices = []string{"/dev/urandom", "/dev/random", "/dev/hwrng"}

// Policy says where a host lets its VMs' files be: directories per use
// (a file anywhere below one of them, after every link is followed) and
// block devices, each listed by path.
type Policy struct {
	// Disk lists the directories of disk and floppy images.
	Disk []string `json:"disk"`
	// CDROM lists the directories of CD-ROM images.
	CDROM []string `json:"cdrom"`
	// Kernel lists the directories of kernels booted directly.
	Kernel []string `json:"kernel"`
	// Initrd lists the directories of initial ramdisks.
	Initrd []string `json:"initrd"`
	// BlockDevices lists the block devices VMs may use as disks (none by
	// default).
	BlockDevices []string `json:"blockDevices"`
}

// Default is the policy of a host whose configuration says nothing: disk
// images in ImagesDir; CD-ROM images, kernels and initrds there or in
// DebianInstallerDir; no block device.
func Default() Policy {
	both := []string{ImagesDir, DebianInstallerDir}
	return Policy{
		Disk:         []string{ImagesDir},
		CDROM:        slices.Clone(both),
		Kernel:       slices.Clone(both),
		Initrd:       slices.Clone(both),
		BlockDevices: []string{},
	}
}

// Dirs are the directories allowed for a file use.
func (p Policy) Dirs(u Use) []string {
	switch u {
	case Disk:
		return p.Disk
	case CDROM:
		return p.CDROM
	case Kernel:
		return p.Kernel
	case Initrd:
		return p.Initrd
	}
	return nil
}

// FileUses are the uses whose files are allowed by directory.
var FileUses = []Use{Disk, CDROM, Kernel, Initrd}

// Check checks a policy read from a configuration: every directory and
// device is an absolute, clean path ("/" itself is refused: it would allow
// every file); devices are under /dev. The error names the list and the
// entry (disk[1]).
func (p Policy) Check() error {
	for _, u := range FileUses {
		for i, d := range p.Dirs(u) {
			if err := checkEntry(d); err != nil {
				return fmt.Errorf("%s[%d]: %v", u, i, err)
			}
			if d == "/" {
				return fmt.Errorf("%s[%d]: \"/\" would let VMs open every file of the host; name the directories of the images", u, i)
			}
		}
	}
	for i, d := range p.BlockDevices {
		if err := checkEntry(d); err != nil {
			return fmt.Errorf("block_devices[%d]: %v", i, err)
		}
		if !strings.HasPrefix(d, "/dev/") {
			return fmt.Errorf("block_devices[%d]: %q is not under /dev", i, d)
		}
	}
	return nil
}

func checkEntry(d string) error {
	switch {
	case d == "":
		return fmt.Errorf("empty path")
	case !path.IsAbs(d):
		return fmt.Errorf("%q is not an absolute path", d)
	case path.Clean(d) != d:
		return fmt.Errorf("%q is not clean (write it %q)", d, path.Clean(d))
	case strings.ContainsRune(d, 0):
		return fmt.Errorf("%q holds a NUL byte", d)
	}
	return nil
}

// Ref is one host path a VM would open.
type Ref struct {
	// Field is the definition's field that names it (disks[0].source).
	Field string
	// Path is the path as given.
	Path string
	// Use is what the VM does with it.
	Use Use
	// Format is a disk image's format (raw, qcow2): a qcow2 image's
	// header is checked too.
	Format string
}

// Within tells whether p is below dir (not dir itself); both clean and
// absolute.
func Within(p, dir string) bool {
	if dir == "/" {
		return p != "/" && strings.HasPrefix(p, "/")
	}
	return strings.HasPrefix(p, dir+"/") && len(p) > len(dir)+1
}

// AllowsLexically tells whether the policy allows a reference as written,
// without looking at the host's files (the engine's check): a clean
// absolute path below a directory of its use, a block device listed, an
// RNG device of RNGDevices. Console files are never allowed here: the
// agent names them.
func (p Policy) AllowsLexically(r Ref) bool {
	if !path.IsAbs(r.Path) || path.Clean(r.Path) != r.Path {
		return false
	}
	switch r.Use {
	case Disk, CDROM, Kernel, Initrd:
		for _, d := range p.Dirs(r.Use) {
			if Within(r.Path, d) {
				return true
			}
		}
	case Block:
		return slices.Contains(p.BlockDevices, r.Path)
	case RNG:
		return slices.Contains(RNGDevices, r.Path)
	}
	return false
}

// Places describes where a use is allowed, for messages: "/a or /b",
// "nowhere on this host".
func (p Policy) Places(u Use) string {
	var l []string
	switch u {
	case Block:
		l = p.BlockDevices
	case RNG:
		l = RNGDevices
	default:
		l = p.Dirs(u)
	}
	return orList(l)
}

func orList(l []string) string {
	switch len(l) {
	case 0:
		return "nowhere"
	case 1:
		return l[0]
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

// Merge is the union of policies: what at least one of them allows (the
// engine's view of a cluster, for messages).
func Merge(ps ...Policy) Policy {
	var out Policy
	add := func(dst *[]string, src []string) {
		for _, s := range src {
			if !slices.Contains(*dst, s) {
				*dst = append(*dst, s)
			}
		}
	}
	for _, p := range ps {
		add(&out.Disk, p.Disk)
		add(&out.CDROM, p.CDROM)
		add(&out.Kernel, p.Kernel)
		add(&out.Initrd, p.Initrd)
		add(&out.BlockDevices, p.BlockDevices)
	}
	return out
}

// What a use is, in messages.
func (u Use) noun() string {
	switch u {
	case Disk:
		return "disk images"
	case CDROM:
		return "CD-ROM images"
	case Kernel:
		return "kernels"
	case Initrd:
		return "initial ramdisks"
	case Block:
		return "block devices"
	case RNG:
		return "RNG sources"
	case Console:
		return "console files"
	}
	return "host resources"
}

// configKey is the agent configuration key of a use.
func (u Use) configKey() string {
	if u == Block {
		return "host_paths.block_devices"
	}
	return "host_paths." + string(u)
}
