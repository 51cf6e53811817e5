// Package agentapi holds the documents of the host agent's REST API (/v1):
// VMs, lifecycle action results, events, statistics and the firmware
// documents. The agent serves them, the engine and the tests read them.
// Errors are api.ErrorBody.
package agentapi

import (
	"encoding/json"
	"polyvirt/internal/arch"
	"time"
)

// VMState is a VM's state as libvirt reports it.
type VMState string

// The states.
const (
	StateDefined  VMState = "defined" // shut off
	StateRunning  VMState = "running"
	StatePaused   VMState = "paused"
	StateShutdown VMState = "shutting-down"
	StateCrashed  VMState = "crashed"
	StateBlocked  VMState = "blocked"
	StateSuspend  VMState = "pmsuspended"
	StateUnknown  VMState = "unknown"
)

// VM is a VM as an agent reports it.
type VM struct {
	ID   string    `json:"id"`
	Name string    `json:"name"`
	Arch arch.Arch `json:"arch"`
	// State and Reason are libvirt's state and its reason ("booted",
	// "destroyed", "shutdown", "crashed", ...).
	State  VMState `json:"state"`
	Reason string  `json:"reason,omitempty"`
	// Host is the id of the host that owns it.
	Host string `json:"host"`
	// Definition is the VM definition it was created from.
	Definition json.RawMessage `json:"definition,omitempty"`
	// DomainXML is libvirt's live XML (GET /v1/vms/{id} only).
	DomainXML string `json:"domainXml,omitempty"`
	// FakeKVM tells that it runs emulated (TCG) on a fake-KVM host.
	FakeKVM bool `json:"fakeKvm"`
	// NotResponding, when set, says that the VM's QEMU does not answer
	// and why ("no reply to query-status within 10s"): the engine's
	// NotResponding status. Only destroy works then.
	NotResponding string `json:"notResponding,omitempty"`
}

// ActionResult answers a lifecycle action: whether it changed anything
// (starting a running VM does not), what it did, and the state after it.
type ActionResult struct {
	VM      string  `json:"vm"`
	Action  string  `json:"action"`
	Changed bool    `json:"changed"`
	Message string  `json:"message"`
	State   VMState `json:"state"`
}

// Event is one VM state change, or (VM empty) one change of the host's
// connection to libvirt.
type Event struct {
	Time time.Time `json:"time"`
	Host string    `json:"host"`
	VM   string    `json:"vm,omitempty"`
	Name string    `json:"name,omitempty"`
	// Event is a libvirt lifecycle event (started, stopped, suspended,
	// resumed, defined, undefined, shutdown, crashed, pmsuspended) or one
	// of the agent's own (EventNotResponding, EventResponding,
	// EventShutdownTimeout, EventLibvirtLost, EventLibvirtBack).
	Event  string  `json:"event"`
	Detail string  `json:"detail,omitempty"`
	State  VMState `json:"state,omitempty"`
	// Stats is the host's statistics (a Stats document, as GET /v1/stats
	// answers it) of an EventStats event, as a stream's reader gives it:
	// on the wire, the event's data is the document itself.
	Stats json.RawMessage `json:"-"`
}

// EventStats is the statistics an agent pushes on its event stream when
// asked (GET /v1/events?stats=INTERVAL), every INTERVAL: server-sent
// events named stats ("event: stats") whose data is the document of GET
// /v1/stats itself (a Stats, not an Event: nothing to unwrap). A client
// reading the stream gives them as an Event of this name with Stats set.
// An agent that pushes them says so in the stream's answer header
// StatsHeader (the interval it pushes at); a client that does not find it
// polls GET /v1/stats instead.
const EventStats = "stats"

// StatsHeader is the header of GET /v1/events?stats=INTERVAL's answer by
// which an agent says it pushes its statistics on the stream, and at
// which interval.
const StatsHeader = "X-Polyvirt-Stats-Interval"

// The bounds of the interval at which an agent pushes its statistics.
const (
	MinStatsPush = 100 * time.Millisecond
	MaxStatsPush = 5 * time.Minute
)

// The agent's own events.
const (
	// EventNotResponding: the VM's QEMU does not answer; Detail says what
	// it did not answer ("no reply to query-status within 10s").
	EventNotResponding = "not-responding"
	// EventResponding: a VM's QEMU that did not answer answers again.
	EventResponding = "responding"
	// EventShutdownTimeout: the guest did not power off within the
	// shutdown's time-out and the agent powered the VM off; Detail says
	// after how long.
	EventShutdownTimeout = "shutdown-timeout"
	// EventLibvirtLost: the agent lost its connection to libvirt (VM
	// empty); Detail is the error.
	EventLibvirtLost = "libvirt-lost"
	// EventLibvirtBack: the agent is connected to libvirt again and has
	// read its VMs again (VM empty); the VMs whose state changed meanwhile
	// got events of their own.
	EventLibvirtBack = "libvirt-back"
)

