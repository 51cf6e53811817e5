package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/vmspec"
)

// Formats are the volume formats.
var Formats = []string{"raw", "qcow2"}

// MaxVolumeSize bounds a volume's virtual size (64 TiB).
const MaxVolumeSize = 64 << 40

func checkFormat(f string) error {
	for _, x := range Formats {
		if f == x {
			return nil
		}
	}
	return refused(api.CodeVolumeRequestInvalid, "format %q: want raw or qcow2", f)
}

func checkName(name string) error {
	if err := vmspec.CheckVolumeName(name); err != nil {
		return refused(api.CodeVolumeNameInvalid, "%v", err)
	}
	return nil
}

// volumeFile checks a volume of a pool and returns the pool's directory
// (resolved) and the volume's file in it. The volume's file, when it
// exists, must be a regular file with one name (no symbolic link, no hard
// link: another name of the file may be anywhere) and lead nowhere but
// directly into the pool.
func (h *Host) volumeFile(p Pool, name string, mustExist bool) (dir, file string, err error) {
	if err := checkName(name); err != nil {
		return "", "", err
	}
	dir, err = h.poolDir(p)
	if err != nil {
		return "", "", err
	}
	file = path.Join(dir, name)
	if err := h.inPool(dir, file, name, p.Name); err != nil {
		return "", "", err
	}
	if mustExist {
		if _, err := os.Lstat(h.onHost(file)); errors.Is(err, fs.ErrNotExist) {
			return "", "", notFound(api.CodeVolumeNotFound, "pool %s has no volume %s", p.Name, name)
		}
	}
	return dir, file, nil
}

// inPool checks that file (dir/name) is a regular file of one name, or
// does not exist.
func (h *Host) inPool(dir, file, name, pool string) error {
	fi, err := os.Lstat(h.onHost(file))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return refused(api.CodeVolumeOutsidePool, "volume %s of pool %s cannot be read: %v", name, pool, unwrapPathError(err))
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(h.onHost(file))
		return refused(api.CodeVolumeOutsidePool, "volume %s of pool %s is a symbolic link (to %q): a volume is a file of its pool, never a link out of it; remove the link", name, pool, target)
	case !fi.Mode().IsRegular():
		return refused(api.CodeVolumeOutsidePool, "volume %s of pool %s is not a regular file", name, pool)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return refused(api.CodeVolumeOutsidePool, "volume %s of pool %s has %d hard links: another name of its file may be outside the pool", name, pool, st.Nlink)
	}
	res, err := hostpath.Resolve(h.Root, file)
	if err != nil || res.Path != file {
		return refused(api.CodeVolumeOutsidePool, "volume %s of pool %s leads outside the pool", name, pool)
	}
	return nil
}

// Info reads a volume: qemu-img info of its file (never its backing
// chain), and the backing volume of an overlay (which must be in the
// pool).
func (h *Host) Info(ctx context.Context, p Pool, name, format string) (VolumeInfo, error) {
	if err := checkFormat(format); err != nil {
		return VolumeInfo{}, err
	}
	dir, file, err := h.volumeFile(p, name, true)
	if err != nil {
		return VolumeInfo{}, err
	}
	return h.describe(ctx, p, dir, file, name, format, true)
}

func (h *Host) describe(ctx context.Context, p Pool, dir, file, name, format string, force bool) (VolumeInfo, error) {
	info, err := h.q().info(ctx, h.onHost(file), format, force)
	if err != nil {
		return VolumeInfo{}, err
	}
	out := VolumeInfo{Pool: p.Name, Name: name, Format: info.Format, VirtualSize: info.VirtualSize, ActualSize: info.ActualSize,
		Snapshots: info.Snapshots}
	if fi, err := os.Stat(h.onHost(file)); err == nil {
		out.FileSize = fi.Size()
	}
	if format == "qcow2" {
		b, err := h.backingIn(dir, file, name, p.Name)
		if err != nil {
			return VolumeInfo{}, err
		}
		out.Backing, out.BackingFormat = b.name, b.format
	}
	return out, nil
}

// backing is a qcow2 image's backing volume.
type backing struct{ name, format string }

