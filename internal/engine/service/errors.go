package service

import (
	"errors"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/store"
)

func invalidField(field, format string, args ...any) *api.Error {
	return api.FieldError(api.CodeInvalidArgument, field, format, args...)
}

// coded is the error a service method returns: nil, or an *api.Error — its
// own, several violations as one refused definition, the store's by their
// kind, an agent's refusal, or anything else as an internal error.
func coded(err error) error {
	if err == nil {
		return nil
	}
	return asAPIError(err)
}

// asAPIError is coded's *api.Error.
func asAPIError(err error) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	var ve api.Errors
	if errors.As(err, &ve) {
		return api.DefinitionError(ve)
	}
	if ag := asAgentError(err); ag != nil {
		return ag.apiError()
	}
	if se := storeError(err); se != nil {
		return se
	}
	return &api.Error{Code: api.CodeInternal, Message: err.Error(), Err: err}
}

// storeError is the answer to a store error (nil for another error).
func storeError(err error) *api.Error {
	var se *store.Error
	if !errors.As(err, &se) {
		return nil
	}
	msg := storeMessage(se)
	code := ""
	switch {
	case errors.Is(err, store.ErrNotFound):
		code = api.CodeNotFound
	case errors.Is(err, store.ErrConflict) && se.Field == "version":
		code = api.CodeVersionConflict
	case errors.Is(err, store.ErrConflict):
		code = api.CodeAlreadyExists
	case errors.Is(err, store.ErrInUse) && se.Field == "arch":
		code = api.CodeClusterArchInUse
	case errors.Is(err, store.ErrInUse):
		code = api.CodeInUse
	case errors.Is(err, store.ErrInvalid):
		code = api.CodeInvalidArgument
	case errors.Is(err, store.ErrExpired):
		code = api.CodeExpired
	case errors.Is(err, store.ErrUnavailable):
		return &api.Error{Code: api.CodeDatabaseUnavailable, Message: msg, Err: err}
	case errors.Is(err, store.ErrStorage):
		return &api.Error{Code: api.CodeDatabaseFailure, Message: msg, Err: err}
	default:
		return nil
	}
	return &api.Error{Code: code, Message: msg, Field: se.Field, Err: err}
}

// storeMessage renders a store error for people: the object, the field and
// what is wrong, without the "store:" prefix.
func storeMessage(e *store.Error) string {
	return strings.TrimPrefix(e.Error(), "store: ")
}

// isStale tells whether err is an optimistic-lock conflict (someone else
// wrote the object since it was read): worth reading again and retrying.
func isStale(err error) bool {
	var se *store.Error
	return errors.As(err, &se) && errors.Is(err, store.ErrConflict) && se.Field == "version"
}

// fail is an error of a code about the whole request (its HTTP status is
// its code's).
func fail(code, format string, args ...any) *api.Error {
	return api.FieldError(code, "", format, args...)
}

// Coded is the *api.Error of any error, as the services answer it: for a
// caller that meets an error outside them (the engine's console bridge).
func Coded(err error) *api.Error { return asAPIError(err) }
