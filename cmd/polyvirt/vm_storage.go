package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/vmspec"
)

// vmStorageFlags are vm create's storage flags: an image or a template to
// make the VM from, volumes to attach, a cloud-init seed.
type vmStorageFlags struct {
	image, template, pool, diskSize string
	clone                           bool
	volumes                         []string
	cloudInit, networkConfig        string
	sshKeys                         []string
	hostname                        string
}

func (f *vmStorageFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.image, "image", "", "make the first disk from this library image: a qcow2 overlay on it (polyvirt image list)")
	fl.StringVar(&f.template, "template", "", "make the VM from this template: its definition and disks (polyvirt template list)")
	fl.BoolVar(&f.clone, "clone", false, "with --image or --template: a whole copy of the disks instead of overlays")
	fl.StringVar(&f.pool, "pool", "", "the pool of the new volumes (default: the image's or the template's; for a cloud-init seed, the first disk's)")
	fl.StringVar(&f.diskSize, "disk-size", "", "with --image: grow the disk to this size (20G, 40GiB)")
	fl.StringSliceVar(&f.volumes, "volume", nil, "attach the volume POOL/NAME as a disk (repeatable)")
	fl.StringVar(&f.cloudInit, "cloud-init", "", "give the VM this cloud-init user-data file (#cloud-config YAML, a script) on a NoCloud seed CD-ROM")
	fl.StringSliceVar(&f.sshKeys, "ssh-key", nil, "with --cloud-init: a public key file for the default user (repeatable)")
	fl.StringVar(&f.hostname, "hostname", "", "with --cloud-init: the VM's host name (default: its name)")
	fl.StringVar(&f.networkConfig, "network-config", "", "with --cloud-init: a network configuration file (version 1 or 2; default DHCP everywhere)")
}

// apply puts the flags into a create request and its definition.
func (f *vmStorageFlags) apply(def *vmspec.VM, req *engineapi.VMRequest) error {
	for _, v := range f.volumes {
		pool, name, ok := strings.Cut(v, "/")
		if !ok || pool == "" || name == "" {
			return withStatus(2, fmt.Errorf("--volume %q: give POOL/NAME", v))
		}
		def.Disks = append(def.Disks, vmspec.Disk{Pool: pool, Volume: name})
	}
	req.Image, req.Template, req.Clone, req.Pool = f.image, f.template, f.clone, f.pool
	if f.diskSize != "" {
		n, err := humanize.ParseBytes(f.diskSize)
		if err != nil {
			return withStatus(2, fmt.Errorf("--disk-size %q: %v", f.diskSize, err))
		}
		req.DiskSizeBytes = int64(n)
	}
	if f.cloudInit == "" {
		if len(f.sshKeys) > 0 || f.hostname != "" || f.networkConfig != "" {
			return withStatus(2, fmt.Errorf("--ssh-key, --hostname and --network-config go with --cloud-init"))
		}
		return nil
	}
	ud, err := readSmall(f.cloudInit)
	if err != nil {
		return err
	}
	ci := &engineapi.CloudInit{UserData: ud, Hostname: f.hostname}
	for _, k := range f.sshKeys {
		b, err := readSmall(k)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(b, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				ci.SSHKeys = append(ci.SSHKeys, line)
			}
		}
	}
	if f.networkConfig != "" {
		if ci.NetworkConfig, err = readSmall(f.networkConfig); err != nil {
			return err
		}
	}
	req.CloudInit = ci
	return nil
}

// readSmall reads a file of at most 1 MiB ("-": standard input).
func readSmall(p string) (string, error) {
	var r io.Reader
	if p == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(p)
		if err != nil {
			return "", withStatus(2, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return "", withStatus(2, err)
	}
	if len(b) > 1<<20 {
		return "", withStatus(2, fmt.Errorf("%s: larger than 1 MiB", p))
	}
	return string(b), nil
}

// newVMSnapshotCommand is `polyvirt vm snapshot`.
func newVMSnapshotCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "snapshot",
		Short: "A VM's snapshots: take, list, revert, delete",
		Long: `Snapshots are internal snapshots of the VM's qcow2 volumes (every writable
disk must be one). Of a running VM: its disks at one instant (disk only), or with
--memory its memory too; of a VM that is Down: its volumes at rest. A disk-only
snapshot is reverted with the VM Down; a snapshot with memory while the VM runs on
the host that took it (it then runs on from the snapshot).

  polyvirt vm snapshot create web1 before-upgrade
  polyvirt vm snapshot list web1
  polyvirt vm stop web1 && polyvirt vm snapshot revert web1 before-upgrade
  polyvirt vm snapshot delete web1 before-upgrade`,
	}
}

func newVMSnapshotCreateCommand() *cobra.Command {
	var output, description string
	var memory bool
	create := &cobra.Command{
		Use: "create VM NAME", Short: "Take a snapshot (disk only; --memory for a running VM's memory too)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.CreateSnapshot(ctx, args[0], engineapi.SnapshotRequest{Name: args[1], Description: description, Memory: memory})
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), s)
				}
				kind := "disk only"
				if s.Memory {
					kind = "with memory"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s of VM %s taken (%s; VM %s; volumes %s).\n", s.Name, s.VM, kind, s.VMState, strings.Join(s.Volumes, ", "))
				return nil
			})
		},
	}
	create.Flags().BoolVar(&memory, "memory", false, "save the running VM's memory too")
	create.Flags().StringVar(&description, "description", "", "a description")
	outputFlag(create, &output)
	return create
}

func newVMSnapshotListCommand() *cobra.Command {
	var output string
	list := &cobra.Command{
		Use: "list VM", Short: "List a VM's snapshots", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				ss, err := c.Snapshots(ctx, args[0])
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), ss)
				}
				var rows [][]string
				for _, s := range ss {
					mem := "no"
					if s.Memory {
						mem = "yes (" + s.Host + ")"
					}
					rows = append(rows, []string{s.Name, timeText(s.Created), s.VMState, mem, strings.Join(s.Volumes, ", "), s.Description})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "TAKEN", "VM STATE", "MEMORY", "VOLUMES", "DESCRIPTION"}, rows)
			})
		},
	}
	outputFlag(list, &output)
	return list
}

func newVMSnapshotRevertCommand() *cobra.Command {
	revert := &cobra.Command{
		Use: "revert VM NAME", Short: "Revert a VM to a snapshot", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.RevertSnapshot(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "VM %s reverted to snapshot %s.\n", s.VM, s.Name)
				return nil
			})
		},
	}
	return revert
}

func newVMSnapshotDeleteCommand() *cobra.Command {
	del := &cobra.Command{
		Use: "delete VM NAME", Short: "Delete a snapshot", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.DeleteSnapshot(ctx, args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s of VM %s deleted.\n", args[1], args[0])
				return nil
			})
		},
	}
	return del
}
