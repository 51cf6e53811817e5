package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

func newHostMaintenanceCommand() *cobra.Command {
	var (
		output, reason  string
		stopVMs, detach bool
		timeout         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "maintenance NAME [--stop-vms] [--detach]",
		Short: "Switch a host to Maintenance: its VMs migrate to other hosts of its cluster first",
		Long: `Switch a host to Maintenance. Its VMs migrate to other hosts of its cluster
first (the host is PreparingForMaintenance meanwhile, a few VMs at a time);
then it is Maintenance. When a VM cannot leave (pinned to the host, no host
fits, a policy that does not migrate) the request is refused and each such
VM is named with its reason — unless --stop-vms says to shut those down. A
migration that fails leaves the host PreparingForMaintenance with the
reason; the same command tries again, host activate gives up.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				w := cmd.OutOrStdout()
				h, err := c.MaintenanceWith(ctx, args[0], engineapi.MaintenanceRequest{Reason: reason, StopVMs: stopVMs})
				if err != nil {
					return err
				}
				if detach || h.Status != "PreparingForMaintenance" {
					return printHost(w, output, h)
				}
				table := output == "table"
				if table {
					fmt.Fprintf(w, "Host %s is PreparingForMaintenance: %s\n", h.Name, h.StatusMessage)
				}
				said := map[string]string{}
				deadline := time.Now().Add(timeout)
				for {
					if ev, err := c.Evacuation(ctx, args[0]); err == nil && table {
						for _, v := range ev.VMs {
							line := v.Outcome
							if v.Message != "" {
								line += ": " + v.Message
							}
							if said[v.VM] != line && v.Outcome != engineapi.EvacuationPending {
								fmt.Fprintf(w, "  VM %s %s\n", v.Name, line)
								said[v.VM] = line
							}
						}
					}
					if h, err = c.Host(ctx, args[0], false); err != nil {
						return err
					}
					if h.Status != "PreparingForMaintenance" || h.StatusCode != "" {
						break
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("host %s is still PreparingForMaintenance after %s: %s", h.Name, timeout, h.StatusMessage)
					}
					time.Sleep(500 * time.Millisecond)
				}
				if output == "json" {
					return printJSON(w, h)
				}
				if h.Status != "Maintenance" {
					return withStatus(1, fmt.Errorf("host %s is %s: %s: %s", h.Name, h.Status, h.StatusCode, h.StatusMessage))
				}
				fmt.Fprintf(w, "Host %s is in Maintenance.\n", h.Name)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "why, for the audit log")
	f.BoolVar(&stopVMs, "stop-vms", false, "shut down the VMs that cannot leave instead of refusing")
	f.BoolVar(&detach, "detach", false, "return at once, while the VMs migrate away")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for Maintenance")
	outputFlag(cmd, &output)
	return cmd
}
