package api

// The error codes: every "code" an answer, a violation, a refusal reason or
// an audit event of polyvirt carries, each declared once, here. The codes
// are a contract: scripts and the web UI match them, so a code never
// changes its spelling. The codes of the reference engine (oVirt) are used
// where one exists for the same rule; they are marked (oVirt).
//
// A new code goes in the group of what it is about; the package that
// refuses or reports uses the constant, never the string.

// Any API: the request, the caller, the objects.
const (
	CodeBadRequest       = "BAD_REQUEST"
	CodeBodyTooLarge     = "REQUEST_BODY_TOO_LARGE"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeNotFound         = "NOT_FOUND"
	CodeInternal         = "INTERNAL_ERROR"
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodePermissionDenied = "PERMISSION_DENIED"
	CodeAlreadyExists    = "ALREADY_EXISTS"
	CodeVersionConflict  = "VERSION_CONFLICT"
	CodeInUse            = "IN_USE"
	CodeInvalidArgument  = "INVALID_ARGUMENT"
	// CodeLocalPeerDenied refuses a process on the engine's machine that
	// reached the local API socket but is neither root, the engine's user,
	// nor a member of the socket's group.
	CodeLocalPeerDenied = "LOCAL_PEER_DENIED"
	// CodeLocalSocketUntrusted is the client's own refusal to send its
	// token over a local socket served by another user's process (neither
	// root, the client's user, nor the owner of the socket's directory).
	CodeLocalSocketUntrusted = "LOCAL_SOCKET_UNTRUSTED"
	// CodeExpired: the object's time has passed.
	CodeExpired = "EXPIRED"
	// CodeDuplicateKey: a request body gives a key twice in one object
	// (or, at its top, two keys that differ only in case).
	CodeDuplicateKey = "DUPLICATE_KEY"
	// CodeContinueInvalid: a list's continue token (the cursor of its next
	// page) is not one the engine gave, or was given for another query.
	CodeContinueInvalid = "CONTINUE_TOKEN_INVALID"
	// CodeFormatChars: a string holds a Unicode format character (category
	// Cf: the bidi overrides and isolates, zero-width characters), in a
	// request body or a VM definition.
	CodeFormatChars = "VALUE_HAS_FORMAT_CHARACTERS"
	// CodeTooManyRequests: the client holds as many connections to the API
	// as one client may (429); it retries when one of them is done.
	CodeTooManyRequests = "TOO_MANY_CONNECTIONS"
	// CodeOverloaded: the API serves as many connections as it may in
	// total (503); the client retries after a moment.
	CodeOverloaded = "SERVER_OVERLOADED"
)

// The engine's database.
const (
	CodeDatabaseUnavailable = "DATABASE_UNAVAILABLE"
	CodeDatabaseFailure     = "DATABASE_FAILURE"
)

// Enrollment: POST /api/v1/join (package enroll).
const (
	// CodeJoinTokenMalformed: the text is not a join token (400).
	CodeJoinTokenMalformed = "JOIN_TOKEN_MALFORMED"
	// CodeJoinTokenInvalid: no host has this token, or it was forged (401).
	CodeJoinTokenInvalid = "JOIN_TOKEN_INVALID"
	// CodeJoinTokenWrongEngine: the token names another engine CA (401).
	CodeJoinTokenWrongEngine = "JOIN_TOKEN_WRONG_ENGINE"
	// CodeJoinTokenExpired: the token's time has passed (401).
	CodeJoinTokenExpired = "JOIN_TOKEN_EXPIRED"
	// CodeJoinTokenUsed: the token was used already (409).
	CodeJoinTokenUsed = "JOIN_TOKEN_USED"
	// CodeCSRInvalid: the certificate request is unusable (400).
	CodeCSRInvalid = "CSR_INVALID"
)

// Hosts and clusters (the engine).
const (
	// CodeHostStatusIllegal: the action is not allowed in the host's
	// status (oVirt's ACTION_TYPE_FAILED_VDS_STATUS_ILLEGAL).
	CodeHostStatusIllegal = "ACTION_TYPE_FAILED_VDS_STATUS_ILLEGAL"
	// CodeHostClusterArch: a host cannot move to a cluster of another
	// architecture.
	CodeHostClusterArch = "ACTION_TYPE_FAILED_VDS_CLUSTER_DIFFERENT_ARCHITECTURES"
	// CodeHostAddressInUse: another host has this address.
	CodeHostAddressInUse = "ACTION_TYPE_FAILED_VDS_WITH_SAME_HOST_EXIST"
	// CodeHostHasVMs: VMs run on the host, which the action needs stopped
	// (oVirt's ACTION_TYPE_FAILED_VDS_HAS_RUNNING_VMS; see also
	// CodeHostHasRunningVMs of the firmware steps).
	CodeHostHasVMs = "ACTION_TYPE_FAILED_VDS_HAS_RUNNING_VMS"
	// CodeClusterArchInUse: the architecture cannot change while the
	// cluster has hosts or VMs.
	CodeClusterArchInUse = "CLUSTER_CANNOT_CHANGE_ARCHITECTURE_IN_USE"
	// CodeClusterCPUIllegal: an Up host of the cluster does not support
	// the requested CPU type.
	CodeClusterCPUIllegal = "CLUSTER_CANNOT_UPDATE_CPU_ILLEGAL"
	// CodeAgentUnreachable: a host's agent does not answer (a host status
	// code, and the error of a call the engine could not pass on).
	CodeAgentUnreachable = "AGENT_UNREACHABLE"
	// CodeAgentError: an agent answered something the engine cannot use.
	CodeAgentError = "AGENT_ERROR"
	// CodeHostCapabilitiesInvalid: the agent answered with a capabilities
	// report the engine cannot read.
	CodeHostCapabilitiesInvalid = "HOST_CAPABILITIES_INVALID"
)

