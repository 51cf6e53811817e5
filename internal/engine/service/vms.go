package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/engine/scheduler"
	"polyvirt/internal/migpolicy"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// VMConfig tunes the VMs' scheduling, state synchronization and HA
// restarts. Zero fields take the defaults.
type VMConfig struct {
	// Policy is the scheduling policy (zero: scheduler.DefaultPolicy:
	// memory not overcommitted, 256 MiB kept per host, 4 vCPUs per online
	// CPU).
	Policy scheduler.Policy
	// HADelay is how long a host stays NonResponsive before the engine
	// restarts its highly available VMs on other hosts (default 30s;
	// 0 is taken as the default, a negative value restarts at once).
	HADelay time.Duration
	// HAInterval is how often the monitoring leader looks for HA VMs to
	// restart (default 5s).
	HAInterval time.Duration
	// Resync is how often the leader reads each host's VM list again, to
	// catch what its event stream missed (default 10m, as OpenStack Nova's
	// power-state sync: the stream is read again from a full list on every
	// reconnection, and the agents subscribe to libvirt before they read
	// theirs, so this is a safety net; at ten thousand hosts every minute
	// was 167 requests a second and kept an idle connection open to each).
	Resync time.Duration
	// AdoptAfter is how long a migration in flight may go without news
	// before the monitoring leader follows it itself (its engine stopped;
	// default 10s: the engine that follows one writes its progress every
	// 3 s).
	AdoptAfter time.Duration
}

func (c VMConfig) withDefaults() VMConfig {
	if c.Policy == (scheduler.Policy{}) {
		c.Policy = scheduler.DefaultPolicy()
	}
	switch {
	case c.HADelay == 0:
		c.HADelay = 30 * time.Second
	case c.HADelay < 0:
		c.HADelay = 0
	}
	if c.HAInterval <= 0 {
		c.HAInterval = 5 * time.Second
	}
	if c.Resync <= 0 {
		c.Resync = 10 * time.Minute
	}
	if c.AdoptAfter <= 0 {
		c.AdoptAfter = 10 * time.Second
	}
	return c
}

// MarkerKey is the metadata key the engine adds to the definitions it
// sends to agents (not stored): its marker (Marker), so that a VM it
// deleted while its host was unreachable is recognized as its own when the
// host comes back.
const MarkerKey = "polyvirt.engine"

// Marker is this engine's marker value (the start of its CA's
// fingerprint): every engine of one installation has the same.
func (s *VMs) Marker() string { return s.e.vms.marker() }

// vmService is the engine's VM part: API handlers, scheduling, the calls
// to agents, and the caches they share.
type vmService struct {
	e      *engine
	cfg    VMConfig
	agents Agents

	clusterLocks sync.Map // cluster ID → *sync.Mutex: one scheduling decision at a time per cluster
	capacity     sync.Map // host ID → hostCapacity
	// sizes caches the VMs' sizes per version, for scheduling.
	sizes sync.Map // VM ID → sizeEntry
	// haFailed remembers when each VM's failed HA restart was last
	// reported (once a minute).
	haFailed sync.Map // VM ID → time.Time
	// powerdowns are the shutdowns with a time-out this engine asked for:
	// until then (and a grace), a VM PoweringDown that its host reports
	// running stays PoweringDown (its agent powers it off at the end).
	powerdowns sync.Map // VM ID → time.Time
	// starting are the VMs whose start is in flight in this engine: the
	// monitoring leaves the recording of their outcome to the start.
	starting sync.Map // VM ID → struct{}

	// migs are the migrations this engine follows (migrate.go) and the
	// hosts it evacuates (evacuate.go).
	migs migrations

	// streams ends the long-lived API streams (consoles) and the
	// migrations' followers when the engine stops serving.
	streams     context.Context
	stopStreams context.CancelFunc
}

func newVMService(e *engine, cfg VMConfig) *vmService {
	ctx, cancel := context.WithCancel(context.Background())
	return &vmService{e: e, cfg: cfg.withDefaults(), agents: e.agents, streams: ctx, stopStreams: cancel}
}

func (s *vmService) close() {
	s.stopStreams()
}

func (s *vmService) clusterLock(id string) *sync.Mutex {
	v, _ := s.clusterLocks.LoadOrStore(id, &sync.Mutex{})
	return v.(*sync.Mutex)
}

