package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
	"polyvirt/internal/strictdoc"
)

// The engine drives the POWER firmware workflow of issue 7 on a host's
// agent (internal/agent's /v1/firmware API): it checks what only it knows
// (the host is in Maintenance, no VM of its own runs there), passes the
// steps on, copies the agent's operation into the database and each step
// of its log into the audit log (who, from which level to which).

// FirmwareRebootTimeout is how long a host may stay away after a flash
// before the engine records that it did not come back (a variable for the
// tests).
var FirmwareRebootTimeout = 30 * time.Minute

// Firmware drives the POWER system firmware workflow of the hosts'
// agents: it checks what only the engine knows, passes the steps on, and
// records the agents' operations and each of their steps.
type Firmware struct{ e *engine }

// Status is a host's firmware: the levels and the operation its agent
// reports (or why it does not answer), and the engine's records.
func (s *Firmware) Status(ctx context.Context, ref string) (engineapi.HostFirmware, error) {
	out, err := s.e.hostFirmware(ctx, ref)
	return out, coded(err)
}

func (e *engine) hostFirmware(ctx context.Context, ref string) (engineapi.HostFirmware, error) {
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return engineapi.HostFirmware{}, err
	}
	out := engineapi.HostFirmware{Host: h.Name, History: []engineapi.FirmwareRecord{}}
	af, err := e.agents.FirmwareStatus(ctx, h)
	if err != nil {
		out.Error = err.Error()
		if err := e.firmwareOverdue(ctx, h); err != nil {
			return out, err
		}
	} else {
		out.Reachable, out.Supported, out.Inventory, out.Operation = true, af.Supported, &af.Inventory, af.Operation
		if af.Operation != nil {
			if err := e.recordFirmware(ctx, h, af.Operation); err != nil {
				return out, err
			}
		}
	}
	ops, err := e.st.ListFirmwareOperations(ctx, h.ID)
	if err != nil {
		return out, err
	}
	for _, op := range ops {
		out.History = append(out.History, firmwareRecord(op))
	}
	return out, nil
}

// FirmwareImage is an image uploaded to a host: its file name (the
// vendor's RPM or a .img) and its bytes.
type FirmwareImage struct {
	Name string
	Data io.Reader
}

// Upload passes an image on to a host's agent, which checks it.
func (s *Firmware) Upload(ctx context.Context, ref string, img FirmwareImage) (engineapi.FirmwareStepResult, error) {
	out, err := s.e.uploadFirmware(ctx, ref, img)
	s.e.obs.Firmware("upload", firmwareOutcome(err))
	return out, coded(err)
}

func (e *engine) uploadFirmware(ctx context.Context, ref string, img FirmwareImage) (engineapi.FirmwareStepResult, error) {
	var none engineapi.FirmwareStepResult
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return none, err
	}
	if img.Name == "" || len(img.Name) > 255 {
		return none, invalidField("name", "give the image's file name (01SV810_133_081.rpm or a .img), at most 255 characters")
	}
	if c, ok := strictdoc.FormatChar(img.Name); ok {
		return none, &api.Error{Code: api.CodeFormatChars, Field: "name",
			Message: fmt.Sprintf("the image's file name holds the invisible format character %s, which changes how it is shown; remove it", strictdoc.Describe(c))}
	}
	op, err := e.agents.FirmwareUpload(ctx, h, img.Name, userName(ctx), img.Data)
	if err != nil {
		return none, err
	}
	if err := e.recordFirmware(ctx, h, &op); err != nil {
		return none, err
	}
	return engineapi.FirmwareStepResult{Host: h.Name, Done: true, Operation: &op}, nil
}

// FirmwareSteps are the steps of Step.
var FirmwareSteps = []string{"validate", "flash", "commit", "reject", "cancel", "clear"}

// Step runs a step of a host's firmware update on its agent: validate,
// flash (the host in Maintenance, no VM of the engine on it), commit,
// reject, cancel, clear. Done is false while the agent still works on it.
func (s *Firmware) Step(ctx context.Context, ref, step string, req engineapi.FirmwareStepRequest) (engineapi.FirmwareStepResult, error) {
	out, err := s.e.firmwareStep(ctx, ref, step, req)
	if slices.Contains(FirmwareSteps, step) {
		s.e.obs.Firmware(step, firmwareOutcome(err))
	}
	return out, coded(err)
}

