package store

import (
	"errors"
	"fmt"
	"strings"
)

// The kinds of store errors. Every error a Store returns for a known reason
// wraps one of them (test with errors.Is), inside an *Error that names the
// object and the field.
var (
	// ErrNotFound: no such object (the API answers 404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a duplicate name or key, or a stale version: someone
	// else changed the object since it was read (409; read it again).
	ErrConflict = errors.New("conflict")
	// ErrInUse: the object cannot be deleted or changed that way while other
	// objects use it (a cluster with hosts) (409).
	ErrInUse = errors.New("in use")
	// ErrInvalid: a value the store refuses (a bad name, an unknown status,
	// malformed JSON) (400).
	ErrInvalid = errors.New("invalid")
	// ErrExpired: a one-time token whose time has passed.
	ErrExpired = errors.New("expired")
	// ErrUnavailable: the database could not be reached or asked the
	// client to try again (connection lost, server restarting, lock busy,
	// serialization failure). Nothing of the failed call was written,
	// except that a commit whose answer was lost may have been applied:
	// retrying is safe for calls that carry their own IDs and versions.
	ErrUnavailable = errors.New("database unavailable, retry")
	// ErrStorage: the database's storage failed and needs an operator: disk
	// full, an I/O error, the SQLite file deleted, replaced or read-only.
	ErrStorage = errors.New("database storage failure")
)

// Error is the error a Store returns: the kind (one of the Err* values),
// the operation, the object and field concerned, and the driver's error.
type Error struct {
	// Kind is one of ErrNotFound, ErrConflict, ErrInUse, ErrInvalid,
	// ErrExpired, ErrUnavailable, ErrStorage.
	Kind error
	// Op is the store operation ("create cluster").
	Op string
	// Object names the object ("cluster \"power\"", "host 42").
	Object string
	// Field is the field concerned ("name", "version"), "" when none.
	Field string
	// Detail says what is wrong in words.
	Detail string
	// Err is the underlying driver error, if any.
	Err error
}

// Error renders "store: OP OBJECT: FIELD: DETAIL (KIND)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("store: ")
	b.WriteString(e.Op)
	if e.Object != "" {
		b.WriteString(" ")
		b.WriteString(e.Object)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Kind != nil {
		b.WriteString(" (")
		b.WriteString(e.Kind.Error())
		b.WriteString(")")
	}
	if e.Err != nil && e.Detail == "" {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see both the kind and the driver's
// error.
func (e *Error) Unwrap() []error {
	out := make([]error, 0, 2)
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// IsRetryable reports whether err is worth retrying as it is: the database
// was unavailable (ErrUnavailable).
func IsRetryable(err error) bool { return errors.Is(err, ErrUnavailable) }

func newErr(kind error, op, object, field, detail string) *Error {
	return &Error{Kind: kind, Op: op, Object: object, Field: field, Detail: detail}
}

func invalid(op, object, field, format string, args ...any) *Error {
	return newErr(ErrInvalid, op, object, field, fmt.Sprintf(format, args...))
}

func notFound(op, object string) *Error {
	return newErr(ErrNotFound, op, object, "", "does not exist")
}

func staleVersion(op, object string, had int64) *Error {
	return newErr(ErrConflict, op, object, "version",
		fmt.Sprintf("version %d is stale: it was changed meanwhile; read it again", had))
}
