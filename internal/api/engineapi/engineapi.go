// Package engineapi holds the JSON documents of the engine's REST API
// (/api/v1): what the engine answers and accepts, shared by the engine,
// its Go client (package client) and the CLI. Errors are api.ErrorBody; the
// firmware documents the engine passes through from an agent are
// agentapi's.
package engineapi

import (
	"encoding/json"
	"polyvirt/internal/arch"
	"time"
)

// Info describes the engine that answered (GET /api/v1/info).
type Info struct {
	// Name is the engine's name (--name; default the hostname).
	Name    string `json:"name"`
	Version string `json:"version"`
	// Backend is the database: sqlite or postgres.
	Backend       string `json:"backend"`
	SchemaVersion int    `json:"schemaVersion"`
	// Leader tells whether this engine monitors the hosts now.
	Leader bool `json:"leader"`
	// CAFingerprint is the hex SHA-256 of the engine CA certificate.
	CAFingerprint string    `json:"caFingerprint"`
	Time          time.Time `json:"time"`
}

// Health is the answer of GET /api/v1/health (no authentication): 200 with
// status "ok", or 503 with status "unavailable" and the database's error.
type Health struct {
	Status string `json:"status"`
	Leader bool   `json:"leader"`
	Error  string `json:"error,omitempty"`
}

// User is an API user (never with its token).
type User struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// UserRequest creates a user (POST /api/v1/users).
type UserRequest struct {
	Name string `json:"name"`
	// Role is admin, vm-manager, readonly or metrics.
	Role string `json:"role"`
}

// UserToken is a user with a new API token, shown once (create, rotate).
type UserToken struct {
	User  User   `json:"user"`
	Token string `json:"token"`
}

// Cluster is a cluster of hosts of one architecture and CPU type.
type Cluster struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Arch is the cluster architecture (ppc64 for POWER), "" until set by
	// the request or by the first host.
	Arch arch.Arch `json:"arch,omitempty"`
	// CPUType is the cluster CPU type ("IBM POWER8"), "" until set.
	CPUType string `json:"cpuType,omitempty"`
	// CPULevel is the CPU type's level in its vendor group.
	CPULevel int `json:"cpuLevel,omitempty"`
	// EmulatedMachineCandidates is the ordered list of machine patterns
	// the cluster picks its emulated machine from; EmulatedMachine the one
	// picked (by its first Up host).
	EmulatedMachineCandidates []string `json:"emulatedMachineCandidates"`
	EmulatedMachine           string   `json:"emulatedMachine,omitempty"`
	MigrationPolicy           string   `json:"migrationPolicy,omitempty"`
	// MigrationMaxOutgoing and MigrationMaxIncoming are how many VMs at
	// most leave, and come to, one host of the cluster at once;
	// MigrationEncrypted encrypts the migration streams themselves (the
	// hosts' libvirt daemons always talk over TLS).
	MigrationMaxOutgoing int  `json:"migrationMaxOutgoing"`
	MigrationMaxIncoming int  `json:"migrationMaxIncoming"`
	MigrationEncrypted   bool `json:"migrationEncrypted"`
	// ShutdownTimeoutSeconds is how long a VM's guest has to power off
	// after a stop (shutdown) before the VM is powered off, unless the stop
	// gives its own.
	ShutdownTimeoutSeconds int `json:"shutdownTimeoutSeconds"`
	// Hosts counts the cluster's hosts by status.
	Hosts   map[string]int `json:"hosts"`
	Version int64          `json:"version"`
	Created time.Time      `json:"created"`
	Updated time.Time      `json:"updated"`
}

// ClusterRequest creates a cluster (POST /api/v1/clusters).
type ClusterRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Arch is a host or cluster architecture or an alias (ppc64le, ppc64el
	// and ppc64 all give ppc64); "" lets the first host set it.
	Arch arch.Arch `json:"arch,omitempty"`
	// CPUType must be a type of Arch (see GET /api/v1/cpu-types); "" lets
	// the first host set it.
	CPUType string `json:"cpuType,omitempty"`
	// EmulatedMachineCandidates overrides the architecture's default list.
	EmulatedMachineCandidates []string `json:"emulatedMachineCandidates,omitempty"`
	// MigrationPolicy is minimal-downtime (default), post-copy,
	// suspend-workload or none.
	MigrationPolicy string `json:"migrationPolicy,omitempty"`
	// MigrationMaxOutgoing and MigrationMaxIncoming (1 to 64; default 2)
	// limit the migrations per host; MigrationEncrypted encrypts the
	// streams.
	MigrationMaxOutgoing int  `json:"migrationMaxOutgoing,omitempty"`
	MigrationMaxIncoming int  `json:"migrationMaxIncoming,omitempty"`
	MigrationEncrypted   bool `json:"migrationEncrypted,omitempty"`
	// ShutdownTimeoutSeconds is the cluster's shutdown time-out (1 to
	// 86400; default 30).
	ShutdownTimeoutSeconds int `json:"shutdownTimeoutSeconds,omitempty"`
}

