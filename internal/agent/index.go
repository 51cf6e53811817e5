package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/libvirtconn"
)

// vmEntry is what the agent knows of one VM it owns; all of it is read back
// from libvirt, so a restarted agent rebuilds it (recover).
type vmEntry struct {
	ID     string
	Name   string
	Arch   arch.Arch
	Fake   bool
	Domain libvirtconn.Domain
	// Definition is the VM definition as given (JSON).
	Definition []byte
	// VCPUs and MemoryMiB are the running VM's size, for host statistics.
	VCPUs     int
	MemoryMiB uint64
}

// vmIndex maps VM ids (and domain UUIDs) to entries.
type vmIndex struct {
	mu       sync.RWMutex
	vms      map[string]*vmEntry
	byDomain map[string]*vmEntry
	// foreign remembers domain UUIDs known not to be ours.
	foreign map[string]bool
	// states are the VMs' libvirt states as last seen (recovery, events,
	// statistics), to tell what changed while libvirt was away.
	states map[string]libvirtconn.DomainState
}

func newVMIndex() *vmIndex {
	return &vmIndex{vms: map[string]*vmEntry{}, byDomain: map[string]*vmEntry{}, foreign: map[string]bool{},
		states: map[string]libvirtconn.DomainState{}}
}

// setState records a VM's state as seen.
func (x *vmIndex) setState(id string, st libvirtconn.DomainState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.vms[id]; ok {
		x.states[id] = st
	}
}

// state returns a VM's state as last seen.
func (x *vmIndex) state(id string) (libvirtconn.DomainState, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	st, ok := x.states[id]
	return st, ok
}

func (x *vmIndex) get(id string) (*vmEntry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.vms[id]
	return e, ok
}

// byDomainUUID finds the entry of a libvirt domain.
func (x *vmIndex) byDomainUUID(uuid string) (*vmEntry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.byDomain[uuid]
	return e, ok
}

func (x *vmIndex) put(e *vmEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.vms[e.ID] = e
	x.byDomain[e.Domain.UUID] = e
	delete(x.foreign, e.Domain.UUID)
}

func (x *vmIndex) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.vms[id]; ok {
		delete(x.byDomain, e.Domain.UUID)
	}
	delete(x.vms, id)
	delete(x.states, id)
}

func (x *vmIndex) isForeign(uuid string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.foreign[uuid]
}

func (x *vmIndex) markForeign(uuid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.foreign[uuid] = true
}

// forgetForeign forgets which domains were judged not ours: they are
// judged again at their next event (an announced VM may be one of them).
func (x *vmIndex) forgetForeign() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.foreign = map[string]bool{}
}

