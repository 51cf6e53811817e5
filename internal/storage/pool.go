package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"polyvirt/internal/api"
	"polyvirt/internal/hostexec"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/vmspec"
)

// The kinds of pool.
const (
	// Shared: a directory every host of the cluster sees at the same path
	// (an NFS export, a cluster file system), the same storage everywhere.
	Shared = "shared"
	// Local: a directory on one host.
	Local = "local"
)

// MarkerFile is the name of a pool's marker, in its directory: it names
// the pool, so that a host tells the pool's storage from an empty mount
// point or another pool's.
const MarkerFile = ".polyvirt-pool"

// Marker is the content of a pool's marker file (JSON).
type Marker struct {
	Pool    string    `json:"pool"`
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
}

// ParseMarker reads a marker file.
func ParseMarker(b []byte) (Marker, error) {
	var m Marker
	if len(b) > 64<<10 {
		return m, fmt.Errorf("marker of %d bytes", len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Marker{}, fmt.Errorf("not a pool marker: %v", err)
	}
	if m.Pool == "" || m.Name == "" {
		return Marker{}, errors.New("not a pool marker: pool or name missing")
	}
	return m, nil
}

// Host is one host's storage: its root, its path policy, and the runner of
// qemu-img.
type Host struct {
	// Root is the host's root directory ("/"; a tree in tests).
	Root string
	// Policy is the host's path policy: a pool is a directory allowed for
	// disk images.
	Policy hostpath.Policy
	// Exclude are directories no pool may be in (the agent's own).
	Exclude []string
	// Runner runs qemu-img (hostexec.Exec on a host).
	Runner hostexec.Runner
	// QemuImg is the qemu-img program (default "qemu-img").
	QemuImg string
}

func (h *Host) q() qemuImg { return qemuImg{runner: h.Runner, name: h.QemuImg} }

// onHost is where a host path is in this process's file system.
func (h *Host) onHost(p string) string {
	if h.Root == "" || h.Root == "/" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// CheckPoolDefinition checks what the engine says of a pool: a name, an
// absolute clean path, a kind.
func CheckPoolDefinition(p Pool) error {
	if err := vmspec.CheckPoolName(p.Name); err != nil {
		return refused(api.CodeVolumeRequestInvalid, "%v", err)
	}
	if p.ID == "" || len(p.ID) > 64 || strings.ContainsAny(p.ID, "/\x00") {
		return refused(api.CodeVolumeRequestInvalid, "pool %s: id %q is not an id", p.Name, p.ID)
	}
	if !path.IsAbs(p.Path) || path.Clean(p.Path) != p.Path || p.Path == "/" || strings.ContainsRune(p.Path, 0) {
		return refused(api.CodeVolumeRequestInvalid, "pool %s: path %q is not a clean absolute directory path", p.Name, p.Path)
	}
	if p.Kind != Shared && p.Kind != Local {
		return refused(api.CodeVolumeRequestInvalid, "pool %s: kind %q: want shared or local", p.Name, p.Kind)
	}
	return nil
}

// poolDir checks a pool on this host and returns its directory with every
// link followed: the path must be allowed for disk images (the directory
// itself or below one the policy lists), outside the excluded
// directories, an existing directory holding the pool's marker.
func (h *Host) poolDir(p Pool) (string, error) {
	st := h.poolState(p, false)
	if !st.ok {
		return "", refused(api.CodePoolNotAvailable, "pool %s is not available on this host: %s (%s)", p.Name, st.msg, st.code)
	}
	return st.dir, nil
}

type poolState struct {
	ok        bool
	code, msg string
	dir       string
	marker    bool // the marker exists (and is the pool's)
}

func (h *Host) poolState(p Pool, forInit bool) poolState {
	if err := CheckPoolDefinition(p); err != nil {
		return poolState{code: api.CodeVolumeRequestInvalid, msg: err.Error()}
	}
	res, err := hostpath.Resolve(h.Root, p.Path)
	if err != nil {
		return poolState{code: api.CodePoolPathNotAllowed, msg: fmt.Sprintf("%s cannot be followed: %v", p.Path, err)}
	}
	if res.ViaProc {
		return poolState{code: api.CodePoolPathNotAllowed, msg: fmt.Sprintf("%s goes through /proc", p.Path)}
	}
	if !h.allowedDir(res.Path) {
		return poolState{code: api.CodePoolPathNotAllowed, msg: fmt.Sprintf("%s is not a directory this host allows for disk images (%s; host_paths.disk in the agent's configuration)",
			p.Path, h.Policy.Places(hostpath.Disk))}
	}
	for _, x := range h.Exclude {
		if xr, err := hostpath.Resolve(h.Root, x); err != nil || res.Path == xr.Path || hostpath.Within(res.Path, xr.Path) || hostpath.Within(xr.Path, res.Path) {
			return poolState{code: api.CodePoolPathNotAllowed, msg: fmt.Sprintf("%s overlaps the agent's own directory %s", p.Path, x)}
		}
	}
	fi, err := os.Stat(h.onHost(res.Path))
	if err != nil || !res.Exists {
		return poolState{code: api.CodePoolMissing, msg: fmt.Sprintf("%s does not exist on this host (is the pool's storage mounted there?)", p.Path)}
	}
	if !fi.IsDir() {
		return poolState{code: api.CodePoolMissing, msg: fmt.Sprintf("%s is not a directory", p.Path)}
	}
	st := poolState{dir: res.Path}
	b, err := readSmallFile(h.onHost(path.Join(res.Path, MarkerFile)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if forInit {
			st.ok = true
			return st
		}
		st.code, st.msg = api.CodePoolMarkerMissing, fmt.Sprintf("%s has no pool marker (%s): the pool's storage is not there (an empty mount point?)", p.Path, MarkerFile)
		return st
	case err != nil:
		st.code, st.msg = api.CodePoolMarkerMissing, fmt.Sprintf("%s: its pool marker cannot be read: %v", p.Path, err)
		return st
	}
	m, err := ParseMarker(b)
	if err != nil {
		st.code, st.msg = api.CodePoolMarkerMismatch, fmt.Sprintf("%s/%s: %v", p.Path, MarkerFile, err)
		return st
	}
	if m.Pool != p.ID {
		st.code, st.msg = api.CodePoolMarkerMismatch, fmt.Sprintf("%s holds pool %s (%s), not %s (%s): this host sees other storage at the pool's path", p.Path, m.Name, m.Pool, p.Name, p.ID)
		return st
	}
	st.ok, st.marker = true, true
	return st
}

// allowedDir tells whether a resolved directory is one the policy allows
// for disk images, or below one.
func (h *Host) allowedDir(dir string) bool {
	for _, d := range h.Policy.Dirs(hostpath.Disk) {
		dr, err := hostpath.Resolve(h.Root, d)
		if err != nil || dr.Path == "/" {
			continue
		}
		if dir == dr.Path || hostpath.Within(dir, dr.Path) {
			return true
		}
	}
	return false
}

// CheckPool says whether this host can use a pool: its directory allowed,
// there, holding the pool's marker, writable; and its capacity and free
// space.
func (h *Host) CheckPool(p Pool) PoolStatus {
	out := PoolStatus{Pool: p.ID, Name: p.Name}
	st := h.poolState(p, false)
	if !st.ok {
		out.Code, out.Message = st.code, st.msg
		return out
	}
	if err := h.probeWrite(st.dir); err != nil {
		out.Code, out.Message = api.CodePoolNotWritable, fmt.Sprintf("%s: %v", p.Path, err)
		return out
	}
	out.OK = true
	out.CapacityBytes, out.FreeBytes = h.space(st.dir)
	return out
}

// InitPool writes the pool's marker into its directory when it has none
// (the first host of a pool does it when the pool is created) and checks
// the pool. A directory holding another pool's marker is refused.
func (h *Host) InitPool(p Pool) (PoolStatus, error) {
	st := h.poolState(p, true)
	if !st.ok {
		return PoolStatus{Pool: p.ID, Name: p.Name, Code: st.code, Message: st.msg}, refused(st.code, "%s", st.msg)
	}
	if !st.marker {
		b, _ := json.MarshalIndent(Marker{Pool: p.ID, Name: p.Name, Kind: p.Kind, Created: time.Now().UTC()}, "", "  ")
		if err := writeFileAtomic(h.onHost(st.dir), MarkerFile, append(b, '\n'), 0o644); err != nil {
			return PoolStatus{}, refused(api.CodePoolNotWritable, "%s: cannot write the pool marker: %v", p.Path, err)
		}
	}
	ps := h.CheckPool(p)
	if !ps.OK {
		return ps, refused(ps.Code, "%s", ps.Message)
	}
	return ps, nil
}

// probeWrite creates and removes a file in the directory.
func (h *Host) probeWrite(dir string) error {
	f, err := os.CreateTemp(h.onHost(dir), ".polyvirt-probe-*")
	if err != nil {
		return errors.New("not writable by the agent: " + unwrapPathError(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// space is a file system's capacity and the space left to unprivileged
// writers.
func (h *Host) space(dir string) (capacity, free uint64) {
	var s unix.Statfs_t
	if unix.Statfs(h.onHost(dir), &s) != nil {
		return 0, 0
	}
	return s.Blocks * uint64(s.Bsize), s.Bavail * uint64(s.Bsize)
}

func unwrapPathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// readSmallFile reads a regular file of at most 64 KiB without following a
// final symbolic link.
func readSmallFile(p string) ([]byte, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Base(p))
	}
	if fi.Size() > 64<<10 {
		return nil, fmt.Errorf("%s is larger than 64 KiB", filepath.Base(p))
	}
	return os.ReadFile(p)
}

// writeFileAtomic writes a file in dir through a temporary file and a
// rename, then syncs the directory.
func writeFileAtomic(dir, name string, data []byte, mode os.FileMode) error {
	return writeFileRenamed(dir, name, data, mode, true)
}

// writeFileRenamed writes a file through a temporary file and a rename
// (readers never see half of it); with durable, the data and the directory
// are synced too.
func writeFileRenamed(dir, name string, data []byte, mode os.FileMode, durable bool) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// renameNoReplace renames a file within a directory, refusing to replace
// an existing one.
func renameNoReplace(dir, from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(dir, from), unix.AT_FDCWD, filepath.Join(dir, to), unix.RENAME_NOREPLACE)
	if errors.Is(err, syscall.EEXIST) {
		return conflict(api.CodeVolumeExists, "a volume named %s exists already", to)
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) {
		// A file system without RENAME_NOREPLACE (some NFS servers): a
		// hard link refuses an existing name the same way.
		if err := os.Link(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return conflict(api.CodeVolumeExists, "a volume named %s exists already", to)
			}
			return err
		}
		return os.Remove(filepath.Join(dir, from))
	}
	if err != nil {
		return newErr(api.CodeStorageToolFailed, "rename %s → %s: %v", from, to, err)
	}
	return nil
}
