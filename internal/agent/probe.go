package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/archspec"
	"polyvirt/internal/domxml"
	"polyvirt/internal/httpx"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/vmspec"
)

// ProbeName starts the name of a probe guest's domain (after the host's
// domain prefix).
const ProbeName = "polyvirt-probe-"

// ProbeRun is how long a probe guest must be seen running before it is
// destroyed (a guest that QEMU starts and that crashes at once fails).
var ProbeRun = time.Second

// Probe starts the smallest guest of this host's architecture as a
// transient domain (archspec's Probe: no disk, no kernel, no network; its
// firmware runs), checks that it runs for ProbeRun, and destroys it: what
// a health check asks to see that libvirt and QEMU run a guest here. A
// failure is PROBE_GUEST_FAILED with libvirt's reason.
func (a *Agent) Probe(ctx context.Context) (*agentapi.ProbeResult, error) {
	report, err := a.Capabilities(ctx, false)
	if err != nil {
		return nil, err
	}
	spec, err := archspec.For(report.EffectiveArch)
	if err != nil {
		return nil, probeFailed("this host's architecture %q has no VM rules", report.EffectiveArch)
	}
	p := spec.Probe()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := a.domainName(ProbeName + hex.EncodeToString(b[:]))
	def := &vmspec.VM{Name: name, UUID: newUUID(), Arch: report.EffectiveArch, Machine: p.Machine, Firmware: p.Firmware,
		CPU: &vmspec.CPU{Cores: p.CPUs}, Memory: &vmspec.Memory{SizeMiB: int64(p.MemoryMiB)},
		Display: &vmspec.Display{Type: "none"}, Inputs: []vmspec.Input{}}
	valid, err := vmspec.Validate(def, vmspec.Options{Host: report, HostConsole: true})
	if err != nil {
		return nil, probeFailed("the probe guest's definition: %v", err)
	}
	dom, err := domxml.Build(valid, domxml.Options{FakeKVM: a.fake, HostArch: a.realArch, MemoryCapMiB: a.cfg.FakeMemoryMiB})
	if err != nil {
		return nil, probeFailed("the probe guest's domain: %v", err)
	}
	x, err := domxml.Marshal(dom)
	if err != nil {
		return nil, probeFailed("the probe guest's domain: %v", err)
	}
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	res := &agentapi.ProbeResult{Arch: report.EffectiveArch.String(), Machine: valid.VM().Machine, Firmware: p.Firmware, MemoryMiB: p.MemoryMiB, Domain: name}
	start := time.Now()
	d, err := c.CreateDomain(ctx, x)
	if err != nil {
		return nil, probeFailed("libvirt did not start the probe guest %s (%s, %s): %v", name, res.Arch, res.Machine, err)
	}
	res.StartMs = time.Since(start).Milliseconds()
	defer func() {
		// A transient domain is gone once destroyed; a context that
		// ended does not keep it running.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
		defer cancel()
		if err := c.DestroyDomain(dctx, d); err != nil && !errors.Is(err, libvirtconn.ErrNoDomain) {
			a.log.Warn("probe guest: destroy", "domain", name, "err", err)
		}
	}()
	ran := time.Now()
	for {
		st, err := c.DomainState(ctx, d)
		if err != nil {
			return nil, probeFailed("the probe guest %s: its state: %v", name, err)
		}
		if st != libvirtconn.StateRunning {
			return nil, probeFailed("the probe guest %s (%s, %s) is %s, not running, %s after its start", name, res.Arch, res.Machine, st, time.Since(ran).Round(time.Millisecond))
		}
		if time.Since(ran) >= ProbeRun {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ProbeRun / 5):
		}
	}
	res.RanMs = time.Since(ran).Milliseconds()
	a.log.Info("probe guest ran", "domain", name, "arch", res.Arch, "machine", res.Machine, "startMs", res.StartMs)
	return res, nil
}

func probeFailed(format string, args ...any) error {
	return api.NewError(http.StatusBadGateway, api.CodeProbeGuestFailed, format, args...)
}

func (a *Agent) postProbe(w http.ResponseWriter, r *http.Request) error {
	res, err := a.Probe(r.Context())
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, res)
}
