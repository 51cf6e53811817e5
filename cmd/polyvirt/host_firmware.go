package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// newHostFirmwareCommand is `polyvirt host firmware ...`: the POWER system
// firmware of a host, its inventory and the update workflow.
func newHostFirmwareCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "firmware",
		Short: "System firmware of a POWER host: levels, and a safe validate → flash → commit or reject update",
		Long: `The system firmware of a host: its levels (lsmcode's temporary, permanent
and booted sides on FSP POWER systems; the device tree's components on
OpenPOWER; the BIOS on x86_64) and the update workflow, step by step. A
fake-KVM host presenting an FSP profile (power8-a of polyvirt up) simulates
its firmware, simulated images included (examples/firmware/):

  polyvirt host maintenance HOST
  polyvirt host firmware update HOST --image 01SV810_133_081.rpm   # upload, validate, flash, reboot
  polyvirt host firmware show HOST                                 # the booted level, the decision pending
  polyvirt host firmware commit HOST    (or: reject HOST)
  polyvirt host activate HOST

Each step is in the audit log (polyvirt events --host HOST). A flash needs the
host in Maintenance with no VM running; other architectures answer
NOT_SUPPORTED_ON_ARCH.`,
	}
	return cmd
}

// newHostFirmwareShowCommand is `polyvirt host firmware show`.
func newHostFirmwareShowCommand() *cobra.Command {
	var output string
	show := &cobra.Command{
		Use:   "show HOST",
		Short: "Show the firmware levels and the current operation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				f, err := c.HostFirmware(ctx, args[0])
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), f)
				}
				return printFirmware(cmd.OutOrStdout(), f)
			})
		},
	}
	outputFlag(show, &output)
	return show
}

// waitFor polls the host's firmware until the operation reaches one of the
// states, printing each state it passes through; a host that does not
// answer (rebooting) is waited for too.
func waitFor(ctx context.Context, w io.Writer, c *client.Client, host string, timeout time.Duration, states ...agentapi.FirmwareState) (engineapi.HostFirmware, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		f, err := c.HostFirmware(ctx, host)
		if err != nil {
			return f, err
		}
		now := "agent not answering"
		if f.Reachable && f.Operation != nil {
			now = string(f.Operation.State)
		}
		if now != last {
			fmt.Fprintf(w, "  %s  %s\n", time.Now().Format("15:04:05"), progressText(f, now))
			last = now
		}
		if f.Reachable && f.Operation != nil {
			for _, s := range states {
				if f.Operation.State == s {
					return f, nil
				}
			}
			if f.Operation.State == agentapi.FirmwareStateFailed || f.Operation.State == agentapi.FirmwareStateCancelled {
				return f, fmt.Errorf("the firmware operation %s", failureText(f.Operation))
			}
		}
		if time.Now().After(deadline) {
			return f, fmt.Errorf("still %s after %s", now, timeout)
		}
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func progressText(f engineapi.HostFirmware, state string) string {
	op := f.Operation
	switch {
	case !f.Reachable:
		return "rebooting (the agent does not answer yet)"
	case op == nil:
		return state
	case op.State == agentapi.FirmwareStateValidated && op.Projection != nil:
		p := op.Projection
		return fmt.Sprintf("validated: temporary %s → %s, permanent %s → %s", p.CurrentT, p.NewT, p.CurrentP, p.NewP)
	case op.State == agentapi.FirmwareStateAwaitingDecision && op.Booted != nil:
		return fmt.Sprintf("awaiting decision: booted %s (temporary %s, permanent %s)", op.Booted.Booted.Name, op.Booted.Temporary.Name, op.Booted.Permanent.Name)
	case (op.State == agentapi.FirmwareStateCommitted || op.State == agentapi.FirmwareStateRejected) && op.After != nil:
		return fmt.Sprintf("%s: temporary %s, permanent %s", op.State, op.After.Temporary.Name, op.After.Permanent.Name)
	}
	return state
}

func failureText(op *agentapi.FirmwareOperation) string {
	if op.Failure != nil {
		return fmt.Sprintf("%s: %s: %s", op.State, op.Failure.Code, op.Failure.Message)
	}
	return string(op.State)
}

// newFirmwareStepCommand is validate, commit, reject, cancel or clear.
func newFirmwareStepCommand(step string) *cobra.Command {
	var (
		image   string
		reason  string
		timeout time.Duration
	)
	short := map[string]string{
		"validate": "Check an image against the host (update_flash -v), uploading it first with --image",
		"flash":    "Flash the validated image (update_flash -f; the host reboots) and wait for the host to come back on it",
		"commit":   "Keep the new level: copy the temporary side to the permanent side (update_flash -c)",
		"reject":   "Go back to the old level: the permanent side is restored (update_flash -r)",
		"cancel":   "Drop an uploaded or validated image (an operation that ended is cleared)",
		"clear":    "Clear an operation that ended (failed, cancelled, committed, rejected): the host shows none, the engine keeps its record",
	}[step]
	cmd := &cobra.Command{
		Use:   step + " HOST",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, w := args[0], cmd.OutOrStdout()
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				if image != "" {
					if err := upload(ctx, w, c, host, image); err != nil {
						return err
					}
				}
				fmt.Fprintf(w, "%s of the firmware of %s:\n", step, host)
				res, err := c.FirmwareStep(ctx, host, step, reason)
				if err != nil {
					return err
				}
				if res.Done && (res.Operation == nil || res.Operation.ID == "") {
					// Cleared: the host has no operation any more.
					fmt.Fprintf(w, "  %s  cleared: %s shows no firmware operation (polyvirt host firmware show %s lists the engine's records)\n",
						time.Now().Format("15:04:05"), host, host)
					return nil
				}
				want := map[string]agentapi.FirmwareState{"validate": agentapi.FirmwareStateValidated, "flash": agentapi.FirmwareStateAwaitingDecision, "commit": agentapi.FirmwareStateCommitted,
					"reject": agentapi.FirmwareStateRejected, "cancel": agentapi.FirmwareStateCancelled}[step]
				_, err = waitFor(ctx, w, c, host, timeout, want)
				return err
			})
		},
	}
	if step == "validate" {
		cmd.Flags().StringVar(&image, "image", "", "upload this image first (the vendor's RPM or a .img)")
	}
	cmd.Flags().StringVar(&reason, "reason", "", "a reason for the audit log")
	cmd.Flags().DurationVar(&timeout, "timeout", 90*time.Minute, "how long to wait for the step (a flash waits for the host's reboot)")
	return cmd
}

