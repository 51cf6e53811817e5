package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/scheduler"
	"polyvirt/internal/store"
)

// hostMaintainer is what a rollout needs of the hosts' maintenance: put a
// host in Maintenance, its VMs evacuated, without holding the rollout
// worker while they migrate; activate it again.
type hostMaintainer interface {
	// evacuation starts the host's evacuation, or follows the one under
	// way, and returns at once: done once the host is in Maintenance, an
	// error when it will not be (VMs that cannot leave, a migration that
	// failed). since is when the rollout asked for it: an evacuation that
	// ended before is not this one's outcome.
	evacuation(ctx context.Context, h store.Host, since time.Time, reason string) (done bool, err error)
	// activate asks the host's activation (admission runs again).
	activate(ctx context.Context, h store.Host, reason string) error
}

// engineMaintainer is hostMaintainer over the engine's evacuating host
// maintenance: the host's VMs migrate to the other hosts of its cluster
// (in the engine's background, as `host maintenance` does); a VM that
// cannot leave (pinned, no destination fits) or whose migration failed
// stops the rollout with its name and reason. An engine restarted in the
// middle finds the host PreparingForMaintenance with no evacuation of its
// own, and starts one again for the VMs still there.
type engineMaintainer struct{ e *engine }

func (m engineMaintainer) evacuation(ctx context.Context, h store.Host, since time.Time, reason string) (bool, error) {
	cur, err := m.e.st.GetHost(ctx, h.ID)
	if err != nil {
		return false, err
	}
	if cur.Status == store.HostMaintenance {
		return true, nil
	}
	if ev := m.e.vms.evacuationOf(h.ID); ev != nil {
		if ev.running() {
			return false, nil
		}
		if doc := ev.snapshot(); !doc.Started.Before(since) {
			return false, evacuationFailed(cur, doc)
		}
	}
	_, ev, err := m.e.hostMaintenance(ctx, h.ID, engineapi.MaintenanceRequest{Reason: reason})
	if err != nil {
		return false, err
	}
	if ev != nil {
		return false, nil
	}
	if cur, err = m.e.st.GetHost(ctx, h.ID); err != nil {
		return false, err
	}
	if cur.Status == store.HostMaintenance {
		return true, nil
	}
	return false, fail(api.CodeMaintenanceMigrationFailed, "host %s was not evacuated: the host is %s", h.Name, cur.Status)
}

// evacuationFailed is why an evacuation that ended left the host out of
// Maintenance: each VM that did not leave.
func evacuationFailed(h store.Host, ev engineapi.Evacuation) error {
	var why []string
	for _, v := range ev.VMs {
		if v.Outcome == engineapi.EvacuationFailed {
			why = append(why, fmt.Sprintf("VM %s: %s: %s", v.Name, v.Code, v.Message))
		}
	}
	if len(why) == 0 {
		why = append(why, "the host is "+string(h.Status))
	}
	return fail(api.CodeMaintenanceMigrationFailed, "host %s was not evacuated: %s", h.Name, strings.Join(why, "; "))
}

func (m engineMaintainer) activate(ctx context.Context, h store.Host, reason string) error {
	_, err := m.e.hostActivate(ctx, h.ID, engineapi.ActionRequest{Reason: reason})
	return err
}

