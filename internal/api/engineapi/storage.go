package engineapi

import (
	"encoding/json"
	"polyvirt/internal/api/agentapi"
	"time"
)

// UploadOffsetHeader says where an upload's data starts (PUT
// /volumes/{pool}/{volume}/data) and where the upload stands (the
// answers); Content-Range "bytes FIRST-LAST/SIZE" may say it instead.
const UploadOffsetHeader = agentapi.UploadOffsetHeader

// Pool is a storage pool of a cluster.
type Pool struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ClusterID string `json:"clusterId"`
	Cluster   string `json:"cluster"`
	// Kind is shared (every host of the cluster sees the directory at the
	// same path: an NFS export, a cluster file system) or local (one
	// host's directory).
	Kind string `json:"kind"`
	// HostID and Host are a local pool's host.
	HostID      string `json:"hostId,omitempty"`
	Host        string `json:"host,omitempty"`
	Path        string `json:"path"`
	Description string `json:"description,omitempty"`
	// CapacityBytes and FreeBytes are the pool's file system's, as a host
	// that has the pool last saw them.
	CapacityBytes int64 `json:"capacityBytes"`
	FreeBytes     int64 `json:"freeBytes"`
	// Hosts says, per host of the cluster, whether it has the pool (and
	// why not).
	Hosts   []HostPool `json:"hosts"`
	Volumes int        `json:"volumes"`
	Version int64      `json:"version"`
	Created time.Time  `json:"created"`
	Updated time.Time  `json:"updated"`
}

// HostPool is what a host last said of a pool.
type HostPool struct {
	Pool   string `json:"pool"`
	HostID string `json:"hostId"`
	Host   string `json:"host"`
	// OK tells whether the host can use the pool; Code and Message say
	// why not (POOL_MARKER_MISSING: the storage is not mounted there, ...).
	OK            bool      `json:"ok"`
	Code          string    `json:"code,omitempty"`
	Message       string    `json:"message,omitempty"`
	CapacityBytes int64     `json:"capacityBytes"`
	FreeBytes     int64     `json:"freeBytes"`
	Checked       time.Time `json:"checked"`
}

// PoolRequest creates a pool (POST /api/v1/pools).
type PoolRequest struct {
	Name    string `json:"name"`
	Cluster string `json:"cluster"`
	// Kind is shared or local; a local pool names its host.
	Kind string `json:"kind"`
	Host string `json:"host,omitempty"`
	// Path is the pool's directory on the hosts: a directory their path
	// policy allows for disk images (host_paths.disk), or below one.
	Path        string `json:"path"`
	Description string `json:"description,omitempty"`
}

