package engine

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// Error codes of the engine API (the "code" of api.ErrorBody). The codes
// of the reference engine are used where one exists.
const (
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodePermissionDenied = "PERMISSION_DENIED"
	CodeNotFound         = "NOT_FOUND"
	CodeAlreadyExists    = "ALREADY_EXISTS"
	CodeVersionConflict  = "VERSION_CONFLICT"
	CodeInUse            = "IN_USE"
	CodeInvalid          = "INVALID_ARGUMENT"
	CodeBadRequest       = "BAD_REQUEST"
	CodeBodyTooLarge     = "REQUEST_BODY_TOO_LARGE"
	CodeDBUnavailable    = "DATABASE_UNAVAILABLE"
	CodeDBFailure        = "DATABASE_FAILURE"
	CodeInternal         = "INTERNAL_ERROR"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"

	// CodeHostStatusIllegal: the action is not allowed in the host's
	// status (oVirt's ACTION_TYPE_FAILED_VDS_STATUS_ILLEGAL).
	CodeHostStatusIllegal = "ACTION_TYPE_FAILED_VDS_STATUS_ILLEGAL"
	// CodeHostClusterArch: a host cannot move to a cluster of another
	// architecture.
	CodeHostClusterArch = "ACTION_TYPE_FAILED_VDS_CLUSTER_DIFFERENT_ARCHITECTURES"
	// CodeHostAddressInUse: another host has this address.
	CodeHostAddressInUse = "ACTION_TYPE_FAILED_VDS_WITH_SAME_HOST_EXIST"
	// CodeClusterArchInUse: the architecture cannot change while the
	// cluster has hosts or VMs.
	CodeClusterArchInUse = "CLUSTER_CANNOT_CHANGE_ARCHITECTURE_IN_USE"
	// CodeClusterCPUIllegal: an Up host of the cluster does not support
	// the requested CPU type.
	CodeClusterCPUIllegal = "CLUSTER_CANNOT_UPDATE_CPU_ILLEGAL"
	// CodeHostHasVMs: VMs run on the host.
	CodeHostHasVMs = "ACTION_TYPE_FAILED_VDS_HAS_RUNNING_VMS"
)

// The codes of request bodies that say other than they seem.
const (
	// CodeDuplicateKey: a request body gives a key twice in one object
	// (or, at its top, two keys that differ only in case).
	CodeDuplicateKey = "DUPLICATE_KEY"
	// CodeFormatChars: a string of a request body holds a Unicode format
	// character (bidi overrides and isolates, zero-width characters).
	CodeFormatChars = vmspec.CodeFormatChars
)

// apiError is an error answer: status, code, message, field, and the
// details when there are several (every violation of a VM definition, the
// reason of every host a VM cannot start on).
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
	Details []api.Error
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// body is the JSON answer.
func (e *apiError) body() api.ErrorBody {
	return api.ErrorBody{Error: api.Error{Code: e.Code, Message: e.Message, Field: e.Field}, Errors: e.Details}
}

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidField(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// asAPIError maps any error to an answer: ours as they are, the store's by
// their kind, anything else as an internal error.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var se *store.Error
	if errors.As(err, &se) {
		msg := storeMessage(se)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return &apiError{Status: http.StatusNotFound, Code: CodeNotFound, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrConflict) && se.Field == "version":
			return &apiError{Status: http.StatusConflict, Code: CodeVersionConflict, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrConflict):
			return &apiError{Status: http.StatusConflict, Code: CodeAlreadyExists, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrInUse) && se.Field == "arch":
			return &apiError{Status: http.StatusConflict, Code: CodeClusterArchInUse, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrInUse):
			return &apiError{Status: http.StatusConflict, Code: CodeInUse, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrInvalid):
			return &apiError{Status: http.StatusBadRequest, Code: CodeInvalid, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrExpired):
			return &apiError{Status: http.StatusGone, Code: "EXPIRED", Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrUnavailable):
			return &apiError{Status: http.StatusServiceUnavailable, Code: CodeDBUnavailable, Message: msg}
		case errors.Is(err, store.ErrStorage):
			return &apiError{Status: http.StatusServiceUnavailable, Code: CodeDBFailure, Message: msg}
		}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
}

// storeMessage renders a store error for people: the object, the field and
// what is wrong, without the "store:" prefix.
func storeMessage(e *store.Error) string {
	msg := strings.TrimPrefix(e.Error(), "store: ")
	return msg
}
