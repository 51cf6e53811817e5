package hostpath

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/vmspec"
)

// FromDefinition lists the host paths a VM definition names: its disks'
// sources, its kernel and initrd, its console's file and log, its RNG's
// backend. A disk without a type is a block device when its source is
// under /dev/ and a qcow2 image when its name ends in .qcow2, as vmspec
// completes it.
func FromDefinition(vm *vmspec.VM) []Ref {
	if vm == nil {
		return nil
	}
	var out []Ref
	for i, d := range vm.Disks {
		if d.Source == "" {
			continue
		}
		r := Ref{Field: fmt.Sprintf("disks[%d].source", i), Path: d.Source, Format: d.Format}
		typ := d.Type
		if typ == "" && strings.HasPrefix(d.Source, "/dev/") {
			typ = "block"
		}
		switch {
		case typ == "block":
			r.Use = Block
		case d.Device == "cdrom":
			r.Use = CDROM
		default:
			r.Use = Disk
		}
		if r.Format == "" && strings.HasSuffix(d.Source, ".qcow2") {
			r.Format = "qcow2"
		}
		out = append(out, r)
	}
	if k := vm.Kernel; k != nil {
		if k.Path != "" {
			out = append(out, Ref{Field: "kernel.path", Path: k.Path, Use: Kernel})
		}
		if k.Initrd != "" {
			out = append(out, Ref{Field: "kernel.initrd", Path: k.Initrd, Use: Initrd})
		}
	}
	if c := vm.Console; c != nil {
		if c.Path != "" {
			out = append(out, Ref{Field: "console.path", Path: c.Path, Use: Console})
		}
		if c.Log != "" {
			out = append(out, Ref{Field: "console.log", Path: c.Log, Use: Console})
		}
	}
	if r := vm.RNG; r != nil && r.Backend != "" && r.Model != "none" {
		out = append(out, Ref{Field: "rng.backend", Path: r.Backend, Use: RNG})
	}
	return out
}

// FromDomain lists the host paths of a libvirt domain — what QEMU opens
// when libvirt starts it — with the definition's field names (polyvirt
// renders the disks in the definition's order). Host resources polyvirt
// never gives a VM (shared directories, host devices, sockets, network
// disks, backing chains) come back as Other and are always refused. The
// firmware loader, its variables file and the emulator are not listed:
// the agent chooses them from the architecture's rules, never from a
// definition.
func FromDomain(dom *libvirtxml.Domain) []Ref {
	if dom == nil {
		return nil
	}
	var out []Ref
	if os := dom.OS; os != nil {
		if os.Kernel != "" {
			out = append(out, Ref{Field: "kernel.path", Path: os.Kernel, Use: Kernel})
		}
		if os.Initrd != "" {
			out = append(out, Ref{Field: "kernel.initrd", Path: os.Initrd, Use: Initrd})
		}
		if os.DTB != "" {
			out = append(out, Ref{Field: "os.dtb", Path: os.DTB, Use: Kernel})
		}
	}
	d := dom.Devices
	if d == nil {
		return out
	}
	for i, disk := range d.Disks {
		out = append(out, diskRefs(i, disk)...)
	}
	chardev := func(field string, src *libvirtxml.DomainChardevSource, log *libvirtxml.DomainChardevLog) {
		if src != nil {
			switch {
			case src.File != nil:
				out = append(out, Ref{Field: field + ".path", Path: src.File.Path, Use: Console})
			case src.UNIX != nil, src.Dev != nil, src.Pipe != nil:
				out = append(out, Ref{Field: field, Path: chardevPath(src), Use: Other})
			}
		}
		if log != nil && log.File != "" {
			out = append(out, Ref{Field: field + ".log", Path: log.File, Use: Console})
		}
	}
	for _, s := range d.Serials {
		chardev("console", s.Source, s.Log)
	}
	for _, c := range d.Consoles {
		chardev("console", c.Source, c.Log)
	}
	for i, p := range d.Parallels {
		chardev(fmt.Sprintf("parallels[%d]", i), p.Source, p.Log)
	}
	for i, c := range d.Channels {
		chardev(fmt.Sprintf("channels[%d]", i), c.Source, c.Log)
	}
	for i, r := range d.RNGs {
		field := "rng.backend"
		if i > 0 {
			field = fmt.Sprintf("rngs[%d].backend", i)
		}
		switch {
		case r.Backend == nil:
		case r.Backend.Random != nil:
			out = append(out, Ref{Field: field, Path: r.Backend.Random.Device, Use: RNG})
		default:
			out = append(out, Ref{Field: field, Use: Other})
		}
	}
	other := func(kind string, n int) {
		for i := 0; i < n; i++ {
			out = append(out, Ref{Field: fmt.Sprintf("%s[%d]", kind, i), Use: Other})
		}
	}
	other("filesystems", len(d.Filesystems))
	other("hostdevs", len(d.Hostdevs))
	other("smartcards", len(d.Smartcards))
	other("redirdevs", len(d.RedirDevs))
	other("shmems", len(d.Shmems))
	other("tpms", len(d.TPMs))
	for i, g := range d.Graphics {
		if g.VNC != nil && g.VNC.Socket != "" {
			out = append(out, Ref{Field: fmt.Sprintf("graphics[%d]", i), Path: g.VNC.Socket, Use: Other})
		}
		for _, l := range graphicsListeners(g) {
			if l.Socket != nil {
				out = append(out, Ref{Field: fmt.Sprintf("graphics[%d]", i), Path: l.Socket.Socket, Use: Other})
			}
		}
	}
	for i, n := range d.Interfaces {
		if n.Source != nil && n.Source.VHostUser != nil {
			out = append(out, Ref{Field: fmt.Sprintf("nics[%d]", i), Use: Other})
		}
	}
	return dedupe(out)
}

