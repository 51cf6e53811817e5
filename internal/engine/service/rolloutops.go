package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/scheduler"
	"polyvirt/internal/store"
)

// hostMaintainer is what a rollout needs of the hosts' maintenance: put a
// host in Maintenance, its VMs evacuated, and say when that is done or
// why not; activate it again. It is the one place that changes when the
// evacuating maintenance (live migration, issue 14) lands: evacuate then
// calls Hosts.Evacuate and names each VM that could not leave.
type hostMaintainer interface {
	// evacuate returns once the host is in Maintenance, or why it is not.
	evacuate(ctx context.Context, h store.Host, reason string) error
	// activate asks the host's activation (admission runs again).
	activate(ctx context.Context, h store.Host, reason string) error
}

// engineMaintainer is hostMaintainer over the engine's evacuating host
// maintenance: the host's VMs migrate to the other hosts of its cluster;
// a VM that cannot leave (pinned, no destination fits) or whose migration
// failed stops the rollout with its name and reason.
type engineMaintainer struct{ e *engine }

func (m engineMaintainer) evacuate(ctx context.Context, h store.Host, reason string) error {
	ev, err := (&Hosts{m.e}).Evacuate(ctx, h.ID, engineapi.MaintenanceRequest{Reason: reason})
	if err != nil {
		return err
	}
	cur, err := m.e.st.GetHost(ctx, h.ID)
	if err != nil {
		return err
	}
	if cur.Status == store.HostMaintenance {
		return nil
	}
	var why []string
	for _, v := range ev.VMs {
		if v.Outcome == engineapi.EvacuationFailed {
			why = append(why, fmt.Sprintf("VM %s: %s: %s", v.Name, v.Code, v.Message))
		}
	}
	if len(why) == 0 {
		why = append(why, "the host is "+string(cur.Status))
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
