package engineapi

import (
	"encoding/json"
	"polyvirt/internal/arch"
	"time"
)

// VM is a virtual machine as the engine manages it.
type VM struct {
	// ID is the VM's id, also its definition's uuid (the same on every
	// host it runs on).
	ID   string `json:"id"`
	Name string `json:"name"`
	// ClusterID and Cluster (its name) are the VM's cluster.
	ClusterID string `json:"clusterId"`
	Cluster   string `json:"cluster"`
	// Arch is the guest architecture (ppc64le).
	Arch arch.Arch `json:"arch"`
	// State is the engine's state of the VM: Down, WaitForLaunch, Up,
	// Paused, PoweringDown, NotResponding (its QEMU does not answer),
	// Unknown (its host does not answer, or cannot reach libvirt), ...
	State string `json:"state"`
	// HostID and Host are the host it runs on ("" when Down).
	HostID string `json:"hostId,omitempty"`
	Host   string `json:"host,omitempty"`
	// PinnedHostID and PinnedHost are the host it may only run on.
	PinnedHostID string `json:"pinnedHostId,omitempty"`
	PinnedHost   string `json:"pinnedHost,omitempty"`
	// LastHostID and LastHost are the host it ran on last.
	LastHostID string `json:"lastHostId,omitempty"`
	LastHost   string `json:"lastHost,omitempty"`
	// HA marks a highly available VM: restarted on another host of its
	// cluster when its host stops answering.
	HA bool `json:"ha"`
	// MemoryMiB, VCPUs, CPUModel and Machine summarize the definition.
	MemoryMiB int64  `json:"memoryMiB"`
	VCPUs     int    `json:"vcpus"`
	CPUModel  string `json:"cpuModel,omitempty"`
	Machine   string `json:"machine,omitempty"`
	// Definition is the VM definition (docs/vm-definition.md) with the
	// engine's defaults filled in: uuid, architecture, CPU model and
	// emulated machine from the cluster, and every architecture default.
	Definition json.RawMessage `json:"definition"`
	// MigrationPolicy is the VM's own migration policy ("": its
	// cluster's).
	MigrationPolicy string `json:"migrationPolicy,omitempty"`
	// MigratingToID and MigratingTo are the host a migration in flight
	// sends it to; Migration is that migration with its figures, or the
	// VM's last one with its outcome.
	MigratingToID string     `json:"migratingToId,omitempty"`
	MigratingTo   string     `json:"migratingTo,omitempty"`
	Migration     *Migration `json:"migration,omitempty"`
	StateChanged  time.Time  `json:"stateChanged"`
	Version       int64      `json:"version"`
	Created       time.Time  `json:"created"`
	Updated       time.Time  `json:"updated"`
}

// VMRequest creates a VM (POST /api/v1/vms).
type VMRequest struct {
	// Definition is the VM definition (a JSON object, the format of
	// docs/vm-definition.md). Its name is the VM's name; its uuid, when
	// given, the VM's id.
	Definition json.RawMessage `json:"definition"`
	// Cluster is the VM's cluster (name or ID).
	Cluster string `json:"cluster"`
	// Host pins the VM to a host of its cluster (name or ID).
	Host string `json:"host,omitempty"`
	// HA marks the VM highly available.
	HA bool `json:"ha,omitempty"`
	// MigrationPolicy is the VM's own migration policy ("": its
	// cluster's).
	MigrationPolicy string `json:"migrationPolicy,omitempty"`
	// Storage makes the VM's disks from the image library or a template
	// and gives it a cloud-init seed (storage.go).
	VMStorageRequest
}

// VMUpdate changes a VM (PATCH /api/v1/vms/{vm}): only the fields given
// change. The definition and the cluster change only while the VM is
// Down; the pin and the HA flag at any time.
type VMUpdate struct {
	Definition json.RawMessage `json:"definition,omitempty"`
	Cluster    *string         `json:"cluster,omitempty"`
	// Host pins the VM to a host; "" unpins it.
	Host *string `json:"host,omitempty"`
	HA   *bool   `json:"ha,omitempty"`
	// MigrationPolicy sets the VM's own migration policy; "" follows its
	// cluster's again.
	MigrationPolicy *string `json:"migrationPolicy,omitempty"`
	// Version, when set, must be the VM's current version.
	Version *int64 `json:"version,omitempty"`
}

// VMActionRequest is the optional body of a VM action
// (POST /api/v1/vms/{vm}/{action}).
type VMActionRequest struct {
	// Reason says why, for the audit log.
	Reason string `json:"reason,omitempty"`
	// TimeoutSeconds (shutdown only) is how long the guest has to power
	// off; 0 or absent: the cluster's shutdownTimeoutSeconds.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// Force (shutdown only; default true) powers the VM off when the guest
	// has not within the time-out, as oVirt does; false only asks the
	// guest (the VM may stay Up).
	Force *bool `json:"force,omitempty"`
}

// VMAction answers a VM action: whether it changed anything (starting a
// running VM does not), what happened, the state after it and the host.
type VMAction struct {
	VM      string `json:"vm"`
	Name    string `json:"name"`
	Action  string `json:"action"`
	Changed bool   `json:"changed"`
	Message string `json:"message"`
	State   string `json:"state"`
	HostID  string `json:"hostId,omitempty"`
	Host    string `json:"host,omitempty"`
}