// Host admission into a cluster: the reason of a NonOperational host
// (package cpucatalog, the engine's emulated machine rule).
const (
	// CodeCPUTypeIncompatible: no CPU type matches the host at all, or the
	// host lacks flags of the cluster's CPU type (oVirt).
	CodeCPUTypeIncompatible = "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER"
	// CodeArchIncompatible: the host's architecture is not the cluster's
	// (oVirt).
	CodeArchIncompatible = "ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER"
	// CodeEmulatedMachines: the host does not offer the cluster's emulated
	// machine (or none of its candidates, for the first host) (oVirt).
	CodeEmulatedMachines = "EMULATED_MACHINES_INCOMPATIBLE_WITH_CLUSTER"
)

// VMs in the engine.
const (
	// CodeVMStatusIllegal: the action is not allowed in the VM's state
	// (oVirt's ACTION_TYPE_FAILED_VM_STATUS_ILLEGAL).
	CodeVMStatusIllegal = "ACTION_TYPE_FAILED_VM_STATUS_ILLEGAL"
	// CodePinnedHostCluster: the pinned host is not in the VM's cluster
	// (oVirt's ACTION_TYPE_FAILED_DEDICATED_VDS_NOT_IN_SAME_CLUSTER).
	CodePinnedHostCluster = "ACTION_TYPE_FAILED_DEDICATED_VDS_NOT_IN_SAME_CLUSTER"
	// CodeVMUUIDInUse: another VM has the definition's uuid.
	CodeVMUUIDInUse = "VM_UUID_IN_USE"
	// CodeVMClusterArch: the VM's architecture is not its cluster's (or
	// the VM would move to a cluster of another architecture) (oVirt).
	CodeVMClusterArch = "ACTION_TYPE_FAILED_VM_CLUSTER_DIFFERENT_ARCHITECTURES"
	// CodeClusterNoArch: the cluster has no architecture yet (no CPU type
	// set and no host admitted) (oVirt).
	CodeClusterNoArch = "ACTION_TYPE_FAILED_CLUSTER_UNDEFINED_ARCHITECTURE"
	// CodeVMCPUAboveCluster: the VM's named CPU model is above the
	// cluster's CPU type, or of another vendor.
	CodeVMCPUAboveCluster = "VM_CPU_MODEL_EXCEEDS_CLUSTER_CPU_TYPE"
	// CodeVMMachineNotInCluster: no host of the cluster offers the VM's
	// emulated machine.
	CodeVMMachineNotInCluster = "EMULATED_MACHINE_NOT_SUPPORTED_BY_CLUSTER"
)

// The web UI: sign-in, sessions and consoles (the engine), the graphical
// console's VNC server (the agent).
const (
	// CodeSignInFailed: no user has this name and password.
	CodeSignInFailed = "SIGN_IN_FAILED"
	// CodeSignInRateLimited: too many failed sign-ins for the user or from
	// the address lately; Retry-After says when to try again.
	CodeSignInRateLimited = "SIGN_IN_RATE_LIMITED"
	// CodeSessionExpired: the web session ended (idle for too long, past
	// its lifetime, signed out, or its user's password changed).
	CodeSessionExpired = "SESSION_EXPIRED"
	// CodeCSRFTokenInvalid: a request of a web session that changes
	// something came without the session's CSRF token, or from another
	// site.
	CodeCSRFTokenInvalid = "CSRF_TOKEN_INVALID"
	// CodePasswordInvalid: a new password breaks the password rules, or
	// the current password given is wrong.
	CodePasswordInvalid = "PASSWORD_INVALID"
	// CodeConsoleTicketInvalid: a console ticket is unknown, used,
	// expired, or not for this VM or console.
	CodeConsoleTicketInvalid = "CONSOLE_TICKET_INVALID"
	// CodeDisplayNotLoopback: a VM's display would listen on an address
	// other hosts reach; the engine's VMs listen on their host's loopback,
	// where the agent reaches them for the graphical console.
	CodeDisplayNotLoopback = "DISPLAY_LISTEN_NOT_LOOPBACK"
	// CodeVNCNotLocal: a running VM's VNC server does not listen on its
	// host's loopback, where the agent's graphical console reaches it.
	CodeVNCNotLocal = "VNC_NOT_ON_LOOPBACK"
)

