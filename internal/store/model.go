package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"polyvirt/internal/arch"
)

// Role is a user's role.
type Role string

// The roles.
const (
	// RoleAdmin may do everything.
	RoleAdmin Role = "admin"
	// RoleVMManager may read everything and manage VMs (create, change,
	// start, stop, delete, type on their consoles), not hosts, clusters,
	// users or firmware.
	RoleVMManager Role = "vm-manager"
	// RoleReadOnly may read everything and change nothing.
	RoleReadOnly Role = "readonly"
	// RoleMetrics may read the engine's metrics and scrape targets only
	// (a Prometheus server's token); every other role may too.
	RoleMetrics Role = "metrics"
)

// Roles are the roles, the most rights first.
var Roles = []Role{RoleAdmin, RoleVMManager, RoleReadOnly, RoleMetrics}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleAdmin || r == RoleVMManager || r == RoleReadOnly || r == RoleMetrics
}

// ManagesVMs reports whether r may change VMs (admin and vm-manager).
func (r Role) ManagesVMs() bool { return r == RoleAdmin || r == RoleVMManager }

// User is a person or a script that talks to the engine's API.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// TokenHash is the hex SHA-256 of the user's API token (see NewToken);
	// the token itself is never stored. "" when the user has none.
	TokenHash string    `json:"-"`
	Version   int64     `json:"version"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
}

// Cluster is a set of hosts of one architecture and CPU type that VMs run
// and migrate in.
type Cluster struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Arch is the cluster architecture (ppc64 for POWER), Unknown ("")
	// until set or until the first host sets it. It cannot change while
	// the cluster has hosts or VMs.
	Arch arch.Arch `json:"arch,omitempty"`
	// CPUType is the name of the cluster's CPU type (package cpucatalog),
	// "" until set.
	CPUType string `json:"cpuType,omitempty"`
	// EmulatedMachineCandidates is the ordered list the cluster chooses its
	// emulated machine from ("pseries-*").
	EmulatedMachineCandidates []string `json:"emulatedMachineCandidates"`
	// EmulatedMachine is the chosen machine, "" until chosen.
	EmulatedMachine string `json:"emulatedMachine,omitempty"`
	// MigrationPolicy names the cluster's migration policy.
	MigrationPolicy string `json:"migrationPolicy,omitempty"`
	// ShutdownTimeoutSeconds is how long a VM's guest has to power off
	// after a shutdown request before the VM is powered off (a stop can
	// give its own); 0 on create means DefaultShutdownTimeoutSeconds.
	ShutdownTimeoutSeconds int `json:"shutdownTimeoutSeconds"`
	// MigrationMaxOutgoing and MigrationMaxIncoming are how many VMs at
	// most leave, and come to, one host at once (0 on create:
	// DefaultMigrationsPerHost); MigrationEncrypted encrypts the migration
	// streams themselves.
	MigrationMaxOutgoing int       `json:"migrationMaxOutgoing"`
	MigrationMaxIncoming int       `json:"migrationMaxIncoming"`
	MigrationEncrypted   bool      `json:"migrationEncrypted"`
	Version              int64     `json:"version"`
	Created              time.Time `json:"created"`
	Updated              time.Time `json:"updated"`
}

// The bounds of a cluster's shutdown time-out (oVirt's
// VmGracefulShutdownTimeout defaults to 30 s too).
const (
	DefaultShutdownTimeoutSeconds = 30
	MaxShutdownTimeoutSeconds     = 86400
)

// The bounds of a cluster's migrations per host (VDSM's default of
// concurrent outgoing migrations is 2 too).
const (
	DefaultMigrationsPerHost = 2
	MaxMigrationsPerHost     = 64
)

// HostStatus is the status of a host as the engine sees it.
type HostStatus string

// The host statuses.
const (
	HostInstalling              HostStatus = "Installing"
	HostInstallFailed           HostStatus = "InstallFailed"
	HostConnecting              HostStatus = "Connecting"
	HostUp                      HostStatus = "Up"
	HostNonOperational          HostStatus = "NonOperational"
	HostNonResponsive           HostStatus = "NonResponsive"
	HostPreparingForMaintenance HostStatus = "PreparingForMaintenance"
	HostMaintenance             HostStatus = "Maintenance"
	HostRebooting               HostStatus = "Rebooting"
	HostDown                    HostStatus = "Down"
)

var hostStatuses = []HostStatus{HostInstalling, HostInstallFailed, HostConnecting, HostUp,
	HostNonOperational, HostNonResponsive, HostPreparingForMaintenance, HostMaintenance,
	HostRebooting, HostDown}

// Valid reports whether s is a known host status.
func (s HostStatus) Valid() bool {
	for _, x := range hostStatuses {
		if s == x {
			return true
		}
	}
	return false
}

// HostStatuses lists the known host statuses.
func HostStatuses() []HostStatus { return append([]HostStatus(nil), hostStatuses...) }

// Host is a hypervisor host running the polyvirt agent.
type Host struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Address   string `json:"address"`
	ClusterID string `json:"clusterId"`

	Status HostStatus `json:"status"`
	// StatusCode and StatusMessage say why the host has its status
	// (CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER and its text).
	StatusCode    string `json:"statusCode,omitempty"`
	StatusMessage string `json:"statusMessage,omitempty"`

	// Arch is the host's architecture (ppc64le, not its cluster's ppc64).
	Arch     arch.Arch `json:"arch,omitempty"`
	CPUModel string    `json:"cpuModel,omitempty"`
	// CPUFlags is the host's flag list, markers and model_X included.
	// CPUFlags and EmulatedMachines as read are shared between the hosts
	// holding the same list: change them by replacing the slice, never
	// its elements.
	CPUFlags []string `json:"cpuFlags"`
	// CPUType and CPULevel are the host's best cluster CPU type.
	CPUType          string   `json:"cpuType,omitempty"`
	CPULevel         int      `json:"cpuLevel,omitempty"`
	EmulatedMachines []string `json:"emulatedMachines"`
	// Capabilities is the host's full capabilities report (JSON), and
	// CapabilitiesHash its hash as the engine computes it, to notice
	// changes. JSON comes back equal as JSON, not byte for byte.
	Capabilities     json.RawMessage `json:"capabilities,omitempty"`
	CapabilitiesHash string          `json:"capabilitiesHash,omitempty"`

	// CertFingerprint and CertSerial identify the agent's client
	// certificate; the fingerprint is unique.
	CertFingerprint string `json:"certFingerprint,omitempty"`
	CertSerial      string `json:"certSerial,omitempty"`

	// JoinTokenExpires and JoinTokenUsed describe the host's one-time join
	// token (zero when none was issued / not used yet); the token's hash
	// is written by SetHostJoinToken only and never read back.
	JoinTokenExpires time.Time `json:"joinTokenExpires,omitempty"`
	JoinTokenUsed    time.Time `json:"joinTokenUsed,omitempty"`

	// Stats, StatsAt and LastSeen are monitoring data, written by
	// UpdateHostStats only (never by UpdateHost, and without a version
	// check: the last report wins).
	Stats    json.RawMessage `json:"stats,omitempty"`
	StatsAt  time.Time       `json:"statsAt,omitempty"`
	LastSeen time.Time       `json:"lastSeen,omitempty"`

	Version int64     `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// HostStats is one host's monitoring report, for UpdateHostStats.
