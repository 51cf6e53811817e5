package firmware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/hostexec"
	"polyvirt/test/fakehost"
)

// testEnv is one simulated POWER8 host (fake lsmcode and update_flash run
// as real processes through hostexec.Exec) and an agent data directory.
type testEnv struct {
	t    *testing.T
	host *fakehost.Host
	cfg  Config
	m    *Manager
}

const admin = "admin@internal"

func newEnv(t *testing.T, o fakehost.Options, tweak func(*Config)) *testEnv {
	t.Helper()
	host, err := fakehost.New(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := host.Runner()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: t.TempDir(), Arch: arch.PPC64LE, Runner: runner, Root: host.Root()}
	if tweak != nil {
		tweak(&cfg)
	}
	e := &testEnv{t: t, host: host, cfg: cfg}
	e.m = e.open()
	return e
}

// open opens a Manager on the data directory, as a (re)started agent does.
func (e *testEnv) open() *Manager {
	e.t.Helper()
	m, err := Open(e.cfg)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	return m
}

// restart simulates the agent's restart: a new Manager on the same data
// directory, then Resume.
func (e *testEnv) restart() agentapi.FirmwareOperation {
	e.t.Helper()
	e.m = e.open()
	op, err := e.m.Resume(context.Background(), "agent")
	if err != nil {
		e.t.Fatalf("Resume after restart: %v", err)
	}
	return op
}

// rpm builds the vendor package for level, replacing fix old, for the
// given machines.
func (e *testEnv) rpm(level, old string, machines ...string) ([]byte, string) {
	e.t.Helper()
	name := "01" + level + "_" + old
	data, err := fakehost.BuildRPM(fakehost.FirmwareRPM(name, fakehost.Image(level, machines...), "xz"))
	if err != nil {
		e.t.Fatal(err)
	}
	return data, name + ".rpm"
}

func (e *testEnv) upload(level, old string, machines ...string) agentapi.FirmwareOperation {
	e.t.Helper()
	data, name := e.rpm(level, old, machines...)
	op, err := e.m.Upload(context.Background(), bytes.NewReader(data), name, admin)
	if err != nil {
		e.t.Fatalf("Upload: %v", err)
	}
	return op
}

func (e *testEnv) levels() fakehost.Levels {
	e.t.Helper()
	l, err := e.host.Levels()
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *testEnv) reboot(fallback bool) {
	e.t.Helper()
	if err := e.host.CompleteReboot(fallback); err != nil {
		e.t.Fatal(err)
	}
}

var inMaintenance = Assert(Preconditions{Maintenance: true})

// op fails the test on err and returns op.
func (e *testEnv) op(op agentapi.FirmwareOperation, err error) agentapi.FirmwareOperation {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("unexpected error: %v", err)
	}
	return op
}

// wantCode checks that err is a *firmware.Error with the code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	var fe *api.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %T %v is not a *firmware.Error", err, err)
	}
	if fe.Code != code {
		t.Fatalf("error %v: code %s, want %s", err, fe.Code, code)
	}
}

// steps summarises the step log: "step result state from→to who".
func steps(op agentapi.FirmwareOperation) []string {
	out := make([]string, len(op.Steps))
	for i, s := range op.Steps {
		out[i] = fmt.Sprintf("%s %s %s %s→%s %s", s.Step, s.Result, s.State, s.FromLevel, s.ToLevel, s.Who)
		if s.Code != "" {
			out[i] += " " + s.Code
		}
	}
	return out
}