// backingIn reads a qcow2 image's header and checks what else QEMU would
// open with it: no external data file, and a backing file (if any) that is
// a plain volume of the same pool with its format recorded. It returns the
// backing volume's name.
func (h *Host) backingIn(dir, file, name, pool string) (backing, error) {
	return h.backingChain(dir, file, name, pool, 0)
}

// maxChain bounds the backing chain followed from one volume.
const maxChain = 8

func (h *Host) backingChain(dir, file, name, pool string, depth int) (backing, error) {
	f, err := os.Open(h.onHost(file))
	if err != nil {
		return backing{}, refused(api.CodeVolumeCorrupt, "volume %s cannot be read: %v", name, unwrapPathError(err))
	}
	defer f.Close()
	hd, err := hostpath.ReadQCOW2Header(f)
	if err != nil {
		return backing{}, refused(api.CodeVolumeCorrupt, "volume %s: its qcow2 header cannot be read: %v", name, err)
	}
	if hd.ExternalData || hd.DataFile != "" {
		return backing{}, refused(api.CodeVolumeBackingOutsidePool, "volume %s keeps its data in another file (%q), outside what the pool holds; convert it to a self-contained image (qemu-img convert)", name, hd.DataFile)
	}
	if hd.BackingFile == "" {
		return backing{}, nil
	}
	if strings.ContainsAny(hd.BackingFile, ":\x00") {
		return backing{}, refused(api.CodeVolumeBackingOutsidePool, "volume %s names the backing file %q, a protocol or JSON description QEMU would follow anywhere; rebase it onto a volume of pool %s (qemu-img rebase)", name, hd.BackingFile, pool)
	}
	if hd.BackingFormat != "raw" && hd.BackingFormat != "qcow2" {
		return backing{}, refused(api.CodeVolumeBackingOutsidePool, "volume %s names the backing file %q without its format (raw or qcow2) recorded; record it (qemu-img rebase -F)", name, hd.BackingFile)
	}
	bp := hd.BackingFile
	if !path.IsAbs(bp) {
		bp = path.Join(dir, bp)
	}
	res, err := hostpath.Resolve(h.Root, path.Clean(bp))
	if err != nil || res.ViaProc || path.Dir(res.Path) != dir {
		return backing{}, refused(api.CodeVolumeBackingOutsidePool, "volume %s is backed by %q, which is not a volume of pool %s; a backing file must be a volume of the same pool", name, hd.BackingFile, pool)
	}
	bname := path.Base(res.Path)
	if checkName(bname) != nil || !res.Exists {
		return backing{}, refused(api.CodeVolumeBackingOutsidePool, "volume %s is backed by %q, which is not a volume of pool %s", name, hd.BackingFile, pool)
	}
	if err := h.inPool(dir, res.Path, bname, pool); err != nil {
		return backing{}, refused(api.CodeVolumeBackingOutsidePool, "volume %s is backed by %q: %s", name, hd.BackingFile, message(err))
	}
	if hd.BackingFormat == "qcow2" {
		if depth+1 >= maxChain {
			return backing{}, refused(api.CodeVolumeBackingOutsidePool, "volume %s: its chain of backing files is longer than %d; flatten it (clone)", name, maxChain)
		}
		if _, err := h.backingChain(dir, res.Path, bname, pool, depth+1); err != nil {
			return backing{}, refused(api.CodeVolumeBackingOutsidePool, "volume %s is backed by %s: %s", name, bname, message(err))
		}
	}
	return backing{name: bname, format: hd.BackingFormat}, nil
}

// tmpName is the hidden name a volume is built under before it gets its
// own (a rename that never replaces another volume).
func tmpName(op, name string) string { return "." + op + "-" + name + ".tmp" }

