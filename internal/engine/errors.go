package engine

import (
	"errors"
	"net/http"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/httpx"
	"polyvirt/internal/store"
)

func invalidField(field, format string, args ...any) *api.Error {
	return api.FieldError(api.CodeInvalidArgument, field, format, args...)
}

// asAPIError maps any error to an answer: ours as they are, the store's by
// their kind, anything else as an internal error.
func asAPIError(err error) *api.Error { return httpx.ErrorOf(err, storeError) }

// storeError is the answer to a store error (nil for another error).
func storeError(err error) *api.Error {
	var se *store.Error
	if errors.As(err, &se) {
		msg := storeMessage(se)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrConflict) && se.Field == "version":
			return &api.Error{Status: http.StatusConflict, Code: api.CodeVersionConflict, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrConflict):
			return &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyExists, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrInUse) && se.Field == "arch":
			return &api.Error{Status: http.StatusConflict, Code: api.CodeClusterArchInUse, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrInUse):
			return &api.Error{Status: http.StatusConflict, Code: api.CodeInUse, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrInvalid):
			return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidArgument, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrExpired):
			return &api.Error{Status: http.StatusGone, Code: api.CodeExpired, Message: msg, Field: se.Field}
		case errors.Is(err, store.ErrUnavailable):
			return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeDatabaseUnavailable, Message: msg}
		case errors.Is(err, store.ErrStorage):
			return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeDatabaseFailure, Message: msg}
		}
	}
	return nil
}

// storeMessage renders a store error for people: the object, the field and
// what is wrong, without the "store:" prefix.
func storeMessage(e *store.Error) string {
	msg := strings.TrimPrefix(e.Error(), "store: ")
	return msg
}