// TestWorkflow is the whole update through the real runner and the fake
// tools: refused while a VM runs, refused outside maintenance, validate,
// flash, simulated reboot with an agent restart, the new level reported,
// commit; then a second update ends in a reject and the old level is back.
func TestWorkflow(t *testing.T) {
	e := newEnv(t, fakehost.Options{Temporary: "SV810_081"}, nil)
	ctx := context.Background()

	op := e.upload("SV860_100", "081", "8247-21L", "8247-22L")
	if op.State != agentapi.FirmwareStateUploaded || op.Image.Level != "SV860_100" || op.Image.Format != "rpm" || op.TypeModel != "8247-22L" {
		t.Fatalf("after upload: %+v", op)
	}
	_, err := e.m.Flash(ctx, admin, inMaintenance)
	wantCode(t, err, api.CodeFirmwareWrongState)
	_, err = e.m.Commit(ctx, admin)
	wantCode(t, err, api.CodeFirmwareWrongState)

	op = e.op(e.m.Validate(ctx, admin))
	wantProj := &agentapi.FirmwareProjection{CurrentT: "SV810_081", CurrentP: "SV810_081", NewT: "SV860_100", NewP: "SV810_081",
		Info: []string{"Temporary side will be updated with a newer or identical image."}}
	if diff := cmp.Diff(wantProj, op.Projection); diff != "" {
		t.Errorf("projection (-want +got):\n%s", diff)
	}
	if op.State != agentapi.FirmwareStateValidated {
		t.Fatalf("state %s after validate", op.State)
	}

	_, err = e.m.Flash(ctx, admin, Assert(Preconditions{Maintenance: true, RunningVMs: 2}))
	wantCode(t, err, api.CodeHostHasRunningVMs)
	_, err = e.m.Flash(ctx, admin, Assert(Preconditions{Maintenance: false}))
	wantCode(t, err, api.CodeHostNotInMaintenance)
	_, err = e.m.Flash(ctx, admin, func(context.Context) (Preconditions, error) {
		return Preconditions{}, errors.New("engine unreachable")
	})
	wantCode(t, err, api.CodeFirmwarePreconditions)
	if st := e.m.Status(); st.State != agentapi.FirmwareStateValidated || st.LastError == nil || st.LastError.Code != api.CodeFirmwarePreconditions {
		t.Fatalf("a refused flash changed the state: %s, last error %+v", st.State, st.LastError)
	}
	if l := e.levels(); l.Pending != "" {
		t.Fatalf("a refused flash reached update_flash: pending %q", l.Pending)
	}

	// The precondition check runs with the host locked against VM starts.
	locked := false
	op = e.op(e.m.Flash(ctx, admin, func(context.Context) (Preconditions, error) {
		locked = e.m.HostLocked()
		return Preconditions{Maintenance: true}, nil
	}))
	if !locked {
		t.Error("HostLocked was false during the precondition check")
	}
	if op.State != agentapi.FirmwareStateRebooting || op.BootIDAtFlash == "" || op.LastError != nil {
		t.Fatalf("after flash: state %s, boot id %q, last error %+v", op.State, op.BootIDAtFlash, op.LastError)
	}
	if !e.m.HostLocked() {
		t.Error("HostLocked is false while the host waits for its reboot")
	}
	if l := e.levels(); l.Pending != "SV860_100 SV810_081" || !l.RebootRequested {
		t.Fatalf("fake host after flash: %+v", l)
	}
	// No reboot yet: Resume changes nothing; commit is refused.
	if op = e.op(e.m.Resume(ctx, "agent")); op.State != agentapi.FirmwareStateRebooting {
		t.Fatalf("Resume before the reboot: state %s", op.State)
	}
	_, err = e.m.Commit(ctx, admin)
	wantCode(t, err, api.CodeFirmwareWrongState)

	// The host reboots; the agent starts again and resumes.
	e.reboot(false)
	op = e.restart()
	if op.State != agentapi.FirmwareStateAwaitingDecision {
		t.Fatalf("after the reboot: state %s (%+v)", op.State, op.Failure)
	}
	wantBooted := &agentapi.SystemFirmware{Temporary: lv("SV860_100"), Permanent: lv("SV810_081"), Booted: lv("SV860_100"), BootedSide: agentapi.FirmwareSideTemporary}
	if diff := cmp.Diff(wantBooted, op.Booted); diff != "" {
		t.Errorf("booted levels (-want +got):\n%s", diff)
	}
	inv, err := e.m.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantBooted, inv.System); diff != "" {
		t.Errorf("inventory after the reboot (-want +got):\n%s", diff)
	}

	op = e.op(e.m.Commit(ctx, admin))
	if op.State != agentapi.FirmwareStateCommitted {
		t.Fatalf("after commit: %s", op.State)
	}
	if l := e.levels(); l.Temporary != "SV860_100" || l.Permanent != "SV860_100" {
		t.Fatalf("fake host after commit: %+v", l)
	}
	_, err = e.m.Commit(ctx, admin)
	wantCode(t, err, api.CodeFirmwareWrongState)
	if _, err := os.Stat(op.ImagePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the image of a committed operation is still there: %v", err)
	}
	wantSteps := []string{
		"upload ok uploaded →SV860_100 admin@internal",
		"validate started validating →SV860_100 admin@internal",
		"validate ok validated SV810_081→SV860_100 admin@internal",
		"flash refused validated → admin@internal HOST_HAS_RUNNING_VMS",
		"flash refused validated → admin@internal HOST_NOT_IN_MAINTENANCE",
		"flash refused validated → admin@internal FIRMWARE_PRECONDITIONS_UNKNOWN",
		"flash started flashing SV810_081→SV860_100 admin@internal",
		"flash ok rebooting SV810_081→SV860_100 admin@internal",
		"reboot ok awaiting-decision SV810_081→SV860_100 agent",
		"commit started committing SV810_081→SV860_100 admin@internal",
		"commit ok committed SV810_081→SV860_100 admin@internal",
	}
	if diff := cmp.Diff(wantSteps, steps(op)); diff != "" {
		t.Errorf("step log (-want +got):\n%s", diff)
	}

	// A second update: flashed, rebooted, rejected.
	op = e.upload("SV860_110", "100", "8247-22L")
	if op.State != agentapi.FirmwareStateUploaded || len(op.Steps) != 1 {
		t.Fatalf("second upload: state %s, %d steps", op.State, len(op.Steps))
	}
	e.op(e.m.Validate(ctx, admin))
	e.op(e.m.Flash(ctx, admin, inMaintenance))
	e.reboot(false)
	op = e.restart()
	if op.State != agentapi.FirmwareStateAwaitingDecision || op.Booted.Booted.Code() != "SV860_110" {
		t.Fatalf("second run after reboot: %s, booted %+v", op.State, op.Booted)
	}
	op = e.op(e.m.Reject(ctx, admin))
	if op.State != agentapi.FirmwareStateRejected {
		t.Fatalf("after reject: %s", op.State)
	}
	// lsmcode -A marks the side the host booted from (t), whose bank now
	// holds the old level again.
	wantAfter := &agentapi.SystemFirmware{Temporary: lv("SV860_100"), Permanent: lv("SV860_100"), Booted: lv("SV860_110"), BootedSide: agentapi.FirmwareSideTemporary}
	if diff := cmp.Diff(wantAfter, op.After); diff != "" {
		t.Errorf("levels after reject (-want +got):\n%s", diff)
	}
	last := op.Steps[len(op.Steps)-1]
	if want := "rejected: the old level SV860_100 is back on both sides; the host runs SV860_110 until its next reboot"; last.Message != want {
		t.Errorf("reject message %q, want %q", last.Message, want)
	}
	e.reboot(false)
	inv, err = e.m.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inv.System == nil || inv.System.Booted.Code() != "SV860_100" {
		t.Errorf("after the next reboot the host runs %+v, want SV860_100", inv.System)
	}
}