type HostStats struct {
	HostID string
	// Stats is the report (JSON); nil keeps the previous one and only
	// records that the host was seen.
	Stats json.RawMessage
	// At is when the report was taken (the store's clock when zero).
	At time.Time
}

// MaxHostIDs is the most ids a HostFilter's IDs may hold (one query's
// parameters).
const MaxHostIDs = 500

// HostFilter selects hosts in ListHosts. Zero fields select everything.
type HostFilter struct {
	ClusterID string
	Statuses  []HostStatus
	// Address keeps the hosts of this address (compared without regard
	// to case), so that a new host's address is checked without listing
	// every host.
	Address string
	// Name keeps the host of this name (exactly): one host read without
	// its capabilities report.
	Name string
	// WithCapabilities loads the capabilities report, which can be large;
	// without it Host.Capabilities is nil.
	WithCapabilities bool
	// Brief leaves out the CPU flags and the emulated machines too (empty
	// lists): a cheaper list for views and pollers that do not need them.
	// Like a host read without its capabilities, a brief host must not be
	// written back with UpdateHost (it writes what it is given).
	Brief bool
	// NoStats leaves out the statistics document (Stats nil; StatsAt and
	// LastSeen are read): the monitoring's reloads, and the leader's host
	// list, which has the latest statistics in memory.
	NoStats bool
	// IDs, when not nil, keeps the hosts of these ids (at most MaxHostIDs
	// of them; none when empty): the reports of a few hosts read without
	// reading every host's.
	IDs []string
	// After keeps the hosts whose names sort after it (the database's
	// order of names), and Limit, when above 0, the first Limit of them
	// by name: the pages of a list.
	After string
	Limit int
}

