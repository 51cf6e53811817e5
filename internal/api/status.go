package api

// The HTTP status of each code: what an answer carrying an error of that
// code is, in every polyvirt API (the engine's and the agent's), and what
// their OpenAPI documents declare. An error that has its own Status keeps
// it (an agent's refusal passed on, a body that did not arrive in time);
// the others take their code's. The rules (vmspec, the engine's services,
// the firmware workflow) return codes only: which status goes with which
// code is said here, once.

// Statuses by code. A code not listed is a rule's verdict on what was
// asked (422 Unprocessable Content): every rule of the VM definition, of
// the host path policy, of a host's capabilities.
var statuses = map[string]int{
	// Any API.
	CodeBadRequest:       400,
	CodeBodyTooLarge:     413,
	CodeMethodNotAllowed: 405,
	CodeNotFound:         404,
	CodeInternal:         500,
	CodeUnauthenticated:  401,
	CodePermissionDenied: 403,
	CodeAlreadyExists:    409,
	CodeVersionConflict:  409,
	CodeInUse:            409,
	CodeInvalidArgument:  400,
	CodeExpired:          410,
	CodeDuplicateKey:     400,
	CodeContinueInvalid:  400,
	CodeFormatChars:      400,
	CodeTooManyRequests:  429,
	CodeOverloaded:       503,

	// The engine's database.
	CodeDatabaseUnavailable: 503,
	CodeDatabaseFailure:     503,

	// Enrollment.
	CodeJoinTokenMalformed:   400,
	CodeJoinTokenInvalid:     401,
	CodeJoinTokenWrongEngine: 401,
	CodeJoinTokenExpired:     401,
	CodeJoinTokenUsed:        409,
	CodeCSRInvalid:           400,

	// Hosts and clusters.
	CodeHostStatusIllegal:       409,
	CodeHostClusterArch:         409,
	CodeHostAddressInUse:        409,
	CodeHostHasVMs:              409,
	CodeClusterArchInUse:        409,
	CodeClusterCPUIllegal:       409,
	CodeAgentUnreachable:        502,
	CodeAgentError:              502,
	CodeHostCapabilitiesInvalid: 502,

	// VMs in the engine (their definition's violations: 422).
	CodeVMStatusIllegal:   409,
	CodePinnedHostCluster: 409,
	CodeVMUUIDInUse:       409,
	CodeVMClusterArch:     409,
	CodeClusterNoArch:     409,

	// The web UI (a display open to the network is a definition's
	// violation: 422).
	CodeSignInFailed:         401,
	CodeSignInRateLimited:    429,
	CodeSessionExpired:       401,
	CodeCSRFTokenInvalid:     403,
	CodePasswordInvalid:      400,
	CodeConsoleTicketInvalid: 401,
	CodeVNCNotLocal:          409,

	// Scheduling.
	CodeSchedulingFilteredOut: 409,
	CodeSchedulingNoHosts:     409,

	// VMs on an agent, and libvirt.
	CodeVMNotFound:           404,
	CodeVMExists:             409,
	CodeVMRunning:            409,
	CodeVMNotRunning:         409,
	CodeVMNotPaused:          409,
	CodeUnknownAction:        404,
	CodeVMHasNoDisplay:       409,
	CodeVMHasNoConsole:       409,
	CodeHostLockedByFirmware: 409,
	CodeLibvirtUnavailable:   503,
	CodeLibvirtError:         502,
	CodeLibvirtInvalidOp:     409,
	CodeLibvirtConfig:        422,
	CodeVMNotResponding:      409,
	CodeLibvirtTimeout:       504,
	CodeRequestCanceled:      503,
	CodeVMBusy:               409,

	// Live migration: refusals are conflicts (a policy or a VM that does
	// not migrate, the limits, no destination); a migration that failed in
	// libvirt is a bad gateway.
	CodeMigrationNotSupported:       409,
	CodeMigrationPolicyNone:         409,
	CodeMigrationPolicyUnknown:      422,
	CodeMigrationPostCopyImpossible: 409,
	CodeMigrationInProgress:         409,
	CodeMigrationNotInProgress:      409,
	CodeMigrationVMNotUp:            409,
	CodeMigrationOutgoingLimit:      409,
	CodeMigrationNoDestination:      409,
	CodeMigrationBandwidthInvalid:   400,
	CodeMigrationFailed:             502,
	CodeMigrationCanceled:           409,
	CodeMigrationNotConverging:      502,
	CodeMigrationNotAnnounced:       409,
	CodeMigrationDestinationExists:  409,
	CodeMigrationDiskExists:         409,
	CodeMigrationNoTLS:              409,
	CodeMigrationOutcomeUnknown:     503,
	CodeMaintenanceVMsCannotMigrate: 409,
	CodeMaintenanceMigrationFailed:  502,

	// The VM definition: a document that cannot be read is a bad request,
	// one too large is refused as such; its violations are 422.
	CodeDefinitionSyntax:       400,
	CodeDefinitionUnknownField: 400,
	CodeDefinitionWrongType:    400,
	CodeDefinitionEmpty:        400,
	CodeDefinitionDuplicateKey: 400,
	CodeDefinitionTooLarge:     413,
	// A definition's host-path disk from a user who is no administrator.
	CodeDiskHostPathAdminOnly: 403,

	// POWER firmware: the workflow's refusals are conflicts, a bad image
	// is unprocessable, a host tool that fails is a bad gateway (502, the
	// default of this group below).
	CodeNotSupportedOnArch:        422,
	CodeFirmwareOperationActive:   409,
	CodeRolloutActive:             409,
	CodeRolloutValidation:         422,
	CodeRolloutWrongState:         409,
	CodeFirmwareBusy:              409,
	CodeFirmwareWrongState:        409,
	CodeFirmwareNoOperation:       409,
	CodeHostNotInMaintenance:      409,
	CodeHostHasRunningVMs:         409,
	CodeFirmwarePreconditions:     409,
	CodeFirmwareNewLevelNotBooted: 409,
	CodeFirmwareRebootPending:     409,
	CodeFirmwareStateFile:         500,
	CodeFirmwareImageTooLarge:     413,
	CodeFirmwareImageInvalid:      422,
	CodeFirmwareRPMNoImage:        422,
	CodeFirmwareImageWrongMachine: 422,
	CodeFirmwareImageChanged:      422,
	CodeFirmwareImageMissing:      422,
	CodeFirmwareInterrupted:       502,
	CodeFirmwareFlashNotApplied:   502,
	CodeFirmwareToolNotFound:      502,
	CodeFirmwareToolTimeout:       502,
	CodeFirmwareToolFailed:        502,
	CodeFirmwareToolOutput:        502,
	CodeFirmwareUpdateUnsupported: 502,
	CodeFirmwareToolUsage:         502,
	CodeFirmwarePermissionDenied:  502,
	CodeFirmwareInterfaceMissing:  502,
	CodeFirmwareModuleLoad:        502,
	CodeFirmwarePlatformCall:      502,
	CodeFirmwareAborted:           502,
	CodeFirmwareActiveImage:       502,
	CodeFirmwareAccessKeyExpired:  502,
	CodeFirmwareKexec:             502,
	CodeFirmwareIPMI:              502,
	CodeFirmwareVPDMissing:        502,
	CodeFirmwareValidationFailed:  502,
	CodeFirmwareManageUnsupported: 502,

	// Storage: a refused image, pool path, volume name or cloud-init input
	// is a rule's verdict (422); what exists already, is used, busy or not
	// in the state asked for is a conflict; a storage tool that fails is a
	// bad gateway.
	CodePoolNotOnHost:           409,
	CodePoolNotAvailable:        409,
	CodeVolumeNotFound:          404,
	CodeVolumeExists:            409,
	CodeVolumeNotReady:          409,
	CodeVolumeInUse:             409,
	CodeStorageToolFailed:       502,
	CodeUploadNotFound:          404,
	CodeUploadOffset:            409,
	CodeUploadBusy:              409,
	CodeUploadExists:            409,
	CodeUploadInterrupted:       400,
	CodeImageInUse:              409,
	CodeTemplateInUse:           409,
	CodeSnapshotExists:          409,
	CodeSnapshotNotFound:        404,
	CodeSnapshotNeedsQCOW2:      409,
	CodeSnapshotMemory:          409,
	CodeSnapshotRevertNeedsDown: 409,
	CodeSnapshotUnsupported:     501,
	CodeSnapshotFailed:          409,
}

