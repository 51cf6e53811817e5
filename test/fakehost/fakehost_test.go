package fakehost_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/firmware"
	"polyvirt/internal/hostexec"
	"polyvirt/test/fakehost"
)

type run struct {
	Stdout, Stderr string
	Exit           int
}

func newHost(t *testing.T, o fakehost.Options) (*fakehost.Host, *hostexec.Exec) {
	t.Helper()
	h, err := fakehost.New(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Runner()
	if err != nil {
		t.Fatal(err)
	}
	return h, r
}

func do(t *testing.T, r hostexec.Runner, name string, args ...string) run {
	t.Helper()
	res, err := r.Run(context.Background(), hostexec.Command{Name: name, Args: args})
	if err != nil && !errors.Is(err, hostexec.ErrExit) {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return run{string(res.Stdout), string(res.Stderr), res.ExitCode}
}

// TestTools checks the fake tools' texts and exit statuses, which mirror
// lsvpd's lsmcode and powerpc-utils' update_flash_nv.
func TestTools(t *testing.T) {
	h, r := newHost(t, fakehost.Options{Temporary: "SV810_133", Permanent: "SV810_081"})
	dir := t.TempDir()
	good := filepath.Join(dir, "01SV860_100_081.img")
	wrong := filepath.Join(dir, "other.img")
	junk := filepath.Join(dir, "junk.img")
	for p, data := range map[string][]byte{
		good:  fakehost.Image("SV860_100", "8247-21L", "8247-22L"),
		wrong: fakehost.Image("SV860_100", "8286-41A"),
		junk:  []byte("MZ\x90\x00"),
	} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	validation := "info: Current Temporary side will be committed to\nPermanent side before being replaced with the new\nimage.\n\n" +
		"Projected Flash Update Results:\nCurrent T Image: SV810_133\nCurrent P Image: SV810_081\nNew T Image:     SV860_100\nNew P Image:     SV810_133\n"
	tests := []struct {
		name string
		prog string
		args []string
		want run
	}{
		{"lsmcode", "lsmcode", nil, run{Stdout: "Version of System Firmware is SV810_133 (t) SV810_081 (p) SV810_133 (b)\n"}},
		{"lsmcode -A", "lsmcode", []string{"-A"}, run{Stdout: "sys0!system:SV810_133 (t) SV810_081 (p) SV810_133 (t)service:\nsg0 sda !ST600MM0006.B56D\n"}},
		{"lsmcode bad option", "lsmcode", []string{"-x"}, run{Exit: 1}},
		{"validate", "update_flash", []string{"-v", "-f", good}, run{Stdout: validation}},
		{"validate, wrong machine", "update_flash", []string{"-v", "-f", wrong},
			run{Stderr: "update_flash: Invalid candidate image for this platform.\n", Exit: 8}},
		{"validate, not an image", "update_flash", []string{"-v", "-f", junk},
			run{Stderr: "update_flash: Invalid candidate image.\n", Exit: 5}},
		{"validate, missing file", "update_flash", []string{"-v", "-f", filepath.Join(dir, "none.img")},
			run{Stderr: "update_flash: Cannot read " + filepath.Join(dir, "none.img") + ".\n", Exit: 5}},
		{"-n needs a commit", "update_flash", []string{"-n", "-f", good},
			run{Stdout: validation + "\nupdate_flash: Run without -n option to flash new image.\n", Exit: 10}},
		{"-v with -n", "update_flash", []string{"-v", "-n", "-f", good}, run{Exit: 3}},
		{"unknown option", "update_flash", []string{"-x"}, run{Stderr: "update_flash: Unknown option -x.\n", Exit: 3}},
		{"not implemented", "update_flash", []string{"-q"}, run{Stderr: "update_flash: The -q option is not implemented.\n", Exit: 3}},
		{"query", "update_flash", []string{"-s"}, run{Stdout: "update_flash: Firmware image management is supported.\n"}},
		{"display", "update_flash", []string{"-d"},
			run{Stdout: "Current firwmare version :\n  P side    : SV810_081 (SV810_081)\n  T side    : SV810_133 (SV810_133)\n  Boot side : SV810_133 (SV810_133)\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := do(t, r, tt.prog, tt.args...)
			if tt.want.Stdout == "" && tt.want.Stderr == "" && tt.want.Exit != 0 {
				got.Stderr, got.Stdout = "", "" // usage text: the status is the point
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	l, err := h.Levels()
	if err != nil {
		t.Fatal(err)
	}
	if l.Pending != "" || l.RebootRequested {
		t.Errorf("validation changed the host: %+v", l)
	}
}

// TestFlashRebootCommitReject walks the banks through the fake tools and
// the reboot helper.
func TestFlashRebootCommitReject(t *testing.T) {
	h, r := newHost(t, fakehost.Options{Temporary: "SV810_081"})
	img := filepath.Join(t.TempDir(), "new.img")
	if err := os.WriteFile(img, fakehost.Image("SV860_100", "8247-22L"), 0o644); err != nil {
		t.Fatal(err)
	}
	levels := func() fakehost.Levels {
		l, err := h.Levels()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	boot0, _ := h.BootID()
	got := do(t, r, "update_flash", "-f", img)
	if got.Exit != 0 || !bytes.Contains([]byte(got.Stdout), []byte("FLASH: Image ready...rebooting the system...")) {
		t.Fatalf("flash: %+v", got)
	}
	want := fakehost.Levels{Temporary: "SV810_081", Permanent: "SV810_081", BootedSide: "t", BootedLevel: "SV810_081",
		Pending: "SV860_100 SV810_081", RebootRequested: true}
	if diff := cmp.Diff(want, levels()); diff != "" {
		t.Errorf("after flash (-want +got):\n%s", diff)
	}
	if err := h.CompleteReboot(false); err != nil {
		t.Fatal(err)
	}
	if boot1, _ := h.BootID(); boot1 == boot0 || boot1 == "" {
		t.Errorf("boot id %q did not change from %q", boot1, boot0)
	}
	want = fakehost.Levels{Temporary: "SV860_100", Permanent: "SV810_081", BootedSide: "t", BootedLevel: "SV860_100"}
	if diff := cmp.Diff(want, levels()); diff != "" {
		t.Errorf("after reboot (-want +got):\n%s", diff)
	}
	if got := do(t, r, "update_flash", "-r"); got.Stdout != "Success: Rejected temporary firmware image.\n" {
		t.Errorf("reject: %+v", got)
	}
	want = fakehost.Levels{Temporary: "SV810_081", Permanent: "SV810_081", BootedSide: "t", BootedLevel: "SV860_100"}
	if diff := cmp.Diff(want, levels()); diff != "" {
		t.Errorf("after reject (-want +got):\n%s", diff)
	}
	// Fallback boot: the system runs the permanent side; commit refuses.
	do(t, r, "update_flash", "-f", img)
	if err := h.CompleteReboot(true); err != nil {
		t.Fatal(err)
	}
	if got := do(t, r, "update_flash", "-c"); got.Exit != 10 || got.Stderr != "update_flash: Cannot Overwrite the Active Firmware Image.\n" {
		t.Errorf("commit on the permanent side: %+v", got)
	}
	if err := h.CompleteReboot(false); err != nil {
		t.Fatal(err)
	}
	if got := do(t, r, "update_flash", "-c"); got.Stdout != "Success: Committed temporary firmware image.\n" {
		t.Errorf("commit: %+v", got)
	}
	if l := levels(); l.Temporary != "SV860_100" || l.Permanent != "SV860_100" {
		t.Errorf("after commit: %+v", l)
	}
	calls, err := h.Calls()
	if err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{"update_flash -f " + img, "reboot", "update_flash -r", "update_flash -f " + img, "reboot",
		"update_flash -c", "reboot", "update_flash -c"}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestFailureKnobs(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *fakehost.Host) error
		prog  string
		args  []string
		want  run
	}{
		{"update_flash as a user", func(h *fakehost.Host) error { return h.SetUser("nobody") }, "update_flash", []string{"-c"},
			run{Stderr: "update_flash: Must be root to execute this command.\n", Exit: 4}},
		{"lsmcode as a user", func(h *fakehost.Host) error { return h.SetUser("nobody") }, "lsmcode", nil,
			run{Stdout: "Must be run as root!\n", Exit: 255}},
		{"unknown platform", func(h *fakehost.Host) error { return h.SetPlatform("unknown") }, "update_flash", []string{"-c"},
			run{Stdout: "update_flash: Unknown platform\n", Exit: 1}},
		{"no sysfs", func(h *fakehost.Host) error { return h.SetPlatform("nosysfs") }, "update_flash", []string{"-c"},
			run{Stderr: "update_flash: sysfs interface for firmware update does not exists.\n", Exit: 6}},
		{"lsmcode in a guest", func(h *fakehost.Host) error { return h.Set("lsmcode_unsupported", "PowerKVM pSeries Guest") }, "lsmcode", nil,
			run{Stdout: "lsmcode is not supported on the PowerKVM pSeries Guest\n", Exit: 1}},
		{"no VPD database", func(h *fakehost.Host) error { return h.Set("no_vpd_db", "") }, "lsmcode", nil,
			run{Stdout: "Please run /usr/sbin/vpdupdate before running lsmcode.\n", Exit: 1}},
		{"reject on the active side", func(h *fakehost.Host) error { return h.Set("reject_needs_p_side", "") }, "update_flash", []string{"-r"},
			run{Stderr: "update_flash: Cannot Overwrite the Active Firmware Image.\n", Exit: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, r := newHost(t, fakehost.Options{})
			if err := tt.setup(h); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, do(t, r, tt.prog, tt.args...)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHang(t *testing.T) {
	h, r := newHost(t, fakehost.Options{})
	if err := h.Hang("commit"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Run(context.Background(), hostexec.Command{Name: "update_flash", Args: []string{"-c"}, Timeout: 200 * time.Millisecond})
	if !errors.Is(err, hostexec.ErrTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if err := h.Hang(); err != nil {
		t.Fatal(err)
	}
	if got := do(t, r, "update_flash", "-c"); got.Exit != 0 {
		t.Errorf("after Hang(): %+v", got)
	}
}

// TestBuildRPM checks that the builder's packages read back through the
// firmware package's RPM reader.
func TestBuildRPM(t *testing.T) {
	img := fakehost.Image("SV860_100", "8247-22L")
	for _, comp := range []string{"gzip", "xz", "zstd", "identity"} {
		data, err := fakehost.BuildRPM(fakehost.FirmwareRPM("01SV860_100_081", img, comp))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		info, err := firmware.ExtractImage(bytes.NewReader(data), "01SV860_100_081.rpm", &out, firmware.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		if !bytes.Equal(out.Bytes(), img) || info.ImageName != "01SV860_100_081.img" || info.Package.PayloadCompressor != comp {
			t.Errorf("%s: %+v", comp, info)
		}
	}
	if _, err := fakehost.BuildRPM(fakehost.RPMSpec{Compressor: "lz4"}); err == nil {
		t.Error("an unknown compressor was accepted")
	}
}
