package firmware

import (
	"fmt"
)

// ParseError is tool output or file content that cannot be read: the source
// ("lsmcode -A", "update_flash -v", "rpm"), the field and the reason.
type ParseError struct {
	// Source is the tool or format ("lsmcode -A", "rpm").
	Source string
	// Field is the field at fault ("temporary", "New T Image").
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error prints "source: field: reason".
func (e *ParseError) Error() string {
	return e.Source + ": " + e.Field + ": " + e.Reason
}

func parseErr(source, field, format string, args ...any) *ParseError {
	return &ParseError{Source: source, Field: field, Reason: fmt.Sprintf(format, args...)}
}
