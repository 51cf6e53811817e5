// Package simfw simulates the system firmware of an FSP-based IBM POWER
// host for fake-KVM mode, as VDSM's fake mode simulates a host's
// capabilities: lsvpd's lsmcode and powerpc-utils' update_flash as a
// hostexec.Runner that prints what the real tools print (their texts and
// exit statuses), over the two firmware banks of a simulated machine kept
// in a state file of the agent's data directory, and the kernel boot id of
// the simulated host, which its simulated reboot changes.
//
// The semantics are update_flash_nv's on an FSP system
// (../shared/reference/power-firmware.md):
//
//   - update_flash -v -f IMAGE validates: the image must be a simulated
//     image (Image) for this machine's type-model; the projection is
//     printed (a temporary side that differs from the permanent one is
//     committed to it first);
//   - update_flash -f IMAGE stages the image and "reboots": RebootDelay
//     later the simulated host has rebooted — the staged levels are on the
//     banks, it booted the temporary side, and its boot id is new;
//   - update_flash -c copies the temporary side to the permanent side
//     (refused while running from the permanent side), -r the permanent
//     side back to the temporary one; -s says the partition may manage the
//     firmware;
//   - lsmcode and lsmcode -A print the three levels (temporary, permanent,
//     booted) as the S822L's tools do.
//
// A fault for the tests: a file BootFailsFile in the simulation's
// directory makes the next reboot of a flash come back on the permanent
// side, the new image having "failed" (the service processor boots the
// other bank, as an FSP does when the temporary side does not boot); the
// file is used up by that reboot.
//
// A real POWER host always uses the real tools: the agent uses this
// package only for a host presenting a built-in profile on a machine whose
// own architecture has no firmware mechanism.
package simfw

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/firmware"
	"polyvirt/internal/hostexec"
)

// ImageMagic is the first line of a simulated firmware image.
const ImageMagic = "POLYVIRT-SIMULATED-FIRMWARE"

// Image returns a simulated firmware image: the level it installs and the
// machine type-models it is for. It is what the simulated update_flash
// accepts (real images are opaque binaries that only the service
// processor reads), as a bare .img or inside the vendor's RPM.
func Image(level string, machines ...string) []byte {
	return []byte(fmt.Sprintf("%s\nlevel=%s\nmachines=%s\n", ImageMagic, level, strings.Join(machines, " ")))
}

// Machine is the simulated machine's firmware as a fresh host has it.
type Machine struct {
	// TypeModel is the machine type-model images are checked against
	// ("8247-22L").
	TypeModel string
	// Temporary and Permanent are the levels of the two banks
	// ("SV810_081"); the host booted the temporary side.
	Temporary, Permanent string
	// Service is the service processor (PFW) level lsmcode prints, if any.
	Service string
}

// DefaultRebootDelay is how long the simulated reboot of a flash takes.
const DefaultRebootDelay = 5 * time.Second

// StateFileName is the state file's name in the simulation's directory.
const StateFileName = "state.json"

// BootFailsFile, in the simulation's directory, makes the next reboot of a
// flash boot the permanent side: the new image on the temporary side
// "does not boot" (a fault the tests inject; the reboot removes it).
const BootFailsFile = "boot-fails"

const (
	stateFormat  = "polyvirt-simulated-firmware"
	stateVersion = 1
	// maxImageHead bounds what is read of an image.
	maxImageHead = 4096
	// maxStateBytes bounds the state file.
	maxStateBytes = 64 << 10
)

// state is the simulated host, as persisted.
type state struct {
	Format    string `json:"format"`
	Version   int    `json:"version"`
	TypeModel string `json:"typeModel"`
	Temporary string `json:"temporary"`
	Permanent string `json:"permanent"`
	Service   string `json:"service,omitempty"`
	// BootedSide ("t" or "p") and BootedLevel are what the running system
	// booted.
	BootedSide  string `json:"bootedSide"`
	BootedLevel string `json:"bootedLevel"`
	// Pending is what update_flash -f staged, applied by the reboot at
	// RebootAt.
	Pending *pending `json:"pending,omitempty"`
	// BootID is the kernel boot id of the running system.
	BootID string `json:"bootId"`
}