// Scheduling: the refusal to start a VM, and each host's reason not to run
// it (package scheduler).
const (
	// CodeSchedulingFilteredOut: no host passed the filters (oVirt's
	// SCHEDULING_ALL_HOSTS_FILTERED_OUT); the details say why for each.
	CodeSchedulingFilteredOut = "SCHEDULING_ALL_HOSTS_FILTERED_OUT"
	// CodeSchedulingNoHosts: the cluster has no hosts at all.
	CodeSchedulingNoHosts = "SCHEDULING_NO_HOSTS"

	CodeHostNotUp           = "HOST_NOT_UP"
	CodeHostNotInVMCluster  = "HOST_NOT_IN_VM_CLUSTER"
	CodeHostExcluded        = "HOST_EXCLUDED"
	CodeHostNotPinned       = "HOST_NOT_THE_PINNED_HOST"
	CodeLowCPULevel         = "LOW_CPU_LEVEL"
	CodeNotEnoughMemory     = "NOT_ENOUGH_MEMORY"
	CodeNotEnoughCPUs       = "NOT_ENOUGH_CPUS"
	CodeHostCapacityUnknown = "HOST_CAPACITY_UNKNOWN"
	// CodeHostArch (a scheduling reason and a definition checked against
	// a host), CodeHostMachine and CodePathNotAllowed are in the VM
	// definition's codes below.
	// CodePoolNotOnHost: the host does not have a storage pool the VM's
	// volumes are in (the Storage filter; also the event of a host that
	// lacks a pool).
	CodePoolNotOnHost = "POOL_NOT_AVAILABLE_ON_HOST"
)

// VMs on an agent, and libvirt's refusals.
const (
	CodeVMNotFound           = "VM_NOT_FOUND"
	CodeVMExists             = "VM_EXISTS"
	CodeVMRunning            = "VM_IS_RUNNING"
	CodeVMNotRunning         = "VM_NOT_RUNNING"
	CodeVMNotPaused          = "VM_NOT_PAUSED"
	CodeUnknownAction        = "UNKNOWN_ACTION"
	CodeVMHasNoDisplay       = "VM_HAS_NO_DISPLAY"
	CodeVMHasNoConsole       = "VM_HAS_NO_CONSOLE"
	CodeHostLockedByFirmware = "HOST_LOCKED_BY_FIRMWARE_UPDATE"
	// CodeLibvirtUnavailable: the agent cannot reach libvirt (an agent's
	// answer, and the status code of a NonOperational host whose agent
	// answers without libvirt).
	CodeLibvirtUnavailable = "LIBVIRT_UNAVAILABLE"
	CodeLibvirtError       = "LIBVIRT_ERROR"
	CodeLibvirtInvalidOp   = "LIBVIRT_OPERATION_INVALID"
	CodeLibvirtConfig      = "LIBVIRT_CONFIGURATION_UNSUPPORTED"
	// CodeVMNotResponding: the VM's QEMU does not answer (a call to its
	// monitor had no reply within the agent's qemu_timeout); only destroy
	// works. Also the engine's audit event when a VM becomes NotResponding
	// (oVirt's VM status and event).
	CodeVMNotResponding = "VM_NOT_RESPONDING"
	// CodeLibvirtTimeout: libvirt did not answer a call in time (the
	// message names the call).
	CodeLibvirtTimeout = "LIBVIRT_TIMEOUT"
	// CodeRequestCanceled: the request ended (its client went) before its
	// answer.
	CodeRequestCanceled = "REQUEST_CANCELED"
	// CodeVMBusy: another operation on the VM did not end within the
	// request's time.
	CodeVMBusy = "VM_BUSY"
)

