// Package fakehost simulates the firmware side of an FSP-based IBM POWER
// host for tests: fake lsmcode and update_flash executables (shell scripts
// in bin/) that print what the real tools print and keep the firmware banks
// in a state directory named by $POLYVIRT_FAKEHOST_STATE, a Go helper that
// sets that directory up and completes the reboot update_flash -f starts,
// and an RPM builder so that tests never need the rpm tool. README.md
// describes the tools and the state directory.
package fakehost

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"polyvirt/internal/hostexec"
)

// StateEnv is the environment variable that names the state directory.
const StateEnv = "POLYVIRT_FAKEHOST_STATE"

// BootIDPath is where the state directory, read as a host root, holds the
// kernel's boot id (a new one after each simulated reboot).
const BootIDPath = "proc/sys/kernel/random/boot_id"

// Options describe the simulated host; zero fields take the defaults of an
// IBM Power System S822L (8247-22L) on SV810_081.
type Options struct {
	// TypeModel is the machine type-model ("8247-22L").
	TypeModel string
	// Serial is the system serial number (device tree system-id).
	Serial string
	// ModelName is the device tree model-name.
	ModelName string
	// Temporary and Permanent are the levels of the two banks; the host
	// booted from the temporary side.
	Temporary, Permanent string
	// Service is the service processor (PFW) level lsmcode prints, if any.
	Service string
}

// Host is one simulated host: its state directory.
type Host struct {
	dir string
}

// New lays out a fresh state directory in dir (which must exist): the
// firmware banks, the device tree identity and a boot id.
func New(dir string, o Options) (*Host, error) {
	if o.TypeModel == "" {
		o.TypeModel = "8247-22L"
	}
	if o.Serial == "" {
		o.Serial = "1013B7A"
	}
	if o.ModelName == "" {
		o.ModelName = "IBM Power System S822L"
	}
	if o.Temporary == "" {
		o.Temporary = "SV810_081"
	}
	if o.Permanent == "" {
		o.Permanent = o.Temporary
	}
	h := &Host{dir: dir}
	files := map[string]string{
		"t":                           o.Temporary + "\n",
		"p":                           o.Permanent + "\n",
		"booted_side":                 "t\n",
		"booted_level":                o.Temporary + "\n",
		"proc/device-tree/model":      o.TypeModel + "\x00",
		"proc/device-tree/system-id":  o.Serial + "\x00",
		"proc/device-tree/model-name": o.ModelName + "\x00",
		"proc/device-tree/vendor":     "IBM\x00",
		"proc/device-tree/compatible": "ibm,powernv\x00ibm,firenze\x00",
		// An FSP-based PowerNV host: update_flash_nv looks for fsps/.
		"proc/device-tree/fsps/name":                 "fsps\x00",
		"proc/device-tree/ibm,opal/firmware/version": "skiboot-5.1.13\x00",
	}
	if o.Service != "" {
		files["service"] = o.Service + "\n"
	}
	for name, content := range files {
		if err := h.write(name, content); err != nil {
			return nil, err
		}
	}
	if err := h.newBootID(); err != nil {
		return nil, err
	}
	return h, nil
}

// Dir is the state directory.
func (h *Host) Dir() string { return h.dir }

// Root is the state directory as a host root: it holds the device tree
// identity (proc/device-tree/model, system-id, model-name) and the boot id
// (BootIDPath).
func (h *Host) Root() fs.FS { return os.DirFS(h.dir) }

// Env is the environment entry that points the fake tools at the state
// directory.
func (h *Host) Env() []string { return []string{StateEnv + "=" + h.dir} }

// BinDir is the directory of the fake executables (lsmcode, update_flash).
func BinDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("fakehost: cannot locate the package directory")
	}
	dir := filepath.Join(filepath.Dir(file), "bin")
	if _, err := os.Stat(filepath.Join(dir, "update_flash")); err != nil {
		return "", fmt.Errorf("fakehost: fake tools not found: %w", err)
	}
	return dir, nil
}

// Runner returns a real process runner (hostexec.Exec) that finds the fake
// tools first on its PATH and hands them the state directory.
func (h *Host) Runner() (*hostexec.Exec, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	return &hostexec.Exec{
		Path: bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		Env:  append(os.Environ(), h.Env()...),
	}, nil
}

// Image returns the content of a fake firmware image the fake update_flash
// accepts: the level it installs and the machine type-models it is for.
func Image(level string, machines ...string) []byte {
	return []byte(fmt.Sprintf("POLYVIRT-FAKE-FIRMWARE\nlevel=%s\nmachines=%s\n", level, strings.Join(machines, " ")))
}

