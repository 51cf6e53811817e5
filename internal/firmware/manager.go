package firmware

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/hostexec"
)

// Timeouts bound the host tools of the workflow.
type Timeouts struct {
	// Lsmcode bounds one lsmcode run.
	Lsmcode time.Duration
	// Validate bounds update_flash -v (it copies the image into the
	// kernel's flash interface).
	Validate time.Duration
	// Flash bounds update_flash -f until it reports the image staged.
	Flash time.Duration
	// Manage bounds update_flash -c and -r (the service processor copies
	// one bank to the other).
	Manage time.Duration
}

// DefaultTimeouts are used for zero fields of Config.Timeouts.
var DefaultTimeouts = Timeouts{
	Lsmcode:  2 * time.Minute,
	Validate: 15 * time.Minute,
	Flash:    60 * time.Minute,
	Manage:   30 * time.Minute,
}

// Config configures a Manager.
type Config struct {
	// DataDir is the agent's data directory; the firmware state file and
	// the uploaded images live in DataDir/firmware.
	DataDir string
	// Arch is the host's architecture; archspec tells whether it has a
	// firmware update mechanism.
	Arch arch.Arch
	// Runner runs lsmcode and update_flash.
	Runner hostexec.Runner
	// Root is the host's root filesystem: the device tree identity and the
	// kernel boot id (proc/sys/kernel/random/boot_id) are read there.
	Root fs.FS
	// TypeModel, when set, is the host's type-model; otherwise it is read
	// from Root.
	TypeModel string
	// UpdateFlash and Lsmcode are the program names; empty means
	// "update_flash" and "lsmcode".
	UpdateFlash string
	Lsmcode     string
	// Timeouts bound the tools; zero fields take DefaultTimeouts.
	Timeouts Timeouts
	// MaxImageBytes bounds an image; zero means DefaultMaxImageBytes.
	MaxImageBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Unsupported, when set, says why this host has no firmware update
	// mechanism whatever its architecture's (a profile host that simulates
	// no system firmware): every step then answers NOT_SUPPORTED_ON_ARCH
	// with it.
	Unsupported string
}

// Preconditions are what the caller asserts before a flash: the engine's
// maintenance flag for the host and the number of VMs running on it.
type Preconditions struct {
	// Maintenance tells that the engine has the host in Maintenance.
	Maintenance bool
	// RunningVMs counts the VMs running on the host.
	RunningVMs int
}

// PreconditionCheck returns the current Preconditions. Flash calls it
// after the host is locked against VM starts (HostLocked is true), right
// before update_flash -f runs, so that a VM started in between is seen.
type PreconditionCheck func(ctx context.Context) (Preconditions, error)

// Assert is a PreconditionCheck that returns fixed values.
func Assert(p Preconditions) PreconditionCheck {
	return func(context.Context) (Preconditions, error) { return p, nil }
}

// Manager runs the firmware update workflow of one host and persists its
// state. One Manager per data directory; its methods are safe for
// concurrent use, and a step asked while another runs is refused with
// CodeBusy rather than queued.
type Manager struct {
	cfg       Config
	mechanism string
	dir       string

	mu   sync.Mutex
	op   *agentapi.FirmwareOperation
	busy string
}

// Open prepares the firmware directory and loads the persisted state. It
// runs no host command; recovery that needs one (a flash or reboot in
// progress, a commit or reject interrupted) is Resume's, which the agent
// calls right after Open. Open itself settles what needs no command: an
// operation found validating was interrupted by the agent's restart and is
// failed with CodeInterrupted (its image is kept: Validate may be asked
// again). An unreadable state file is an error (CodeStateFile): the agent
// must not guess what the firmware is doing.
func Open(cfg Config) (*Manager, error) {
	if cfg.DataDir == "" {
		return nil, api.FieldError(api.CodeFirmwareStateFile, "dataDir", "no data directory given")
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, &api.Error{Code: api.CodeFirmwareStateFile, Field: "dataDir", Message: err.Error(), Err: err}
	}
	cfg.DataDir = abs
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UpdateFlash == "" {
		cfg.UpdateFlash = "update_flash"
	}
	if cfg.Lsmcode == "" {
		cfg.Lsmcode = "lsmcode"
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = DefaultMaxImageBytes
	}
	t := &cfg.Timeouts
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&t.Lsmcode, DefaultTimeouts.Lsmcode}, {&t.Validate, DefaultTimeouts.Validate},
		{&t.Flash, DefaultTimeouts.Flash}, {&t.Manage, DefaultTimeouts.Manage},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	m := &Manager{cfg: cfg, dir: filepath.Join(cfg.DataDir, "firmware")}
	if spec, err := archspec.For(cfg.Arch); err == nil && cfg.Unsupported == "" {
		m.mechanism = spec.Host.FirmwareUpdate
	}
	if err := os.MkdirAll(m.imagesDir(), 0o700); err != nil {
		return nil, &api.Error{Code: api.CodeFirmwareStateFile, Field: m.dir, Message: "cannot create the firmware directory: " + err.Error(), Err: err}
	}
	op, err := loadState(m.statePath())
	if err != nil {
		return nil, err
	}
	m.op = op
	m.removeStrayUploads()
	if op != nil && op.State == agentapi.FirmwareStateValidating {
		m.fail(op, "validate", "agent", &api.Error{Code: api.CodeFirmwareInterrupted,
			Message: "the agent restarted while update_flash -v ran; nothing was flashed. Validate again"})
		if err := m.save(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Manager) statePath() string { return filepath.Join(m.dir, StateFileName) }
func (m *Manager) imagesDir() string { return filepath.Join(m.dir, "images") }

// removeStrayUploads deletes partial uploads and images of no operation.
func (m *Manager) removeStrayUploads() {
	ents, err := os.ReadDir(m.imagesDir())
	if err != nil {
		return
	}
	keep := ""
	if m.op != nil {
		keep = filepath.Base(m.op.ImagePath)
	}
	for _, e := range ents {
		if e.Name() != keep {
			os.Remove(filepath.Join(m.imagesDir(), e.Name()))
		}
	}
}

// Supported tells whether the host's architecture has a firmware update
// mechanism polyvirt drives.
func (m *Manager) Supported() bool { return m.mechanism == MechanismUpdateFlash }

// Status returns a copy of the current operation (State idle when none was
// ever started).
func (m *Manager) Status() agentapi.FirmwareOperation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneOperation(m.op)
}

