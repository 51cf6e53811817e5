package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// The rollout worker runs in the engine that leads the monitoring: every
// RolloutTick (and at once when a rollout starts or is told something) it
// reads the rollouts that have not ended and moves each as far as it can.
// Every phase a host enters is written to the database before the action
// it stands for, and every phase resumes by first asking the agent where
// its firmware operation is: a worker that stops anywhere (engine killed,
// lead lost) is resumed by the next one without flashing a host twice or
// skipping one.
//
// Each host's phases advance on their own: a host's evacuation runs in
// the engine's background (the VMs migrating as `host maintenance` makes
// them) and the worker only looks at it, so that with MaxUnavailable
// above one a host is flashed, rebooted and checked while another still
// evacuates; a host's reboot time-out runs from its flash
// (RolloutHost.RebootStarted), whatever the worker did meanwhile.

// RolloutTick is how often the worker looks at the rollouts (a variable
// for the tests).
var RolloutTick = 2 * time.Second

// RolloutRebootTimeout is how long a rollout waits for a flashed host to
// come back (and for a host to be Up after its activation) before it
// stops (a variable for the tests).
var RolloutRebootTimeout = 30 * time.Minute

// kickRollouts makes the worker look at the rollouts now.
func (e *engine) kickRollouts() {
	select {
	case e.rolloutKick <- struct{}{}:
	default:
	}
}

// runRollouts is the worker, until ctx ends.
func (e *engine) runRollouts(ctx context.Context) {
	t := time.NewTicker(RolloutTick)
	defer t.Stop()
	for {
		e.rolloutRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.rolloutKick:
		}
	}
}

// rolloutRound moves every rollout that has not ended.
func (e *engine) rolloutRound(ctx context.Context) {
	list, err := e.st.ListRollouts(ctx, store.RolloutFilter{Active: true})
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("rollouts: cannot list them", "err", err)
		}
		return
	}
	for _, r := range list {
		if ctx.Err() != nil {
			return
		}
		run := &rolloutRun{e: e, r: r, maint: e.maintainer()}
		if err := run.advance(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("rollout", "id", r.ID, "err", err)
		}
	}
}

// maintainer is the hosts' maintenance as a rollout sees it.
func (e *engine) maintainer() hostMaintainer {
	if e.maint != nil {
		return e.maint
	}
	return engineMaintainer{e}
}

// rolloutRun is one round of one rollout.
type rolloutRun struct {
	e     *engine
	r     store.Rollout
	d     rolloutDoc
	maint hostMaintainer
}

// save writes the document; when the API changed the rollout meanwhile
// (an order), its controls are taken and the write tried again.
func (run *rolloutRun) save(ctx context.Context, events ...store.Event) error {
	for try := 0; ; try++ {
		if err := run.d.toStore(&run.r); err != nil {
			return err
		}
		err := run.e.st.InTx(ctx, func(tx store.Tx) error {
			if err := tx.UpdateRollout(ctx, &run.r); err != nil {
				return err
			}
			for _, ev := range events {
				ev.ObjectKind, ev.ObjectID, ev.ObjectName, ev.CorrelationID = "cluster", run.d.ClusterID, run.d.Cluster, run.d.ID
				if err := run.e.appendEvent(ctx, tx, ev); err != nil {
					return err
				}
			}
			return nil
		})
		if !isStale(err) || try >= 20 {
			return err
		}
		cur, gerr := run.e.st.GetRollout(ctx, run.r.ID)
		if gerr != nil {
			return gerr
		}
		cd, lerr := loadRollout(cur)
		if lerr != nil {
			return lerr
		}
		run.r.Version = cur.Version
		run.d.Control = cd.Control
		if !run.d.ended() {
			run.d.State = cd.State
		}
	}
}

// advance moves the rollout as far as it can now.
func (run *rolloutRun) advance(ctx context.Context) error {
	d, err := loadRollout(run.r)
	if err != nil {
		return err
	}
	run.d = d
	if run.d.ended() {
		return nil
	}
	// The hosts on their way, each as far as it goes.
	for i := range run.d.Hosts {
		for inFlight(run.d.Hosts[i].Phase) {
			moved, err := run.step(ctx, i)
			if err != nil {
				return err
			}
			if !moved {
				break
			}
		}
	}
	return run.next(ctx)
}

