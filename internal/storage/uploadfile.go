package storage

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment of direct I/O: of the offsets, the sizes
// and the memory of what is written with O_DIRECT (the page size, a
// multiple of every disk's logical block size).
const directAlign = 4096

// uploadFile writes an upload's data into its file, in place. Where the
// file system has direct I/O, the aligned part of each write goes
// straight to the disk (O_DIRECT): no copy into the page cache, no dirty
// pages for the kernel to write back later (on a virtual machine the copy
// into fresh page-cache pages is the most expensive step of an upload),
// and the final fsync has little left to do. What is not aligned (the
// start after a resume at an odd offset, the end of the file) goes
// through the page cache, handed to the disk as it comes.
type uploadFile struct {
	f *os.File
	// direct is the file opened with O_DIRECT; nil when the file system
	// has none (tmpfs).
	direct *os.File
}

// openUploadFile opens an upload's data file for writing.
func openUploadFile(name string) (*uploadFile, error) {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	u := &uploadFile{f: f}
	if d, err := os.OpenFile(name, os.O_WRONLY|unix.O_DIRECT, 0); err == nil {
		u.direct = d
	}
	return u, nil
}

// WriteAt writes b at off (concurrent calls write distinct ranges).
func (u *uploadFile) WriteAt(b []byte, off int64) error {
	if u.direct == nil {
		_, err := u.f.WriteAt(b, off)
		return err
	}
	// The part up to the next aligned offset, through the page cache.
	if head := int((directAlign - off%directAlign) % directAlign); head > 0 {
		head = min(head, len(b))
		if _, err := u.f.WriteAt(b[:head], off); err != nil {
			return err
		}
		b, off = b[head:], off+int64(head)
	}
	mid := len(b) &^ (directAlign - 1)
	if mid > 0 {
		if err := u.writeDirect(b[:mid], off); err != nil {
			return err
		}
	}
	if mid < len(b) {
		if _, err := u.f.WriteAt(b[mid:], off+int64(mid)); err != nil {
			return err
		}
	}
	return nil
}

// writeDirect writes aligned data with O_DIRECT, through an aligned copy
// when b's memory is not aligned (after a head written apart). A file
// system that refuses direct I/O for this write has it through the page
// cache.
func (u *uploadFile) writeDirect(b []byte, off int64) error {
	if uintptr(unsafe.Pointer(&b[0]))%directAlign != 0 {
		bounce := alignedBuffer(min(len(b), uploadBuffer))
		for len(b) > 0 {
			n := copy(bounce, b)
			if err := u.writeDirect(bounce[:n], off); err != nil {
				return err
			}
			b, off = b[n:], off+int64(n)
		}
		return nil
	}
	_, err := u.direct.WriteAt(b, off)
	if errors.Is(err, unix.EINVAL) {
		_, err = u.f.WriteAt(b, off)
	}
	return err
}

// Flush hands what went through the page cache in [off, off+n) to the
// disk without waiting.
func (u *uploadFile) Flush(off, n int64) {
	_ = unix.SyncFileRange(int(u.f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// Sync makes the data durable.
func (u *uploadFile) Sync() error { return u.f.Sync() }

// Close closes the file.
func (u *uploadFile) Close() error {
	if u.direct != nil {
		u.direct.Close()
		u.direct = nil
	}
	return u.f.Close()
}

// alignedBuffer is n bytes of memory aligned for direct I/O.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := int((directAlign - uintptr(unsafe.Pointer(&b[0]))%directAlign) % directAlign)
	return b[skip : skip+n : skip+n]
}
