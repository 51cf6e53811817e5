package engineapi

import "time"

// RolloutRequest starts a rolling firmware update of a cluster's POWER
// hosts (POST /api/v1/clusters/{cluster}/firmware/rollout, the image as the
// body, these fields as the query: name, hosts, maxUnavailable, soak,
// commit, reason).
type RolloutRequest struct {
	// ImageName is the image's file name (the vendor's RPM or a .img).
	ImageName string `json:"imageName"`
	// Hosts are the hosts to update (names or IDs); empty: every host of
	// the cluster.
	Hosts []string `json:"hosts,omitempty"`
	// MaxUnavailable is how many hosts may be out at once (default 1).
	MaxUnavailable int `json:"maxUnavailable,omitempty"`
	// Soak is how long a host runs on its new level, healthy, before it
	// is committed ("10m"; default none).
	Soak string `json:"soak,omitempty"`
	// Commit is "auto" (the rollout commits each host after its soak,
	// the default) or "manual" (it waits for the operator's
	// `polyvirt host firmware commit HOST`).
	Commit string `json:"commit,omitempty"`
	// Reason is recorded in the audit log.
	Reason string `json:"reason,omitempty"`
}

// The states of a rollout.
const (
	RolloutRunning   = "running"
	RolloutPaused    = "paused"
	RolloutSucceeded = "succeeded"
	RolloutFailed    = "failed"
	RolloutAborted   = "aborted"
)

// The phases of one host of a rollout, in their order; done, failed and
// skipped end it.
const (
	RolloutHostPending    = "pending"
	RolloutHostEvacuating = "evacuating"
	RolloutHostFlashing   = "flashing"
	RolloutHostRebooting  = "rebooting"
	RolloutHostChecking   = "checking"
	RolloutHostSoaking    = "soaking"
	RolloutHostCommitting = "committing"
	// RolloutHostAwaitingCommit waits for the operator's commit (or
	// reject) of the host's update (--commit manual).
	RolloutHostAwaitingCommit = "awaiting-commit"
	RolloutHostActivating     = "activating"
	RolloutHostRejecting      = "rejecting"
	RolloutHostDone           = "done"
	RolloutHostFailed         = "failed"
	RolloutHostSkipped        = "skipped"
)

// RolloutHost is one host of a rollout: where it is, its levels, and why
// it failed.
type RolloutHost struct {
	Host   string `json:"host"`
	HostID string `json:"hostId"`
	Phase  string `json:"phase"`
	// FromLevel is the temporary side's level before the flash, ToLevel
	// the image's level; Level is the level the host booted on after it.
	FromLevel string `json:"fromLevel,omitempty"`
	ToLevel   string `json:"toLevel,omitempty"`
	Level     string `json:"level,omitempty"`
	// CPUType is the host's CPU type in its cluster before the flash: it
	// must be the same after.
	CPUType string `json:"cpuType,omitempty"`
	// Operation is the agent's firmware operation of this host.
	Operation string `json:"operation,omitempty"`
	// Code and Message say why the host failed (or was skipped); Rejected
	// tells that its update was rejected (back to the permanent side).
	Code     string `json:"code,omitempty"`
	Message  string `json:"message,omitempty"`
	Rejected bool   `json:"rejected,omitempty"`
	// Since is when the host entered its phase; Started and Finished
	// bound its update.
	Since    time.Time `json:"since,omitempty"`
	Started  time.Time `json:"started,omitempty"`
	Finished time.Time `json:"finished,omitempty"`
	// RebootStarted is when its flash was asked (the reboot's start): its
	// reboot time-out runs from there.
	RebootStarted time.Time `json:"rebootStarted,omitempty"`
}

// Rollout is a rolling firmware update of a cluster
// (GET /api/v1/clusters/{cluster}/firmware/rollout).
type Rollout struct {
	ID        string `json:"id"`
	Cluster   string `json:"cluster"`
	ClusterID string `json:"clusterId"`
	// State is running, paused, succeeded, failed or aborted.
	State          string `json:"state"`
	ImageName      string `json:"imageName"`
	ImageSHA256    string `json:"imageSha256,omitempty"`
	MaxUnavailable int    `json:"maxUnavailable"`
	Soak           string `json:"soak,omitempty"`
	Commit         string `json:"commit"`
	StartedBy      string `json:"startedBy"`
	Reason         string `json:"reason,omitempty"`
	// Waiting says why no further host starts now (the capacity check, a
	// pause), empty when nothing waits.
	Waiting string `json:"waiting,omitempty"`
	// Code and Message say why the rollout stopped (failed, aborted).
	Code    string        `json:"code,omitempty"`
	Message string        `json:"message,omitempty"`
	Hosts   []RolloutHost `json:"hosts"`
	// AbortedBy names who aborted it.
	AbortedBy string    `json:"abortedBy,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished,omitempty"`
}

// RolloutAction asks to pause, resume or abort a rollout
// (POST /api/v1/clusters/{cluster}/firmware/rollout/{pause|resume|abort}).
type RolloutAction struct {
	// Reason is recorded in the audit log.
	Reason string `json:"reason,omitempty"`
}