// inFlight tells whether a host's phase is one of an update under way.
func inFlight(p string) bool {
	switch p {
	case engineapi.RolloutHostPending, engineapi.RolloutHostDone, engineapi.RolloutHostFailed, engineapi.RolloutHostSkipped:
		return false
	}
	return true
}

// flashed tells whether a host's phase comes after its flash was asked.
func flashed(p string) bool {
	switch p {
	case engineapi.RolloutHostPending, engineapi.RolloutHostEvacuating, engineapi.RolloutHostFlashing:
		return false
	}
	return true
}

// next starts further hosts, or ends the rollout.
func (run *rolloutRun) next(ctx context.Context) error {
	d := &run.d
	busy, failed := 0, -1
	var out []string
	for i, h := range d.Hosts {
		if inFlight(h.Phase) {
			busy++
			out = append(out, h.HostID)
		}
		if h.Phase == engineapi.RolloutHostFailed && failed < 0 {
			failed = i
		}
	}
	now := time.Now().UTC()
	if (failed >= 0 || d.Control.Abort) && busy > 0 {
		return nil
	}
	switch {
	case failed >= 0:
		h := d.Hosts[failed]
		run.leavePending(ctx, "the rollout stopped on host "+h.Host)
		d.State, d.Code, d.Message, d.Finished, d.Waiting = engineapi.RolloutFailed, h.Code,
			fmt.Sprintf("host %s: %s", h.Host, h.Message), now, ""
		return run.save(ctx, run.summary(store.SeverityError))
	case d.Control.Abort:
		run.leavePending(ctx, "the rollout was aborted by "+d.Control.By)
		d.State, d.Code, d.Finished, d.Waiting, d.AbortedBy = engineapi.RolloutAborted, api.CodeRolloutAborted, now, "", d.Control.By
		d.Message = "aborted by " + d.Control.By
		if d.Control.Reason != "" {
			d.Message += ": " + d.Control.Reason
		}
		return run.save(ctx, run.summary(store.SeverityWarning))
	}
	pending := -1
	for i, h := range d.Hosts {
		if h.Phase == engineapi.RolloutHostPending {
			pending = i
			break
		}
	}
	if pending < 0 {
		if busy > 0 {
			return nil
		}
		d.State, d.Finished, d.Waiting = engineapi.RolloutSucceeded, now, ""
		return run.save(ctx, run.summary(store.SeverityInfo))
	}
	if d.Control.Paused {
		return run.wait(ctx, "paused by "+d.Control.PausedBy)
	}
	// One host at a time while nothing else moves: MaxUnavailable bounds
	// the hosts out at once (a host that finished is back).
	for i := pending; i < len(d.Hosts) && busy < d.MaxUnavailable; i++ {
		h := d.Hosts[i]
		if h.Phase != engineapi.RolloutHostPending {
			continue
		}
		host, err := run.e.st.GetHost(ctx, h.HostID)
		if err != nil {
			return err
		}
		c, err := run.e.st.GetCluster(ctx, host.ClusterID)
		if err != nil {
			return err
		}
		why, err := run.e.rolloutRoom(ctx, c, host, out)
		if err != nil {
			return err
		}
		if why != "" {
			return run.wait(ctx, why)
		}
		d.Waiting = ""
		d.Hosts[i].Started = now
		if err := run.enter(ctx, i, engineapi.RolloutHostEvacuating, fmt.Sprintf("Firmware rollout %s: host %s (%s → %s) switches to Maintenance, its VMs evacuated.",
			d.ID, h.Host, h.FromLevel, h.ToLevel)); err != nil {
			return err
		}
		busy++
		out = append(out, h.HostID)
	}
	return nil
}

