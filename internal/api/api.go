// Package api is the root of the contract layer: the error answer every
// polyvirt API gives (a stable code, a readable message, the field at
// fault). The documents of each API live in its sub-packages: agentapi (the
// host agent), engineapi (the engine), hostreport (the host capabilities
// report), enroll (the join protocol).
package api

// Error is the body of every error answer: a stable code and a readable
// message, plus the field path when the error is about one field.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// ErrorBody wraps one error or several (a VM definition with every
// violation at once).
type ErrorBody struct {
	Error  Error   `json:"error"`
	Errors []Error `json:"errors,omitempty"`
}
