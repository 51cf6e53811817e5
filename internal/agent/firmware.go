package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/firmware"
	"polyvirt/internal/firmware/simfw"
	"polyvirt/internal/hostexec"
	"polyvirt/internal/profiles"
)

// FirmwareConfig says how the agent reaches the host's firmware tools.
type FirmwareConfig struct {
	// Path is the PATH lsmcode and update_flash are looked up in (default
	// the agent's own PATH plus /usr/sbin and /sbin).
	Path string `json:"path"`
	// Env are extra environment variables for the tools (NAME=value).
	Env []string `json:"env"`
	// Root is the filesystem root the device tree and the kernel boot id
	// are read from (default "/", or the profile's root).
	Root string `json:"root"`
	// SimulatedReboot is how long the simulated reboot after a flash takes
	// on a host whose firmware is simulated (default 5s).
	SimulatedReboot Duration `json:"simulated_reboot"`
}

// configured tells whether the configuration names tools or a root: the
// operator chose them, and they are used whatever the host presents.
func (fc FirmwareConfig) configured() bool {
	return fc.Path != "" || fc.Root != "" || len(fc.Env) > 0
}

// SimulatedFirmwareDir is the simulated firmware's directory (package
// simfw) in the agent's data directory, for a fake-KVM POWER host.
const SimulatedFirmwareDir = "firmware-simulated"

const simulatedFirmwareDir = SimulatedFirmwareDir

// openFirmware opens the firmware manager of this host and settles an
// operation a restart or a reboot interrupted.
//
// Which firmware: a host whose machine has a firmware mechanism of its own
// (a real POWER host) always uses the real tools on the real root, whatever
// profile it presents; so does a host whose configuration names the tools
// or a root. A host presenting a profile on a machine without one (fake
// KVM on x86_64) simulates the profile's system firmware (package
// firmware/simfw, kept in DATADIR/firmware-simulated), or has none when
// the profile carries none. Any other host reads its own machine's.
func (a *Agent) openFirmware(ctx context.Context) error {
	fc := a.cfg.Firmware
	path := fc.Path
	if path == "" {
		path = os.Getenv("PATH") + ":/usr/sbin:/sbin"
	}
	cfg := firmware.Config{
		DataDir: a.cfg.DataDir,
		Arch:    a.realArch,
		Runner:  &hostexec.Exec{Path: path, Env: fc.Env},
		Root:    os.DirFS("/"),
	}
	realMechanism := ""
	if spec, err := archspec.For(a.realArch); err == nil {
		realMechanism = spec.Host.FirmwareUpdate
	}
	switch {
	case fc.configured():
		// The operator's tools and root (tests point them at fake tools),
		// for the architecture the host presents.
		if a.cfg.Profile != "" {
			p, err := profiles.Get(a.cfg.Profile)
			if err != nil {
				return err
			}
			cfg.Root, cfg.Arch = p.Root, p.Arch
		}
		if a.cfg.FakeArch != arch.Unknown {
			cfg.Arch = a.cfg.FakeArch
		}
		if fc.Root != "" {
			cfg.Root = os.DirFS(fc.Root)
		}
	case a.cfg.Profile != "" && realMechanism == "":
		p, err := profiles.Get(a.cfg.Profile)
		if err != nil {
			return err
		}
		cfg.Root, cfg.Arch = p.Root, p.Arch
		if p.LsmcodeA == "" {
			cfg.Unsupported = fmt.Sprintf("the profile %s simulates no system firmware (%s); updates are simulated for FSP-based profiles such as s822l-power8e",
				p.Name, p.Title)
			break
		}
		sim, err := a.openSimulatedFirmware(p)
		if err != nil {
			return err
		}
		cfg.Runner, cfg.Root = sim, sim.Root(p.Root)
		a.fwSimulated = fmt.Sprintf("the system firmware of profile %s, simulated in %s (simulated images: examples/firmware/)", p.Name, sim.Dir())
		a.log.Info("simulated system firmware", "profile", p.Name, "dir", sim.Dir())
	case a.cfg.Profile != "":
		a.log.Info("the machine's own firmware tools are used, not a simulation of the profile's", "profile", a.cfg.Profile, "arch", a.realArch)
	}
	m, err := firmware.Open(cfg)
	if err != nil {
		return err
	}
	a.fw = m
	if m.Supported() {
		if op, err := m.Resume(ctx, "agent"); err != nil {
			a.log.Warn("firmware operation could not be checked after the restart", "err", err)
		} else if op.ID != "" {
			a.log.Info("firmware operation", "id", op.ID, "state", op.State)
		}
	}
	return nil
}

// openSimulatedFirmware opens the simulation of a profile's system
// firmware in the data directory (laid out from the profile the first
// time; later the banks are what the updates made them).
func (a *Agent) openSimulatedFirmware(p *profiles.Profile) (*simfw.Host, error) {
	sf, err := firmware.ParseLsmcodeA([]byte(p.LsmcodeA))
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	id := firmware.ReadIdentity(p.Root)
	return simfw.Open(filepath.Join(a.cfg.DataDir, simulatedFirmwareDir),
		simfw.Machine{TypeModel: id.TypeModel, Temporary: sf.Temporary.Code(), Permanent: sf.Permanent.Code(), Service: sf.Service},
		simfw.Options{RebootDelay: a.cfg.Firmware.SimulatedReboot.Duration, Now: a.simClock})
}

