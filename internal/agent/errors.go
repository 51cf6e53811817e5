package agent

import (
	"context"
	"errors"
	"net/http"

	"polyvirt/internal/api"
	"polyvirt/internal/libvirtconn"
)

// asAPIError maps any error to an API error: ours as they are, a
// status-less one (a rule's) with the status of its code, an invalid
// definition with its violations, libvirt's by their error numbers.
func asAPIError(err error) *api.Error {
	var e *api.Error
	if errors.As(err, &e) {
		if e.Status != 0 {
			return e
		}
		return firmwareError(e)
	}
	var ve api.Errors
	if errors.As(err, &ve) {
		status := http.StatusUnprocessableEntity
		for _, v := range ve {
			switch v.Code {
			case api.CodeDefinitionSyntax, api.CodeDefinitionUnknownField, api.CodeDefinitionWrongType, api.CodeDefinitionEmpty, api.CodeDefinitionDuplicateKey:
				status = http.StatusBadRequest
			case api.CodeDefinitionTooLarge:
				status = http.StatusRequestEntityTooLarge
			}
		}
		code := api.CodeVMDefinitionInvalid
		if len(ve) == 1 {
			code = ve[0].Code
		}
		return &api.Error{Status: status, Code: code, Message: ve.Error(), Details: ve}
	}
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
		return api.NewError(http.StatusInternalServerError, api.CodeInternal, "%v", err)
	}
	return api.NewError(http.StatusBadGateway, api.CodeLibvirtError, "%v", err)
}