// VMState is the state of a VM.
type VMState string

// The VM states.
const (
	VMDown             VMState = "Down"
	VMWaitForLaunch    VMState = "WaitForLaunch"
	VMPoweringUp       VMState = "PoweringUp"
	VMUp               VMState = "Up"
	VMPaused           VMState = "Paused"
	VMSuspended        VMState = "Suspended"
	VMPoweringDown     VMState = "PoweringDown"
	VMRebootInProgress VMState = "RebootInProgress"
	VMMigratingFrom    VMState = "MigratingFrom"
	VMMigratingTo      VMState = "MigratingTo"
	VMNotResponding    VMState = "NotResponding"
	VMUnknown          VMState = "Unknown"
	VMImageLocked      VMState = "ImageLocked"
)

var vmStates = []VMState{VMDown, VMWaitForLaunch, VMPoweringUp, VMUp, VMPaused, VMSuspended,
	VMPoweringDown, VMRebootInProgress, VMMigratingFrom, VMMigratingTo, VMNotResponding,
	VMUnknown, VMImageLocked}

// Valid reports whether s is a known VM state.
func (s VMState) Valid() bool {
	for _, x := range vmStates {
		if s == x {
			return true
		}
	}
	return false
}

// VMStates lists the known VM states.
func VMStates() []VMState { return append([]VMState(nil), vmStates...) }

// VM is a virtual machine managed by the engine.
type VM struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ClusterID string `json:"clusterId"`
	// HostID is the host the VM runs on (oVirt's run-on host), "" when it
	// runs nowhere. A host cannot be deleted while VMs run on it.
	HostID string `json:"hostId,omitempty"`
	// PinnedHostID is the host the VM may only run on, "" when none. A host
	// cannot be deleted while VMs are pinned to it.
	PinnedHostID string `json:"pinnedHostId,omitempty"`
	// LastHostID is the host the VM ran on last; cleared when that host is
	// deleted.
	LastHostID string `json:"lastHostId,omitempty"`
	// Definition is the VM definition (JSON, package vmspec's document).
	Definition json.RawMessage `json:"definition"`
	State      VMState         `json:"state"`
	// HA marks a highly available VM, restarted elsewhere when its host dies.
	HA bool `json:"ha"`
	// MigrationPolicy is the VM's own migration policy ("": its
	// cluster's).
	MigrationPolicy string `json:"migrationPolicy,omitempty"`
	// MigratingToHostID is the host a migration in flight sends the VM to
	// ("" when none; HostID is its source until it arrived).
	MigratingToHostID string `json:"migratingToHostId,omitempty"`
	// Migration is the VM's migration in flight, or its last one (JSON,
	// engineapi.Migration); nil when it never migrated.
	Migration json.RawMessage `json:"migration,omitempty"`
	// StateChanged is when State last changed (set by the store).
	StateChanged time.Time `json:"stateChanged"`
	// Pending is the action the engine ordered on the VM's host and has
	// not recorded the outcome of yet (nil when none): kept with the VM so
	// that the outcome is recorded, once, by whoever sees it first — the
	// engine that ordered it, or the monitoring after that engine died.
	Pending *VMPending `json:"pending,omitempty"`
	Version int64      `json:"version"`
	Created time.Time  `json:"created"`
	Updated time.Time  `json:"updated"`
}