// Live migration: the engine's refusals, each destination host's reason
// not to take a VM (package scheduler), the agents' outcomes and the
// evacuation of a host switching to Maintenance.
const (
	// CodeMigrationNotSupported: the VM's architecture does not migrate
	// (oVirt's MIGRATION_IS_NOT_SUPPORTED).
	CodeMigrationNotSupported = "MIGRATION_IS_NOT_SUPPORTED"
	// CodeMigrationPolicyNone: the migration policy in effect (the
	// cluster's, or the VM's own) is none: its VMs stay where they run.
	CodeMigrationPolicyNone = "MIGRATION_DISABLED_BY_POLICY"
	// CodeMigrationPolicyUnknown: a migration policy polyvirt does not have.
	CodeMigrationPolicyUnknown = "MIGRATION_POLICY_UNKNOWN"
	// CodeMigrationPostCopyImpossible: post-copy cannot move the VM's
	// memory (huge pages, file-backed or shared memory, a tunnelled
	// stream).
	CodeMigrationPostCopyImpossible = "MIGRATION_POSTCOPY_NOT_POSSIBLE"
	// CodeMigrationInProgress: the VM migrates already.
	CodeMigrationInProgress = "MIGRATION_IN_PROGRESS"
	// CodeMigrationNotInProgress: nothing to cancel.
	CodeMigrationNotInProgress = "MIGRATION_NOT_IN_PROGRESS"
	// CodeMigrationVMNotUp: only a VM that runs (Up) migrates.
	CodeMigrationVMNotUp = "MIGRATION_VM_NOT_UP"
	// CodeMigrationOutgoingLimit: the source host sends as many VMs at
	// once as its cluster allows.
	CodeMigrationOutgoingLimit = "MIGRATION_OUTGOING_LIMIT_REACHED"
	// CodeMigrationNoDestination: no host of the cluster can take the VM
	// (the details say why for each).
	CodeMigrationNoDestination = "MIGRATION_NO_DESTINATION"
	// CodeMigrationBandwidthInvalid: --max-bandwidth is not a positive
	// number of MiB/s.
	CodeMigrationBandwidthInvalid = "MIGRATION_BANDWIDTH_INVALID"

	// Reasons a destination host does not fit (scheduler filters).
	CodeMigrationSourceHost     = "MIGRATION_SOURCE_HOST"
	CodeMigrationIncomingLimit  = "MIGRATION_INCOMING_LIMIT_REACHED"
	CodeVMCPULevelAboveHost     = "VM_CPU_LEVEL_ABOVE_HOST"
	CodeHostPageSizeUnavailable = "HOST_PAGE_SIZE_UNAVAILABLE"
	CodeHostNoMigrationEndpoint = "HOST_NO_MIGRATION_ENDPOINT"

	// CodeMigrationFailed: libvirt or QEMU gave up; the VM runs on its
	// source.
	CodeMigrationFailed = "MIGRATION_FAILED"
	// CodeMigrationCanceled: canceled on request; the VM runs on its
	// source.
	CodeMigrationCanceled = "MIGRATION_CANCELED"
	// CodeMigrationNotConverging: the convergence schedule ran out of
	// steps (its last is abort); the VM runs on its source.
	CodeMigrationNotConverging = "MIGRATION_NOT_CONVERGING"
	// CodeMigrationNotAnnounced: an agent destroyed an incoming VM the
	// engine had not announced to it (the migration fails at its source).
	CodeMigrationNotAnnounced = "MIGRATION_NOT_ANNOUNCED"
	// CodeMigrationDestinationExists: the destination has a domain of the
	// VM (or of its name) already.
	CodeMigrationDestinationExists = "MIGRATION_DESTINATION_HAS_DOMAIN"
	// CodeMigrationDiskExists: a disk the source copies exists at the
	// destination already and is not the same storage.
	CodeMigrationDiskExists = "MIGRATION_DISK_EXISTS_ON_DESTINATION"
	// CodeMigrationNoTLS: a host has no libvirt TLS endpoint to take VMs
	// (its agent joined before polyvirt configured libvirt's TLS, or
	// libvirt_tls is off in its configuration).
	CodeMigrationNoTLS = "MIGRATION_TLS_NOT_CONFIGURED"
	// CodeMigrationOutcomeUnknown: the engine cannot tell yet where a VM
	// whose migration was interrupted runs (a host does not answer); it
	// asks both hosts again.
	CodeMigrationOutcomeUnknown = "MIGRATION_OUTCOME_UNKNOWN"

	// CodeMaintenanceVMsCannotMigrate: a host cannot switch to
	// Maintenance: VMs on it cannot leave (each named with its reason in
	// the details); --stop-vms shuts those down instead.
	CodeMaintenanceVMsCannotMigrate = "HOST_MAINTENANCE_VMS_CANNOT_MIGRATE"
	// CodeMaintenanceMigrationFailed: a migration of the evacuation failed;
	// the host stays PreparingForMaintenance.
	CodeMaintenanceMigrationFailed = "HOST_MAINTENANCE_MIGRATION_FAILED"
)