// Create makes an empty volume (raw: a sparse file; qcow2: qemu-img
// create), or a qcow2 overlay on a volume of the same pool (its backing
// file named relative to the pool, its format recorded).
func (h *Host) Create(ctx context.Context, r CreateRequest) (VolumeInfo, error) {
	if err := checkFormat(r.Format); err != nil {
		return VolumeInfo{}, err
	}
	if r.SizeBytes < 0 || r.SizeBytes > MaxVolumeSize || (r.SizeBytes == 0 && r.Backing == "") {
		return VolumeInfo{}, refused(api.CodeVolumeRequestInvalid, "size %d bytes: give 1 byte to %d TiB", r.SizeBytes, MaxVolumeSize>>40)
	}
	dir, file, err := h.volumeFile(r.Pool, r.Name, false)
	if err != nil {
		return VolumeInfo{}, err
	}
	if _, err := os.Lstat(h.onHost(file)); err == nil {
		return VolumeInfo{}, conflict(api.CodeVolumeExists, "pool %s has a volume %s already", r.Pool.Name, r.Name)
	}
	if r.Backing != "" {
		if r.Format != "qcow2" {
			return VolumeInfo{}, refused(api.CodeVolumeRequestInvalid, "an overlay is a qcow2 volume, not %s", r.Format)
		}
		if err := checkFormat(r.BackingFormat); err != nil {
			return VolumeInfo{}, err
		}
		if _, _, err := h.volumeFile(r.Pool, r.Backing, true); err != nil {
			return VolumeInfo{}, err
		}
	}
	if free := h.freeBytes(dir); r.Backing == "" && r.Format == "raw" && free > 0 && uint64(r.SizeBytes) > free {
		// A sparse raw file takes no space yet; warn through the code
		// only when even its size cannot fit.
		return VolumeInfo{}, refused(api.CodePoolFull, "pool %s has %d bytes free; a %d-byte raw volume would not fit once written", r.Pool.Name, free, r.SizeBytes)
	}
	tmp := tmpName("create", r.Name)
	tmpFile := h.onHost(path.Join(dir, tmp))
	_ = os.Remove(tmpFile)
	defer os.Remove(tmpFile)
	switch {
	case r.Format == "raw":
		f, err := os.OpenFile(tmpFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return VolumeInfo{}, refused(api.CodePoolNotWritable, "pool %s: %v", r.Pool.Name, unwrapPathError(err))
		}
		err = f.Truncate(r.SizeBytes)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			return VolumeInfo{}, refused(api.CodePoolNotWritable, "pool %s: %v", r.Pool.Name, unwrapPathError(err))
		}
	default:
		args := []string{"create", "-q", "-f", "qcow2"}
		if r.Backing != "" {
			args = append(args, "-b", r.Backing, "-F", r.BackingFormat)
		}
		args = append(args, tmpFile)
		if r.SizeBytes > 0 {
			args = append(args, strconv.FormatInt(r.SizeBytes, 10))
		}
		if res, err := h.q().run(ctx, 5*time.Minute, args...); err != nil {
			return VolumeInfo{}, toolError(err, res)
		}
		if err := os.Chmod(tmpFile, 0o600); err != nil {
			return VolumeInfo{}, err
		}
	}
	if err := renameNoReplace(h.onHost(dir), tmp, r.Name); err != nil {
		return VolumeInfo{}, err
	}
	_ = syncDir(h.onHost(dir))
	return h.describe(ctx, r.Pool, dir, file, r.Name, r.Format, false)
}

func (h *Host) freeBytes(dir string) uint64 {
	_, free := h.space(dir)
	return free
}

// Resize grows a volume to size bytes (a volume never shrinks: the guest's
// data would be cut). The volume must not be open (a running VM).
func (h *Host) Resize(ctx context.Context, p Pool, name, format string, size int64) (VolumeInfo, error) {
	if size <= 0 || size > MaxVolumeSize {
		return VolumeInfo{}, refused(api.CodeVolumeRequestInvalid, "size %d bytes: give 1 byte to %d TiB", size, MaxVolumeSize>>40)
	}
	cur, err := h.Info(ctx, p, name, format)
	if err != nil {
		return VolumeInfo{}, err
	}
	if size < cur.VirtualSize {
		return VolumeInfo{}, refused(api.CodeVolumeShrink, "volume %s is %d bytes; it cannot shrink to %d (the guest's data would be cut)", name, cur.VirtualSize, size)
	}
	if size == cur.VirtualSize {
		return cur, nil
	}
	_, file, err := h.volumeFile(p, name, true)
	if err != nil {
		return VolumeInfo{}, err
	}
	if res, err := h.q().run(ctx, 5*time.Minute, "resize", "-q", "-f", format, h.onHost(file), strconv.FormatInt(size, 10)); err != nil {
		return VolumeInfo{}, toolError(err, res)
	}
	return h.Info(ctx, p, name, format)
}

