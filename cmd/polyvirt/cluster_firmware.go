package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// newClusterFirmwareCommand is `polyvirt cluster firmware ...`: the
// rolling firmware update of a cluster's POWER hosts.
func newClusterFirmwareCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "firmware",
		Short: "Rolling system firmware update of a cluster's POWER hosts, host by host",
		Long: `A rollout updates the system firmware of a cluster's hosts one after the other.
The image is uploaded once and validated against every target host first
(update_flash -v): a host it does not fit is named with the reason and nothing
is flashed. Then, host by host (at most --max-unavailable at once, and only
while the cluster keeps room for its running VMs):

  Maintenance (its VMs evacuated) → flash → reboot → back on the new level
  → health checks (agent, same CPU type, libvirt) → soak → commit → activate

The first failure stops the rollout: that host's update is rejected (back to
the permanent side) and it stays in Maintenance with the reason; no other host
is touched. The rollout lives in the engine's database: an engine restarted
resumes it.

  polyvirt cluster firmware update CLUSTER --image 01SV810_133_081.rpm
  polyvirt cluster firmware status CLUSTER
  polyvirt cluster firmware pause|resume|abort CLUSTER`,
	}
}

func newRolloutUpdateCommand() *cobra.Command {
	var (
		o       client.RolloutOptions
		image   string
		hosts   string
		detach  bool
		output  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "update CLUSTER --image FILE",
		Short: "Start a rolling firmware update and follow it (--detach: return once it started)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if image == "" {
				return withStatus(2, fmt.Errorf("--image is required"))
			}
			if hosts != "" {
				o.Hosts = strings.Split(hosts, ",")
			}
			o.ImageName = filepath.Base(image)
			cluster, w := args[0], cmd.OutOrStdout()
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				f, err := os.Open(image)
				if err != nil {
					return err
				}
				defer f.Close()
				st, err := f.Stat()
				if err != nil {
					return err
				}
				if output != "json" {
					fmt.Fprintf(w, "validating %s (%.1f MiB) on the hosts of cluster %s:\n", o.ImageName, float64(st.Size())/(1<<20), cluster)
				}
				r, err := c.StartRollout(ctx, cluster, o, f, st.Size())
				if err != nil {
					return err
				}
				if detach {
					if output == "json" {
						return printJSON(w, r)
					}
					return printRollout(w, r)
				}
				r, err = followRollout(ctx, w, c, cluster, r, timeout, output != "json")
				if err != nil {
					return err
				}
				if output == "json" {
					if err := printJSON(w, r); err != nil {
						return err
					}
				} else if err := printRollout(w, r); err != nil {
					return err
				}
				if r.State != engineapi.RolloutSucceeded {
					return withStatus(1, fmt.Errorf("the rollout %s: %s: %s", r.State, r.Code, r.Message))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "the firmware image (the vendor's RPM or a .img)")
	cmd.Flags().StringVar(&hosts, "hosts", "", "the hosts to update, comma-separated (default: every host of the cluster)")
	cmd.Flags().IntVar(&o.MaxUnavailable, "max-unavailable", 1, "how many hosts may be out at once")
	cmd.Flags().StringVar(&o.Soak, "soak", "", "how long a host runs healthy on its new level before it is committed (10m)")
	cmd.Flags().StringVar(&o.Commit, "commit", "auto", "auto: commit each host after its soak; manual: wait for polyvirt host firmware commit HOST")
	cmd.Flags().StringVar(&o.Reason, "reason", "", "a reason for the audit log")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once the rollout started (follow it with polyvirt cluster firmware status)")
	cmd.Flags().DurationVar(&timeout, "timeout", 24*time.Hour, "how long to follow the rollout")
	outputFlag(cmd, &output)
	return cmd
}

