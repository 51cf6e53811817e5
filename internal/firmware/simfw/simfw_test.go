package simfw

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/firmware"
	"polyvirt/internal/hostexec"
	"polyvirt/internal/profiles"
)

// s822l is the S822L's firmware as its profile carries it.
var s822l = Machine{TypeModel: "8247-22L", Temporary: "SV810_081", Permanent: "SV810_081"}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func run(t *testing.T, h *Host, name string, args ...string) (hostexec.Result, error) {
	t.Helper()
	return h.Run(context.Background(), hostexec.Command{Name: name, Args: args})
}

// TestToolsPrintWhatTheRealOnesPrint: the simulated lsmcode and
// update_flash outputs are read by the parsers of the real tools' output.
func TestToolsPrintWhatTheRealOnesPrint(t *testing.T) {
	h, err := Open(t.TempDir(), s822l, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(t, h, "lsmcode", "-A")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "sys0!system:SV810_081 (t) SV810_081 (p) SV810_081 (t)service:\n" {
		t.Errorf("lsmcode -A: %q", got)
	}
	sf, err := firmware.ParseLsmcodeA(res.Stdout)
	if err != nil || sf.Temporary.Name != "SV810_081" || sf.BootedSide != agentapi.FirmwareSideTemporary {
		t.Errorf("ParseLsmcodeA: %+v %v", sf, err)
	}
	res, _ = run(t, h, "lsmcode")
	if _, err := firmware.ParseLsmcode(res.Stdout); err != nil {
		t.Errorf("lsmcode: %q: %v", res.Stdout, err)
	}
	img := filepath.Join(t.TempDir(), "01SV810_133_081.img")
	if err := os.WriteFile(img, Image("SV810_133", "8247-21L", "8247-22L"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = run(t, h, "update_flash", "-v", "-f", img)
	if err != nil {
		t.Fatal(err)
	}
	p, err := firmware.ParseValidation(res.Stdout)
	want := agentapi.FirmwareProjection{CurrentT: "SV810_081", CurrentP: "SV810_081", NewT: "SV810_133", NewP: "SV810_081",
		Info: []string{"Temporary side will be updated with a newer or identical image."}}
	if diff := cmp.Diff(want, p); err != nil || diff != "" {
		t.Errorf("validation (-want +got):\n%s%v", diff, err)
	}
	if res, err := run(t, h, "update_flash", "-s"); err != nil || !strings.Contains(string(res.Stdout), "management is supported") {
		t.Errorf("-s: %q %v", res.Stdout, err)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-v", "-f", filepath.Join(t.TempDir(), "missing.img")}, 5, "Cannot read"},
		{[]string{"-x"}, 3, "Unknown option -x."},
		{[]string{"-c", "-r"}, 3, "USAGE:"},
		{[]string{"-v"}, 3, "USAGE:"},
	} {
		res, err := run(t, h, "update_flash", c.args...)
		code, ok := hostexec.ExitCode(err)
		f := firmware.ParseUpdateFlashFailure(res.ExitCode, res.Stdout, res.Stderr)
		if !ok || code != c.code || !strings.Contains(f.Message, c.msg) {
			t.Errorf("update_flash %v: exit %d (%v), %q; want %d %q", c.args, code, err, f.Message, c.code, c.msg)
		}
	}
	// Images that are not simulated ones, or for another machine.
	other := filepath.Join(t.TempDir(), "x.img")
	os.WriteFile(other, Image("SV860_100", "8286-41A"), 0o600)
	res, err = run(t, h, "update_flash", "-v", "-f", other)
	if f := firmware.ParseUpdateFlashFailure(res.ExitCode, res.Stdout, res.Stderr); f.Code != api.CodeFirmwareImageWrongMachine {
		t.Errorf("another machine's image: %+v (%v)", f, err)
	}
	os.WriteFile(other, []byte("\x7fELF binary"), 0o600)
	res, _ = run(t, h, "update_flash", "-f", other)
	if f := firmware.ParseUpdateFlashFailure(res.ExitCode, res.Stdout, res.Stderr); f.Code != api.CodeFirmwareImageInvalid || !strings.Contains(f.Message, ImageMagic) {
		t.Errorf("a real image: %+v", f)
	}
	if _, err := run(t, h, "rpm", "-Uvh"); err == nil || !strings.Contains(err.Error(), "command not found") {
		t.Errorf("another program: %v", err)
	}
}

// TestWorkflowOnAProfile runs the whole update of
// ../shared/reference/power-firmware.md through the firmware manager on
// the S822L profile's simulated firmware: upload, validate, flash, the
// simulated reboot (the new level on the temporary side, a new boot id),
// commit; then a second update rejected, the committed level back. The
// simulation survives the agent's restarts (a new Open of its directory).
func TestWorkflowOnAProfile(t *testing.T) {
	ctx := context.Background()
	p, err := profiles.Get("s822l-power8e")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	simDir, dataDir := t.TempDir(), t.TempDir()
	open := func() (*Host, *firmware.Manager) {
		h, err := Open(simDir, s822l, Options{RebootDelay: time.Minute, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		m, err := firmware.Open(firmware.Config{DataDir: dataDir, Arch: arch.PPC64LE, Runner: h, Root: h.Root(p.Root), Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		return h, m
	}
	h, m := open()
	inv, err := m.Inventory(ctx)
	if err != nil || inv.System == nil || inv.System.Temporary.Name != "SV810_081" || inv.TypeModel != "8247-22L" || inv.Serial != "0321C8F7A" {
		t.Fatalf("inventory %+v %v", inv, err)
	}
	update := func(level string) agentapi.FirmwareOperation {
		t.Helper()
		if _, err := m.Upload(ctx, bytes.NewReader(Image(level, "8247-22L")), "01"+level+"_081.img", "admin"); err != nil {
			t.Fatal(err)
		}
		op, err := m.Validate(ctx, "admin")
		if err != nil || op.State != agentapi.FirmwareStateValidated {
			t.Fatalf("validate: %s %v", op.State, err)
		}
		bootBefore, _ := h.BootID()
		op, err = m.Flash(ctx, "admin", firmware.Assert(firmware.Preconditions{Maintenance: true}))
		if err != nil || op.State != agentapi.FirmwareStateRebooting {
			t.Fatalf("flash: %s %v", op.State, err)
		}
		// Before the reboot is over: still rebooting, the old level runs.
		clk.add(30 * time.Second)
		if op, _ := m.Resume(ctx, "agent"); op.State != agentapi.FirmwareStateRebooting {
			t.Fatalf("30 s after the flash: %s", op.State)
		}
		// The agent restarts with the host.
		clk.add(31 * time.Second)
		h, m = open()
		op, err = m.Resume(ctx, "agent")
		if err != nil || op.State != agentapi.FirmwareStateAwaitingDecision || op.Booted == nil || op.Booted.Booted.Name != level ||
			op.Booted.Temporary.Name != level || op.Booted.BootedSide != agentapi.FirmwareSideTemporary {
			t.Fatalf("after the reboot: %s %+v %v", op.State, op.Booted, err)
		}
		if after, _ := h.BootID(); after == bootBefore {
			t.Errorf("the boot id did not change with the reboot")
		}
		return op
	}
	update("SV810_133")
	op, err := m.Commit(ctx, "admin")
	if err != nil || op.State != agentapi.FirmwareStateCommitted || op.After.Permanent.Name != "SV810_133" {
		t.Fatalf("commit: %s %+v %v", op.State, op.After, err)
	}
	update("SV810_140")
	op, err = m.Reject(ctx, "admin")
	if err != nil || op.State != agentapi.FirmwareStateRejected || op.After.Temporary.Name != "SV810_133" {
		t.Fatalf("reject: %s %+v %v", op.State, op.After, err)
	}
	var steps []string
	for _, s := range op.Steps {
		steps = append(steps, s.Step+" "+s.Result+" "+string(s.State))
	}
	want := []string{"upload ok uploaded", "validate started validating", "validate ok validated", "flash started flashing",
		"flash ok rebooting", "reboot ok awaiting-decision", "reject started rejecting", "reject ok rejected"}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	sf, pendingReboot, err := h.Levels()
	if err != nil || pendingReboot || sf.Temporary.Name != "SV810_133" || sf.Permanent.Name != "SV810_133" {
		t.Errorf("levels %+v pending %v %v", sf, pendingReboot, err)
	}
}

// TestStateFileRefused: a state file that is not one the simulation
// wrote is an error naming it, not a guess.
func TestStateFileRefused(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":      "{",
		"other format":  `{"format": "x", "version": 1}`,
		"bad level":     `{"format": "polyvirt-simulated-firmware", "version": 1, "typeModel": "8247-22L", "temporary": "SV 810", "permanent": "SV810_081", "bootedSide": "t", "bootedLevel": "SV810_081", "bootId": "x"}`,
		"bad side":      `{"format": "polyvirt-simulated-firmware", "version": 1, "typeModel": "8247-22L", "temporary": "SV810_081", "permanent": "SV810_081", "bootedSide": "b", "bootedLevel": "SV810_081", "bootId": "x"}`,
		"unknown field": `{"format": "polyvirt-simulated-firmware", "version": 1, "extra": 1}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, StateFileName)
			os.WriteFile(p, []byte(content), 0o600)
			if _, err := Open(dir, s822l, Options{}); err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("Open: %v", err)
			}
		})
	}
	if _, err := Open(t.TempDir(), Machine{TypeModel: "8247-22L", Temporary: "", Permanent: "SV810_081"}, Options{}); err == nil {
		t.Error("a machine without a temporary level opened")
	}
}

// FuzzImage feeds hostile images to the simulated update_flash: it
// refuses what is not a simulated image for its machine with the real
// tool's exit statuses, and never changes the banks on a validation.
func FuzzImage(f *testing.F) {
	f.Add(Image("SV810_133", "8247-22L"))
	f.Add(Image("SV810_133", "8286-41A"))
	f.Add([]byte(ImageMagic + "\nlevel=\nmachines=8247-22L\n"))
	f.Add([]byte(ImageMagic + "\nlevel=../../etc\nmachines=8247-22L 8247-22L\n"))
	f.Add([]byte("\x00\xff"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, img []byte) {
		h, err := Open(t.TempDir(), s822l, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "img")
		if err := os.WriteFile(p, img, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := run(t, h, "update_flash", "-v", "-f", p)
		if err != nil {
			if code, _ := hostexec.ExitCode(err); code != 5 && code != 8 {
				t.Fatalf("exit %d: %v", code, err)
			}
			return
		}
		proj, perr := firmware.ParseValidation(res.Stdout)
		if perr != nil || proj.CurrentT != "SV810_081" {
			t.Fatalf("validation %q: %v", res.Stdout, perr)
		}
		if sf, _, _ := h.Levels(); sf.Temporary.Name != "SV810_081" {
			t.Fatalf("a validation changed the banks: %+v", sf)
		}
	})
}

// FuzzStateFile feeds hostile state files to Open: refused with an error,
// or read into a state the tools print parseable output from.
func FuzzStateFile(f *testing.F) {
	good, _ := os.ReadFile(func() string {
		dir := f.TempDir()
		if _, err := Open(dir, s822l, Options{}); err != nil {
			f.Fatal(err)
		}
		return filepath.Join(dir, StateFileName)
	}())
	f.Add(good)
	f.Add([]byte(strings.Replace(string(good), `"t"`, `"p"`, 1)))
	f.Add([]byte(`{"format": "polyvirt-simulated-firmware", "version": 1, "pending": {"temporary": "x", "permanent": "y", "rebootAt": "0001-01-01T00:00:00Z"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, StateFileName), data, 0o600)
		h, err := Open(dir, s822l, Options{})
		if err != nil {
			return
		}
		res, err := run(t, h, "lsmcode", "-A")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := firmware.ParseLsmcodeA(res.Stdout); err != nil {
			t.Fatalf("lsmcode -A %q: %v", res.Stdout, err)
		}
	})
}

// TestBootFailsFault: with BootFailsFile in its directory, the reboot of a
// flash comes back on the permanent side (the old level runs, the new
// image is on the temporary side), the workflow says the new image did
// not boot, a reject puts the old level back on the temporary side; the
// fault is used up by that reboot (the next flash boots its image).
func TestBootFailsFault(t *testing.T) {
	ctx := context.Background()
	p, err := profiles.Get("s822l-power8e")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	simDir := t.TempDir()
	h, err := Open(simDir, s822l, Options{RebootDelay: time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := firmware.Open(firmware.Config{DataDir: t.TempDir(), Arch: arch.PPC64LE, Runner: h, Root: h.Root(p.Root), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(simDir, BootFailsFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	flash := func(level string) agentapi.FirmwareOperation {
		t.Helper()
		if _, err := m.Upload(ctx, bytes.NewReader(Image(level, "8247-22L")), "01"+level+"_081.img", "admin"); err != nil {
			t.Fatal(err)
		}
		if op, err := m.Validate(ctx, "admin"); err != nil || op.State != agentapi.FirmwareStateValidated {
			t.Fatalf("validate: %s %v", op.State, err)
		}
		if op, err := m.Flash(ctx, "admin", firmware.Assert(firmware.Preconditions{Maintenance: true})); err != nil || op.State != agentapi.FirmwareStateRebooting {
			t.Fatalf("flash: %s %v", op.State, err)
		}
		clk.add(61 * time.Second)
		op, err := m.Resume(ctx, "agent")
		if err != nil || op.State != agentapi.FirmwareStateAwaitingDecision || op.Booted == nil {
			t.Fatalf("after the reboot: %s %+v %v", op.State, op.Booted, err)
		}
		return op
	}
	op := flash("SV810_133")
	if b := op.Booted; b.BootedSide != agentapi.FirmwareSidePermanent || b.Booted.Name != "SV810_081" || b.Temporary.Name != "SV810_133" {
		t.Errorf("with the fault, booted %+v", b)
	}
	if last := op.Steps[len(op.Steps)-1]; !strings.Contains(last.Message, "did not boot") {
		t.Errorf("the reboot's step: %q", last.Message)
	}
	if _, err := os.Stat(filepath.Join(simDir, BootFailsFile)); !os.IsNotExist(err) {
		t.Errorf("the fault was not used up: %v", err)
	}
	op, err = m.Reject(ctx, "admin")
	if err != nil || op.State != agentapi.FirmwareStateRejected || op.After.Temporary.Name != "SV810_081" {
		t.Fatalf("reject: %s %+v %v", op.State, op.After, err)
	}
	if op := flash("SV810_140"); op.Booted.BootedSide != agentapi.FirmwareSideTemporary || op.Booted.Booted.Name != "SV810_140" {
		t.Errorf("the next flash, without the fault: booted %+v", op.Booted)
	}
}