// Levels is the simulated firmware state.
type Levels struct {
	// Temporary and Permanent are the banks.
	Temporary, Permanent string
	// BootedSide ("t" or "p") and BootedLevel are what the running system
	// booted.
	BootedSide, BootedLevel string
	// Pending is "NEW_T NEW_P" after update_flash -f, until the reboot.
	Pending string
	// RebootRequested tells that update_flash -f asked for a reboot that
	// has not been completed.
	RebootRequested bool
}

// Levels reads the simulated firmware state.
func (h *Host) Levels() (Levels, error) {
	var l Levels
	for _, f := range []struct {
		name     string
		dst      *string
		optional bool
	}{
		{"t", &l.Temporary, false}, {"p", &l.Permanent, false},
		{"booted_side", &l.BootedSide, false}, {"booted_level", &l.BootedLevel, false},
		{"pending", &l.Pending, true},
	} {
		v, err := h.read(f.name)
		if err != nil {
			if f.optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return Levels{}, err
		}
		*f.dst = v
	}
	_, err := os.Stat(filepath.Join(h.dir, "reboot_requested"))
	l.RebootRequested = err == nil
	return l, nil
}

// CompleteReboot finishes the reboot update_flash -f started (or reboots
// an idle host): a staged image is written to the banks, the system boots
// the temporary side — or the permanent side when fallback is true, as a
// system does when the new image does not boot — and gets a new boot id.
func (h *Host) CompleteReboot(fallback bool) error {
	pending, err := h.read("pending")
	switch {
	case err == nil:
		f := strings.Fields(pending)
		if len(f) != 2 {
			return fmt.Errorf("fakehost: pending is %q, want \"NEW_T NEW_P\"", pending)
		}
		if err := h.write("t", f[0]+"\n"); err != nil {
			return err
		}
		if err := h.write("p", f[1]+"\n"); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(h.dir, "pending")); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	side := "t"
	if fallback {
		side = "p"
	}
	level, err := h.read(side)
	if err != nil {
		return err
	}
	if err := h.write("booted_side", side+"\n"); err != nil {
		return err
	}
	if err := h.write("booted_level", level+"\n"); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(h.dir, "reboot_requested")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := h.appendCall("reboot"); err != nil {
		return err
	}
	return h.newBootID()
}

// Hang makes the named operations hang until killed: "lsmcode",
// "validate", "flash", "commit", "reject", "query". No names: nothing
// hangs.
func (h *Host) Hang(ops ...string) error {
	if len(ops) == 0 {
		err := os.Remove(filepath.Join(h.dir, "hang"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return h.write("hang", strings.Join(ops, "\n")+"\n")
}

// SetUser makes the tools believe they run as user (not "root": they fail
// as the real ones do).
func (h *Host) SetUser(user string) error { return h.write("user", user+"\n") }

// SetPlatform makes update_flash see another platform: "fsp" (default),
// "unknown" (neither FSP nor BMC: unsupported) or "nosysfs" (the OPAL
// flash interface is missing).
func (h *Host) SetPlatform(platform string) error { return h.write("platform", platform+"\n") }

// Set writes one state file (see README.md), for knobs without a helper
// ("reject_needs_p_side", "lsmcode_unsupported", "no_vpd_db", "t", ...).
func (h *Host) Set(name, content string) error { return h.write(name, content) }

// Unset removes one state file.
func (h *Host) Unset(name string) error {
	err := os.Remove(filepath.Join(h.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Calls lists the tool invocations so far ("update_flash -v -f /x.img",
// "reboot" for a completed reboot).
func (h *Host) Calls() ([]string, error) {
	data, err := os.ReadFile(filepath.Join(h.dir, "calls"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), nil
}

// BootID is the current boot id.
func (h *Host) BootID() (string, error) { return h.read(BootIDPath) }

func (h *Host) newBootID() error {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	x := hex.EncodeToString(b[:])
	id := x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
	return h.write(BootIDPath, id+"\n")
}

func (h *Host) appendCall(line string) error {
	f, err := os.OpenFile(filepath.Join(h.dir, "calls"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (h *Host) read(name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(h.dir, filepath.FromSlash(name)))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(strings.TrimRight(string(data), "\x00")), nil
}

func (h *Host) write(name, content string) error {
	p := filepath.Join(h.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}