// TestValidateRefusals runs validations that fail: the operation ends
// failed with the tool's reason.
func TestValidateRefusals(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(e *testEnv) []byte // returns the upload (nil: a good RPM)
		fileName string
		tweak    func(*Config)
		code     string
		message  string // a part of the failure message
		noFlash  bool   // update_flash must not have run
	}{
		{name: "image for another machine (update_flash says so)",
			setup: func(e *testEnv) []byte { d, _ := e.rpm("SV860_100", "081", "8286-41A"); return d },
			code:  api.CodeFirmwareImageWrongMachine, message: "Invalid candidate image for this platform."},
		{name: "package names other machine types",
			setup: func(e *testEnv) []byte {
				s := fakehost.FirmwareRPM("01SV860_100_081", fakehost.Image("SV860_100", "8247-22L"), "gzip")
				s.Description = "System firmware for 8286-41A and 8286-42A"
				d, err := fakehost.BuildRPM(s)
				if err != nil {
					e.t.Fatal(err)
				}
				return d
			},
			code: api.CodeFirmwareImageWrongMachine, message: "the package is for 8286-41A, 8286-42A, not for this host's type-model 8247-22L", noFlash: true},
		{name: "image of another firmware stream",
			setup: func(e *testEnv) []byte { d, _ := e.rpm("SC860_100", "081", "8247-22L"); return d },
			code:  api.CodeFirmwareImageWrongMachine, message: "the image is firmware stream SC (SC860_100) but this host (8247-22L) runs stream SV (SV810_081)"},
		{name: "not an image",
			setup:    func(e *testEnv) []byte { return []byte("not a firmware image\n") },
			fileName: "garbage.img",
			code:     api.CodeFirmwareImageInvalid, message: "update_flash exited 5 (image file): Invalid candidate image."},
		{name: "not root",
			setup: func(e *testEnv) []byte { e.must(e.host.SetUser("nobody")); return nil },
			code:  api.CodeFirmwarePermissionDenied, message: "Must be run as root!"},
		{name: "no flash interface",
			setup: func(e *testEnv) []byte { e.must(e.host.SetPlatform("nosysfs")); return nil },
			code:  api.CodeFirmwareInterfaceMissing, message: "sysfs interface for firmware update does not exists."},
		{name: "unknown platform",
			setup: func(e *testEnv) []byte { e.must(e.host.SetPlatform("unknown")); return nil },
			code:  api.CodeFirmwareUpdateUnsupported, message: "update_flash exited 1 (unsupported): Unknown platform"},
		{name: "update_flash hangs",
			setup: func(e *testEnv) []byte { e.must(e.host.Hang("validate")); return nil },
			tweak: func(c *Config) { c.Timeouts.Validate = 300 * time.Millisecond },
			code:  api.CodeFirmwareToolTimeout, message: "timed out after 300ms (process group killed)"},
		{name: "lsmcode hangs",
			setup: func(e *testEnv) []byte { e.must(e.host.Hang("lsmcode")); return nil },
			tweak: func(c *Config) { c.Timeouts.Lsmcode = 300 * time.Millisecond },
			code:  api.CodeFirmwareToolTimeout, message: "lsmcode -A: timed out after 300ms", noFlash: true},
		{name: "update_flash not installed",
			tweak: func(c *Config) { c.UpdateFlash = "update_flash_missing" },
			code:  api.CodeFirmwareToolNotFound, message: "update_flash is not installed (package powerpc-utils)", noFlash: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakehost.Options{}, tt.tweak)
			var data []byte
			if tt.setup != nil {
				data = tt.setup(e)
			}
			name := tt.fileName
			if data == nil {
				data, name = e.rpm("SV860_100", "081", "8247-22L")
			}
			if name == "" {
				name = "01SV860_100_081.rpm"
			}
			e.op(e.m.Upload(context.Background(), bytes.NewReader(data), name, admin))
			start := time.Now()
			_, err := e.m.Validate(context.Background(), admin)
			wantCode(t, err, tt.code)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Validate took %v", took)
			}
			st := e.m.Status()
			if st.State != agentapi.FirmwareStateFailed || st.Failure == nil || st.Failure.Code != tt.code || st.Failure.Step != "validate" {
				t.Fatalf("state %s, failure %+v", st.State, st.Failure)
			}
			if !strings.Contains(st.Failure.Message, tt.message) {
				t.Errorf("failure message %q does not say %q", st.Failure.Message, tt.message)
			}
			calls, err := e.host.Calls()
			if err != nil {
				t.Fatal(err)
			}
			ran := strings.Contains(strings.Join(calls, "\n"), "update_flash -v")
			if tt.noFlash && ran {
				t.Errorf("update_flash ran: %q", calls)
			}
			// Nothing was flashed; a failed validation can be asked again
			// once the cause is gone, and a new upload is accepted.
			if l := e.levels(); l.Pending != "" {
				t.Errorf("pending flash after a failed validation: %+v", l)
			}
			_, err = e.m.Flash(context.Background(), admin, inMaintenance)
			wantCode(t, err, api.CodeFirmwareWrongState)
		})
	}
}

