package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/cpucatalog"
)

func newCPUTypesCommand() *cobra.Command {
	var archName, output string
	cmd := &cobra.Command{
		Use:   "cpu-types",
		Short: "List the cluster CPU types of every architecture",
		Long: `List the CPU types a cluster can have: level, name, cluster architecture,
vendor group, the libvirt CPU model its VMs get, and the flags a host must
report to be admitted. --arch takes a host or cluster architecture or an alias
(ppc64le and ppc64 both list the IBM POWER types).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return withStatus(2, fmt.Errorf("-o %q: want table or json", output))
			}
			types := cpucatalog.All()
			if archName != "" {
				a, err := arch.Parse(archName)
				if err != nil {
					return withStatus(2, fmt.Errorf("--arch: %w", err))
				}
				if types = cpucatalog.Types(a); len(types) == 0 {
					return withStatus(2, fmt.Errorf("--arch %s: no cluster CPU types for this architecture (there are for %s)",
						a, arch.Join(cpucatalog.Arches(), ", ")))
				}
			}
			return printCPUTypes(cmd.OutOrStdout(), output, cpucatalog.APITypes(types))
		},
	}
	cmd.Flags().StringVar(&archName, "arch", "", "list the types of this architecture only")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func printCPUTypes(w io.Writer, output string, types []engineapi.CPUType) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(types)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tNAME\tARCH\tVENDOR\tLIBVIRT MODEL\tFLAGS")
	for _, t := range types {
		model := t.Model
		if t.Mode != "" {
			model = "(" + t.Mode + ")"
		}
		for _, f := range t.Features {
			model += ",+" + f
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.Level, t.Name, t.Arch, t.Vendor, model, strings.Join(t.Flags, ","))
	}
	return tw.Flush()
}
