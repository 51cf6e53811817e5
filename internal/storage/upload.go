package storage

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"polyvirt/internal/api"
	"polyvirt/internal/hostpath"
)

// uploadState is the state file kept next to the data.
type uploadState struct {
	UploadStatus
	// Hash is the SHA-256 state after Offset bytes.
	Hash []byte `json:"hash"`
}

func partName(name string) string  { return ".upload-" + name + ".part" }
func stateName(name string) string { return ".upload-" + name + ".json" }
func lockName(name string) string  { return ".upload-" + name + ".lock" }

// checkpointEvery is how often (in bytes) a running upload's state is
// written down: an agent that dies loses at most this much. The data is
// not synced at a checkpoint (that would stall the transfer behind the
// disk): the state may run ahead of what a host that crashed kept, and
// loadUpload then computes the checksum again over what is there; the
// checksum of the whole data is checked before anything is accepted.
const checkpointEvery = 256 << 20

// flushEvery is how often (in bytes) the written data is handed to the
// disk, without waiting (sync_file_range): the disk writes while the
// network delivers, and the final fsync has little left to do.
const flushEvery = 32 << 20

// MaxUploadSize bounds an upload (4 TiB).
const MaxUploadSize = 4 << 40

// ParseSHA256 reads a hex SHA-256 (64 digits, any case, an optional
// "sha256:" prefix) and returns it in lower case.
func ParseSHA256(s string) (string, error) {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "sha256:"))
	if len(s) != 64 {
		return "", fmt.Errorf("sha256 %q: want 64 hex digits", clipString(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("sha256 %q: not hex", clipString(s))
	}
	return s, nil
}

func clipString(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// BeginUpload starts an upload, or returns the one in progress with the
// same name, format, size and checksum (a client that lost its connection
// asks again, then resumes from its offset).
func (h *Host) BeginUpload(r UploadRequest) (UploadStatus, error) {
	if err := checkFormat(r.Format); err != nil {
		return UploadStatus{}, err
	}
	sum, err := ParseSHA256(r.SHA256)
	if err != nil {
		return UploadStatus{}, refused(api.CodeVolumeRequestInvalid, "%v", err)
	}
	r.SHA256 = sum
	if r.SizeBytes <= 0 || r.SizeBytes > MaxUploadSize {
		return UploadStatus{}, refused(api.CodeVolumeRequestInvalid, "size %d bytes: give the image file's size (1 byte to %d TiB)", r.SizeBytes, MaxUploadSize>>40)
	}
	if r.VirtualSize < 0 || r.VirtualSize > MaxVolumeSize {
		return UploadStatus{}, refused(api.CodeVolumeRequestInvalid, "virtual size %d bytes: at most %d TiB", r.VirtualSize, MaxVolumeSize>>40)
	}
	dir, file, err := h.volumeFile(r.Pool, r.Name, false)
	if err != nil {
		return UploadStatus{}, err
	}
	if _, err := os.Lstat(h.onHost(file)); err == nil {
		return UploadStatus{}, conflict(api.CodeVolumeExists, "pool %s has a volume %s already", r.Pool.Name, r.Name)
	}
	unlock, err := h.lockUpload(dir, r.Name)
	if err != nil {
		return UploadStatus{}, err
	}
	defer unlock()
	if st, err := h.loadUpload(dir, r.Name); err == nil {
		if st.Format != r.Format || st.SizeBytes != r.SizeBytes || st.SHA256 != r.SHA256 || st.VirtualSize != r.VirtualSize {
			return UploadStatus{}, conflict(api.CodeUploadExists, "an upload of %s (%s, %d bytes, sha256 %.12s…) is in progress at %d bytes; resume it, or abort it first",
				r.Name, st.Format, st.SizeBytes, st.SHA256, st.Offset)
		}
		return st.UploadStatus, nil
	}
	if free := h.freeBytes(dir); free > 0 && uint64(r.SizeBytes) > free {
		return UploadStatus{}, refused(api.CodePoolFull, "pool %s has %d bytes free; the image has %d", r.Pool.Name, free, r.SizeBytes)
	}
	f, err := os.OpenFile(h.onHost(path.Join(dir, partName(r.Name))), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return UploadStatus{}, refused(api.CodePoolNotWritable, "pool %s: %v", r.Pool.Name, unwrapPathError(err))
	}
	f.Close()
	now := time.Now().UTC()
	st := uploadState{UploadStatus: UploadStatus{Pool: r.Pool.Name, Name: r.Name, Format: r.Format, SizeBytes: r.SizeBytes,
		SHA256: r.SHA256, VirtualSize: r.VirtualSize, Started: now, Updated: now}}
	st.Hash, _ = sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	if err := h.saveUpload(dir, &st); err != nil {
		h.abortUpload(dir, r.Name)
		return UploadStatus{}, err
	}
	return st.UploadStatus, nil
}

// Upload reports an upload in progress (once the request writing it, if
// any, has saved where it stands).
func (h *Host) Upload(p Pool, name string) (UploadStatus, error) {
	dir, _, err := h.volumeFile(p, name, false)
	if err != nil {
		return UploadStatus{}, err
	}
	if _, err := os.Lstat(h.onHost(path.Join(dir, stateName(name)))); err != nil {
		return UploadStatus{}, notFound(api.CodeUploadNotFound, "no upload of %s is in progress", name)
	}
	unlock, err := h.lockUpload(dir, name)
	if err != nil {
		return UploadStatus{}, err
	}
	defer unlock()
	st, err := h.loadUpload(dir, name)
	if err != nil {
		return UploadStatus{}, err
	}
	return st.UploadStatus, nil
}

// AbortUpload drops an upload in progress and its data.
func (h *Host) AbortUpload(p Pool, name string) error {
	dir, _, err := h.volumeFile(p, name, false)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(h.onHost(path.Join(dir, stateName(name)))); err != nil {
		return notFound(api.CodeUploadNotFound, "no upload of %s is in progress", name)
	}
	unlock, err := h.lockUpload(dir, name)
	if err != nil {
		return err
	}
	defer unlock()
	return h.abortUpload(dir, name)
}

func (h *Host) abortUpload(dir, name string) error {
	err1 := os.Remove(h.onHost(path.Join(dir, partName(name))))
	err2 := os.Remove(h.onHost(path.Join(dir, stateName(name))))
	_ = os.Remove(h.onHost(path.Join(dir, lockName(name))))
	_ = syncDir(h.onHost(dir))
	if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
		return notFound(api.CodeUploadNotFound, "no upload of %s is in progress", name)
	}
	return nil
}

// WriteUpload writes data at offset (which must be where the upload
// stands) until r ends or the declared size is reached. When the data is
// complete it is checked — its SHA-256, its format and size with qemu-img,
// a qcow2 image's backing file inside the pool, its metadata (qemu-img
// check) — and becomes the volume, or is refused with its code and
// removed: nothing of a refused upload stays in the pool. A reader that
// fails (the client went away) leaves the upload where it got to, to be
// resumed.
func (h *Host) WriteUpload(ctx context.Context, p Pool, name string, offset int64, r io.Reader) (UploadStatus, error) {
	dir, _, err := h.volumeFile(p, name, false)
	if err != nil {
		return UploadStatus{}, err
	}
	unlock, err := h.lockUpload(dir, name)
	if err != nil {
		return UploadStatus{}, err
	}
	defer unlock()
	st, err := h.loadUpload(dir, name)
	if err != nil {
		return UploadStatus{}, err
	}
	if offset != st.Offset {
		return st.UploadStatus, conflict(api.CodeUploadOffset, "the upload of %s stands at byte %d, not %d; send the data from %d", name, st.Offset, offset, st.Offset)
	}
	part := h.onHost(path.Join(dir, partName(name)))
	f, err := openUploadFile(part)
	if err != nil {
		return st.UploadStatus, refused(api.CodePoolNotWritable, "pool %s: %v", p.Name, unwrapPathError(err))
	}
	defer f.Close()
	hs := sha256.New()
	if err := hs.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return st.UploadStatus, newErr(api.CodeStorageToolFailed, "upload %s: its checksum state is unreadable: %v", name, err)
	}
	werr := h.copyUpload(ctx, f, hs, st, dir, r)
	saveErr := h.saveUpload(dir, st)
	if werr != nil {
		if api.CodeOf(werr) == api.CodeUploadTooLarge {
			f.Close()
			h.abortUpload(dir, name)
		}
		return st.UploadStatus, werr
	}
	if saveErr != nil {
		return st.UploadStatus, saveErr
	}
	if st.Offset < st.SizeBytes {
		return st.UploadStatus, nil
	}
	if err := f.Sync(); err != nil {
		return st.UploadStatus, refused(api.CodePoolNotWritable, "pool %s: %v", p.Name, err)
	}
	f.Close()
	got := hex.EncodeToString(hs.Sum(nil))
	info, verr := h.verifyUpload(ctx, p, dir, name, st, got)
	if verr != nil {
		h.abortUpload(dir, name)
		return st.UploadStatus, verr
	}
	if err := renameNoReplace(h.onHost(dir), partName(name), name); err != nil {
		h.abortUpload(dir, name)
		return st.UploadStatus, err
	}
	_ = os.Remove(h.onHost(path.Join(dir, stateName(name))))
	_ = os.Remove(h.onHost(path.Join(dir, lockName(name))))
	_ = syncDir(h.onHost(dir))
	info.SHA256 = got
	st.Done, st.Volume = true, &info
	return st.UploadStatus, nil
}