// marker is the engine's marker value.
func (s *vmService) marker() string {
	fp := s.e.caFP
	if len(fp) > 16 {
		fp = fp[:16]
	}
	return fp
}

// names maps cluster and host IDs to names, for the answers.
type names struct{ clusters, hosts map[string]string }

func (e *engine) objectNames(ctx context.Context) (names, error) {
	cs, err := e.clusterNames(ctx)
	if err != nil {
		return names{}, err
	}
	hs, err := e.st.ListHosts(ctx, store.HostFilter{})
	if err != nil {
		return names{}, err
	}
	n := names{clusters: cs, hosts: make(map[string]string, len(hs))}
	for _, h := range hs {
		n.hosts[h.ID] = h.Name
	}
	return n, nil
}

func vmView(v store.VM, n names) engineapi.VM {
	out := engineapi.VM{ID: v.ID, Name: v.Name, ClusterID: v.ClusterID, Cluster: n.clusters[v.ClusterID], State: string(v.State),
		HostID: v.HostID, Host: n.hosts[v.HostID], PinnedHostID: v.PinnedHostID, PinnedHost: n.hosts[v.PinnedHostID],
		LastHostID: v.LastHostID, LastHost: n.hosts[v.LastHostID], HA: v.HA, Definition: v.Definition,
		MigrationPolicy: v.MigrationPolicy, MigratingToID: v.MigratingToHostID, MigratingTo: n.hosts[v.MigratingToHostID],
		StateChanged: v.StateChanged, Version: v.Version, Created: v.Created, Updated: v.Updated}
	if m, ok := migrationDoc(v); ok {
		out.Migration = &m
	}
	if sz, err := sizesOf(v.Definition); err == nil {
		out.Arch, out.MemoryMiB, out.VCPUs, out.CPUModel, out.Machine = sz.Arch, sz.MemoryMiB, sz.VCPUs, sz.CPUModel, sz.Machine
	}
	if len(out.Definition) == 0 {
		out.Definition = json.RawMessage("{}")
	}
	return out
}

// vmOut is the answer about a VM.
func (e *engine) vmOut(ctx context.Context, v store.VM) (engineapi.VM, error) {
	n, err := e.objectNames(ctx)
	if err != nil {
		return engineapi.VM{}, coded(err)
	}
	return vmView(v, n), nil
}

// findVM finds a VM by name or ID.
func (e *engine) findVM(ctx context.Context, ref string) (store.VM, error) {
	if strings.TrimSpace(ref) == "" {
		return store.VM{}, invalidField("vm", "no VM named")
	}
	v, err := e.st.GetVMByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if v2, err2 := e.st.GetVM(ctx, ref); err2 == nil {
			return v2, nil
		}
		return v, &api.Error{Code: api.CodeNotFound, Field: "vm",
			Message: fmt.Sprintf("VM %q does not exist (polyvirt vm list)", ref)}
	}
	return v, err
}

// VMs are the engine's VMs: their definitions checked against their
// cluster, their lifecycle through the agents of the hosts the scheduler
// chooses, their screens and consoles.
type VMs struct{ e *engine }

// VMActions are the lifecycle actions of Act.
var VMActions = []string{"start", "shutdown", "destroy", "reboot", "pause", "resume"}

// VMQuery selects VMs: those of a cluster, of a host (name or ID), in some
// states (engineapi.VM's states: Up, Down, ...). Zero fields select all.
type VMQuery struct {
	Cluster, Host string
	States        []string
}

// List lists the VMs a query selects.
func (s *VMs) List(ctx context.Context, q VMQuery) ([]engineapi.VM, error) {
	e := s.e
	var f store.VMFilter
	if q.Cluster != "" {
		c, err := e.findCluster(ctx, q.Cluster)
		if err != nil {
			return nil, coded(err)
		}
		f.ClusterID = c.ID
	}
	if q.Host != "" {
		h, err := e.findHost(ctx, q.Host)
		if err != nil {
			return nil, coded(err)
		}
		f.HostID = h.ID
	}
	for _, x := range q.States {
		st := store.VMState(strings.TrimSpace(x))
		if !st.Valid() {
			return nil, invalidField("state", "unknown VM state %q (known: %v)", x, store.VMStates())
		}
		f.States = append(f.States, st)
	}
	vms, err := e.st.ListVMs(ctx, f)
	if err != nil {
		return nil, coded(err)
	}
	n, err := e.objectNames(ctx)
	if err != nil {
		return nil, coded(err)
	}
	out := make([]engineapi.VM, 0, len(vms))
	for _, v := range vms {
		out = append(out, vmView(v, n))
	}
	return out, nil
}

