package agent

import (
	"errors"
	"fmt"
	"net/http"

	"polyvirt/internal/api"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/vmspec"
)

// Error codes of the agent API (besides the VM definition's own codes).
const (
	CodeVMNotFound       = "VM_NOT_FOUND"
	CodeVMExists         = "VM_EXISTS"
	CodeVMRunning        = "VM_IS_RUNNING"
	CodeVMNotRunning     = "VM_NOT_RUNNING"
	CodeVMNotPaused      = "VM_NOT_PAUSED"
	CodeUnknownAction    = "UNKNOWN_ACTION"
	CodeBadRequest       = "BAD_REQUEST"
	CodeBodyTooLarge     = "REQUEST_BODY_TOO_LARGE"
	CodeInvalidDef       = "VM_DEFINITION_INVALID"
	CodeLibvirtDown      = "LIBVIRT_UNAVAILABLE"
	CodeLibvirtError     = "LIBVIRT_ERROR"
	CodeLibvirtInvalidOp = "LIBVIRT_OPERATION_INVALID"
	CodeLibvirtConfig    = "LIBVIRT_CONFIGURATION_UNSUPPORTED"
	CodeNoDisplay        = "VM_HAS_NO_DISPLAY"
	CodeNoConsole        = "VM_HAS_NO_CONSOLE"
	CodeInternal         = "INTERNAL_ERROR"
	CodeNotFound         = "NOT_FOUND"
	CodeFirmwareLocked   = "HOST_LOCKED_BY_FIRMWARE_UPDATE"
)

// Error is an API error: an HTTP status, a stable code, a message, and for
// an invalid definition every violation.
type Error struct {
	Status     int
	Code       string
	Message    string
	Violations vmspec.Errors
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func apiErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Body is the JSON answer of the error.
func (e *Error) Body() api.ErrorBody {
	b := api.ErrorBody{Error: api.Error{Code: e.Code, Message: e.Message}}
	for _, v := range e.Violations {
		b.Errors = append(b.Errors, api.Error{Code: v.Code, Message: v.Message, Field: v.Field})
	}
	return b
}

// asAPIError maps any error to an API error: ours as they are, an invalid
// definition with its violations, libvirt's by their error numbers.
func asAPIError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if fe := firmwareError(err); fe != nil {
		return fe
	}
	var ve vmspec.Errors
	if errors.As(err, &ve) {
		status := http.StatusUnprocessableEntity
		for _, v := range ve {
			switch v.Code {
			case vmspec.CodeSyntax, vmspec.CodeUnknownField, vmspec.CodeWrongType, vmspec.CodeEmpty, vmspec.CodeDuplicateKey:
				status = http.StatusBadRequest
			case vmspec.CodeTooLarge:
				status = http.StatusRequestEntityTooLarge
			}
		}
		code := CodeInvalidDef
		if len(ve) == 1 {
			code = ve[0].Code
		}
		return &Error{Status: status, Code: code, Message: ve.Error(), Violations: ve}
	}
	if errors.Is(err, errLibvirtDown) {
		return apiErr(http.StatusServiceUnavailable, CodeLibvirtDown, "%v", err)
	}
	if errors.Is(err, libvirtconn.ErrNoDomain) {
		return apiErr(http.StatusNotFound, CodeVMNotFound, "%v", err)
	}
	switch libvirtconn.ErrorCode(err) {
	case libvirtconn.CodeNoDomain:
		return apiErr(http.StatusNotFound, CodeVMNotFound, "%v", err)
	case libvirtconn.CodeOperationInvalid:
		return apiErr(http.StatusConflict, CodeLibvirtInvalidOp, "%v", err)
	case libvirtconn.CodeDomainExists:
		return apiErr(http.StatusConflict, CodeVMExists, "%v", err)
	case libvirtconn.CodeConfigUnsupported:
		return apiErr(http.StatusUnprocessableEntity, CodeLibvirtConfig, "%v", err)
	case 0:
		return apiErr(http.StatusInternalServerError, CodeInternal, "%v", err)
	}
	return apiErr(http.StatusBadGateway, CodeLibvirtError, "%v", err)
}
