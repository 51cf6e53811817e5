package firmware

import (
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The reference page's validation output, with the third line the real
// update_flash_nv prints ("image.").
const referenceValidation = `info: Current Temporary side will be committed to
Permanent side before being replaced with the new
image.

Projected Flash Update Results:
Current T Image: SV810_133
Current P Image: SV810_081
New T Image:     SV810_133
New P Image:     SV810_133
`

func TestParseValidation(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    agentapi.FirmwareProjection
		wantErr string
	}{
		{
			name: "reference page",
			out:  referenceValidation,
			want: agentapi.FirmwareProjection{CurrentT: "SV810_133", CurrentP: "SV810_081", NewT: "SV810_133", NewP: "SV810_133",
				Info:             []string{"Current Temporary side will be committed to Permanent side before being replaced with the new image."},
				CommitsTemporary: true},
		},
		{
			name: "PAPR script, two-line info",
			out: "info: Current Temporary side will be committed to\nPermanent side before being replaced with the new image\n\n" +
				"Projected Flash Update Results:\nCurrent T Image: SF240_320\nCurrent P Image: SF220_051\nNew T Image:     SF240_338\nNew P Image:     SF240_320\n",
			want: agentapi.FirmwareProjection{CurrentT: "SF240_320", CurrentP: "SF220_051", NewT: "SF240_338", NewP: "SF240_320",
				Info:             []string{"Current Temporary side will be committed to Permanent side before being replaced with the new image"},
				CommitsTemporary: true},
		},
		{
			name: "downlevel commit",
			out: "info: Current Temporary image will be committed to\nPermanent side before being replaced with new image,\nand the new image is downlevel from current image.\n\n" +
				"Projected Flash Update Results:\nCurrent T Image: SV860_100\nCurrent P Image: SV810_081\nNew T Image:     SV810_133\nNew P Image:     SV860_100\n",
			want: agentapi.FirmwareProjection{CurrentT: "SV860_100", CurrentP: "SV810_081", NewT: "SV810_133", NewP: "SV860_100",
				Info:             []string{"Current Temporary image will be committed to Permanent side before being replaced with new image, and the new image is downlevel from current image."},
				CommitsTemporary: true, Downlevel: true},
		},
		{
			name: "temporary side update, kexec note",
			out: "info: Temporary side will be updated with a newer or identical image.\n\n" +
				"Projected Flash Update Results:\nCurrent T Image: SV810_081\nCurrent P Image: SV810_081\nNew T Image:     SV860_100\nNew P Image:     SV810_081\n\n" +
				"info: kexec service is running. It will be stopped before flashing.\n",
			want: agentapi.FirmwareProjection{CurrentT: "SV810_081", CurrentP: "SV810_081", NewT: "SV860_100", NewP: "SV810_081",
				Info: []string{"Temporary side will be updated with a newer or identical image.",
					"kexec service is running. It will be stopped before flashing."}},
		},
		{
			name: "fixpack unknown",
			out: "info: Current fixpack level is unknown.\n\nProjected Flash Update Results:\n" +
				"Current T Image: SV810_081\nCurrent P Image: SV810_081\nNew T Image:     SV860_100\nNew P Image:     SV810_081\n",
			want: agentapi.FirmwareProjection{CurrentT: "SV810_081", CurrentP: "SV810_081", NewT: "SV860_100", NewP: "SV810_081",
				Info: []string{"Current fixpack level is unknown."}, LevelUnknown: true},
		},
		{
			name:    "no projection",
			out:     "info: Temporary side will be updated with a newer or identical image.\n",
			wantErr: `update_flash -v: projection: no "Projected Flash Update Results:" section in the output`,
		},
		{
			name:    "empty level (the tool's awk found no MI line)",
			out:     "Projected Flash Update Results:\nCurrent T Image: \nCurrent P Image: SV810_081\nNew T Image:     SV860_100\nNew P Image:     SV810_081\n",
			wantErr: `update_flash -v: Current T Image: empty level`,
		},
		{
			name:    "missing line",
			out:     "Projected Flash Update Results:\nCurrent T Image: SV810_081\nCurrent P Image: SV810_081\nNew T Image:     SV860_100\n",
			wantErr: `update_flash -v: New P Image: missing from the projected results`,
		},
		{
			name:    "line twice",
			out:     "Projected Flash Update Results:\nCurrent T Image: SV810_081\nCurrent T Image: SV810_081\n",
			wantErr: `update_flash -v: Current T Image: appears twice`,
		},
		{
			name:    "line before the header",
			out:     "New T Image: SV860_100\nProjected Flash Update Results:\n",
			wantErr: `update_flash -v: New T Image: appears before "Projected Flash Update Results:"`,
		},
		{
			name:    "garbage level",
			out:     "Projected Flash Update Results:\nCurrent T Image: SV810_081\nCurrent P Image: SV810_081\nNew T Image:     $(reboot)\nNew P Image:     SV810_081\n",
			wantErr: `update_flash -v: New T Image: level "$(reboot)" has the character '$'; a level is made of letters, digits and . _ - +`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseValidation([]byte(tt.out))
			checkParse(t, tt.want, got, tt.wantErr, err)
		})
	}
}

