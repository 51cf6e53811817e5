package firmware

import (
	"bytes"
	"fmt"
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"strings"
	"unicode/utf8"
)

// MaxToolOutput bounds the tool output the parsers read; longer output is
// an error, not a slow parse.
const MaxToolOutput = 1 << 20

const (
	lsmcodeHumanPrefix = "Version of System Firmware is "
	lsmcodePFWPrefix   = "Version of PFW is "
	lsmcodeAllPrefix   = "sys0!system:"
)

// ParseLsmcode reads the output of plain `lsmcode`:
//
//	Version of System Firmware is SV810_133 (t) SV810_081 (p) SV810_133 (b)
//	Version of PFW is ...            (optional)
//
// Each level may carry its image level in parentheses
// ("FW860.20 (SV860_082) (t) ..."). Output that is one of lsmcode's failure
// messages is an error saying so.
func ParseLsmcode(out []byte) (agentapi.SystemFirmware, error) {
	const src = "lsmcode"
	if err := checkText(src, out); err != nil {
		return agentapi.SystemFirmware{}, err
	}
	var sf agentapi.SystemFirmware
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, lsmcodeHumanPrefix):
			if found {
				return agentapi.SystemFirmware{}, parseErr(src, "system firmware", "the %q line appears twice", strings.TrimSpace(lsmcodeHumanPrefix))
			}
			found = true
			var err error
			sf, err = parseLevels(src, strings.TrimPrefix(line, lsmcodeHumanPrefix))
			if err != nil {
				return agentapi.SystemFirmware{}, err
			}
		case strings.HasPrefix(line, lsmcodePFWPrefix):
			v := strings.TrimSpace(strings.TrimPrefix(line, lsmcodePFWPrefix))
			if err := checkLevelText(src, "service", v); err != nil {
				return agentapi.SystemFirmware{}, err
			}
			sf.Service = v
		}
	}
	if !found {
		return agentapi.SystemFirmware{}, missingLine(src, out, lsmcodeHumanPrefix)
	}
	return sf, nil
}

// ParseLsmcodeA reads the machine-readable output of `lsmcode -A`, whose
// system line is
//
//	sys0!system:SF240_320 (t) SF220_051 (p) SF240_320 (t)|service:PFW
//
// (lsvpd prints a space after the colon and a (b) marker on the third
// level; the "|" before "service:" may be missing). Lines of other devices
// are ignored.
func ParseLsmcodeA(out []byte) (agentapi.SystemFirmware, error) {
	const src = "lsmcode -A"
	if err := checkText(src, out); err != nil {
		return agentapi.SystemFirmware{}, err
	}
	var sf agentapi.SystemFirmware
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, lsmcodeAllPrefix) {
			continue
		}
		if found {
			return agentapi.SystemFirmware{}, parseErr(src, "system firmware", "the %q line appears twice", lsmcodeAllPrefix)
		}
		found = true
		rest := strings.TrimPrefix(line, lsmcodeAllPrefix)
		service := ""
		if i := strings.LastIndex(rest, "service:"); i >= 0 {
			service = strings.TrimSpace(rest[i+len("service:"):])
			rest = rest[:i]
		}
		rest = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "|"))
		var err error
		sf, err = parseLevels(src, rest)
		if err != nil {
			return agentapi.SystemFirmware{}, err
		}
		if service != "" {
			if err := checkLevelText(src, "service", service); err != nil {
				return agentapi.SystemFirmware{}, err
			}
		}
		sf.Service = service
	}
	if !found {
		return agentapi.SystemFirmware{}, missingLine(src, out, lsmcodeAllPrefix)
	}
	return sf, nil
}

var sideFields = [3]string{"temporary", "permanent", "booted"}