// The VM definition (package vmspec; the format is docs/vm-definition.md).
const (
	// CodeVMDefinitionInvalid: a definition with several violations (the
	// errors list has each).
	CodeVMDefinitionInvalid = "VM_DEFINITION_INVALID"

	// Decoding.
	CodeDefinitionSyntax       = "DEFINITION_SYNTAX_ERROR"
	CodeDefinitionUnknownField = "DEFINITION_UNKNOWN_FIELD"
	CodeDefinitionWrongType    = "DEFINITION_WRONG_TYPE"
	CodeDefinitionTooLarge     = "DEFINITION_TOO_LARGE"
	CodeDefinitionEmpty        = "DEFINITION_EMPTY"
	// CodeDefinitionDuplicateKey: a key is given twice in one object of
	// the definition (the last one would silently win).
	CodeDefinitionDuplicateKey = "DEFINITION_DUPLICATE_KEY"

	// Any string field.
	CodeControlChars = "VALUE_HAS_CONTROL_CHARACTERS"
	CodeTooLong      = "VALUE_TOO_LONG"

	// Identity and platform.
	CodeNameRequired      = "VM_NAME_REQUIRED"
	CodeNameInvalid       = "VM_NAME_INVALID"
	CodeUUIDInvalid       = "VM_UUID_INVALID"
	CodeArchRequired      = "VM_ARCH_REQUIRED"
	CodeArchUnknown       = "VM_ARCH_UNKNOWN"
	CodeArchConflict      = "VM_ARCH_CONFLICT"
	CodeOSType            = "ACTION_TYPE_FAILED_ILLEGAL_OS_TYPE_IS_NOT_SUPPORTED_BY_ARCHITECTURE_TYPE" // (oVirt)
	CodeMachineNotForArch = "MACHINE_NOT_SUPPORTED_BY_ARCH"
	CodeGuestFirmware     = "FIRMWARE_NOT_SUPPORTED_BY_ARCH"
	CodeKernelRequired    = "KERNEL_PATH_REQUIRED"
	CodePathInvalid       = "PATH_INVALID"
	// CodePathNotAllowed: a host path outside what the host lets VMs open
	// for that use (package hostpath; also a scheduling reason), or a
	// console file named by the definition where the host names it.
	CodePathNotAllowed = "PATH_NOT_ALLOWED"
	// CodePathNotFound: a host path the policy allows names no file when
	// the VM starts.
	CodePathNotFound    = "PATH_NOT_FOUND"
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
	// CodeMemoryNotMultipleOnPPC: a memory size that is not a multiple of
	// the POWER LMB size (oVirt; archspec MemoryRules.MultipleCode).
	CodeMemoryNotMultipleOnPPC = "MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC"

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

	// Against a host's capabilities report (an agent's, a scheduling
	// reason, polyvirt vm validate --host-caps).
	CodeHostArch     = "HOST_CANNOT_RUN_VM_ARCH"
	CodeHostMachine  = "EMULATED_MACHINE_NOT_OFFERED_BY_HOST"
	CodeHostCPUModel = "CPU_MODEL_NOT_USABLE_ON_HOST"
	CodeHostCPUMode  = "CPU_MODE_NOT_SUPPORTED_BY_HOST"
	CodeHostGraphics = "GRAPHICS_NOT_OFFERED_BY_HOST"
	CodeHostVideo    = "VIDEO_MODEL_NOT_OFFERED_BY_HOST"
	CodeHostDiskBus  = "DISK_BUS_NOT_OFFERED_BY_HOST"
	CodeHostCaps     = "HOST_CAPS_UNREADABLE"
	// CodeDiskVolumeName: a disk's volume name is not one a pool can hold
	// (it would climb out of the pool: "../x", "a/b", ".hidden").
	CodeDiskVolumeName = "DISK_VOLUME_NAME_INVALID"
	// CodeDiskPool: a disk names a volume without its pool, a pool without
	// a volume, or a pool name that cannot be one.
	CodeDiskPool = "DISK_POOL_INVALID"
	// CodeDiskSourceConflict: a disk's source is not its volume's file in
	// the pool, or a volume disk is not a file.
	CodeDiskSourceConflict = "DISK_SOURCE_CONFLICT"
	// CodeDiskHostPathAdminOnly: a disk names an explicit host path
	// (source, not a volume of a pool), which only an administrator may
	// give a VM (an exception within the directories the hosts allow).
	CodeDiskHostPathAdminOnly = "DISK_HOST_PATH_ADMIN_ONLY"
)