func (e *testEnv) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestValidateAgainAfterFailure(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, nil)
	e.upload("SV860_100", "081", "8247-22L")
	e.must(e.host.SetPlatform("nosysfs"))
	_, err := e.m.Validate(context.Background(), admin)
	wantCode(t, err, api.CodeFirmwareInterfaceMissing)
	e.must(e.host.SetPlatform("fsp"))
	op := e.op(e.m.Validate(context.Background(), admin))
	if op.State != agentapi.FirmwareStateValidated || op.Failure != nil {
		t.Fatalf("second validation: state %s, failure %+v", op.State, op.Failure)
	}
}

// TestOneOperationAtATime: a second upload while an operation is active is
// refused, and a step asked while another runs is refused at once.
func TestOneOperationAtATime(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, func(c *Config) { c.Timeouts.Validate = time.Minute })
	e.upload("SV860_100", "081", "8247-22L")
	data, name := e.rpm("SV860_110", "081", "8247-22L")
	_, err := e.m.Upload(context.Background(), bytes.NewReader(data), name, "other@internal")
	wantCode(t, err, api.CodeFirmwareOperationActive)

	e.must(e.host.Hang("validate"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Validate(ctx, admin)
		done <- err
	}()
	waitState(t, e.m, agentapi.FirmwareStateValidating)
	_, err = e.m.Validate(context.Background(), admin)
	wantCode(t, err, api.CodeFirmwareBusy)
	_, err = e.m.Flash(context.Background(), admin, inMaintenance)
	wantCode(t, err, api.CodeFirmwareBusy)
	_, err = e.m.Upload(context.Background(), bytes.NewReader(data), name, admin)
	wantCode(t, err, api.CodeFirmwareBusy)
	cancel()
	wantCode(t, <-done, api.CodeFirmwareAborted)
	if st := e.m.Status(); st.State != agentapi.FirmwareStateFailed || st.Failure.Code != api.CodeFirmwareAborted {
		t.Fatalf("after the canceled validation: %s %+v", st.State, st.Failure)
	}
	// The failed operation ended: a new upload is accepted.
	e.op(e.m.Upload(context.Background(), bytes.NewReader(data), name, admin))
}

// waitState polls until the manager reaches state s.
func waitState(t *testing.T, m *Manager, s agentapi.FirmwareState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Status().State != s {
		if time.Now().After(deadline) {
			t.Fatalf("state is %s, waited for %s", m.Status().State, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFlashHangs: update_flash -f hangs, the runner kills it at the
// timeout, the state says failed with the reason.
func TestFlashHangs(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, func(c *Config) { c.Timeouts.Flash = 300 * time.Millisecond })
	e.upload("SV860_100", "081", "8247-22L")
	e.op(e.m.Validate(context.Background(), admin))
	e.must(e.host.Hang("flash"))
	start := time.Now()
	_, err := e.m.Flash(context.Background(), admin, inMaintenance)
	wantCode(t, err, api.CodeFirmwareToolTimeout)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Flash took %v with a 300ms timeout", took)
	}
	st := e.m.Status()
	if st.State != agentapi.FirmwareStateFailed || st.Failure.Step != "flash" {
		t.Fatalf("state %s, failure %+v", st.State, st.Failure)
	}
	for _, part := range []string{"update_flash -f", "timed out after 300ms", "the image may be staged"} {
		if !strings.Contains(st.Failure.Message, part) {
			t.Errorf("failure %q does not say %q", st.Failure.Message, part)
		}
	}
	if e.m.HostLocked() {
		t.Error("the host is still locked after a failed flash")
	}
}

func TestFlashFails(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, nil)
	e.upload("SV860_100", "081", "8247-22L")
	e.op(e.m.Validate(context.Background(), admin))
	e.must(e.host.SetUser("nobody"))
	_, err := e.m.Flash(context.Background(), admin, inMaintenance)
	wantCode(t, err, api.CodeFirmwarePermissionDenied)
	if st := e.m.Status(); st.State != agentapi.FirmwareStateFailed || !strings.Contains(st.Failure.Message, "Must be root to execute this command.") {
		t.Fatalf("state %s, failure %+v", st.State, st.Failure)
	}
}

func TestFlashRefusesChangedImage(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, nil)
	op := e.upload("SV860_100", "081", "8247-22L")
	e.op(e.m.Validate(context.Background(), admin))
	e.must(os.WriteFile(op.ImagePath, fakehost.Image("SV860_999", "8247-22L"), 0o600))
	_, err := e.m.Flash(context.Background(), admin, inMaintenance)
	wantCode(t, err, api.CodeFirmwareImageChanged)
	if l := e.levels(); l.Pending != "" {
		t.Errorf("a changed image was flashed: %+v", l)
	}
}