// leavePending ends, as the rollout stops, the hosts it never started:
// the image uploaded and validated on each at the rollout's start is
// cancelled on its agent (nothing was flashed; its firmware banks and its
// status are as before the rollout, and the next update may upload
// there), and the host is skipped with why. A cancel that fails (the
// agent does not answer) is said in the host's message; the operator
// clears it with polyvirt host firmware clear. It changes the document
// only: the caller saves it.
func (run *rolloutRun) leavePending(ctx context.Context, why string) {
	d := &run.d
	now := time.Now().UTC()
	for i := range d.Hosts {
		h := &d.Hosts[i]
		if h.Phase != engineapi.RolloutHostPending {
			continue
		}
		h.Phase, h.Since, h.Finished = engineapi.RolloutHostSkipped, now, now
		h.Message = "not started: " + why
		host, err := run.e.st.GetHost(ctx, h.HostID)
		if err != nil {
			h.Message += "; its uploaded image could not be cancelled: " + err.Error()
			continue
		}
		if _, _, err := run.e.agents.FirmwareStep(ctx, host, "cancel", "rollout "+d.ID, agentapi.FirmwareStepRequest{}); err != nil {
			h.Message += "; its uploaded image could not be cancelled: " + asAPIError(err).Message
		}
		run.e.refreshFirmware(ctx, host)
	}
}

// wait records why no host starts now (in the audit log once per reason).
func (run *rolloutRun) wait(ctx context.Context, why string) error {
	d := &run.d
	if d.Waiting == why && d.Announced == why {
		return nil
	}
	d.Waiting = why
	var evs []store.Event
	if d.Announced != why {
		d.Announced = why
		evs = append(evs, store.Event{Action: "rollout.wait", Message: fmt.Sprintf("Firmware rollout %s of cluster %s waits: %s.", d.ID, d.Cluster, why)})
	}
	return run.save(ctx, evs...)
}

// summary is the final event: each host's outcome.
func (run *rolloutRun) summary(sev store.Severity) store.Event {
	d := &run.d
	parts := make([]string, 0, len(d.Hosts))
	for _, h := range d.Hosts {
		s := fmt.Sprintf("%s %s", h.Host, h.Phase)
		switch h.Phase {
		case engineapi.RolloutHostDone:
			s += fmt.Sprintf(" %s → %s in %s", h.FromLevel, h.ToLevel, h.Finished.Sub(h.Started).Round(time.Second))
		case engineapi.RolloutHostFailed, engineapi.RolloutHostSkipped:
			if h.Message != "" {
				s += " (" + h.Message + ")"
			}
			if h.Rejected {
				s += ", rejected back to " + h.FromLevel
			}
		}
		parts = append(parts, s)
	}
	msg := fmt.Sprintf("Firmware rollout %s of cluster %s %s after %s: %s.", d.ID, d.Cluster, d.State,
		d.Finished.Sub(d.Started).Round(time.Second), strings.Join(parts, "; "))
	if d.Message != "" {
		msg = fmt.Sprintf("Firmware rollout %s of cluster %s %s (%s) after %s: %s.", d.ID, d.Cluster, d.State, d.Message,
			d.Finished.Sub(d.Started).Round(time.Second), strings.Join(parts, "; "))
	}
	return store.Event{Action: "rollout.end", Severity: sev, Code: d.Code, Message: msg}
}

// enter moves host i to a phase, saved with its event.
func (run *rolloutRun) enter(ctx context.Context, i int, phase, msg string) error {
	h := &run.d.Hosts[i]
	now := time.Now().UTC()
	h.Phase, h.Since = phase, now
	sev := store.SeverityInfo
	switch phase {
	case engineapi.RolloutHostDone, engineapi.RolloutHostFailed, engineapi.RolloutHostSkipped:
		h.Finished = now
		if phase == engineapi.RolloutHostFailed {
			sev = store.SeverityError
		}
	case engineapi.RolloutHostRejecting:
		sev = store.SeverityError
	}
	if err := run.save(ctx, store.Event{Action: "rollout." + phase, Severity: sev, Code: h.Code, Message: msg}); err != nil {
		return err
	}
	if phase == engineapi.RolloutHostFailed {
		run.markHost(ctx, h)
	}
	return nil
}

