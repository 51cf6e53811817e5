package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

func newVMMigrateCommand() *cobra.Command {
	var (
		output, to, policy, reason string
		bandwidth                  int
		detach, cancel             bool
		timeout                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "migrate NAME [--to HOST] [--policy P] [--max-bandwidth MIB/S] [--detach] [--cancel]",
		Short: "Move a running VM to another host of its cluster while it runs (live migration)",
		Long: `Move a running VM to another host of its cluster while it runs. The engine
chooses the host (or checks the one --to names: each host's reason when it
cannot take the VM), its host sends it, and the progress shows as it goes:
the phase, the pass over the memory, what was sent and what is left, the
rate; then the outcome with the total time and the downtime libvirt
measured. A disk only the source has is copied on the way (the command says
which). --cancel stops a migration in flight: the VM keeps running on its
source.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			// vmCall: a refusal names each host's reasons.
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				w := cmd.OutOrStdout()
				if cancel {
					m, err := c.CancelMigration(ctx, args[0])
					if err != nil {
						return err
					}
					if output == "json" {
						return printJSON(w, m)
					}
					fmt.Fprintf(w, "Migration of VM %s to %s: %s after %s; it runs on %s.\n", m.Name, m.Destination, m.Phase, ms(m.ElapsedMs),
						runsOn(m))
					return nil
				}
				m, err := c.Migrate(ctx, args[0], engineapi.MigrationRequest{Host: to, Policy: policy, MaxBandwidthMiBs: bandwidth, Reason: reason})
				if err != nil {
					return err
				}
				p := newMigrationProgress(w, output)
				p.started(m)
				if detach {
					if output == "json" {
						return printJSON(w, m)
					}
					fmt.Fprintf(w, "Follow it with: polyvirt vm show %s (or polyvirt vm migrate %s --cancel)\n", m.Name, m.Name)
					return nil
				}
				deadline := time.Now().Add(timeout)
				for !agentapi.MigrationFinished(m.Phase) {
					if time.Now().After(deadline) {
						p.end()
						return fmt.Errorf("VM %s still migrates after %s (%s); polyvirt vm show %s follows it", m.Name, timeout, m.Phase, m.Name)
					}
					time.Sleep(250 * time.Millisecond)
					next, err := c.Migration(ctx, args[0])
					if err != nil {
						p.end()
						return err
					}
					m = next
					p.update(m)
				}
				p.end()
				if output == "json" {
					if err := printJSON(w, m); err != nil {
						return err
					}
				} else {
					p.outcome(m)
				}
				if m.Phase != agentapi.PhaseCompleted {
					return withStatus(1, fmt.Errorf("VM %s did not migrate: %s: %s", m.Name, m.Code, m.Error))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the destination host (default: the engine chooses in the VM's cluster)")
	f.StringVar(&policy, "policy", "", "the migration policy for this migration: minimal-downtime, post-copy, suspend-workload (default: the VM's, else its cluster's)")
	f.IntVar(&bandwidth, "max-bandwidth", 0, "cap the migration stream, in MiB/s (default: no cap)")
	f.BoolVar(&detach, "detach", false, "start it and return at once")
	f.BoolVar(&cancel, "cancel", false, "cancel the VM's migration in flight (it keeps running on its source)")
	f.StringVar(&reason, "reason", "", "why, for the audit log")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the outcome")
	outputFlag(cmd, &output)
	return cmd
}

// migrationText is a VM's migration in a line: in flight with its
// figures, or the last one's outcome.
func migrationText(v engineapi.VM) string {
	m := v.Migration
	if m == nil {
		return ""
	}
	if !agentapi.MigrationFinished(m.Phase) {
		return fmt.Sprintf("to %s: %s", m.Destination, strings.TrimSpace(progressLine(*m)))
	}
	out := fmt.Sprintf("last: %s → %s %s %s ago after %s", m.Source, m.Destination, m.Phase, time.Since(m.Finished).Round(time.Second), ms(m.ElapsedMs))
	if m.Phase == agentapi.PhaseCompleted {
		out += fmt.Sprintf(" (downtime %d ms)", m.DowntimeMs)
	} else if m.Code != "" {
		out += " (" + m.Code + ")"
	}
	return out
}

// runsOn names where a migrated VM runs after its migration.
func runsOn(m engineapi.Migration) string {
	if m.Phase == agentapi.PhaseCompleted {
		return m.Destination
	}
	return m.Source
}

// migrationProgress shows a migration as it goes: on a terminal one line
// redrawn in place, else one line per change of phase or pass (and every
// few seconds).
type migrationProgress struct {
	w        io.Writer
	table    bool
	tty      bool
	last     string
	lastAt   time.Time
	lastKey  string
	drawn    bool
	lastDisk string
}

func newMigrationProgress(w io.Writer, output string) *migrationProgress {
	tty := false
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		tty = err == nil
	}
	return &migrationProgress{w: w, table: output == "table", tty: tty}
}

func (p *migrationProgress) started(m engineapi.Migration) {
	if !p.table {
		return
	}
	fmt.Fprintf(p.w, "Migrating VM %s from %s to %s (policy %s%s)\n", m.Name, m.Source, m.Destination, m.Policy, encrypted(m))
	fmt.Fprintf(p.w, "  disks: %s\n", disksText(m))
}

func encrypted(m engineapi.Migration) string {
	if m.EncryptedStream {
		return ", stream encrypted"
	}
	return ""
}

// disksText says which disks move with the VM and which are shared.
func disksText(m engineapi.Migration) string {
	var parts []string
	if len(m.CopiedDisks) > 0 {
		parts = append(parts, fmt.Sprintf("%s copied to %s (only %s has it)", strings.Join(m.CopiedDisks, ", "), m.Destination, m.Source))
	}
	if len(m.SharedDisks) > 0 {
		parts = append(parts, fmt.Sprintf("%s on storage both hosts see (not copied)", strings.Join(m.SharedDisks, ", ")))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// line is the progress line of a migration.
func progressLine(m engineapi.Migration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-15s", m.Phase)
	if m.Pass > 0 {
		fmt.Fprintf(&b, " pass %d", m.Pass)
	}
	if m.DiskTotal > 0 && m.DiskRemaining > 0 {
		fmt.Fprintf(&b, "  disks %s of %s copied", bytesText(m.DiskProcessed), bytesText(m.DiskTotal))
	}
	if m.MemoryTotal > 0 {
		fmt.Fprintf(&b, "  memory %s sent, %s left of %s", bytesText(m.MemoryProcessed), bytesText(m.MemoryRemaining), bytesText(m.MemoryTotal))
	}
	if m.MemoryRate > 0 {
		fmt.Fprintf(&b, "  at %s/s", bytesText(m.MemoryRate))
	}
	if m.AllowedDowntimeMs > 0 {
		fmt.Fprintf(&b, "  (downtime allowed %d ms)", m.AllowedDowntimeMs)
	}
	fmt.Fprintf(&b, "  %s", ms(m.ElapsedMs))
	return b.String()
}

func (p *migrationProgress) update(m engineapi.Migration) {
	if !p.table || agentapi.MigrationFinished(m.Phase) {
		return
	}
	line := progressLine(m)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	key := fmt.Sprintf("%s/%d", m.Phase, m.Pass)
	if key != p.lastKey || time.Since(p.lastAt) > 2*time.Second {
		fmt.Fprintln(p.w, line)
		p.lastKey, p.lastAt = key, time.Now()
	}
}

// end ends the progress line.
func (p *migrationProgress) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *migrationProgress) outcome(m engineapi.Migration) {
	for _, s := range m.Steps {
		fmt.Fprintf(p.w, "  step: %s\n", s)
	}
	switch m.Phase {
	case agentapi.PhaseCompleted:
		fmt.Fprintf(p.w, "Migrated VM %s to %s in %s (downtime %d ms; the engine's share %d ms).\n", m.Name, m.Destination, ms(m.ElapsedMs),
			m.DowntimeMs, m.EngineMs)
	case agentapi.PhaseCanceled:
		fmt.Fprintf(p.w, "Migration of VM %s canceled after %s; it runs on %s.\n", m.Name, ms(m.ElapsedMs), m.Source)
	default:
		fmt.Fprintf(p.w, "Migration of VM %s failed after %s; it runs on %s.\n", m.Name, ms(m.ElapsedMs), m.Source)
	}
}

func bytesText(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	default:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
}

func ms(n int64) string {
	return (time.Duration(n) * time.Millisecond).Round(100 * time.Millisecond).String()
}