// followRollout prints each host's phase as it changes until the rollout
// ends.
func followRollout(ctx context.Context, w io.Writer, c *client.Client, cluster string, r engineapi.Rollout, timeout time.Duration, show bool) (engineapi.Rollout, error) {
	seen := map[string]string{}
	waiting := ""
	deadline := time.Now().Add(timeout)
	for {
		if show {
			for _, h := range r.Hosts {
				if seen[h.HostID] != h.Phase {
					seen[h.HostID] = h.Phase
					fmt.Fprintf(w, "  %s  %-10s %s%s\n", time.Now().Format("15:04:05"), h.Host, h.Phase, phaseNote(h))
				}
			}
			if r.Waiting != waiting {
				waiting = r.Waiting
				if waiting != "" {
					fmt.Fprintf(w, "  %s  waiting: %s\n", time.Now().Format("15:04:05"), waiting)
				}
			}
		}
		switch r.State {
		case engineapi.RolloutSucceeded, engineapi.RolloutFailed, engineapi.RolloutAborted:
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("the rollout is still %s after %s; it goes on (polyvirt cluster firmware status %s)", r.State, timeout, cluster)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(time.Second):
		}
		nr, err := c.Rollout(ctx, cluster)
		if err != nil {
			return r, err
		}
		r = nr
	}
}

// phaseNote is what a host's line adds to its phase.
func phaseNote(h engineapi.RolloutHost) string {
	switch h.Phase {
	case engineapi.RolloutHostPending, engineapi.RolloutHostEvacuating, engineapi.RolloutHostFlashing:
		return fmt.Sprintf(" (%s → %s)", h.FromLevel, h.ToLevel)
	case engineapi.RolloutHostChecking, engineapi.RolloutHostSoaking, engineapi.RolloutHostCommitting, engineapi.RolloutHostAwaitingCommit:
		return " (on " + h.Level + ")"
	case engineapi.RolloutHostDone:
		return fmt.Sprintf(" (%s → %s)", h.FromLevel, h.ToLevel)
	case engineapi.RolloutHostFailed, engineapi.RolloutHostSkipped, engineapi.RolloutHostRejecting:
		s := fmt.Sprintf(": %s: %s", h.Code, h.Message)
		if h.Rejected {
			s += " (rejected back to " + h.FromLevel + ")"
		}
		return s
	}
	return ""
}

func newRolloutStatusCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status CLUSTER",
		Short: "Show the cluster's rollout under way, else its last one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.Rollout(ctx, args[0])
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), r)
				}
				return printRollout(cmd.OutOrStdout(), r)
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newRolloutActionCommand(action string) *cobra.Command {
	short := map[string]string{
		"pause":  "Pause the cluster's rollout: no further host starts (one under way finishes)",
		"resume": "Resume the cluster's paused rollout",
		"abort":  "Abort the cluster's rollout: no further host starts, a flashed host's update is rejected",
	}
	var reason, output string
	cmd := &cobra.Command{
		Use:   action + " CLUSTER",
		Short: short[action],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.RolloutAction(ctx, args[0], action, reason)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), r)
				}
				return printRollout(cmd.OutOrStdout(), r)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "a reason for the audit log")
	outputFlag(cmd, &output)
	return cmd
}

// printRollout prints a rollout: its state, then one line per host.
func printRollout(w io.Writer, r engineapi.Rollout) error {
	fmt.Fprintf(w, "Rollout %s of cluster %s: %s\n", r.ID, r.Cluster, r.State)
	fmt.Fprintf(w, "  image %s, at most %d host(s) at once, soak %s, commit %s, started by %s at %s\n",
		r.ImageName, r.MaxUnavailable, orDash(r.Soak, "none"), r.Commit, r.StartedBy, r.Started.Format(time.RFC3339))
	if r.Waiting != "" {
		fmt.Fprintf(w, "  waiting: %s\n", r.Waiting)
	}
	if r.Code != "" {
		fmt.Fprintf(w, "  %s: %s\n", r.Code, r.Message)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPHASE\tFROM\tTO\tNOW\tNOTE")
	for _, h := range r.Hosts {
		note := ""
		if h.Code != "" {
			note = h.Code + ": " + h.Message
		}
		if h.Rejected {
			note += " (rejected)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Host, h.Phase, orDash(h.FromLevel, "-"), orDash(h.ToLevel, "-"), orDash(h.Level, "-"), note)
	}
	return tw.Flush()
}