// markHost writes why a host's update failed into its status message
// while it is in Maintenance (best effort: the rollout says it too).
func (run *rolloutRun) markHost(ctx context.Context, h *engineapi.RolloutHost) {
	_, err := run.e.mutateHost(ctx, h.HostID, func(tx store.Tx, cur *store.Host) (bool, error) {
		if cur.Status != store.HostMaintenance {
			return false, nil
		}
		cur.StatusCode = h.Code
		cur.StatusMessage = fmt.Sprintf("firmware rollout %s stopped on this host: %s", run.d.ID, h.Message)
		if h.Rejected {
			cur.StatusMessage += " (its update was rejected: back on " + orUnknownLevel(h.Level) + ")"
		}
		return true, nil
	})
	if err != nil {
		run.e.log.Warn("rollout: the host's status message", "host", h.Host, "err", err)
	}
	run.e.hostChanged()
}

// stop ends host i's update on a failure: its update is rejected when
// the host runs the new image (rejecting), else it fails at once.
func (run *rolloutRun) stop(ctx context.Context, i int, e *api.Error, reject bool) error {
	h := &run.d.Hosts[i]
	h.Code, h.Message = e.Code, e.Message
	if reject {
		return run.enter(ctx, i, engineapi.RolloutHostRejecting, fmt.Sprintf("Firmware rollout %s: host %s failed (%s: %s); its update is rejected (update_flash -r), the rollout stops.",
			run.d.ID, h.Host, e.Code, e.Message))
	}
	return run.enter(ctx, i, engineapi.RolloutHostFailed, fmt.Sprintf("Firmware rollout %s: host %s failed (%s: %s); it stays in Maintenance, the rollout stops.",
		run.d.ID, h.Host, e.Code, e.Message))
}

