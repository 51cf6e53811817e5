// Command polyvirt manages KVM virtual machines on hosts of different CPU
// architectures (IBM POWER beside x86_64): the host agent, the engine, the
// all-in-one lab, and the command-line tools (caps, domxml, vm, ...).
//
// The whole command tree is built in one place, newRoot (tree.go); each
// command's constructor lives in the file of its command. The commands are
// thin: they parse flags, call the internal packages and print.
package main

import (
	"errors"
	"fmt"
	"os"
)

// exitError carries a process exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withStatus wraps err so that polyvirt exits with code.
func withStatus(code int, err error) error { return &exitError{code: code, err: err} }

func main() {
	err := newRoot().Execute()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if err.Error() != "" {
		fmt.Fprintln(os.Stderr, "polyvirt:", err)
	}
	os.Exit(code)
}