// FirmwareStatus reports the inventory and the operation. While a flash
// waits for its reboot it checks whether the host has rebooted.
func (a *Agent) FirmwareStatus(ctx context.Context) (*agentapi.FirmwareStatus, error) {
	st := &agentapi.FirmwareStatus{Supported: a.fw.Supported()}
	op := a.fw.Status()
	if st.Supported && (op.State == agentapi.FirmwareStateRebooting || op.State == agentapi.FirmwareStateFlashing) {
		if resumed, err := a.fw.Resume(ctx, "agent"); err == nil {
			op = resumed
		}
	}
	if op.ID != "" {
		st.Operation = &op
	}
	inv, err := a.fw.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	inv.Simulated = a.fwSimulated
	st.Inventory = inv
	return st, nil
}

// stepWait is how long a firmware step request waits for the step to end
// before answering 202 Accepted (the step goes on; GET /v1/firmware tells
// its progress). Refusals come back at once.
const stepWait = 2 * time.Second

// FirmwareAction runs one step of the update workflow. who is the user the
// engine acts for; flash asks the engine's maintenance assertion. The step
// runs on its own (the tools take minutes, and a reboot may end the
// agent): done reports whether it ended within stepWait.
func (a *Agent) FirmwareAction(ctx context.Context, step, who string, maintenance bool) (op *agentapi.FirmwareOperation, done bool, err error) {
	type result struct {
		op  *agentapi.FirmwareOperation
		err error
	}
	ch := make(chan result, 1)
	go func() {
		op, err := a.firmwareStep(context.Background(), step, who, maintenance)
		ch <- result{op, err}
	}()
	select {
	case r := <-ch:
		return r.op, true, toolNamedOnce(r.err)
	case <-time.After(stepWait):
		cur := a.fw.Status()
		return &cur, false, nil
	case <-ctx.Done():
		cur := a.fw.Status()
		return &cur, false, nil
	}
}

func (a *Agent) firmwareStep(ctx context.Context, step, who string, maintenance bool) (*agentapi.FirmwareOperation, error) {
	var (
		op  agentapi.FirmwareOperation
		err error
	)
	switch step {
	case "validate":
		op, err = a.fw.Validate(ctx, who)
	case "flash":
		op, err = a.fw.Flash(ctx, who, func(ctx context.Context) (firmware.Preconditions, error) {
			n, err := a.runningVMs(ctx)
			return firmware.Preconditions{Maintenance: maintenance, RunningVMs: n}, err
		})
	case "commit":
		op, err = a.fw.Commit(ctx, who)
	case "reject":
		op, err = a.fw.Reject(ctx, who)
	case "cancel":
		op, err = a.fw.Cancel(ctx, who, "cancelled by "+who)
	case "clear":
		op, err = a.fw.Clear(ctx, who)
	default:
		return nil, api.NewError(http.StatusNotFound, api.CodeUnknownAction, "unknown firmware step %q (validate, flash, commit, reject, cancel, clear)", step)
	}
	if err != nil {
		return nil, err
	}
	return &op, nil
}

// FirmwareUpload stores an image (the vendor's RPM or a bare .img).
func (a *Agent) FirmwareUpload(ctx context.Context, r io.Reader, name, who string) (*agentapi.FirmwareOperation, error) {
	op, err := a.fw.Upload(ctx, r, name, who)
	if err != nil {
		return nil, toolNamedOnce(err)
	}
	return &op, nil
}

// toolNamedOnce drops the field of a firmware error whose message already
// begins with the tool the field names ("update_flash exited 8 …" of field
// "update_flash -v", "lsmcode is not installed …" of field "lsmcode"), so
// that a client printing "CODE (field): message" names the tool once.
func toolNamedOnce(err error) error {
	var e *api.Error
	if !errors.As(err, &e) || e.Field == "" || firmware.FieldMessage(e.Field, e.Message) != e.Message {
		return err
	}
	c := *e
	c.Field = ""
	return &c
}

// runningVMs counts the VMs of this agent that run (or are paused: their
// memory is live).
func (a *Agent) runningVMs(ctx context.Context) (int, error) {
	c, err := a.conn.get()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range a.index.list() {
		st, err := c.DomainState(ctx, e.Domain)
		if err != nil {
			return 0, err
		}
		if stateOf(st) != agentapi.StateDefined {
			n++
		}
	}
	return n, nil
}

// hostLocked refuses to start a VM while a firmware flash holds the host.
func (a *Agent) hostLocked() error {
	if a.fw != nil && a.fw.HostLocked() {
		return api.NewError(http.StatusConflict, api.CodeHostLockedByFirmware, "a firmware update holds this host (%s); VMs start again once it ends", a.fw.Status().State)
	}
	return nil
}

// withFirmwareLevels adds the system firmware levels lsmcode reports (FSP
// POWER hosts) to a capabilities report.
func (a *Agent) withFirmwareLevels(ctx context.Context, r *hostreport.Report) {
	if a.fw == nil || !a.fw.Supported() {
		return
	}
	inv, err := a.fw.Inventory(ctx)
	if err != nil || inv.System == nil {
		return
	}
	s := inv.System
	for _, l := range []struct {
		side  string
		level agentapi.FirmwareLevel
	}{{"temporary", s.Temporary}, {"permanent", s.Permanent}, {"booted", s.Booted}} {
		if l.level.Name != "" {
			r.Firmware = append(r.Firmware, hostreport.Firmware{Component: "system-" + l.side, Version: levelText(l.level)})
		}
	}
}

func levelText(l agentapi.FirmwareLevel) string {
	if l.Image != "" {
		return l.Name + " (" + l.Image + ")"
	}
	return l.Name
}