// step moves host i by one phase when it can: moved is false when it
// waits (for its reboot, its soak, the operator).
func (run *rolloutRun) step(ctx context.Context, i int) (moved bool, err error) {
	e, d := run.e, &run.d
	h := &d.Hosts[i]
	host, err := e.st.GetHost(ctx, h.HostID)
	if err != nil {
		return false, err
	}
	now := time.Now().UTC()
	// An abort: a host not flashed goes back; a flashed one is rejected
	// once its agent can do it.
	if d.Control.Abort && h.Phase != engineapi.RolloutHostRejecting && h.Phase != engineapi.RolloutHostActivating {
		why := &api.Error{Code: api.CodeRolloutAborted, Message: "the rollout was aborted by " + d.Control.By}
		if !flashed(h.Phase) {
			h.Code, h.Message = why.Code, why.Message
			_, _, _ = e.agents.FirmwareStep(ctx, host, "cancel", "rollout "+d.ID, agentapi.FirmwareStepRequest{})
			e.refreshFirmware(ctx, host)
			if host.Status == store.HostMaintenance {
				_ = run.maint.activate(ctx, host, "firmware rollout "+d.ID+" aborted")
			}
			return true, run.enter(ctx, i, engineapi.RolloutHostSkipped, fmt.Sprintf("Firmware rollout %s: host %s left as it was (%s); it is activated again.", d.ID, h.Host, why.Message))
		}
		if h.Phase != engineapi.RolloutHostRebooting {
			return true, run.stop(ctx, i, why, true)
		}
	}
	switch h.Phase {
	case engineapi.RolloutHostEvacuating:
		// The evacuation runs in the engine's background: the worker
		// looks at it each round, the other hosts go on meanwhile.
		done, err := run.maint.evacuation(ctx, host, h.Since, "firmware rollout "+d.ID)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return true, run.stop(ctx, i, asAPIError(err), false)
		}
		if !done {
			return false, nil
		}
		return true, run.enter(ctx, i, engineapi.RolloutHostFlashing, fmt.Sprintf("Firmware rollout %s: host %s is in Maintenance; its firmware is flashed (%s → %s).", d.ID, h.Host, h.FromLevel, h.ToLevel))

	case engineapi.RolloutHostFlashing:
		op, reached, err := run.operation(ctx, host, h)
		if err != nil {
			return true, run.stop(ctx, i, asAPIError(err), false)
		}
		if !reached {
			// The flash was asked before this engine stopped: the
			// host is rebooting since then.
			h.RebootStarted = run.flashAsked(ctx, host, h)
			return true, run.enter(ctx, i, engineapi.RolloutHostRebooting, fmt.Sprintf("Firmware rollout %s: host %s does not answer after its flash; waiting for it (at most %s).", d.ID, h.Host, RolloutRebootTimeout))
		}
		switch op.State {
		case agentapi.FirmwareStateValidated:
			h.RebootStarted = time.Now().UTC()
			fop, ferr := e.firmwareStep(ctx, host.ID, "flash", engineapi.FirmwareStepRequest{})
			if ferr != nil {
				return true, run.stop(ctx, i, asAPIError(ferr), false)
			}
			if fop.Operation != nil && fop.Operation.State == agentapi.FirmwareStateFailed {
				return true, run.stop(ctx, i, opFailure(fop.Operation, "flash"), false)
			}
		case agentapi.FirmwareStateFlashing, agentapi.FirmwareStateRebooting, agentapi.FirmwareStateAwaitingDecision:
			// Flashed before this engine stopped.
			h.RebootStarted = flashTime(op)
		case agentapi.FirmwareStateFailed:
			return true, run.stop(ctx, i, opFailure(&op, "flash"), false)
		default:
			return true, run.stop(ctx, i, fail(api.CodeFirmwareWrongState, "its firmware operation %s is %s, not validated: it was changed outside the rollout", op.ID, op.State), false)
		}
		return true, run.enter(ctx, i, engineapi.RolloutHostRebooting, fmt.Sprintf("Firmware rollout %s: host %s flashed; it reboots (waiting at most %s).", d.ID, h.Host, RolloutRebootTimeout))

	case engineapi.RolloutHostRebooting:
		op, reached, err := run.operation(ctx, host, h)
		if err != nil {
			return true, run.stop(ctx, i, asAPIError(err), false)
		}
		// The time-out runs from the flash (the reboot's start), not from
		// when this engine entered the phase.
		started := h.RebootStarted
		if started.IsZero() {
			started = h.Since
		}
		overdue := now.Sub(started) > RolloutRebootTimeout
		if !reached || op.State == agentapi.FirmwareStateFlashing || op.State == agentapi.FirmwareStateRebooting {
			if overdue {
				return true, run.stop(ctx, i, fail(api.CodeFirmwareHostNotBack, "host %s did not come back within %s of its flash; its update could not be rejected (the agent does not answer); it stays in Maintenance", h.Host, RolloutRebootTimeout), false)
			}
			return false, nil
		}
		switch op.State {
		case agentapi.FirmwareStateAwaitingDecision:
			if op.Booted != nil {
				h.Level = op.Booted.Booted.Code()
				if h.Level == "" {
					h.Level = op.Booted.Temporary.Code()
				}
			}
			if d.Control.Abort {
				return true, run.stop(ctx, i, &api.Error{Code: api.CodeRolloutAborted, Message: "the rollout was aborted by " + d.Control.By}, true)
			}
			if op.Booted == nil || h.Level != h.ToLevel || op.Booted.BootedSide == agentapi.FirmwareSidePermanent {
				return true, run.stop(ctx, i, fail(api.CodeFirmwareLevelNotNew, "host %s came back on %s, not the new level %s", h.Host, orUnknownLevel(h.Level), h.ToLevel), true)
			}
			return true, run.enter(ctx, i, engineapi.RolloutHostChecking, fmt.Sprintf("Firmware rollout %s: host %s is back on %s (was %s) after %s; health checks.", d.ID, h.Host, h.Level, h.FromLevel, now.Sub(h.Since).Round(time.Second)))
		case agentapi.FirmwareStateFailed:
			if op.Booted != nil {
				h.Level = op.Booted.Temporary.Code()
			}
			return true, run.stop(ctx, i, opFailure(&op, "reboot"), false)
		}
		return true, run.stop(ctx, i, fail(api.CodeFirmwareWrongState, "its firmware operation %s is %s after the flash: it was changed outside the rollout", op.ID, op.State), false)

	case engineapi.RolloutHostChecking:
		if herr := e.rolloutHealth(ctx, host, h.CPUType); herr != nil {
			return true, run.stop(ctx, i, herr, true)
		}
		return true, run.enter(ctx, i, engineapi.RolloutHostSoaking, fmt.Sprintf("Firmware rollout %s: host %s passed its health checks on %s (agent, admission with CPU type %s, libvirt); soak %s.", d.ID, h.Host, h.Level, orUnknownLevel(h.CPUType), orNoSoak(d.Soak)))

	case engineapi.RolloutHostSoaking:
		soak, _ := time.ParseDuration(orZero(d.Soak))
		if now.Sub(h.Since) < soak {
			return false, nil
		}
		if d.Commit == "manual" {
			return true, run.enter(ctx, i, engineapi.RolloutHostAwaitingCommit, fmt.Sprintf("Firmware rollout %s: host %s runs %s; waiting for the operator's commit (polyvirt host firmware commit %s) or reject.", d.ID, h.Host, h.Level, h.Host))
		}
		return true, run.enter(ctx, i, engineapi.RolloutHostCommitting, fmt.Sprintf("Firmware rollout %s: host %s runs %s, healthy; its update is committed (update_flash -c).", d.ID, h.Host, h.Level))

	case engineapi.RolloutHostCommitting, engineapi.RolloutHostAwaitingCommit:
		op, reached, err := run.operation(ctx, host, h)
		if err != nil || !reached {
			if err == nil {
				err = fail(api.CodeAgentUnreachable, "host %s does not answer", h.Host)
			}
			return true, run.stop(ctx, i, asAPIError(err), false)
		}
		switch op.State {
		case agentapi.FirmwareStateAwaitingDecision:
			if h.Phase == engineapi.RolloutHostAwaitingCommit {
				return false, nil
			}
			if _, err := e.firmwareStep(ctx, host.ID, "commit", engineapi.FirmwareStepRequest{}); err != nil {
				return true, run.stop(ctx, i, asAPIError(err), true)
			}
			return true, nil
		case agentapi.FirmwareStateCommitting:
			return false, nil
		case agentapi.FirmwareStateCommitted:
			return true, run.enter(ctx, i, engineapi.RolloutHostActivating, fmt.Sprintf("Firmware rollout %s: host %s committed %s; it is activated.", d.ID, h.Host, h.ToLevel))
		case agentapi.FirmwareStateRejecting:
			return false, nil
		case agentapi.FirmwareStateRejected:
			h.Rejected = true
			return true, run.stop(ctx, i, fail(api.CodeFirmwareWrongState, "its update was rejected outside the rollout (operation %s)", op.ID), false)
		}
		return true, run.stop(ctx, i, opFailure(&op, "commit"), false)

	case engineapi.RolloutHostActivating:
		switch host.Status {
		case store.HostMaintenance:
			if err := run.maint.activate(ctx, host, "firmware rollout "+d.ID); err != nil {
				return true, run.stop(ctx, i, asAPIError(err), false)
			}
			return false, nil
		case store.HostUp:
			if h.CPUType != "" && host.CPUType != h.CPUType {
				return true, run.stop(ctx, i, fail(api.CodeFirmwareCPUTypeChanged, "host %s is Up with CPU type %s, not %s as before its update", h.Host, host.CPUType, h.CPUType), false)
			}
			return true, run.enter(ctx, i, engineapi.RolloutHostDone, fmt.Sprintf("Firmware rollout %s: host %s updated %s → %s in %s; it is Up.", d.ID, h.Host, h.FromLevel, h.ToLevel, now.Sub(h.Started).Round(time.Second)))
		case store.HostNonOperational, store.HostInstallFailed:
			return true, run.stop(ctx, i, fail(orCode(host.StatusCode, api.CodeFirmwareHealthCheck), "host %s is %s after its activation: %s", h.Host, host.Status, host.StatusMessage), false)
		}
		if now.Sub(h.Since) > RolloutRebootTimeout {
			return true, run.stop(ctx, i, fail(api.CodeFirmwareHealthCheck, "host %s is %s, not Up, %s after its activation", h.Host, host.Status, RolloutRebootTimeout), false)
		}
		return false, nil

	case engineapi.RolloutHostRejecting:
		op, reached, err := run.operation(ctx, host, h)
		if err == nil && reached {
			switch op.State {
			case agentapi.FirmwareStateAwaitingDecision:
				if _, rerr := e.firmwareStep(ctx, host.ID, "reject", engineapi.FirmwareStepRequest{Reason: h.Message}); rerr != nil {
					h.Message += "; the reject failed: " + asAPIError(rerr).Message
					return true, run.rejectEnd(ctx, i)
				}
				return true, nil
			case agentapi.FirmwareStateRejecting:
				return false, nil
			case agentapi.FirmwareStateRejected:
				h.Rejected = true
				if op.After != nil {
					h.Level = op.After.Temporary.Code()
				}
				return true, run.rejectEnd(ctx, i)
			}
			h.Message += fmt.Sprintf("; its operation is %s: nothing to reject", op.State)
			return true, run.rejectEnd(ctx, i)
		}
		if now.Sub(h.Since) > RolloutRebootTimeout {
			h.Message += "; the reject could not be asked: the agent does not answer"
			return true, run.rejectEnd(ctx, i)
		}
		return false, nil
	}
	return false, fmt.Errorf("host %s: unknown rollout phase %q", h.Host, h.Phase)
}

