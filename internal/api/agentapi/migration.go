package agentapi

import (
	"encoding/json"
	"time"
)

// Live migration between two agents. The engine orders it in three steps:
//
//  1. POST /v1/vms/{id}/migration/plan at the source: the running VM's
//     facts (its exact machine, its CPU, its disks, each with a probe file
//     the source made beside it) — MigrationPlan;
//  2. POST /v1/incoming at the destination: the announcement
//     (IncomingRequest). The destination says which disks it sees (the
//     probe is there: the same storage) and creates the others empty, and
//     answers where the VM goes (Incoming). Only an announced VM may
//     arrive: an agent destroys an incoming domain it was not told of;
//  3. POST /v1/vms/{id}/migrate at the source (MigrationOrder): the
//     source's libvirtd sends the VM peer to peer over TLS; the source
//     follows its progress and steps through the convergence schedule.
//     GET /v1/vms/{id}/migration follows it (MigrationStatus), DELETE
//     cancels it.
//
// When it is done the VM belongs to the destination: it lists it, the
// source no longer does.

// ConvergenceSchedule says what the source does while the memory copy does
// not converge (VDSM's convergence schedule): Init runs when the copy
// starts, and each Stalling step runs once the copy has needed more than
// Limit passes over the memory (in order, each once).
type ConvergenceSchedule struct {
	Init     []ConvergenceAction `json:"init"`
	Stalling []StallingStep      `json:"stalling"`
}

// The convergence actions.
const (
	// ConvergeSetDowntime allows the final pause to last DowntimeMs.
	ConvergeSetDowntime = "setDowntime"
	// ConvergePostCopy switches to post-copy: the VM runs on the
	// destination at once and fetches the pages it still lacks.
	ConvergePostCopy = "postCopy"
	// ConvergeSuspend pauses the guest on the source so that the copy
	// finishes; it runs again on the destination.
	ConvergeSuspend = "suspend"
	// ConvergeAbort gives up: the VM keeps running on the source.
	ConvergeAbort = "abort"
)

// ConvergenceAction is one action of a schedule.
type ConvergenceAction struct {
	Action     string `json:"action"`
	DowntimeMs int    `json:"downtimeMs,omitempty"`
}

// StallingStep is an action that runs once the copy needed more than Limit
// passes.
type StallingStep struct {
	Limit int `json:"limit"`
	ConvergenceAction
}

// MigrationDisk is one disk (or CD-ROM) of a VM about to migrate.
type MigrationDisk struct {
	// Target is the guest's name of the disk (vda, sdb).
	Target string `json:"target"`
	// Path is its file on the source (the same path on the destination).
	Path   string `json:"path"`
	Format string `json:"format,omitempty"`
	// VirtualSize is the disk's size as the guest sees it, in bytes.
	VirtualSize uint64 `json:"virtualSize"`
	// ReadOnly disks (CD-ROMs) are never copied.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Probe is a file the source made in the disk's directory: a host
	// that sees it sees the same storage.
	Probe string `json:"probe,omitempty"`
	// Shared is the destination's verdict: it sees the disk's storage, the
	// disk is not copied. A disk that is not shared is copied during the
	// migration (libvirt's non-shared-disk migration, over NBD).
	Shared bool `json:"shared"`
}

// MigrationPlan answers POST /v1/vms/{id}/migration/plan: what the
// destination must offer for the running VM.
type MigrationPlan struct {
	VM   string `json:"vm"`
	Name string `json:"name"`
	// Machine is the VM's exact emulated machine (pseries-7.2,
	// pc-q35-7.2): the destination's QEMU must offer this one.
	Machine string `json:"machine"`
	// CPUMode and CPUModel are the running VM's CPU (custom POWER8,
	// host-model with compatibility POWER8, host-passthrough).
	CPUMode  string `json:"cpuMode,omitempty"`
	CPUModel string `json:"cpuModel,omitempty"`
	// MemoryMiB and VCPUs are its size.
	MemoryMiB int64 `json:"memoryMiB"`
	VCPUs     int   `json:"vcpus"`
	// PageKiB is the page size backing its memory on the source (the
	// host's base page size, or its huge pages').
	PageKiB int `json:"pageKiB"`
	// HugePages, FileBacked and SharedMemory say what of its memory
	// post-copy cannot move.
	HugePages    bool            `json:"hugePages,omitempty"`
	FileBacked   bool            `json:"fileBacked,omitempty"`
	SharedMemory bool            `json:"sharedMemory,omitempty"`
	Disks        []MigrationDisk `json:"disks"`
}

// IncomingRequest is POST /v1/incoming: the engine announces a VM that is
// about to arrive from another host.
type IncomingRequest struct {
	// Migration is the engine's id of the migration.
	Migration string `json:"migration"`
	VM        string `json:"vm"`
	Name      string `json:"name"`
	// SourceHost is the host id it comes from.
	SourceHost string `json:"sourceHost"`
	// Definition is the VM definition (its host paths are checked against
	// this host's policy).
	Definition json.RawMessage `json:"definition"`
	// Disks are the VM's disks with the source's probes.
	Disks []MigrationDisk `json:"disks"`
	// TTLSeconds bounds the announcement: an incoming VM that has not
	// started to arrive by then is refused.
	TTLSeconds int `json:"ttlSeconds,omitempty"`
}

// The states of an incoming VM.
const (
	IncomingAnnounced = "announced"
	IncomingArriving  = "arriving"
	IncomingArrived   = "arrived"
	IncomingGone      = "gone"
)