// HostLocked tells whether VMs must not be started on the host now: a
// flash is being prepared or runs, or the host waits for its reboot.
func (m *Manager) HostLocked() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy == "flash" {
		return true
	}
	return m.op != nil && (m.op.State == agentapi.FirmwareStateFlashing || m.op.State == agentapi.FirmwareStateRebooting)
}

// Inventory reads the host's firmware inventory (see ReadInventory).
func (m *Manager) Inventory(ctx context.Context) (agentapi.FirmwareInventory, error) {
	return ReadInventory(ctx, Source{Arch: m.cfg.Arch, Root: m.cfg.Root, Runner: m.cfg.Runner,
		Lsmcode: m.cfg.Lsmcode, Timeout: m.cfg.Timeouts.Lsmcode})
}

// begin checks the architecture and marks step as running; the returned
// function ends it.
func (m *Manager) begin(step string) (func(), error) {
	if !m.Supported() {
		if m.cfg.Unsupported != "" {
			return nil, api.FieldError(api.CodeNotSupportedOnArch, "arch", "firmware %s is not supported on this host: %s", step, m.cfg.Unsupported)
		}
		return nil, api.FieldError(api.CodeNotSupportedOnArch, "arch",
			"firmware %s is not supported on %s: polyvirt updates system firmware on POWER hosts only (update_flash)", step, archName(m.cfg.Arch))
	}
	if m.cfg.Runner == nil {
		return nil, api.FieldError(api.CodeFirmwareToolNotFound, "runner", "no command runner configured")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy != "" {
		return nil, api.FieldError(api.CodeFirmwareBusy, "", "a firmware %s is running on this host; wait for it to end", m.busy)
	}
	m.busy = step
	return func() {
		m.mu.Lock()
		m.busy = ""
		m.mu.Unlock()
	}, nil
}

func archName(a arch.Arch) string {
	if a == arch.Unknown {
		return "an unknown architecture"
	}
	return a.String()
}

func who(w string) string {
	if strings.TrimSpace(w) == "" {
		return "agent"
	}
	return w
}

// save persists the current operation; the caller holds no lock or mu.
func (m *Manager) save() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return saveState(m.statePath(), m.op)
}

// mutate changes the operation under the lock and persists it.
func (m *Manager) mutate(f func(op *agentapi.FirmwareOperation)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m.op)
	return saveState(m.statePath(), m.op)
}

// current returns the live operation (callers hold the busy flag, so no
// other step changes it).
func (m *Manager) current() *agentapi.FirmwareOperation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.op
}

// setState moves op to s and logs the step.
func (m *Manager) setState(op *agentapi.FirmwareOperation, s agentapi.FirmwareState, st agentapi.FirmwareStep) {
	now := m.cfg.Now().UTC()
	if op.State != s {
		op.Since = now
	}
	op.State = s
	st.Time = now
	st.State = s
	op.Steps = append(op.Steps, st)
	if len(op.Steps) > maxSteps {
		op.Steps = append([]agentapi.FirmwareStep(nil), op.Steps[len(op.Steps)-maxSteps:]...)
	}
}

// fail moves op to failed with the error's code and message.
func (m *Manager) fail(op *agentapi.FirmwareOperation, step, by string, err error) {
	code, msg := codeOf(err), messageOf(err)
	op.Failure = &agentapi.FirmwareFailure{Step: step, Code: code, Message: msg, Time: m.cfg.Now().UTC()}
	m.setState(op, agentapi.FirmwareStateFailed, agentapi.FirmwareStep{Step: step, Result: "failed", Who: who(by), Code: code, Message: msg})
}

// refuse records a refused or failed step that leaves the state as it is.
func (m *Manager) refuse(op *agentapi.FirmwareOperation, step, by, result string, err error) {
	m.refuseTo(op, op.State, step, by, result, err)
}

// refuseTo records a failed step that puts the operation back in state s
// (a commit that failed goes back to awaiting-decision).
func (m *Manager) refuseTo(op *agentapi.FirmwareOperation, s agentapi.FirmwareState, step, by, result string, err error) {
	code, msg := codeOf(err), messageOf(err)
	op.LastError = &agentapi.FirmwareFailure{Step: step, Code: code, Message: msg, Time: m.cfg.Now().UTC()}
	m.setState(op, s, agentapi.FirmwareStep{Step: step, Result: result, Who: who(by), Code: code, Message: msg})
}

func codeOf(err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return api.CodeFirmwareToolFailed
}

// messageOf is an error's message for the step log, its field first
// unless the message already begins with the tool the field names
// ("lsmcode is not installed …" stays as it is, not "lsmcode: lsmcode …").
func messageOf(err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		return FieldMessage(e.Field, e.Message)
	}
	return err.Error()
}

// FieldMessage is an error message with the field it concerns in front,
// unless the message already begins with the tool the field names:
// "lsmcode is not installed (package lsvpd)", "update_flash exited 8 …",
// but "image: the uploaded image … is gone".
func FieldMessage(field, msg string) string {
	if field != "" && !startsWithTool(msg, field) && !strings.HasPrefix(msg, field+": ") {
		return field + ": " + msg
	}
	return msg
}

