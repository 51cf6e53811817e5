package firmware

import (
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func lv(name string) agentapi.FirmwareLevel { return agentapi.FirmwareLevel{Name: name} }

func TestParseLsmcode(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    agentapi.SystemFirmware
		wantErr string
	}{
		{
			name: "reference page",
			out:  "Version of System Firmware is SV810_133 (t) SV810_081 (p) SV810_133 (b)\n",
			want: agentapi.SystemFirmware{Temporary: lv("SV810_133"), Permanent: lv("SV810_081"), Booted: lv("SV810_133"), BootedSide: agentapi.FirmwareSideTemporary},
		},
		{
			name: "booted from the permanent side",
			out:  "Version of System Firmware is SV860_100 (t) SV810_081 (p) SV810_081 (b)\n",
			want: agentapi.SystemFirmware{Temporary: lv("SV860_100"), Permanent: lv("SV810_081"), Booted: lv("SV810_081"), BootedSide: agentapi.FirmwareSidePermanent},
		},
		{
			name: "both sides equal: the side is unknown",
			out:  "Version of System Firmware is SV810_081 (t) SV810_081 (p) SV810_081 (b)\n",
			want: agentapi.SystemFirmware{Temporary: lv("SV810_081"), Permanent: lv("SV810_081"), Booted: lv("SV810_081")},
		},
		{
			name: "ML and MI records with the PFW line",
			out: "Version of System Firmware is FW860.20 (SV860_082) (t) FW860.10 (SV860_056) (p) FW860.20 (SV860_082) (b)\n" +
				"Version of PFW is 0F27\n",
			want: agentapi.SystemFirmware{
				Temporary: agentapi.FirmwareLevel{Name: "FW860.20", Image: "SV860_082"}, Permanent: agentapi.FirmwareLevel{Name: "FW860.10", Image: "SV860_056"},
				Booted: agentapi.FirmwareLevel{Name: "FW860.20", Image: "SV860_082"}, BootedSide: agentapi.FirmwareSideTemporary, Service: "0F27",
			},
		},
		{
			name:    "not root",
			out:     "Must be run as root!\n",
			wantErr: `lsmcode: system firmware: no system firmware line; lsmcode said "Must be run as root!"`,
		},
		{
			name:    "guest",
			out:     "lsmcode is not supported on the PowerKVM pSeries Guest\n",
			wantErr: `lsmcode: system firmware: no system firmware line; lsmcode said "lsmcode is not supported on the PowerKVM pSeries Guest"`,
		},
		{
			name:    "no VPD database",
			out:     "Please run /usr/sbin/vpdupdate before running lsmcode.\n",
			wantErr: `lsmcode: system firmware: no system firmware line; lsmcode said "Please run /usr/sbin/vpdupdate before running lsmcode."`,
		},
		{
			name:    "empty",
			out:     "",
			wantErr: `lsmcode: system firmware: empty output, want a line starting "Version of System Firmware is"`,
		},
		{
			name:    "other text",
			out:     "hello\n",
			wantErr: `lsmcode: system firmware: no line starts "Version of System Firmware is" (first line: "hello")`,
		},
		{
			name:    "empty levels (old style, VPD without MI)",
			out:     "Version of System Firmware is  (t)  (p)  (b)\n",
			wantErr: `lsmcode: temporary: no level before the marker (t)`,
		},
		{
			name:    "two levels only",
			out:     "Version of System Firmware is SV810_133 (t) SV810_081 (p)\n",
			wantErr: `lsmcode: booted: missing: the line ends after 2 of 3 levels ("SV810_133 (t) SV810_081 (p)")`,
		},
		{
			name:    "no marker",
			out:     "Version of System Firmware is SV810_133 SV810_081 (p) SV810_133 (b)\n",
			wantErr: `lsmcode: temporary: expected a (t), (p) or (b) marker after SV810_133, got "SV810_081"`,
		},
		{
			name:    "sides swapped",
			out:     "Version of System Firmware is SV810_081 (p) SV810_133 (t) SV810_133 (b)\n",
			wantErr: `lsmcode: temporary: the first level is marked (p), want (t)`,
		},
		{
			name:    "trailing text",
			out:     "Version of System Firmware is SV810_133 (t) SV810_081 (p) SV810_133 (b) extra\n",
			wantErr: `lsmcode: system firmware: unexpected text after the third level: "extra"`,
		},
		{
			name:    "bad character",
			out:     "Version of System Firmware is SV810;rm (t) SV810_081 (p) SV810_133 (b)\n",
			wantErr: `lsmcode: temporary: level "SV810;rm" has the character ';'; a level is made of letters, digits and . _ - +`,
		},
		{
			name:    "line twice",
			out:     strings.Repeat("Version of System Firmware is SV810_133 (t) SV810_081 (p) SV810_133 (b)\n", 2),
			wantErr: `lsmcode: system firmware: the "Version of System Firmware is" line appears twice`,
		},
		{
			name:    "level too long",
			out:     "Version of System Firmware is " + strings.Repeat("A", 70) + " (t) SV810_081 (p) SV810_133 (b)\n",
			wantErr: `lsmcode: temporary: level is 70 characters long, more than 64`,
		},
		{
			name:    "NUL byte",
			out:     "Version of System Firmware is SV810_133\x00 (t)",
			wantErr: `lsmcode: output: holds a NUL byte`,
		},
		{
			name:    "not UTF-8",
			out:     "Version \xff",
			wantErr: `lsmcode: output: not UTF-8 text`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLsmcode([]byte(tt.out))
			checkParse(t, tt.want, got, tt.wantErr, err)
		})
	}
}

