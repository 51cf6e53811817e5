package vmspec

import (
	"fmt"
	"strings"
)

// Error is one violation: a stable code, the path of the field at fault
// ("disks[2].bus", "" for the whole definition) and a sentence that says
// what is wrong and what to do instead.
type Error struct {
	// Code is the stable identifier (MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC).
	Code string `json:"code"`
	// Field is the path of the field at fault, "" for the whole definition.
	Field string `json:"field,omitempty"`
	// Message says what is wrong and what to do instead.
	Message string `json:"message"`
}

// Error prints "CODE: field: message".
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Code + ": " + e.Message
	}
	return e.Code + ": " + e.Field + ": " + e.Message
}

// Errors is every violation found in one definition; it is an error itself.
type Errors []*Error

// Error prints one violation per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Codes lists the codes in order, for tests and scripts.
func (es Errors) Codes() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Code
	}
	return out
}

// Has reports whether some violation has the code.
func (es Errors) Has(code string) bool {
	for _, e := range es {
		if e.Code == code {
			return true
		}
	}
	return false
}

// add appends a violation.
func (es *Errors) add(code, field, format string, args ...any) {
	*es = append(*es, &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)})
}

// The error codes. Those marked (oVirt) are the reference engine's codes
// for the same rule; the others are polyvirt's own.
const (
	// Decoding.
	CodeSyntax       = "DEFINITION_SYNTAX_ERROR"
	CodeUnknownField = "DEFINITION_UNKNOWN_FIELD"
	CodeWrongType    = "DEFINITION_WRONG_TYPE"
	CodeTooLarge     = "DEFINITION_TOO_LARGE"
	CodeEmpty        = "DEFINITION_EMPTY"

	// Any string field.
	CodeControlChars = "VALUE_HAS_CONTROL_CHARACTERS"
	CodeTooLong      = "VALUE_TOO_LONG"

	// Identity and platform.
	CodeNameRequired    = "VM_NAME_REQUIRED"
	CodeNameInvalid     = "VM_NAME_INVALID"
	CodeUUIDInvalid     = "VM_UUID_INVALID"
	CodeArchRequired    = "VM_ARCH_REQUIRED"
	CodeArchUnknown     = "VM_ARCH_UNKNOWN"
	CodeArchConflict    = "VM_ARCH_CONFLICT"
	CodeOSType          = "ACTION_TYPE_FAILED_ILLEGAL_OS_TYPE_IS_NOT_SUPPORTED_BY_ARCHITECTURE_TYPE" // (oVirt)
	CodeMachine         = "MACHINE_NOT_SUPPORTED_BY_ARCH"
	CodeFirmware        = "FIRMWARE_NOT_SUPPORTED_BY_ARCH"
	CodeKernelRequired  = "KERNEL_PATH_REQUIRED"
	CodePathInvalid     = "PATH_INVALID"
	CodeCmdlineInvalid  = "KERNEL_CMDLINE_INVALID"
	CodeMetadataKey     = "METADATA_KEY_INVALID"
	CodeMetadataTooMany = "METADATA_TOO_LARGE"

	// CPU and memory.
	CodeCPUTopology     = "CPU_TOPOLOGY_INVALID"
	CodeMaxVCPUs        = "VCPU_COUNT_EXCEEDS_ARCH_MAX"
	CodeCPUMode         = "CPU_MODE_NOT_SUPPORTED_BY_ARCH"
	CodeUseHostCPU      = "USE_HOST_CPU_REQUESTED_ON_UNSUPPORTED_ARCH" // (oVirt)
	CodeCPUModelMissing = "CPU_MODEL_REQUIRED"
	CodeCPUModel        = "CPU_MODEL_NOT_SUPPORTED_BY_ARCH"
	CodeCPUCompat       = "CPU_COMPAT_LEVEL_NOT_SUPPORTED_BY_ARCH"
	CodeCPUModelForMode = "CPU_MODEL_NOT_FOR_MODE"
	CodeMemoryRange     = "MEMORY_SIZE_OUT_OF_RANGE"
	CodeMaxMemory       = "MAX_MEMORY_BELOW_MEMORY"
	CodeHotPlugMemory   = "HOT_PLUG_MEMORY_IS_NOT_SUPPORTED" // (oVirt)

	// Disks.
	CodeDiskDevice      = "DISK_DEVICE_UNKNOWN"
	CodeDiskType        = "DISK_TYPE_UNKNOWN"
	CodeDiskFormat      = "DISK_FORMAT_UNKNOWN"
	CodeDiskSource      = "DISK_SOURCE_REQUIRED"
	CodeDiskBus         = "DISK_BUS_NOT_SUPPORTED_BY_ARCH"
	CodeDiskBusMachine  = "DISK_BUS_NOT_SUPPORTED_BY_MACHINE"
	CodeDiskBusDevice   = "DISK_BUS_NOT_SUPPORTED_FOR_DEVICE"
	CodeFloppy          = "ACTION_TYPE_FAILED_ILLEGAL_FLOPPY_IS_NOT_SUPPORTED_BY_OS" // (oVirt)
	CodeSCSIController  = "SCSI_CONTROLLER_NOT_SUPPORTED_BY_ARCH"
	CodeControllerNoBus = "DISK_CONTROLLER_WITHOUT_SCSI_BUS"
	CodeSPAPRVSCSIMax   = "ACTION_TYPE_FAILED_EXCEEDED_MAX_SPAPR_VSCSI_DISKS" // (oVirt)
	CodeDiskTarget      = "DISK_TARGET_INVALID"
	CodeDiskTargetDup   = "DISK_TARGET_DUPLICATE"
	CodeDiskSourceDup   = "DISK_SOURCE_DUPLICATE"
	CodeBootOrder       = "BOOT_ORDER_INVALID"
	CodeBootOrderDup    = "BOOT_ORDER_DUPLICATE"
	CodeTooManyDevices  = "TOO_MANY_DEVICES"

	// NICs.
	CodeNICModel     = "NIC_MODEL_NOT_SUPPORTED_BY_ARCH"
	CodeMACInvalid   = "NIC_MAC_INVALID"
	CodeMACDuplicate = "NIC_MAC_DUPLICATE"
	CodeNICSource    = "NIC_SOURCE_CONFLICT"
	CodeNICName      = "NIC_SOURCE_NAME_INVALID"

	// Display and inputs.
	CodeDisplayType    = "ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS" // (oVirt)
	CodeDisplayUnknown = "DISPLAY_TYPE_UNKNOWN"
	CodeVideoModel     = "VIDEO_MODEL_NOT_SUPPORTED_WITH_DISPLAY"
	CodeMonitors       = "DISPLAY_MONITORS_OUT_OF_RANGE"
	CodeListen         = "DISPLAY_LISTEN_INVALID"
	CodePassword       = "DISPLAY_PASSWORD_INVALID"
	CodeHeadlessField  = "DISPLAY_NONE_WITH_SETTINGS"
	CodeInputType      = "INPUT_TYPE_UNKNOWN"
	CodeInputBus       = "INPUT_BUS_NOT_SUPPORTED_BY_ARCH"
	CodeInputDup       = "INPUT_DUPLICATE"
	CodeUSBModel       = "USB_CONTROLLER_NOT_SUPPORTED_BY_ARCH"
	CodeUSBMissing     = "USB_DEVICE_WITHOUT_USB_CONTROLLER"

	// Other devices.
	CodeConsoleType   = "CONSOLE_TYPE_UNKNOWN"
	CodeConsolePath   = "CONSOLE_PATH_REQUIRED"
	CodeConsoleField  = "CONSOLE_FIELD_NOT_FOR_TYPE"
	CodeSoundArch     = "SOUND_DEVICE_REQUESTED_ON_NOT_SUPPORTED_ARCH" // (oVirt)
	CodeSoundModel    = "SOUND_MODEL_NOT_SUPPORTED_BY_ARCH"
	CodeWatchdogArch  = "WATCHDOG_NOT_SUPPORTED_BY_ARCH"
	CodeWatchdogModel = "WATCHDOG_MODEL_NOT_SUPPORTED_BY_ARCH"
	CodeWatchdogAct   = "WATCHDOG_ACTION_UNKNOWN"
	CodeRNGModel      = "RNG_MODEL_NOT_SUPPORTED_BY_ARCH"

	// Against the target host's capabilities (polyvirt caps).
	CodeHostArch     = "HOST_CANNOT_RUN_VM_ARCH"
	CodeHostMachine  = "EMULATED_MACHINE_NOT_OFFERED_BY_HOST"
	CodeHostCPUModel = "CPU_MODEL_NOT_USABLE_ON_HOST"
	CodeHostCPUMode  = "CPU_MODE_NOT_SUPPORTED_BY_HOST"
	CodeHostGraphics = "GRAPHICS_NOT_OFFERED_BY_HOST"
	CodeHostVideo    = "VIDEO_MODEL_NOT_OFFERED_BY_HOST"
	CodeHostDiskBus  = "DISK_BUS_NOT_OFFERED_BY_HOST"
	CodeHostCaps     = "HOST_CAPS_UNREADABLE"
)

// The codes of duplicate keys, invisible format characters and host
// paths a host does not allow.
const (
	// CodeDuplicateKey: a key is given twice in one object of the
	// definition (the last one would silently win).
	CodeDuplicateKey = "DEFINITION_DUPLICATE_KEY"
	// CodeFormatChars: a Unicode format character (category Cf: the bidi
	// overrides and isolates, zero-width characters) in a string.
	CodeFormatChars = "VALUE_HAS_FORMAT_CHARACTERS"
	// CodePathNotAllowed: a host path outside what the host lets VMs
	// open for that use (package hostpath), or a console file named by the
	// definition where the host names it (Options.HostConsole).
	CodePathNotAllowed = "PATH_NOT_ALLOWED"
	// CodePathNotFound: a host path the policy allows names no file when
	// the VM starts.
	CodePathNotFound = "PATH_NOT_FOUND"
)
