package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is one coded error. As JSON it is the body of an error answer's
// "error" and of each entry of its "errors": a stable code, a readable
// message, and the path of the field at fault when there is one. As a Go
// error it is what the services, the rules (vmspec, firmware) and the
// engine's client return. Status, Details and Err travel inside a process
// only.
type Error struct {
	// Code is the stable code (codes.go).
	Code string `json:"code"`
	// Message says what is wrong and what to do instead.
	Message string `json:"message"`
	// Field is the path of the field at fault ("disks[2].bus"), "" for
	// the whole request.
	Field string `json:"field,omitempty"`

	// Status is the HTTP status of an answer carrying this error; 0 leaves
	// it to the server that answers (500 unless it maps the code).
	Status int `json:"-"`
	// Details are the errors of an answer that has several: every
	// violation of a VM definition, every host's reason not to run a VM.
	Details Errors `json:"-"`
	// Err is the cause, if any.
	Err error `json:"-"`
	// Remote marks an error read from another process's answer
	// (FromAnswer): it prints as a refusal is shown to whoever asked.
	Remote bool `json:"-"`
}

// NewError is an error with an HTTP status, a code and a message.
func NewError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError is an error about one field, with no HTTP status: a rule's
// verdict, which the server that answers with it gives a status.
func FieldError(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Error prints "CODE: field: message" (a rule's verdict, as `polyvirt vm
// validate` lists them), or for a Remote error "CODE (field): message" (a
// refusal as the CLI shows it); "CODE: message" when no field is at fault.
func (e *Error) Error() string {
	switch {
	case e.Field == "":
		return e.Code + ": " + e.Message
	case e.Remote:
		return e.Code + " (" + e.Field + "): " + e.Message
	}
	return e.Code + ": " + e.Field + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches a target *Error that has a code only: errors.Is(err,
// &Error{Code: CodeFirmwareBusy}) asks for the code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Field == "" && t.Message == ""
}

// Body is the JSON answer of the error: the error itself, and its details.
func (e *Error) Body() ErrorBody {
	return ErrorBody{Error: Error{Code: e.Code, Message: e.Message, Field: e.Field}, Errors: e.Details}
}

// CodeOf is the code of the *Error in err's chain, "" when there is none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrorBody is the JSON body of every error answer: one error, and the
// details when there are several (a VM definition with every violation at
// once, every host's reason not to run a VM).
type ErrorBody struct {
	Error  Error  `json:"error"`
	Errors Errors `json:"errors,omitempty"`
}

// FromAnswer reads an error answer of HTTP status status: the *Error of
// its body, or, when the body is not an ErrorBody (a proxy's page), an
// HTTP_<status> code with the body's text as the message.
func FromAnswer(status int, body []byte) *Error {
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		e := eb.Error
		e.Status, e.Details, e.Remote = status, eb.Errors, true
		return &e
	}
	return &Error{Status: status, Code: "HTTP_" + strconv.Itoa(status), Message: strings.TrimSpace(string(body)), Remote: true}
}

// Errors is several errors at once (every violation found in one VM
// definition); it is an error itself.
type Errors []*Error

// Error prints one error per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Codes lists the codes in order, for tests and scripts.
func (es Errors) Codes() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Code
	}
	return out
}

// Has reports whether some error has the code.
func (es Errors) Has(code string) bool {
	for _, e := range es {
		if e.Code == code {
			return true
		}
	}
	return false
}

// Add appends an error about a field (FieldError).
func (es *Errors) Add(code, field, format string, args ...any) {
	*es = append(*es, FieldError(code, field, format, args...))
}