// Clone copies a volume into a new one, whole (an overlay's backing chain
// flattened), in the given format; the pools may differ when this host
// sees both.
func (h *Host) Clone(ctx context.Context, src Pool, srcName, srcFormat string, dst Pool, dstName, dstFormat string) (VolumeInfo, error) {
	if err := checkFormat(dstFormat); err != nil {
		return VolumeInfo{}, err
	}
	info, err := h.Info(ctx, src, srcName, srcFormat)
	if err != nil {
		return VolumeInfo{}, err
	}
	_, srcFile, err := h.volumeFile(src, srcName, true)
	if err != nil {
		return VolumeInfo{}, err
	}
	dir, file, err := h.volumeFile(dst, dstName, false)
	if err != nil {
		return VolumeInfo{}, err
	}
	if _, err := os.Lstat(h.onHost(file)); err == nil {
		return VolumeInfo{}, conflict(api.CodeVolumeExists, "pool %s has a volume %s already", dst.Name, dstName)
	}
	if free := h.freeBytes(dir); free > 0 && uint64(info.ActualSize) > free {
		return VolumeInfo{}, refused(api.CodePoolFull, "pool %s has %d bytes free; the copy of %s takes about %d", dst.Name, free, srcName, info.ActualSize)
	}
	tmp := tmpName("clone", dstName)
	tmpFile := h.onHost(path.Join(dir, tmp))
	_ = os.Remove(tmpFile)
	defer os.Remove(tmpFile)
	if res, err := h.q().run(ctx, time.Hour, "convert", "-q", "-f", srcFormat, "-O", dstFormat, h.onHost(srcFile), tmpFile); err != nil {
		return VolumeInfo{}, toolError(err, res)
	}
	if err := os.Chmod(tmpFile, 0o600); err != nil {
		return VolumeInfo{}, err
	}
	if err := renameNoReplace(h.onHost(dir), tmp, dstName); err != nil {
		return VolumeInfo{}, err
	}
	_ = syncDir(h.onHost(dir))
	return h.describe(ctx, dst, dir, file, dstName, dstFormat, false)
}

// Delete removes a volume's file (and an upload of that name in
// progress). A missing volume is VOLUME_NOT_FOUND.
func (h *Host) Delete(p Pool, name string) error {
	dir, file, err := h.volumeFile(p, name, false)
	if err != nil {
		if api.CodeOf(err) == api.CodeVolumeOutsidePool {
			// A link planted in the pool goes, never what it points to.
			if fi, lerr := os.Lstat(h.onHost(path.Join(mustDir(h, p), name))); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return os.Remove(h.onHost(path.Join(mustDir(h, p), name)))
			}
		}
		return err
	}
	_ = h.abortUpload(dir, name)
	if err := os.Remove(h.onHost(file)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return notFound(api.CodeVolumeNotFound, "pool %s has no volume %s", p.Name, name)
		}
		return newErr(api.CodeStorageToolFailed, "removing volume %s: %v", name, unwrapPathError(err))
	}
	return syncDir(h.onHost(dir))
}

func mustDir(h *Host, p Pool) string {
	d, _ := h.poolDir(p)
	return d
}

