package firmware

import (
	"fmt"
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"regexp"
	"strings"
	"unicode/utf8"
)

const projectedHeader = "Projected Flash Update Results:"

var projectionFields = []string{"Current T Image", "Current P Image", "New T Image", "New P Image"}

// ParseValidation reads the output of a successful `update_flash -v -f
// IMAGE` (stdout). The four projected levels are required.
func ParseValidation(out []byte) (agentapi.FirmwareProjection, error) {
	return parseProjection("update_flash -v", out, true)
}

func parseProjection(src string, out []byte, required bool) (agentapi.FirmwareProjection, error) {
	if err := checkText(src, out); err != nil {
		return agentapi.FirmwareProjection{}, err
	}
	var p agentapi.FirmwareProjection
	lines := strings.Split(string(out), "\n")
	vals := map[string]string{}
	header := false
	var info []string // the info: message being collected
	flush := func() {
		if len(info) > 0 {
			p.Info = append(p.Info, strings.Join(info, " "))
			info = nil
		}
	}
	for _, raw := range lines {
		line := strings.TrimSpace(raw)
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "info:"):
			flush()
			info = append(info, strings.TrimSpace(strings.TrimPrefix(line, "info:")))
		case line == projectedHeader:
			flush()
			if header {
				return agentapi.FirmwareProjection{}, parseErr(src, "projection", "%q appears twice", projectedHeader)
			}
			header = true
		case projectionLine(line) != "":
			flush()
			name := projectionLine(line)
			if !header {
				return agentapi.FirmwareProjection{}, parseErr(src, name, "appears before %q", projectedHeader)
			}
			if _, dup := vals[name]; dup {
				return agentapi.FirmwareProjection{}, parseErr(src, name, "appears twice")
			}
			vals[name] = strings.TrimSpace(strings.TrimPrefix(line, name+":"))
		case len(info) > 0 && !strings.Contains(line, ":"):
			// Continuation of a multi-line info: message.
			info = append(info, line)
		default:
			flush()
		}
	}
	flush()
	for _, msg := range p.Info {
		m := strings.ToLower(msg)
		if strings.Contains(m, "committed to") && strings.Contains(m, "permanent side") {
			p.CommitsTemporary = true
		}
		if strings.Contains(m, "downlevel") {
			p.Downlevel = true
		}
		if strings.Contains(m, "fixpack level is unknown") {
			p.LevelUnknown = true
		}
	}
	if !header {
		if required {
			return agentapi.FirmwareProjection{}, parseErr(src, "projection", "no %q section in the output", projectedHeader)
		}
		return p, nil
	}
	dst := []*string{&p.CurrentT, &p.CurrentP, &p.NewT, &p.NewP}
	for i, name := range projectionFields {
		v, ok := vals[name]
		if !ok {
			return agentapi.FirmwareProjection{}, parseErr(src, name, "missing from the projected results")
		}
		if err := checkLevelText(src, name, v); err != nil {
			return agentapi.FirmwareProjection{}, err
		}
		*dst[i] = v
	}
	return p, nil
}

// projectionLine returns the field name a line starts with ("New T
// Image"), or "".
func projectionLine(line string) string {
	for _, f := range projectionFields {
		if strings.HasPrefix(line, f+":") {
			return f
		}
	}
	return ""
}

// FlashReport is what `update_flash -f IMAGE` printed before the reboot.
type FlashReport struct {
	// Projection is the validation the tool ran first, when it printed one.
	Projection *agentapi.FirmwareProjection `json:"projection,omitempty"`
	// Ready is the line that says the image is staged and the system
	// reboots ("FLASH: Image ready...rebooting the system...").
	Ready string `json:"ready"`
}

var flashReady = regexp.MustCompile(`(?i)image ready\.*\s*rebooting`)

// ParseFlash reads the output of a successful `update_flash -f IMAGE`: the
// optional projection, then the "Image ready...rebooting the system..."
// line (PowerNV: "FLASH: Image ready...", PAPR: "Flash image ready...").
// Output without that line is an error: the tool did not say it staged the
// image.
func ParseFlash(out []byte) (FlashReport, error) {
	const src = "update_flash -f"
	p, err := parseProjection(src, out, false)
	if err != nil {
		return FlashReport{}, err
	}
	var r FlashReport
	if p.NewT != "" {
		r.Projection = &p
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); flashReady.MatchString(line) {
			r.Ready = line
			return r, nil
		}
	}
	return FlashReport{}, parseErr(src, "flash status", "no \"Image ready...rebooting the system...\" line: the tool did not report the image staged")
}

// ParseManage reads the output of a successful `update_flash -c` (commit
// true) or `update_flash -r`: "Success: Committed temporary firmware
// image." or "Success: Rejected temporary firmware image." (any case, with
// or without the final period). An OpenPOWER (BMC) system answers
// "Commit/Reject operation is not supported on this platform." with exit
// status 0: that is an error with code CodeManageUnsupported.
func ParseManage(out []byte, commit bool) error {
	src, want := "update_flash -r", "rejected temporary firmware image"
	if commit {
		src, want = "update_flash -c", "committed temporary firmware image"
	}
	if err := checkText(src, out); err != nil {
		return err
	}
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.ToLower(strings.TrimSpace(line))
		if strings.HasPrefix(l, "success:") && strings.Contains(l, want) {
			return nil
		}
		if strings.Contains(l, "operation is not supported on this platform") {
			return &api.Error{Code: api.CodeFirmwareManageUnsupported, Field: src, Message: strings.TrimSpace(line),
				Err: parseErr(src, "manage status", "%s", strings.TrimSpace(line))}
		}
	}
	return parseErr(src, "manage status", "no \"Success: %s\" line in the output", want)
}