// rejectEnd ends a host whose rejection was asked: failed (skipped when
// the rollout was aborted).
func (run *rolloutRun) rejectEnd(ctx context.Context, i int) error {
	h := &run.d.Hosts[i]
	phase := engineapi.RolloutHostFailed
	if h.Code == api.CodeRolloutAborted {
		phase = engineapi.RolloutHostSkipped
	}
	what := "its update could not be rejected"
	if h.Rejected {
		what = "its update was rejected: back on " + orUnknownLevel(h.Level)
	}
	return run.enter(ctx, i, phase, fmt.Sprintf("Firmware rollout %s: host %s %s (%s: %s); it stays in Maintenance.", run.d.ID, h.Host, what, h.Code, h.Message))
}

// operation reads a host's firmware operation, recorded as any: reached is
// false when the agent does not answer; an error when the operation is not
// the rollout's any more.
func (run *rolloutRun) operation(ctx context.Context, host store.Host, h *engineapi.RolloutHost) (agentapi.FirmwareOperation, bool, error) {
	st, err := run.e.agents.FirmwareStatus(ctx, host)
	if err != nil {
		return agentapi.FirmwareOperation{}, false, nil
	}
	if st.Operation == nil || st.Operation.ID != h.Operation {
		id := "none"
		if st.Operation != nil {
			id = st.Operation.ID
		}
		return agentapi.FirmwareOperation{}, true, fail(api.CodeFirmwareNoOperation, "host %s's firmware operation is %s, not the rollout's %s: it was changed outside the rollout", host.Name, id, h.Operation)
	}
	_ = run.e.recordFirmware(ctx, host, st.Operation)
	return *st.Operation, true, nil
}

