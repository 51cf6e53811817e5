package store

import (
	"context"
	"encoding/json"
	"time"

	"polyvirt/internal/arch"
)

// StorageQueries are the storage data operations (schema 5): pools, what
// each host says of them, volumes and their users, images, templates and
// VM snapshots. They are part of Queries.
type StorageQueries interface {
	// CreatePool adds a pool to a cluster (a local one names its host).
	CreatePool(ctx context.Context, p *Pool) error
	// GetPool returns a pool by ID; GetPoolByName by name.
	GetPool(ctx context.Context, id string) (Pool, error)
	GetPoolByName(ctx context.Context, name string) (Pool, error)
	// ListPools lists the pools of a cluster ("" for all), by name.
	ListPools(ctx context.Context, clusterID string) ([]Pool, error)
	// DeletePool removes a pool; ErrInUse while it holds volumes.
	DeletePool(ctx context.Context, id string) error
	// SetHostPools records what a host says of the pools it was asked
	// about, replacing what it said before of those pools.
	SetHostPools(ctx context.Context, hostID string, ps []HostPool) error
	// ListHostPools lists what hosts say of pools: of one host, of one
	// pool, or all ("" for either).
	ListHostPools(ctx context.Context, hostID, poolID string) ([]HostPool, error)

	// CreateVolume adds a volume to a pool.
	CreateVolume(ctx context.Context, v *Volume) error
	// GetVolume returns a volume by ID; GetVolumeByName by pool and name.
	GetVolume(ctx context.Context, id string) (Volume, error)
	GetVolumeByName(ctx context.Context, poolID, name string) (Volume, error)
	// ListVolumes lists volumes by pool and name.
	ListVolumes(ctx context.Context, f VolumeFilter) ([]Volume, error)
	// UpdateVolume writes a volume's state, sizes and checksum if its
	// version is still v.Version.
	UpdateVolume(ctx context.Context, v *Volume) error
	// DeleteVolume removes a volume; ErrInUse while a VM, an image, a
	// template or another volume (an overlay) uses it.
	DeleteVolume(ctx context.Context, id string) error
	// VolumeUsers says who uses a volume.
	VolumeUsers(ctx context.Context, id string) (VolumeUse, error)
	// SetVMVolumes records the volumes a VM's definition names.
	SetVMVolumes(ctx context.Context, vmID string, volumeIDs []string) error
	// ListVMVolumes lists them.
	ListVMVolumes(ctx context.Context, vmID string) ([]string, error)

	// CreateImage adds an image to the library.
	CreateImage(ctx context.Context, im *Image) error
	GetImage(ctx context.Context, id string) (Image, error)
	GetImageByName(ctx context.Context, name string) (Image, error)
	ListImages(ctx context.Context) ([]Image, error)
	DeleteImage(ctx context.Context, id string) error

	// CreateTemplate adds a template with its volumes.
	CreateTemplate(ctx context.Context, t *Template) error
	GetTemplate(ctx context.Context, id string) (Template, error)
	GetTemplateByName(ctx context.Context, name string) (Template, error)
	ListTemplates(ctx context.Context) ([]Template, error)
	DeleteTemplate(ctx context.Context, id string) error

	// CreateSnapshot records a VM snapshot; a name twice for one VM is
	// ErrConflict.
	CreateSnapshot(ctx context.Context, s *Snapshot) error
	// ListSnapshots lists a VM's snapshots, oldest first.
	ListSnapshots(ctx context.Context, vmID string) ([]Snapshot, error)
	GetSnapshot(ctx context.Context, vmID, name string) (Snapshot, error)
	DeleteSnapshot(ctx context.Context, id string) error
}

// PoolKind is shared or local.
type PoolKind string

// The kinds of pool.
const (
	// PoolShared is a directory every host of the cluster sees at the same
	// path (NFS, a cluster file system): VMs using it run on any host, and
	// migrate without copying their disks.
	PoolShared PoolKind = "shared"
	// PoolLocal is a directory on one host.
	PoolLocal PoolKind = "local"
)