// TestRestartDuringValidation: the agent is killed while update_flash -v
// runs; the restarted agent reports the validation interrupted.
func TestRestartDuringValidation(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, func(c *Config) { c.Timeouts.Validate = time.Minute })
	e.upload("SV860_100", "081", "8247-22L")
	e.must(e.host.Hang("validate"))
	old := e.m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { old.Validate(ctx, admin); close(done) }()
	defer func() { cancel(); <-done }()
	waitState(t, old, agentapi.FirmwareStateValidating)

	op := e.restart()
	if op.State != agentapi.FirmwareStateFailed || op.Failure.Code != api.CodeFirmwareInterrupted {
		t.Fatalf("after the restart: %s %+v", op.State, op.Failure)
	}
	if want := "the agent restarted while update_flash -v ran; nothing was flashed. Validate again"; op.Failure.Message != want {
		t.Errorf("failure %q, want %q", op.Failure.Message, want)
	}
	// The image was kept: validating again works.
	e.must(e.host.Hang())
	op = e.op(e.m.Validate(context.Background(), admin))
	if op.State != agentapi.FirmwareStateValidated {
		t.Fatalf("validate after the restart: %s", op.State)
	}
}

// TestRestartDuringFlash: the agent is killed while update_flash -f runs
// and the host did not reboot: the state says interrupted; when the host
// later reboots with the staged image, Resume notices it.
func TestRestartDuringFlash(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, func(c *Config) { c.Timeouts.Flash = time.Minute })
	e.upload("SV860_100", "081", "8247-22L")
	e.op(e.m.Validate(context.Background(), admin))
	e.must(e.host.Hang("flash"))
	old := e.m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { old.Flash(ctx, admin, inMaintenance); close(done) }()
	waitState(t, old, agentapi.FirmwareStateFlashing)

	op := e.restart()
	if op.State != agentapi.FirmwareStateFailed || op.Failure.Code != api.CodeFirmwareInterrupted || !strings.Contains(op.Failure.Message, "applied at the next reboot") {
		t.Fatalf("after the restart: %s %+v", op.State, op.Failure)
	}
	cancel()
	<-done

	// The image had been staged after all; the host reboots with it.
	e.must(e.host.Set("pending", "SV860_100 SV810_081\n"))
	e.reboot(false)
	op = e.restart()
	if op.State != agentapi.FirmwareStateAwaitingDecision || op.Booted.Booted.Code() != "SV860_100" || op.Failure != nil {
		t.Fatalf("after the reboot: %s, booted %+v, failure %+v", op.State, op.Booted, op.Failure)
	}
}

// flashed brings a fresh host to awaiting-decision after a reboot.
func flashed(t *testing.T, fallback bool, tweak func(*Config)) *testEnv {
	t.Helper()
	e := newEnv(t, fakehost.Options{Temporary: "SV810_081"}, tweak)
	e.upload("SV860_100", "081", "8247-22L")
	e.op(e.m.Validate(context.Background(), admin))
	e.op(e.m.Flash(context.Background(), admin, inMaintenance))
	e.reboot(fallback)
	if op := e.op(e.m.Resume(context.Background(), "agent")); op.State != agentapi.FirmwareStateAwaitingDecision {
		t.Fatalf("after the reboot: %s %+v", op.State, op.Failure)
	}
	return e
}

func TestNewImageDidNotBoot(t *testing.T) {
	e := flashed(t, true, nil)
	op := e.m.Status()
	if op.Booted.BootedSide != agentapi.FirmwareSidePermanent || op.Booted.Booted.Code() != "SV810_081" {
		t.Fatalf("booted %+v", op.Booted)
	}
	if msg := op.Steps[len(op.Steps)-1].Message; !strings.Contains(msg, "did not boot; reject it") {
		t.Errorf("reboot step says %q", msg)
	}
	_, err := e.m.Commit(context.Background(), admin)
	wantCode(t, err, api.CodeFirmwareNewLevelNotBooted)
	if l := e.levels(); l.Permanent != "SV810_081" {
		t.Fatalf("a refused commit changed the banks: %+v", l)
	}
	op = e.op(e.m.Reject(context.Background(), admin))
	if op.State != agentapi.FirmwareStateRejected || op.After.Temporary.Code() != "SV810_081" {
		t.Fatalf("after reject: %s %+v", op.State, op.After)
	}
}

func TestFlashNotApplied(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, nil)
	e.upload("SV860_100", "081", "8247-22L")
	e.op(e.m.Validate(context.Background(), admin))
	e.op(e.m.Flash(context.Background(), admin, inMaintenance))
	e.must(e.host.Unset("pending")) // the firmware dropped the staged image
	e.reboot(false)
	st := e.op(e.m.Resume(context.Background(), "agent"))
	if st.State != agentapi.FirmwareStateFailed || st.Failure.Step != "reboot" || st.Failure.Code != api.CodeFirmwareFlashNotApplied {
		t.Fatalf("state %s, failure %+v", st.State, st.Failure)
	}
	if want := "flash: the host rebooted but its temporary side holds SV810_081, not the projected SV860_100: the image was not applied"; st.Failure.Message != want {
		t.Errorf("failure %q, want %q", st.Failure.Message, want)
	}
}