// POWER system firmware (package firmware, the agent's and the engine's
// firmware steps).
const (
	// CodeNotSupportedOnArch: the host's architecture has no firmware
	// update mechanism polyvirt drives (archspec HostRules.FirmwareUpdate).
	CodeNotSupportedOnArch = "NOT_SUPPORTED_ON_ARCH"

	// Workflow.
	CodeFirmwareOperationActive = "FIRMWARE_OPERATION_ACTIVE" // another update is in progress
	CodeFirmwareBusy            = "FIRMWARE_BUSY"             // a step of this operation is running now
	CodeFirmwareWrongState      = "FIRMWARE_WRONG_STATE"      // the step is not allowed in the current state
	CodeFirmwareNoOperation     = "FIRMWARE_NO_OPERATION"     // no update has been started
	// CodeHostNotInMaintenance: a flash needs the host in Maintenance.
	CodeHostNotInMaintenance = "HOST_NOT_IN_MAINTENANCE"
	// CodeHostHasRunningVMs: a flash needs a host without running VMs.
	CodeHostHasRunningVMs         = "HOST_HAS_RUNNING_VMS"
	CodeFirmwarePreconditions     = "FIRMWARE_PRECONDITIONS_UNKNOWN" // the precondition check itself failed
	CodeFirmwareNewLevelNotBooted = "FIRMWARE_NEW_LEVEL_NOT_BOOTED"
	CodeFirmwareRebootPending     = "FIRMWARE_REBOOT_PENDING" // the host has not rebooted yet
	CodeFirmwareInterrupted       = "FIRMWARE_INTERRUPTED"
	CodeFirmwareStateFile         = "FIRMWARE_STATE_FILE"
	CodeFirmwareFlashNotApplied   = "FIRMWARE_FLASH_NOT_APPLIED"

	// Images.
	CodeFirmwareImageInvalid      = "FIRMWARE_IMAGE_INVALID"
	CodeFirmwareImageTooLarge     = "FIRMWARE_IMAGE_TOO_LARGE"
	CodeFirmwareRPMNoImage        = "FIRMWARE_RPM_NO_IMAGE"
	CodeFirmwareImageWrongMachine = "FIRMWARE_IMAGE_WRONG_MACHINE"
	CodeFirmwareImageChanged      = "FIRMWARE_IMAGE_CHANGED"
	CodeFirmwareImageMissing      = "FIRMWARE_IMAGE_MISSING"

	// Host tools.
	CodeFirmwareToolNotFound      = "FIRMWARE_TOOL_NOT_FOUND"
	CodeFirmwareToolTimeout       = "FIRMWARE_TOOL_TIMEOUT"
	CodeFirmwareToolFailed        = "FIRMWARE_TOOL_FAILED"
	CodeFirmwareToolOutput        = "FIRMWARE_TOOL_OUTPUT_UNREADABLE"
	CodeFirmwareUpdateUnsupported = "FIRMWARE_UPDATE_UNSUPPORTED"
	CodeFirmwareToolUsage         = "FIRMWARE_TOOL_USAGE"
	CodeFirmwarePermissionDenied  = "FIRMWARE_PERMISSION_DENIED"
	CodeFirmwareInterfaceMissing  = "FIRMWARE_INTERFACE_MISSING"
	CodeFirmwareModuleLoad        = "FIRMWARE_MODULE_LOAD_FAILED"
	CodeFirmwarePlatformCall      = "FIRMWARE_PLATFORM_CALL_FAILED"
	CodeFirmwareAborted           = "FIRMWARE_ABORTED"
	CodeFirmwareActiveImage       = "FIRMWARE_ACTIVE_IMAGE"
	CodeFirmwareAccessKeyExpired  = "FIRMWARE_UPDATE_ACCESS_KEY_EXPIRED"
	CodeFirmwareKexec             = "FIRMWARE_KEXEC_STOP_FAILED"
	CodeFirmwareIPMI              = "FIRMWARE_IPMI_FAILED"
	CodeFirmwareVPDMissing        = "FIRMWARE_VPD_DATABASE_MISSING"
	CodeFirmwareValidationFailed  = "FIRMWARE_VALIDATION_FAILED"
	CodeFirmwareManageUnsupported = "FIRMWARE_COMMIT_REJECT_UNSUPPORTED"
)

