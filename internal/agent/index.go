package agent

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

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
}

func newVMIndex() *vmIndex {
	return &vmIndex{vms: map[string]*vmEntry{}, byDomain: map[string]*vmEntry{}, foreign: map[string]bool{}}
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

// replace sets the whole index at once (after a recovery).
func (x *vmIndex) replace(vms map[string]*vmEntry, foreign map[string]bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.vms, x.foreign = vms, foreign
	x.byDomain = make(map[string]*vmEntry, len(vms))
	for _, e := range vms {
		x.byDomain[e.Domain.UUID] = e
	}
}

// recover rebuilds the index from libvirt: every domain whose owner element
// names this host is ours, whatever its state; nothing is started, stopped,
// defined or removed.
func (a *Agent) recover(ctx context.Context, c libvirtconn.AgentConn) error {
	ds, err := c.ListDomains(ctx)
	if err != nil {
		return err
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
			vms[e.ID] = e
		}
	}
	a.index.replace(vms, foreign)
	a.log.Info("recovered VMs from libvirt", "owned", len(vms), "other", len(foreign))
	return errors.Join(errs...)
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
	// The agent gives every domain a UUID derived from its VM's id: a
	// domain whose owner element names another VM is a copy of one (its
	// XML defined again by hand), not a VM of ours.
	if !strings.EqualFold(a.domainUUID(o.VM), d.UUID) {
		return nil, errNotOwned
	}
	name := o.Name
	if name == "" {
		name = strings.TrimPrefix(d.Name, a.cfg.DomainPrefix)
	}
	return &vmEntry{ID: o.VM, Name: name, Arch: o.Arch, Fake: o.FakeKVM, Domain: d, Definition: []byte(o.Definition)}, nil
}