// ClusterUpdate changes a cluster (PATCH /api/v1/clusters/{cluster}):
// only the fields given change.
type ClusterUpdate struct {
	Name                      *string    `json:"name,omitempty"`
	Description               *string    `json:"description,omitempty"`
	Arch                      *arch.Arch `json:"arch,omitempty"`
	CPUType                   *string    `json:"cpuType,omitempty"`
	EmulatedMachineCandidates *[]string  `json:"emulatedMachineCandidates,omitempty"`
	MigrationPolicy           *string    `json:"migrationPolicy,omitempty"`
	MigrationMaxOutgoing      *int       `json:"migrationMaxOutgoing,omitempty"`
	MigrationMaxIncoming      *int       `json:"migrationMaxIncoming,omitempty"`
	MigrationEncrypted        *bool      `json:"migrationEncrypted,omitempty"`
	ShutdownTimeoutSeconds    *int       `json:"shutdownTimeoutSeconds,omitempty"`
	// Version, when set, must be the cluster's current version.
	Version *int64 `json:"version,omitempty"`
}

// The page sizes of GET /api/v1/hosts: a list without limit answers
// DefaultHostPageSize hosts, and a limit may be at most MaxHostPageSize.
const (
	DefaultHostPageSize = 500
	MaxHostPageSize     = 1000
)

// HostPage is a page of hosts (GET /api/v1/hosts), ordered by name.
// Continue, when not empty, is the opaque cursor of the next page: the same
// query with continue=Continue answers the hosts after this page's last
// one. The last page has none.
type HostPage struct {
	Hosts    []Host `json:"hosts"`
	Continue string `json:"continue,omitempty"`
}

// Host is a hypervisor host as the engine sees it.
type Host struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
	// ClusterID and Cluster (its name) are the host's cluster.
	ClusterID string `json:"clusterId"`
	Cluster   string `json:"cluster"`
	// Status is Installing, Up, NonOperational, NonResponsive,
	// Maintenance, Connecting, ...; StatusCode and StatusMessage say why.
	Status        string `json:"status"`
	StatusCode    string `json:"statusCode,omitempty"`
	StatusMessage string `json:"statusMessage,omitempty"`
	// Arch is the host's (effective) architecture: ppc64le for a POWER8.
	// Its cluster's architecture is the family's (ppc64 for every POWER
	// host: archspec.ClusterArch).
	Arch     arch.Arch `json:"arch,omitempty"`
	CPUModel string    `json:"cpuModel,omitempty"`
	// CPUVendor is the CPU's vendor as the host reports it (cpuinfo
	// vendor_id: "AuthenticAMD", "IBM").
	CPUVendor string `json:"cpuVendor,omitempty"`
	// Virtualization is how the host runs guests, from its capabilities
	// report: "kvm", or "tcg" (QEMU's emulation) with VirtualizationReason
	// saying why (no /dev/kvm, fake KVM, ...).
	Virtualization       string `json:"virtualization,omitempty"`
	VirtualizationReason string `json:"virtualizationReason,omitempty"`
	// FakeKVM tells that the host runs in fake-KVM mode; Profile names the
	// built-in host profile it presents itself as (its hardware is that
	// profile's, not the machine's it runs on); FakeIdentity, when set,
	// says its CPU is VDSM's fake-KVM CPU of another architecture.
	FakeKVM      bool   `json:"fakeKvm,omitempty"`
	Profile      string `json:"profile,omitempty"`
	FakeIdentity string `json:"fakeIdentity,omitempty"`
	// Firmware are the firmware levels the host reports (DMI BIOS, the
	// device tree's components, and on FSP POWER hosts the system firmware
	// of each bank: system-temporary, system-permanent, system-booted).
	Firmware []HostFirmwareLevel `json:"firmware,omitempty"`
	// CPUType and CPULevel are the host's best cluster CPU type.
	CPUType          string   `json:"cpuType,omitempty"`
	CPULevel         int      `json:"cpuLevel,omitempty"`
	CPUFlags         []string `json:"cpuFlags"`
	EmulatedMachines []string `json:"emulatedMachines"`
	// Enrolled tells whether the agent has joined (has a certificate).
	Enrolled         bool      `json:"enrolled"`
	CertFingerprint  string    `json:"certFingerprint,omitempty"`
	CertSerial       string    `json:"certSerial,omitempty"`
	JoinTokenExpires time.Time `json:"joinTokenExpires,omitzero"`
	JoinTokenUsed    time.Time `json:"joinTokenUsed,omitzero"`
	// LastSeen is when the agent last answered the monitoring; Stats its
	// last statistics (the agent's GET /v1/stats) taken at StatsAt.
	LastSeen time.Time       `json:"lastSeen,omitzero"`
	StatsAt  time.Time       `json:"statsAt,omitzero"`
	Stats    json.RawMessage `json:"stats,omitempty"`
	// Capabilities is the agent's capabilities report (GET of one host
	// with ?capabilities=true only).
	Capabilities json.RawMessage `json:"capabilities,omitempty"`
	// Pools is what the host last said of the storage pools it should
	// have (GET of one host only): a pool it lacks says why.
	Pools   []HostPool `json:"pools,omitempty"`
	Version int64      `json:"version"`
	Created time.Time  `json:"created"`
	Updated time.Time  `json:"updated"`
}

