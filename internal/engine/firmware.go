package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/httpx"
	"polyvirt/internal/store"
	"polyvirt/internal/strictdoc"
)

// The engine drives the POWER firmware workflow of issue 7 on a host's
// agent (internal/agent's /v1/firmware API): it checks what only it knows
// (the host is in Maintenance, no VM of its own runs there), passes the
// steps on, copies the agent's operation into the database and each step
// of its log into the audit log (who, from which level to which).

// firmwareTimeout bounds a firmware request to an agent: an upload of a
// large image, or a step the agent answers after at most a few seconds.
const firmwareTimeout = 10 * time.Minute

// firmwareRebootTimeout is how long a host may stay away after a flash
// before the engine records that it did not come back (a variable for the
// tests).
var firmwareRebootTimeout = 30 * time.Minute

// MaxFirmwareUpload bounds a firmware image uploaded through the engine.
const MaxFirmwareUpload = 1 << 30

var (
	longOnce sync.Once
	longHTTP *http.Client
)

// firmwareDo sends a firmware request to an agent with the engine's client
// certificate and pins, and a timeout fit for images and tools.
func (c *agentClient) firmwareDo(ctx context.Context, method, addr, path string, header http.Header, body io.Reader) (*agentResponse, error) {
	longOnce.Do(func() {
		tr := c.tr.Clone()
		tr.ResponseHeaderTimeout = firmwareTimeout
		longHTTP = &http.Client{Transport: tr}
	})
	ctx, cancel := context.WithTimeout(ctx, firmwareTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := longHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	return &agentResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// agentAnswer decodes an agent's answer into out, or returns its error
// with the agent's status and code (a refused step is the agent's 409).
func agentAnswer(r *agentResponse, out any) error {
	if r.Status >= 400 {
		var eb api.ErrorBody
		if json.Unmarshal(r.Body, &eb) == nil && eb.Error.Code != "" {
			status := r.Status
			if status >= 500 {
				status = http.StatusBadGateway
			}
			return &api.Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message, Field: eb.Error.Field}
		}
		return api.NewError(http.StatusBadGateway, api.CodeAgentError, "the agent answered HTTP %d", r.Status)
	}
	if err := json.Unmarshal(r.Body, out); err != nil {
		return api.NewError(http.StatusBadGateway, api.CodeAgentError, "the agent's answer is not JSON: %v", err)
	}
	return nil
}

func (e *Engine) getHostFirmware(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	h, err := e.findHost(ctx, r.PathValue("host"))
	if err != nil {
		return err
	}
	out := engineapi.HostFirmware{Host: h.Name, History: []engineapi.FirmwareRecord{}}
	resp, err := e.agents.firmwareDo(ctx, "GET", h.Address, "/v1/firmware", nil, nil)
	var af agentapi.FirmwareStatus
	if err == nil {
		err = agentAnswer(resp, &af)
	}
	if err != nil {
		out.Error = err.Error()
		if err := e.firmwareOverdue(ctx, h); err != nil {
			return err
		}
	} else {
		out.Reachable, out.Supported, out.Inventory, out.Operation = true, af.Supported, &af.Inventory, af.Operation
		if af.Operation != nil {
			if err := e.recordFirmware(ctx, h, af.Operation); err != nil {
				return err
			}
		}
	}
	ops, err := e.st.ListFirmwareOperations(ctx, h.ID)
	if err != nil {
		return err
	}
	for _, op := range ops {
		out.History = append(out.History, firmwareRecord(op))
	}
	return httpx.WriteJSON(w, http.StatusOK, out)
}

func (e *Engine) postHostFirmwareImage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	h, err := e.findHost(ctx, r.PathValue("host"))
	if err != nil {
		return err
	}
	name := r.URL.Query().Get("name")
	if name == "" || len(name) > 255 {
		return invalidField("name", "give the image's file name (01SV810_133_081.rpm or a .img), at most 255 characters")
	}
	if c, ok := strictdoc.FormatChar(name); ok {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeFormatChars, Field: "name",
			Message: fmt.Sprintf("the image's file name holds the invisible format character %s, which changes how it is shown; remove it", strictdoc.Describe(c))}
	}
	hdr := http.Header{"X-Polyvirt-User": {userName(ctx)}, "Content-Type": {"application/octet-stream"}}
	resp, err := e.agents.firmwareDo(ctx, "POST", h.Address, "/v1/firmware/image?name="+url.QueryEscape(name), hdr, r.Body)
	if api.CodeOf(err) == api.CodeBodyTooLarge {
		return api.NewError(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "firmware image larger than %d bytes", int64(MaxFirmwareUpload))
	}
	if err != nil {
		return api.NewError(http.StatusBadGateway, api.CodeAgentUnreachable, "host %s: %v", h.Name, err)
	}
	var op agentapi.FirmwareOperation
	if err := agentAnswer(resp, &op); err != nil {
		return err
	}
	if err := e.recordFirmware(ctx, h, &op); err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, engineapi.FirmwareStepResult{Host: h.Name, Done: true, Operation: &op})
}

// firmwareStep is the handler of one step.
func (e *Engine) firmwareStep(step string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error { return e.postHostFirmwareStep(w, r, step) }
}

