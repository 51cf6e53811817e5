package agentapi

import (
	"time"

	"polyvirt/internal/arch"
)

// The firmware documents of GET /v1/firmware and of the firmware steps
// (package firmware reads and updates the firmware, and persists a
// FirmwareOperation in its state file in this same form). The engine passes
// them through in its own firmware answers.

// FirmwareStatus is the answer of GET /v1/firmware.
type FirmwareStatus struct {
	// Supported tells whether polyvirt updates this host's system
	// firmware (POWER hosts with update_flash).
	Supported bool              `json:"supported"`
	Inventory FirmwareInventory `json:"inventory"`
	// Operation is the current or last update, nil when there was none.
	Operation *FirmwareOperation `json:"operation,omitempty"`
}

// FirmwareComponent is one firmware component and its level.
type FirmwareComponent struct {
	// Name is "bios" (DMI), "opal", "opal-mi", "opal-ml"
	// (ibm,opal/firmware/*) or the property name under
	// ibm,firmware-versions ("skiboot", "hostboot", "version", ...).
	Name string `json:"name"`
	// Version is the level.
	Version string `json:"version"`
	// Vendor and Date come with the DMI BIOS.
	Vendor string `json:"vendor,omitempty"`
	Date   string `json:"date,omitempty"`
	// Source is "dmi" or "device-tree".
	Source string `json:"source"`
}

// FirmwareInventory is a host's firmware inventory.
type FirmwareInventory struct {
	// Arch is the host's architecture.
	Arch arch.Arch `json:"arch"`
	// Mechanism is the architecture's firmware update mechanism
	// ("update_flash"), empty when polyvirt has none for it.
	Mechanism string `json:"mechanism,omitempty"`
	// TypeModel ("8247-22L"), Serial, ModelName and Vendor identify the
	// machine (device tree, /proc/cpuinfo, or DMI).
	TypeModel string `json:"typeModel,omitempty"`
	Serial    string `json:"serial,omitempty"`
	ModelName string `json:"modelName,omitempty"`
	Vendor    string `json:"vendor,omitempty"`
	// System is the system firmware of an FSP-based POWER host (lsmcode).
	System *SystemFirmware `json:"system,omitempty"`
	// Components are the levels the device tree or DMI carry.
	Components []FirmwareComponent `json:"components,omitempty"`
	// Problems are what could not be read, one sentence each.
	Problems []string `json:"problems,omitempty"`
	// Simulated, when set, says that the system firmware is simulated (a
	// fake-KVM host presenting a profile: its banks, lsmcode and
	// update_flash are polyvirt's simulation, kept in the agent's data
	// directory) and where.
	Simulated string `json:"simulated,omitempty"`
}

// FirmwareSide is one of the two system firmware banks of an FSP-based POWER
// system.
type FirmwareSide string

// The sides. The temporary side is the one normally booted (the production
// image); the permanent side is the known-good backup.
const (
	FirmwareSideUnknown   FirmwareSide = ""
	FirmwareSideTemporary FirmwareSide = "t"
	FirmwareSidePermanent FirmwareSide = "p"
)

// FirmwareLevel is one firmware level as lsmcode prints it.
type FirmwareLevel struct {
	// Name is what lsmcode prints first: the image level on older tools
	// and VPD ("SV810_133"), the marketing level ("FW860.20") when the
	// VPD holds both.
	Name string `json:"name"`
	// Image is the image level printed in parentheses after Name
	// ("SV860_082") when the VPD holds both; empty otherwise.
	Image string `json:"image,omitempty"`
}

// SystemFirmware is the system firmware of an FSP-based POWER host as
// lsmcode reports it.
type SystemFirmware struct {
	// Temporary and Permanent are the levels of the two banks.
	Temporary FirmwareLevel `json:"temporary"`
	Permanent FirmwareLevel `json:"permanent"`
	// Booted is the level the system booted from.
	Booted FirmwareLevel `json:"booted"`
	// BootedSide is the bank the system booted from: the marker of the
	// third level of `lsmcode -A` when it says (t) or (p); for a (b)
	// marker, the side whose level the booted level equals; unknown when
	// both sides hold it or neither does.
	BootedSide FirmwareSide `json:"bootedSide,omitempty"`
	// Service is the service processor (PFW) level, when printed.
	Service string `json:"service,omitempty"`
}

