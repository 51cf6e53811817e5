package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/client"
	"polyvirt/internal/vmspec"
)

// vmError prints an engine refusal with every detail, each once: each
// violation of a definition, each host's reason not to run a VM.
func vmError(err error) error {
	var ce *api.Error
	if !errors.As(err, &ce) || len(ce.Details) == 0 || (len(ce.Details) == 1 && ce.Details[0].Code == ce.Code && ce.Details[0].Message == ce.Message) {
		return err
	}
	return withStatus(1, errors.New(detailText(ce)))
}

// detailText is an error with details as the CLI says it: its code and a
// headline of its own, then each detail on a line ("CODE (field):
// message"); the API's message, which may repeat the details or speak of
// the document's fields, is not repeated.
func detailText(ce *api.Error) string {
	var b strings.Builder
	b.WriteString(ce.Code + ": ")
	switch ce.Code {
	case api.CodeVMDefinitionInvalid:
		fmt.Fprintf(&b, "the definition has %d violations:", len(ce.Details))
	case api.CodeSchedulingFilteredOut:
		hosts := map[string]bool{}
		for _, d := range ce.Details {
			hosts[d.Field] = true
		}
		fmt.Fprintf(&b, "no host can run the VM; the reasons of each of the %d hosts:", len(hosts))
	default:
		msg := ce.Message
		for _, d := range ce.Details {
			if strings.Contains(msg, d.Message) {
				msg = fmt.Sprintf("%d problems:", len(ce.Details))
				break
			}
		}
		b.WriteString(msg)
	}
	for _, d := range ce.Details {
		b.WriteString("\n  ")
		b.WriteString(d.Code)
		if d.Field != "" {
			b.WriteString(" (" + d.Field + ")")
		}
		b.WriteString(": " + d.Message)
	}
	return b.String()
}

// vmCall is apiCall with the VM errors printed in full.
func vmCall(cmd *cobra.Command, f func(ctx context.Context, c *client.Client) error) error {
	return vmError(apiCall(cmd, f))
}

// vmFlags build a definition from a file and/or flags.
type vmFlags struct {
	file, name, cpuModel, machine, kernel, initrd, cmdline, display string
	arch                                                            arch.Arch
	memory                                                          int64
	cpus                                                            int
	disks                                                           []string

	// set tells which flags were given (nil: the non-zero ones).
	set *pflag.FlagSet
}

func (f *vmFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	f.set = fl
	fl.StringVarP(&f.file, "file", "f", "", "the VM definition (YAML or JSON, docs/vm-definition.md; - reads standard input)")
	fl.StringVar(&f.name, "name", "", "the VM's name (overrides the definition's)")
	fl.Var(archFlag{&f.arch}, "arch", "guest architecture (default: the cluster's hosts')")
	fl.Int64Var(&f.memory, "memory", 0, "memory in `MIB` MiB (default: the definition's, else the architecture's)")
	fl.IntVar(&f.cpus, "cpus", 0, "`N` vCPUs (default: the definition's, else 1)")
	fl.StringVar(&f.cpuModel, "cpu-model", "", "CPU model (default: the cluster CPU type's)")
	fl.StringVar(&f.machine, "machine", "", "emulated machine (default: the cluster's)")
	fl.StringVar(&f.kernel, "kernel", "", "boot this kernel directly (a path on the host)")
	fl.StringVar(&f.initrd, "initrd", "", "initial ramdisk of --kernel")
	fl.StringVar(&f.cmdline, "cmdline", "", "kernel command line of --kernel")
	fl.StringSliceVar(&f.disks, "disk", nil, "a disk image on the host (repeatable)")
	fl.StringVar(&f.display, "display", "", "vnc, spice or none")
}

// given tells whether a flag was given on the command line.
func (f *vmFlags) given(name string, zero bool) bool {
	if f.set != nil {
		return f.set.Changed(name)
	}
	return !zero
}

