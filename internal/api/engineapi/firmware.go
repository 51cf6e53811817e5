package engineapi

import (
	"time"

	"polyvirt/internal/api/agentapi"
)

// HostFirmware is a host's system firmware as the engine sees it (GET
// /api/v1/hosts/{host}/firmware): what its agent reports now, and the
// operations the engine recorded.
type HostFirmware struct {
	Host string `json:"host"`
	// Reachable tells whether the agent answered; Error says why not (a
	// host rebooting into new firmware does not answer for a while).
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Supported tells whether polyvirt updates this host's firmware
	// (POWER hosts with update_flash).
	Supported bool                        `json:"supported"`
	Inventory *agentapi.FirmwareInventory `json:"inventory,omitempty"`
	// Operation is the agent's current or last operation.
	Operation *agentapi.FirmwareOperation `json:"operation,omitempty"`
	// History are the engine's records of the host's operations, newest
	// first.
	History []FirmwareRecord `json:"history"`
}

// FirmwareRecord is the engine's record of one firmware operation.
type FirmwareRecord struct {
	ID          string         `json:"id"`
	State       string         `json:"state"`
	FromLevel   string         `json:"fromLevel,omitempty"`
	ToLevel     string         `json:"toLevel,omitempty"`
	ImageName   string         `json:"imageName,omitempty"`
	RequestedBy string         `json:"requestedBy,omitempty"`
	Steps       []FirmwareStep `json:"steps"`
	Error       string         `json:"error,omitempty"`
	Created     time.Time      `json:"created"`
	Updated     time.Time      `json:"updated"`
}

// FirmwareStep is one entry of a record's log.
type FirmwareStep struct {
	Time    time.Time `json:"time"`
	State   string    `json:"state"`
	Message string    `json:"message,omitempty"`
}

// FirmwareStepRequest asks for a step (POST
// /api/v1/hosts/{host}/firmware/{validate|flash|commit|reject|cancel}).
type FirmwareStepRequest struct {
	// Reason is recorded in the audit log.
	Reason string `json:"reason,omitempty"`
}

// FirmwareStepResult is the answer of a step: the operation, and whether
// the step ended already (false: it goes on; poll the host's firmware).
type FirmwareStepResult struct {
	Host      string                      `json:"host"`
	Done      bool                        `json:"done"`
	Operation *agentapi.FirmwareOperation `json:"operation"`
}