// Code is the image level, the form update_flash prints: Image when set,
// else Name.
func (l FirmwareLevel) Code() string {
	if l.Image != "" {
		return l.Image
	}
	return l.Name
}

// String prints the level as lsmcode does ("FW860.20 (SV860_082)").
func (l FirmwareLevel) String() string {
	if l.Image != "" {
		return l.Name + " (" + l.Image + ")"
	}
	return l.Name
}

// Terminal tells whether the state ends an operation (a new upload may
// start another one).
func (s FirmwareState) Terminal() bool {
	switch s {
	case FirmwareStateIdle, FirmwareStateCommitted, FirmwareStateRejected, FirmwareStateFailed, FirmwareStateCancelled:
		return true
	}
	return false
}

// FirmwareState is the state of a firmware update operation.
type FirmwareState string

// The states. An operation goes
//
//	uploaded → validating → validated → flashing → rebooting →
//	awaiting-decision → committing → committed
//	                  → rejecting  → rejected
//
// and may end failed (with the reason) or cancelled. idle means no
// operation has been started.
const (
	FirmwareStateIdle             FirmwareState = "idle"
	FirmwareStateUploaded         FirmwareState = "uploaded"
	FirmwareStateValidating       FirmwareState = "validating"
	FirmwareStateValidated        FirmwareState = "validated"
	FirmwareStateFlashing         FirmwareState = "flashing"
	FirmwareStateRebooting        FirmwareState = "rebooting"
	FirmwareStateAwaitingDecision FirmwareState = "awaiting-decision"
	FirmwareStateCommitting       FirmwareState = "committing"
	FirmwareStateCommitted        FirmwareState = "committed"
	FirmwareStateRejecting        FirmwareState = "rejecting"
	FirmwareStateRejected         FirmwareState = "rejected"
	FirmwareStateFailed           FirmwareState = "failed"
	FirmwareStateCancelled        FirmwareState = "cancelled"
)

// FirmwareOperation is one firmware update of the host, as persisted.
type FirmwareOperation struct {
	// ID names the operation ("fw-20261125T174600Z-1a2b3c4d").
	ID    string        `json:"id"`
	State FirmwareState `json:"state"`
	// Since is when the operation entered State: a caller that waits for
	// a reboot times the rebooting state out from it.
	Since   time.Time `json:"since"`
	Started time.Time `json:"started"`
	// TypeModel and Serial identify the host the operation was started on.
	TypeModel string `json:"typeModel,omitempty"`
	Serial    string `json:"serial,omitempty"`
	// Image is the uploaded image; ImagePath is its file in the data
	// directory.
	Image     *FirmwareImage `json:"image,omitempty"`
	ImagePath string         `json:"imagePath,omitempty"`
	// Before are the levels read when the image was validated.
	Before *SystemFirmware `json:"before,omitempty"`
	// Projection is update_flash's projected result.
	Projection *FirmwareProjection `json:"projection,omitempty"`
	// BootIDAtFlash is the kernel boot id when the flash started; a
	// different one later means the host rebooted.
	BootIDAtFlash string `json:"bootIdAtFlash,omitempty"`
	// Booted are the levels read after the reboot.
	Booted *SystemFirmware `json:"booted,omitempty"`
	// After are the levels read after the commit or the reject.
	After *SystemFirmware `json:"after,omitempty"`
	// Failure says why the operation failed (state failed).
	Failure *FirmwareFailure `json:"failure,omitempty"`
	// LastError is the last refused or failed step that left the state as
	// it was (a flash refused outside maintenance, a commit that failed);
	// cleared by the next step that succeeds.
	LastError *FirmwareFailure `json:"lastError,omitempty"`
	// Steps is the step log, oldest first.
	Steps []FirmwareStep `json:"steps"`
}

