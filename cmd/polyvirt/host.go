package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

func newHostCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "host",
		Short: "Manage hosts: enroll agents, maintenance, activation, removal",
	}
}

func printJoinToken(w io.Writer, output string, jt engineapi.JoinToken) error {
	if output == "json" {
		return printJSON(w, jt)
	}
	fmt.Fprintf(w, "Host %s added to cluster %s (status %s).\n", jt.Host.Name, jt.Host.Cluster, jt.Host.Status)
	fmt.Fprintf(w, "One-time join token (shown once, valid until %s):\n%s\n", timeText(jt.Expires), jt.Token)
	fmt.Fprintf(w, "On the host, give it to:\n  %s\n", jt.Command)
	return nil
}

func newHostAddCommand() *cobra.Command {
	var req engineapi.HostRequest
	var output string
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a host and print its one-time join token",
		Long: `Add a host to a cluster. The host is Installing until its agent joins with the
printed one-time token (polyvirt agent join on the host, the token on stdin),
then the engine contacts the agent at --address and admits the host into the
cluster (Up) or refuses it with the reason (NonOperational).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			req.Name = args[0]
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				jt, err := c.AddHost(ctx, req)
				if err != nil {
					return err
				}
				return printJoinToken(cmd.OutOrStdout(), output, jt)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Address, "address", "", "HOST:PORT the agent listens on (required)")
	f.StringVar(&req.Cluster, "cluster", "", "the host's cluster (required)")
	f.StringVar(&req.TokenTTL, "token-ttl", "", "how long the join token lasts (default 1h)")
	_ = cmd.MarkFlagRequired("address")
	_ = cmd.MarkFlagRequired("cluster")
	outputFlag(cmd, &output)
	return cmd
}

func newHostListCommand() *cobra.Command {
	var (
		output, cluster string
		statuses        []string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the hosts",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				hs, err := c.Hosts(ctx, client.HostFilter{Cluster: cluster, Statuses: statuses})
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), hs)
				}
				var rows [][]string
				for _, h := range hs {
					rows = append(rows, []string{h.Name, h.Cluster, h.Status, h.StatusCode, h.Arch.String(), h.CPUType, virtText(h), h.Address, ago(h.LastSeen)})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "CLUSTER", "STATUS", "REASON", "ARCH", "CPU TYPE", "VIRTUALIZATION", "ADDRESS", "LAST SEEN"}, rows)
			})
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only the hosts of this cluster")
	cmd.Flags().StringSliceVar(&statuses, "status", nil, "only hosts in these statuses (Up, NonOperational, ...)")
	outputFlag(cmd, &output)
	return cmd
}

// ago prints how long ago t was ("3s ago").
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

func printHost(w io.Writer, output string, h engineapi.Host) error {
	if output == "json" {
		return printJSON(w, h)
	}
	level := ""
	if h.CPULevel > 0 {
		level = strconv.Itoa(h.CPULevel)
	}
	enrolled := "no (waiting for polyvirt agent join)"
	if h.Enrolled {
		enrolled = "yes, certificate serial " + h.CertSerial
	}
	kv := [][2]string{
		{"Name", h.Name}, {"ID", h.ID}, {"Address", h.Address}, {"Cluster", h.Cluster},
		{"Status", h.Status}, {"Reason", h.StatusCode}, {"Message", h.StatusMessage},
		{"Architecture", hostArchText(h.Arch)}, {"Virtualization", virtText(h)},
		{"CPU model", h.CPUModel}, {"CPU vendor", h.CPUVendor}, {"CPU type", h.CPUType}, {"CPU level", level},
		{"CPU flags", strings.Join(h.CPUFlags, " ")}, {"Emulated machines", shortMachines(h.EmulatedMachines)},
		{"Enrolled", enrolled}, {"Last seen", timeText(h.LastSeen)},
		{"Created", timeText(h.Created)}, {"Updated", timeText(h.Updated)},
	}
	if h.Profile != "" {
		kv = append(kv, [2]string{"Profile", h.Profile + " (fake KVM: the host presents this built-in machine's hardware; its guests run under TCG)"})
	}
	if h.FakeIdentity != "" {
		kv = append(kv, [2]string{"Fake identity", h.FakeIdentity})
	}
	for _, f := range h.Firmware {
		v := f.Version
		if f.Date != "" {
			v += " (" + f.Date + ")"
		}
		kv = append(kv, [2]string{"Firmware " + f.Component, v})
	}
	if !h.JoinTokenExpires.IsZero() && h.JoinTokenUsed.IsZero() {
		kv = append(kv, [2]string{"Join token expires", timeText(h.JoinTokenExpires)})
	}
	if err := keyValues(w, kv); err != nil {
		return err
	}
	if len(h.Pools) > 0 {
		if err := printHostPools(w, h.Pools); err != nil {
			return err
		}
	}
	if len(h.Stats) > 0 {
		return printStats(w, h.Stats, h.StatsAt, time.Now())
	}
	return nil
}

// printHostPools prints what a host last said of its storage pools: a
// pool it lacks with the code and the reason.
func printHostPools(w io.Writer, pools []engineapi.HostPool) error {
	var rows [][]string
	for _, p := range pools {
		status, capa, free := "ok", mib(uint64(max(p.CapacityBytes, 0))), mib(uint64(max(p.FreeBytes, 0)))
		if !p.OK {
			status, capa, free = p.Code+": "+p.Message, "-", "-"
		}
		rows = append(rows, []string{p.Pool, status, capa, free, timeText(p.Checked)})
	}
	fmt.Fprintln(w, "\nStorage pools:")
	return table(w, []string{"POOL", "STATUS", "CAPACITY MiB", "FREE MiB", "CHECKED"}, rows)
}

// printStats prints a host's statistics as tables: how old they are, the
// host's figures, then one row per VM.
func printStats(w io.Writer, raw []byte, readAt, now time.Time) error {
	var s agentapi.Stats
	if err := json.Unmarshal(raw, &s); err != nil {
		fmt.Fprintf(w, "Statistics: not readable (%d bytes that are not an agent's statistics)\n", len(raw))
		return nil
	}
	taken := s.Host.Time
	if taken.IsZero() {
		taken = readAt
	}
	age := now.Sub(taken).Round(100 * time.Millisecond)
	if age < 0 {
		age = 0
	}
	fmt.Fprintf(w, "\nStatistics, taken %s ago (%s):\n", age, taken.Local().Format("15:04:05"))
	hs := s.Host
	if err := table(w, []string{"CPU %", "CPUS", "LOAD 1/5/15", "MEMORY MiB", "AVAILABLE MiB", "FREE MiB", "VMS RUNNING", "VCPUS USED", "VM MEMORY MiB"},
		[][]string{{fmt.Sprintf("%.1f", hs.CPUUsagePercent), strconv.Itoa(hs.CPUs), fmt.Sprintf("%.2f %.2f %.2f", hs.Load1, hs.Load5, hs.Load15),
			strconv.FormatUint(hs.MemTotalMiB, 10), strconv.FormatUint(hs.MemAvailableMiB, 10), strconv.FormatUint(hs.MemFreeMiB, 10),
			strconv.Itoa(hs.VMsRunning), strconv.Itoa(hs.VCPUsUsed), strconv.FormatUint(hs.MemoryUsedMiB, 10)}}); err != nil {
		return err
	}
	if len(s.VMs) == 0 {
		fmt.Fprintln(w, "\nNo VM on the host.")
		return nil
	}
	vms := append([]agentapi.VMStats(nil), s.VMs...)
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	var rows [][]string
	for _, v := range vms {
		var rd, wr, rx, tx uint64
		for _, d := range v.Disks {
			rd, wr = rd+d.ReadBytes, wr+d.WriteBytes
		}
		for _, n := range v.NICs {
			rx, tx = rx+n.RxBytes, tx+n.TxBytes
		}
		rows = append(rows, []string{v.Name, string(v.State), strconv.Itoa(v.VCPUs), fmt.Sprintf("%.1f", v.CPUUsagePercent),
			strconv.FormatUint(v.MemoryMiB, 10), mib(rd) + " / " + mib(wr), mib(rx) + " / " + mib(tx)})
	}
	fmt.Fprintln(w)
	return table(w, []string{"VM", "STATE", "VCPUS", "CPU %", "MEMORY MiB", "DISK READ/WRITTEN MiB", "NET RX/TX MiB"}, rows)
}

// mib is a byte count in MiB, one decimal.
func mib(b uint64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

func shortMachines(l []string) string {
	if len(l) > 12 {
		return strings.Join(l[:12], ", ") + fmt.Sprintf(", ... (%d)", len(l))
	}
	return strings.Join(l, ", ")
}

func newHostShowCommand() *cobra.Command {
	var (
		output   string
		withCaps bool
	)
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				h, err := c.Host(ctx, args[0], withCaps)
				if err != nil {
					return err
				}
				return printHost(cmd.OutOrStdout(), output, h)
			})
		},
	}
	cmd.Flags().BoolVar(&withCaps, "capabilities", false, "include the capabilities report (with -o json)")
	outputFlag(cmd, &output)
	return cmd
}

func newHostActionCommand(action string) *cobra.Command {
	var (
		output, reason string
		wait           time.Duration
	)
	short := map[string]string{
		"activate": "Activate a host: the engine checks it and admits it again (Up or NonOperational); a host PreparingForMaintenance stops evacuating",
	}[action]
	cmd := &cobra.Command{
		Use:   action + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				h, err := c.Activate(ctx, args[0], reason)
				if err != nil {
					return err
				}
				if wait > 0 && action == "activate" {
					deadline := time.Now().Add(wait)
					for h.Status == "Connecting" && time.Now().Before(deadline) {
						time.Sleep(500 * time.Millisecond)
						if h, err = c.Host(ctx, args[0], false); err != nil {
							return err
						}
					}
				}
				return printHost(cmd.OutOrStdout(), output, h)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	if action == "activate" {
		cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the engine's verdict (Up or NonOperational)")
	}
	outputFlag(cmd, &output)
	return cmd
}

func newHostRemoveCommand() *cobra.Command {
	return removeCommand("remove NAME", "Remove a host (in Maintenance, NonResponsive, NonOperational or Installing; no VMs)", "host %s removed\n",
		apiCall, (*client.Client).RemoveHost)
}

func newHostUpdateCommand() *cobra.Command {
	var name, address, cluster, output string
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Rename a host, or change its address or cluster (in Maintenance)",
		Long: `Change a host. Its cluster and address change only in Maintenance (or before
its agent joined); a host cannot move to a cluster of another architecture.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var upd engineapi.HostUpdate
			f := cmd.Flags()
			if f.Changed("name") {
				upd.Name = &name
			}
			if f.Changed("address") {
				upd.Address = &address
			}
			if f.Changed("cluster") {
				upd.Cluster = &cluster
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				h, err := c.UpdateHost(ctx, args[0], upd)
				if err != nil {
					return err
				}
				return printHost(cmd.OutOrStdout(), output, h)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name")
	cmd.Flags().StringVar(&address, "address", "", "new HOST:PORT")
	cmd.Flags().StringVar(&cluster, "cluster", "", "new cluster")
	outputFlag(cmd, &output)
	return cmd
}

func newHostJoinTokenCommand() *cobra.Command {
	var output, ttl string
	cmd := &cobra.Command{
		Use:   "join-token NAME",
		Short: "Issue a new one-time join token for a host (to enroll its agent again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				jt, err := c.JoinToken(ctx, args[0], ttl)
				if err != nil {
					return err
				}
				return printJoinToken(cmd.OutOrStdout(), output, jt)
			})
		},
	}
	cmd.Flags().StringVar(&ttl, "token-ttl", "", "how long the token lasts (default 1h)")
	outputFlag(cmd, &output)
	return cmd
}