func (e *Engine) postHostFirmwareStep(w http.ResponseWriter, r *http.Request, step string) error {
	ctx := r.Context()
	var req engineapi.FirmwareStepRequest
	if err := httpx.DecodeJSON(r, &req, true); err != nil {
		return err
	}
	h, err := e.findHost(ctx, r.PathValue("host"))
	if err != nil {
		return err
	}
	body := []byte(`{}`)
	switch step {
	case "validate", "commit", "reject", "cancel":
	case "flash":
		// What only the engine knows: the host is in Maintenance and none
		// of its VMs runs there. The agent checks its own VMs again right
		// before update_flash -f.
		if h.Status != store.HostMaintenance {
			return e.refuseFirmware(ctx, h, step, api.NewError(http.StatusConflict, api.CodeHostNotInMaintenance,
				"Cannot flash the firmware of host %s: it is %s; switch it to Maintenance first (polyvirt host maintenance %s).", h.Name, h.Status, h.Name))
		}
		running, err := runningVMs(ctx, e.st, h.ID)
		if err != nil {
			return err
		}
		if len(running) > 0 {
			return e.refuseFirmware(ctx, h, step, api.NewError(http.StatusConflict, api.CodeHostHasRunningVMs,
				"Cannot flash the firmware of host %s: VMs run there (%s); stop or migrate them first.", h.Name, strings.Join(running, ", ")))
		}
		body, _ = json.Marshal(agentapi.FirmwareStepRequest{Maintenance: true})
	default:
		return api.NewError(http.StatusNotFound, api.CodeNotFound, "unknown firmware step %q (validate, flash, commit, reject, cancel)", step)
	}
	hdr := http.Header{"X-Polyvirt-User": {userName(ctx)}, "Content-Type": {"application/json"}}
	resp, err := e.agents.firmwareDo(ctx, "POST", h.Address, "/v1/firmware/"+step, hdr, bytes.NewReader(body))
	if err != nil {
		return api.NewError(http.StatusBadGateway, api.CodeAgentUnreachable, "host %s: %v", h.Name, err)
	}
	var op agentapi.FirmwareOperation
	if err := agentAnswer(resp, &op); err != nil {
		// A refused step is in the agent's log too: record it.
		e.refreshFirmware(ctx, h)
		return err
	}
	if err := e.recordFirmware(ctx, h, &op); err != nil {
		return err
	}
	if req.Reason != "" {
		_ = e.appendEvent(ctx, e.st, store.Event{Action: "firmware." + step, ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
			Message: fmt.Sprintf("Firmware %s of host %s asked by %s.", step, h.Name, userName(ctx)), Reason: req.Reason})
	}
	return httpx.WriteJSON(w, http.StatusOK, engineapi.FirmwareStepResult{Host: h.Name, Done: resp.Status == http.StatusOK, Operation: &op})
}

// refuseFirmware records a step the engine refuses in the audit log and
// returns the refusal.
func (e *Engine) refuseFirmware(ctx context.Context, h store.Host, step string, refusal *api.Error) error {
	_ = e.appendEvent(ctx, e.st, store.Event{Action: "firmware." + step, Severity: store.SeverityWarning, User: userName(ctx),
		ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name, Code: refusal.Code,
		Message: fmt.Sprintf("Firmware of host %s: %s refused by the engine for %s: %s", h.Name, step, userName(ctx), refusal.Message)})
	return refusal
}

// refreshFirmware copies the agent's operation into the database, best
// effort (after a refused step).
func (e *Engine) refreshFirmware(ctx context.Context, h store.Host) {
	resp, err := e.agents.firmwareDo(ctx, "GET", h.Address, "/v1/firmware", nil, nil)
	if err != nil {
		return
	}
	var af agentapi.FirmwareStatus
	if agentAnswer(resp, &af) == nil && af.Operation != nil {
		_ = e.recordFirmware(ctx, h, af.Operation)
	}
}

// recordFirmware copies the agent's operation into the engine's record of
// it, and every step of its log the engine has not seen into the audit log.
func (e *Engine) recordFirmware(ctx context.Context, h store.Host, op *agentapi.FirmwareOperation) error {
	if op == nil || op.ID == "" {
		return nil
	}
	return e.st.InTx(ctx, func(tx store.Tx) error {
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
		}
		return nil
	})
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
// back within firmwareRebootTimeout.
func (e *Engine) firmwareOverdue(ctx context.Context, h store.Host) error {
	rec, err := e.st.GetActiveFirmwareOperation(ctx, h.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.State != store.FirmwareRebooting || time.Since(rec.Updated) < firmwareRebootTimeout {
		return nil
	}
	return e.st.InTx(ctx, func(tx store.Tx) error {
		rec.State = store.FirmwareFailed
		rec.Error = fmt.Sprintf("FIRMWARE_HOST_NOT_BACK: host %s did not come back within %s of the flash", h.Name, firmwareRebootTimeout)
		rec.Steps = append(rec.Steps, store.FirmwareStep{Time: time.Now().UTC(), State: store.FirmwareFailed, Message: rec.Error})
		if err := tx.UpdateFirmwareOperation(ctx, &rec); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "firmware.reboot", Severity: store.SeverityError, ObjectKind: "host",
			ObjectID: h.ID, ObjectName: h.Name, Code: api.CodeFirmwareHostNotBack, CorrelationID: rec.ID,
			Message: fmt.Sprintf("Host %s did not come back within %s of its firmware flash (operation %s).", h.Name, firmwareRebootTimeout, rec.ID)})
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