// Pool is a storage pool of a cluster.
type Pool struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	ClusterID string   `json:"clusterId"`
	Kind      PoolKind `json:"kind"`
	// HostID is a local pool's host.
	HostID      string    `json:"hostId,omitempty"`
	Path        string    `json:"path"`
	Description string    `json:"description,omitempty"`
	Version     int64     `json:"version"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// HostPool is what a host last said of a pool.
type HostPool struct {
	HostID string `json:"hostId"`
	PoolID string `json:"poolId"`
	// OK tells whether the host can use the pool; Code and Message say
	// why not.
	OK            bool      `json:"ok"`
	Code          string    `json:"code,omitempty"`
	Message       string    `json:"message,omitempty"`
	CapacityBytes int64     `json:"capacityBytes"`
	FreeBytes     int64     `json:"freeBytes"`
	Checked       time.Time `json:"checked"`
}

// VolumeState is a volume's state.
type VolumeState string

// The volume states.
const (
	// VolumeUploading: its data is being uploaded.
	VolumeUploading VolumeState = "uploading"
	// VolumeReady: usable.
	VolumeReady VolumeState = "ready"
)

// Volume is an image file of a pool.
type Volume struct {
	ID     string      `json:"id"`
	PoolID string      `json:"poolId"`
	Name   string      `json:"name"`
	Format string      `json:"format"`
	State  VolumeState `json:"state"`
	// VirtualSize is the size the guest sees; ActualSize the space the
	// file took when last looked at.
	VirtualSize int64 `json:"virtualSize"`
	ActualSize  int64 `json:"actualSize"`
	// UploadSize is the size of an upload's data; SHA256 its checksum.
	UploadSize int64  `json:"uploadSize,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	// BackingVolumeID is the volume a qcow2 overlay is backed by.
	BackingVolumeID string `json:"backingVolumeId,omitempty"`
	// OwnerVMID is the VM the volume was made for (its disk from an image
	// or a template, its cloud-init seed): it goes with the VM.
	OwnerVMID string `json:"ownerVmId,omitempty"`
	// Purpose says what made it: "" (a user), "image", "template", "disk",
	// "seed".
	Purpose string    `json:"purpose,omitempty"`
	Version int64     `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// VolumeFilter selects volumes.
type VolumeFilter struct {
	PoolID    string
	OwnerVMID string
}

// VolumeUse says who uses a volume.
type VolumeUse struct {
	VMs       []string `json:"vms,omitempty"`
	Images    []string `json:"images,omitempty"`
	Templates []string `json:"templates,omitempty"`
	Overlays  []string `json:"overlays,omitempty"`
}

// Empty tells whether nobody uses the volume.
func (u VolumeUse) Empty() bool {
	return len(u.VMs)+len(u.Images)+len(u.Templates)+len(u.Overlays) == 0
}

// Image is an entry of the image library: a volume with its architecture
// and OS.
type Image struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Arch        arch.Arch `json:"arch"`
	OS          string    `json:"os,omitempty"`
	Description string    `json:"description,omitempty"`
	VolumeID    string    `json:"volumeId"`
	Version     int64     `json:"version"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// Template is a VM definition with its disks' volumes, to make VMs from.
type Template struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	ClusterID   string          `json:"clusterId"`
	Arch        arch.Arch       `json:"arch"`
	Definition  json.RawMessage `json:"definition"`
	Description string          `json:"description,omitempty"`
	VolumeIDs   []string        `json:"volumeIds"`
	Version     int64           `json:"version"`
	Created     time.Time       `json:"created"`
	Updated     time.Time       `json:"updated"`
}

// Snapshot is a VM snapshot: internal snapshots of its volumes (and, with
// Memory, its memory in libvirt on HostID).
type Snapshot struct {
	ID          string `json:"id"`
	VMID        string `json:"vmId"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Memory      bool   `json:"memory"`
	// VMState is the VM's state when it was taken (Up, Down).
	VMState string `json:"vmState"`
	// HostID is where a memory snapshot's memory is (libvirt's).
	HostID string `json:"hostId,omitempty"`
	// InternalName is its name in the volumes and in libvirt.
	InternalName string    `json:"internalName"`
	VolumeIDs    []string  `json:"volumeIds"`
	Created      time.Time `json:"created"`
}