// TestRejectRefusedByFirmware: the firmware refuses to overwrite the
// active image; the decision is still pending and the state says why.
func TestRejectRefusedByFirmware(t *testing.T) {
	e := flashed(t, false, nil)
	e.must(e.host.Set("reject_needs_p_side", ""))
	_, err := e.m.Reject(context.Background(), admin)
	wantCode(t, err, api.CodeFirmwareActiveImage)
	st := e.m.Status()
	if st.State != agentapi.FirmwareStateAwaitingDecision || st.LastError == nil || st.LastError.Code != api.CodeFirmwareActiveImage {
		t.Fatalf("state %s, last error %+v", st.State, st.LastError)
	}
	if !strings.Contains(st.LastError.Message, "Cannot Overwrite the Active Firmware Image.") ||
		!strings.Contains(st.LastError.Message, "lsmcode shows temporary SV860_100, permanent SV810_081") {
		t.Errorf("last error %q", st.LastError.Message)
	}
	e.must(e.host.Unset("reject_needs_p_side"))
	if op := e.op(e.m.Reject(context.Background(), admin)); op.State != agentapi.FirmwareStateRejected || op.LastError != nil {
		t.Fatalf("second reject: %s %+v", op.State, op.LastError)
	}
}

func TestCommitHangs(t *testing.T) {
	e := flashed(t, false, func(c *Config) { c.Timeouts.Manage = 300 * time.Millisecond })
	e.must(e.host.Hang("commit"))
	_, err := e.m.Commit(context.Background(), admin)
	wantCode(t, err, api.CodeFirmwareToolTimeout)
	st := e.m.Status()
	if st.State != agentapi.FirmwareStateAwaitingDecision || st.LastError == nil || st.LastError.Code != api.CodeFirmwareToolTimeout {
		t.Fatalf("state %s, last error %+v", st.State, st.LastError)
	}
	e.must(e.host.Hang())
	// The commit that does not hang gets the time a loaded machine needs
	// to run the fake tool (300 ms did not always suffice on 2 busy cores).
	e.m.cfg.Timeouts.Manage = time.Minute
	if op := e.op(e.m.Commit(context.Background(), admin)); op.State != agentapi.FirmwareStateCommitted {
		t.Fatalf("commit after the hang: %s", op.State)
	}
}

// TestRestartDuringCommit: the agent restarts while update_flash -c runs;
// lsmcode tells whether the banks changed.
func TestRestartDuringCommit(t *testing.T) {
	e := flashed(t, false, func(c *Config) { c.Timeouts.Manage = time.Minute })
	e.must(e.host.Hang("commit"))
	old := e.m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { old.Commit(ctx, admin); close(done) }()
	waitState(t, old, agentapi.FirmwareStateCommitting)

	m2 := e.open()
	st := e.op(m2.Resume(context.Background(), "agent"))
	if st.State != agentapi.FirmwareStateAwaitingDecision || st.LastError == nil || st.LastError.Code != api.CodeFirmwareInterrupted {
		t.Fatalf("after the restart: %s %+v", st.State, st.LastError)
	}
	cancel()
	<-done

	// The decision can be asked again.
	e.must(e.host.Hang())
	e.m = e.open()
	e.op(e.m.Commit(context.Background(), admin))
	if st := e.m.Status(); st.State != agentapi.FirmwareStateCommitted {
		t.Fatalf("commit after the restart: %s", st.State)
	}
}

