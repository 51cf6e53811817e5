package service

import (
	"context"

	"polyvirt/internal/store"
)

// runningHost is the host a VM runs on, or VM_STATUS_ILLEGAL saying it
// runs nowhere.
func (e *engine) runningHost(ctx context.Context, v store.VM, what string) (store.Host, error) {
	if v.HostID == "" {
		return store.Host{}, vmStatusError(v, what, "start it first (polyvirt vm start)")
	}
	return e.st.GetHost(ctx, v.HostID)
}

// Screenshot is a PNG of a running VM's display, taken by its host.
func (s *VMs) Screenshot(ctx context.Context, ref string) ([]byte, error) {
	e := s.e
	v, err := e.findVM(ctx, ref)
	if err != nil {
		return nil, coded(err)
	}
	h, err := e.runningHost(ctx, v, "take a screenshot of")
	if err != nil {
		return nil, coded(err)
	}
	img, err := e.agents.Screenshot(ctx, h, v.ID)
	return img, coded(err)
}

// Console is where a VM's serial console is: the host that runs it and
// whether the caller may type into it (a role that manages VMs) or only
// watch.
type Console struct {
	VM   store.VM
	Host store.Host
	// User is the caller's name ("" for the engine).
	User     string
	Writable bool
}

// Console finds a running VM's serial console for the caller: the
// engine's HTTP API bridges the client's websocket to the host's.
func (s *VMs) Console(ctx context.Context, ref string) (Console, error) {
	e := s.e
	v, err := e.findVM(ctx, ref)
	if err != nil {
		return Console{}, coded(err)
	}
	h, err := e.runningHost(ctx, v, "attach to the console of")
	if err != nil {
		return Console{}, coded(err)
	}
	c := Console{VM: v, Host: h}
	if u := CallerFrom(ctx); u != nil {
		c.User, c.Writable = u.Name, u.Role.ManagesVMs()
	}
	return c, nil
}