// HostFirmwareLevel is one firmware component of a host and its level.
type HostFirmwareLevel struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	Vendor    string `json:"vendor,omitempty"`
	Date      string `json:"date,omitempty"`
}

// HostRequest adds a host (POST /api/v1/hosts).
type HostRequest struct {
	Name string `json:"name"`
	// Address is the agent's HOST:PORT.
	Address string `json:"address"`
	// Cluster is the cluster's name or ID.
	Cluster string `json:"cluster"`
	// TokenTTL is how long the join token lasts ("1h", the default; at
	// most 168h).
	TokenTTL string `json:"tokenTtl,omitempty"`
}

// JoinToken is a new one-time join token of a host, shown once.
type JoinToken struct {
	Host    Host      `json:"host"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	// Command is what to run on the agent host (with the token on stdin).
	Command string `json:"command"`
}

// JoinTokenRequest asks for a new join token
// (POST /api/v1/hosts/{host}/join-token).
type JoinTokenRequest struct {
	TokenTTL string `json:"tokenTtl,omitempty"`
}

// HostUpdate changes a host (PATCH /api/v1/hosts/{host}): only the fields
// given change. Changing the address or the cluster needs Maintenance.
type HostUpdate struct {
	Name    *string `json:"name,omitempty"`
	Address *string `json:"address,omitempty"`
	Cluster *string `json:"cluster,omitempty"`
	Version *int64  `json:"version,omitempty"`
}

// ActionRequest is the optional body of an action (maintenance,
// activate): why, for the audit log.
type ActionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Event is one entry of the audit log.
type Event struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	User       string    `json:"user,omitempty"`
	Action     string    `json:"action"`
	Severity   string    `json:"severity"`
	ObjectKind string    `json:"objectKind,omitempty"`
	ObjectID   string    `json:"objectId,omitempty"`
	ObjectName string    `json:"objectName,omitempty"`
	Code       string    `json:"code,omitempty"`
	Message    string    `json:"message"`
	Reason     string    `json:"reason,omitempty"`
	// CorrelationID ties the events of one request together (the
	// X-Correlation-ID header of its answer).
	CorrelationID string `json:"correlationId,omitempty"`
}

// EventPage is a page of events, newest first; Next is the "before" of the
// next page, 0 on the last one.
type EventPage struct {
	Events []Event `json:"events"`
	Next   int64   `json:"next,omitempty"`
}

// CPUType is one cluster CPU type (GET /api/v1/cpu-types; package
// cpucatalog holds the catalog).
type CPUType struct {
	// Level orders the types of one vendor group: a higher level runs
	// everything a lower one does.
	Level int `json:"level"`
	// Name is the display name, unique in the catalog ("IBM POWER8").
	Name string `json:"name"`
	// Flags are the flags a host must report to support this type.
	Flags []string `json:"flags"`
	// Model is the libvirt CPU model a VM of a cluster of this type gets
	// ("" when Mode is host-passthrough).
	Model string `json:"model"`
	// Features are libvirt CPU features required on top of Model.
	Features []string `json:"features,omitempty"`
	// Mode is the libvirt CPU mode: "" for a custom (named) model,
	// "host-passthrough" for a type that runs the host's own CPU.
	Mode string `json:"mode,omitempty"`
	// Arch is the cluster architecture (ppc64 for every POWER host).
	Arch arch.Arch `json:"arch"`
	// Vendor is the name of the vendor group ("Intel", "IBM POWER").
	Vendor string `json:"vendor"`
}
