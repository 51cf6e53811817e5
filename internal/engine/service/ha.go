package service

import (
	"context"
	"fmt"
	"time"

	"polyvirt/internal/store"
)

// High availability. A VM marked HA is started again on another host of
// its cluster when it dies with its host:
//
//   - its host is NonResponsive for HADelay (the engine cannot tell whether
//     the VM still runs there: it assumes it died with the host);
//   - its host answers again sooner, without the VM running (it went
//     while the host did not answer);
//   - or its host reports that it crashed (not shut down or destroyed on
//     purpose).
//
// The restart runs through the scheduler with the dead host excluded; a
// VM that fits nowhere stays Unknown and is tried again every HAInterval
// (an event says why, once a minute). When the old host answers again its
// watcher reconciles: the copy of the VM it still runs is destroyed and its
// definition removed (vmSync.stale), so that the VM never runs twice for
// long. Without fencing this is the documented risk: a host cut off from
// the engine but not from its storage keeps running its copy until it
// answers again.

// haRun is the HA loop of the monitoring leader.
func (y *vmSync) haRun(ctx context.Context) {
	t := time.NewTicker(y.s.cfg.HAInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, id := range y.lostHosts(y.s.cfg.HADelay) {
			y.restartFrom(ctx, id)
		}
		// Migrations whose engine stopped are followed again: an HA VM
		// that migrates is not restarted elsewhere meanwhile (it is not
		// Unknown); its migration finds where it runs.
		y.s.adoptMigrations(ctx)
	}
}

// restartFrom restarts the HA VMs of a host that stopped answering.
func (y *vmSync) restartFrom(ctx context.Context, hostID string) {
	e := y.m.e
	h, err := e.st.GetHost(ctx, hostID)
	if err != nil || h.Status != store.HostNonResponsive {
		return
	}
	ha := true
	vms, err := e.st.ListVMs(ctx, store.VMFilter{HostID: hostID, HA: &ha})
	if err != nil {
		if ctx.Err() == nil {
			y.m.warn("cannot read the HA VMs of a host that stopped answering", "host", h.Name, "err", err)
		}
		return
	}
	for _, v := range vms {
		if v.State == store.VMDown {
			continue
		}
		y.s.haRestart(ctx, v.ID, h.ID, fmt.Sprintf("host %s does not answer", h.Name))
	}
}

// haRestart starts an HA VM again away from fromHost ("" for a crash on a
// host that still answers).
func (s *vmService) haRestart(ctx context.Context, id, fromHost, why string) {
	e := s.e
	o := startOptions{ha: true, fromHost: fromHost, reason: why}
	if fromHost != "" {
		o.exclude = []string{fromHost}
	}
	res, err := s.start(ctx, id, o)
	if err == nil {
		if res.Changed {
			s.haFailed.Delete(id)
			e.log.Warn("highly available VM restarted", "vm", res.Name, "host", res.Host, "why", why)
		}
		return
	}
	if ctx.Err() != nil {
		return
	}
	if last, ok := s.haFailed.Load(id); ok && time.Since(last.(time.Time)) < time.Minute {
		return
	}
	s.haFailed.Store(id, time.Now())
	name := id
	if v, err := e.st.GetVM(ctx, id); err == nil {
		name = v.Name
	}
	ae := asAPIError(err)
	msg := ae.Message
	for _, d := range ae.Details {
		msg += " " + d.Message
	}
	ev := store.Event{Action: "vm.ha-restart", Severity: store.SeverityError, ObjectKind: "vm", ObjectID: id, ObjectName: name,
		Code: ae.Code, Message: fmt.Sprintf("Highly available VM %s could not be restarted (%s); the engine tries again.", name, why),
		Reason: msg}
	if err := e.appendEvent(ctx, e.st, ev); err != nil && ctx.Err() == nil {
		e.log.Warn("audit log", "err", err)
	}
	e.log.Warn("highly available VM not restarted", "vm", name, "why", why, "err", msg)
}
