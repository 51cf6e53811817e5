package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// A rollout (issue 15) updates the POWER system firmware of a cluster's
// hosts one after the other. Its start uploads the image to every target
// host's agent and validates it there (update_flash -v); one host it does
// not fit refuses the whole rollout, naming each such host and why, and
// nothing is flashed. Then the rollout worker (rolloutrun.go) takes the
// hosts in turn, at most MaxUnavailable at once (each advancing on its
// own), each only when the cluster keeps room for its running VMs and for
// those of the hosts out already:
//
//	pending → evacuating → flashing → rebooting → checking → soaking
//	        → committing | awaiting-commit → activating → done
//
// and on the first failure rejects that host's update when it can
// (rejecting → failed), starts no other host (those not started are
// skipped, their uploaded image cancelled) and ends failed. Its state is
// a row of the database (store.Rollout): an engine restarted, or another
// engine taking the lead, resumes it where it was.

// RolloutImageMax bounds the image a rollout takes (it is held in memory
// while it is uploaded to the hosts).
var RolloutImageMax int64 = 512 << 20

// rolloutDoc is a rollout as the database keeps it: the API's document and
// the operator's controls (written by the API, read by the worker).
type rolloutDoc struct {
	engineapi.Rollout
	Control rolloutControl `json:"control"`
	// Announced is the Waiting text last written to the audit log.
	Announced string `json:"announced,omitempty"`
}

