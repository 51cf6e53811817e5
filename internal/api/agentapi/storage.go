package agentapi

import "time"

// The storage documents of the agent's API (/v1/storage/..., and the
// snapshots of /v1/vms/{id}/snapshots): the engine describes a pool in
// every request (its id, name, path and kind); the agent keeps nothing of
// it but what is in the pool's directory (package storage).

// UploadOffsetHeader is the header that says where an upload's data
// starts (a request's) and where the upload stands (an answer's), in the
// agent's API and the engine's.
const UploadOffsetHeader = "Upload-Offset"

// Pool is a storage pool as the engine describes it to a host.
type Pool struct {
	// ID and Name identify the pool (the marker names both).
	ID   string `json:"id"`
	Name string `json:"name"`
	// Path is the pool's directory, an absolute host path.
	Path string `json:"path"`
	// Kind is Shared or Local.
	Kind string `json:"kind"`
}

// PoolStatus is what a host says of one pool.
type PoolStatus struct {
	// Pool and Name are the pool's ID and name.
	Pool string `json:"pool"`
	Name string `json:"name"`
	// OK tells whether the host can use the pool; Code and Message say
	// why not (POOL_DIRECTORY_MISSING, POOL_MARKER_MISSING,
	// POOL_MARKER_MISMATCH, POOL_NOT_WRITABLE, POOL_PATH_NOT_ALLOWED).
	OK      bool   `json:"ok"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// CapacityBytes and FreeBytes are the file system's size and the space
	// left to unprivileged writers.
	CapacityBytes uint64 `json:"capacityBytes"`
	FreeBytes     uint64 `json:"freeBytes"`
}

// VolumeInfo is what a host says of one volume.
type VolumeInfo struct {
	Pool   string `json:"pool"`
	Name   string `json:"name"`
	Format string `json:"format"`
	// VirtualSize is the size the guest sees; ActualSize the space its
	// file takes; FileSize the file's length.
	VirtualSize int64 `json:"virtualSize"`
	ActualSize  int64 `json:"actualSize"`
	FileSize    int64 `json:"fileSize"`
	// Backing is the volume (of the same pool) a qcow2 overlay is backed
	// by, and its format.
	Backing       string `json:"backing,omitempty"`
	BackingFormat string `json:"backingFormat,omitempty"`
	// Snapshots are the volume's internal snapshots.
	Snapshots []VolumeSnapshot `json:"snapshots,omitempty"`
	// SHA256 is the data's checksum, when it was computed (an upload).
	SHA256 string `json:"sha256,omitempty"`
}

// CreateRequest makes a volume.
type CreateRequest struct {
	Pool   Pool   `json:"pool"`
	Name   string `json:"name"`
	Format string `json:"format"`
	// SizeBytes is the virtual size (for an overlay: at least its
	// backing volume's; 0 takes the backing volume's).
	SizeBytes int64 `json:"sizeBytes"`
	// Backing, when set, makes a qcow2 overlay on that volume of the same
	// pool (its format in BackingFormat).
	Backing       string `json:"backing,omitempty"`
	BackingFormat string `json:"backingFormat,omitempty"`
}

// SnapshotOp is an operation on a volume's internal snapshot.
type SnapshotOp string

// The operations (qemu-img snapshot -c, -a, -d).
const (
	SnapshotCreate SnapshotOp = "create"
	SnapshotRevert SnapshotOp = "revert"
	SnapshotDelete SnapshotOp = "delete"
)

// UploadRequest starts an upload of a volume: its name and format, and the
// size and SHA-256 of the data that will come.
type UploadRequest struct {
	Pool   Pool   `json:"pool"`
	Name   string `json:"name"`
	Format string `json:"format"`
	// SizeBytes is the number of bytes of the image file.
	SizeBytes int64 `json:"sizeBytes"`
	// SHA256 is the data's checksum (hex).
	SHA256 string `json:"sha256"`
	// VirtualSize, when not zero, is the size the guest must see: the
	// image is refused when qemu-img says otherwise.
	VirtualSize int64 `json:"virtualSize,omitempty"`
}

// UploadStatus is where an upload stands.
type UploadStatus struct {
	Pool        string    `json:"pool"`
	Name        string    `json:"name"`
	Format      string    `json:"format"`
	SizeBytes   int64     `json:"sizeBytes"`
	SHA256      string    `json:"sha256"`
	VirtualSize int64     `json:"virtualSize,omitempty"`
	Offset      int64     `json:"offset"`
	Started     time.Time `json:"started"`
	Updated     time.Time `json:"updated"`
	// Done tells that the data is complete and was accepted: Volume is the
	// new volume.
	Done   bool        `json:"done"`
	Volume *VolumeInfo `json:"volume,omitempty"`
}

// VolumeSnapshot is one internal snapshot of a qcow2 image.
type VolumeSnapshot struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// DateSec is when it was taken (seconds since the epoch); VMStateSize
	// is the size of the VM's memory saved with it (0 for a disk-only
	// snapshot).
	DateSec     int64 `json:"date-sec"`
	VMStateSize int64 `json:"vm-state-size"`
}

// PoolsRequest asks a host about pools.
type PoolsRequest struct {
	Pools []Pool `json:"pools"`
}

// VolumeRequest names a volume of a pool (and its format), with what an
// operation needs.
type VolumeRequest struct {
	Pool   Pool   `json:"pool"`
	Name   string `json:"name"`
	Format string `json:"format,omitempty"`
	// SizeBytes is the new size of a resize.
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// Target is the new volume of a clone.
	Target *VolumeRequest `json:"target,omitempty"`
	// Op and Snapshot are an operation on an internal snapshot of a volume
	// at rest (create, revert, delete).
	Op       SnapshotOp `json:"op,omitempty"`
	Snapshot string     `json:"snapshot,omitempty"`
}

// SnapshotRequest takes a snapshot of a running VM.
type SnapshotRequest struct {
	// Name is the snapshot's name in the disks (and in libvirt).
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Memory saves the VM's memory with its disks.
	Memory bool `json:"memory"`
}

// SnapshotResult says what a snapshot operation did.
type SnapshotResult struct {
	VM   string `json:"vm"`
	Name string `json:"name"`
	// Memory tells that the VM's memory is in the snapshot.
	Memory bool `json:"memory"`
	// Disks are the files the snapshot is in.
	Disks []string `json:"disks"`
	// State is the VM's state after the operation.
	State VMState `json:"state"`
}
