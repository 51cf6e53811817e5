package engineapi

import (
	"encoding/json"
	"time"

	"polyvirt/internal/api"
)

// SignInRequest signs in to the web UI (POST /api/v1/session) with a
// user's name and password (polyvirt user passwd).
type SignInRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Session is the caller as the web UI sees it (GET and POST
// /api/v1/session): the user, what it may call, and for a signed-in
// browser the session's CSRF token and expiry.
type Session struct {
	User User `json:"user"`
	// Via is "session" (the session cookie) or "token" (an API token).
	Via string `json:"via"`
	// CSRFToken goes in the X-CSRF-Token header of every request of the
	// session that is not a GET ("" for API tokens, which need none).
	CSRFToken string `json:"csrfToken,omitempty"`
	// Expires is when the session ends unless it is used (idle expiry,
	// bounded by the session's lifetime).
	Expires time.Time `json:"expires,omitzero"`
	// Allowed lists the routes the user may call, as "METHOD /path" with
	// the path patterns of the OpenAPI document ("POST /vms/{vm}/start"):
	// the UI disables what is not listed (the engine refuses it anyway).
	Allowed []string `json:"allowed"`
}

// PasswordRequest sets a user's web UI password
// (PUT /api/v1/users/{user}/password).
type PasswordRequest struct {
	Password string `json:"password"`
	// CurrentPassword is required when a signed-in browser changes its
	// own user's password.
	CurrentPassword string `json:"currentPassword,omitempty"`
}

// ConsoleTicketRequest asks for a console ticket
// (POST /api/v1/vms/{vm}/console-ticket).
type ConsoleTicketRequest struct {
	// Type is the console: "vnc" (the graphical console).
	Type string `json:"type"`
}

// ConsoleTicket is a short-lived, one-use permission for the user who
// asked to open one VM's console: the websocket at Path (relative to the
// engine's address) with the ticket in its query.
type ConsoleTicket struct {
	Ticket  string    `json:"ticket"`
	Type    string    `json:"type"`
	VM      string    `json:"vm"`
	Expires time.Time `json:"expires"`
	Path    string    `json:"path"`
}

// VMOptions is what a VM of a cluster may be (GET
// /api/v1/clusters/{cluster}/vm-options), from the architecture's rules
// and the cluster's CPU type: the web UI's VM form follows it.
type VMOptions struct {
	Cluster     string `json:"cluster"`
	ClusterArch string `json:"clusterArch,omitempty"`
	CPUType     string `json:"cpuType,omitempty"`
	// EmulatedMachine is the cluster's machine, what a VM that names none
	// gets.
	EmulatedMachine string `json:"emulatedMachine,omitempty"`
	// DefaultArch is the architecture a VM gets when its definition names
	// none (the cluster's hosts'); "" when the cluster has no host yet.
	DefaultArch string `json:"defaultArch,omitempty"`
	// Arches are the guest architectures the cluster runs.
	Arches []ArchOptions `json:"arches"`
}

// ArchOptions is what a VM of one architecture may have.
type ArchOptions struct {
	Arch  string `json:"arch"`
	Title string `json:"title"`
	// Machine is the default machine family ("pseries", "q35").
	Machine string `json:"machine"`
	// OSTypes are the guest OS types, DefaultOSType the default.
	OSTypes       []string `json:"osTypes"`
	DefaultOSType string   `json:"defaultOsType,omitempty"`
	Firmware      []string `json:"firmware"`
	// CPUModels are the named CPU models the cluster's CPU type allows,
	// newest first (empty: any the hosts offer); CPUModes the modes.
	CPUModels      []string `json:"cpuModels"`
	CPUModes       []string `json:"cpuModes"`
	DefaultCPUMode string   `json:"defaultCpuMode"`
	MaxVCPUs       int      `json:"maxVcpus"`
	// MinMemoryMiB to MaxMemoryMiB, a multiple of MemoryMultipleMiB when
	// not zero.
	MinMemoryMiB      uint64 `json:"minMemoryMiB"`
	MaxMemoryMiB      uint64 `json:"maxMemoryMiB"`
	DefaultMemoryMiB  uint64 `json:"defaultMemoryMiB"`
	MemoryMultipleMiB uint64 `json:"memoryMultipleMiB,omitempty"`
	// Displays are the graphics protocols with their video models;
	// DefaultDisplay the protocol a VM gets; Headless tells that a VM
	// gets no display unless it asks for one.
	Displays       []DisplayOption `json:"displays"`
	DefaultDisplay string          `json:"defaultDisplay"`
	Headless       bool            `json:"headless,omitempty"`
	// NICModels are the NIC models, DefaultNIC the default.
	NICModels  []string `json:"nicModels"`
	DefaultNIC string   `json:"defaultNic,omitempty"`
	// DiskBuses are the disk buses, DefaultDiskBus and CDROMBus the
	// defaults.
	DiskBuses      []string `json:"diskBuses"`
	DefaultDiskBus string   `json:"defaultDiskBus"`
	CDROMBus       string   `json:"cdromBus"`
	// InputBuses are the input buses.
	InputBuses []string `json:"inputBuses"`
	// ConsoleDevice is the guest's serial console device (hvc0, ttyS0).
	ConsoleDevice string `json:"consoleDevice"`
}

// DisplayOption is one graphics protocol and its video models.
type DisplayOption struct {
	Type         string   `json:"type"`
	Videos       []string `json:"videos"`
	DefaultVideo string   `json:"defaultVideo"`
}

// VMCheckRequest checks a VM definition for a cluster without creating
// anything (POST /api/v1/clusters/{cluster}/vm-check): Definition (a JSON
// object) or Text (the YAML or JSON of a file, as polyvirt vm create -f
// reads it).
type VMCheckRequest struct {
	Definition json.RawMessage `json:"definition,omitempty"`
	Text       string          `json:"text,omitempty"`
}

// VMCheck answers a check: the definition as given (as JSON; absent when
// it cannot be read), the definition as it would be created (with every
// default; absent when it has violations), and every violation.
type VMCheck struct {
	Definition json.RawMessage `json:"definition,omitempty"`
	Completed  json.RawMessage `json:"completed,omitempty"`
	Errors     []api.Error     `json:"errors"`
}

// HostStatsHistory is a host's statistics over the last hour
// (GET /api/v1/hosts/{host}/stats/history), oldest first, one point per
// Interval, as this engine sampled them.
type HostStatsHistory struct {
	Host     string       `json:"host"`
	Interval string       `json:"interval"`
	Points   []StatsPoint `json:"points"`
}

// StatsPoint is one sample of a host's statistics.
type StatsPoint struct {
	Time               time.Time `json:"time"`
	CPUUsagePercent    float64   `json:"cpuUsagePercent"`
	MemoryUsedPercent  float64   `json:"memoryUsedPercent"`
	Load1              float64   `json:"load1"`
	VMsRunning         int       `json:"vmsRunning"`
	MemoryCommittedMiB uint64    `json:"memoryCommittedMiB"`
}

// Overview is the web UI's overview in one small answer
// (GET /api/v1/overview): each cluster with its hosts and VMs counted, the
// fleet's totals, and the hosts that need attention; the full lists stay
// on GET /hosts and GET /vms.
type Overview struct {
	Clusters []OverviewCluster `json:"clusters"`
	// Hosts and HostsUp count the hosts, VMs and VMsRunning the VMs.
	Hosts      int `json:"hosts"`
	HostsUp    int `json:"hostsUp"`
	VMs        int `json:"vms"`
	VMsRunning int `json:"vmsRunning"`
	// Attention are the hosts that are neither Up nor in Maintenance,
	// with their reasons (at most OverviewAttentionMax);
	// AttentionTotal counts them all.
	Attention      []HostLine `json:"attention"`
	AttentionTotal int        `json:"attentionTotal"`
}

// OverviewAttentionMax bounds the hosts an Overview lists as needing
// attention; OverviewHostLines is the size up to which a cluster's hosts
// are listed in it (a bigger cluster's are read when it is opened).
const (
	OverviewAttentionMax = 200
	OverviewHostLines    = 50
)

// OverviewCluster is one cluster of the overview.
type OverviewCluster struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	Arch            string `json:"arch,omitempty"`
	CPUType         string `json:"cpuType,omitempty"`
	EmulatedMachine string `json:"emulatedMachine,omitempty"`
	// Hosts counts its hosts by status, VMs its VMs by state.
	Hosts map[string]int `json:"hosts"`
	VMs   map[string]int `json:"vms"`
	// HostLines are its hosts when it has at most OverviewHostLines.
	HostLines []HostLine `json:"hostLines,omitempty"`
}

// HostLine is a host in a line: its name, what it is, its status and why.
type HostLine struct {
	Name          string `json:"name"`
	Cluster       string `json:"cluster"`
	Status        string `json:"status"`
	StatusCode    string `json:"statusCode,omitempty"`
	StatusMessage string `json:"statusMessage,omitempty"`
	Arch          string `json:"arch,omitempty"`
	CPUType       string `json:"cpuType,omitempty"`
}