// definition reads the file (if any) and applies the flags.
func (f *vmFlags) definition(args []string) (*vmspec.VM, error) {
	if f.given("memory", f.memory == 0) && f.memory <= 0 {
		return nil, withStatus(2, fmt.Errorf("--memory %d: the memory is a positive number of MiB", f.memory))
	}
	if f.given("cpus", f.cpus == 0) && f.cpus <= 0 {
		return nil, withStatus(2, fmt.Errorf("--cpus %d: a VM has at least 1 vCPU", f.cpus))
	}
	def := &vmspec.VM{}
	if f.file != "" {
		var err error
		if def, err = vmspec.DecodeFile(f.file); err != nil {
			var es api.Errors
			if errors.As(err, &es) {
				var b strings.Builder
				fmt.Fprintf(&b, "%s:", f.file)
				for _, e := range es {
					b.WriteString("\n  " + e.Error())
				}
				return nil, withStatus(1, errors.New(b.String()))
			}
			return nil, withStatus(2, err)
		}
	}
	if len(args) > 0 {
		if f.name != "" && f.name != args[0] {
			return nil, withStatus(2, fmt.Errorf("the name is %s or %s?", args[0], f.name))
		}
		f.name = args[0]
	}
	if f.name != "" {
		def.Name = f.name
	}
	if def.Name == "" {
		return nil, withStatus(2, errors.New("the VM needs a name: give NAME, --name or a definition (-f) with one"))
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	if f.arch != arch.Unknown {
		def.Arch = f.arch
	}
	set(&def.Machine, f.machine)
	if f.memory != 0 {
		if def.Memory == nil {
			def.Memory = &vmspec.Memory{}
		}
		def.Memory.SizeMiB = f.memory
	}
	if f.cpus != 0 || f.cpuModel != "" {
		if def.CPU == nil {
			def.CPU = &vmspec.CPU{}
		}
		if f.cpus != 0 {
			def.CPU.Sockets, def.CPU.Cores, def.CPU.Threads = 1, f.cpus, 1
		}
		set(&def.CPU.Model, f.cpuModel)
	}
	if f.kernel != "" || f.initrd != "" || f.cmdline != "" {
		if def.Kernel == nil {
			def.Kernel = &vmspec.Kernel{}
		}
		set(&def.Kernel.Path, f.kernel)
		set(&def.Kernel.Initrd, f.initrd)
		set(&def.Kernel.Cmdline, f.cmdline)
	}
	for _, d := range f.disks {
		def.Disks = append(def.Disks, vmspec.Disk{Source: d})
	}
	if f.display != "" {
		if def.Display == nil {
			def.Display = &vmspec.Display{}
		}
		def.Display.Type = f.display
	}
	return def, nil
}

func newVMCreateCommand() *cobra.Command {
	var (
		flags                 vmFlags
		sflags                vmStorageFlags
		cluster, host, output string
		ha, start             bool
		timeout               time.Duration
		migrationPolicy       string
	)
	cmd := &cobra.Command{
		Use:   "create [NAME] --cluster C [-f FILE] [flags]",
		Short: "Create a VM in a cluster (and start it with --start)",
		Long: `Create a VM in a cluster, from a definition file (-f, YAML or JSON, see
docs/vm-definition.md) and/or flags. The engine checks it against the cluster:
its architecture must be the cluster's (a ppc64le VM goes in a POWER cluster),
its CPU model not above the cluster's CPU type, its machine offered by the
cluster's hosts, and every rule of its architecture (SPICE is refused on POWER,
for one). Every violation is printed at once. What the definition leaves out
comes from the cluster: the CPU model of its CPU type, its emulated machine,
its hosts' architecture.

  polyvirt vm create --cluster power -f examples/ppc64le-debian-installer.yaml --start
  polyvirt vm create web1 --cluster x86_64 --memory 512 --cpus 1 --start
  polyvirt vm create db --cluster power --arch ppc64le --memory 2048 --ha --host power8-a
  polyvirt vm create web2 --cluster power --image debian-12-ppc64el --cloud-init user-data.yaml --ssh-key ~/.ssh/id_ed25519.pub --start
  polyvirt vm create web3 --cluster power --template web-tpl --start

--image makes the first disk a qcow2 overlay on a library image (--clone: a copy);
an image of another architecture than the cluster's is refused. --cloud-init
attaches a NoCloud seed CD-ROM (user-data, meta-data, network-config) on the bus
the architecture gives CD-ROMs.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			def, err := flags.definition(args)
			if err != nil {
				return err
			}
			req := engineapi.VMRequest{Cluster: cluster, Host: host, HA: ha, MigrationPolicy: migrationPolicy}
			if err := sflags.apply(def, &req); err != nil {
				return err
			}
			raw, err := json.Marshal(def)
			if err != nil {
				return err
			}
			req.Definition = raw
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				vm, err := c.CreateVM(ctx, req)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if !start {
					if output == "json" {
						return printJSON(w, vm)
					}
					fmt.Fprintf(w, "VM %s created in cluster %s (%s, %d MiB, %d vCPUs, CPU %s, machine %s).\n",
						vm.Name, vm.Cluster, vm.Arch, vm.MemoryMiB, vm.VCPUs, orDash(vm.CPUModel, "-"), orDash(vm.Machine, "-"))
					fmt.Fprintf(w, "Start it: polyvirt vm start %s\n", vm.Name)
					return nil
				}
				if output == "table" {
					fmt.Fprintf(w, "VM %s created in cluster %s.\n", vm.Name, vm.Cluster)
				}
				if err := startWithProgress(ctx, c, w, vm.Name, output, timeout); err != nil {
					return createdNotStarted(vm.Name, err)
				}
				return nil
			})
		},
	}
	flags.add(cmd)
	sflags.add(cmd)
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "the VM's cluster (required)")
	f.StringVar(&host, "host", "", "pin the VM to this host of its cluster")
	f.BoolVar(&ha, "ha", false, "highly available: restarted on another host when its host stops answering")
	f.StringVar(&migrationPolicy, "migration-policy", "", "the VM's own migration policy: minimal-downtime, post-copy, suspend-workload or none (default: its cluster's)")
	f.BoolVar(&start, "start", false, "start it once created")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "with --start: how long to wait for it to run")
	_ = cmd.MarkFlagRequired("cluster")
	outputFlag(cmd, &output)
	return cmd
}

// createdNotStarted is the error of vm create --start whose start
// failed: the VM exists, and what to do now.
func createdNotStarted(name string, err error) error {
	text := err.Error()
	var ce *api.Error
	if errors.As(err, &ce) && len(ce.Details) > 0 {
		text = detailText(ce)
	}
	return withStatus(1, fmt.Errorf("VM %s was created, but it did not start: %s\nStart it again with: polyvirt vm start %s\nor remove it with:    polyvirt vm delete %s",
		name, text, name, name))
}

// startWithProgress starts a VM and shows the steps: scheduling, the host
// chosen, starting, running.
func startWithProgress(ctx context.Context, c *client.Client, w io.Writer, name, output string, timeout time.Duration) error {
	t0 := time.Now()
	say := func(format string, args ...any) {
		if output == "table" {
			fmt.Fprintf(w, format, args...)
		}
	}
	say("Starting VM %s: scheduling… ", name)
	res, err := c.VMAction(ctx, name, "start", "")
	if err != nil {
		say("\n")
		return err
	}
	if !res.Changed {
		say("%s\n", res.Message)
		if output == "json" {
			return printJSON(w, res)
		}
		return nil
	}
	say("on %s… starting… ", res.Host)
	deadline := time.Now().Add(timeout)
	state := res.State
	for state != "Up" {
		if state == "Down" || state == "Unknown" {
			say("%s\n", state)
			return fmt.Errorf("VM %s is %s (polyvirt events --kind vm says why)", name, state)
		}
		if time.Now().After(deadline) {
			say("\n")
			return fmt.Errorf("VM %s is still %s after %s", name, state, timeout)
		}
		time.Sleep(300 * time.Millisecond)
		vm, err := c.VM(ctx, name)
		if err != nil {
			return err
		}
		state, res.State = vm.State, vm.State
	}
	say("running (%.1fs)\n", time.Since(t0).Seconds())
	if output == "json" {
		return printJSON(w, res)
	}
	return nil
}

func newVMListCommand() *cobra.Command {
	var (
		output, cluster, host string
		states                []string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the VMs",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				vms, err := c.VMs(ctx, client.VMFilter{Cluster: cluster, Host: host, States: states})
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), vms)
				}
				var rows [][]string
				for _, v := range vms {
					ha := ""
					if v.HA {
						ha = "yes"
					}
					rows = append(rows, []string{v.Name, v.Cluster, v.Arch.String(), v.State, v.Host, strconv.FormatInt(v.MemoryMiB, 10),
						strconv.Itoa(v.VCPUs), v.CPUModel, ha, v.PinnedHost})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "CLUSTER", "ARCH", "STATE", "HOST", "MEMORY MiB", "VCPUS", "CPU", "HA", "PINNED"}, rows)
			})
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only the VMs of this cluster")
	cmd.Flags().StringVar(&host, "host", "", "only the VMs running on this host")
	cmd.Flags().StringSliceVar(&states, "state", nil, "only VMs in these states (Up, Down, ...)")
	outputFlag(cmd, &output)
	return cmd
}

func newVMShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a VM and its definition",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := c.VM(ctx, args[0])
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if output == "json" {
					return printJSON(w, v)
				}
				ha := "no"
				if v.HA {
					ha = "yes"
				}
				if err := keyValues(w, [][2]string{{"name", v.Name}, {"id", v.ID}, {"cluster", v.Cluster}, {"arch", v.Arch.String()},
					{"state", v.State + " since " + timeText(v.StateChanged)}, {"host", v.Host}, {"pinned to", v.PinnedHost},
					{"last host", v.LastHost}, {"highly available", ha}, {"memory", fmt.Sprintf("%d MiB", v.MemoryMiB)},
					{"vcpus", strconv.Itoa(v.VCPUs)}, {"cpu model", v.CPUModel}, {"machine", v.Machine},
					{"migration policy", orDash(v.MigrationPolicy, "(its cluster's)")}, {"migration", migrationText(v)},
					{"created", timeText(v.Created)}, {"version", strconv.FormatInt(v.Version, 10)}}); err != nil {
					return err
				}
				y, err := yaml.JSONToYAML(v.Definition)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "definition:\n")
				for _, line := range strings.Split(strings.TrimRight(string(y), "\n"), "\n") {
					fmt.Fprintf(w, "  %s\n", line)
				}
				return nil
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newVMStartCommand() *cobra.Command {
	var (
		output  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "start NAME",
		Short: "Start a VM on a host the engine chooses (or its pinned host)",
		Long: `Start a VM: the engine chooses an Up host of its cluster whose CPU level is at
least the cluster's, which offers its emulated machine and has its memory and
vCPUs free, the least loaded of those; when none fits, it says for each host
why not.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				return startWithProgress(ctx, c, cmd.OutOrStdout(), args[0], output, timeout)
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for it to run")
	outputFlag(cmd, &output)
	return cmd
}

// printAction prints an action's outcome.
func printAction(w io.Writer, output string, res engineapi.VMAction) error {
	if output == "json" {
		return printJSON(w, res)
	}
	if res.Host != "" {
		fmt.Fprintf(w, "VM %s: %s (host %s, now %s)\n", res.Name, res.Message, res.Host, res.State)
	} else {
		fmt.Fprintf(w, "VM %s: %s (now %s)\n", res.Name, res.Message, res.State)
	}
	return nil
}

func newVMStopCommand() *cobra.Command {
	var (
		output         string
		force, noForce bool
		timeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stop NAME",
		Short: "Ask a VM's guest to power off, and power it off after a time-out",
		Long: `Ask a VM's guest to power off (ACPI, or the power button on POWER) and wait
until the VM is down. A guest that is not down within the time-out (--timeout,
else its cluster's shutdownTimeoutSeconds, 30s by default) is powered off, and
stop says so. --no-force only asks the guest and returns at once (the VM may
stay Up); --force powers the VM off at once (destroy).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if force && noForce {
				return withStatus(2, errors.New("give --force or --no-force, not both"))
			}
			if timeout < 0 || (timeout > 0 && (force || noForce)) {
				return withStatus(2, errors.New("--timeout is a positive duration, for a stop without --force or --no-force"))
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				if force {
					res, err := c.VMAction(ctx, args[0], "destroy", "")
					if err != nil {
						return err
					}
					return printAction(cmd.OutOrStdout(), output, res)
				}
				return stopWithProgress(ctx, c, cmd.OutOrStdout(), args[0], output, timeout, !noForce)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&force, "force", false, "power off at once (destroy)")
	f.BoolVar(&noForce, "no-force", false, "only ask the guest; never power the VM off")
	f.DurationVar(&timeout, "timeout", 0, "how long the guest has to power off (default: the cluster's shutdown time-out)")
	outputFlag(cmd, &output)
	return cmd
}

// stopWithProgress asks a VM's guest to power off and, with wait, follows
// the VM until it is down, saying whether the guest powered off or the VM
// was powered off after the time-out.
func stopWithProgress(ctx context.Context, c *client.Client, w io.Writer, name, output string, timeout time.Duration, wait bool) error {
	t0 := time.Now()
	res, err := c.ShutdownVM(ctx, name, timeout, wait, "")
	if err != nil {
		return err
	}
	if !wait || !res.Changed || res.State == "Down" {
		return printAction(w, output, res)
	}
	say := func(format string, args ...any) {
		if output == "table" {
			fmt.Fprintf(w, format, args...)
		}
	}
	say("Stopping VM %s: asked its guest to power off… ", name)
	if timeout == 0 {
		if v, err := c.VM(ctx, name); err == nil {
			if cl, err := c.Cluster(ctx, v.Cluster); err == nil {
				timeout = time.Duration(cl.ShutdownTimeoutSeconds) * time.Second
			}
		}
	}
	// The agent powers the VM off at the time-out; the engine learns it
	// from its events within moments.
	deadline := t0.Add(timeout + time.Minute)
	for res.State != "Down" {
		if time.Now().After(deadline) {
			say("\n")
			return fmt.Errorf("VM %s is still %s %s after the stop (polyvirt events --kind vm says why)", name, res.State, time.Since(t0).Round(time.Second))
		}
		time.Sleep(500 * time.Millisecond)
		v, err := c.VM(ctx, name)
		if err != nil {
			return err
		}
		if v.State == "Up" && time.Since(t0) > timeout+30*time.Second {
			say("\n")
			return fmt.Errorf("VM %s is Up again: its host did not power it off after %s (polyvirt events --kind vm says why)", name, timeout)
		}
		res.State = v.State
	}
	forced := false
	if page, err := c.Events(ctx, client.EventFilter{Object: res.VM, Code: api.CodeVMShutdownTimeout, Limit: 1}); err == nil &&
		len(page.Events) == 1 && !page.Events[0].Time.Before(t0.Add(-time.Second)) {
		forced = true
	}
	if forced {
		res.Message = fmt.Sprintf("the guest did not power off within %s; powered off", timeout)
		say("not down within %s: powered off (%.1fs)\n", timeout, time.Since(t0).Seconds())
	} else {
		res.Message = "powered off by its guest"
		say("down (%.1fs)\n", time.Since(t0).Seconds())
	}
	if output == "json" {
		return printJSON(w, res)
	}
	return nil
}

func newVMSimpleActionCommand(action, short string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   action + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				res, err := c.VMAction(ctx, args[0], action, "")
				if err != nil {
					return err
				}
				return printAction(cmd.OutOrStdout(), output, res)
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newVMDeleteCommand() *cobra.Command {
	var force bool
	cmd := removeCommand("delete NAME", "Remove a VM (Down; --force powers a running one off first)", "VM %s removed\n", vmCall,
		func(c *client.Client, ctx context.Context, name string) error { return c.DeleteVM(ctx, name, force) })
	cmd.Flags().BoolVar(&force, "force", false, "power a running VM off first")
	return cmd
}

func newVMUpdateCommand() *cobra.Command {
	var (
		file, cluster, host, output string
		unpin, ha                   bool
		migrationPolicy             string
	)
	cmd := &cobra.Command{
		Use:   "update NAME [-f FILE] [--cluster C] [--host H | --unpin] [--ha=true|false] [--migration-policy P]",
		Short: "Change a VM: its definition or cluster (while Down), its pin, HA flag and migration policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var upd engineapi.VMUpdate
			if file != "" {
				def, err := vmspec.DecodeFile(file)
				if err != nil {
					return withStatus(2, err)
				}
				if upd.Definition, err = json.Marshal(def); err != nil {
					return err
				}
			}
			fl := cmd.Flags()
			if fl.Changed("cluster") {
				upd.Cluster = &cluster
			}
			if unpin && fl.Changed("host") {
				return withStatus(2, errors.New("give --host or --unpin, not both"))
			}
			if fl.Changed("host") {
				upd.Host = &host
			}
			if unpin {
				empty := ""
				upd.Host = &empty
			}
			if fl.Changed("ha") {
				upd.HA = &ha
			}
			if fl.Changed("migration-policy") {
				upd.MigrationPolicy = &migrationPolicy
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := c.UpdateVM(ctx, args[0], upd)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "VM %s updated (cluster %s, pinned to %s, highly available %v)\n", v.Name, v.Cluster, orDash(v.PinnedHost, "-"), v.HA)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "a new definition (YAML or JSON)")
	f.StringVar(&cluster, "cluster", "", "move to this cluster (same architecture)")
	f.StringVar(&host, "host", "", "pin to this host")
	f.BoolVar(&unpin, "unpin", false, "run on any host of the cluster")
	f.BoolVar(&ha, "ha", false, "highly available")
	f.StringVar(&migrationPolicy, "migration-policy", "", "the VM's own migration policy (\"\": its cluster's)")
	outputFlag(cmd, &output)
	return cmd
}

func newVMScreenshotCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "screenshot NAME [FILE.png]",
		Short: "Save a PNG screenshot of a running VM's display (to NAME.png by default)",
		Long: `Save a PNG screenshot of a running VM's display to FILE.png (default: the VM's
name with .png, in the current directory; - writes the PNG to standard output).

  polyvirt vm screenshot debian-installer-ppc64el screen.png`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return withStatus(2, fmt.Errorf("%v (-o is the output format everywhere; the PNG file goes after the VM's name: polyvirt vm screenshot %s FILE.png)", err, args[0]))
			}
			name, file := args[0], args[0]+".png"
			if len(args) == 2 {
				file = args[1]
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				img, err := c.Screenshot(ctx, name)
				if err != nil {
					return err
				}
				if file == "-" {
					_, err := cmd.OutOrStdout().Write(img)
					return err
				}
				if err := os.WriteFile(file, img, 0o644); err != nil {
					return err
				}
				res := screenshotResult{VM: name, File: file, Bytes: len(img)}
				if cfg, err := png.DecodeConfig(bytes.NewReader(img)); err == nil {
					res.Width, res.Height = cfg.Width, cfg.Height
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), res)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d bytes, %d×%d)\n", file, len(img), res.Width, res.Height)
				return nil
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// screenshotResult is what vm screenshot -o json says of the file written.
type screenshotResult struct {
	VM     string `json:"vm"`
	File   string `json:"file"`
	Bytes  int    `json:"bytes"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}
