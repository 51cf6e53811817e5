package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"polyvirt/internal/archspec"
)

func newArchspecCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "archspec ARCH",
		Short: "Print what an architecture allows, needs and defaults to",
		Long: `Print polyvirt's rules for one architecture (` + archspec.ArchList() + `, or an
alias such as amd64, ppc64el or arm64): machines, firmware, CPU modes and
models, memory limits, displays, inputs, disk buses, NIC models, sound,
watchdog, console, and how a host of it shows its CPU.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := archspec.Lookup(args[0])
			if err != nil {
				return withStatus(2, err)
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			case "text":
				printSpec(out, s)
				return nil
			}
			return withStatus(2, fmt.Errorf("-o %q: want text or json", output))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// printSpec writes the rules as an aligned two-column table.
func printSpec(w io.Writer, s *archspec.Spec) {
	orNone := func(l []string) string {
		if len(l) == 0 {
			return "none"
		}
		return strings.Join(l, ", ")
	}
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	var pairs []string
	for _, p := range s.Display.Pairs {
		pairs = append(pairs, p.Graphics+"/"+p.Video)
	}
	var inputs []string
	for _, in := range s.Input.Defaults {
		inputs = append(inputs, in.Type+" on "+in.Bus)
	}
	var guests []string
	for _, g := range s.GuestArches {
		guests = append(guests, string(g))
	}
	mem := fmt.Sprintf("%d MiB to %d MiB, default %d MiB", s.Memory.MinMiB, s.Memory.MaxMiB, s.Memory.DefaultMiB)
	if s.Memory.MultipleMiB != 0 {
		mem += fmt.Sprintf(", a multiple of %d MiB", s.Memory.MultipleMiB)
	}
	cpu := orNone(s.CPU.Models)
	if len(s.CPU.Models) == 0 {
		cpu = "any the host's libvirt lists"
	}
	console := s.Console.TargetType
	if s.Console.TargetModel != "" {
		console += "/" + s.Console.TargetModel
	}
	rows := [][2]string{
		{"architecture", fmt.Sprintf("%s — %s", s.Arch, s.Title)},
		{"cluster architecture", s.ClusterArch.String()},
		{"guest architectures", strings.Join(guests, ", ")},
		{"emulator", s.Emulator},
		{"guest OS types", orNone(s.GuestOS.Allowed) + " (default " + s.GuestOS.Default + ")"},
		{"machines", orNone(s.Machine.Families) + " (default " + s.Machine.Default + ")"},
		{"firmware", s.Firmware.Kind + "; choices: " + orNone(s.Firmware.Allowed) + "; loader: " + yes(s.Firmware.Loader)},
		{"SMBIOS / ACPI / HPET", yes(s.Platform.SMBIOS) + " / " + yes(s.Platform.ACPI) + " / " + yes(s.Platform.HPET)},
		{"CPU modes", orNone(s.CPU.Modes) + " (default " + s.CPU.DefaultMode + ")"},
		{"CPU models", cpu},
		{"CPU model under TCG", s.CPU.TCGModel},
		{"max vCPUs", fmt.Sprint(s.CPU.MaxVCPUs)},
		{"memory", mem},
		{"memory hot plug", yes(s.Memory.HotPlug)},
		{"displays (graphics/video)", orNone(pairs)},
		{"default display", s.Display.Default.Graphics + "/" + s.Display.Default.Video + map[bool]string{true: " (only when asked: headless by default)", false: ""}[s.Display.Headless]},
		{"input buses", orNone(s.Input.Buses)},
		{"default inputs", orNone(inputs)},
		{"USB controllers", orNone(s.USB.Allowed)},
		{"disk buses", orNone(s.Disk.Buses) + " (default " + s.Disk.DefaultBus + ", CD-ROM " + s.Disk.CDROMBus + ")"},
		{"SCSI controllers", orNone(s.Disk.SCSIControllers)},
		{"NIC models", orNone(s.NIC.Allowed) + " (default " + s.NIC.Default + ")"},
		{"sound", orNone(s.Sound.Allowed)},
		{"watchdog", orNone(s.Watchdog.Allowed)},
		{"serial console", console + " (guest " + s.Console.GuestDevice + ")"},
		{"panic", map[bool]string{true: s.Panic, false: "none"}[s.Panic != ""]},
		{"floppy", yes(s.Floppy)},
		{"PCI topology", s.PCI},
	}
	if s.Disk.MaxSPAPRVSCSIDisks > 0 {
		rows = append(rows, [2]string{"max sPAPR VSCSI disks", fmt.Sprint(s.Disk.MaxSPAPRVSCSIDisks)})
	}
	width := 0
	for _, r := range rows {
		if len(r[0]) > width {
			width = len(r[0])
		}
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %s\n", width, r[0], r[1])
	}
}