func (e *engine) firmwareStep(ctx context.Context, ref, step string, req engineapi.FirmwareStepRequest) (engineapi.FirmwareStepResult, error) {
	var none engineapi.FirmwareStepResult
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return none, err
	}
	var body agentapi.FirmwareStepRequest
	switch step {
	case "validate", "commit", "reject", "cancel", "clear":
	case "flash":
		// What only the engine knows: the host is in Maintenance and none
		// of its VMs runs there. The agent checks its own VMs again right
		// before update_flash -f.
		if h.Status != store.HostMaintenance {
			return none, e.refuseFirmware(ctx, h, step, fail(api.CodeHostNotInMaintenance,
				"Cannot flash the firmware of host %s: it is %s; switch it to Maintenance (its VMs are migrated away): polyvirt host maintenance %s.", h.Name, h.Status, h.Name))
		}
		running, err := runningVMs(ctx, e.st, h.ID)
		if err != nil {
			return none, err
		}
		if len(running) > 0 {
			return none, e.refuseFirmware(ctx, h, step, fail(api.CodeHostHasRunningVMs,
				"Cannot flash the firmware of host %s: VMs run there (%s); switch it to Maintenance (its VMs are migrated away): polyvirt host maintenance %s.", h.Name, strings.Join(running, ", "), h.Name))
		}
		body.Maintenance = true
	default:
		return none, fail(api.CodeNotFound, "unknown firmware step %q (validate, flash, commit, reject, cancel, clear)", step)
	}
	if step == "flash" {
		// A flash whose answer is lost is followed as a reboot: first make
		// sure the agent is there at all (an agent already gone would make
		// the lost answer of a flash that never ran look like one).
		if _, err := e.agents.FirmwareStatus(ctx, h); err != nil {
			return none, err
		}
	}
	op, done, err := e.agents.FirmwareStep(ctx, h, step, userName(ctx), body)
	if step == "flash" && answerLost(err) {
		// update_flash -f reboots the host: its agent may go before it
		// answers. The flash is followed like any reboot (the firmware
		// status says what the host came back on).
		_ = e.appendEvent(ctx, e.st, store.Event{Action: "firmware.flash", User: userName(ctx), ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
			Message: fmt.Sprintf("Firmware of host %s: the agent went away during the flash asked by %s (update_flash -f reboots the host); its firmware status tells the outcome when it is back.", h.Name, userName(ctx))})
		return engineapi.FirmwareStepResult{Host: h.Name, Done: false}, nil
	}
	if err != nil {
		// A refused step is in the agent's log too: record it.
		e.refreshFirmware(ctx, h)
		return none, err
	}
	if err := e.recordFirmware(ctx, h, &op); err != nil {
		return none, err
	}
	if req.Reason != "" {
		_ = e.appendEvent(ctx, e.st, store.Event{Action: "firmware." + step, ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
			Message: fmt.Sprintf("Firmware %s of host %s asked by %s.", step, h.Name, userName(ctx)), Reason: req.Reason})
	}
	return engineapi.FirmwareStepResult{Host: h.Name, Done: done, Operation: &op}, nil
}

// refuseFirmware records a step the engine refuses in the audit log and
// returns the refusal.
func (e *engine) refuseFirmware(ctx context.Context, h store.Host, step string, refusal *api.Error) error {
	_ = e.appendEvent(ctx, e.st, store.Event{Action: "firmware." + step, Severity: store.SeverityWarning, User: userName(ctx),
		ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name, Code: refusal.Code,
		Message: fmt.Sprintf("Firmware of host %s: %s refused by the engine for %s: %s", h.Name, step, userName(ctx), refusal.Message)})
	return refusal
}

// refreshFirmware copies the agent's operation into the database, best
// effort (after a refused step).
func (e *engine) refreshFirmware(ctx context.Context, h store.Host) {
	af, err := e.agents.FirmwareStatus(ctx, h)
	if err == nil && af.Operation != nil {
		_ = e.recordFirmware(ctx, h, af.Operation)
	}
}

// recordFirmware copies the agent's operation into the engine's record of
// it, and every step of its log the engine has not seen into the audit log.
func (e *engine) recordFirmware(ctx context.Context, h store.Host, op *agentapi.FirmwareOperation) error {
	if op == nil || op.ID == "" {
		return nil
	}
	moved := false
	err := e.st.InTx(ctx, func(tx store.Tx) error {
		moved = false
		rec, err := tx.GetFirmwareOperation(ctx, op.ID)
		seen := 0
		switch {
		case errors.Is(err, store.ErrNotFound):
			rec = store.FirmwareOperation{ID: op.ID, HostID: h.ID, State: storeFirmwareState(op.State)}
			fillFirmwareRecord(&rec, op)
			if err := tx.CreateFirmwareOperation(ctx, &rec); err != nil {
				if !errors.Is(err, store.ErrConflict) {
					return err
				}
				// An older record still open (the agent lost its state):
				// the agent's operation is the truth now.
				old, gerr := tx.GetActiveFirmwareOperation(ctx, h.ID)
				if gerr != nil {
					return gerr
				}
				old.State, old.Error = store.FirmwareFailed, "superseded by operation "+op.ID+" of the agent"
				if err := tx.UpdateFirmwareOperation(ctx, &old); err != nil {
					return err
				}
				if err := tx.CreateFirmwareOperation(ctx, &rec); err != nil {
					return err
				}
			}
		case err != nil:
			return err
		default:
			seen = len(rec.Steps)
			if rec.State.Terminal() {
				return nil
			}
			fillFirmwareRecord(&rec, op)
			if err := tx.UpdateFirmwareOperation(ctx, &rec); err != nil {
				return err
			}
		}
		for _, st := range op.Steps[min(seen, len(op.Steps)):] {
			if err := e.appendEvent(ctx, tx, firmwareEvent(h, op, st)); err != nil {
				return err
			}
			moved = true
		}
		return nil
	})
	if err == nil && moved {
		// The host's report lists its firmware levels: read it again now.
		if m := e.monitor(); m != nil {
			m.capsNow(h.ID)
		}
	}
	return err
}