// uploadBuffer is the size of one read of an upload's data; uploadBuffers
// how many are in flight at once.
const (
	uploadBuffer  = 1 << 20
	uploadBuffers = 6
)

// uploadWriters is how many writes of an upload go to the disk at once.
const uploadWriters = 2

// uploadChunk is a piece of an upload's data on its way: read, then
// written into the file, then added to the checksum.
type uploadChunk struct {
	buf     []byte
	off     int64
	written chan error
}

// copyUpload copies r into the upload's file and checksum up to its
// declared size, writing its state down every checkpointEvery bytes. More
// data than declared is UPLOAD_TOO_LARGE. Three stages work at once on
// a few buffers: the request's goroutine reads (decrypts) the data,
// writers write it into the file (uploadWriters at a time, each chunk at
// its offset), and a goroutine of its own adds each written chunk to the
// checksum, in order. A chunk counts (st.Offset, st.Hash) once written
// and checksummed: a write that fails leaves the upload at the chunk
// before it.
func (h *Host) copyUpload(ctx context.Context, f *uploadFile, hs hash.Hash, st *uploadState, dir string, r io.Reader) (err error) {
	free := make(chan []byte, uploadBuffers)
	for i := 0; i < uploadBuffers; i++ {
		free <- alignedBuffer(uploadBuffer)
	}
	toWrite := make(chan *uploadChunk, uploadBuffers)
	toHash := make(chan *uploadChunk, uploadBuffers)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, uploadBuffers)
	for i := 0; i < uploadWriters; i++ {
		go func() {
			for c := range toWrite {
				c.written <- f.WriteAt(c.buf, c.off)
			}
		}()
	}
	go func() {
		failed := false
		for c := range toHash {
			werr := <-c.written
			if werr == nil && !failed {
				hs.Write(c.buf)
			} else {
				failed = true
				if werr == nil {
					werr = errors.New("an earlier write failed")
				}
			}
			done <- result{len(c.buf), werr}
			free <- c.buf[:cap(c.buf)]
		}
	}()
	pending := 0
	var failure error
	// settle waits for n chunks (the oldest) to be written and
	// checksummed, and counts them.
	settle := func(n int) {
		for ; n > 0 && pending > 0; n-- {
			res := <-done
			pending--
			if res.err != nil {
				if failure == nil {
					failure = refused(api.CodePoolNotWritable, "writing %s: %v", st.Name, unwrapPathError(res.err))
				}
				continue
			}
			if failure == nil {
				st.Offset += int64(res.n)
			}
		}
		if pending == 0 {
			st.Hash, _ = hs.(encoding.BinaryMarshaler).MarshalBinary()
		}
	}
	defer func() {
		settle(pending)
		close(toWrite)
		close(toHash)
		if err == nil {
			err = failure
		}
	}()
	sent := st.Offset // the offset of the next chunk
	next := st.Offset + checkpointEvery
	flushed := st.Offset
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		settle(len(done)) // what is done already
		if failure != nil {
			return failure
		}
		if pending == uploadBuffers {
			settle(1)
			if failure != nil {
				return failure
			}
		}
		if sent >= next {
			settle(pending)
			if failure != nil {
				return failure
			}
			if err := h.saveUpload(dir, st); err != nil {
				return err
			}
			next = sent + checkpointEvery
		}
		if f.direct == nil && sent-flushed >= flushEvery {
			f.Flush(flushed, sent-flushed)
			flushed = sent
		}
		want := int64(uploadBuffer)
		if rest := st.SizeBytes - sent; rest < want {
			want = rest
		}
		if want == 0 {
			// Declared size reached: anything more is too much.
			var one [1]byte
			n, err := io.ReadFull(r, one[:])
			if n > 0 {
				return refused(api.CodeUploadTooLarge, "the data of %s is larger than the %d bytes declared", st.Name, st.SizeBytes)
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil
			}
			return err
		}
		buf := <-free
		n, rerr := io.ReadFull(r, buf[:want])
		if n > 0 {
			c := &uploadChunk{buf: buf[:n], off: sent, written: make(chan error, 1)}
			toWrite <- c
			toHash <- c
			pending++
			sent += int64(n)
		} else {
			free <- buf
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// verifyUpload checks a complete upload before it becomes a volume.
func (h *Host) verifyUpload(ctx context.Context, p Pool, dir, name string, st *uploadState, got string) (VolumeInfo, error) {
	if got != st.SHA256 {
		return VolumeInfo{}, refused(api.CodeVolumeChecksumMismatch, "the data of %s has SHA-256 %s, not the %s declared: it was damaged on the way (or the wrong file was sent); nothing was kept", name, got, st.SHA256)
	}
	part := path.Join(dir, partName(name))
	head := make([]byte, 4)
	if f, err := os.Open(h.onHost(part)); err == nil {
		n, _ := f.ReadAt(head, 0)
		head = head[:n]
		f.Close()
	}
	isQCOW2 := hostpath.IsQCOW2(head)
	switch {
	case st.Format == "raw" && isQCOW2:
		return VolumeInfo{}, refused(api.CodeVolumeFormatMismatch, "%s was declared raw but is a qcow2 image; upload it as qcow2 (a guest would see the qcow2 metadata, and the image's backing file would be ignored)", name)
	case st.Format == "qcow2" && !isQCOW2:
		return VolumeInfo{}, refused(api.CodeVolumeFormatMismatch, "%s was declared qcow2 but is not a qcow2 image (no QFI header); upload it as raw, or convert it (qemu-img convert -O qcow2)", name)
	}
	var bk backing
	if st.Format == "qcow2" {
		b, err := h.backingChain(dir, part, name, p.Name, 0)
		if err != nil {
			return VolumeInfo{}, err
		}
		bk = b
	}
	info, err := h.q().info(ctx, h.onHost(part), st.Format, false)
	if err != nil {
		if api.CodeOf(err) == api.CodeStorageToolFailed {
			return VolumeInfo{}, refused(api.CodeVolumeCorrupt, "%s is not a usable %s image: %s", name, st.Format, strings.TrimPrefix(message(err), "qemu-img: "))
		}
		return VolumeInfo{}, err
	}
	if info.Corrupt() {
		return VolumeInfo{}, refused(api.CodeVolumeCorrupt, "%s is marked corrupt in its qcow2 header; repair it (qemu-img check -r all) before uploading", name)
	}
	if st.Format == "qcow2" {
		res, stderr, err := h.q().check(ctx, h.onHost(part), "qcow2")
		if err != nil {
			if api.CodeOf(err) == api.CodeStorageToolFailed {
				return VolumeInfo{}, refused(api.CodeVolumeCorrupt, "%s cannot be checked: %s", name, strings.TrimPrefix(message(err), "qemu-img: "))
			}
			return VolumeInfo{}, err
		}
		if res.Corruptions > 0 || res.CheckErrors > 0 {
			if strings.Contains(stderr, "exceeding the end of the file") || res.ImageEndOffset > st.SizeBytes {
				return VolumeInfo{}, refused(api.CodeVolumeTruncated, "%s is cut short: its metadata points past the end of its %d bytes (%d corruptions); upload the whole image", name, st.SizeBytes, res.Corruptions)
			}
			return VolumeInfo{}, refused(api.CodeVolumeCorrupt, "qemu-img check finds %d corruptions and %d errors in %s; repair it (qemu-img check -r all) before uploading", res.Corruptions, res.CheckErrors, name)
		}
	}
	if st.VirtualSize > 0 && info.VirtualSize != st.VirtualSize {
		return VolumeInfo{}, refused(api.CodeVolumeSizeMismatch, "%s has a virtual size of %d bytes, not the %d declared: a truncated or another image", name, info.VirtualSize, st.VirtualSize)
	}
	return VolumeInfo{Pool: p.Name, Name: name, Format: st.Format, VirtualSize: info.VirtualSize, ActualSize: info.ActualSize,
		FileSize: st.SizeBytes, Backing: bk.name, BackingFormat: bk.format, Snapshots: info.Snapshots}, nil
}

// loadUpload reads an upload's state and squares it with its data: data
// written after the last checkpoint (an agent that died) is cut back to
// it; data lost after one (a host that crashed) makes the checksum be
// computed again over what is there.
func (h *Host) loadUpload(dir, name string) (*uploadState, error) {
	b, err := readSmallFile(h.onHost(path.Join(dir, stateName(name))))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound(api.CodeUploadNotFound, "no upload of %s is in progress", name)
	}
	if err != nil {
		return nil, newErr(api.CodeStorageToolFailed, "upload %s: %v", name, err)
	}
	var st uploadState
	if err := json.Unmarshal(b, &st); err != nil || st.Name != name || st.Offset < 0 || st.Offset > st.SizeBytes {
		return nil, newErr(api.CodeStorageToolFailed, "upload %s: its state file is damaged; abort the upload", name)
	}
	part := h.onHost(path.Join(dir, partName(name)))
	fi, err := os.Lstat(part)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, notFound(api.CodeUploadNotFound, "no data of the upload of %s is left; abort it and start again", name)
	}
	switch {
	case fi.Size() > st.Offset:
		if err := os.Truncate(part, st.Offset); err != nil {
			return nil, err
		}
	case fi.Size() < st.Offset:
		hs := sha256.New()
		f, err := os.Open(part)
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(hs, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		st.Offset = n
		st.Hash, _ = hs.(encoding.BinaryMarshaler).MarshalBinary()
	}
	return &st, nil
}

func (h *Host) saveUpload(dir string, st *uploadState) error {
	st.Updated = time.Now().UTC()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	// Not synced: a state lost with the host is made again from the data
	// (loadUpload).
	if err := writeFileRenamed(h.onHost(dir), stateName(st.Name), b, 0o600, false); err != nil {
		return refused(api.CodePoolNotWritable, "upload %s: cannot write its state: %v", st.Name, err)
	}
	return nil
}

// lockWait is how long a request waits for an upload's lock: the request
// that held it (a client that went away) notices within that time.
var lockWait = 5 * time.Second

// lockUpload takes the upload's lock (flock on a lock file in the pool,
// seen by every host of a shared pool), waiting up to lockWait.
func (h *Host) lockUpload(dir, name string) (func(), error) {
	p := h.onHost(path.Join(dir, lockName(name)))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, refused(api.CodePoolNotWritable, "upload %s: %v", name, unwrapPathError(err))
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, conflict(api.CodeUploadBusy, "another request is writing the upload of %s now; wait for it, or resume after it", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
