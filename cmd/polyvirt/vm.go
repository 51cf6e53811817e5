package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/vmspec"
)

func init() {
	register(func() *cobra.Command {
		vm := &cobra.Command{
			Use:   "vm",
			Short: "Work with VM definitions (YAML or JSON, see docs/vm-definition.md)",
		}
		vm.AddCommand(newVMValidateCommand())
		return vm
	})
}

// definitionFlags are the flags every command reading a VM definition has.
type definitionFlags struct {
	file     string
	arch     string
	hostCaps string
}

func (f *definitionFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "the VM definition (YAML or JSON; - reads standard input)")
	cmd.Flags().StringVar(&f.arch, "arch", "", "the guest architecture when the definition names none")
	cmd.Flags().StringVar(&f.hostCaps, "host-caps", "", "a host report of `polyvirt caps -o json` to check the definition against")
	_ = cmd.MarkFlagRequired("file")
}

// load reads, decodes and validates the definition. A definition that is
// refused gives vmspec.Errors; anything else (no file, bad flags) another
// error with exit status 2.
func (f *definitionFlags) load() (*vmspec.Valid, error) {
	var opts vmspec.Options
	if f.arch != "" {
		a, err := arch.Parse(f.arch)
		if err != nil {
			return nil, withStatus(2, fmt.Errorf("--arch: %w", err))
		}
		opts.Arch = a
	}
	if f.hostCaps != "" {
		h, err := vmspec.LoadHostCaps(f.hostCaps)
		if err != nil {
			return nil, withStatus(2, fmt.Errorf("--host-caps: %w", err))
		}
		opts.Host = h
	}
	vm, err := vmspec.DecodeFile(f.file)
	if err != nil {
		var es api.Errors
		if errors.As(err, &es) {
			return nil, es
		}
		return nil, withStatus(2, err)
	}
	return vmspec.Validate(vm, opts)
}

// printErrors writes one violation per line.
func printErrors(w io.Writer, es api.Errors) {
	for _, e := range es {
		fmt.Fprintln(w, e.Error())
	}
}

func newVMValidateCommand() *cobra.Command {
	var (
		flags  definitionFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "validate -f FILE [--arch A] [--host-caps caps.json]",
		Short: "Check a VM definition for its architecture (and a host); print every violation",
		Long: `Check a VM definition against its architecture's rules, and with --host-caps
against what one host offers (machines, CPU models, device enums). Every
violation is printed as CODE: field: what to do; the exit status is 1 when
there is any, 2 when the file or a flag cannot be used.

-o json prints {"valid": ..., "errors": [...], "vm": {...}}, the VM with
every default filled in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withStatus(2, fmt.Errorf("-o %q: want text or json", output))
			}
			v, err := flags.load()
			var es api.Errors
			if err != nil && !errors.As(err, &es) {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				res := struct {
					Valid  bool       `json:"valid"`
					Errors api.Errors `json:"errors"`
					VM     *vmspec.VM `json:"vm,omitempty"`
				}{Valid: err == nil, Errors: es}
				if res.Errors == nil {
					res.Errors = api.Errors{}
				}
				if v != nil {
					res.VM = v.VM()
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else if err != nil {
				printErrors(out, es)
			} else {
				fmt.Fprintf(out, "%s: valid %s VM %q\n", flags.file, v.VM().Arch, v.VM().Name)
			}
			if err != nil {
				return withStatus(1, fmt.Errorf("%s: %d violation(s)", flags.file, len(es)))
			}
			return nil
		},
	}
	flags.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