// Storage: pools, volumes and their uploads (package storage on a host,
// the engine's storage), the image library, templates, VM snapshots,
// cloud-init seeds (package cloudinit).
const (
	// CodePoolPathNotAllowed: a pool's directory is not one the hosts allow
	// for disk images (host_paths.disk), nor below one.
	CodePoolPathNotAllowed = "POOL_PATH_NOT_ALLOWED"
	// CodePoolMissing: the pool's directory does not exist on the host.
	CodePoolMissing = "POOL_DIRECTORY_MISSING"
	// CodePoolMarkerMissing: the directory holds no pool marker: the
	// pool's storage is not there (an empty mount point).
	CodePoolMarkerMissing = "POOL_MARKER_MISSING"
	// CodePoolMarkerMismatch: the directory's marker names another pool.
	CodePoolMarkerMismatch = "POOL_MARKER_MISMATCH"
	// CodePoolNotWritable: the host cannot write in the pool's directory.
	CodePoolNotWritable = "POOL_NOT_WRITABLE"
	// CodePoolNotAvailable: an operation on a pool no reachable host has
	// (one of the reasons above says why).
	CodePoolNotAvailable = "POOL_NOT_AVAILABLE"
	// CodePoolFull: not enough free space in the pool.
	CodePoolFull = "POOL_FULL"
	// CodePoolNotFound: a VM names a pool that does not exist.
	CodePoolNotFound = "POOL_NOT_FOUND"
	// CodePoolNotInCluster: a VM uses a pool of another cluster.
	CodePoolNotInCluster = "POOL_NOT_IN_CLUSTER"

	// CodeVolumeNameInvalid: the name cannot name a volume (it would climb
	// out of the pool).
	CodeVolumeNameInvalid = "VOLUME_NAME_INVALID"
	// CodeVolumeNotFound: no such volume in the pool.
	CodeVolumeNotFound = "VOLUME_NOT_FOUND"
	// CodeVolumeExists: a volume (or an upload) has the name already.
	CodeVolumeExists = "VOLUME_EXISTS"
	// CodeVolumeNotReady: the volume's upload has not finished.
	CodeVolumeNotReady = "VOLUME_NOT_READY"
	// CodeVolumeInUse: a volume a VM, an image, a template or an overlay
	// uses is not deleted (nor changed while its VM runs), or a running
	// VM holds its lock.
	CodeVolumeInUse = "VOLUME_IN_USE"
	// CodeVolumeOutsidePool: the volume's file is a symbolic link, has
	// another name, or is not a regular file: it could lead outside its
	// pool.
	CodeVolumeOutsidePool = "VOLUME_OUTSIDE_POOL"
	// CodeVolumeBackingOutsidePool: a qcow2 image's backing file is outside
	// its pool (or a protocol, or without its format), or it keeps its data
	// in an external file.
	CodeVolumeBackingOutsidePool = "VOLUME_BACKING_OUTSIDE_POOL"
	// CodeVolumeFormatMismatch: the image is not in the format declared.
	CodeVolumeFormatMismatch = "VOLUME_FORMAT_MISMATCH"
	// CodeVolumeCorrupt: qemu-img finds the image damaged.
	CodeVolumeCorrupt = "VOLUME_IMAGE_CORRUPT"
	// CodeVolumeTruncated: the image's metadata points past the end of its
	// file: it was cut short.
	CodeVolumeTruncated = "VOLUME_IMAGE_TRUNCATED"
	// CodeVolumeSizeMismatch: the image's virtual size is not the one
	// declared.
	CodeVolumeSizeMismatch = "VOLUME_SIZE_MISMATCH"
	// CodeVolumeChecksumMismatch: the uploaded data's SHA-256 is not the
	// one declared.
	CodeVolumeChecksumMismatch = "VOLUME_CHECKSUM_MISMATCH"
	// CodeVolumeShrink: a volume never shrinks (the guest's data would be
	// cut).
	CodeVolumeShrink = "VOLUME_SHRINK_REFUSED"
	// CodeVolumeRequestInvalid: a storage request's value is wrong (a size,
	// a format).
	CodeVolumeRequestInvalid = "VOLUME_REQUEST_INVALID"
	// CodeStorageToolFailed: qemu-img failed for another reason.
	CodeStorageToolFailed = "STORAGE_TOOL_FAILED"

	// CodeUploadNotFound: no upload of this name is in progress.
	CodeUploadNotFound = "UPLOAD_NOT_FOUND"
	// CodeUploadOffset: the data does not start where the upload stands.
	CodeUploadOffset = "UPLOAD_OFFSET_MISMATCH"
	// CodeUploadBusy: another request writes this upload now.
	CodeUploadBusy = "UPLOAD_IN_PROGRESS"
	// CodeUploadTooLarge: more data than the size declared.
	CodeUploadTooLarge = "UPLOAD_TOO_LARGE"
	// CodeUploadExists: an upload of this name with other parameters is in
	// progress.
	CodeUploadExists = "UPLOAD_EXISTS"
	// CodeUploadInterrupted: the data stopped coming; the upload stays
	// where it got to.
	CodeUploadInterrupted = "UPLOAD_INTERRUPTED"

	// CodeImageArch: an image of another architecture than the VM's
	// cluster runs.
	CodeImageArch = "IMAGE_ARCHITECTURE_NOT_SUPPORTED_BY_CLUSTER"
	// CodeImageInUse: an image whose volume backs VMs' disks.
	CodeImageInUse = "IMAGE_IN_USE"
	// CodeTemplateDisk: a VM disk a template cannot copy (a writable host
	// file or device).
	CodeTemplateDisk = "TEMPLATE_DISK_NOT_A_VOLUME"
	// CodeTemplateInUse: a template whose volumes back VMs' disks.
	CodeTemplateInUse = "TEMPLATE_IN_USE"

	// CodeSnapshotExists, CodeSnapshotNotFound: a VM's (or a volume's)
	// snapshot.
	CodeSnapshotExists   = "SNAPSHOT_EXISTS"
	CodeSnapshotNotFound = "SNAPSHOT_NOT_FOUND"
	// CodeSnapshotNeedsQCOW2: a VM whose writable disks are not all qcow2
	// volumes has no snapshots.
	CodeSnapshotNeedsQCOW2 = "SNAPSHOT_NEEDS_QCOW2_VOLUMES"
	// CodeSnapshotMemory: a snapshot with memory is of a running VM.
	CodeSnapshotMemory = "SNAPSHOT_MEMORY_NEEDS_RUNNING_VM"
	// CodeSnapshotRevertNeedsDown: a disk-only snapshot is reverted with
	// the VM Down.
	CodeSnapshotRevertNeedsDown = "SNAPSHOT_REVERT_NEEDS_VM_DOWN"
	// CodeSnapshotUnsupported: the agent's libvirt connection takes no
	// snapshots.
	CodeSnapshotUnsupported = "SNAPSHOT_NOT_SUPPORTED"
	// CodeSnapshotFailed: QEMU or libvirt refused the snapshot operation.
	CodeSnapshotFailed = "SNAPSHOT_FAILED"

	// The inputs of a cloud-init seed.
	CodeCloudInitUserData      = "CLOUD_INIT_USER_DATA_INVALID"
	CodeCloudInitHostname      = "CLOUD_INIT_HOSTNAME_INVALID"
	CodeCloudInitSSHKey        = "CLOUD_INIT_SSH_KEY_INVALID"
	CodeCloudInitNetworkConfig = "CLOUD_INIT_NETWORK_CONFIG_INVALID"
	CodeCloudInitInstanceID    = "CLOUD_INIT_INSTANCE_ID_INVALID"
)