// parseLevels reads "L (t) L (p) L (b)" where each L is NAME or
// NAME (IMAGE).
func parseLevels(src, s string) (agentapi.SystemFirmware, error) {
	toks := strings.Fields(s)
	var lv [3]agentapi.FirmwareLevel
	var marks [3]string
	i := 0
	for g := 0; g < 3; g++ {
		field := sideFields[g]
		if i >= len(toks) {
			return agentapi.SystemFirmware{}, parseErr(src, field, "missing: the line ends after %d of 3 levels (%q)", g, s)
		}
		if _, ok := marker(toks[i]); ok {
			return agentapi.SystemFirmware{}, parseErr(src, field, "no level before the marker %s", toks[i])
		}
		if err := checkLevelText(src, field, toks[i]); err != nil {
			return agentapi.SystemFirmware{}, err
		}
		lv[g].Name = toks[i]
		i++
		if i < len(toks) {
			if inner, ok := parens(toks[i]); ok {
				if _, isMark := marker(toks[i]); !isMark {
					if err := checkLevelText(src, field, inner); err != nil {
						return agentapi.SystemFirmware{}, err
					}
					lv[g].Image = inner
					i++
				}
			}
		}
		if i >= len(toks) {
			return agentapi.SystemFirmware{}, parseErr(src, field, "level %s has no (t), (p) or (b) marker", lv[g].String())
		}
		m, ok := marker(toks[i])
		if !ok {
			return agentapi.SystemFirmware{}, parseErr(src, field, "expected a (t), (p) or (b) marker after %s, got %q", lv[g].String(), clip(toks[i]))
		}
		marks[g] = m
		i++
	}
	if i < len(toks) {
		return agentapi.SystemFirmware{}, parseErr(src, "system firmware", "unexpected text after the third level: %q", clip(strings.Join(toks[i:], " ")))
	}
	if marks[0] != "t" {
		return agentapi.SystemFirmware{}, parseErr(src, "temporary", "the first level is marked (%s), want (t)", marks[0])
	}
	if marks[1] != "p" {
		return agentapi.SystemFirmware{}, parseErr(src, "permanent", "the second level is marked (%s), want (p)", marks[1])
	}
	sf := agentapi.SystemFirmware{Temporary: lv[0], Permanent: lv[1], Booted: lv[2]}
	switch marks[2] {
	case "t":
		sf.BootedSide = agentapi.FirmwareSideTemporary
	case "p":
		sf.BootedSide = agentapi.FirmwareSidePermanent
	default:
		b := sf.Booted.Code()
		onT, onP := b == sf.Temporary.Code(), b == sf.Permanent.Code()
		switch {
		case onT && !onP:
			sf.BootedSide = agentapi.FirmwareSideTemporary
		case onP && !onT:
			sf.BootedSide = agentapi.FirmwareSidePermanent
		}
	}
	return sf, nil
}

// marker recognises "(t)", "(p)", "(b)".
func marker(tok string) (string, bool) {
	switch tok {
	case "(t)", "(p)", "(b)":
		return tok[1:2], true
	}
	return "", false
}

func parens(tok string) (string, bool) {
	if len(tok) >= 3 && tok[0] == '(' && tok[len(tok)-1] == ')' {
		return tok[1 : len(tok)-1], true
	}
	return "", false
}

// maxLevelLen bounds one level string.
const maxLevelLen = 64

// checkLevelText accepts a level made of letters, digits and . _ - +.
func checkLevelText(src, field, v string) error {
	if v == "" {
		return parseErr(src, field, "empty level")
	}
	if len(v) > maxLevelLen {
		return parseErr(src, field, "level is %d characters long, more than %d", len(v), maxLevelLen)
	}
	for _, r := range v {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '+') {
			return parseErr(src, field, "level %q has the character %q; a level is made of letters, digits and . _ - +", clip(v), r)
		}
	}
	return nil
}

// checkText refuses output that is too long or not text.
func checkText(src string, out []byte) error {
	if len(out) > MaxToolOutput {
		return parseErr(src, "output", "%d bytes, more than the %d a firmware tool prints", len(out), MaxToolOutput)
	}
	if !utf8.Valid(out) {
		return parseErr(src, "output", "not UTF-8 text")
	}
	if bytes.IndexByte(out, 0) >= 0 {
		return parseErr(src, "output", "holds a NUL byte")
	}
	return nil
}

// LsmcodeFailure recognises lsmcode's failure messages (printed on stdout)
// and returns the error code and the message; ok is false for any other
// output.
func LsmcodeFailure(out []byte) (code, message string, ok bool) {
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Must be run as root"):
			return api.CodeFirmwarePermissionDenied, line, true
		case strings.HasPrefix(line, "lsmcode is not supported on the"):
			return api.CodeFirmwareUpdateUnsupported, line, true
		case strings.HasPrefix(line, "Please run") && strings.Contains(line, "vpdupdate"):
			return api.CodeFirmwareVPDMissing, line, true
		case strings.HasPrefix(line, "Error reading VPD DB"), strings.HasPrefix(line, "Unable to process vpd DB"):
			return api.CodeFirmwareVPDMissing, line, true
		}
	}
	return "", "", false
}

// missingLine is the error of output without the expected line: the tool's
// own failure message when it printed one.
func missingLine(src string, out []byte, prefix string) error {
	if _, msg, ok := LsmcodeFailure(out); ok {
		return parseErr(src, "system firmware", "no system firmware line; lsmcode said %q", msg)
	}
	first := ""
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			first = l
			break
		}
	}
	if first == "" {
		return parseErr(src, "system firmware", "empty output, want a line starting %q", strings.TrimSpace(prefix))
	}
	return parseErr(src, "system firmware", "no line starts %q (first line: %q)", strings.TrimSpace(prefix), clip(first))
}

// clip shortens a value quoted in a message.
func clip(s string) string {
	if len(s) <= 60 {
		return s
	}
	cut := 60
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// FormatLsmcode prints sf as plain lsmcode does (the inverse of
// ParseLsmcode, used by tests and fakes).
func FormatLsmcode(sf agentapi.SystemFirmware) string {
	s := fmt.Sprintf("%s%s (t) %s (p) %s (b)\n", lsmcodeHumanPrefix, sf.Temporary, sf.Permanent, sf.Booted)
	if sf.Service != "" {
		s += lsmcodePFWPrefix + sf.Service + "\n"
	}
	return s
}
