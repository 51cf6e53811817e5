package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/vmspec"
)

// newVMCommand is the `polyvirt vm` group: the engine's VM commands
// (vm_engine.go, vm_console.go) and the offline `vm validate`.
func newVMCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "vm",
		Short: "VMs: create, start, stop, watch them through the engine; validate definitions offline",
	}
}

// definitionFlags are the flags of the commands that check a VM
// definition offline: its architecture and a host to check it against.
type definitionFlags struct {
	arch     string
	hostCaps string
}

func (f *definitionFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.arch, "arch", "", "the guest `ARCH` when the definition names none")
	cmd.Flags().StringVar(&f.hostCaps, "host-caps", "", "a host report `FILE` (polyvirt caps -o json > FILE) to check the definition against")
}

// options are the validation options of the flags (exit status 2 when a
// flag cannot be used).
func (f *definitionFlags) options() (vmspec.Options, error) {
	var opts vmspec.Options
	if f.arch != "" {
		a, err := arch.Parse(f.arch)
		if err != nil {
			return opts, withStatus(2, fmt.Errorf("--arch: %w", err))
		}
		opts.Arch = a
	}
	if f.hostCaps != "" {
		h, err := vmspec.LoadHostCaps(f.hostCaps)
		if err != nil {
			return opts, withStatus(2, fmt.Errorf("--host-caps: %w", err))
		}
		opts.Host = h
	}
	return opts, nil
}

// loadDefinition reads, decodes and validates one definition file. A
// definition that is refused gives api.Errors; a file that cannot be
// read another error with exit status 2.
func loadDefinition(file string, opts vmspec.Options) (*vmspec.Valid, error) {
	vm, err := vmspec.DecodeFile(file)
	if err != nil {
		var es api.Errors
		if errors.As(err, &es) {
			return nil, es
		}
		return nil, withStatus(2, err)
	}
	return vmspec.Validate(vm, opts)
}

// printErrors writes one violation per line, each after indent.
func printErrors(w io.Writer, indent string, es api.Errors) {
	for _, e := range es {
		fmt.Fprintln(w, indent+e.Error())
	}
}

// validation is one file's verdict in vm validate -o json.
type validation struct {
	File   string     `json:"file"`
	Valid  bool       `json:"valid"`
	Errors api.Errors `json:"errors"`
	// Problem is why the file could not be checked (not read, not a
	// definition at all).
	Problem string     `json:"problem,omitempty"`
	VM      *vmspec.VM `json:"vm,omitempty"`
}

// validateFile checks one file: its verdict, and the error that is not a
// verdict (the file cannot be used).
func validateFile(file string, opts vmspec.Options) (validation, error) {
	res := validation{File: file, Errors: api.Errors{}}
	v, err := loadDefinition(file, opts)
	var es api.Errors
	switch {
	case err == nil:
		res.Valid, res.VM = true, v.VM()
	case errors.As(err, &es):
		res.Errors = es
	default:
		res.Problem = err.Error()
		return res, err
	}
	return res, nil
}

func newVMValidateCommand() *cobra.Command {
	var (
		flags  definitionFlags
		files  []string
		output string
	)
	cmd := &cobra.Command{
		Use:   "validate [-f] FILE... [--arch ARCH] [--host-caps FILE]",
		Short: "Check VM definitions for their architecture (and a host); print every violation",
		Long: `Check VM definitions against their architecture's rules, and with --host-caps
against what one host offers (machines, CPU models, device enums). The files
are given with -f (repeatable) or as arguments:

  polyvirt vm validate -f examples/ppc64le-disk.yaml
  polyvirt vm validate examples/invalid/*.yaml
  polyvirt vm validate -f a.yaml -f b.yaml

Every violation is printed as CODE: field: what to do; the exit status is 1
when there is any, 2 when a file or a flag cannot be used.

-o json prints {"file": ..., "valid": ..., "errors": [...], "vm": {...}}, the
VM with every default filled in; with several files, a list of them.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withStatus(2, fmt.Errorf("-o %q: want text or json", output))
			}
			files := append(append([]string(nil), files...), args...)
			if len(files) == 0 {
				return withStatus(2, errors.New("no definition to check: give its file with -f FILE, or files as arguments"))
			}
			opts, err := flags.options()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(files) == 1 {
				return validateOne(out, files[0], opts, output)
			}
			return validateMany(out, files, opts, output)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "a VM definition `FILE` (YAML or JSON; - reads standard input; repeatable)")
	flags.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// validateOne checks one file: the violations alone, one per line.
func validateOne(out io.Writer, file string, opts vmspec.Options, output string) error {
	res, err := validateFile(file, opts)
	if err != nil {
		return err
	}
	if output == "json" {
		if err := printJSON(out, res); err != nil {
			return err
		}
	} else if res.Valid {
		fmt.Fprintf(out, "%s: valid %s VM %q\n", file, res.VM.Arch, res.VM.Name)
	} else {
		printErrors(out, "", res.Errors)
	}
	if !res.Valid {
		return withStatus(1, fmt.Errorf("%s: %d violation(s)", file, len(res.Errors)))
	}
	return nil
}

// validateMany checks several files: each file's verdict, its violations
// under it.
func validateMany(out io.Writer, files []string, opts vmspec.Options, output string) error {
	var all []validation
	invalid, unusable := 0, 0
	for _, f := range files {
		res, err := validateFile(f, opts)
		all = append(all, res)
		switch {
		case err != nil:
			unusable++
		case !res.Valid:
			invalid++
		}
		if output == "json" {
			continue
		}
		switch {
		case err != nil:
			fmt.Fprintf(out, "%s: cannot be checked: %v\n", f, err)
		case res.Valid:
			fmt.Fprintf(out, "%s: valid %s VM %q\n", f, res.VM.Arch, res.VM.Name)
		default:
			fmt.Fprintf(out, "%s: %d violation(s):\n", f, len(res.Errors))
			printErrors(out, "  ", res.Errors)
		}
	}
	if output == "json" {
		if err := printJSON(out, all); err != nil {
			return err
		}
	}
	switch {
	case unusable > 0:
		return withStatus(2, fmt.Errorf("%d of %d files could not be checked, %d have violations", unusable, len(files), invalid))
	case invalid > 0:
		return withStatus(1, fmt.Errorf("%d of %d definitions have violations", invalid, len(files)))
	}
	return nil
}
