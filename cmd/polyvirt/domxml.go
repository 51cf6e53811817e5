package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/domxml"
	"polyvirt/internal/hostinfo"
)

func newDomxmlCommand() *cobra.Command {
	var (
		flags    definitionFlags
		file     string
		fake     bool
		hostArch string
		capMiB   uint64
	)
	cmd := &cobra.Command{
		Use:   "domxml -f FILE [--arch ARCH] [--host-caps FILE] [--fake-kvm] [--fake-memory-mib MIB]",
		Short: "Print the libvirt domain XML of a VM definition",
		Long: `Validate a VM definition (as 'polyvirt vm validate' does) and print its
libvirt domain XML. A refused definition prints its violations on standard
error and exits with status 1.

--fake-kvm runs the VM under TCG (domain type qemu) on a host of
--host-arch (default: the --host-caps report's, else this machine's): a
POWER VM on an x86_64 host keeps its pseries machine, an x86_64 VM on a
POWER host is rewritten for pseries, host-model becomes a named model TCG
has. --fake-memory-mib caps the memory. A --host-caps report of a host
without usable KVM turns fake KVM on by itself.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return withStatus(2, fmt.Errorf("polyvirt domxml renders one definition, given with -f FILE; %q is one argument too many", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := domxml.Options{FakeKVM: fake, MemoryCapMiB: capMiB}
			if hostArch != "" {
				a, err := arch.Parse(hostArch)
				if err != nil {
					return withStatus(2, fmt.Errorf("--host-arch: %w", err))
				}
				opts.HostArch = a
			}
			if capMiB != 0 && !fake {
				return withStatus(2, errors.New("--fake-memory-mib needs --fake-kvm"))
			}
			vopts, err := flags.options()
			if err != nil {
				return err
			}
			v, err := loadDefinition(file, vopts)
			var es api.Errors
			if errors.As(err, &es) {
				printErrors(cmd.ErrOrStderr(), "", es)
				return withStatus(1, fmt.Errorf("%s: %d violation(s)", file, len(es)))
			}
			if err != nil {
				return err
			}
			if opts.FakeKVM && opts.HostArch == arch.Unknown && v.Host() == nil {
				// This machine's, as its files say.
				if opts.HostArch, _, err = hostinfo.DetectArch(os.DirFS("/")); err != nil {
					return withStatus(2, fmt.Errorf("--host-arch: this machine's architecture: %w", err))
				}
			}
			doc, err := domxml.Render(v, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), doc)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the VM definition `FILE` (YAML or JSON; - reads standard input)")
	_ = cmd.MarkFlagRequired("file")
	flags.add(cmd)
	cmd.Flags().BoolVar(&fake, "fake-kvm", false, "run under TCG (domain type qemu), rewriting what this host cannot run")
	cmd.Flags().StringVar(&hostArch, "host-arch", "", "the real host `ARCH` for --fake-kvm")
	cmd.Flags().Uint64Var(&capMiB, "fake-memory-mib", 0, "cap the memory in fake-KVM mode to `MIB` MiB")
	return cmd
}
