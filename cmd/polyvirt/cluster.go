package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/client"
)

func newClusterCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "Manage clusters: hosts of one architecture and CPU type",
	}
}

func newClusterCreateCommand() *cobra.Command {
	var req engineapi.ClusterRequest
	var output string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a cluster",
		Long: `Create a cluster. --arch takes a host or cluster architecture or an alias
(ppc64le, ppc64el and ppc64 all make a POWER cluster, architecture ppc64);
--cpu-type a CPU type of that architecture (polyvirt cpu-types). Without them the
first host admitted sets the architecture and its best CPU type.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			req.Name = args[0]
			st, err := shutdownTimeout(cmd)
			if err != nil {
				return err
			}
			if st != nil {
				req.ShutdownTimeoutSeconds = *st
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				cl, err := c.CreateCluster(ctx, req)
				if err != nil {
					return err
				}
				return printCluster(cmd.OutOrStdout(), output, cl)
			})
		},
	}
	f := cmd.Flags()
	f.Var(archFlag{&req.Arch}, "arch", "architecture (default: set by the first host)")
	f.StringVar(&req.CPUType, "cpu-type", "", "CPU type (default: the first host's best)")
	f.StringVar(&req.Description, "description", "", "description")
	f.StringSliceVar(&req.EmulatedMachineCandidates, "emulated-machines", nil, "ordered emulated machine candidates (default: the architecture's, such as pseries-*)")
	f.StringVar(&req.MigrationPolicy, "migration-policy", "", "minimal-downtime (default), post-copy, suspend-workload or none")
	f.IntVar(&req.MigrationMaxOutgoing, "migration-max-outgoing", 0, "how many VMs at most leave one host at once (default 2)")
	f.IntVar(&req.MigrationMaxIncoming, "migration-max-incoming", 0, "how many VMs at most come to one host at once (default 2)")
	f.BoolVar(&req.MigrationEncrypted, "migration-encrypted", false, "encrypt the migration streams themselves with TLS (the hosts' libvirt daemons always talk over TLS)")
	shutdownTimeoutFlag(cmd)
	outputFlag(cmd, &output)
	return cmd
}

// shutdownTimeoutFlag adds --shutdown-timeout to a cluster command.
func shutdownTimeoutFlag(cmd *cobra.Command) {
	cmd.Flags().Duration("shutdown-timeout", 0, "how long a VM's guest has to power off after vm stop before it is powered off (default 30s)")
}

// shutdownTimeout reads --shutdown-timeout in whole seconds (nil when not
// given).
func shutdownTimeout(cmd *cobra.Command) (*int, error) {
	if !cmd.Flags().Changed("shutdown-timeout") {
		return nil, nil
	}
	d, _ := cmd.Flags().GetDuration("shutdown-timeout")
	if d < time.Second || d%time.Second != 0 {
		return nil, withStatus(2, fmt.Errorf("--shutdown-timeout %s: want whole seconds, at least 1s", d))
	}
	s := int(d / time.Second)
	return &s, nil
}

func newClusterListCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the clusters",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				cs, err := c.Clusters(ctx)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), cs)
				}
				var rows [][]string
				for _, cl := range cs {
					rows = append(rows, []string{cl.Name, clusterArchText(cl.Arch), cl.CPUType, cl.EmulatedMachine, hostCountText(cl.Hosts)})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "ARCH", "CPU TYPE", "EMULATED MACHINE", "HOSTS"}, rows)
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// hostCountText prints "3 (2 Up, 1 NonOperational)".
func hostCountText(m map[string]int) string {
	total := 0
	var parts []string
	for s, n := range m {
		total += n
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	if total == 0 {
		return "0"
	}
	sort.Strings(parts)
	return strconv.Itoa(total) + " (" + strings.Join(parts, ", ") + ")"
}

func printCluster(w io.Writer, output string, cl engineapi.Cluster) error {
	if output == "json" {
		return printJSON(w, cl)
	}
	level := ""
	if cl.CPULevel > 0 {
		level = strconv.Itoa(cl.CPULevel)
	}
	return keyValues(w, [][2]string{
		{"Name", cl.Name}, {"ID", cl.ID}, {"Description", cl.Description},
		{"Architecture", orDash(clusterArchText(cl.Arch), "(set by its first host)")}, {"CPU type", orDash(cl.CPUType, "(set by its first host)")},
		{"CPU level", level},
		{"Emulated machine candidates", strings.Join(cl.EmulatedMachineCandidates, ", ")},
		{"Emulated machine", orDash(cl.EmulatedMachine, "(chosen by its first Up host)")},
		{"Migration policy", cl.MigrationPolicy},
		{"Migrations per host", fmt.Sprintf("%d outgoing, %d incoming at once", cl.MigrationMaxOutgoing, cl.MigrationMaxIncoming)},
		{"Migration streams", map[bool]string{true: "encrypted (TLS)", false: "not encrypted (the libvirt daemons talk over TLS)"}[cl.MigrationEncrypted]},
		{"Shutdown time-out", (time.Duration(cl.ShutdownTimeoutSeconds) * time.Second).String()},
		{"Hosts", hostCountText(cl.Hosts)},
		{"Created", timeText(cl.Created)}, {"Updated", timeText(cl.Updated)},
	})
}

func orDash(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

func newClusterShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a cluster",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				cl, err := c.Cluster(ctx, args[0])
				if err != nil {
					return err
				}
				return printCluster(cmd.OutOrStdout(), output, cl)
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newClusterUpdateCommand() *cobra.Command {
	var (
		name, desc, cpuType, policy string
		archName                    arch.Arch
		machines                    []string
		output                      string
		maxOut, maxIn               int
		encrypt                     bool
	)
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a cluster (name, description, architecture, CPU type, emulated machines, migration settings, shutdown time-out)",
		Long: `Change a cluster. The architecture cannot change while the cluster has hosts or
VMs; a CPU type an Up host of the cluster does not support is refused; the hosts
are admitted again under the new settings.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var upd engineapi.ClusterUpdate
			f := cmd.Flags()
			set := func(flag string, dst **string, v string) {
				if f.Changed(flag) {
					*dst = &v
				}
			}
			set("name", &upd.Name, name)
			set("description", &upd.Description, desc)
			if f.Changed("arch") {
				upd.Arch = &archName
			}
			set("cpu-type", &upd.CPUType, cpuType)
			set("migration-policy", &upd.MigrationPolicy, policy)
			if f.Changed("migration-max-outgoing") {
				upd.MigrationMaxOutgoing = &maxOut
			}
			if f.Changed("migration-max-incoming") {
				upd.MigrationMaxIncoming = &maxIn
			}
			if f.Changed("migration-encrypted") {
				upd.MigrationEncrypted = &encrypt
			}
			if f.Changed("emulated-machines") {
				upd.EmulatedMachineCandidates = &machines
			}
			st, err := shutdownTimeout(cmd)
			if err != nil {
				return err
			}
			upd.ShutdownTimeoutSeconds = st
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				cl, err := c.UpdateCluster(ctx, args[0], upd)
				if err != nil {
					return err
				}
				return printCluster(cmd.OutOrStdout(), output, cl)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "new name")
	f.StringVar(&desc, "description", "", "description")
	f.Var(archFlag{&archName}, "arch", "architecture (only while the cluster has no hosts or VMs)")
	f.StringVar(&cpuType, "cpu-type", "", "CPU type")
	f.StringSliceVar(&machines, "emulated-machines", nil, "ordered emulated machine candidates")
	f.StringVar(&policy, "migration-policy", "", "minimal-downtime, post-copy, suspend-workload or none")
	f.IntVar(&maxOut, "migration-max-outgoing", 0, "how many VMs at most leave one host at once")
	f.IntVar(&maxIn, "migration-max-incoming", 0, "how many VMs at most come to one host at once")
	f.BoolVar(&encrypt, "migration-encrypted", false, "encrypt the migration streams themselves (false: only the libvirt daemons' connection is TLS)")
	shutdownTimeoutFlag(cmd)
	outputFlag(cmd, &output)
	return cmd
}

func newClusterDeleteCommand() *cobra.Command {
	return removeCommand("delete NAME", "Delete a cluster that has no hosts or VMs", "cluster %s deleted\n", apiCall, (*client.Client).DeleteCluster)
}