// list returns the entries sorted by name.
func (x *vmIndex) list() []*vmEntry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]*vmEntry, 0, len(x.vms))
	for _, e := range x.vms {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// replace sets the whole index at once (after a recovery) and returns the
// entries and states it had.
func (x *vmIndex) replace(vms map[string]*vmEntry, foreign map[string]bool, states map[string]libvirtconn.DomainState) (map[string]*vmEntry, map[string]libvirtconn.DomainState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	oldVMs, oldStates := x.vms, x.states
	x.vms, x.foreign, x.states = vms, foreign, states
	x.byDomain = make(map[string]*vmEntry, len(vms))
	for _, e := range vms {
		x.byDomain[e.Domain.UUID] = e
	}
	return oldVMs, oldStates
}

// recover rebuilds the index from libvirt: every domain whose owner element
// names this host is ours, whatever its state; nothing is started, stopped,
// defined or removed.
func (a *Agent) recover(ctx context.Context, c libvirtconn.AgentConn) error {
	_, err := a.recoverIndex(ctx, c, false)
	return err
}

// resync recovers the index after a (re)connection; after a lost
// connection (lost) it publishes an event for every VM whose state changed
// while libvirt was away, then EventLibvirtBack.
func (a *Agent) resync(ctx context.Context, c libvirtconn.AgentConn, lost bool) error {
	changes, err := a.recoverIndex(ctx, c, lost)
	for _, ev := range changes {
		a.hub.publish(ev)
	}
	if lost {
		a.hub.publish(agentapi.Event{Time: time.Now().UTC(), Host: a.cfg.HostID, Event: agentapi.EventLibvirtBack,
			Detail: fmt.Sprintf("connected to libvirt again; %d VMs, %d changed while it was away", len(a.index.list()), len(changes))})
	}
	return err
}

// recoverIndex is recover; with diff it returns the events of what changed
// since the index was last filled.
func (a *Agent) recoverIndex(ctx context.Context, c libvirtconn.AgentConn, diff bool) ([]agentapi.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ds, err := c.ListDomains(ctx)
	if err != nil {
		return nil, err
	}
	vms := map[string]*vmEntry{}
	foreign := map[string]bool{}
	var errs []error
	for _, d := range ds {
		e, err := a.readEntry(ctx, c, d)
		switch {
		case errors.Is(err, errNotOwned), errors.Is(err, errOtherHost):
			foreign[d.UUID] = true
		case errors.Is(err, libvirtconn.ErrNoDomain):
			// Removed while we listed.
		case err != nil:
			errs = append(errs, err)
		default:
			// A VM arriving here is followed until it arrived, one that
			// was not announced destroyed (incoming.go).
			if a.incomingDomain(ctx, c, e) {
				continue
			}
			vms[e.ID] = e
		}
	}
	states := map[string]libvirtconn.DomainState{}
	doms := make([]libvirtconn.Domain, 0, len(vms))
	byUUID := map[string]string{}
	for _, e := range vms {
		doms = append(doms, e.Domain)
		byUUID[e.Domain.UUID] = e.ID
	}
	if st, err := c.DomainStats(ctx, doms, libvirtconn.StatsOptions{StateOnly: true}); err == nil {
		for _, s := range st {
			if id, ok := byUUID[s.Domain.UUID]; ok {
				states[id] = s.State
			}
		}
	} else {
		errs = append(errs, err)
	}
	oldVMs, oldStates := a.index.replace(vms, foreign, states)
	a.log.Info("recovered VMs from libvirt", "owned", len(vms), "other", len(foreign))
	if !diff {
		return nil, errors.Join(errs...)
	}
	return a.changesSince(oldVMs, oldStates, vms, states), errors.Join(errs...)
}

// changesSince are the events of what changed between two fillings of the
// index: VMs gone, VMs found, VMs in another state.
func (a *Agent) changesSince(oldVMs map[string]*vmEntry, oldStates map[string]libvirtconn.DomainState,
	vms map[string]*vmEntry, states map[string]libvirtconn.DomainState) []agentapi.Event {
	const why = "found after reconnecting to libvirt"
	now := time.Now().UTC()
	var out []agentapi.Event
	for id, e := range oldVMs {
		if _, ok := vms[id]; !ok {
			out = append(out, agentapi.Event{Time: now, Host: a.cfg.HostID, VM: id, Name: e.Name, Event: "undefined", Detail: why, State: agentapi.StateUnknown})
			a.forgetRuntime(id)
		}
	}
	for id, e := range vms {
		st, known := states[id]
		if !known {
			continue
		}
		old, had := oldStates[id]
		if _, existed := oldVMs[id]; !existed {
			out = append(out, agentapi.Event{Time: now, Host: a.cfg.HostID, VM: id, Name: e.Name, Event: "defined", Detail: why, State: stateOf(st)})
			continue
		}
		if had && old == st {
			continue
		}
		ev := agentapi.Event{Time: now, Host: a.cfg.HostID, VM: id, Name: e.Name, Detail: why, State: stateOf(st)}
		switch st {
		case libvirtconn.StateRunning, libvirtconn.StateBlocked:
			ev.Event = "started"
			if old == libvirtconn.StatePaused {
				ev.Event = "resumed"
			}
		case libvirtconn.StatePaused:
			ev.Event = "suspended"
		case libvirtconn.StateShutoff:
			ev.Event = "stopped"
			a.forgetRuntime(id)
		case libvirtconn.StateCrashed:
			ev.Event = "crashed"
			a.forgetRuntime(id)
		default:
			continue
		}
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// errOtherHost says a domain belongs to another agent.
var errOtherHost = errors.New("owned by another host")

// readEntry reads one domain's owner element.
func (a *Agent) readEntry(ctx context.Context, c libvirtconn.AgentConn, d libvirtconn.Domain) (*vmEntry, error) {
	x, err := c.DomainXML(ctx, d, true)
	if err != nil {
		return nil, err
	}
	o, err := ownerOf(x)
	if err != nil {
		return nil, err
	}
	if o.Host != a.cfg.HostID {
		return nil, errOtherHost
	}
	// With a domain prefix, the domains of this agent bear it (a domain
	// that migrates here is renamed on the way): a domain of the same host
	// name under another prefix is another agent's on the same libvirtd
	// (two labs of polyvirt up, each with its power8-a).
	if a.cfg.DomainPrefix != "" && !strings.HasPrefix(d.Name, a.cfg.DomainPrefix) {
		return nil, errOtherHost
	}
	// The agent gives every domain a UUID derived from its VM's id: a
	// domain whose owner element names another VM is a copy of one (its
	// XML defined again by hand), not a VM of ours.
	if !strings.EqualFold(a.expectedUUID(o), d.UUID) {
		return nil, errNotOwned
	}
	name := o.Name
	if name == "" {
		name = strings.TrimPrefix(d.Name, a.cfg.DomainPrefix)
	}
	return &vmEntry{ID: o.VM, Name: name, Arch: o.Arch, Fake: o.FakeKVM, Domain: d, Definition: []byte(o.Definition)}, nil
}