// Volume is an image file of a pool.
type Volume struct {
	ID     string `json:"id"`
	Pool   string `json:"pool"`
	PoolID string `json:"poolId"`
	Name   string `json:"name"`
	// Format is raw or qcow2.
	Format string `json:"format"`
	// State is uploading or ready.
	State       string `json:"state"`
	VirtualSize int64  `json:"virtualSize"`
	ActualSize  int64  `json:"actualSize"`
	// SHA256 is the checksum of the data uploaded.
	SHA256 string `json:"sha256,omitempty"`
	// Backing is the volume a qcow2 overlay is backed by (an image's).
	Backing string `json:"backing,omitempty"`
	// OwnerVM is the VM it was made for (deleted with it).
	OwnerVM string `json:"ownerVm,omitempty"`
	Purpose string `json:"purpose,omitempty"`
	// UsedBy says who uses it: a volume in use cannot be deleted.
	UsedBy *VolumeUse `json:"usedBy,omitempty"`
	// Upload is an upload in progress.
	Upload  *UploadProgress `json:"upload,omitempty"`
	Version int64           `json:"version"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
}

// VolumeUse says who uses a volume.
type VolumeUse struct {
	VMs       []string `json:"vms,omitempty"`
	Images    []string `json:"images,omitempty"`
	Templates []string `json:"templates,omitempty"`
	Overlays  []string `json:"overlays,omitempty"`
}

// UploadProgress is where an upload stands.
type UploadProgress struct {
	SizeBytes int64  `json:"sizeBytes"`
	Offset    int64  `json:"offset"`
	SHA256    string `json:"sha256"`
	Done      bool   `json:"done"`
	// Percent is Offset of SizeBytes.
	Percent float64 `json:"percent"`
}

// VolumeRequest creates a volume (POST /api/v1/volumes): empty, of a
// size, or to be uploaded (Upload set; the data then comes with PUT
// /api/v1/volumes/{pool}/{volume}/data).
type VolumeRequest struct {
	Pool   string `json:"pool"`
	Name   string `json:"name"`
	Format string `json:"format"`
	// SizeBytes is an empty volume's virtual size.
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// Upload declares the data of an upload.
	Upload *UploadRequest `json:"upload,omitempty"`
}

// UploadRequest declares the data of an upload: its size and SHA-256,
// checked when it is complete, and optionally the virtual size qemu-img
// must find.
type UploadRequest struct {
	SizeBytes   int64  `json:"sizeBytes"`
	SHA256      string `json:"sha256"`
	VirtualSize int64  `json:"virtualSize,omitempty"`
}

// UploadAnswer answers a PUT of upload data: where the upload stands, and
// the volume once it is complete and accepted.
type UploadAnswer struct {
	Upload UploadProgress `json:"upload"`
	Volume *Volume        `json:"volume,omitempty"`
}

// VolumeResize grows a volume (POST .../resize).
type VolumeResize struct {
	SizeBytes int64 `json:"sizeBytes"`
}

// VolumeClone copies a volume whole into a new one (POST .../clone).
type VolumeClone struct {
	Name string `json:"name"`
	// Pool is the new volume's pool (default: the same).
	Pool string `json:"pool,omitempty"`
	// Format is the new volume's format (default: the same).
	Format string `json:"format,omitempty"`
}

// Image is an entry of the image library: a volume with its
// architecture and OS.
type Image struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Arch        string    `json:"arch"`
	OS          string    `json:"os,omitempty"`
	Description string    `json:"description,omitempty"`
	Pool        string    `json:"pool"`
	Cluster     string    `json:"cluster"`
	Volume      string    `json:"volume"`
	Format      string    `json:"format"`
	SizeBytes   int64     `json:"sizeBytes"`
	SHA256      string    `json:"sha256,omitempty"`
	Version     int64     `json:"version"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// ImageRequest adds a volume to the image library (POST /api/v1/images).
type ImageRequest struct {
	Name string `json:"name"`
	// Arch is the guest architecture the image runs (ppc64le, x86_64;
	// aliases taken): one of its pool's cluster.
	Arch        string `json:"arch"`
	OS          string `json:"os,omitempty"`
	Description string `json:"description,omitempty"`
	// Pool and Volume name the image's volume (uploaded first).
	Pool   string `json:"pool"`
	Volume string `json:"volume"`
}

// Template is a VM definition with its disks' volumes.
type Template struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Cluster     string          `json:"cluster"`
	Arch        string          `json:"arch"`
	Description string          `json:"description,omitempty"`
	Definition  json.RawMessage `json:"definition"`
	Volumes     []string        `json:"volumes"`
	Version     int64           `json:"version"`
	Created     time.Time       `json:"created"`
	Updated     time.Time       `json:"updated"`
}

// TemplateRequest makes a template from a VM that is Down (POST
// /api/v1/templates): its definition, and a copy of each of its volumes.
type TemplateRequest struct {
	Name        string `json:"name"`
	VM          string `json:"vm"`
	Description string `json:"description,omitempty"`
}

// VMStorageRequest are the storage parts of a VM creation.
type VMStorageRequest struct {
	// Image makes the VM's first disk from a library image: a qcow2
	// overlay on it, or with Clone a full copy.
	Image string `json:"image,omitempty"`
	// Template makes the VM from a template: its definition (the
	// request's definition overrides its fields) and its disks (overlays
	// on the template's volumes, or with Clone copies).
	Template string `json:"template,omitempty"`
	Clone    bool   `json:"clone,omitempty"`
	// Pool is where the new volumes go (default: the image's or the
	// template's pool; an overlay stays in its backing volume's pool).
	Pool string `json:"pool,omitempty"`
	// DiskSizeBytes grows the disk made from the image.
	DiskSizeBytes int64 `json:"diskSizeBytes,omitempty"`
	// CloudInit gives the VM a NoCloud seed as a CD-ROM.
	CloudInit *CloudInit `json:"cloudInit,omitempty"`
}

// CloudInit is a VM's first-boot configuration.
type CloudInit struct {
	// UserData is the user's cloud-init configuration (#cloud-config
	// YAML, a script, ...).
	UserData string `json:"userData"`
	// SSHKeys are public keys for the default user.
	SSHKeys []string `json:"sshKeys,omitempty"`
	// Hostname is the VM's host name (default: the VM's name).
	Hostname string `json:"hostname,omitempty"`
	// NetworkConfig is a network configuration (version 1 or 2; default
	// DHCP on every Ethernet interface).
	NetworkConfig string `json:"networkConfig,omitempty"`
}

// Snapshot is a VM snapshot.
type Snapshot struct {
	ID          string `json:"id"`
	VM          string `json:"vm"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Memory tells that the VM's memory was saved with its disks.
	Memory bool `json:"memory"`
	// VMState is the VM's state when it was taken.
	VMState string `json:"vmState"`
	// Host is where a memory snapshot's memory is.
	Host    string    `json:"host,omitempty"`
	Volumes []string  `json:"volumes"`
	Created time.Time `json:"created"`
}

// SnapshotRequest takes a snapshot (POST /api/v1/vms/{vm}/snapshots): of
// the disks only (a running VM too), or with Memory of a running VM's
// memory too.
type SnapshotRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Memory      bool   `json:"memory,omitempty"`
}