// Get shows a VM (name or ID), with its migration in flight as this
// engine follows it now.
func (s *VMs) Get(ctx context.Context, ref string) (engineapi.VM, error) {
	v, err := s.e.findVM(ctx, ref)
	if err != nil {
		return engineapi.VM{}, coded(err)
	}
	out, err := s.e.vmOut(ctx, v)
	if err == nil && v.State == store.VMMigratingFrom {
		if f := s.e.vms.flightOf(v.ID); f != nil {
			m := f.snapshot()
			out.Migration = &m
		}
	}
	return out, err
}

// pinnedHost checks a pin: the host exists and is in the cluster.
func (e *engine) pinnedHost(ctx context.Context, ref string, c store.Cluster) (store.Host, error) {
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return h, err
	}
	if h.ClusterID != c.ID {
		return h, &api.Error{Code: api.CodePinnedHostCluster, Field: "host",
			Message: fmt.Sprintf("Cannot pin the VM to host %s: the host is not in the VM's cluster %s.", h.Name, c.Name)}
	}
	return h, nil
}

// hostFacts are what completing a definition needs of a cluster's hosts:
// their architectures and machines, and the path policies they report
// (read from their capabilities reports, cached per report).
func (s *vmService) hostFacts(ctx context.Context, hosts []store.Host) clusterHostFacts {
	f := hostFactsOf(hosts)
	for _, h := range hosts {
		if p := s.capacityOf(ctx, h).paths; p != nil {
			f.Paths = append(f.Paths, *p)
		}
	}
	return f
}

// vmID is the VM id a definition asks for (its uuid, canonical) or a new
// one.
func vmID(def *vmspec.VM) (string, error) {
	if def.UUID == "" {
		return uuid.NewString(), nil
	}
	u, err := uuid.Parse(def.UUID)
	if err != nil {
		return "", &api.Error{Code: api.CodeUUIDInvalid, Field: "definition.uuid",
			Message: fmt.Sprintf("uuid %q: want 8-4-4-4-12 hex digits, or leave it out", def.UUID)}
	}
	return u.String(), nil
}

// Create creates a VM in a cluster: its definition is decoded strictly,
// completed for the cluster (its id, architecture, CPU model, machine) and
// checked against the cluster's rules and its hosts' path policies, every
// violation at once; the VM is Down.
func (s *VMs) Create(ctx context.Context, req engineapi.VMRequest) (engineapi.VM, error) {
	vm, err := s.e.createVM(ctx, req)
	if err != nil {
		return engineapi.VM{}, coded(err)
	}
	return s.e.vmOut(ctx, vm)
}

