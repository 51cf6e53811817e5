package firmware

import "fmt"

// Error is a refused or failed firmware action: a stable code, the field or
// step concerned (may be empty) and a sentence saying what happened and
// what to do. Err, when set, is the cause (a hostexec error, a
// *ParseError, ...).
type Error struct {
	// Code is the stable error code (CodeBusy, ...).
	Code string `json:"code"`
	// Field names the field, tool or step concerned; may be empty.
	Field string `json:"field,omitempty"`
	// Message says what happened and what to do.
	Message string `json:"message"`
	// Err is the cause, if any.
	Err error `json:"-"`
}

// Error prints "CODE: field: message".
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Code + ": " + e.Message
	}
	return e.Code + ": " + e.Field + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same code, so that
// errors.Is(err, &Error{Code: CodeBusy}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Field == "" && t.Message == ""
}

func errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// The error codes.
const (
	// CodeNotSupportedOnArch: the host's architecture has no firmware
	// update mechanism polyvirt drives (archspec HostRules.FirmwareUpdate).
	CodeNotSupportedOnArch = "NOT_SUPPORTED_ON_ARCH"

	// Workflow.
	CodeOperationActive = "FIRMWARE_OPERATION_ACTIVE" // another update is in progress
	CodeBusy            = "FIRMWARE_BUSY"             // a step of this operation is running now
	CodeWrongState      = "FIRMWARE_WRONG_STATE"      // the step is not allowed in the current state
	CodeNoOperation     = "FIRMWARE_NO_OPERATION"     // no update has been started
	CodeNotMaintenance  = "HOST_NOT_IN_MAINTENANCE"
	CodeVMsRunning      = "HOST_HAS_RUNNING_VMS"
	CodePrecondition    = "FIRMWARE_PRECONDITIONS_UNKNOWN" // the precondition check itself failed
	CodeNewLevelNotUp   = "FIRMWARE_NEW_LEVEL_NOT_BOOTED"
	CodeRebootPending   = "FIRMWARE_REBOOT_PENDING" // the host has not rebooted yet
	CodeInterrupted     = "FIRMWARE_INTERRUPTED"
	CodeStateFile       = "FIRMWARE_STATE_FILE"
	CodeFlashNotApplied = "FIRMWARE_FLASH_NOT_APPLIED"

	// Images.
	CodeImageInvalid      = "FIRMWARE_IMAGE_INVALID"
	CodeImageTooLarge     = "FIRMWARE_IMAGE_TOO_LARGE"
	CodeRPMNoImage        = "FIRMWARE_RPM_NO_IMAGE"
	CodeImageWrongMachine = "FIRMWARE_IMAGE_WRONG_MACHINE"
	CodeImageChanged      = "FIRMWARE_IMAGE_CHANGED"
	CodeImageMissing      = "FIRMWARE_IMAGE_MISSING"

	// Host tools.
	CodeToolNotFound      = "FIRMWARE_TOOL_NOT_FOUND"
	CodeToolTimeout       = "FIRMWARE_TOOL_TIMEOUT"
	CodeToolFailed        = "FIRMWARE_TOOL_FAILED"
	CodeToolOutput        = "FIRMWARE_TOOL_OUTPUT_UNREADABLE"
	CodeUnsupported       = "FIRMWARE_UPDATE_UNSUPPORTED"
	CodeUsage             = "FIRMWARE_TOOL_USAGE"
	CodePermission        = "FIRMWARE_PERMISSION_DENIED"
	CodeInterfaceMissing  = "FIRMWARE_INTERFACE_MISSING"
	CodeModuleLoad        = "FIRMWARE_MODULE_LOAD_FAILED"
	CodePlatformCall      = "FIRMWARE_PLATFORM_CALL_FAILED"
	CodeAborted           = "FIRMWARE_ABORTED"
	CodeActiveImage       = "FIRMWARE_ACTIVE_IMAGE"
	CodeAccessKeyExpired  = "FIRMWARE_UPDATE_ACCESS_KEY_EXPIRED"
	CodeKexec             = "FIRMWARE_KEXEC_STOP_FAILED"
	CodeIPMI              = "FIRMWARE_IPMI_FAILED"
	CodeVPDMissing        = "FIRMWARE_VPD_DATABASE_MISSING"
	CodeValidationFailed  = "FIRMWARE_VALIDATION_FAILED"
	CodeManageUnsupported = "FIRMWARE_COMMIT_REJECT_UNSUPPORTED"
)

// ParseError is tool output or file content that cannot be read: the source
// ("lsmcode -A", "update_flash -v", "rpm"), the field and the reason.
type ParseError struct {
	// Source is the tool or format ("lsmcode -A", "rpm").
	Source string
	// Field is the field at fault ("temporary", "New T Image").
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error prints "source: field: reason".
func (e *ParseError) Error() string {
	return e.Source + ": " + e.Field + ": " + e.Reason
}

func parseErr(source, field, format string, args ...any) *ParseError {
	return &ParseError{Source: source, Field: field, Reason: fmt.Sprintf(format, args...)}
}