// Audit events of the engine (the "code" of an event, besides the error
// codes above that events carry too).
const (
	// CodeUserFailedRunVM: a VM could not be started (oVirt).
	CodeUserFailedRunVM = "USER_FAILED_RUN_VM"
	// CodeVMDown: a VM went down (oVirt).
	CodeVMDown = "VM_DOWN"
	// CodeVMDownError: a VM went down with an error (crashed) (oVirt).
	CodeVMDownError = "VM_DOWN_ERROR"
	// CodeVMSetToUnknownStatus: a VM's host stopped answering (oVirt).
	CodeVMSetToUnknownStatus = "VM_SET_TO_UNKNOWN_STATUS"
	// CodeVMStaleCopyDestroyed: a copy of a VM on another host than its
	// own was destroyed.
	CodeVMStaleCopyDestroyed = "VM_STALE_COPY_DESTROYED"
	// CodeHostHasUnmanagedVM: a host runs a VM the engine did not make.
	CodeHostHasUnmanagedVM = "HOST_HAS_UNMANAGED_VM"
	// CodeVMShutdownTimeout: a VM's guest did not power off within its
	// shutdown's time-out and its agent powered the VM off.
	CodeVMShutdownTimeout = "VM_POWERED_OFF_AFTER_SHUTDOWN_TIMEOUT"
	// CodeFirmwareHostNotBack: a host did not answer within the reboot
	// time-out of its firmware flash.
	CodeFirmwareHostNotBack = "FIRMWARE_HOST_NOT_BACK"
	// CodeVMMigrationStart, CodeVMMigrationDone, CodeVMMigrationFailed and
	// CodeVMMigrationCanceled: a live migration started, ended on its
	// destination, failed, was canceled (oVirt's VM_MIGRATION_START,
	// VM_MIGRATION_DONE, VM_MIGRATION_FAILED; the cancel is polyvirt's).
	CodeVMMigrationStart    = "VM_MIGRATION_START"
	CodeVMMigrationDone     = "VM_MIGRATION_DONE"
	CodeVMMigrationFailed   = "VM_MIGRATION_FAILED"
	CodeVMMigrationCanceled = "VM_MIGRATION_CANCELED"
	// CodeVMMigrationReconciled: after an interruption (an agent or the
	// engine restarted) the engine found where the VM runs.
	CodeVMMigrationReconciled = "VM_MIGRATION_RECONCILED"
	// CodeHostEvacuated: every VM left a host switching to Maintenance.
	CodeHostEvacuated = "HOST_EVACUATED"
	// CodeRolloutActive: the cluster has a firmware rollout that has not
	// ended.
	CodeRolloutActive = "ROLLOUT_ACTIVE"
	// CodeRolloutValidation: the image does not fit one or more of the
	// rollout's hosts (each named in the details); nothing was flashed.
	CodeRolloutValidation = "ROLLOUT_VALIDATION_FAILED"
	// CodeRolloutWrongState: the rollout cannot do that in its state.
	CodeRolloutWrongState = "ROLLOUT_WRONG_STATE"
	// CodeFirmwareLevelNotNew: a host came back from its flash on another
	// level than the image's.
	CodeFirmwareLevelNotNew = "FIRMWARE_LEVEL_NOT_NEW"
	// CodeFirmwareCPUTypeChanged: a host came back from its flash with
	// another CPU type in its cluster.
	CodeFirmwareCPUTypeChanged = "FIRMWARE_CPU_TYPE_CHANGED"
	// CodeFirmwareHealthCheck: a host on its new firmware failed a health
	// check (its agent, libvirt).
	CodeFirmwareHealthCheck = "FIRMWARE_HEALTH_CHECK_FAILED"
	// CodeRolloutAborted: the operator aborted the rollout.
	CodeRolloutAborted = "ROLLOUT_ABORTED"
	// CodeProbeGuestFailed: the probe guest of a host's health check
	// (the architecture's smallest guest, started and destroyed at once)
	// did not run there.
	CodeProbeGuestFailed = "PROBE_GUEST_FAILED"
)