// fillFirmwareRecord copies an agent operation's facts into a record.
func fillFirmwareRecord(rec *store.FirmwareOperation, op *agentapi.FirmwareOperation) {
	rec.State = storeFirmwareState(op.State)
	if op.Before != nil {
		rec.FromLevel = op.Before.Temporary.Name
	}
	if op.Projection != nil && op.Projection.NewT != "" {
		rec.ToLevel = op.Projection.NewT
	} else if op.Image != nil && op.Image.Level != "" {
		rec.ToLevel = op.Image.Level
	}
	if op.Image != nil {
		rec.ImageName, rec.ImageSHA256 = op.Image.FileName, op.Image.SHA256
	}
	if len(op.Steps) > 0 && rec.RequestedBy == "" {
		rec.RequestedBy = op.Steps[0].Who
	}
	rec.Error = ""
	if op.Failure != nil {
		rec.Error = op.Failure.Code + ": " + op.Failure.Message
	}
	rec.Steps = make([]store.FirmwareStep, 0, len(op.Steps))
	for _, st := range op.Steps {
		rec.Steps = append(rec.Steps, store.FirmwareStep{Time: st.Time, State: storeFirmwareState(st.State), Message: stepText(st)})
	}
}

// storeFirmwareState maps the agent's state to the record's.
func storeFirmwareState(s agentapi.FirmwareState) store.FirmwareState {
	if s == agentapi.FirmwareStateIdle {
		return store.FirmwareUploading
	}
	return store.FirmwareState(s)
}

// stepText is one line of an operation's log.
func stepText(st agentapi.FirmwareStep) string {
	s := fmt.Sprintf("%s %s by %s", st.Step, st.Result, st.Who)
	if st.FromLevel != "" || st.ToLevel != "" {
		s += fmt.Sprintf(" (%s → %s)", orUnknownLevel(st.FromLevel), orUnknownLevel(st.ToLevel))
	}
	if st.Message != "" {
		s += ": " + st.Message
	}
	return s
}

func orUnknownLevel(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// firmwareEvent is the audit-log entry of one step.
func firmwareEvent(h store.Host, op *agentapi.FirmwareOperation, st agentapi.FirmwareStep) store.Event {
	sev := store.SeverityInfo
	if st.Result == "failed" || st.Result == "refused" {
		sev = store.SeverityError
	}
	return store.Event{
		Time: st.Time, User: st.Who, Action: "firmware." + st.Step, Severity: sev,
		ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name, Code: st.Code,
		Message:       fmt.Sprintf("Firmware of host %s: %s (operation %s, now %s).", h.Name, stepText(st), op.ID, st.State),
		CorrelationID: op.ID,
	}
}

// firmwareOverdue records that a host flashed and rebooting has not come
// back within FirmwareRebootTimeout.
func (e *engine) firmwareOverdue(ctx context.Context, h store.Host) error {
	rec, err := e.st.GetActiveFirmwareOperation(ctx, h.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.State != store.FirmwareRebooting || time.Since(rec.Updated) < FirmwareRebootTimeout {
		return nil
	}
	return e.st.InTx(ctx, func(tx store.Tx) error {
		rec.State = store.FirmwareFailed
		rec.Error = fmt.Sprintf("FIRMWARE_HOST_NOT_BACK: host %s did not come back within %s of the flash", h.Name, FirmwareRebootTimeout)
		rec.Steps = append(rec.Steps, store.FirmwareStep{Time: time.Now().UTC(), State: store.FirmwareFailed, Message: rec.Error})
		if err := tx.UpdateFirmwareOperation(ctx, &rec); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "firmware.reboot", Severity: store.SeverityError, ObjectKind: "host",
			ObjectID: h.ID, ObjectName: h.Name, Code: api.CodeFirmwareHostNotBack, CorrelationID: rec.ID,
			Message: fmt.Sprintf("Host %s did not come back within %s of its firmware flash (operation %s).", h.Name, FirmwareRebootTimeout, rec.ID)})
	})
}

func firmwareRecord(op store.FirmwareOperation) engineapi.FirmwareRecord {
	r := engineapi.FirmwareRecord{ID: op.ID, State: string(op.State), FromLevel: op.FromLevel, ToLevel: op.ToLevel,
		ImageName: op.ImageName, RequestedBy: op.RequestedBy, Error: op.Error, Created: op.Created, Updated: op.Updated,
		Steps: make([]engineapi.FirmwareStep, 0, len(op.Steps))}
	for _, s := range op.Steps {
		r.Steps = append(r.Steps, engineapi.FirmwareStep{Time: s.Time, State: string(s.State), Message: s.Message})
	}
	return r
}

// answerLost tells whether a request reached the agent and its connection
// closed before the answer (the agent's host went down under it), as
// opposed to an agent that could not be reached at all.
func answerLost(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET))
}