// Incoming answers the announcement (and GET /v1/incoming/{vm}): where the
// VM goes and how far it is.
type Incoming struct {
	Migration  string `json:"migration"`
	VM         string `json:"vm"`
	Name       string `json:"name"`
	SourceHost string `json:"sourceHost"`
	// Host is this host's id.
	Host string `json:"host"`
	// LibvirtURI is this host's libvirtd for the source's libvirtd
	// (qemu+tls://ADDR:PORT/system; the source adds its own pkipath).
	LibvirtURI string `json:"libvirtUri"`
	// MigrationAddress is where QEMU's migration stream goes (tcp://ADDR).
	MigrationAddress string `json:"migrationAddress"`
	// DomainName and ConsoleLog are the VM's libvirt name and its console
	// log file on this host.
	DomainName string `json:"domainName"`
	ConsoleLog string `json:"consoleLog,omitempty"`
	// Disks are the VM's disks with this host's verdict (Shared); the
	// others were created here empty, to be copied into.
	Disks   []MigrationDisk `json:"disks"`
	State   string          `json:"state"`
	Expires time.Time       `json:"expires"`
	// DowntimeMs and TotalMs are libvirt's figures of the completed
	// incoming migration (on arrival).
	DowntimeMs int64 `json:"downtimeMs,omitempty"`
	TotalMs    int64 `json:"totalMs,omitempty"`
}

// MigrationOrder is POST /v1/vms/{id}/migrate: the engine orders the VM's
// host to send it.
type MigrationOrder struct {
	Migration string `json:"migration"`
	// DestinationHost is the host id it goes to, and Destination what the
	// destination answered to the announcement.
	DestinationHost string   `json:"destinationHost"`
	Destination     Incoming `json:"destination"`
	// Policy names the migration policy; Schedule is its convergence
	// schedule.
	Policy   string              `json:"policy"`
	Schedule ConvergenceSchedule `json:"schedule"`
	// AutoConverge lets QEMU slow the guest's vCPUs down when the copy
	// stalls; PostCopy allows the schedule's post-copy step.
	AutoConverge bool `json:"autoConverge,omitempty"`
	PostCopy     bool `json:"postCopy,omitempty"`
	// MaxBandwidthMiBs caps the stream (0: libvirt's default, unlimited).
	MaxBandwidthMiBs uint64 `json:"maxBandwidthMiBs,omitempty"`
	// EncryptStream encrypts the migration stream itself with TLS
	// (libvirt's VIR_MIGRATE_TLS); the libvirt daemons always talk over
	// TLS.
	EncryptStream bool `json:"encryptStream,omitempty"`
	// CopyDisks are the targets of the disks copied during the migration
	// (the destination does not see their storage).
	CopyDisks []string `json:"copyDisks,omitempty"`
	// TimeoutSeconds bounds the whole migration (0: 30 minutes).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// The phases of a migration.
const (
	PhasePreparing     = "preparing"
	PhaseCopyingDisks  = "copying-disks"
	PhaseCopyingMemory = "copying-memory"
	PhasePostCopy      = "post-copy"
	PhaseSuspended     = "paused-to-finish"
	PhaseCompleted     = "completed"
	PhaseFailed        = "failed"
	PhaseCanceled      = "canceled"
)

// MigrationFinished tells whether a phase is an outcome.
func MigrationFinished(phase string) bool {
	return phase == PhaseCompleted || phase == PhaseFailed || phase == PhaseCanceled
}

// MigrationStatus is a migration as its source sees it: GET
// /v1/vms/{id}/migration (the current one, or the last one for a while).
type MigrationStatus struct {
	Migration       string `json:"migration"`
	VM              string `json:"vm"`
	Name            string `json:"name"`
	SourceHost      string `json:"sourceHost"`
	DestinationHost string `json:"destinationHost"`
	Policy          string `json:"policy,omitempty"`
	Phase           string `json:"phase"`
	// Pass is the memory pass (1: the first copy, 2 and on: what the guest
	// wrote meanwhile).
	Pass int `json:"pass"`
	// Memory and disk figures in bytes; the rates in bytes per second.
	MemoryTotal      uint64 `json:"memoryTotal"`
	MemoryProcessed  uint64 `json:"memoryProcessed"`
	MemoryRemaining  uint64 `json:"memoryRemaining"`
	MemoryRate       uint64 `json:"memoryRate"`
	DirtyPagesPerSec uint64 `json:"dirtyPagesPerSec,omitempty"`
	DiskTotal        uint64 `json:"diskTotal,omitempty"`
	DiskProcessed    uint64 `json:"diskProcessed,omitempty"`
	DiskRemaining    uint64 `json:"diskRemaining,omitempty"`
	DiskRate         uint64 `json:"diskRate,omitempty"`
	// AllowedDowntimeMs is the pause the schedule allows now.
	AllowedDowntimeMs int `json:"allowedDowntimeMs,omitempty"`
	// Steps are the convergence steps taken ("downtime 150 ms after pass
	// 2").
	Steps []string `json:"steps,omitempty"`
	// CopiedDisks are the disks copied to the destination; SharedDisks
	// those on storage both hosts see.
	CopiedDisks []string  `json:"copiedDisks,omitempty"`
	SharedDisks []string  `json:"sharedDisks,omitempty"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished,omitempty"`
	ElapsedMs   int64     `json:"elapsedMs"`
	// DowntimeMs is the pause libvirt measured (on completion, when the
	// source could read it; the destination has it too).
	DowntimeMs int64 `json:"downtimeMs,omitempty"`
	// Code and Error say why it failed or was canceled.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Adopted tells that this agent found the migration running in
	// libvirt when it started (an agent restarted mid-migration): it
	// follows it, without its schedule.
	Adopted bool `json:"adopted,omitempty"`
}