// LibvirtStatus is whether an agent reaches its libvirt daemon.
type LibvirtStatus struct {
	Connected bool   `json:"connected"`
	URI       string `json:"uri,omitempty"`
	// Error and Since say why and since when it is not connected.
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since,omitempty"`
}

// ShutdownRequest is the optional body of an agent's
// POST /v1/vms/{id}/shutdown.
type ShutdownRequest struct {
	// TimeoutSeconds is how long the guest has to power off (0: wait
	// without end, as a bare shutdown request).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// Force powers the VM off when the guest has not within the time-out.
	Force bool `json:"force,omitempty"`
}

// HostStats are a host's resource figures.
type HostStats struct {
	Time time.Time `json:"time"`
	// CPUUsagePercent is the busy share of all CPUs over the last sample
	// interval (0-100).
	CPUUsagePercent float64 `json:"cpuUsagePercent"`
	CPUs            int     `json:"cpus"`
	MemTotalMiB     uint64  `json:"memTotalMiB"`
	MemFreeMiB      uint64  `json:"memFreeMiB"`
	MemAvailableMiB uint64  `json:"memAvailableMiB"`
	Load1           float64 `json:"load1"`
	Load5           float64 `json:"load5"`
	Load15          float64 `json:"load15"`
	// VMsRunning counts the running VMs this agent owns.
	VMsRunning int `json:"vmsRunning"`
	// VCPUsUsed and MemoryUsedMiB sum the running VMs' vCPUs and memory.
	VCPUsUsed     int    `json:"vcpusUsed"`
	MemoryUsedMiB uint64 `json:"memoryUsedMiB"`
}

// VMStats are one VM's figures.
type VMStats struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	State VMState `json:"state"`
	VCPUs int     `json:"vcpus"`
	// CPUTimeNs is the cumulated CPU time; CPUUsagePercent its share of
	// one host CPU per vCPU over the last interval (0-100 × vCPUs).
	CPUTimeNs       uint64      `json:"cpuTimeNs"`
	CPUUsagePercent float64     `json:"cpuUsagePercent"`
	MemoryMiB       uint64      `json:"memoryMiB"`
	MaxMemoryMiB    uint64      `json:"maxMemoryMiB"`
	Disks           []DiskStats `json:"disks"`
	NICs            []NICStats  `json:"nics"`
}

// DiskStats are one disk's I/O counters.
type DiskStats struct {
	Name       string `json:"name"`
	ReadBytes  uint64 `json:"readBytes"`
	WriteBytes uint64 `json:"writeBytes"`
	ReadOps    uint64 `json:"readOps"`
	WriteOps   uint64 `json:"writeOps"`
}

// NICStats are one interface's counters.
type NICStats struct {
	Name    string `json:"name"`
	RxBytes uint64 `json:"rxBytes"`
	TxBytes uint64 `json:"txBytes"`
	RxPkts  uint64 `json:"rxPackets"`
	TxPkts  uint64 `json:"txPackets"`
}

// Stats is the answer of GET /v1/stats.
type Stats struct {
	Host HostStats `json:"host"`
	VMs  []VMStats `json:"vms"`
	// Libvirt is whether the agent reaches libvirt, as of the answer
	// (absent from agents that do not tell: taken as reachable).
	Libvirt *LibvirtStatus `json:"libvirt,omitempty"`
	// CapsETag is the entity tag GET /v1/capabilities answers now, without
	// its quotes (the ETag header's "0a1b…" is 0a1b…), when the agent knows
	// its report is current — nothing it reads changed since it was
	// collected; absent when the report must be collected first, and from
	// agents that do not tell. A monitor that pushed statistics reach
	// compares it with the report it has and asks for the report only when
	// it differs, instead of asking every so often whether it changed.
	CapsETag string `json:"capsETag,omitempty"`
}

// ProbeResult is a probe guest's run (POST /v1/probe): the smallest guest
// of the host's architecture (archspec's Probe: no disk, no kernel, its
// firmware runs) started as a transient domain, seen running, destroyed.
type ProbeResult struct {
	// Arch, Machine and Firmware are the guest's.
	Arch     string `json:"arch"`
	Machine  string `json:"machine"`
	Firmware string `json:"firmware,omitempty"`
	// MemoryMiB is its memory.
	MemoryMiB uint64 `json:"memoryMiB"`
	// Domain is the transient domain's name.
	Domain string `json:"domain"`
	// StartMs is how long libvirt took to start it; RanMs how long it was
	// seen running before it was destroyed.
	StartMs int64 `json:"startMs"`
	RanMs   int64 `json:"ranMs"`
}