func (e *engine) createVM(ctx context.Context, req engineapi.VMRequest) (store.VM, error) {
	t0 := time.Now()
	def, err := decodeDefinition(req.Definition)
	if err != nil {
		return store.VM{}, err
	}
	if req.Cluster == "" {
		return store.VM{}, invalidField("cluster", "no cluster: a VM belongs to a cluster (polyvirt cluster list)")
	}
	c, err := e.findCluster(ctx, req.Cluster)
	if err != nil {
		return store.VM{}, err
	}
	v := store.VM{ClusterID: c.ID, State: store.VMDown, HA: req.HA, MigrationPolicy: req.MigrationPolicy}
	if !migpolicy.Valid(req.MigrationPolicy) {
		return store.VM{}, invalidField("migrationPolicy", "migration policy %q: want one of %s (or none given: the cluster's)",
			req.MigrationPolicy, strings.Join(migpolicy.Names(), ", "))
	}
	if req.Host != "" {
		h, err := e.pinnedHost(ctx, req.Host, c)
		if err != nil {
			return store.VM{}, err
		}
		v.PinnedHostID = h.ID
	}
	if v.ID, err = vmID(def); err != nil {
		return store.VM{}, err
	}
	if _, err := e.st.GetVM(ctx, v.ID); err == nil {
		return store.VM{}, &api.Error{Code: api.CodeVMUUIDInUse, Field: "definition.uuid",
			Message: fmt.Sprintf("another VM has the uuid %s; leave uuid out to get a new one", v.ID)}
	}
	// Its storage: an image's or a template's disks, a cloud-init seed,
	// every volume disk resolved in its pool (storage_vms.go).
	def, plan, err := e.planVMStorage(ctx, &req, def, c, v.ID)
	if err != nil {
		return store.VM{}, err
	}
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID})
	if err != nil {
		return store.VM{}, err
	}
	full, err := completeDefinition(def, v.ID, c, e.vms.hostFacts(ctx, hosts))
	if err != nil {
		return store.VM{}, err
	}
	// A host-path disk is an administrator's exception (within the
	// directories the hosts allow, which completeDefinition checked).
	if err := checkHostPathDisks(ctx, full, nil); err != nil {
		return store.VM{}, err
	}
	v.Name = full.Name
	if err := store.ValidName(v.Name); err != nil {
		return store.VM{}, invalidField("definition.name", "%v", err)
	}
	if v.Definition, err = json.Marshal(full); err != nil {
		return store.VM{}, err
	}
	if _, err := e.st.GetVMByName(ctx, v.Name); err == nil {
		return store.VM{}, fail(api.CodeAlreadyExists, "a VM named %s exists already", v.Name)
	}
	// The new volumes are made once the definition passed.
	tFiles := time.Now()
	if err := e.stor.makeFiles(ctx, plan); err != nil {
		return store.VM{}, err
	}
	filesTook := time.Since(tFiles)
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateVM(ctx, &v); err != nil {
			return err
		}
		if err := recordPlan(ctx, tx, plan, v.ID); err != nil {
			return err
		}
		reason := fmt.Sprintf("cluster %s, %s, %d MiB, %d vCPUs", c.Name, full.Arch, full.Memory.SizeMiB, full.CPU.VCPUs())
		if v.HA {
			reason += ", highly available"
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "vm.add", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
			Message: fmt.Sprintf("VM %s was created by %s.", v.Name, userName(ctx)), Reason: reason})
	})
	if err != nil {
		e.stor.removePlanned(context.WithoutCancel(ctx), plan)
		return store.VM{}, err
	}
	e.log.Info("VM created", "vm", v.Name, "took", time.Since(t0), "volumes", len(plan.files), "volumesTook", filesTook)
	return v, nil
}

// isDown tells whether a VM runs nowhere.
func isDown(v store.VM) bool { return v.State == store.VMDown && v.HostID == "" }

func vmStatusError(v store.VM, what, hint string) *api.Error {
	msg := fmt.Sprintf("Cannot %s VM %s: it is %s", what, v.Name, v.State)
	if hint != "" {
		msg += "; " + hint
	}
	return &api.Error{Code: api.CodeVMStatusIllegal, Message: msg + "."}
}

// mutateVM reads a VM in a transaction, lets fn change it (and add
// events), and writes it when fn says so; it starts again when the VM
// changed meanwhile (state updates come from the agents' events too).
func (e *engine) mutateVM(ctx context.Context, id string, fn func(tx store.Tx, v *store.VM) (write bool, err error)) (store.VM, error) {
	for attempt := 0; ; attempt++ {
		var out store.VM
		err := e.st.InTx(ctx, func(tx store.Tx) error {
			v, err := tx.GetVM(ctx, id)
			if err != nil {
				return err
			}
			write, err := fn(tx, &v)
			if err != nil {
				return err
			}
			if write {
				if err := tx.UpdateVM(ctx, &v); err != nil {
					return err
				}
			}
			out = v
			return nil
		})
		if isStale(err) && attempt < 8 {
			time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
			continue
		}
		return out, err
	}
}

// Update changes a VM: its definition and its cluster while it is Down
// (checked as at Create; it moves only to a cluster of its architecture),
// its pinned host and HA any time.
func (s *VMs) Update(ctx context.Context, ref string, upd engineapi.VMUpdate) (engineapi.VM, error) {
	vm, err := s.e.updateVM(ctx, ref, upd)
	if err != nil {
		return engineapi.VM{}, coded(err)
	}
	return s.e.vmOut(ctx, vm)
}