// dedupe drops repeated references (a serial console and its <console>
// alias name the same file).
func dedupe(refs []Ref) []Ref {
	out := refs[:0]
	seen := map[Ref]bool{}
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

func diskRefs(i int, disk libvirtxml.DomainDisk) []Ref {
	field := fmt.Sprintf("disks[%d].source", i)
	var out []Ref
	if s := disk.Source; s != nil {
		r := Ref{Field: field}
		switch {
		case s.File != nil:
			r.Path = s.File.File
			r.Use = Disk
			if disk.Device == "cdrom" {
				r.Use = CDROM
			}
		case s.Block != nil:
			r.Path, r.Use = s.Block.Dev, Block
		default:
			r.Use = Other
		}
		if disk.Driver != nil && r.Use != Other {
			r.Format = disk.Driver.Type
		}
		if r.Path != "" || r.Use == Other {
			out = append(out, r)
		}
		if s.DataStore != nil {
			out = append(out, Ref{Field: fmt.Sprintf("disks[%d].dataStore", i), Use: Other})
		}
	}
	if b := disk.BackingStore; b != nil && b.Source != nil {
		out = append(out, Ref{Field: fmt.Sprintf("disks[%d].backingStore", i), Use: Other})
	}
	if m := disk.Mirror; m != nil {
		out = append(out, Ref{Field: fmt.Sprintf("disks[%d].mirror", i), Use: Other})
	}
	return out
}

func chardevPath(src *libvirtxml.DomainChardevSource) string {
	switch {
	case src.UNIX != nil:
		return src.UNIX.Path
	case src.Dev != nil:
		return src.Dev.Path
	case src.Pipe != nil:
		return src.Pipe.Path
	}
	return ""
}

func graphicsListeners(g libvirtxml.DomainGraphic) []libvirtxml.DomainGraphicListener {
	switch {
	case g.VNC != nil:
		return g.VNC.Listeners
	case g.Spice != nil:
		return g.Spice.Listeners
	}
	return nil
}