// rolloutControl are the operator's orders to a rollout.
type rolloutControl struct {
	Paused   bool   `json:"paused,omitempty"`
	PausedBy string `json:"pausedBy,omitempty"`
	Abort    bool   `json:"abort,omitempty"`
	By       string `json:"by,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

func (d *rolloutDoc) ended() bool {
	switch d.State {
	case engineapi.RolloutSucceeded, engineapi.RolloutFailed, engineapi.RolloutAborted:
		return true
	}
	return false
}

func loadRollout(r store.Rollout) (rolloutDoc, error) {
	var d rolloutDoc
	if err := json.Unmarshal(r.Doc, &d); err != nil {
		return d, fmt.Errorf("rollout %s: its document: %v", r.ID, err)
	}
	return d, nil
}

func (d *rolloutDoc) toStore(r *store.Rollout) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	r.Doc, r.State, r.Ended = b, d.State, d.ended()
	return nil
}

// view is the API's document.
func (d *rolloutDoc) view() engineapi.Rollout {
	out := d.Rollout
	out.Hosts = slices.Clone(d.Hosts)
	return out
}

// Rollouts are the clusters' rolling firmware updates.
type Rollouts struct{ e *engine }

// RolloutStart is a rollout's start: the request and the image.
type RolloutStart struct {
	engineapi.RolloutRequest
	Image io.Reader
}

// Start validates the image on every target host of a cluster and starts
// the rollout; ROLLOUT_VALIDATION_FAILED names each host it does not fit.
func (s *Rollouts) Start(ctx context.Context, cluster string, req RolloutStart) (engineapi.Rollout, error) {
	out, err := s.e.startRollout(ctx, cluster, req)
	return out, coded(err)
}

// Status is a cluster's rollout that has not ended, else its last one.
func (s *Rollouts) Status(ctx context.Context, cluster string) (engineapi.Rollout, error) {
	c, err := s.e.findCluster(ctx, cluster)
	if err != nil {
		return engineapi.Rollout{}, coded(err)
	}
	r, err := s.e.lastRollout(ctx, c)
	if err != nil {
		return engineapi.Rollout{}, coded(err)
	}
	d, err := loadRollout(r)
	if err != nil {
		return engineapi.Rollout{}, coded(err)
	}
	return d.view(), nil
}

// Control pauses, resumes or aborts a cluster's rollout.
func (s *Rollouts) Control(ctx context.Context, cluster, action string, req engineapi.RolloutAction) (engineapi.Rollout, error) {
	out, err := s.e.controlRollout(ctx, cluster, action, req)
	return out, coded(err)
}

// RolloutActions are the actions of Control.
var RolloutActions = []string{"pause", "resume", "abort"}

func (e *engine) lastRollout(ctx context.Context, c store.Cluster) (store.Rollout, error) {
	list, err := e.st.ListRollouts(ctx, store.RolloutFilter{ClusterID: c.ID})
	if err != nil {
		return store.Rollout{}, err
	}
	if len(list) == 0 {
		return store.Rollout{}, fail(api.CodeNotFound, "cluster %s has had no firmware rollout", c.Name)
	}
	for _, r := range list {
		if !r.Ended {
			return r, nil
		}
	}
	return list[0], nil
}

// checkRolloutRequest checks a request's fields; it returns the soak.
func checkRolloutRequest(req *engineapi.RolloutRequest) (time.Duration, error) {
	if req.ImageName == "" || len(req.ImageName) > 255 {
		return 0, invalidField("name", "give the image's file name (01SV810_133_081.rpm or a .img), at most 255 characters")
	}
	if req.MaxUnavailable == 0 {
		req.MaxUnavailable = 1
	}
	if req.MaxUnavailable < 1 || req.MaxUnavailable > 64 {
		return 0, invalidField("maxUnavailable", "must be 1 to 64, not %d", req.MaxUnavailable)
	}
	if req.Commit == "" {
		req.Commit = "auto"
	}
	if req.Commit != "auto" && req.Commit != "manual" {
		return 0, invalidField("commit", "must be auto or manual, not %q", req.Commit)
	}
	var soak time.Duration
	if req.Soak != "" {
		d, err := time.ParseDuration(req.Soak)
		if err != nil || d < 0 || d > 7*24*time.Hour {
			return 0, invalidField("soak", "must be a duration from 0s to 168h (10m, 1h30m), not %q", req.Soak)
		}
		soak = d
	}
	if len(req.Reason) > 1024 {
		return 0, invalidField("reason", "at most 1024 characters")
	}
	return soak, nil
}

func (e *engine) startRollout(ctx context.Context, ref string, req RolloutStart) (engineapi.Rollout, error) {
	var none engineapi.Rollout
	if _, err := checkRolloutRequest(&req.RolloutRequest); err != nil {
		return none, err
	}
	c, err := e.findCluster(ctx, ref)
	if err != nil {
		return none, err
	}
	if act, err := e.st.ListRollouts(ctx, store.RolloutFilter{ClusterID: c.ID, Active: true}); err != nil {
		return none, err
	} else if len(act) > 0 {
		return none, fail(api.CodeRolloutActive, "cluster %s already has a firmware rollout (%s, %s): wait for it, or abort it (polyvirt cluster firmware abort %s)", c.Name, act[0].ID, act[0].State, c.Name)
	}
	hosts, err := e.rolloutTargets(ctx, c, req.Hosts)
	if err != nil {
		return none, err
	}
	img, err := io.ReadAll(io.LimitReader(req.Image, RolloutImageMax+1))
	if err != nil {
		return none, fail(api.CodeInvalidArgument, "reading the image: %v", err)
	}
	if int64(len(img)) > RolloutImageMax {
		return none, fail(api.CodeFirmwareImageTooLarge, "the image is larger than %d bytes", RolloutImageMax)
	}
	sum := sha256.Sum256(img)
	d := rolloutDoc{Rollout: engineapi.Rollout{ID: newRolloutID(), Cluster: c.Name, ClusterID: c.ID, State: engineapi.RolloutRunning,
		ImageName: req.ImageName, ImageSHA256: hex.EncodeToString(sum[:]), MaxUnavailable: req.MaxUnavailable, Soak: req.Soak,
		Commit: req.Commit, StartedBy: userName(ctx), Reason: req.Reason, Started: time.Now().UTC()}}
	// Validation on every host first: each one the image does not fit
	// is named with its reason.
	var refused api.Errors
	var validated []store.Host
	for _, h := range hosts {
		rh, err := e.validateOn(ctx, h, req.ImageName, img)
		if err != nil {
			ae := asAPIError(err)
			refused = append(refused, api.FieldError(ae.Code, "hosts", "host %s: %s", h.Name, strings.TrimPrefix(ae.Message, "host "+h.Name+": ")))
			continue
		}
		validated = append(validated, h)
		d.Hosts = append(d.Hosts, rh)
	}
	if len(refused) > 0 {
		// Nothing is flashed: the images uploaded for the rollout go.
		for _, h := range validated {
			_, _, _ = e.agents.FirmwareStep(ctx, h, "cancel", userName(ctx), agentapi.FirmwareStepRequest{})
			e.refreshFirmware(ctx, h)
		}
		msgs := make([]string, len(refused))
		for i, r := range refused {
			msgs[i] = r.Message
		}
		_ = e.appendEvent(ctx, e.st, store.Event{Action: "rollout.refused", Severity: store.SeverityWarning, ObjectKind: "cluster",
			ObjectID: c.ID, ObjectName: c.Name, Code: api.CodeRolloutValidation, Reason: req.Reason,
			Message: fmt.Sprintf("Firmware rollout of cluster %s with %s refused: %s; nothing was flashed.", c.Name, req.ImageName, strings.Join(msgs, "; "))})
		return none, &api.Error{Code: api.CodeRolloutValidation, Details: refused,
			Message: fmt.Sprintf("The image %s does not fit %d of the %d hosts of cluster %s (%s); nothing was flashed. Leave them out with --hosts, or use another image.",
				req.ImageName, len(refused), len(hosts), c.Name, strings.Join(msgs, "; "))}
	}
	r := store.Rollout{ID: d.ID, ClusterID: c.ID}
	if err := d.toStore(&r); err != nil {
		return none, err
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRollout(ctx, &r); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fail(api.CodeRolloutActive, "cluster %s already has a firmware rollout", c.Name)
			}
			return err
		}
		names := make([]string, len(d.Hosts))
		for i, h := range d.Hosts {
			names[i] = fmt.Sprintf("%s %s → %s", h.Host, h.FromLevel, h.ToLevel)
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "rollout.start", ObjectKind: "cluster", ObjectID: c.ID, ObjectName: c.Name,
			CorrelationID: d.ID, Reason: req.Reason,
			Message: fmt.Sprintf("Firmware rollout %s of cluster %s started by %s with %s (validated on every host): %s; at most %d at once, soak %s, commit %s.",
				d.ID, c.Name, userName(ctx), req.ImageName, strings.Join(names, ", "), d.MaxUnavailable, orNoSoak(d.Soak), d.Commit)})
	})
	if err != nil {
		return none, err
	}
	e.kickRollouts()
	return d.view(), nil
}

func orNoSoak(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func newRolloutID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "ro-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// rolloutTargets are the hosts a rollout updates: the named ones (each of
// the cluster), else every host of the cluster.
func (e *engine) rolloutTargets(ctx context.Context, c store.Cluster, refs []string) ([]store.Host, error) {
	all, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID})
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		if len(all) == 0 {
			return nil, fail(api.CodeInvalidArgument, "cluster %s has no hosts", c.Name)
		}
		return all, nil
	}
	var out []store.Host
	for _, ref := range refs {
		i := slices.IndexFunc(all, func(h store.Host) bool { return h.Name == ref || h.ID == ref })
		if i < 0 {
			return nil, api.FieldError(api.CodeInvalidArgument, "hosts", "host %q is not a host of cluster %s", ref, c.Name)
		}
		if slices.ContainsFunc(out, func(h store.Host) bool { return h.ID == all[i].ID }) {
			return nil, api.FieldError(api.CodeInvalidArgument, "hosts", "host %s is named twice", all[i].Name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// RolloutValidateWait bounds how long a rollout's start waits for one
// host's validation.
var RolloutValidateWait = 5 * time.Minute

// validateOn uploads the image to a host's agent and validates it there:
// the host's entry of the rollout (its levels, its CPU type, the
// operation), or why the image does not fit.
func (e *engine) validateOn(ctx context.Context, h store.Host, name string, img []byte) (engineapi.RolloutHost, error) {
	rh := engineapi.RolloutHost{Host: h.Name, HostID: h.ID, Phase: engineapi.RolloutHostPending, CPUType: h.CPUType}
	op, err := e.agents.FirmwareUpload(ctx, h, name, userName(ctx), bytes.NewReader(img))
	if err != nil {
		return rh, err
	}
	_ = e.recordFirmware(ctx, h, &op)
	op, done, err := e.agents.FirmwareStep(ctx, h, "validate", userName(ctx), agentapi.FirmwareStepRequest{})
	if err != nil {
		e.refreshFirmware(ctx, h)
		return rh, err
	}
	deadline := time.Now().Add(RolloutValidateWait)
	for !done && (op.State == agentapi.FirmwareStateValidating || op.State == agentapi.FirmwareStateUploaded) {
		if time.Now().After(deadline) {
			return rh, fail(api.CodeFirmwareToolTimeout, "the validation did not end within %s", RolloutValidateWait)
		}
		select {
		case <-ctx.Done():
			return rh, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		st, err := e.agents.FirmwareStatus(ctx, h)
		if err != nil {
			return rh, err
		}
		if st.Operation == nil {
			return rh, fail(api.CodeFirmwareNoOperation, "the agent forgot the uploaded image")
		}
		op = *st.Operation
	}
	_ = e.recordFirmware(ctx, h, &op)
	if op.State != agentapi.FirmwareStateValidated {
		f := op.Failure
		if f == nil {
			f = op.LastError
		}
		if f != nil {
			return rh, fail(f.Code, "%s", f.Message)
		}
		return rh, fail(api.CodeFirmwareValidationFailed, "the validation ended %s", op.State)
	}
	rh.Operation = op.ID
	if op.Before != nil {
		rh.FromLevel = op.Before.Temporary.Code()
	}
	if op.Projection != nil {
		rh.ToLevel = op.Projection.NewT
		if rh.FromLevel == "" {
			rh.FromLevel = op.Projection.CurrentT
		}
	}
	if rh.ToLevel == "" && op.Image != nil {
		rh.ToLevel = op.Image.Level
	}
	if older, why := olderLevel(rh.ToLevel, rh.FromLevel); older {
		_, _, _ = e.agents.FirmwareStep(ctx, h, "cancel", userName(ctx), agentapi.FirmwareStepRequest{})
		e.refreshFirmware(ctx, h)
		return rh, fail(api.CodeFirmwareValidationFailed, "%s", why)
	}
	return rh, nil
}

// olderLevel tells whether level to is older than (or the same as) level
// from, both update_flash image levels ("SV810_133": a release, an
// underscore, a service pack number): a rollout only moves forward.
func olderLevel(to, from string) (bool, string) {
	if to == "" || from == "" {
		return false, ""
	}
	if to == from {
		return true, fmt.Sprintf("the host runs %s already", from)
	}
	tr, tn, ok1 := strings.Cut(to, "_")
	fr, fn, ok2 := strings.Cut(from, "_")
	if !ok1 || !ok2 {
		return false, ""
	}
	if tr == fr && len(tn) == len(fn) && tn < fn {
		return true, fmt.Sprintf("the image's level %s is older than the running %s", to, from)
	}
	return false, ""
}

// controlRollout pauses, resumes or aborts a cluster's active rollout: an
// order the worker reads at its next step.
func (e *engine) controlRollout(ctx context.Context, ref, action string, req engineapi.RolloutAction) (engineapi.Rollout, error) {
	var none engineapi.Rollout
	if !slices.Contains(RolloutActions, action) {
		return none, fail(api.CodeNotFound, "unknown rollout action %q (pause, resume, abort)", action)
	}
	c, err := e.findCluster(ctx, ref)
	if err != nil {
		return none, err
	}
	for try := 0; ; try++ {
		r, err := e.lastRollout(ctx, c)
		if err != nil {
			return none, err
		}
		d, err := loadRollout(r)
		if err != nil {
			return none, err
		}
		if d.ended() {
			return none, fail(api.CodeRolloutWrongState, "the last firmware rollout of cluster %s (%s) ended %s: there is nothing to %s", c.Name, d.ID, d.State, action)
		}
		msg := ""
		switch action {
		case "pause":
			if d.Control.Abort {
				return none, fail(api.CodeRolloutWrongState, "rollout %s is being aborted", d.ID)
			}
			d.Control.Paused, d.Control.PausedBy = true, userName(ctx)
			d.State = engineapi.RolloutPaused
			msg = fmt.Sprintf("Firmware rollout %s of cluster %s paused by %s: no further host starts; a host in the middle of its update finishes it.", d.ID, c.Name, userName(ctx))
		case "resume":
			if d.Control.Abort {
				return none, fail(api.CodeRolloutWrongState, "rollout %s is being aborted", d.ID)
			}
			d.Control.Paused, d.Control.PausedBy = false, ""
			d.State, d.Waiting = engineapi.RolloutRunning, ""
			msg = fmt.Sprintf("Firmware rollout %s of cluster %s resumed by %s.", d.ID, c.Name, userName(ctx))
		case "abort":
			d.Control.Abort, d.Control.By, d.Control.Reason = true, userName(ctx), req.Reason
			msg = fmt.Sprintf("Firmware rollout %s of cluster %s aborted by %s: no further host starts; a host not flashed yet goes back, a flashed one is rejected once it is back.", d.ID, c.Name, userName(ctx))
		}
		if err := d.toStore(&r); err != nil {
			return none, err
		}
		err = e.st.InTx(ctx, func(tx store.Tx) error {
			if err := tx.UpdateRollout(ctx, &r); err != nil {
				return err
			}
			return e.appendEvent(ctx, tx, store.Event{Action: "rollout." + action, ObjectKind: "cluster", ObjectID: c.ID, ObjectName: c.Name,
				CorrelationID: d.ID, Reason: req.Reason, Message: msg})
		})
		if isStale(err) && try < 20 {
			continue
		}
		if err != nil {
			return none, err
		}
		e.kickRollouts()
		return d.view(), nil
	}
}
