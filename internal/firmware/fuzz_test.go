package firmware

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/test/fakehost"
)

var lsmcodeSeeds = []string{
	"Version of System Firmware is SV810_133 (t) SV810_081 (p) SV810_133 (b)\n",
	"Version of System Firmware is FW860.20 (SV860_082) (t) FW860.10 (SV860_056) (p) FW860.20 (SV860_082) (b)\nVersion of PFW is 0F27\n",
	"Version of System Firmware is  (t)  (p)  (b)\n",
	"Must be run as root!\n",
	"sys0!system:SF240_320 (t) SF220_051 (p) SF240_320 (t)service:\n",
	"sys0!system: FW860.20 (SV860_082) (t) FW860.10 (SV860_056) (p) FW860.20 (SV860_082) (b)|service: 0F27\nsg0 sda !ST600MM0006.B56D\n",
	"",
}

// checkFirmware checks the invariants of a successful lsmcode parse.
func checkFirmware(t *testing.T, sf agentapi.SystemFirmware) {
	for _, l := range []agentapi.FirmwareLevel{sf.Temporary, sf.Permanent, sf.Booted} {
		if l.Name == "" || checkLevelText("x", "x", l.Name) != nil {
			t.Fatalf("accepted a bad level %+v", l)
		}
		if l.Image != "" && checkLevelText("x", "x", l.Image) != nil {
			t.Fatalf("accepted a bad image level %+v", l)
		}
	}
	switch sf.BootedSide {
	case agentapi.FirmwareSideUnknown, agentapi.FirmwareSideTemporary, agentapi.FirmwareSidePermanent:
	default:
		t.Fatalf("booted side %q", sf.BootedSide)
	}
}

func FuzzParseLsmcode(f *testing.F) {
	for _, s := range lsmcodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		sf, err := ParseLsmcode(out)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			return
		}
		checkFirmware(t, sf)
		// What was read prints back to the same levels.
		again, err := ParseLsmcode([]byte(FormatLsmcode(sf)))
		if err != nil || again.Temporary != sf.Temporary || again.Permanent != sf.Permanent || again.Booted != sf.Booted {
			t.Fatalf("round trip of %+v: %+v, %v", sf, again, err)
		}
	})
}

func FuzzParseLsmcodeA(f *testing.F) {
	for _, s := range lsmcodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		sf, err := ParseLsmcodeA(out)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			return
		}
		checkFirmware(t, sf)
	})
}

var validationSeeds = []string{
	referenceValidation,
	referenceValidation + "\nFLASH: Image ready...rebooting the system...\nFLASH: This will take several minutes.\nFLASH: Do not power off!\n",
	"info: Temporary side will be updated with a downlevel image.\n\nProjected Flash Update Results:\nCurrent T Image: SV860_100\nCurrent P Image: SV860_100\nNew T Image:     SV810_133\nNew P Image:     SV860_100\n",
	"Flash image ready...rebooting the system...\n",
	"Projected Flash Update Results:\nCurrent T Image: \n",
	"Success: Committed temporary firmware image.\n",
}

func FuzzParseValidation(f *testing.F) {
	for _, s := range validationSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		p, err := ParseValidation(out)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			return
		}
		for _, v := range []string{p.CurrentT, p.CurrentP, p.NewT, p.NewP} {
			if checkLevelText("x", "x", v) != nil {
				t.Fatalf("accepted a bad level %q in %+v", v, p)
			}
		}
	})
}

func FuzzParseFlash(f *testing.F) {
	for _, s := range validationSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := ParseFlash(out)
		if err != nil {
			return
		}
		if r.Ready == "" || !strings.Contains(string(out), r.Ready) {
			t.Fatalf("ready line %q not in the output", r.Ready)
		}
		_ = ParseManage(out, true)
		_ = ParseManage(out, false)
	})
}

func FuzzParseUpdateFlashFailure(f *testing.F) {
	f.Add(4, []byte(""), []byte("update_flash: Must be root to execute this command.\n"))
	f.Add(8, []byte(""), []byte("update_flash: Invalid candidate image for this platform.\n"))
	f.Add(1, []byte("update_flash: Unknown platform\n"), []byte(""))
	f.Add(3, []byte(""), []byte("USAGE: update_flash {-h | -s | -r | -c | -d | [-v|-n] -f <image filename>}\n"))
	f.Add(-1, []byte("\xff\x00"), []byte("update_flash:"))
	f.Fuzz(func(t *testing.T, status int, stdout, stderr []byte) {
		got := ParseUpdateFlashFailure(status, stdout, stderr)
		if got.Code == "" || got.Reason == "" || got.Message == "" {
			t.Fatalf("incomplete failure %+v", got)
		}
		if len(got.Message) > 420 {
			t.Fatalf("message of %d bytes", len(got.Message))
		}
		if got.ExitStatus != status {
			t.Fatalf("exit status %d, want %d", got.ExitStatus, status)
		}
	})
}

// FuzzExtractImage feeds the RPM reader packages built with every
// compressor, and whatever the fuzzer makes of them.
func FuzzExtractImage(f *testing.F) {
	img := fakehost.Image("SV860_100", "8247-22L")
	for _, comp := range []string{"gzip", "xz", "zstd", "identity"} {
		data, err := fakehost.BuildRPM(fakehost.FirmwareRPM("01SV860_100_081", img, comp))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(img)
	f.Add([]byte{0xed, 0xab, 0xee, 0xdb})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		info, err := ExtractImage(bytes.NewReader(data), "fuzz.rpm", &out, Limits{MaxImageBytes: 1 << 20})
		if err != nil {
			if _, ok := err.(*api.Error); !ok {
				t.Fatalf("error %T %v is not a *firmware.Error", err, err)
			}
			return
		}
		if info.Format != "rpm" || info.Size != int64(out.Len()) || info.Size > 1<<20 || info.SHA256 != sum(out.Bytes()) {
			t.Fatalf("info %+v for %d extracted bytes", info, out.Len())
		}
		// A bare image upload of the same bytes is accepted or refused, never a panic.
		_, _ = ExtractImage(bytes.NewReader(data), "fuzz.img", io.Discard, Limits{MaxImageBytes: 1 << 20})
	})
}

// FuzzLoadState: any state file gives an operation or a FIRMWARE_STATE_FILE
// error, never a panic; an accepted one round-trips through saveState.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"format":"polyvirt-firmware-state","version":1,"operation":{"id":"fw-1","state":"validated","steps":[]}}`))
	f.Add([]byte(`{"format":"polyvirt-firmware-state","version":1}`))
	f.Add([]byte(`{"format":"x","version":2}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, StateFileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		op, err := loadState(path)
		if err != nil {
			var fe *api.Error
			if !errors.As(err, &fe) || fe.Code != api.CodeFirmwareStateFile {
				t.Fatalf("error %v is not a %s error", err, api.CodeFirmwareStateFile)
			}
			return
		}
		if op == nil {
			return
		}
		if err := saveState(path, op); err != nil {
			t.Fatalf("saving an accepted state: %v", err)
		}
		again, err := loadState(path)
		if err != nil || again.ID != op.ID || again.State != op.State {
			t.Fatalf("round trip: %+v, %v; want %s %s", again, err, op.ID, op.State)
		}
	})
}