func (e *engine) updateVM(ctx context.Context, ref string, upd engineapi.VMUpdate) (store.VM, error) {
	cur, err := e.findVM(ctx, ref)
	if err != nil {
		return store.VM{}, err
	}
	var def *vmspec.VM
	if len(upd.Definition) > 0 {
		if def, err = decodeDefinition(upd.Definition); err != nil {
			return store.VM{}, err
		}
	}
	target, err := e.st.GetCluster(ctx, cur.ClusterID)
	if err != nil {
		return store.VM{}, err
	}
	moving := false
	if upd.Cluster != nil {
		c, err := e.findCluster(ctx, *upd.Cluster)
		if err != nil {
			return store.VM{}, err
		}
		moving = c.ID != cur.ClusterID
		target = c
	}
	var pin *store.Host
	if upd.Host != nil && *upd.Host != "" {
		h, err := e.pinnedHost(ctx, *upd.Host, target)
		if err != nil {
			return store.VM{}, err
		}
		pin = &h
	}
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: target.ID})
	if err != nil {
		return store.VM{}, err
	}
	facts := e.vms.hostFacts(ctx, hosts)
	v, err := e.mutateVM(ctx, cur.ID, func(tx store.Tx, v *store.VM) (bool, error) {
		if upd.Version != nil && *upd.Version != v.Version {
			return false, &api.Error{Code: api.CodeVersionConflict, Field: "version",
				Message: fmt.Sprintf("VM %s is at version %d, not %d: read it again", v.Name, v.Version, *upd.Version)}
		}
		oldName := v.Name
		var changes []string
		if def != nil || moving {
			if !isDown(*v) {
				what := "change the definition of"
				if moving {
					what = "move"
				}
				return false, vmStatusError(*v, what, "stop it first")
			}
			base := def
			if base == nil {
				var err error
				if base, err = vmspec.Decode(v.Definition); err != nil {
					return false, fmt.Errorf("VM %s: the stored definition: %v", v.Name, err)
				}
			}
			if moving {
				if err := checkVMMoveArch(*v, base, target); err != nil {
					return false, err
				}
				// The CPU model and machine came from the old cluster: the
				// new one's defaults apply unless the new definition names
				// them.
				if def == nil {
					base.Machine = ""
					if base.CPU != nil {
						base.CPU.Model, base.CPU.Mode = "", ""
					}
				}
			}
			volumeIDs, err := e.resolveDisks(ctx, base, target, &vmPlan{})
			if err != nil {
				return false, err
			}
			full, err := completeDefinition(base, v.ID, target, facts)
			if err != nil {
				return false, err
			}
			if err := checkHostPathDisks(ctx, full, hostPathDisks(v.Definition)); err != nil {
				return false, err
			}
			if err := tx.SetVMVolumes(ctx, v.ID, volumeIDs); err != nil {
				return false, err
			}
			if err := store.ValidName(full.Name); err != nil {
				return false, invalidField("definition.name", "%v", err)
			}
			b, err := json.Marshal(full)
			if err != nil {
				return false, err
			}
			if string(b) != string(v.Definition) {
				changes = append(changes, "definition")
			}
			if full.Name != v.Name {
				changes = append(changes, fmt.Sprintf("name %s → %s", v.Name, full.Name))
				v.Name = full.Name
			}
			v.Definition = b
			if moving {
				changes = append(changes, "cluster → "+target.Name)
				v.ClusterID = target.ID
				if pin == nil && v.PinnedHostID != "" {
					changes = append(changes, "unpinned")
					v.PinnedHostID = ""
				}
			}
		}
		if upd.Host != nil {
			id := ""
			if pin != nil {
				id = pin.ID
			}
			if id != v.PinnedHostID {
				if pin != nil {
					changes = append(changes, "pinned to "+pin.Name)
				} else {
					changes = append(changes, "unpinned")
				}
				v.PinnedHostID = id
			}
		}
		if upd.HA != nil && *upd.HA != v.HA {
			changes = append(changes, "highly available "+strconv.FormatBool(*upd.HA))
			v.HA = *upd.HA
		}
		if upd.MigrationPolicy != nil && *upd.MigrationPolicy != v.MigrationPolicy {
			if !migpolicy.Valid(*upd.MigrationPolicy) {
				return false, invalidField("migrationPolicy", "migration policy %q: want one of %s (or \"\": the cluster's)",
					*upd.MigrationPolicy, strings.Join(migpolicy.Names(), ", "))
			}
			changes = append(changes, fmt.Sprintf("migration policy %s → %s", orNone(v.MigrationPolicy), orNone(*upd.MigrationPolicy)))
			v.MigrationPolicy = *upd.MigrationPolicy
		}
		if len(changes) == 0 {
			return false, nil
		}
		return true, e.appendEvent(ctx, tx, store.Event{Action: "vm.update", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
			Message: fmt.Sprintf("VM %s configuration was updated by %s.", oldName, userName(ctx)), Reason: strings.Join(changes, "; ")})
	})
	return v, err
}

