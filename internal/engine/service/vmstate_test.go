package service

import (
	"testing"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/store"

	"github.com/google/go-cmp/cmp"
)

func TestStateMapping(t *testing.T) {
	tests := []struct {
		state  agentapi.VMState
		reason string
		want   store.VMState
	}{
		{agentapi.StateRunning, "booted", store.VMUp},
		{agentapi.StateBlocked, "", store.VMUp},
		{agentapi.StatePaused, "user", store.VMPaused},
		{agentapi.StatePaused, "starting-up", store.VMPoweringUp},
		{agentapi.StateShutdown, "user", store.VMPoweringDown},
		{agentapi.StateDefined, "shutdown", store.VMDown},
		{agentapi.StateDefined, "crashed", store.VMDown},
		{agentapi.StateCrashed, "panicked", store.VMDown},
		{agentapi.StateSuspend, "", store.VMSuspended},
		{agentapi.StateUnknown, "", store.VMUnknown},
		{"weird", "", store.VMUnknown},
	}
	for _, tc := range tests {
		if got := stateFromAgent(tc.state, tc.reason); got != tc.want {
			t.Errorf("%s (%s): %s, want %s", tc.state, tc.reason, got, tc.want)
		}
	}
	type obs struct {
		State   store.VMState
		Gone    bool
		Crashed bool
	}
	events := []struct {
		ev   agentapi.Event
		want obs
	}{
		{agentapi.Event{Event: "started", Detail: "booted", State: agentapi.StateRunning}, obs{store.VMUp, false, false}},
		{agentapi.Event{Event: "started", State: agentapi.StateUnknown}, obs{store.VMUp, false, false}},
		{agentapi.Event{Event: "suspended", Detail: "paused", State: agentapi.StatePaused}, obs{store.VMPaused, false, false}},
		{agentapi.Event{Event: "resumed", State: agentapi.StateRunning}, obs{store.VMUp, false, false}},
		{agentapi.Event{Event: "stopped", Detail: "shutdown", State: agentapi.StateDefined}, obs{store.VMDown, false, false}},
		{agentapi.Event{Event: "stopped", Detail: "destroyed", State: agentapi.StateDefined}, obs{store.VMDown, false, false}},
		{agentapi.Event{Event: "stopped", Detail: "crashed", State: agentapi.StateDefined}, obs{store.VMDown, false, true}},
		{agentapi.Event{Event: "stopped", Detail: "failed", State: agentapi.StateDefined}, obs{store.VMDown, false, true}},
		{agentapi.Event{Event: "crashed", Detail: "panicked", State: agentapi.StateCrashed}, obs{store.VMDown, false, true}},
		{agentapi.Event{Event: "undefined", Detail: "removed", State: agentapi.StateUnknown}, obs{store.VMDown, true, false}},
		{agentapi.Event{Event: "defined", Detail: "added", State: agentapi.StateDefined}, obs{store.VMDown, false, false}},
		{agentapi.Event{Event: "shutdown", Detail: "guest", State: agentapi.StateShutdown}, obs{store.VMPoweringDown, false, false}},
		{agentapi.Event{Event: agentapi.EventNotResponding, Detail: "no reply to query-status within 10s", State: agentapi.StateRunning}, obs{store.VMNotResponding, false, false}},
		{agentapi.Event{Event: agentapi.EventResponding, State: agentapi.StateRunning}, obs{store.VMUp, false, false}},
	}
	for _, tc := range []struct {
		ev   agentapi.Event
		want bool
	}{
		{agentapi.Event{Event: "defined", Detail: "added", State: agentapi.StateDefined}, true},
		{agentapi.Event{Event: "defined", Detail: "found after reconnecting to libvirt", State: agentapi.StateRunning}, false},
		{agentapi.Event{Event: "stopped", Detail: "destroyed", State: agentapi.StateDefined}, false},
	} {
		if got := definedStopped(tc.ev); got != tc.want {
			t.Errorf("definedStopped(%s/%s, %s) = %v", tc.ev.Event, tc.ev.Detail, tc.ev.State, got)
		}
	}
	for _, tc := range events {
		o := observeEvent(tc.ev)
		if diff := cmp.Diff(tc.want, obs{o.State, o.Gone, o.Crashed}); diff != "" {
			t.Errorf("%s/%s (-want +got):\n%s", tc.ev.Event, tc.ev.Detail, diff)
		}
	}
	listed := []struct {
		vm   agentapi.VM
		want obs
	}{
		{agentapi.VM{State: agentapi.StateRunning, Reason: "booted"}, obs{store.VMUp, false, false}},
		{agentapi.VM{State: agentapi.StateDefined, Reason: "crashed"}, obs{store.VMDown, false, true}},
		{agentapi.VM{State: agentapi.StateDefined, Reason: "destroyed"}, obs{store.VMDown, false, false}},
		{agentapi.VM{State: agentapi.StateCrashed}, obs{store.VMDown, false, true}},
		{agentapi.VM{State: agentapi.StateRunning, NotResponding: "no reply to query-status within 10s"}, obs{store.VMNotResponding, false, false}},
		{agentapi.VM{State: agentapi.StatePaused, NotResponding: "no reply to DomainResume within 10s"}, obs{store.VMNotResponding, false, false}},
		{agentapi.VM{State: agentapi.StateDefined, NotResponding: "stale"}, obs{store.VMDown, false, false}},
	}
	for _, tc := range listed {
		o := observeListed(tc.vm)
		if diff := cmp.Diff(tc.want, obs{o.State, o.Gone, o.Crashed}); diff != "" {
			t.Errorf("listed %s/%s (-want +got):\n%s", tc.vm.State, tc.vm.Reason, diff)
		}
	}
}

func TestRestartsHA(t *testing.T) {
	tests := []struct {
		name string
		ha   bool
		was  store.VMState
		o    observation
		want bool
	}{
		{"crashed", true, store.VMUp, observation{State: store.VMDown, Crashed: true}, true},
		{"crashed, not HA", false, store.VMUp, observation{State: store.VMDown, Crashed: true}, false},
		{"shut down from the guest", true, store.VMUp, observation{State: store.VMDown}, false},
		{"destroyed", true, store.VMUp, observation{State: store.VMDown, Why: "stopped (destroyed)"}, false},
		{"shut down by the engine, then crashed", true, store.VMPoweringDown, observation{State: store.VMDown, Crashed: true}, false},
		{"gone while its host did not answer", true, store.VMUnknown, observation{State: store.VMDown, Gone: true}, true},
		{"stopped while its host did not answer", true, store.VMUnknown, observation{State: store.VMDown}, true},
		{"gone with its host, not HA", false, store.VMUnknown, observation{State: store.VMDown, Gone: true}, false},
	}
	for _, tc := range tests {
		if got := restartsHA(tc.ha, tc.was, tc.o); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
