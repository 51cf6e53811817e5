package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/store"
)

// Agents calls the hosts' agents (their API, internal/agent): the engine's
// mutual-TLS client implements it, tests may fake it. A host is reached
// at its address with its enrolled certificate pinned. A call's failure
// is an *AgentError (the agent refused, failed, or was not reached),
// except FirmwareStatus, FirmwareUpload and FirmwareStep, whose refusals
// are the agent's *api.Error as it answered it.
type Agents interface {
	// Pin records the certificate expected at an address; Unpin forgets
	// it.
	Pin(addr, fingerprint string)
	Unpin(addr string)
	// Capabilities reads a host's capabilities report; with etag, a
	// report that did not change is notModified (no body).
	Capabilities(ctx context.Context, addr, etag string) (body []byte, newTag string, notModified bool, err error)
	// Stats reads a host's statistics (compact JSON).
	Stats(ctx context.Context, addr string) ([]byte, error)

	ListVMs(ctx context.Context, h store.Host) ([]agentapi.VM, error)
	GetVM(ctx context.Context, h store.Host, id string) (agentapi.VM, error)
	CreateVM(ctx context.Context, h store.Host, definition []byte) (agentapi.VM, error)
	DeleteVM(ctx context.Context, h store.Host, id string, force bool) error
	// Act runs a lifecycle action; shutdown, when not nil, gives a
	// shutdown its time-out.
	Act(ctx context.Context, h store.Host, id, action string, shutdown *agentapi.ShutdownRequest) (agentapi.ActionResult, error)
	Screenshot(ctx context.Context, h store.Host, id string) ([]byte, error)
	// Events subscribes to a host's VM events, asking the agent to push
	// its statistics on the stream every stats too (0: not), which go to
	// pushed as they come (when not nil): called on a goroutine the
	// stream's reading shares with other hosts', one push at a time, it
	// must return soon. ErrNoEvents when the agent has no event stream.
	Events(ctx context.Context, h store.Host, stats time.Duration, pushed func(stats []byte)) (EventStream, error)

	// MigrationPlan reads what a destination must offer for a running VM
	// (its disks probed); Announce tells a destination a VM comes;
	// Incoming reads how far it arrived; Withdraw takes the announcement
	// back (a VM still arriving is destroyed there).
	MigrationPlan(ctx context.Context, h store.Host, id string) (agentapi.MigrationPlan, error)
	Announce(ctx context.Context, h store.Host, req agentapi.IncomingRequest) (agentapi.Incoming, error)
	Incoming(ctx context.Context, h store.Host, id string) (agentapi.Incoming, error)
	Withdraw(ctx context.Context, h store.Host, id string) (agentapi.Incoming, error)
	// Migrate orders a VM's host to send it; MigrationStatus follows the
	// migration there; CancelMigration cancels it.
	Migrate(ctx context.Context, h store.Host, id string, order agentapi.MigrationOrder) (agentapi.MigrationStatus, error)
	MigrationStatus(ctx context.Context, h store.Host, id string) (agentapi.MigrationStatus, error)
	CancelMigration(ctx context.Context, h store.Host, id string) (agentapi.MigrationStatus, error)

	FirmwareStatus(ctx context.Context, h store.Host) (agentapi.FirmwareStatus, error)
	// FirmwareUpload passes an image on for user; an image larger than the
	// caller lets through fails with REQUEST_BODY_TOO_LARGE.
	FirmwareUpload(ctx context.Context, h store.Host, name, user string, image io.Reader) (agentapi.FirmwareOperation, error)
	// FirmwareStep runs a step for user; done is false while the agent
	// still works on it (its 202).
	FirmwareStep(ctx context.Context, h store.Host, step, user string, req agentapi.FirmwareStepRequest) (op agentapi.FirmwareOperation, done bool, err error)
	// ProbeGuest has the host's agent start the smallest guest of its
	// architecture, see it run and destroy it (a health check);
	// PROBE_GUEST_FAILED says why it did not run.
	ProbeGuest(ctx context.Context, h store.Host) (agentapi.ProbeResult, error)
}

// EventStream is a host's VM events, one at a time, and the statistics
// its agent pushes (agentapi.EventStats events) when they have no pushed
// function to go to.
type EventStream interface {
	// Next returns the next event; io.EOF when the stream ended.
	Next() (agentapi.Event, error)
	// PushesStats tells whether the agent pushes its statistics on this
	// stream (it said so: agentapi.StatsHeader).
	PushesStats() bool
	Close()
}

// ErrNoEvents tells that an agent has no event stream (a host simulator):
// its VMs are followed by reading their list.
var ErrNoEvents = errors.New("the agent has no event stream (GET /v1/events: 404)")

// AgentError is an agent's error answer, or the failure to reach it.
type AgentError struct {
	Host string
	// Status is the agent's HTTP status; 0 when it was not reached.
	Status int
	Code   string
	Msg    string
	Errors api.Errors
}

func (e *AgentError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("host %s does not answer: %s", e.Host, e.Msg)
	}
	return fmt.Sprintf("host %s: %s: %s", e.Host, e.Code, e.Msg)
}

// NotFound tells whether the agent does not know the VM (or the route).
func (e *AgentError) NotFound() bool { return e.Status == 404 }

// apiError turns an agent's refusal into the engine's answer: the agent's
// code and message (its 4xx status; a 5xx is passed on as 502), or
// AGENT_UNREACHABLE when it was not reached.
func (e *AgentError) apiError() *api.Error {
	if e.Status == 0 {
		return &api.Error{Code: api.CodeAgentUnreachable, Message: e.Error(), Details: e.Errors}
	}
	return &api.Error{Status: e.Status, Remote: true, Code: e.Code, Message: fmt.Sprintf("host %s: %s", e.Host, e.Msg), Details: e.Errors}
}

func asAgentError(err error) *AgentError {
	var ae *AgentError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// agentAPIError answers an agent call's failure.
func agentAPIError(err error) error {
	if ae := asAgentError(err); ae != nil {
		return ae.apiError()
	}
	return err
}

// notFoundOnAgent tells whether err is an agent's "no such VM".
func notFoundOnAgent(err error) bool {
	ae := asAgentError(err)
	return ae != nil && ae.NotFound()
}