// Snapshot creates, reverts to or deletes an internal snapshot of a qcow2
// volume at rest (no VM has it open: qemu-img takes the image's lock).
func (h *Host) Snapshot(ctx context.Context, p Pool, name string, op SnapshotOp, snap string) error {
	if err := checkSnapshotName(snap); err != nil {
		return err
	}
	info, err := h.Info(ctx, p, name, "qcow2")
	if err != nil {
		return err
	}
	has := false
	for _, s := range info.Snapshots {
		has = has || s.Name == snap
	}
	flag := map[SnapshotOp]string{SnapshotCreate: "-c", SnapshotRevert: "-a", SnapshotDelete: "-d"}[op]
	switch {
	case flag == "":
		return refused(api.CodeVolumeRequestInvalid, "unknown snapshot operation %q", op)
	case op == SnapshotCreate && has:
		return conflict(api.CodeSnapshotExists, "volume %s has a snapshot %s already", name, snap)
	case op != SnapshotCreate && !has:
		if op == SnapshotDelete {
			return nil
		}
		return notFound(api.CodeSnapshotNotFound, "volume %s has no snapshot %s", name, snap)
	}
	_, file, err := h.volumeFile(p, name, true)
	if err != nil {
		return err
	}
	// qemu-img snapshot takes no format: the file is named with its
	// driver (a json: name), never probed.
	spec, _ := json.Marshal(map[string]any{"driver": "qcow2", "file": map[string]any{"driver": "file", "filename": h.onHost(file)}})
	if res, err := h.q().run(ctx, 10*time.Minute, "snapshot", "-q", flag, snap, "json:"+string(spec)); err != nil {
		return toolError(err, res)
	}
	return nil
}

func checkSnapshotName(s string) error {
	if s == "" || len(s) > 64 {
		return refused(api.CodeVolumeRequestInvalid, "snapshot name %q: 1 to 64 characters", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return refused(api.CodeVolumeRequestInvalid, "snapshot name %q: letters, digits, '.', '_', '-'", s)
		}
	}
	return nil
}

// DiskRef is a VM disk that names a volume: what the agent checks at
// create and before every start.
type DiskRef struct {
	// Field is the definition's field (disks[0]).
	Field string
	// Pool and Volume name the volume; Source is its file as the engine
	// filled it in.
	Pool, Volume, Source, Format string
}

// CheckDisk checks a VM's volume disk on this host: its file is in the
// directory of the pool it names (that directory holds the pool's marker
// on this host), it leads nowhere else (no symbolic link, no second name,
// no climbing out), and a qcow2 volume's backing file is a volume of the
// same pool. mustExist is set right before a start.
func (h *Host) CheckDisk(d DiskRef, mustExist bool) *api.Error {
	bad := func(code, format string, args ...any) *api.Error {
		return &api.Error{Code: code, Field: d.Field + ".volume", Message: fmt.Sprintf(format, args...)}
	}
	if err := vmspec.CheckVolumeName(d.Volume); err != nil {
		return bad(api.CodeDiskVolumeName, "%v", err)
	}
	if d.Source == "" || !path.IsAbs(d.Source) || path.Clean(d.Source) != d.Source || path.Base(d.Source) != d.Volume {
		return bad(api.CodeDiskSourceConflict, "%q is not the file of volume %s", d.Source, d.Volume)
	}
	dir := path.Dir(d.Source)
	res, err := hostpath.Resolve(h.Root, dir)
	if err != nil || !res.Exists || res.ViaProc {
		return bad(api.CodePoolNotAvailable, "pool %s is not available on this host: %s does not exist here", d.Pool, dir)
	}
	b, err := readSmallFile(h.onHost(path.Join(res.Path, MarkerFile)))
	if err != nil {
		return bad(api.CodePoolNotAvailable, "pool %s is not available on this host: %s holds no pool marker (is its storage mounted?)", d.Pool, dir)
	}
	m, err := ParseMarker(b)
	if err != nil || m.Name != d.Pool {
		return bad(api.CodePoolNotAvailable, "pool %s is not available on this host: %s holds another pool", d.Pool, dir)
	}
	file := path.Join(res.Path, d.Volume)
	if err := h.inPool(res.Path, file, d.Volume, d.Pool); err != nil {
		return bad(api.CodeOf(err), "%s", message(err))
	}
	if _, err := os.Lstat(h.onHost(file)); err != nil {
		if mustExist {
			return bad(api.CodeVolumeNotFound, "volume %s is not in pool %s on this host", d.Volume, d.Pool)
		}
		return nil
	}
	if d.Format == "qcow2" {
		if _, err := h.backingIn(res.Path, file, d.Volume, d.Pool); err != nil {
			return bad(api.CodeOf(err), "%s", message(err))
		}
	}
	return nil
}