func TestResumeCommittingDone(t *testing.T) {
	e := flashed(t, false, nil)
	// Persist "committing" as an agent killed right after update_flash -c
	// succeeded would have left it, with the banks committed.
	op := e.m.Status()
	op.State = agentapi.FirmwareStateCommitting
	e.must(saveState(filepath.Join(e.cfg.DataDir, "firmware", StateFileName), &op))
	e.must(e.host.Set("p", "SV860_100\n"))
	op = e.restart()
	if op.State != agentapi.FirmwareStateCommitted {
		t.Fatalf("state %s, want committed", op.State)
	}
	if msg := op.Steps[len(op.Steps)-1].Message; !strings.Contains(msg, "the agent restarted during the step; lsmcode shows it done") {
		t.Errorf("commit step says %q", msg)
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	t.Run("uploaded", func(t *testing.T) {
		e := newEnv(t, fakehost.Options{}, nil)
		op := e.upload("SV860_100", "081", "8247-22L")
		got := e.op(e.m.Cancel(ctx, admin, "wrong file"))
		if got.State != agentapi.FirmwareStateCancelled {
			t.Fatalf("state %s", got.State)
		}
		if _, err := os.Stat(op.ImagePath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("image kept after cancel: %v", err)
		}
		e.upload("SV860_100", "081", "8247-22L")
	})
	t.Run("rebooting, the host did not reboot", func(t *testing.T) {
		e := newEnv(t, fakehost.Options{}, nil)
		e.upload("SV860_100", "081", "8247-22L")
		e.op(e.m.Validate(ctx, admin))
		e.op(e.m.Flash(ctx, admin, inMaintenance))
		op := e.op(e.m.Cancel(ctx, "engine", "host did not come back in 30m"))
		if msg := op.Steps[len(op.Steps)-1].Message; !strings.Contains(msg, "applied at its next reboot") {
			t.Errorf("cancel says %q", msg)
		}
	})
	t.Run("awaiting decision is refused", func(t *testing.T) {
		e := flashed(t, false, nil)
		_, err := e.m.Cancel(ctx, admin, "")
		wantCode(t, err, api.CodeFirmwareWrongState)
	})
	t.Run("no operation", func(t *testing.T) {
		e := newEnv(t, fakehost.Options{}, nil)
		_, err := e.m.Cancel(ctx, admin, "")
		wantCode(t, err, api.CodeFirmwareNoOperation)
		_, err = e.m.Commit(ctx, admin)
		wantCode(t, err, api.CodeFirmwareNoOperation)
	})
}

func TestUnsupportedArch(t *testing.T) {
	for _, a := range []arch.Arch{arch.X86_64, arch.AArch64, arch.S390X} {
		t.Run(string(a), func(t *testing.T) {
			e := newEnv(t, fakehost.Options{}, func(c *Config) { c.Arch = a })
			if e.m.Supported() {
				t.Fatal("Supported() is true")
			}
			data, name := e.rpm("SV860_100", "081", "8247-22L")
			_, err := e.m.Upload(context.Background(), bytes.NewReader(data), name, admin)
			wantCode(t, err, api.CodeNotSupportedOnArch)
			for _, f := range []func() (agentapi.FirmwareOperation, error){
				func() (agentapi.FirmwareOperation, error) { return e.m.Validate(context.Background(), admin) },
				func() (agentapi.FirmwareOperation, error) {
					return e.m.Flash(context.Background(), admin, inMaintenance)
				},
				func() (agentapi.FirmwareOperation, error) { return e.m.Commit(context.Background(), admin) },
				func() (agentapi.FirmwareOperation, error) { return e.m.Reject(context.Background(), admin) },
			} {
				_, err := f()
				wantCode(t, err, api.CodeNotSupportedOnArch)
			}
			if op := e.op(e.m.Resume(context.Background(), "agent")); op.State != agentapi.FirmwareStateIdle {
				t.Errorf("Resume: state %s", op.State)
			}
			if calls, _ := e.host.Calls(); len(calls) != 0 {
				t.Errorf("host tools ran: %q", calls)
			}
		})
	}
}

func TestUploadCorrupt(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, nil)
	data, name := e.rpm("SV860_100", "081", "8247-22L")
	_, err := e.m.Upload(context.Background(), bytes.NewReader(data[:len(data)-30]), name, admin)
	wantCode(t, err, api.CodeFirmwareImageInvalid)
	if st := e.m.Status(); st.State != agentapi.FirmwareStateIdle {
		t.Fatalf("state %s after a corrupt upload", st.State)
	}
	ents, err := os.ReadDir(filepath.Join(e.cfg.DataDir, "firmware", "images"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("files left behind: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.DataDir, "firmware", StateFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a state file was written for a corrupt upload: %v", err)
	}
}

func TestStateFile(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, nil)
	op := e.upload("SV860_100", "081", "8247-22L")
	path := filepath.Join(e.cfg.DataDir, "firmware", StateFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sf struct {
		Format    string `json:"format"`
		Version   int    `json:"version"`
		Operation struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"operation"`
	}
	if err := json.Unmarshal(data, &sf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{"polyvirt-firmware-state", 1, op.ID, "uploaded"},
		[]any{sf.Format, sf.Version, sf.Operation.ID, sf.Operation.State}); diff != "" {
		t.Errorf("state file (-want +got):\n%s", diff)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 2 {
		t.Errorf("firmware dir holds %v, want state.json and images/ only", ents)
	}

	tests := []struct {
		name    string
		content string
		message string
	}{
		{"not JSON", "{", "the firmware state file is not valid JSON"},
		{"another format", `{"format":"x","version":1}`, `format "x", want "polyvirt-firmware-state"`},
		{"newer version", `{"format":"polyvirt-firmware-state","version":2}`, "version 2, this agent reads version 1"},
		{"unknown state", `{"format":"polyvirt-firmware-state","version":1,"operation":{"id":"x","state":"exploding"}}`, `unknown state "exploding"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.must(os.WriteFile(path, []byte(tt.content), 0o600))
			_, err := Open(e.cfg)
			wantCode(t, err, api.CodeFirmwareStateFile)
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not say %q", err, tt.message)
			}
		})
	}
}

// TestCommitUnsupportedOnOpenPOWER: update_flash of a BMC-based system
// answers a commit with exit status 0 and a refusal.
func TestCommitUnsupportedOnOpenPOWER(t *testing.T) {
	e := flashed(t, false, nil)
	// Replace update_flash's answer for -c with the BMC systems' one.
	bin := t.TempDir()
	script := "#!/bin/sh\necho 'Commit/Reject operation is not supported on this platform.'\nexit 0\n"
	e.must(os.WriteFile(filepath.Join(bin, "update_flash"), []byte(script), 0o755))
	runner, err := e.host.Runner()
	if err != nil {
		t.Fatal(err)
	}
	runner.Path = bin + ":" + runner.Path
	e.cfg.Runner = runner
	e.m = e.open()
	_, err = e.m.Commit(context.Background(), admin)
	wantCode(t, err, api.CodeFirmwareManageUnsupported)
	if st := e.m.Status(); st.State != agentapi.FirmwareStateAwaitingDecision {
		t.Fatalf("state %s", st.State)
	}
}