// checkVMMoveArch refuses to move a VM to a cluster of another
// architecture (ACTION_TYPE_FAILED_VM_CLUSTER_DIFFERENT_ARCHITECTURES).
func checkVMMoveArch(v store.VM, def *vmspec.VM, target store.Cluster) error {
	if target.Arch == arch.Unknown {
		return &api.Error{Code: api.CodeClusterNoArch, Field: "cluster",
			Message: fmt.Sprintf("Cannot move VM %s to cluster %s: the cluster has no architecture yet.", v.Name, target.Name)}
	}
	if archspec.ClusterRunsNatively(target.Arch, def.Arch) {
		return nil
	}
	return &api.Error{Code: api.CodeVMClusterArch, Field: "cluster",
		Message: fmt.Sprintf("Cannot move VM %s to cluster %s: the VM has architecture %s and the cluster has architecture %s.",
			v.Name, target.Name, def.Arch, target.Arch)}
}

// Delete removes a VM that is Down; with force, a running one is destroyed
// on its host first. Its definition on the host it last ran on goes too.
func (s *VMs) Delete(ctx context.Context, ref string, force bool) error {
	return coded(s.e.deleteVM(ctx, ref, force))
}

func (e *engine) deleteVM(ctx context.Context, ref string, force bool) error {
	v, err := e.findVM(ctx, ref)
	if err != nil {
		return err
	}
	if !isDown(v) {
		if !force {
			return vmStatusError(v, "remove", "stop it first, or remove it with force (polyvirt vm delete --force)")
		}
		if v.HostID != "" {
			h, err := e.st.GetHost(ctx, v.HostID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				if err := e.agents.DeleteVM(ctx, h, v.ID, true); err != nil {
					if ae := asAgentError(err); ae == nil || !ae.NotFound() {
						return agentAPIError(err)
					}
				}
			}
		}
	}
	owned, err := e.st.ListVolumes(ctx, store.VolumeFilter{OwnerVMID: v.ID})
	if err != nil {
		return err
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		cur, err := tx.GetVM(ctx, v.ID)
		if err != nil {
			return err
		}
		if !isDown(cur) && !force {
			return vmStatusError(cur, "remove", "stop it first, or remove it with force")
		}
		if err := tx.DeleteVM(ctx, v.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "vm.remove", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
			Message: fmt.Sprintf("VM %s was removed by %s.", v.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	e.vms.sizes.Delete(v.ID)
	// Its definition on the host it last ran on goes too (best effort: an
	// unreachable host is cleaned when it comes back, by the engine marker).
	if last := firstNonEmpty(v.HostID, v.LastHostID); last != "" {
		if h, err := e.st.GetHost(ctx, last); err == nil {
			if len(owned) > 0 {
				// Its volumes go next: its domain must not hold them.
				e.vms.forget(h, v.ID, v.Name)
			} else {
				go e.vms.forget(h, v.ID, v.Name)
			}
		}
	}
	e.deleteOwnedVolumes(ctx, v.Name, owned)
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// forget removes a VM's definition from a host it no longer runs on (best
// effort, in the background).
func (s *vmService) forget(h store.Host, id, name string) {
	ctx, cancel := context.WithTimeout(s.streams, opsTimeout)
	defer cancel()
	if err := s.agents.DeleteVM(ctx, h, id, false); err != nil {
		if ae := asAgentError(err); ae != nil && ae.NotFound() {
			return
		}
		s.e.log.Info("could not remove a VM's definition from a host it no longer runs on (done when the host answers again)",
			"vm", name, "host", h.Name, "err", err)
	}
}