// VMPending is an action ordered on a VM's host whose outcome is not
// recorded yet: what it is and who asked, so that the audit log can say
// who started a VM even when the engine that ordered the start died
// before the host answered.
type VMPending struct {
	// Action is what was ordered: "start", or "ha-restart" (the engine
	// restarts a highly available VM).
	Action string `json:"action"`
	// HostID is the host the action was ordered on.
	HostID string `json:"hostId,omitempty"`
	// User is who asked ("" for the engine's own work), Reason the
	// reason given, CorrelationID the request's.
	User          string `json:"user,omitempty"`
	Reason        string `json:"reason,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	// Engine is the name of the engine that ordered it.
	Engine string `json:"engine,omitempty"`
	// At is when it was ordered.
	At time.Time `json:"at"`
}

// VMFilter selects VMs in ListVMs. Zero fields select everything.
type VMFilter struct {
	ClusterID string
	// HostID selects the VMs running on a host.
	HostID string
	// PinnedHostID selects the VMs pinned to a host.
	PinnedHostID string
	States       []VMState
	// HA, when set, selects VMs whose HA flag has that value.
	HA *bool
	// Brief leaves the definitions out (nil): a list of many VMs for their
	// places and versions. A brief VM must not be written back.
	Brief bool
}

// Severity is the severity of an event.
type Severity string

// The severities, in increasing order.
const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
	SeverityAlert   Severity = "alert"
)

var severities = []Severity{SeverityInfo, SeverityWarning, SeverityError, SeverityAlert}

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool { return s.rank() >= 0 }

func (s Severity) rank() int {
	for i, x := range severities {
		if s == x {
			return i
		}
	}
	return -1
}

// Event is one entry of the audit log: who did what, when and why, to
// which object. Events are append-only.
type Event struct {
	// ID orders the events; it is assigned by the store.
	ID int64 `json:"id"`
	// Time is when it happened (the store's clock when zero).
	Time     time.Time `json:"time"`
	User     string    `json:"user,omitempty"`
	Action   string    `json:"action"`
	Severity Severity  `json:"severity"`
	// ObjectKind ("host", "cluster", "vm", "user", "firmware"), ObjectID
	// and ObjectName name the object concerned.
	ObjectKind string `json:"objectKind,omitempty"`
	ObjectID   string `json:"objectId,omitempty"`
	ObjectName string `json:"objectName,omitempty"`
	// Code is a stable code (CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER), Message
	// the readable text and Reason why it happened (a user's comment, the
	// cause).
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
	// CorrelationID ties the events of one request or operation together.
	CorrelationID string `json:"correlationId,omitempty"`
}

// EventFilter selects events in ListEvents, newest first. Zero fields
// select everything.
type EventFilter struct {
	ObjectKind string
	ObjectID   string
	// ObjectIDs, when not empty, selects the events of any of these
	// objects (at most 1000; a cluster and its hosts).
	ObjectIDs []string
	User      string
	Action    string
	Code      string
	// CorrelationID selects the events of one request or operation.
	CorrelationID string
	// MinSeverity keeps events of this severity or worse.
	MinSeverity Severity
	// Since and Until bound Time (Since inclusive, Until exclusive).
	Since time.Time
	Until time.Time
	// Before is the paging cursor: only events with an ID below it (the
	// Next of the previous page). 0 starts at the newest event.
	Before int64
	// Limit is the page size: 100 when 0, at most 1000.
	Limit int
}

// EventPage is one page of events, newest first.
type EventPage struct {
	Events []Event `json:"events"`
	// Next is the Before of the next page, 0 when this is the last page.
	Next int64 `json:"next,omitempty"`
}

// FirmwareState is the state of a firmware operation.
type FirmwareState string

// The firmware operation states: the workflow of issue 7 and its ends.
const (
	FirmwareUploading        FirmwareState = "uploading"
	FirmwareUploaded         FirmwareState = "uploaded"
	FirmwareValidating       FirmwareState = "validating"
	FirmwareValidated        FirmwareState = "validated"
	FirmwareFlashing         FirmwareState = "flashing"
	FirmwareRebooting        FirmwareState = "rebooting"
	FirmwareAwaitingDecision FirmwareState = "awaiting-decision"
	FirmwareCommitting       FirmwareState = "committing"
	FirmwareRejecting        FirmwareState = "rejecting"
	FirmwareCommitted        FirmwareState = "committed"
	FirmwareRejected         FirmwareState = "rejected"
	FirmwareFailed           FirmwareState = "failed"
	FirmwareCancelled        FirmwareState = "cancelled"
)

var firmwareStates = map[FirmwareState]bool{ // value: terminal
	FirmwareUploading: false, FirmwareUploaded: false, FirmwareValidating: false, FirmwareValidated: false,
	FirmwareFlashing: false, FirmwareRebooting: false, FirmwareAwaitingDecision: false,
	FirmwareCommitting: false, FirmwareRejecting: false,
	FirmwareCommitted: true, FirmwareRejected: true, FirmwareFailed: true, FirmwareCancelled: true,
}

// Valid reports whether s is a known state.
func (s FirmwareState) Valid() bool { _, ok := firmwareStates[s]; return ok }

// Terminal reports whether s ends an operation (committed, rejected,
// failed, cancelled). A host has at most one operation that is not ended.
func (s FirmwareState) Terminal() bool { return firmwareStates[s] }

// FirmwareStep is one entry of a firmware operation's log.
type FirmwareStep struct {
	Time    time.Time     `json:"time"`
	State   FirmwareState `json:"state"`
	Message string        `json:"message,omitempty"`
}

// FirmwareOperation is one firmware update of one host, from upload to
// commit or reject.
type FirmwareOperation struct {
	ID     string        `json:"id"`
	HostID string        `json:"hostId"`
	State  FirmwareState `json:"state"`
	// FromLevel is the level before the update, ToLevel the image's level.
	FromLevel string `json:"fromLevel,omitempty"`
	ToLevel   string `json:"toLevel,omitempty"`
	// ImageName and ImageSHA256 identify the uploaded image.
	ImageName   string `json:"imageName,omitempty"`
	ImageSHA256 string `json:"imageSha256,omitempty"`
	RequestedBy string `json:"requestedBy,omitempty"`
	// Steps is the operation's log, oldest first.
	Steps   []FirmwareStep `json:"steps"`
	Error   string         `json:"error,omitempty"`
	Version int64          `json:"version"`
	Created time.Time      `json:"created"`
	Updated time.Time      `json:"updated"`
}

// ValidName checks an object name: 1 to 63 characters, letters, digits,
// '.', '_' and '-', starting with a letter or a digit. The error says what
// is wrong.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("name is empty")
	}
	if len(name) > 63 {
		return fmt.Errorf("name %.20q... is %d characters long (at most 63)", name, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("name %q must start with a letter or a digit", name)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("name %q has %q at position %d: use letters, digits, '.', '_' and '-'", name, rune(c), i+1)
		}
	}
	return nil
}

// validID checks an object ID given by a caller: the name rule, so that
// IDs are safe in URLs and logs.
func validID(id string) error {
	if err := ValidName(id); err != nil {
		return fmt.Errorf("id: %s", err)
	}
	return nil
}

// NewToken returns a new random secret (32 bytes from crypto/rand,
// URL-safe base64) and its hash (HashToken) to store.
func NewToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generate a token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken is the form tokens are stored and looked up in: the hex SHA-256
// of the token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// RolloutFilter selects rollouts: of one cluster (ClusterID), only those
// that have not ended (Active).
type RolloutFilter struct {
	ClusterID string
	Active    bool
}
