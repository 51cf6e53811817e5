package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// newRoot builds polyvirt's whole command tree, here and nowhere else:
// every group and every command of each group. A new command is a
// constructor in its command's file and one line below.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "polyvirt",
		Short:         "KVM virtual machines on POWER and x86_64 hosts, managed alike",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		// Offline tools: no engine needed.
		newCapsCommand(),
		newArchspecCommand(),
		newDomxmlCommand(),

		// The daemons and the all-in-one lab.
		withChildren(newAgentCommand(),
			newAgentCertsCommand(),
			newAgentJoinCommand(),
			newAgentLibvirtTLSCommand(),
		),
		withChildren(newEngineCommand(),
			newEngineRunCommand(),
			newEngineInitCommand(),
			newEngineCertCommand(),
		),
		newUpCommand(),

		// The engine's client.
		newLoginCommand(),
		withChildren(newUserCommand(),
			newUserAddCommand(),
			newUserListCommand(),
			newUserRemoveCommand(),
			newUserTokenCommand(),
			newUserPasswdCommand(),
		),
		withChildren(newClusterCommand(),
			newClusterCreateCommand(),
			newClusterListCommand(),
			newClusterShowCommand(),
			newClusterUpdateCommand(),
			newClusterDeleteCommand(),
			withChildren(newClusterFirmwareCommand(),
				newRolloutUpdateCommand(),
				newRolloutStatusCommand(),
				newRolloutActionCommand("pause"),
				newRolloutActionCommand("resume"),
				newRolloutActionCommand("abort"),
			),
		),
		newCPUTypesCommand(),
		withChildren(newHostCommand(),
			newHostAddCommand(),
			newHostListCommand(),
			newHostShowCommand(),
			newHostMaintenanceCommand(),
			newHostActionCommand("activate"),
			newHostRemoveCommand(),
			newHostUpdateCommand(),
			newHostJoinTokenCommand(),
			withChildren(newHostFirmwareCommand(),
				newHostFirmwareShowCommand(),
				newFirmwareStepCommand("validate"),
				newFirmwareStepCommand("flash"),
				newFirmwareUpdateCommand(),
				newFirmwareStepCommand("commit"),
				newFirmwareStepCommand("reject"),
				newFirmwareStepCommand("cancel"),
				newFirmwareStepCommand("clear"),
			),
		),
		withChildren(newVMCommand(),
			newVMValidateCommand(),
			newVMCreateCommand(),
			newVMListCommand(),
			newVMShowCommand(),
			newVMStartCommand(),
			newVMStopCommand(),
			newVMSimpleActionCommand("destroy", "Power a VM off at once (the guest is not asked)"),
			newVMSimpleActionCommand("reboot", "Ask a VM's guest to reboot"),
			newVMSimpleActionCommand("pause", "Pause a running VM"),
			newVMSimpleActionCommand("resume", "Resume a paused VM"),
			newVMDeleteCommand(),
			newVMUpdateCommand(),
			newVMScreenshotCommand(),
			newVMConsoleCommand(),
			newVMMigrateCommand(),
			withChildren(newVMSnapshotCommand(),
				newVMSnapshotCreateCommand(),
				newVMSnapshotListCommand(),
				newVMSnapshotRevertCommand(),
				newVMSnapshotDeleteCommand(),
			),
		),
		// Storage.
		withChildren(newPoolCommand(),
			newPoolCreateCommand(),
			newPoolListCommand(),
			newPoolShowCommand(),
			newPoolDeleteCommand(),
		),
		withChildren(newVolumeCommand(),
			newVolumeCreateCommand(),
			newVolumeUploadCommand(),
			newVolumeListCommand(),
			newVolumeShowCommand(),
			newVolumeDeleteCommand(),
			newVolumeResizeCommand(),
			newVolumeCloneCommand(),
			newVolumeCancelUploadCommand(),
		),
		withChildren(newImageCommand(),
			newImageAddCommand(),
			newImageUploadCommand(),
			newImageListCommand(),
			newImageShowCommand(),
			newImageDeleteCommand(),
		),
		withChildren(newTemplateCommand(),
			newTemplateCreateCommand(),
			newTemplateListCommand(),
			newTemplateShowCommand(),
			newTemplateDeleteCommand(),
		),
		newEventsCommand(),
		newMetricsCommand(),
	)
	return root
}

// withChildren adds the children to a group command and returns it.
func withChildren(group *cobra.Command, children ...*cobra.Command) *cobra.Command {
	group.AddCommand(children...)
	return group
}

// noArgs is cobra.NoArgs with a message that names what was given as an
// argument, never calling it a command.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	what := "an argument"
	if len(args) > 1 {
		what = fmt.Sprintf("%d arguments", len(args))
	}
	return withStatus(2, fmt.Errorf("%s takes no arguments, but got %s: %s (see %s --help)", cmd.CommandPath(), what,
		quoteAll(args), cmd.CommandPath()))
}

// quoteAll quotes each argument, at most five.
func quoteAll(args []string) string {
	var q []string
	for i, a := range args {
		if i == 5 {
			q = append(q, "…")
			break
		}
		q = append(q, fmt.Sprintf("%q", a))
	}
	return strings.Join(q, " ")
}
