// Command polyvirt manages KVM virtual machines on hosts of different CPU
// architectures (IBM POWER beside x86_64): the host agent, the engine, the
// all-in-one lab, and the command-line tools (caps, domxml, vm, ...).
//
// Each subcommand lives in its own file and registers itself with
// register() from an init function; the commands are thin: they parse flags,
// call the internal packages and print.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
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

var commands []func() *cobra.Command

// register adds a subcommand constructor; called from init functions.
func register(f func() *cobra.Command) { commands = append(commands, f) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "polyvirt",
		Short:         "KVM virtual machines on POWER and x86_64 hosts, managed alike",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, f := range commands {
		root.AddCommand(f())
	}
	return root
}

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