// flashTime is when an operation's flash was asked (its last flash step),
// or now when it says none.
func flashTime(op agentapi.FirmwareOperation) time.Time {
	for i := len(op.Steps) - 1; i >= 0; i-- {
		if op.Steps[i].Step == "flash" && !op.Steps[i].Time.IsZero() {
			return op.Steps[i].Time.UTC()
		}
	}
	return time.Now().UTC()
}

// flashAsked is when host's flash was asked, from the firmware operation
// the engine recorded last (its agent does not answer now: rebooting).
func (run *rolloutRun) flashAsked(ctx context.Context, host store.Host, h *engineapi.RolloutHost) time.Time {
	if t, ok := run.e.recordedFlash(ctx, host, h.Operation); ok {
		return t
	}
	return time.Now().UTC()
}

// opFailure is why an agent's operation failed.
func opFailure(op *agentapi.FirmwareOperation, step string) *api.Error {
	f := op.Failure
	if f == nil {
		f = op.LastError
	}
	if f == nil {
		return fail(api.CodeFirmwareWrongState, "its firmware operation %s ended %s at the %s", op.ID, op.State, step)
	}
	return fail(f.Code, "%s", f.Message)
}

func orZero(s string) string {
	if s == "" {
		return "0s"
	}
	return s
}

func orCode(c, def string) string {
	if c == "" {
		return def
	}
	return c
}
