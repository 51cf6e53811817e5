package agent

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/firmware"
	"polyvirt/internal/httpx"
	"polyvirt/internal/libvirtconn"
)

// asAPIError maps any error to an API error with its HTTP status: ours as
// they are, several violations as one refused definition
// (api.DefinitionError), libvirt's by their error numbers (agentError).
func asAPIError(err error) *api.Error {
	e := httpx.ErrorOf(err, agentError)
	if e.Status != 0 {
		return e
	}
	// A rule's verdict (the firmware workflow's): the status of its code,
	// the field named in the message — once ("update_flash exited 8 …",
	// not "update_flash -v: update_flash exited 8 …").
	msg := e.Message
	if !strings.Contains(msg, e.Field) {
		msg = firmware.FieldMessage(e.Field, msg)
	}
	return &api.Error{Status: api.StatusOf(e), Code: e.Code, Message: msg, Details: e.Details, Err: e.Err}
}

// agentError maps the agent's own failures: libvirt down or too slow, a
// request cancelled, and libvirt's errors by their numbers (nil for
// another error).
func agentError(err error) *api.Error {
	if errors.Is(err, errLibvirtDown) || errors.Is(err, libvirtconn.ErrUnavailable) {
		return api.NewError(http.StatusServiceUnavailable, api.CodeLibvirtUnavailable, "%v", err)
	}
	if errors.Is(err, libvirtconn.ErrTimeout) {
		return api.NewError(http.StatusGatewayTimeout, api.CodeLibvirtTimeout, "%v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return api.NewError(http.StatusGatewayTimeout, api.CodeLibvirtTimeout, "no answer within the request's time: %v", err)
	}
	if errors.Is(err, context.Canceled) {
		return api.NewError(http.StatusServiceUnavailable, api.CodeRequestCanceled, "the request was cancelled before its answer: %v", err)
	}
	if errors.Is(err, libvirtconn.ErrNoDomain) {
		return api.NewError(http.StatusNotFound, api.CodeVMNotFound, "%v", err)
	}
	switch libvirtconn.ErrorCode(err) {
	case libvirtconn.CodeNoDomain:
		return api.NewError(http.StatusNotFound, api.CodeVMNotFound, "%v", err)
	case libvirtconn.CodeOperationInvalid:
		return api.NewError(http.StatusConflict, api.CodeLibvirtInvalidOp, "%v", err)
	case libvirtconn.CodeDomainExists:
		return api.NewError(http.StatusConflict, api.CodeVMExists, "%v", err)
	case libvirtconn.CodeConfigUnsupported:
		return api.NewError(http.StatusUnprocessableEntity, api.CodeLibvirtConfig, "%v", err)
	case libvirtconn.CodeOperationTimeout:
		return api.NewError(http.StatusGatewayTimeout, api.CodeLibvirtTimeout, "%v", err)
	case 0:
		return nil
	}
	return api.NewError(http.StatusBadGateway, api.CodeLibvirtError, "%v", err)
}