// TestScriptedRunner drives the manager with hostexec.Fake: an
// update_flash -f that exits 0 without saying the image is staged fails
// the operation, and says what that may mean.
func TestScriptedRunner(t *testing.T) {
	f := hostexec.NewFake()
	f.Handle("lsmcode", hostexec.Reply("sys0!system:SV810_081 (t) SV810_081 (p) SV810_081 (t)service:\n"))
	f.Handle("update_flash", func(ctx context.Context, cmd hostexec.Command) (hostexec.Result, error) {
		if cmd.Args[0] == "-v" {
			return hostexec.Result{Stdout: []byte("Projected Flash Update Results:\nCurrent T Image: SV810_081\n" +
				"Current P Image: SV810_081\nNew T Image:     SV860_100\nNew P Image:     SV810_081\n")}, nil
		}
		return hostexec.Result{Stdout: []byte("something else\n")}, nil
	})
	root := fstest.MapFS{
		"proc/device-tree/model":         file("8247-22L\x00"),
		"proc/sys/kernel/random/boot_id": file("b6a1c3e0-0000-4000-8000-000000000001\n"),
	}
	m, err := Open(Config{DataDir: t.TempDir(), Arch: arch.PPC64, Runner: f, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Upload(ctx, bytes.NewReader(fakehost.Image("SV860_100", "8247-22L")), "01SV860_100_081.img", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Validate(ctx, admin); err != nil {
		t.Fatal(err)
	}
	_, err = m.Flash(ctx, admin, inMaintenance)
	wantCode(t, err, api.CodeFirmwareToolOutput)
	st := m.Status()
	if st.State != agentapi.FirmwareStateFailed || !strings.Contains(st.Failure.Message, "the image may be staged") {
		t.Fatalf("state %s, failure %+v", st.State, st.Failure)
	}
	var args []string
	for _, c := range f.Calls() {
		args = append(args, c.Name+" "+strings.Join(c.Args, " "))
	}
	img := st.ImagePath
	want := []string{"lsmcode -A", "update_flash -v -f " + img, "update_flash -f " + img}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestToolNotInstalledSaysItOnce: a validation failing because lsmcode is
// missing says so once ("lsmcode is not installed …", not "lsmcode:
// lsmcode is not installed …"), and the failed operation can be cleared —
// by clear, or by cancel — where it could not be cancelled.
func TestToolNotInstalledSaysItOnce(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"clear", "cancel"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, fakehost.Options{}, func(c *Config) {
				c.Runner = &hostexec.Exec{Path: t.TempDir()} // nothing is installed
			})
			op := e.upload("SV860_100", "081", "8247-22L")
			_, err := e.m.Validate(ctx, admin)
			wantCode(t, err, api.CodeFirmwareToolNotFound)
			st := e.m.Status()
			if st.State != agentapi.FirmwareStateFailed || st.Failure == nil {
				t.Fatalf("state %s failure %+v", st.State, st.Failure)
			}
			if msg := st.Failure.Message; msg != "lsmcode is not installed (package lsvpd)" {
				t.Errorf("failure message %q", msg)
			}
			if last := st.Steps[len(st.Steps)-1].Message; strings.Count(last, "lsmcode") != 1 {
				t.Errorf("step message %q names lsmcode more than once", last)
			}
			inv, err := e.m.Inventory(ctx)
			if err != nil || !slices.Contains(inv.Problems, "FIRMWARE_TOOL_NOT_FOUND: lsmcode is not installed (package lsvpd)") {
				t.Errorf("inventory problems %q (%v)", inv.Problems, err)
			}
			var cleared agentapi.FirmwareOperation
			if how == "clear" {
				cleared = e.op(e.m.Clear(ctx, admin))
			} else {
				cleared = e.op(e.m.Cancel(ctx, admin, "tools missing"))
			}
			if cleared.State != agentapi.FirmwareStateIdle || cleared.ID != "" || e.m.Status().State != agentapi.FirmwareStateIdle {
				t.Errorf("after %s: %+v", how, cleared)
			}
			if _, err := os.Stat(op.ImagePath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("image kept after %s: %v", how, err)
			}
			// Cleared for good: a restarted agent finds no operation.
			if got := e.restart(); got.State != agentapi.FirmwareStateIdle {
				t.Errorf("after a restart: %s", got.State)
			}
		})
	}
	t.Run("an operation under way is not cleared", func(t *testing.T) {
		e := newEnv(t, fakehost.Options{}, nil)
		e.upload("SV860_100", "081", "8247-22L")
		e.op(e.m.Validate(ctx, admin))
		_, err := e.m.Clear(ctx, admin)
		wantCode(t, err, api.CodeFirmwareWrongState)
		if st := e.m.Status(); st.State != agentapi.FirmwareStateValidated {
			t.Errorf("state %s", st.State)
		}
	})
}

func TestUnsupportedSaysWhy(t *testing.T) {
	e := newEnv(t, fakehost.Options{}, func(c *Config) { c.Unsupported = "the profile ac922-power9 simulates no system firmware" })
	if e.m.Supported() {
		t.Fatal("supported")
	}
	_, err := e.m.Validate(context.Background(), admin)
	wantCode(t, err, api.CodeNotSupportedOnArch)
	if !strings.Contains(err.Error(), "ac922-power9 simulates no system firmware") {
		t.Errorf("error %v", err)
	}
}