func TestParseFlash(t *testing.T) {
	proj := agentapi.FirmwareProjection{CurrentT: "SV810_133", CurrentP: "SV810_081", NewT: "SV810_133", NewP: "SV810_133",
		Info:             []string{"Current Temporary side will be committed to Permanent side before being replaced with the new image."},
		CommitsTemporary: true}
	tests := []struct {
		name    string
		out     string
		want    FlashReport
		wantErr string
	}{
		{
			name: "PowerNV",
			out:  referenceValidation + "\nFLASH: Image ready...rebooting the system...\nFLASH: This will take several minutes.\nFLASH: Do not power off!\n",
			want: FlashReport{Projection: &proj, Ready: "FLASH: Image ready...rebooting the system..."},
		},
		{
			name: "PAPR, no projection",
			out:  "Flash image ready...rebooting the system...\n",
			want: FlashReport{Ready: "Flash image ready...rebooting the system..."},
		},
		{
			name:    "no ready line",
			out:     referenceValidation,
			wantErr: `update_flash -f: flash status: no "Image ready...rebooting the system..." line: the tool did not report the image staged`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFlash([]byte(tt.out))
			checkParse(t, tt.want, got, tt.wantErr, err)
		})
	}
}

func TestParseManage(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		commit  bool
		wantErr string
	}{
		{"PowerNV commit", "Success: Committed temporary firmware image.\n", true, ""},
		{"PowerNV reject", "Success: Rejected temporary firmware image.\n", false, ""},
		{"PAPR commit", "success: Committed temporary firmware image\n", true, ""},
		{"reject output for a commit", "Success: Rejected temporary firmware image.\n", true,
			`update_flash -c: manage status: no "Success: committed temporary firmware image" line in the output`},
		{"OpenPOWER", "Commit/Reject operation is not supported on this platform.\n", false,
			`FIRMWARE_COMMIT_REJECT_UNSUPPORTED: update_flash -r: Commit/Reject operation is not supported on this platform.`},
		{"empty", "", true, `update_flash -c: manage status: no "Success: committed temporary firmware image" line in the output`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ParseManage([]byte(tt.out), tt.commit)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseUpdateFlashFailure feeds the messages and exit statuses of
// powerpc-utils' update_flash (PAPR) and update_flash_nv (PowerNV).
func TestParseUpdateFlashFailure(t *testing.T) {
	tests := []struct {
		name   string
		status int
		stdout string
		stderr string
		want   ToolFailure
	}{
		{"not root", 4, "", "update_flash: Must be root to execute this command.\n",
			ToolFailure{4, "permission", api.CodeFirmwarePermissionDenied, "Must be root to execute this command."}},
		{"unknown platform (printed on stdout)", 1, "update_flash: Unknown platform\n", "",
			ToolFailure{1, "unsupported", api.CodeFirmwareUpdateUnsupported, "Unknown platform"}},
		{"PAPR partition without authority", 1, "update_flash: flash image cannot be managed from this partition\n", "",
			ToolFailure{1, "unsupported", api.CodeFirmwareUpdateUnsupported, "flash image cannot be managed from this partition"}},
		{"usage", 3, "", "USAGE: update_flash {-h | -s | -r | -c | -d | [-v|-n] -f <image filename>}\n\t-h\t\tPrint this message.\n",
			ToolFailure{3, "usage", api.CodeFirmwareToolUsage, "USAGE: update_flash {-h | -s | -r | -c | -d | [-v|-n] -f <image filename>}"}},
		{"unknown option", 3, "", "update_flash: Unknown option -x.\n",
			ToolFailure{3, "usage", api.CodeFirmwareToolUsage, "Unknown option -x."}},
		{"image unreadable", 5, "", "update_flash: Cannot read /tmp/fwupdate/01SV810_133_081.img.\n",
			ToolFailure{5, "image file", api.CodeFirmwareImageInvalid, "Cannot read /tmp/fwupdate/01SV810_133_081.img."}},
		{"copy failed", 5, "update_flash: Error copying firmware image.\n", "update_flash: Please retry with valid firmware image.\n",
			ToolFailure{5, "image file", api.CodeFirmwareImageInvalid, "Please retry with valid firmware image.; Error copying firmware image."}},
		{"invalid image", 5, "", "update_flash: Invalid candidate image.\n",
			ToolFailure{5, "image file", api.CodeFirmwareImageInvalid, "Invalid candidate image."}},
		{"no sysfs", 6, "", "update_flash: sysfs interface for firmware update does not exists.\n",
			ToolFailure{6, "missing sysfs/proc interface", api.CodeFirmwareInterfaceMissing, "sysfs interface for firmware update does not exists."}},
		{"PAPR proc file missing", 6, "", "update_flash: rtas_flash kernel module did not create /proc/ppc64/rtas/validate_flash\n",
			ToolFailure{6, "missing sysfs/proc interface", api.CodeFirmwareInterfaceMissing, "rtas_flash kernel module did not create /proc/ppc64/rtas/validate_flash"}},
		{"module", 7, "", "update_flash: could not load rtas_flash kernel module\n",
			ToolFailure{7, "kernel module", api.CodeFirmwareModuleLoad, "could not load rtas_flash kernel module"}},
		{"another machine (PowerNV)", 8, "", "update_flash: Invalid candidate image for this platform.\n",
			ToolFailure{8, "platform call failed", api.CodeFirmwareImageWrongMachine, "Invalid candidate image for this platform."}},
		{"another machine (PAPR)", 8, "", "update_flash: RTAS: validate() Invalid candidate image for this platform\n",
			ToolFailure{8, "platform call failed", api.CodeFirmwareImageWrongMachine, "RTAS: validate() Invalid candidate image for this platform"}},
		{"no authority", 8, "", "update_flash: RTAS: validate() Partition does not have authority\n",
			ToolFailure{8, "platform call failed", api.CodeFirmwarePermissionDenied, "RTAS: validate() Partition does not have authority"}},
		{"hardware error", 8, "", "update_flash: Hardware error.\n",
			ToolFailure{8, "platform call failed", api.CodeFirmwarePlatformCall, "Hardware error."}},
		{"active image", 10, "", "update_flash: Cannot Overwrite the Active Firmware Image.\n",
			ToolFailure{10, "active image", api.CodeFirmwareActiveImage, "Cannot Overwrite the Active Firmware Image."}},
		{"-n needs a commit", 10, "info: Current Temporary side will be committed to\n\nupdate_flash: Run without -n option to flash new image.\n", "",
			ToolFailure{10, "active image", api.CodeFirmwareActiveImage, "Run without -n option to flash new image."}},
		{"access key", 15, "", "update_flash: Update Access Key Expired.\n",
			ToolFailure{15, "update access key expired", api.CodeFirmwareAccessKeyExpired, "Update Access Key Expired."}},
		{"kexec", 16, "update_flash: Failed to stop kexec service.\n", "update_flash: Please stop kexec service and retry.\n",
			ToolFailure{16, "kexec service", api.CodeFirmwareKexec, "Please stop kexec service and retry.; Failed to stop kexec service."}},
		{"ipmitool", 17, "update_flash: ipmitool command not found.\n", "update_flash: Please install ipmitool and retry.\n",
			ToolFailure{17, "ipmi", api.CodeFirmwareIPMI, "Please install ipmitool and retry.; ipmitool command not found."}},
		{"unknown status, no output", 99, "", "",
			ToolFailure{99, "unknown", api.CodeFirmwareToolFailed, "no output"}},
		{"shell error", 2, "", "/usr/sbin/update_flash: 12: Syntax error\n",
			ToolFailure{2, "unknown", api.CodeFirmwareToolFailed, "/usr/sbin/update_flash: 12: Syntax error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseUpdateFlashFailure(tt.status, []byte(tt.stdout), []byte(tt.stderr))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