// startsWithTool reports whether msg begins with the program a field
// names (its first word: "update_flash" of "update_flash -v").
func startsWithTool(msg, field string) bool {
	tool, _, _ := strings.Cut(field, " ")
	return strings.HasPrefix(msg, tool+" ") || strings.HasPrefix(msg, tool+":")
}

// wrongState is the error of a step asked in the wrong state.
func wrongState(step string, op *agentapi.FirmwareOperation, need string) error {
	if op == nil {
		return api.FieldError(api.CodeFirmwareNoOperation, "", "no firmware update to %s: upload an image first", step)
	}
	return api.FieldError(api.CodeFirmwareWrongState, "state", "cannot %s: the firmware operation %s is %s; %s", step, op.ID, op.State, need)
}

// Upload stores a firmware image — the vendor's RPM (the .img is extracted
// in Go) or a bare .img — and starts a new operation in state uploaded.
// Refused with CodeOperationActive while another operation has not ended.
// A corrupt upload is an error and changes no state.
func (m *Manager) Upload(ctx context.Context, r io.Reader, fileName, by string) (agentapi.FirmwareOperation, error) {
	done, err := m.begin("upload")
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	defer done()
	if prev := m.current(); prev != nil && !prev.State.Terminal() {
		return agentapi.FirmwareOperation{}, api.FieldError(api.CodeFirmwareOperationActive, "", "firmware operation %s is %s on this host; finish it (commit, reject) or cancel it before starting another",
			prev.ID, prev.State)
	}
	tmp, err := os.CreateTemp(m.imagesDir(), ".upload-*")
	if err != nil {
		return agentapi.FirmwareOperation{}, &api.Error{Code: api.CodeFirmwareStateFile, Field: "image", Message: "cannot store the image: " + err.Error(), Err: err}
	}
	tmpName := tmp.Name()
	kept := false
	defer func() {
		if !kept {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	info, err := ExtractImage(&ctxReader{ctx: ctx, r: r}, fileName, tmp, Limits{MaxImageBytes: m.cfg.MaxImageBytes})
	if err != nil {
		if ctx.Err() != nil {
			return agentapi.FirmwareOperation{}, &api.Error{Code: api.CodeFirmwareAborted, Field: "image", Message: "the upload was canceled", Err: ctx.Err()}
		}
		return agentapi.FirmwareOperation{}, err
	}
	if err := tmp.Sync(); err != nil {
		return agentapi.FirmwareOperation{}, &api.Error{Code: api.CodeFirmwareStateFile, Field: "image", Message: err.Error(), Err: err}
	}
	if err := tmp.Close(); err != nil {
		return agentapi.FirmwareOperation{}, &api.Error{Code: api.CodeFirmwareStateFile, Field: "image", Message: err.Error(), Err: err}
	}
	id := newID(m.cfg.Now())
	final := filepath.Join(m.imagesDir(), id+".img")
	if err := os.Rename(tmpName, final); err != nil {
		return agentapi.FirmwareOperation{}, &api.Error{Code: api.CodeFirmwareStateFile, Field: "image", Message: err.Error(), Err: err}
	}
	kept = true
	if err := syncDir(m.imagesDir()); err != nil {
		os.Remove(final)
		return agentapi.FirmwareOperation{}, &api.Error{Code: api.CodeFirmwareStateFile, Field: "image", Message: err.Error(), Err: err}
	}
	now := m.cfg.Now().UTC()
	ident := m.identity()
	op := &agentapi.FirmwareOperation{ID: id, Started: now, Since: now, TypeModel: ident.TypeModel, Serial: ident.Serial,
		Image: &info, ImagePath: final, Steps: []agentapi.FirmwareStep{}}
	desc := fmt.Sprintf("%s (%s), image %s, %d bytes, sha256 %s", info.FileName, info.Format, info.ImageName, info.Size, info.SHA256)
	if info.Package != nil {
		desc += ", payload " + info.Package.PayloadCompressor
	}
	m.setState(op, agentapi.FirmwareStateUploaded, agentapi.FirmwareStep{Step: "upload", Result: "ok", Who: who(by), ToLevel: info.Level, Message: desc})

	m.mu.Lock()
	prev := m.op
	m.op = op
	err = saveState(m.statePath(), m.op)
	if err != nil {
		m.op = prev
	}
	m.mu.Unlock()
	if err != nil {
		os.Remove(final)
		return agentapi.FirmwareOperation{}, err
	}
	if prev != nil && prev.ImagePath != "" && prev.ImagePath != final {
		os.Remove(prev.ImagePath)
	}
	return cloneOperation(op), nil
}

// ctxReader stops an upload when the caller gives up.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read fails once the context is done.
func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func newID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "fw-" + t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// identity is the host's type-model and serial: Config.TypeModel, else
// the root's device tree or cpuinfo.
func (m *Manager) identity() Identity {
	var id Identity
	if m.cfg.Root != nil {
		id = ReadIdentity(m.cfg.Root)
	}
	if m.cfg.TypeModel != "" {
		id.TypeModel = m.cfg.TypeModel
	}
	return id
}

var levelStream = regexp.MustCompile(`^([A-Z]{2})[0-9]{3}_[0-9]{3}$`)

// stream is the firmware stream of an image level ("SV" of SV810_133),
// "" when the level does not follow IBM's naming.
func stream(level string) string {
	if m := levelStream.FindStringSubmatch(level); m != nil {
		return m[1]
	}
	return ""
}

// Validate runs `update_flash -v -f IMAGE` on the uploaded image and
// records the projected levels (state validated). Allowed in uploaded,
// validated (to validate again) and failed when the failure was the
// validation's. The image is refused (state failed,
// CodeImageWrongMachine) when the package names machine types that do not
// include the host's type-model, when update_flash says it is not for this
// platform, or when its projected level belongs to another firmware stream
// than the host's (SC… on an SV… host). A failing or hanging update_flash
// fails the operation with the tool's reason.
func (m *Manager) Validate(ctx context.Context, by string) (agentapi.FirmwareOperation, error) {
	done, err := m.begin("validate")
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	defer done()
	op := m.current()
	switch {
	case op == nil:
		return agentapi.FirmwareOperation{}, wrongState("validate", nil, "")
	case op.State == agentapi.FirmwareStateUploaded, op.State == agentapi.FirmwareStateValidated:
	case op.State == agentapi.FirmwareStateFailed && op.Failure != nil && op.Failure.Step == "validate" && op.ImagePath != "":
	default:
		return agentapi.FirmwareOperation{}, wrongState("validate", op, "only an uploaded (or already validated) image can be validated")
	}
	if _, err := os.Stat(op.ImagePath); err != nil {
		e := api.FieldError(api.CodeFirmwareImageMissing, "image", "the uploaded image %s is gone from the data directory: upload it again", op.ImagePath)
		return m.failAndSave(op, "validate", by, e)
	}
	ident := m.identity()
	if err := checkMachineTypes(op.Image, ident.TypeModel); err != nil {
		return m.failAndSave(op, "validate", by, err)
	}
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		op.Failure, op.Projection, op.Before = nil, nil, nil
		op.TypeModel, op.Serial = ident.TypeModel, ident.Serial
		m.setState(op, agentapi.FirmwareStateValidating, agentapi.FirmwareStep{Step: "validate", Result: "started", Who: who(by), ToLevel: op.Image.Level,
			Message: "update_flash -v -f " + op.ImagePath})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}

	before, err := RunLsmcode(ctx, m.cfg.Runner, m.cfg.Lsmcode, m.cfg.Timeouts.Lsmcode)
	if err != nil {
		return m.failAndSave(op, "validate", by, err)
	}
	res, err := m.cfg.Runner.Run(ctx, hostexec.Command{Name: m.cfg.UpdateFlash,
		Args: []string{"-v", "-f", op.ImagePath}, Timeout: m.cfg.Timeouts.Validate})
	if err != nil {
		return m.failAndSave(op, "validate", by, m.toolError("-v", res, err, false))
	}
	proj, err := ParseValidation(res.Stdout)
	if err != nil {
		return m.failAndSave(op, "validate", by, &api.Error{Code: api.CodeFirmwareToolOutput, Field: "update_flash -v", Message: err.Error(), Err: err})
	}
	if s, h := stream(proj.NewT), stream(proj.CurrentT); s != "" && h != "" && s != h {
		e := api.FieldError(api.CodeFirmwareImageWrongMachine, "image", "the image is firmware stream %s (%s) but this host (%s) runs stream %s (%s): it is for another machine type",
			s, proj.NewT, orUnknown(ident.TypeModel), h, proj.CurrentT)
		return m.failAndSave(op, "validate", by, e)
	}
	msg := fmt.Sprintf("projected: T %s → %s, P %s → %s", proj.CurrentT, proj.NewT, proj.CurrentP, proj.NewP)
	if len(proj.Info) > 0 {
		msg += "; " + strings.Join(proj.Info, "; ")
	}
	if op.Image.Level != "" && op.Image.Level != proj.NewT {
		msg += fmt.Sprintf("; note: the package is named for %s but update_flash projects %s", op.Image.Level, proj.NewT)
	}
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		op.Before, op.Projection, op.LastError = &before, &proj, nil
		m.setState(op, agentapi.FirmwareStateValidated, agentapi.FirmwareStep{Step: "validate", Result: "ok", Who: who(by),
			FromLevel: proj.CurrentT, ToLevel: proj.NewT, Message: msg})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	return m.Status(), nil
}

func orUnknown(s string) string {
	if s == "" {
		return "type-model unknown"
	}
	return s
}

// checkMachineTypes refuses an image whose package names machine types
// that do not include the host's.
func checkMachineTypes(img *agentapi.FirmwareImage, typeModel string) error {
	if img == nil || len(img.MachineTypes) == 0 {
		return nil
	}
	if typeModel == "" {
		return api.FieldError(api.CodeFirmwareImageWrongMachine, "image", "the package is for %s, and this host's type-model is unknown: refusing to flash an image that may be for another machine",
			strings.Join(img.MachineTypes, ", "))
	}
	for _, t := range img.MachineTypes {
		if t == typeModel {
			return nil
		}
	}
	return api.FieldError(api.CodeFirmwareImageWrongMachine, "image", "the package is for %s, not for this host's type-model %s", strings.Join(img.MachineTypes, ", "), typeModel)
}

// failAndSave fails the operation and returns the error.
func (m *Manager) failAndSave(op *agentapi.FirmwareOperation, step, by string, cause error) (agentapi.FirmwareOperation, error) {
	if err := m.mutate(func(op *agentapi.FirmwareOperation) { m.fail(op, step, by, cause) }); err != nil {
		return agentapi.FirmwareOperation{}, errors.Join(cause, err)
	}
	return agentapi.FirmwareOperation{}, cause
}

// toolError turns a failed update_flash run into an *Error. staged adds
// that an image may be staged (a flash that did not report).
func (m *Manager) toolError(opt string, res hostexec.Result, err error, staged bool) error {
	field := "update_flash " + opt
	var e *api.Error
	switch {
	case errors.Is(err, hostexec.ErrNotFound):
		e = &api.Error{Code: api.CodeFirmwareToolNotFound, Field: field, Message: "update_flash is not installed (package powerpc-utils)", Err: err}
	case errors.Is(err, hostexec.ErrTimeout):
		e = &api.Error{Code: api.CodeFirmwareToolTimeout, Field: field, Message: err.Error(), Err: err}
	case errors.Is(err, hostexec.ErrCanceled):
		e = &api.Error{Code: api.CodeFirmwareAborted, Field: field, Message: "the request was canceled while update_flash ran; its process group was killed", Err: err}
	case errors.Is(err, hostexec.ErrExit):
		f := ParseUpdateFlashFailure(res.ExitCode, res.Stdout, res.Stderr)
		if res.ExitCode < 0 {
			f.Reason, f.Message = "killed", err.Error()
		}
		e = &api.Error{Code: f.Code, Field: field, Message: f.Error(), Err: err}
	default:
		e = &api.Error{Code: api.CodeFirmwareToolFailed, Field: field, Message: err.Error(), Err: err}
	}
	if staged {
		e.Message += "; the image may be staged and would then be applied at the next reboot"
	}
	return e
}

// BootID is the host's kernel boot id as the workflow reads it from its
// root (a simulated firmware's reboot changes it); an error when the root
// has none.
func (m *Manager) BootID() (string, error) { return m.bootID() }

// bootID reads the kernel's boot id from the root.
func (m *Manager) bootID() (string, error) {
	if m.cfg.Root == nil {
		return "", api.FieldError(api.CodeFirmwareStateFile, BootIDPath, "no host root to read the boot id from")
	}
	data, err := readLimited(m.cfg.Root, BootIDPath, 256)
	if err != nil {
		return "", &api.Error{Code: api.CodeFirmwareStateFile, Field: BootIDPath, Message: "cannot read the boot id: " + err.Error(), Err: err}
	}
	id := strings.TrimSpace(string(data))
	if id == "" {
		return "", api.FieldError(api.CodeFirmwareStateFile, BootIDPath, "the boot id is empty")
	}
	return id, nil
}

// Flash runs `update_flash -f IMAGE` on the validated image: the image is
// staged and the host reboots (state rebooting). Only in state validated,
// with the image unchanged since its upload, and only when check says the
// host is in Maintenance with no VM running; check is called after the
// host is locked against VM starts (HostLocked). A refused flash leaves
// the operation validated (LastError says why). update_flash failing or
// hanging fails the operation with the reason.
func (m *Manager) Flash(ctx context.Context, by string, check PreconditionCheck) (agentapi.FirmwareOperation, error) {
	done, err := m.begin("flash")
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	defer done()
	op := m.current()
	if op == nil || op.State != agentapi.FirmwareStateValidated {
		need := "validate the image first"
		switch {
		case op == nil, op.State == agentapi.FirmwareStateUploaded, op.State == agentapi.FirmwareStateValidating:
		case op.State.Terminal():
			need = "it has ended; upload an image to start a new update"
		default:
			need = "it was flashed already"
		}
		return agentapi.FirmwareOperation{}, wrongState("flash", op, need)
	}
	if err := verifyImage(op); err != nil {
		return m.failAndSave(op, "flash", by, err)
	}
	var pre Preconditions
	var perr error
	if check == nil {
		perr = api.FieldError(api.CodeFirmwarePreconditions, "preconditions", "no maintenance and running-VM check was given")
	} else if pre, err = check(ctx); err != nil {
		perr = &api.Error{Code: api.CodeFirmwarePreconditions, Field: "preconditions", Message: "checking maintenance and running VMs failed: " + err.Error(), Err: err}
	} else if !pre.Maintenance {
		perr = api.FieldError(api.CodeHostNotInMaintenance, "", "the host is not in Maintenance: put it into Maintenance before flashing its firmware (the flash reboots it)")
	} else if pre.RunningVMs > 0 {
		perr = api.FieldError(api.CodeHostHasRunningVMs, "", "%d VM(s) run on the host: migrate or shut them down before flashing (the flash reboots the host)", pre.RunningVMs)
	}
	bootID := ""
	if perr == nil {
		bootID, perr = m.bootID()
	}
	if perr != nil {
		if err := m.mutate(func(op *agentapi.FirmwareOperation) { m.refuse(op, "flash", by, "refused", perr) }); err != nil {
			return agentapi.FirmwareOperation{}, errors.Join(perr, err)
		}
		return agentapi.FirmwareOperation{}, perr
	}
	from, to := op.Projection.CurrentT, op.Projection.NewT
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		op.BootIDAtFlash, op.LastError = bootID, nil
		m.setState(op, agentapi.FirmwareStateFlashing, agentapi.FirmwareStep{Step: "flash", Result: "started", Who: who(by), FromLevel: from, ToLevel: to,
			Message: "update_flash -f " + op.ImagePath})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	res, err := m.cfg.Runner.Run(ctx, hostexec.Command{Name: m.cfg.UpdateFlash,
		Args: []string{"-f", op.ImagePath}, Timeout: m.cfg.Timeouts.Flash})
	if err != nil {
		return m.failAndSave(op, "flash", by, m.toolError("-f", res, err, true))
	}
	rep, err := ParseFlash(res.Stdout)
	if err != nil {
		return m.failAndSave(op, "flash", by, &api.Error{Code: api.CodeFirmwareToolOutput, Field: "update_flash -f",
			Message: err.Error() + "; the image may be staged and would then be applied at the next reboot", Err: err})
	}
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		m.setState(op, agentapi.FirmwareStateRebooting, agentapi.FirmwareStep{Step: "flash", Result: "ok", Who: who(by), FromLevel: from, ToLevel: to,
			Message: rep.Ready})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	return m.Status(), nil
}

// verifyImage checks that the image file is the one uploaded.
func verifyImage(op *agentapi.FirmwareOperation) error {
	f, err := os.Open(op.ImagePath)
	if err != nil {
		return &api.Error{Code: api.CodeFirmwareImageMissing, Field: "image", Message: "the uploaded image is gone: " + err.Error(), Err: err}
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return &api.Error{Code: api.CodeFirmwareImageMissing, Field: "image", Message: "reading the uploaded image: " + err.Error(), Err: err}
	}
	if op.Image == nil || n != op.Image.Size || hex.EncodeToString(h.Sum(nil)) != op.Image.SHA256 {
		return api.FieldError(api.CodeFirmwareImageChanged, "image", "the image file changed since it was uploaded and validated: upload and validate it again")
	}
	return nil
}

// Resume re-checks an operation that waits for something outside the
// agent, and is called when the agent starts (after Open) and whenever the
// caller wants to know whether the host came back:
//
//   - flashing or rebooting, the boot id changed (the host rebooted):
//     lsmcode is read; if the temporary side holds the projected level the
//     operation awaits a decision (Booted says which level the host runs:
//     the permanent one when the new image did not boot), else it failed
//     with CodeFlashNotApplied;
//   - flashing, same boot id: the agent restarted while update_flash -f
//     ran; failed with CodeInterrupted (the image may be staged);
//   - rebooting, same boot id: unchanged (the caller times the state out
//     from Since);
//   - failed during the flash, and the host since rebooted: handled as
//     rebooting (a staged image was applied after all);
//   - committing or rejecting (the agent restarted in the middle):
//     lsmcode decides whether the banks were changed (committed,
//     rejected) or not (awaiting-decision again, LastError says so).
//
// The error is nil whenever the state was settled, the outcome a failure
// or not (Failure and LastError say why); a host command that fails leaves
// the state as it is and returns the error.
func (m *Manager) Resume(ctx context.Context, by string) (agentapi.FirmwareOperation, error) {
	done, err := m.begin("resume")
	if err != nil {
		if e, ok := err.(*api.Error); ok && e.Code == api.CodeNotSupportedOnArch {
			return m.Status(), nil
		}
		return agentapi.FirmwareOperation{}, err
	}
	defer done()
	op := m.current()
	if op == nil {
		return m.Status(), nil
	}
	switch {
	case op.State == agentapi.FirmwareStateFlashing, op.State == agentapi.FirmwareStateRebooting,
		op.State == agentapi.FirmwareStateFailed && op.Failure != nil && op.Failure.Step == "flash" && op.BootIDAtFlash != "":
		return m.resumeReboot(ctx, op, by)
	case op.State == agentapi.FirmwareStateCommitting, op.State == agentapi.FirmwareStateRejecting:
		return m.resumeManage(ctx, op, by)
	}
	return m.Status(), nil
}

func (m *Manager) resumeReboot(ctx context.Context, op *agentapi.FirmwareOperation, by string) (agentapi.FirmwareOperation, error) {
	id, err := m.bootID()
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	if id == op.BootIDAtFlash {
		if op.State == agentapi.FirmwareStateFlashing {
			e := api.FieldError(api.CodeFirmwareInterrupted, "flash", "the agent restarted while update_flash -f ran and the host has not rebooted: whether the image was staged is unknown; if it was, it is applied at the next reboot")
			if err := m.mutate(func(op *agentapi.FirmwareOperation) { m.fail(op, "flash", by, e) }); err != nil {
				return agentapi.FirmwareOperation{}, err
			}
		}
		return m.Status(), nil
	}
	sf, err := RunLsmcode(ctx, m.cfg.Runner, m.cfg.Lsmcode, m.cfg.Timeouts.Lsmcode)
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	newT, oldT := "", ""
	if op.Projection != nil {
		newT, oldT = op.Projection.NewT, op.Projection.CurrentT
	}
	if sf.Temporary.Code() != newT {
		e := api.FieldError(api.CodeFirmwareFlashNotApplied, "flash", "the host rebooted but its temporary side holds %s, not the projected %s: the image was not applied",
			sf.Temporary.Code(), newT)
		if err := m.mutate(func(op *agentapi.FirmwareOperation) { op.Booted = &sf; m.fail(op, "reboot", by, e) }); err != nil {
			return agentapi.FirmwareOperation{}, err
		}
		return m.Status(), nil
	}
	msg := fmt.Sprintf("the host came back on %s (booted side %s); temporary %s, permanent %s: commit or reject",
		sf.Booted.Code(), sideName(sf.BootedSide), sf.Temporary.Code(), sf.Permanent.Code())
	if sf.Booted.Code() != newT || sf.BootedSide == agentapi.FirmwareSidePermanent {
		msg = fmt.Sprintf("the host came back on %s from the permanent side: the new image %s did not boot; reject it",
			sf.Booted.Code(), newT)
	}
	if op.Projection != nil && sf.Permanent.Code() != op.Projection.NewP {
		msg += fmt.Sprintf("; note: the permanent side holds %s, update_flash projected %s", sf.Permanent.Code(), op.Projection.NewP)
	}
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		op.Booted, op.Failure = &sf, nil
		m.setState(op, agentapi.FirmwareStateAwaitingDecision, agentapi.FirmwareStep{Step: "reboot", Result: "ok", Who: who(by),
			FromLevel: oldT, ToLevel: sf.Booted.Code(), Message: msg})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	return m.Status(), nil
}

func sideName(s agentapi.FirmwareSide) string {
	switch s {
	case agentapi.FirmwareSideTemporary:
		return "temporary"
	case agentapi.FirmwareSidePermanent:
		return "permanent"
	}
	return "unknown"
}

func (m *Manager) resumeManage(ctx context.Context, op *agentapi.FirmwareOperation, by string) (agentapi.FirmwareOperation, error) {
	sf, err := RunLsmcode(ctx, m.cfg.Runner, m.cfg.Lsmcode, m.cfg.Timeouts.Lsmcode)
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	commit := op.State == agentapi.FirmwareStateCommitting
	if m.manageDone(op, sf, commit) {
		return m.finishManage(op, sf, commit, by, "the agent restarted during the step; lsmcode shows it done")
	}
	step := "reject"
	if commit {
		step = "commit"
	}
	e := api.FieldError(api.CodeFirmwareInterrupted, step, "the agent restarted during update_flash; lsmcode shows temporary %s, permanent %s: the %s did not happen, ask again",
		sf.Temporary.Code(), sf.Permanent.Code(), step)
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		op.After = &sf
		m.refuseTo(op, agentapi.FirmwareStateAwaitingDecision, step, by, "failed", e)
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	return m.Status(), nil
}

// manageDone tells whether the banks show the commit (both hold the new
// level) or the reject (both hold the old permanent level).
func (m *Manager) manageDone(op *agentapi.FirmwareOperation, sf agentapi.SystemFirmware, commit bool) bool {
	t, p := sf.Temporary.Code(), sf.Permanent.Code()
	if t != p {
		return false
	}
	if commit {
		return op.Projection != nil && t == op.Projection.NewT
	}
	return op.Booted != nil && t == op.Booted.Permanent.Code()
}

// Commit runs `update_flash -c`: the new level on the temporary side is
// copied to the permanent side (state committed). Only in
// awaiting-decision, and only when the host runs the new level (committing
// an image that did not boot is refused with CodeNewLevelNotUp). A
// failing or hanging update_flash leaves the operation awaiting a decision
// (LastError says why): the banks were not changed, or lsmcode shows
// whether they were.
func (m *Manager) Commit(ctx context.Context, by string) (agentapi.FirmwareOperation, error) {
	return m.manage(ctx, by, true)
}

// Reject runs `update_flash -r`: the permanent side is copied back to the
// temporary side and the old level is back (state rejected; the host runs
// the rejected level until its next reboot). Only in awaiting-decision;
// failures as for Commit.
func (m *Manager) Reject(ctx context.Context, by string) (agentapi.FirmwareOperation, error) {
	return m.manage(ctx, by, false)
}

func (m *Manager) manage(ctx context.Context, by string, commit bool) (agentapi.FirmwareOperation, error) {
	step, opt, next := "reject", "-r", agentapi.FirmwareStateRejecting
	if commit {
		step, opt, next = "commit", "-c", agentapi.FirmwareStateCommitting
	}
	done, err := m.begin(step)
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	defer done()
	op := m.current()
	if op == nil || op.State != agentapi.FirmwareStateAwaitingDecision {
		need := "it must be flashed and the host rebooted first"
		if op != nil && (op.State == agentapi.FirmwareStateCommitted || op.State == agentapi.FirmwareStateRejected) {
			need = "the decision was made already"
		}
		return agentapi.FirmwareOperation{}, wrongState(step, op, need)
	}
	newT := ""
	if op.Projection != nil {
		newT = op.Projection.NewT
	}
	if commit && op.Booted != nil && (op.Booted.Booted.Code() != newT || op.Booted.BootedSide == agentapi.FirmwareSidePermanent) {
		e := api.FieldError(api.CodeFirmwareNewLevelNotBooted, "", "the host runs %s, not the new level %s: committing would make an image that did not boot permanent; reject it",
			op.Booted.Booted.Code(), newT)
		if err := m.mutate(func(op *agentapi.FirmwareOperation) { m.refuse(op, step, by, "refused", e) }); err != nil {
			return agentapi.FirmwareOperation{}, errors.Join(e, err)
		}
		return agentapi.FirmwareOperation{}, e
	}
	from, to := "", ""
	if op.Booted != nil {
		if commit {
			from, to = op.Booted.Permanent.Code(), op.Booted.Temporary.Code()
		} else {
			from, to = op.Booted.Temporary.Code(), op.Booted.Permanent.Code()
		}
	}
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		op.LastError = nil
		m.setState(op, next, agentapi.FirmwareStep{Step: step, Result: "started", Who: who(by), FromLevel: from, ToLevel: to,
			Message: "update_flash " + opt})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	res, err := m.cfg.Runner.Run(ctx, hostexec.Command{Name: m.cfg.UpdateFlash, Args: []string{opt}, Timeout: m.cfg.Timeouts.Manage})
	if err == nil {
		if perr := ParseManage(res.Stdout, commit); perr != nil {
			var fe *api.Error
			if !errors.As(perr, &fe) {
				fe = &api.Error{Code: api.CodeFirmwareToolOutput, Field: "update_flash " + opt, Message: perr.Error(), Err: perr}
			}
			err = fe
		}
	} else {
		err = m.toolError(opt, res, err, false)
	}
	sf, lerr := RunLsmcode(ctx, m.cfg.Runner, m.cfg.Lsmcode, m.cfg.Timeouts.Lsmcode)
	if err != nil {
		if lerr == nil && m.manageDone(op, sf, commit) {
			// The tool failed (or hung) after doing the work.
			return m.finishManage(op, sf, commit, by, "update_flash reported a failure ("+messageOf(err)+") but lsmcode shows the step done")
		}
		if lerr == nil {
			var e *api.Error
			if errors.As(err, &e) {
				e.Message += fmt.Sprintf("; lsmcode shows temporary %s, permanent %s", sf.Temporary.Code(), sf.Permanent.Code())
			}
		}
		if serr := m.mutate(func(op *agentapi.FirmwareOperation) {
			if lerr == nil {
				op.After = &sf
			}
			m.refuseTo(op, agentapi.FirmwareStateAwaitingDecision, step, by, "failed", err)
		}); serr != nil {
			return agentapi.FirmwareOperation{}, errors.Join(err, serr)
		}
		return agentapi.FirmwareOperation{}, err
	}
	if lerr != nil {
		return m.finishManageUnread(op, commit, by, lerr)
	}
	return m.finishManage(op, sf, commit, by, "")
}

// finishManage records a commit or reject that is done.
func (m *Manager) finishManage(op *agentapi.FirmwareOperation, sf agentapi.SystemFirmware, commit bool, by, note string) (agentapi.FirmwareOperation, error) {
	step, state := "reject", agentapi.FirmwareStateRejected
	if commit {
		step, state = "commit", agentapi.FirmwareStateCommitted
	}
	var msg string
	if commit {
		msg = fmt.Sprintf("%s committed: temporary and permanent sides hold %s", sf.Temporary.Code(), sf.Permanent.Code())
	} else {
		msg = fmt.Sprintf("rejected: the old level %s is back on both sides", sf.Temporary.Code())
		if sf.Booted.Code() != sf.Temporary.Code() {
			msg += fmt.Sprintf("; the host runs %s until its next reboot", sf.Booted.Code())
		}
	}
	if note != "" {
		msg += "; " + note
	}
	// As the started step: commit moves the permanent side from the old
	// level, reject moves the temporary side from the new one.
	from, to := "", sf.Temporary.Code()
	if op.Booted != nil {
		from = op.Booted.Temporary.Code()
		if commit {
			from = op.Booted.Permanent.Code()
		}
	}
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		op.After, op.LastError = &sf, nil
		m.setState(op, state, agentapi.FirmwareStep{Step: step, Result: "ok", Who: who(by), FromLevel: from, ToLevel: to, Message: msg})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	if op.ImagePath != "" {
		os.Remove(op.ImagePath)
	}
	return m.Status(), nil
}

// finishManageUnread records a commit or reject update_flash reported done
// when lsmcode could not be read afterwards.
func (m *Manager) finishManageUnread(op *agentapi.FirmwareOperation, commit bool, by string, lerr error) (agentapi.FirmwareOperation, error) {
	step, state := "reject", agentapi.FirmwareStateRejected
	if commit {
		step, state = "commit", agentapi.FirmwareStateCommitted
	}
	msg := "update_flash reported success; the levels could not be read afterwards: " + messageOf(lerr)
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		op.LastError = nil
		m.setState(op, state, agentapi.FirmwareStep{Step: step, Result: "ok", Who: who(by), Message: msg})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	if op.ImagePath != "" {
		os.Remove(op.ImagePath)
	}
	return m.Status(), nil
}

// Cancel ends an operation that has not flashed anything (uploaded,
// validated) or whose reboot the caller gave up waiting for (rebooting, the
// host not rebooted: the staged image would still be applied at the next
// reboot, and the step log says so). The image is deleted.
func (m *Manager) Cancel(ctx context.Context, by, reason string) (agentapi.FirmwareOperation, error) {
	done, err := m.begin("cancel")
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	defer done()
	op := m.current()
	if op == nil {
		return agentapi.FirmwareOperation{}, wrongState("cancel", nil, "")
	}
	msg := strings.TrimSpace(reason)
	if op.State.Terminal() {
		// Nothing left to cancel: an operation that ended (a failed one
		// above all) is cleared instead.
		return m.clear(op)
	}
	switch op.State {
	case agentapi.FirmwareStateUploaded, agentapi.FirmwareStateValidated:
	case agentapi.FirmwareStateRebooting:
		id, err := m.bootID()
		if err != nil {
			return agentapi.FirmwareOperation{}, err
		}
		if id != op.BootIDAtFlash {
			return agentapi.FirmwareOperation{}, api.FieldError(api.CodeFirmwareWrongState, "state", "the host rebooted since the flash: call Resume to read the level it came back with")
		}
		if msg != "" {
			msg += "; "
		}
		msg += "the host has not rebooted: the image staged by update_flash -f is applied at its next reboot"
	default:
		return agentapi.FirmwareOperation{}, wrongState("cancel", op, "only an uploaded or validated operation, or one waiting for a reboot, can be cancelled")
	}
	if err := m.mutate(func(op *agentapi.FirmwareOperation) {
		m.setState(op, agentapi.FirmwareStateCancelled, agentapi.FirmwareStep{Step: "cancel", Result: "ok", Who: who(by), Message: msg})
	}); err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	if op.ImagePath != "" {
		os.Remove(op.ImagePath)
	}
	return m.Status(), nil
}

// Clear forgets an operation that has ended — failed, cancelled,
// committed or rejected — so that the host shows no operation (state
// idle); its image is deleted. The engine keeps its record and audit
// trail. An operation under way is refused (cancel it, or finish it).
// Cancel of an ended operation clears it too.
func (m *Manager) Clear(ctx context.Context, by string) (agentapi.FirmwareOperation, error) {
	done, err := m.begin("clear")
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	defer done()
	op := m.current()
	if op == nil {
		return m.Status(), nil
	}
	if !op.State.Terminal() {
		return agentapi.FirmwareOperation{}, wrongState("clear", op, "only an operation that ended (failed, cancelled, committed, rejected) can be cleared; cancel it or finish it first")
	}
	return m.clear(op)
}

// clear drops an ended operation; the caller holds the busy flag.
func (m *Manager) clear(op *agentapi.FirmwareOperation) (agentapi.FirmwareOperation, error) {
	m.mu.Lock()
	prev := m.op
	m.op = nil
	err := saveState(m.statePath(), nil)
	if err != nil {
		m.op = prev
	}
	m.mu.Unlock()
	if err != nil {
		return agentapi.FirmwareOperation{}, err
	}
	if op.ImagePath != "" {
		os.Remove(op.ImagePath)
	}
	return m.Status(), nil
}