type pending struct {
	Temporary string    `json:"temporary"`
	Permanent string    `json:"permanent"`
	RebootAt  time.Time `json:"rebootAt"`
}

// Host is one simulated host's firmware, kept in a directory.
type Host struct {
	dir         string
	rebootDelay time.Duration
	now         func() time.Time

	mu sync.Mutex
	st state
}

// Options tune a Host.
type Options struct {
	// RebootDelay is how long the reboot of a flash takes
	// (DefaultRebootDelay when zero).
	RebootDelay time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

var levelRE = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`)

// Open loads the simulated firmware kept in dir, or lays out a fresh one
// from m when dir holds none: the state survives the agent's restarts, as
// a machine's firmware does. A state file that cannot be read is an error
// naming it.
func Open(dir string, m Machine, o Options) (*Host, error) {
	for _, l := range []struct{ name, v string }{{"typeModel", m.TypeModel}, {"temporary", m.Temporary}, {"permanent", m.Permanent}} {
		if !levelRE.MatchString(l.v) {
			return nil, fmt.Errorf("simulated firmware: %s %q is not a level", l.name, l.v)
		}
	}
	if o.RebootDelay <= 0 {
		o.RebootDelay = DefaultRebootDelay
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("simulated firmware: %w", err)
	}
	h := &Host{dir: dir, rebootDelay: o.RebootDelay, now: o.Now}
	st, err := loadState(h.statePath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		id, err := newBootID()
		if err != nil {
			return nil, err
		}
		st = state{Format: stateFormat, Version: stateVersion, TypeModel: m.TypeModel, Temporary: m.Temporary, Permanent: m.Permanent,
			Service: m.Service, BootedSide: "t", BootedLevel: m.Temporary, BootID: id}
		if err := writeState(h.statePath(), st); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	h.st = st
	return h, nil
}

func (h *Host) statePath() string { return filepath.Join(h.dir, StateFileName) }

// Dir is the directory the simulation is kept in.
func (h *Host) Dir() string { return h.dir }

func loadState(p string) (state, error) {
	f, err := os.Open(p)
	if err != nil {
		return state{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return state{}, fmt.Errorf("%s: %w", p, err)
	}
	if len(b) > maxStateBytes {
		return state{}, fmt.Errorf("%s: larger than %d bytes", p, maxStateBytes)
	}
	var st state
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return state{}, fmt.Errorf("%s: not a simulated firmware state: %v", p, err)
	}
	if err := st.check(); err != nil {
		return state{}, fmt.Errorf("%s: %v", p, err)
	}
	return st, nil
}

// check refuses a state that is not one this package writes.
func (st state) check() error {
	if st.Format != stateFormat || st.Version != stateVersion {
		return fmt.Errorf("format %q version %d, want %q version %d", clip(st.Format), st.Version, stateFormat, stateVersion)
	}
	levels := []struct{ name, v string }{{"typeModel", st.TypeModel}, {"temporary", st.Temporary}, {"permanent", st.Permanent}, {"bootedLevel", st.BootedLevel}}
	if st.Pending != nil {
		levels = append(levels, struct{ name, v string }{"pending.temporary", st.Pending.Temporary}, struct{ name, v string }{"pending.permanent", st.Pending.Permanent})
	}
	for _, l := range levels {
		if !levelRE.MatchString(l.v) {
			return fmt.Errorf("%s %q is not a level", l.name, clip(l.v))
		}
	}
	if st.Service != "" && !levelRE.MatchString(st.Service) {
		return fmt.Errorf("service %q is not a level", clip(st.Service))
	}
	if st.BootedSide != "t" && st.BootedSide != "p" {
		return fmt.Errorf("bootedSide %q, want t or p", clip(st.BootedSide))
	}
	if st.BootID == "" || len(st.BootID) > 64 {
		return fmt.Errorf("bootId %q is not a boot id", clip(st.BootID))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// writeState replaces the state file so that a crash leaves the old or
// the new state: a temporary file, fsync, rename.
func writeState(p string, st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".state-*")
	if err != nil {
		return fmt.Errorf("simulated firmware: %w", err)
	}
	tmp := f.Name()
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("simulated firmware: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("simulated firmware: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("simulated firmware: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("simulated firmware: %w", err)
	}
	return nil
}

func newBootID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32], nil
}

// settle completes a reboot whose time has come: the staged levels are
// written to the banks, the system boots the temporary side, the boot id
// changes. The caller holds mu.
func (h *Host) settle() error {
	p := h.st.Pending
	if p == nil || h.now().Before(p.RebootAt) {
		return nil
	}
	id, err := newBootID()
	if err != nil {
		return err
	}
	next := h.st
	next.Temporary, next.Permanent, next.Pending = p.Temporary, p.Permanent, nil
	next.BootedSide, next.BootedLevel, next.BootID = "t", p.Temporary, id
	fault := filepath.Join(h.dir, BootFailsFile)
	_, ferr := os.Stat(fault)
	if ferr == nil {
		next.BootedSide, next.BootedLevel = "p", p.Permanent
	}
	if err := writeState(h.statePath(), next); err != nil {
		return err
	}
	h.st = next
	if ferr == nil {
		if err := os.Remove(fault); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("simulated firmware: %w", err)
		}
	}
	return nil
}

// Levels returns the simulated firmware as lsmcode reports it, and whether
// a reboot is pending.
func (h *Host) Levels() (agentapi.SystemFirmware, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.settle(); err != nil {
		return agentapi.SystemFirmware{}, false, err
	}
	return h.levels(), h.st.Pending != nil, nil
}

func (h *Host) levels() agentapi.SystemFirmware {
	return agentapi.SystemFirmware{
		Temporary: agentapi.FirmwareLevel{Name: h.st.Temporary}, Permanent: agentapi.FirmwareLevel{Name: h.st.Permanent},
		Booted: agentapi.FirmwareLevel{Name: h.st.BootedLevel}, BootedSide: agentapi.FirmwareSide(h.st.BootedSide), Service: h.st.Service,
	}
}

// BootID is the simulated host's kernel boot id.
func (h *Host) BootID() (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.settle(); err != nil {
		return "", err
	}
	return h.st.BootID, nil
}

// Run runs lsmcode or update_flash against the simulated firmware; any
// other program is not found, as on a host without it.
func (h *Host) Run(ctx context.Context, cmd hostexec.Command) (hostexec.Result, error) {
	start := h.now()
	if err := ctx.Err(); err != nil {
		return hostexec.Result{ExitCode: -1}, &hostexec.Error{Command: cmd.String(), Kind: hostexec.ErrCanceled, Err: err}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.settle(); err != nil {
		return hostexec.Result{ExitCode: -1}, &hostexec.Error{Command: cmd.String(), Kind: hostexec.ErrStart, Err: err}
	}
	var out tool
	switch path.Base(cmd.Name) {
	case "lsmcode":
		out = h.lsmcode(cmd.Args)
	case "update_flash":
		out = h.updateFlash(cmd.Args)
	default:
		return hostexec.Result{ExitCode: -1}, &hostexec.Error{Command: cmd.String(), Kind: hostexec.ErrNotFound,
			Err: fmt.Errorf("%s: the simulated firmware has lsmcode and update_flash only", cmd.Name)}
	}
	res := hostexec.Result{Stdout: []byte(out.stdout), Stderr: []byte(out.stderr), ExitCode: out.code, Duration: h.now().Sub(start)}
	if out.code != 0 {
		line := strings.TrimSpace(strings.SplitN(strings.TrimSpace(out.stderr+"\n"+out.stdout), "\n", 2)[0])
		return res, &hostexec.Error{Command: cmd.String(), Kind: hostexec.ErrExit, ExitCode: out.code, Stderr: line}
	}
	return res, nil
}

// tool is what one run printed and its exit status.
type tool struct {
	stdout, stderr string
	code           int
}

func (h *Host) lsmcode(args []string) tool {
	sf := h.levels()
	switch strings.Join(args, " ") {
	case "":
		return tool{stdout: firmware.FormatLsmcode(sf)}
	case "-A", "--All":
		return tool{stdout: fmt.Sprintf("sys0!system:%s (t) %s (p) %s (%s)service:%s\n", sf.Temporary.Name, sf.Permanent.Name,
			sf.Booted.Name, h.st.BootedSide, h.st.Service)}
	case "-v", "--version":
		return tool{stdout: "lsmcode 1.7.14 (simulated)\n"}
	case "-h", "--help":
		return tool{stdout: lsmcodeUsage}
	}
	return tool{stdout: lsmcodeUsage, code: 1}
}

const lsmcodeUsage = `Usage: /usr/sbin/lsmcode [options]
options: 
 --help,       -h     print this usage message
 --version,    -v     print the version of vpd tools
 --All,        -A     Display microcode level for as many devices as possible.
`

// The exit statuses of update_flash_nv.
const (
	eUsage     = 3
	eImage     = 5
	eOPAL      = 8
	eOverwrite = 10
)

const updateFlashUsage = "USAGE: update_flash {-h | -s | -r | -c | -d | [-v|-n] -f <image filename>}\n"

func fail(code int, msg string) tool { return tool{stderr: "update_flash: " + msg + "\n", code: code} }

func (h *Host) updateFlash(args []string) tool {
	var file string
	var check, display, commit, reject, validate, noOverwrite, help bool
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-h":
			help = true
		case "-s":
			check = true
		case "-d":
			display = true
		case "-c":
			commit = true
		case "-r":
			reject = true
		case "-v":
			validate = true
		case "-n":
			noOverwrite = true
		case "-f":
			if i+1 >= len(args) {
				return tool{stderr: updateFlashUsage, code: eUsage}
			}
			i++
			file = args[i]
		default:
			return fail(eUsage, "Unknown option "+a+".")
		}
	}
	modes := 0
	for _, b := range []bool{check, display, commit, reject, file != ""} {
		if b {
			modes++
		}
	}
	switch {
	case help:
		return tool{stderr: updateFlashUsage}
	case modes != 1, validate && noOverwrite, (validate || noOverwrite) && file == "":
		return tool{stderr: updateFlashUsage, code: eUsage}
	case check:
		return tool{stdout: "update_flash: Firmware image management is supported.\n"}
	case display:
		return tool{stdout: fmt.Sprintf("Current firwmare version :\n  P side    : %s (%s)\n  T side    : %s (%s)\n  Boot side : %s (%s)\n",
			h.st.Permanent, h.st.Permanent, h.st.Temporary, h.st.Temporary, h.st.BootedLevel, h.st.BootedLevel)}
	case commit:
		if h.st.BootedSide == "p" {
			return fail(eOverwrite, "Cannot Overwrite the Active Firmware Image.")
		}
		return h.change(func(st *state) { st.Permanent = st.Temporary }, "Success: Committed temporary firmware image.\n")
	case reject:
		return h.change(func(st *state) { st.Temporary = st.Permanent }, "Success: Rejected temporary firmware image.\n")
	}
	level, t := h.readImage(file)
	if t != nil {
		return *t
	}
	newT, newP, text, code := h.project(level, noOverwrite)
	if code != 0 {
		return tool{stdout: text, stderr: "update_flash: Run without -n option to flash new image.\n", code: code}
	}
	if validate {
		return tool{stdout: text}
	}
	staged := &pending{Temporary: newT, Permanent: newP, RebootAt: h.now().Add(h.rebootDelay)}
	out := h.change(func(st *state) { st.Pending = staged },
		text+"\nFLASH: Image ready...rebooting the system...\nFLASH: This will take several minutes.\nFLASH: Do not power off!\n")
	return out
}

// change applies f to the state and persists it, printing ok.
func (h *Host) change(f func(*state), ok string) tool {
	next := h.st
	if h.st.Pending != nil {
		p := *h.st.Pending
		next.Pending = &p
	}
	f(&next)
	if err := writeState(h.statePath(), next); err != nil {
		return fail(eOPAL, "Error writing the firmware state: "+err.Error())
	}
	h.st = next
	return tool{stdout: ok}
}

// readImage reads a simulated image: its level, or the real tool's
// failure for a file that is not one or is for another machine.
func (h *Host) readImage(file string) (string, *tool) {
	f, err := os.Open(file)
	if err != nil {
		t := fail(eImage, "Cannot read "+file+".")
		return "", &t
	}
	defer f.Close()
	head, _ := io.ReadAll(io.LimitReader(f, maxImageHead))
	lines := strings.Split(string(head), "\n")
	if strings.TrimSpace(lines[0]) != ImageMagic {
		t := fail(eImage, "Invalid candidate image.")
		t.stderr += "update_flash: (the simulated firmware of a fake-KVM host flashes simulated images only: a file starting with " + ImageMagic + ")\n"
		return "", &t
	}
	var level, machines string
	for _, l := range lines[1:] {
		if v, ok := strings.CutPrefix(l, "level="); ok && level == "" {
			level = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "machines="); ok && machines == "" {
			machines = v
		}
	}
	if !levelRE.MatchString(level) {
		t := fail(eImage, "Invalid candidate image.")
		return "", &t
	}
	for _, m := range strings.Fields(machines) {
		if m == h.st.TypeModel {
			return level, nil
		}
	}
	t := fail(eOPAL, "Invalid candidate image for this platform.")
	return "", &t
}

// project prints the validation result as update_flash_nv does and
// returns the projected levels; with -n a temporary side that would first
// be committed is refused (exit eOverwrite).
func (h *Host) project(level string, noOverwrite bool) (newT, newP, text string, code int) {
	t, p := h.st.Temporary, h.st.Permanent
	down := level < t
	var b strings.Builder
	newT, newP = level, p
	switch {
	case t != p && down:
		b.WriteString("info: Current Temporary image will be committed to\nPermanent side before being replaced with new image,\nand the new image is downlevel from current image.\n")
		newP = t
	case t != p:
		b.WriteString("info: Current Temporary side will be committed to\nPermanent side before being replaced with the new\nimage.\n")
		newP = t
	case down:
		b.WriteString("info: Temporary side will be updated with a downlevel image.\n")
	default:
		b.WriteString("info: Temporary side will be updated with a newer or identical image.\n")
	}
	fmt.Fprintf(&b, "\nProjected Flash Update Results:\nCurrent T Image: %s\nCurrent P Image: %s\nNew T Image:     %s\nNew P Image:     %s\n", t, p, newT, newP)
	if noOverwrite && t != p {
		return "", "", b.String() + "\n", eOverwrite
	}
	return newT, newP, b.String(), 0
}

// Root is base (the simulated host's root: a profile's) with the
// simulated kernel's boot id at firmware.BootIDPath, as the firmware
// workflow reads it to tell a reboot from an agent restart.
func (h *Host) Root(base fs.FS) fs.FS { return &rootFS{base: base, h: h} }

type rootFS struct {
	base fs.FS
	h    *Host
}

// Open serves the boot id from the simulation and everything else from
// the base root.
func (r *rootFS) Open(name string) (fs.File, error) {
	if name != firmware.BootIDPath {
		if r.base == nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return r.base.Open(name)
	}
	id, err := r.h.BootID()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &memFile{name: path.Base(name), r: strings.NewReader(id + "\n"), size: int64(len(id) + 1)}, nil
}

// memFile is a read-only file held in memory.
type memFile struct {
	name string
	r    *strings.Reader
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo{f.name, f.size}, nil }
func (f *memFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *memFile) Close() error               { return nil }

type memInfo struct {
	name string
	size int64
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
