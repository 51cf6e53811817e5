package engineapi

import "time"

// MigrationRequest moves a running VM to another host of its cluster
// (POST /api/v1/vms/{vm}/migrate).
type MigrationRequest struct {
	// Host is the destination (name or ID); "" lets the engine choose the
	// host of the cluster that fits best.
	Host string `json:"host,omitempty"`
	// Policy overrides the VM's migration policy (and the cluster's) for
	// this migration: minimal-downtime, post-copy, suspend-workload.
	Policy string `json:"policy,omitempty"`
	// MaxBandwidthMiBs caps the migration stream, in MiB/s (0: no cap).
	MaxBandwidthMiBs int `json:"maxBandwidthMiBs,omitempty"`
	// Reason says why, for the audit log.
	Reason string `json:"reason,omitempty"`
}

// Migration is a VM's live migration as the engine sees it: in flight
// (the VM is MigratingFrom), or the last one with its outcome.
type Migration struct {
	// ID is the migration's id.
	ID   string `json:"id"`
	VM   string `json:"vm"`
	Name string `json:"name"`
	// SourceID/Source and DestinationID/Destination are the hosts.
	SourceID      string `json:"sourceId"`
	Source        string `json:"source"`
	DestinationID string `json:"destinationId"`
	Destination   string `json:"destination"`
	// Policy is the migration policy in effect.
	Policy string `json:"policy"`
	// Phase is preparing, copying-disks, copying-memory, post-copy,
	// paused-to-finish, then completed, failed or canceled.
	Phase string `json:"phase"`
	// Pass is the pass over the memory (1: the first copy).
	Pass int `json:"pass"`
	// Memory and disk figures in bytes, rates in bytes per second.
	MemoryTotal      uint64 `json:"memoryTotal"`
	MemoryProcessed  uint64 `json:"memoryProcessed"`
	MemoryRemaining  uint64 `json:"memoryRemaining"`
	MemoryRate       uint64 `json:"memoryRate"`
	DirtyPagesPerSec uint64 `json:"dirtyPagesPerSec,omitempty"`
	DiskTotal        uint64 `json:"diskTotal,omitempty"`
	DiskProcessed    uint64 `json:"diskProcessed,omitempty"`
	DiskRemaining    uint64 `json:"diskRemaining,omitempty"`
	DiskRate         uint64 `json:"diskRate,omitempty"`
	// AllowedDowntimeMs is the pause the policy allows now; Steps are the
	// convergence steps taken.
	AllowedDowntimeMs int      `json:"allowedDowntimeMs,omitempty"`
	Steps             []string `json:"steps,omitempty"`
	// SharedDisks are on storage both hosts see; CopiedDisks are copied
	// during the migration (the destination does not see them).
	SharedDisks []string `json:"sharedDisks,omitempty"`
	CopiedDisks []string `json:"copiedDisks,omitempty"`
	// EncryptedStream tells that the migration stream itself is encrypted
	// (the libvirt daemons always talk over TLS).
	EncryptedStream bool      `json:"encryptedStream,omitempty"`
	Started         time.Time `json:"started"`
	Finished        time.Time `json:"finished,omitempty"`
	// Updated is when the engine last heard how it goes.
	Updated time.Time `json:"updated"`
	// ElapsedMs is the time so far (the total once finished); DowntimeMs
	// the pause libvirt measured; EngineMs the engine's own share before
	// the source started sending (its decision and its orders).
	ElapsedMs  int64 `json:"elapsedMs"`
	DowntimeMs int64 `json:"downtimeMs,omitempty"`
	EngineMs   int64 `json:"engineMs,omitempty"`
	// Code and Error say why it failed or was canceled.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Evacuation tells that it is part of switching its source to
	// Maintenance.
	Evacuation bool   `json:"evacuation,omitempty"`
	Reason     string `json:"reason,omitempty"`
	User       string `json:"user,omitempty"`
}

// MaintenanceRequest switches a host to Maintenance
// (POST /api/v1/hosts/{host}/maintenance): its VMs migrate to other hosts
// of its cluster first.
type MaintenanceRequest struct {
	Reason string `json:"reason,omitempty"`
	// StopVMs shuts down the VMs that cannot leave (pinned to the host, no
	// host fits) instead of refusing.
	StopVMs bool `json:"stopVms,omitempty"`
}

// The outcomes of one VM of an evacuation.
const (
	EvacuationMigrated = "migrated"
	EvacuationStopped  = "stopped"
	EvacuationFailed   = "failed"
	EvacuationPending  = "pending"
)

// EvacuatedVM is what happened to one VM of an evacuating host.
type EvacuatedVM struct {
	VM   string `json:"vm"`
	Name string `json:"name"`
	// Outcome is migrated, stopped, failed or pending.
	Outcome     string `json:"outcome"`
	Destination string `json:"destination,omitempty"`
	Code        string `json:"code,omitempty"`
	Message     string `json:"message,omitempty"`
}

// Evacuation is a host's evacuation: each VM's outcome. The host is
// Maintenance when every VM left.
type Evacuation struct {
	Host     string        `json:"host"`
	HostID   string        `json:"hostId"`
	Status   string        `json:"status"`
	VMs      []EvacuatedVM `json:"vms"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished,omitempty"`
}