func newFirmwareUpdateCommand() *cobra.Command {
	var (
		image   string
		reason  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "update HOST --image FILE",
		Short: "Upload, validate and flash an image, then wait for the host to come back on it",
		Long: `Upload the image (the vendor's RPM, e.g. 01SV810_133_081.rpm, or a bare .img),
validate it against the host, flash it (the host must be in Maintenance with no
VM running: it reboots), and wait until the host is back on the new level,
awaiting the decision: then run "polyvirt host firmware commit HOST" to keep it
or "polyvirt host firmware reject HOST" to return to the old level.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if image == "" {
				return withStatus(2, fmt.Errorf("--image is required"))
			}
			host, w := args[0], cmd.OutOrStdout()
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				if err := upload(ctx, w, c, host, image); err != nil {
					return err
				}
				fmt.Fprintf(w, "validate:\n")
				if _, err := c.FirmwareStep(ctx, host, "validate", reason); err != nil {
					return err
				}
				if _, err := waitFor(ctx, w, c, host, timeout, agentapi.FirmwareStateValidated); err != nil {
					return err
				}
				fmt.Fprintf(w, "flash (the host reboots):\n")
				if _, err := c.FirmwareStep(ctx, host, "flash", reason); err != nil {
					return err
				}
				f, err := waitFor(ctx, w, c, host, timeout, agentapi.FirmwareStateAwaitingDecision)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "Host %s runs %s. Keep it: polyvirt host firmware commit %s; go back: polyvirt host firmware reject %s\n",
					host, f.Operation.Booted.Booted.Name, host, host)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "the firmware image (the vendor's RPM or a .img)")
	cmd.Flags().StringVar(&reason, "reason", "", "a reason for the audit log")
	cmd.Flags().DurationVar(&timeout, "timeout", 90*time.Minute, "how long to wait for each step (a flash and its reboot take long)")
	return cmd
}

// upload sends an image file to the host.
func upload(ctx context.Context, w io.Writer, c *client.Client, host, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "upload %s (%.1f MiB):\n", filepath.Base(path), float64(st.Size())/(1<<20))
	res, err := c.UploadFirmware(ctx, host, filepath.Base(path), f, st.Size())
	if err != nil {
		return err
	}
	img := res.Operation.Image
	level := ""
	if img != nil && img.Level != "" {
		level = " (level " + img.Level + ")"
	}
	fmt.Fprintf(w, "  %s  uploaded%s\n", time.Now().Format("15:04:05"), level)
	return nil
}

func printFirmware(w io.Writer, f engineapi.HostFirmware) error {
	kv := [][2]string{{"Host", f.Host}, {"Supported", fmt.Sprint(f.Supported)}}
	if !f.Reachable {
		kv = append(kv, [2]string{"Agent", "not answering: " + f.Error})
	}
	if inv := f.Inventory; inv != nil {
		if inv.Simulated != "" {
			kv = append(kv, [2]string{"Simulated", inv.Simulated})
		}
		kv = append(kv, [2]string{"Type-model", inv.TypeModel}, [2]string{"Serial", inv.Serial}, [2]string{"Model", inv.ModelName})
		if s := inv.System; s != nil {
			kv = append(kv, [2]string{"Temporary side", s.Temporary.Name}, [2]string{"Permanent side", s.Permanent.Name},
				[2]string{"Booted", s.Booted.Name + " (" + string(s.BootedSide) + ")"})
		}
		for _, comp := range inv.Components {
			kv = append(kv, [2]string{"Component " + comp.Name, comp.Version})
		}
	}
	if op := f.Operation; op != nil {
		kv = append(kv, [2]string{"Operation", fmt.Sprintf("%s: %s since %s", op.ID, op.State, timeText(op.Since))})
		if op.LastError != nil {
			kv = append(kv, [2]string{"Last refusal", op.LastError.Code + ": " + op.LastError.Message})
		}
	}
	if err := keyValues(w, kv); err != nil {
		return err
	}
	if len(f.History) > 0 {
		fmt.Fprintln(w)
		rows := make([][]string, 0, len(f.History))
		for _, h := range f.History {
			rows = append(rows, []string{h.ID, h.State, h.FromLevel, h.ToLevel, h.RequestedBy, timeText(h.Updated), strings.TrimSpace(h.Error)})
		}
		return table(w, []string{"OPERATION", "STATE", "FROM", "TO", "BY", "UPDATED", "ERROR"}, rows)
	}
	return nil
}