// rolloutHealth checks a host back on its new firmware: its agent answers
// with a capabilities report, the host would be admitted to its cluster
// again with the CPU type it had before the flash, libvirt answers (the
// agent lists its domains) and runs a probe guest (the agent starts the
// smallest guest of the host's architecture, sees it run, destroys it).
// The error is coded (PROBE_GUEST_FAILED for the probe).
func (e *engine) rolloutHealth(ctx context.Context, h store.Host, cpuType string) *api.Error {
	body, _, _, err := e.agents.Capabilities(ctx, h.Address, "")
	if err != nil {
		return fail(api.CodeFirmwareHealthCheck, "host %s on its new firmware: its agent does not give its capabilities report: %v", h.Name, err)
	}
	f, err := factsFromReport(body)
	if err != nil {
		return fail(api.CodeFirmwareHealthCheck, "host %s on its new firmware: %v", h.Name, err)
	}
	c, err := e.st.GetCluster(ctx, h.ClusterID)
	if err != nil {
		return asAPIError(err)
	}
	ad := admit(h.Name, f, c)
	if !ad.OK {
		return fail(api.CodeFirmwareHealthCheck, "host %s on its new firmware would not be admitted to cluster %s: %s: %s", h.Name, c.Name, ad.Code, ad.Message)
	}
	if cpuType != "" && ad.Best.Name != cpuType {
		return fail(api.CodeFirmwareCPUTypeChanged, "host %s came back from its flash with CPU type %s in cluster %s, not %s as before", h.Name, orUnknownLevel(ad.Best.Name), c.Name, cpuType)
	}
	if _, err := e.agents.ListVMs(ctx, h); err != nil {
		return fail(api.CodeFirmwareHealthCheck, "host %s on its new firmware: libvirt does not answer through its agent: %v", h.Name, err)
	}
	res, err := e.agents.ProbeGuest(ctx, h)
	if err != nil {
		ae := asAPIError(err)
		return fail(orCode(ae.Code, api.CodeProbeGuestFailed), "host %s on its new firmware: libvirt does not run a probe guest: %s", h.Name, ae.Message)
	}
	e.log.Info("rollout: probe guest ran", "host", h.Name, "domain", res.Domain, "arch", res.Arch, "machine", res.Machine, "startMs", res.StartMs)
	return nil
}

// rolloutRoom tells whether the cluster keeps room for its running VMs
// when host h leaves too (out are the hosts already out for the rollout):
// every VM running on h, and every VM still running on a host out (one
// whose evacuation has not ended: its VMs need a place too, and h is not
// one once it leaves), must find another Up host that is neither h nor
// out, the VMs placed one after the other. The answer is "" when there is
// room, else why not.
func (e *engine) rolloutRoom(ctx context.Context, c store.Cluster, h store.Host, out []string) (string, error) {
	var running []store.VM
	for _, id := range append([]string{h.ID}, out...) {
		vms, err := e.st.ListVMs(ctx, store.VMFilter{HostID: id})
		if err != nil {
			return "", err
		}
		for _, v := range vms {
			if committed(v) {
				running = append(running, v)
			}
		}
	}
	if len(running) == 0 {
		return "", nil
	}
	hosts, _, err := e.vms.fleetFor(ctx, c)
	if err != nil {
		return "", err
	}
	fleet := scheduler.NewFleet(hosts, e.vms.cfg.Policy)
	exclude := append(append([]string(nil), out...), h.ID)
	for _, v := range running {
		req, err := schedRequest(v, c, exclude)
		if err != nil {
			return "", err
		}
		req.ExcludeReason = "the firmware rollout takes it out of service"
		d, err := fleet.Schedule(req)
		if err != nil {
			var nh *scheduler.NoHostError
			if errors.As(err, &nh) {
				return fmt.Sprintf("no room to evacuate host %s: VM %s would have no host (%s)", h.Name, v.Name, strings.TrimSpace(nh.Error())), nil
			}
			return "", err
		}
		fleet.Place(d.Index, req.VM)
	}
	return "", nil
}

// recordedFlash is when a host's firmware operation was flashed, as the
// engine recorded the agent's steps last (the first step that left it
// flashing); false when the record says no flash.
func (e *engine) recordedFlash(ctx context.Context, h store.Host, id string) (time.Time, bool) {
	rec, err := e.st.GetFirmwareOperation(ctx, id)
	if err != nil || rec.HostID != h.ID {
		return time.Time{}, false
	}
	for _, st := range rec.Steps {
		if st.State == store.FirmwareFlashing || st.State == store.FirmwareRebooting {
			return st.Time.UTC(), true
		}
	}
	return time.Time{}, false
}