// HTTPStatus is the HTTP status of an answer carrying an error of the
// code: 422 for a code of a rule's verdict (the VM definition's, the host
// path policy's), the status of its kind for the others.
func HTTPStatus(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return 422
}

// Statuses lists the codes that have a status of their own, for the
// OpenAPI documents and their tests.
func Statuses() map[string]int {
	out := make(map[string]int, len(statuses))
	for c, s := range statuses {
		out[c] = s
	}
	return out
}

// StatusOf is the HTTP status of an answer carrying e: its own Status when
// it has one, else its code's (HTTPStatus). An error read from another
// process's 5xx answer (an agent's, passed on by the engine) is a bad
// gateway (502): the process that answers did not fail.
func StatusOf(e *Error) int {
	switch {
	case e.Remote && e.Status >= 500:
		return 502
	case e.Status != 0:
		return e.Status
	}
	return HTTPStatus(e.Code)
}

// DefinitionError is the one answer to a refused VM definition (the
// engine's and the agent's): every violation in Details; the violation
// itself when there is only one (its code, field and message), else
// VM_DEFINITION_INVALID with every violation in the message. Its status:
// 400 when the document cannot be read, 413 when it is too large, 403 when
// it asks for what only an administrator may (a host-path disk), 422 for
// the rules it breaks.
func DefinitionError(errs Errors) *Error {
	status := 422
	for _, v := range errs {
		switch v.Code {
		case CodeDefinitionSyntax, CodeDefinitionUnknownField, CodeDefinitionWrongType, CodeDefinitionEmpty, CodeDefinitionDuplicateKey:
			status = 400
		case CodeDefinitionTooLarge:
			status = 413
		case CodeDiskHostPathAdminOnly:
			if status == 422 {
				status = 403
			}
		}
	}
	e := &Error{Status: status, Code: CodeVMDefinitionInvalid, Message: errs.Error()}
	if len(errs) == 1 {
		e.Code, e.Field, e.Message = errs[0].Code, errs[0].Field, errs[0].Message
	}
	e.Details = append(e.Details, errs...)
	return e
}