// FirmwareFailure is why a step failed or was refused.
type FirmwareFailure struct {
	// Step is the step ("validate", "flash", ...).
	Step    string    `json:"step"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// FirmwareStep is one entry of the step log, which the engine copies into its
// audit log.
type FirmwareStep struct {
	Time time.Time `json:"time"`
	// Step is "upload", "validate", "flash", "reboot", "commit", "reject",
	// "cancel" or "recover".
	Step string `json:"step"`
	// Result is "started", "ok", "refused" or "failed".
	Result string `json:"result"`
	// State is the operation's state after the step.
	State FirmwareState `json:"state"`
	// FromLevel and ToLevel are the firmware levels the step moves
	// between, when it moves any.
	FromLevel string `json:"fromLevel,omitempty"`
	ToLevel   string `json:"toLevel,omitempty"`
	// Who asked for the step ("admin@internal", "agent").
	Who     string `json:"who"`
	Message string `json:"message,omitempty"`
	// Code is the error code of a refused or failed step.
	Code string `json:"code,omitempty"`
}

// FirmwareImage describes a firmware image as uploaded.
type FirmwareImage struct {
	// FileName is the name the upload was given ("01SV810_133_081.rpm").
	FileName string `json:"fileName"`
	// Format is "rpm" (the vendor's package, the image extracted from it)
	// or "img" (a bare image).
	Format string `json:"format"`
	// ImageName is the name of the .img (inside the RPM, or FileName).
	ImageName string `json:"imageName"`
	// Size and SHA256 describe the extracted image bytes.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Package is the RPM's header, for an RPM.
	Package *FirmwareRPM `json:"package,omitempty"`
	// Level and Replaces are the levels the vendor's naming gives
	// ("01SV810_133_081": level SV810_133 replacing SV810_081), when the
	// package or file name follows it.
	Level    string `json:"level,omitempty"`
	Replaces string `json:"replaces,omitempty"`
	// MachineTypes are the machine type-models ("8247-22L") the package's
	// summary or description names; empty when it names none.
	MachineTypes []string `json:"machineTypes,omitempty"`
}

// FirmwareRPM is what an RPM's main header says about the package.
type FirmwareRPM struct {
	// Name, Version, Release and Arch identify the package.
	Name    string `json:"name"`
	Version string `json:"version"`
	Release string `json:"release"`
	Arch    string `json:"arch,omitempty"`
	// Summary and Description are the vendor's text (cut to 4 KiB).
	Summary     string `json:"summary,omitempty"`
	Description string `json:"description,omitempty"`
	// PayloadFormat ("cpio") and PayloadCompressor ("gzip", "xz", ...)
	// say how the files are packed.
	PayloadFormat     string `json:"payloadFormat"`
	PayloadCompressor string `json:"payloadCompressor"`
}

// FirmwareProjection is what `update_flash -v -f IMAGE` projects:
//
//	info: Current Temporary side will be committed to
//	Permanent side before being replaced with the new
//	image.
//
//	Projected Flash Update Results:
//	Current T Image: SV810_133
//	Current P Image: SV810_081
//	New T Image:     SV810_133
//	New P Image:     SV810_133
type FirmwareProjection struct {
	// CurrentT, CurrentP, NewT and NewP are the four projected levels.
	CurrentT string `json:"currentT"`
	CurrentP string `json:"currentP"`
	NewT     string `json:"newT"`
	NewP     string `json:"newP"`
	// Info holds the info: messages, each joined into one line.
	Info []string `json:"info,omitempty"`
	// CommitsTemporary tells that the current temporary side will be
	// copied to the permanent side before being replaced.
	CommitsTemporary bool `json:"commitsTemporary,omitempty"`
	// Downlevel tells that the new image is older than the current one.
	Downlevel bool `json:"downlevel,omitempty"`
	// LevelUnknown tells that the tool could not tell the current fixpack
	// level.
	LevelUnknown bool `json:"levelUnknown,omitempty"`
}

// FirmwareStepRequest is the optional body of POST /v1/firmware/{step}.
type FirmwareStepRequest struct {
	// Maintenance is the engine's assertion that it holds the host in
	// Maintenance (flash only).
	Maintenance bool `json:"maintenance"`
}