func TestParseLsmcodeA(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    agentapi.SystemFirmware
		wantErr string
	}{
		{
			name: "reference page",
			out:  "sys0!system:SF240_320 (t) SF220_051 (p) SF240_320 (t)service:\n",
			want: agentapi.SystemFirmware{Temporary: lv("SF240_320"), Permanent: lv("SF220_051"), Booted: lv("SF240_320"), BootedSide: agentapi.FirmwareSideTemporary},
		},
		{
			name: "booted from the permanent side, marker says so",
			out:  "sys0!system:SV810_081 (t) SV810_081 (p) SV810_081 (p)|service:\n",
			want: agentapi.SystemFirmware{Temporary: lv("SV810_081"), Permanent: lv("SV810_081"), Booted: lv("SV810_081"), BootedSide: agentapi.FirmwareSidePermanent},
		},
		{
			name: "lsvpd form with the service processor level and other devices",
			out: "sys0!system: FW860.20 (SV860_082) (t) FW860.10 (SV860_056) (p) FW860.20 (SV860_082) (b)|service: 0F27\n" +
				"sg0 sda !ST600MM0006.B56D\n",
			want: agentapi.SystemFirmware{
				Temporary: agentapi.FirmwareLevel{Name: "FW860.20", Image: "SV860_082"}, Permanent: agentapi.FirmwareLevel{Name: "FW860.10", Image: "SV860_056"},
				Booted: agentapi.FirmwareLevel{Name: "FW860.20", Image: "SV860_082"}, BootedSide: agentapi.FirmwareSideTemporary, Service: "0F27",
			},
		},
		{
			name:    "only devices",
			out:     "sg0 sda !ST600MM0006.B56D\n",
			wantErr: `lsmcode -A: system firmware: no line starts "sys0!system:" (first line: "sg0 sda !ST600MM0006.B56D")`,
		},
		{
			name:    "third marker missing",
			out:     "sys0!system:SF240_320 (t) SF220_051 (p) SF240_320 service:\n",
			wantErr: `lsmcode -A: booted: level SF240_320 has no (t), (p) or (b) marker`,
		},
		{
			name:    "permanent marked (b)",
			out:     "sys0!system:SF240_320 (t) SF220_051 (b) SF240_320 (t)service:\n",
			wantErr: `lsmcode -A: permanent: the second level is marked (b), want (p)`,
		},
		{
			name:    "bad service level",
			out:     "sys0!system:SF240_320 (t) SF220_051 (p) SF240_320 (t)service:a b\n",
			wantErr: `lsmcode -A: service: level "a b" has the character ' '; a level is made of letters, digits and . _ - +`,
		},
		{
			name:    "not root",
			out:     "Must be run as root!\n",
			wantErr: `lsmcode -A: system firmware: no system firmware line; lsmcode said "Must be run as root!"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLsmcodeA([]byte(tt.out))
			checkParse(t, tt.want, got, tt.wantErr, err)
		})
	}
}

// checkParse compares a parse result or its error message.
func checkParse[T any](t *testing.T, want, got T, wantErr string, err error) {
	t.Helper()
	if wantErr != "" {
		if err == nil {
			t.Fatalf("no error, want %q; got %+v", wantErr, got)
		}
		if diff := cmp.Diff(wantErr, err.Error()); diff != "" {
			t.Errorf("error (-want +got):\n%s", diff)
		}
		return
	}
	if err != nil {
		t.Fatalf("error: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFormatLsmcodeRoundTrip(t *testing.T) {
	tests := []agentapi.SystemFirmware{
		{Temporary: lv("SV810_133"), Permanent: lv("SV810_081"), Booted: lv("SV810_133"), BootedSide: agentapi.FirmwareSideTemporary},
		{Temporary: agentapi.FirmwareLevel{Name: "FW860.20", Image: "SV860_082"}, Permanent: agentapi.FirmwareLevel{Name: "FW860.10", Image: "SV860_056"},
			Booted: agentapi.FirmwareLevel{Name: "FW860.10", Image: "SV860_056"}, BootedSide: agentapi.FirmwareSidePermanent, Service: "0F27"},
	}
	for _, sf := range tests {
		got, err := ParseLsmcode([]byte(FormatLsmcode(sf)))
		if err != nil {
			t.Fatalf("ParseLsmcode(FormatLsmcode(%+v)): %v", sf, err)
		}
		if diff := cmp.Diff(sf, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func TestLsmcodeFailure(t *testing.T) {
	tests := []struct {
		out  string
		code string
		ok   bool
	}{
		{"Must be run as root!\n", api.CodeFirmwarePermissionDenied, true},
		{"lsmcode is not supported on the PowerKVM pSeries Guest\n", api.CodeFirmwareUpdateUnsupported, true},
		{"Please run /usr/sbin/vpdupdate before running lsmcode.\n", api.CodeFirmwareVPDMissing, true},
		{"Error reading VPD DB: bad\n", api.CodeFirmwareVPDMissing, true},
		{"Version of System Firmware is SV810_133 (t) SV810_081 (p) SV810_133 (b)\n", "", false},
	}
	for _, tt := range tests {
		code, _, ok := LsmcodeFailure([]byte(tt.out))
		if diff := cmp.Diff([]any{tt.code, tt.ok}, []any{code, ok}); diff != "" {
			t.Errorf("LsmcodeFailure(%q) (-want +got):\n%s", tt.out, diff)
		}
	}
}
