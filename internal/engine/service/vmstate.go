package service

import (
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/store"
)

// stateFromAgent maps an agent's VM state (libvirt's, and its reason) to
// the engine's:
//
//	running, blocked              Up
//	paused (starting-up)          PoweringUp
//	paused                        Paused
//	shutting-down                 PoweringDown
//	defined (shut off), crashed   Down
//	pmsuspended                   Suspended
//	anything else                 Unknown
func stateFromAgent(s agentapi.VMState, reason string) store.VMState {
	switch s {
	case agentapi.StateRunning, agentapi.StateBlocked:
		return store.VMUp
	case agentapi.StatePaused:
		if reason == "starting-up" {
			return store.VMPoweringUp
		}
		return store.VMPaused
	case agentapi.StateShutdown:
		return store.VMPoweringDown
	case agentapi.StateDefined, agentapi.StateCrashed:
		return store.VMDown
	case agentapi.StateSuspend:
		return store.VMSuspended
	}
	return store.VMUnknown
}

// observation is what an agent says of one VM: from its VM list (with the
// definition) or from one event.
type observation struct {
	ID   string
	Name string
	// Gone tells that the host no longer has the VM (undefined, or absent
	// from its list).
	Gone  bool
	State store.VMState
	// Crashed tells that the VM stopped on its own: the guest crashed or
	// QEMU failed (not a shutdown, not a destroy).
	Crashed bool
	// Why is libvirt's reason or event, for the audit log.
	Why string
	// NotResponding is why the VM's QEMU does not answer (with State
	// NotResponding), or, with Responding, why it did not.
	NotResponding string
	Responding    bool
	// Definition is the definition the agent holds (lists only).
	Definition []byte
}

// observeListed reads an entry of an agent's VM list.
func observeListed(vm agentapi.VM) observation {
	o := observation{ID: vm.ID, Name: vm.Name, State: stateFromAgent(vm.State, vm.Reason), Why: string(vm.State), Definition: vm.Definition}
	if vm.Reason != "" {
		o.Why += " (" + vm.Reason + ")"
	}
	o.Crashed = vm.State == agentapi.StateCrashed || (vm.State == agentapi.StateDefined && (vm.Reason == "crashed" || vm.Reason == "failed"))
	if vm.NotResponding != "" && runs(o.State) {
		o.State, o.NotResponding = store.VMNotResponding, vm.NotResponding
	}
	return o
}

// observeEvent reads one of an agent's VM events.
func observeEvent(ev agentapi.Event) observation {
	o := observation{ID: ev.VM, Name: ev.Name, State: stateFromAgent(ev.State, ""), Why: ev.Event}
	if ev.Detail != "" {
		o.Why += " (" + ev.Detail + ")"
	}
	switch ev.Event {
	case "undefined":
		o.Gone, o.State = true, store.VMDown
	case "stopped":
		o.State = store.VMDown
		o.Crashed = ev.Detail == "crashed" || ev.Detail == "failed"
	case "crashed":
		o.Crashed = true
		if o.State == store.VMUnknown {
			o.State = store.VMDown
		}
	case "started", "resumed":
		if o.State == store.VMUnknown || o.State == store.VMDown {
			o.State = store.VMUp
		}
	case "suspended":
		if o.State == store.VMUnknown {
			o.State = store.VMPaused
		}
	case agentapi.EventNotResponding:
		o.State, o.NotResponding = store.VMNotResponding, ev.Detail
	case agentapi.EventResponding:
		o.Responding, o.NotResponding = true, ev.Detail
		if o.State == store.VMUnknown || o.State == store.VMDown {
			o.State = store.VMUp
		}
	}
	return o
}

// definedStopped tells whether an event is a VM's definition that says it
// does not run: it tells nothing of a change of its state.
func definedStopped(ev agentapi.Event) bool {
	return ev.Event == "defined" && !runs(stateFromAgent(ev.State, ""))
}

// runs tells whether a state means QEMU runs the VM.
func runs(s store.VMState) bool {
	switch s {
	case store.VMUp, store.VMPaused, store.VMPoweringUp, store.VMPoweringDown, store.VMRebootInProgress, store.VMSuspended,
		store.VMNotResponding:
		return true
	}
	return false
}
