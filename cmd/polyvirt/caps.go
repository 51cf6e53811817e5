package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/arch"
	"polyvirt/internal/caps"
	"polyvirt/internal/profiles"
)

func newCapsCommand() *cobra.Command {
	var (
		opts     caps.Options
		archName string
		fakeArch string
		output   string
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "caps",
		Short: "Print the capabilities of a host (live, a captured snapshot, or a built-in profile)",
		Long: `Print what a host is and what it can run: hardware identity and firmware,
CPU (model, flags, usable models, topology), NUMA, memory, KVM, libvirt and
QEMU, guest architectures with their emulated machines and device enums.

By default it reads this host (/) and asks libvirt at qemu:///system.
--root DIR reads a filesystem snapshot instead (DIR/proc, DIR/sys);
--libvirt-caps/--libvirt-domcaps take captured libvirt XML; with either of
these (or --profile) no daemon is asked unless --libvirt URI names one.
--fake-arch ARCH reports the host as a fake-KVM host of that effective
architecture; --profile NAME loads a complete built-in host (` + joinNames() + `).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if archName != "" {
				if opts.Arch, err = arch.Parse(archName); err != nil {
					return withStatus(2, fmt.Errorf("--arch: %w", err))
				}
			}
			if fakeArch != "" {
				if opts.FakeArch, err = arch.Parse(fakeArch); err != nil {
					return withStatus(2, fmt.Errorf("--fake-arch: %w", err))
				}
			}
			switch output {
			case "text", "json", "vdsm":
			default:
				return withStatus(2, fmt.Errorf("-o %q: want text, json or vdsm", output))
			}
			opts.Timeout = timeout
			res, err := caps.Collect(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return printCaps(cmd.OutOrStdout(), output, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Root, "root", "", "read the host from this filesystem snapshot instead of /")
	f.StringVar(&archName, "arch", "", "override the architecture recognised from the data")
	f.StringVar(&opts.LibvirtURI, "libvirt", "", `libvirt URI to ask (default qemu:///system for a live host; "none" skips libvirt)`)
	f.StringVar(&opts.CapsFile, "libvirt-caps", "", "a `FILE` of libvirt's capabilities XML (virsh capabilities > FILE)")
	f.StringArrayVar(&opts.DomCapsFiles, "libvirt-domcaps", nil, "a `FILE` of libvirt's domain capabilities XML (virsh domcapabilities > FILE; repeatable)")
	f.StringVar(&fakeArch, "fake-arch", "", "report a fake-KVM host of this effective architecture")
	f.StringVar(&opts.Profile, "profile", "", "read a built-in host profile")
	f.StringVarP(&output, "output", "o", "text", "output format: text, json or vdsm")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for libvirt")
	return cmd
}

func joinNames() string {
	out := ""
	for i, n := range profiles.Names() {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

func printCaps(w io.Writer, format string, res *caps.Result) error {
	switch format {
	case "json":
		return writeJSON(w, res.Report)
	case "vdsm":
		return writeJSON(w, caps.ToVDSM(res))
	default:
		return caps.WriteText(w, res.Report)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