// ToolFailure is what a failed update_flash run said: its exit status, the
// reason the script's error codes give it, and its own message.
type ToolFailure struct {
	// ExitStatus is the tool's exit status.
	ExitStatus int `json:"exitStatus"`
	// Reason names the exit status ("permission", "image file", ...).
	Reason string `json:"reason"`
	// Code is the polyvirt error code for it.
	Code string `json:"code"`
	// Message is the tool's text ("update_flash: " prefixes removed, lines
	// joined with "; "), or the first line of its output.
	Message string `json:"message"`
}

// Error prints "update_flash exited N (reason): message".
func (f ToolFailure) Error() string {
	return fmt.Sprintf("update_flash exited %d (%s): %s", f.ExitStatus, f.Reason, f.Message)
}

// updateFlashExits are the exit statuses of powerpc-utils' update_flash
// (PAPR) and update_flash_nv (PowerNV) scripts.
var updateFlashExits = map[int]struct{ reason, code string }{
	1:  {"unsupported", api.CodeFirmwareUpdateUnsupported},
	3:  {"usage", api.CodeFirmwareToolUsage},
	4:  {"permission", api.CodeFirmwarePermissionDenied},
	5:  {"image file", api.CodeFirmwareImageInvalid},
	6:  {"missing sysfs/proc interface", api.CodeFirmwareInterfaceMissing},
	7:  {"kernel module", api.CodeFirmwareModuleLoad},
	8:  {"platform call failed", api.CodeFirmwarePlatformCall},
	9:  {"aborted by user", api.CodeFirmwareAborted},
	10: {"active image", api.CodeFirmwareActiveImage},
	15: {"update access key expired", api.CodeFirmwareAccessKeyExpired},
	16: {"kexec service", api.CodeFirmwareKexec},
	17: {"ipmi", api.CodeFirmwareIPMI},
}

// messageCodes refine the code from the message, whatever the exit status
// (the PAPR script reports several of these as a platform call failure).
var messageCodes = []struct{ substr, code string }{
	{"invalid candidate image for this platform", api.CodeFirmwareImageWrongMachine},
	{"does not have authority", api.CodeFirmwarePermissionDenied},
	{"must be root", api.CodeFirmwarePermissionDenied},
	{"cannot overwrite the active firmware image", api.CodeFirmwareActiveImage},
	{"flash update is not supported", api.CodeFirmwareUpdateUnsupported},
	{"firmware validation not supported", api.CodeFirmwareUpdateUnsupported},
	{"cannot be managed from this partition", api.CodeFirmwareUpdateUnsupported},
	{"unknown platform", api.CodeFirmwareUpdateUnsupported},
	{"sysfs interface for firmware update does not exist", api.CodeFirmwareInterfaceMissing},
	{"did not create", api.CodeFirmwareInterfaceMissing},
	{"cannot read", api.CodeFirmwareImageInvalid},
	{"invalid candidate image", api.CodeFirmwareImageInvalid},
}

// ParseUpdateFlashFailure classifies a failed update_flash run from its
// exit status and output. It never fails: an unknown status is
// CodeToolFailed with the tool's first line.
func ParseUpdateFlashFailure(exitStatus int, stdout, stderr []byte) ToolFailure {
	f := ToolFailure{ExitStatus: exitStatus, Reason: "unknown", Code: api.CodeFirmwareToolFailed}
	if e, ok := updateFlashExits[exitStatus]; ok {
		f.Reason, f.Code = e.reason, e.code
	}
	var msgs []string
	var usage string
	first := ""
	for _, out := range [][]byte{stderr, stdout} {
		if len(out) > MaxToolOutput {
			out = out[:MaxToolOutput]
		}
		for _, line := range strings.Split(strings.ToValidUTF8(string(out), "?"), "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if first == "" {
				first = line
			}
			if m, ok := strings.CutPrefix(line, "update_flash:"); ok {
				if m = strings.TrimSpace(m); m != "" {
					msgs = append(msgs, m)
				}
			} else if strings.HasPrefix(strings.ToUpper(line), "USAGE:") && usage == "" {
				usage = line
			}
		}
	}
	switch {
	case len(msgs) > 0:
		f.Message = strings.Join(msgs, "; ")
	case usage != "":
		f.Message = usage
	case first != "":
		f.Message = first
	default:
		f.Message = "no output"
	}
	f.Message = clipLong(f.Message, 400)
	low := strings.ToLower(f.Message)
	for _, mc := range messageCodes {
		if strings.Contains(low, mc.substr) {
			f.Code = mc.code
			break
		}
	}
	return f
}

// clipLong cuts s to about n bytes on a character boundary.
func clipLong(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
