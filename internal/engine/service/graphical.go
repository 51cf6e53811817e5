package service

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// The graphical console: a short-lived, one-use console ticket, issued to
// a user for a running VM (as oVirt's console tickets), opens the engine's
// websocket that the HTTP API bridges to the agent of the VM's host, which
// connects to the VM's VNC server on the host's loopback.

// ConsoleTicketTTL is how long a console ticket waits for its use.
const ConsoleTicketTTL = 30 * time.Second

// ConsoleTicket issues the caller a ticket for a running VM's graphical
// console.
func (s *VMs) ConsoleTicket(ctx context.Context, ref string, req engineapi.ConsoleTicketRequest) (engineapi.ConsoleTicket, error) {
	e := s.e
	if req.Type == "" {
		req.Type = "vnc"
	}
	if req.Type != "vnc" {
		return engineapi.ConsoleTicket{}, invalidField("type", "console type %q: want vnc (the serial console is GET /api/v1/vms/{vm}/console)", req.Type)
	}
	u := CallerFrom(ctx)
	if u == nil {
		return engineapi.ConsoleTicket{}, fail(api.CodeUnauthenticated, "a console ticket is for a user")
	}
	v, err := e.findVM(ctx, ref)
	if err != nil {
		return engineapi.ConsoleTicket{}, coded(err)
	}
	if _, err := e.runningHost(ctx, v, "open the console of"); err != nil {
		return engineapi.ConsoleTicket{}, coded(err)
	}
	ticket, hash, err := store.NewToken()
	if err != nil {
		return engineapi.ConsoleTicket{}, coded(err)
	}
	t := store.ConsoleTicket{Hash: hash, UserID: u.ID, VMID: v.ID, Kind: req.Type, Expires: time.Now().Add(ConsoleTicketTTL)}
	if err := e.st.CreateConsoleTicket(ctx, &t); err != nil {
		return engineapi.ConsoleTicket{}, coded(err)
	}
	return engineapi.ConsoleTicket{Ticket: ticket, Type: t.Kind, VM: v.ID, Expires: t.Expires,
		Path: "/api/v1/vms/" + url.PathEscape(v.ID) + "/vnc?ticket=" + url.QueryEscape(ticket)}, nil
}

// GraphicalConsole takes a console ticket (once) for a VM's graphical
// console: the VM, its host and the ticket's user, who must still exist
// and still manage VMs. The opening is recorded in the audit log.
func (s *VMs) GraphicalConsole(ctx context.Context, ref, ticket string) (Console, error) {
	e := s.e
	bad := func(why string) error {
		return fail(api.CodeConsoleTicketInvalid, "console ticket refused: %s; ask for a new one (POST /api/v1/vms/{vm}/console-ticket)", why)
	}
	v, err := e.findVM(ctx, ref)
	if err != nil {
		return Console{}, coded(err)
	}
	if ticket == "" {
		return Console{}, bad("none given (?ticket=)")
	}
	t, err := e.st.TakeConsoleTicket(ctx, store.HashToken(ticket))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Console{}, bad("unknown or used already")
	case errors.Is(err, store.ErrExpired):
		return Console{}, bad("expired")
	case err != nil:
		return Console{}, coded(err)
	case t.VMID != v.ID || t.Kind != "vnc":
		return Console{}, bad("issued for another VM or console")
	}
	u, err := e.st.GetUser(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return Console{}, bad("its user was removed")
	}
	if err != nil {
		return Console{}, coded(err)
	}
	if !u.Role.ManagesVMs() {
		return Console{}, fail(api.CodePermissionDenied, "user %s has the %s role: it may not open graphical consoles", u.Name, u.Role)
	}
	h, err := e.runningHost(ctx, v, "open the console of")
	if err != nil {
		return Console{}, coded(err)
	}
	uctx := WithCaller(ctx, &u)
	if err := e.appendEvent(uctx, e.st, store.Event{Action: "vm.console", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
		Message: fmt.Sprintf("User %s opened the graphical console of VM %s.", u.Name, v.Name), Reason: "on host " + h.Name}); err != nil {
		e.log.Warn("audit log", "err", err)
	}
	return Console{VM: v, Host: h, User: u.Name, Writable: true}, nil
}
