package hostpath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// QCOW2Header is what of a qcow2 image's header says which other host
// files QEMU (and libvirt) open with it.
type QCOW2Header struct {
	// Version is 2 or 3.
	Version uint32
	// BackingFile is the backing file's name as written ("" for none): a
	// path, relative to the image's directory or absolute, or a
	// "protocol:" or "json:{...}" string QEMU and libvirt also accept.
	BackingFile string
	// BackingFormat is the backing file's format from the header
	// extension ("" when not recorded).
	BackingFormat string
	// ExternalData tells whether the guest's data lives in another file
	// (incompatible feature bit 2); DataFile is its name.
	ExternalData bool
	DataFile     string
	// Size is the virtual size in bytes (the disk as the guest sees it).
	Size uint64
}

// qcow2Magic starts every qcow2 image.
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// The header extensions polyvirt reads.
const (
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extDataFile      = 0x44415441
)

// maxQCOW2Header bounds what is read: the header, its extensions and the
// backing file's name live in the first cluster (at most 2 MiB).
const maxQCOW2Header = 2 << 20

// IsQCOW2 tells whether data starts like a qcow2 image.
func IsQCOW2(data []byte) bool { return bytes.HasPrefix(data, qcow2Magic) }

// ReadQCOW2Header reads the header of a qcow2 image.
func ReadQCOW2Header(r io.ReaderAt) (QCOW2Header, error) {
	head := make([]byte, 104)
	n, err := r.ReadAt(head, 0)
	if n < 72 {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%d bytes: too short for a qcow2 header", n)
		}
		return QCOW2Header{}, err
	}
	head = head[:n]
	if !IsQCOW2(head) {
		return QCOW2Header{}, fmt.Errorf("not a qcow2 image (no QFI magic)")
	}
	bits := binary.BigEndian.Uint32(head[20:24])
	size := int64(maxQCOW2Header)
	if bits >= 9 && bits <= 21 {
		size = 1 << bits
	}
	buf := make([]byte, size)
	n, err = r.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return QCOW2Header{}, err
	}
	return ParseQCOW2Header(buf[:n])
}

// ParseQCOW2Header reads a qcow2 header from the image's first bytes (its
// first cluster): version, backing file and format, external data file.
func ParseQCOW2Header(b []byte) (QCOW2Header, error) {
	var h QCOW2Header
	if len(b) < 72 {
		return h, fmt.Errorf("%d bytes: too short for a qcow2 header", len(b))
	}
	if !IsQCOW2(b) {
		return h, fmt.Errorf("not a qcow2 image (no QFI magic)")
	}
	be := binary.BigEndian
	h.Version = be.Uint32(b[4:8])
	if h.Version != 2 && h.Version != 3 {
		return h, fmt.Errorf("qcow2 version %d: only 2 and 3 exist", h.Version)
	}
	h.Size = be.Uint64(b[24:32])
	backingOff, backingLen := be.Uint64(b[8:16]), be.Uint32(b[16:20])
	if backingOff != 0 {
		if backingLen == 0 || backingLen > 1023 {
			return h, fmt.Errorf("backing file name of %d bytes: QEMU allows 1 to 1023", backingLen)
		}
		end := backingOff + uint64(backingLen)
		if end < backingOff || end > uint64(len(b)) {
			return h, fmt.Errorf("backing file name at %d+%d, outside the image's first %d bytes", backingOff, backingLen, len(b))
		}
		h.BackingFile = string(b[backingOff:end])
	}
	extStart := uint64(72)
	if h.Version == 3 {
		if len(b) < 104 {
			return h, fmt.Errorf("%d bytes: too short for a version 3 qcow2 header", len(b))
		}
		incompatible := be.Uint64(b[72:80])
		h.ExternalData = incompatible&(1<<2) != 0
		extStart = uint64(be.Uint32(b[100:104]))
		if extStart < 104 {
			return h, fmt.Errorf("qcow2 header length %d: at least 104", extStart)
		}
	}
	// The header extensions, up to the end marker (or the backing file
	// name, or the end of what was read).
	limit := uint64(len(b))
	if backingOff != 0 && backingOff < limit && backingOff >= extStart {
		limit = backingOff
	}
	for off := extStart; off+8 <= limit; {
		typ, n := be.Uint32(b[off:off+4]), uint64(be.Uint32(b[off+4:off+8]))
		if typ == extEnd {
			break
		}
		data := off + 8
		if data+n > limit || data+n < data {
			return h, fmt.Errorf("qcow2 header extension %#x of %d bytes runs past the header", typ, n)
		}
		switch typ {
		case extBackingFormat:
			h.BackingFormat = string(b[data : data+n])
		case extDataFile:
			h.DataFile = string(b[data : data+n])
		}
		off = data + (n+7)/8*8
	}
	return h, nil
}
