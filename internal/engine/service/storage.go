package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// The engine's storage (issue 17): pools per cluster, checked on every host
// by the monitoring (a marker file names the pool: a host that lacks it is
// marked with the reason, and VMs using the pool are not scheduled there),
// volumes made, uploaded, cloned, resized and deleted through the agent of
// a host that has the pool, the image library, templates, cloud-init seeds
// and VM snapshots. The database says what exists; the hosts' files are
// changed only through their agents (package storage on their side).
//
// A pool's kind (store.PoolShared: every host of the cluster sees the same
// directory; store.PoolLocal: one host's) is what tells whether a VM's
// disks are reachable from another host (Storage.SharedDisks).

// StorageAgents calls the hosts' storage API (/v1/storage/...) and the
// snapshots of running VMs; the engine's mutual-TLS client implements it.
// Failures are *AgentError, like Agents'.
type StorageAgents interface {
	// Storage posts a JSON request to /v1/storage/OP; out, when not nil,
	// receives the JSON answer.
	Storage(ctx context.Context, h store.Host, op string, in, out any) error
	// UploadData streams an upload's data, from offset; length is the
	// number of bytes (-1: unknown).
	UploadData(ctx context.Context, h store.Host, p agentapi.Pool, name string, offset, length int64, data io.Reader) (agentapi.UploadStatus, error)
	// CreateSnapshot, RevertSnapshot and DeleteSnapshot act on a running
	// VM's snapshots.
	CreateSnapshot(ctx context.Context, h store.Host, vmID string, req agentapi.SnapshotRequest) error
	RevertSnapshot(ctx context.Context, h store.Host, vmID, name string) error
	DeleteSnapshot(ctx context.Context, h store.Host, vmID, name string) error
}

// Storage is the engine's storage: pools, volumes and their uploads, the
// image library, templates, and VMs' snapshots.
type Storage struct{ e *engine }

// storageService is what the storage keeps: the agents' storage client and
// when each host's pools were last checked.
type storageService struct {
	e      *engine
	agents StorageAgents

	// gen changes when pools are created or deleted: every host's pools
	// are checked again at its next monitoring round.
	gen     atomic.Int64
	mu      sync.Mutex
	checked map[string]hostCheck
	// pools are the clusters' pools as last read for the checks (read
	// again after poolListTTL or a change here): ten thousand hosts
	// checked every poolCheckInterval would otherwise read their
	// cluster's pools over three hundred times a second.
	pools map[string]*clusterPools
	// checking counts the hosts' pool checks under way (checkHostPools).
	checking int
}

// maxPoolChecks bounds the hosts' pool checks under way at once: when
// thousands of hosts come Up together (a fleet enrolling, an engine taking
// the lead), the others wait for their next round instead of a goroutine
// each waiting for the database.
const maxPoolChecks = 64

// poolListTTL is how long the checks use a cluster's pools as read; a
// pool another engine created is checked on the hosts this much later.
const poolListTTL = 5 * time.Second

type clusterPools struct {
	at    time.Time
	gen   int64
	pools []store.Pool
	// loading is closed when the read under way ends (nil when none is).
	loading chan struct{}
}

// fresh tells whether c (nil: never read) holds a read that ended, of the
// pools' generation gen, within poolListTTL. The caller holds the
// storage's mutex.
func (c *clusterPools) fresh(gen int64) bool {
	return c != nil && c.loading == nil && c.gen == gen && time.Since(c.at) < poolListTTL
}

// clusterPools returns a cluster's pools for the hosts' checks. One read
// at a time per cluster: the checks that come meanwhile wait for it (ten
// thousand hosts' checks would otherwise all read the pools whenever the
// list expires).
func (s *storageService) clusterPools(ctx context.Context, clusterID string) ([]store.Pool, error) {
	for {
		gen := s.gen.Load()
		s.mu.Lock()
		if s.pools == nil {
			s.pools = map[string]*clusterPools{}
		}
		c := s.pools[clusterID]
		if c != nil && c.loading != nil {
			wait := c.loading
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if c.fresh(gen) {
			pools := c.pools
			s.mu.Unlock()
			return pools, nil
		}
		c = &clusterPools{at: time.Now(), gen: gen, loading: make(chan struct{})}
		s.pools[clusterID] = c
		s.mu.Unlock()
		pools, err := s.e.st.ListPools(ctx, clusterID)
		s.mu.Lock()
		c.pools = pools
		close(c.loading)
		c.loading = nil
		if err != nil && s.pools[clusterID] == c {
			// The next check reads them again.
			delete(s.pools, clusterID)
		}
		s.mu.Unlock()
		return pools, err
	}
}

type hostCheck struct {
	at  time.Time
	gen int64
}

func newStorageService(e *engine, agents StorageAgents) *storageService {
	if agents == nil {
		agents = noStorageAgents{}
	}
	return &storageService{e: e, agents: agents, checked: map[string]hostCheck{}}
}

// noStorageAgents answers that no agent has a storage API (services made
// without StorageAgents: tests of other domains).
type noStorageAgents struct{}

func (noStorageAgents) err(h store.Host) error {
	return &AgentError{Host: h.Name, Status: 404, Code: api.CodeNotFound, Msg: "this engine reaches no storage API"}
}
func (n noStorageAgents) Storage(_ context.Context, h store.Host, _ string, _, _ any) error {
	return n.err(h)
}
func (n noStorageAgents) UploadData(_ context.Context, h store.Host, _ agentapi.Pool, _ string, _, _ int64, _ io.Reader) (agentapi.UploadStatus, error) {
	return agentapi.UploadStatus{}, n.err(h)
}
func (n noStorageAgents) CreateSnapshot(_ context.Context, h store.Host, _ string, _ agentapi.SnapshotRequest) error {
	return n.err(h)
}
func (n noStorageAgents) RevertSnapshot(_ context.Context, h store.Host, _, _ string) error {
	return n.err(h)
}
func (n noStorageAgents) DeleteSnapshot(_ context.Context, h store.Host, _, _ string) error {
	return n.err(h)
}

// call posts a storage request to a host's agent.
func (s *storageService) call(ctx context.Context, h store.Host, op string, in, out any) error {
	return s.agents.Storage(ctx, h, op, in, out)
}

// agentPool is how an agent is told of a pool.
func agentPool(p store.Pool) agentapi.Pool {
	return agentapi.Pool{ID: p.ID, Name: p.Name, Path: p.Path, Kind: string(p.Kind)}
}

// hostsFor lists the hosts that can act on a pool, best first: a local
// pool's host; the Up hosts of a shared pool's cluster that have it (then
// those not checked yet).
func (s *storageService) hostsFor(ctx context.Context, p store.Pool) ([]store.Host, error) {
	if p.Kind == store.PoolLocal {
		h, err := s.e.st.GetHost(ctx, p.HostID)
		if err != nil {
			return nil, err
		}
		if h.Status != store.HostUp {
			return nil, fail(api.CodePoolNotAvailable, "pool %s is local to host %s, which is %s; its volumes are reached through that host only", p.Name, h.Name, h.Status)
		}
		return []store.Host{h}, nil
	}
	hosts, err := s.e.st.ListHosts(ctx, store.HostFilter{ClusterID: p.ClusterID, Brief: true})
	if err != nil {
		return nil, err
	}
	hps, err := s.e.st.ListHostPools(ctx, "", p.ID)
	if err != nil {
		return nil, err
	}
	status := map[string]store.HostPool{}
	for _, hp := range hps {
		status[hp.HostID] = hp
	}
	var good, unknown []store.Host
	var reasons []string
	for _, h := range hosts {
		if h.Status != store.HostUp {
			continue
		}
		st, seen := status[h.ID]
		switch {
		case !seen:
			unknown = append(unknown, h)
		case st.OK:
			good = append(good, h)
		default:
			reasons = append(reasons, fmt.Sprintf("%s: %s", h.Name, st.Message))
		}
	}
	out := append(good, unknown...)
	if len(out) == 0 {
		msg := fmt.Sprintf("no Up host of the cluster has pool %s", p.Name)
		if len(reasons) > 0 {
			msg += " (" + strings.Join(reasons, "; ") + ")"
		}
		return nil, fail(api.CodePoolNotAvailable, "%s", msg)
	}
	return out, nil
}

// onPool runs fn on the first host that can act on a pool and answers;
// a host that does not answer passes the turn to the next.
func (s *storageService) onPool(ctx context.Context, p store.Pool, fn func(h store.Host) error) error {
	return s.onPools(ctx, []store.Pool{p}, fn)
}

// onPools runs fn on a host that has every pool given (a clone from one
// pool into another).
func (s *storageService) onPools(ctx context.Context, ps []store.Pool, fn func(h store.Host) error) error {
	var common []store.Host
	for i, p := range ps {
		hosts, err := s.hostsFor(ctx, p)
		if err != nil {
			return err
		}
		if i == 0 {
			common = hosts
			continue
		}
		common = slices.DeleteFunc(common, func(h store.Host) bool {
			return !slices.ContainsFunc(hosts, func(x store.Host) bool { return x.ID == h.ID })
		})
	}
	if len(common) == 0 {
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = p.Name
		}
		return fail(api.CodePoolNotAvailable, "no Up host has all of pools %s", strings.Join(names, ", "))
	}
	var last error
	for _, h := range common {
		err := fn(h)
		if ae := asAgentError(err); ae != nil && ae.Status == 0 {
			last = err
			continue
		}
		return err
	}
	return last
}

// agentCode is the code of an agent's refusal ("" for another error).
func agentCode(err error) string {
	if ae := asAgentError(err); ae != nil {
		return ae.Code
	}
	return ""
}

// ----- pools

func (e *engine) findPool(ctx context.Context, ref string) (store.Pool, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Pool{}, invalidField("pool", "no pool named")
	}
	p, err := e.st.GetPoolByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if p2, err2 := e.st.GetPool(ctx, ref); err2 == nil {
			return p2, nil
		}
		return p, api.FieldError(api.CodeNotFound, "pool", "pool %q does not exist (polyvirt pool list)", ref)
	}
	return p, err
}

func (s *storageService) poolView(ctx context.Context, p store.Pool, n names) (engineapi.Pool, error) {
	out := engineapi.Pool{ID: p.ID, Name: p.Name, ClusterID: p.ClusterID, Cluster: n.clusters[p.ClusterID], Kind: string(p.Kind),
		HostID: p.HostID, Host: n.hosts[p.HostID], Path: p.Path, Description: p.Description, Version: p.Version,
		Created: p.Created, Updated: p.Updated, Hosts: []engineapi.HostPool{}}
	hps, err := s.e.st.ListHostPools(ctx, "", p.ID)
	if err != nil {
		return out, err
	}
	for _, hp := range hps {
		out.Hosts = append(out.Hosts, hostPoolView(hp, p.Name, n))
		if hp.OK && hp.CapacityBytes > 0 {
			out.CapacityBytes, out.FreeBytes = hp.CapacityBytes, hp.FreeBytes
		}
	}
	sort.Slice(out.Hosts, func(i, j int) bool { return out.Hosts[i].Host < out.Hosts[j].Host })
	vols, err := s.e.st.ListVolumes(ctx, store.VolumeFilter{PoolID: p.ID})
	if err != nil {
		return out, err
	}
	out.Volumes = len(vols)
	return out, nil
}

func hostPoolView(hp store.HostPool, pool string, n names) engineapi.HostPool {
	return engineapi.HostPool{Pool: pool, HostID: hp.HostID, Host: n.hosts[hp.HostID], OK: hp.OK, Code: hp.Code, Message: hp.Message,
		CapacityBytes: hp.CapacityBytes, FreeBytes: hp.FreeBytes, Checked: hp.Checked}
}

// poolOut is the answer about a pool.
func (e *engine) poolOut(ctx context.Context, p store.Pool) (engineapi.Pool, error) {
	n, err := e.objectNames(ctx)
	if err != nil {
		return engineapi.Pool{}, coded(err)
	}
	v, err := e.stor.poolView(ctx, p, n)
	return v, coded(err)
}

// ListPools lists the storage pools, of one cluster (name or ID) when
// cluster is not empty.
func (s *Storage) ListPools(ctx context.Context, cluster string) ([]engineapi.Pool, error) {
	e := s.e
	clusterID := ""
	if cluster != "" {
		c, err := e.findCluster(ctx, cluster)
		if err != nil {
			return nil, coded(err)
		}
		clusterID = c.ID
	}
	ps, err := e.st.ListPools(ctx, clusterID)
	if err != nil {
		return nil, coded(err)
	}
	n, err := e.objectNames(ctx)
	if err != nil {
		return nil, coded(err)
	}
	out := make([]engineapi.Pool, 0, len(ps))
	for _, p := range ps {
		v, err := e.stor.poolView(ctx, p, n)
		if err != nil {
			return nil, coded(err)
		}
		out = append(out, v)
	}
	return out, nil
}

// GetPool is a pool (name or ID) and what each host last said of it.
func (s *Storage) GetPool(ctx context.Context, ref string) (engineapi.Pool, error) {
	p, err := s.e.findPool(ctx, ref)
	if err != nil {
		return engineapi.Pool{}, coded(err)
	}
	return s.e.poolOut(ctx, p)
}

// SharedDisks tells whether every volume disk of a VM's definition is in a
// shared pool (reachable from every host of its cluster), and names the
// local pools that are not.
func (s *Storage) SharedDisks(ctx context.Context, vm string) (shared bool, local []string, err error) {
	v, err := s.e.findVM(ctx, vm)
	if err != nil {
		return false, nil, coded(err)
	}
	def, err := vmspec.Decode(v.Definition)
	if err != nil {
		return false, nil, coded(err)
	}
	for _, name := range vmPools(def) {
		p, err := s.e.st.GetPoolByName(ctx, name)
		if err != nil {
			return false, nil, coded(err)
		}
		if p.Kind != store.PoolShared {
			local = append(local, p.Name)
		}
	}
	return len(local) == 0, local, nil
}

// CreatePool adds a pool: its directory must be one the cluster's hosts
// allow for disk images (as written); one host writes its marker (a
// directory holding another pool's is refused), then every Up host of the
// cluster is asked whether it has it.
func (s *Storage) CreatePool(ctx context.Context, req engineapi.PoolRequest) (engineapi.Pool, error) {
	p, err := s.e.createPool(ctx, req)
	if err != nil {
		return engineapi.Pool{}, coded(err)
	}
	return s.e.poolOut(ctx, p)
}

func (e *engine) createPool(ctx context.Context, req engineapi.PoolRequest) (store.Pool, error) {
	if err := vmspec.CheckPoolName(req.Name); err != nil {
		return store.Pool{}, invalidField("name", "%v", err)
	}
	if !path.IsAbs(req.Path) || path.Clean(req.Path) != req.Path || req.Path == "/" {
		return store.Pool{}, invalidField("path", "path %q: give the pool's directory as a clean absolute path", req.Path)
	}
	c, err := e.findCluster(ctx, req.Cluster)
	if err != nil {
		return store.Pool{}, err
	}
	p := store.Pool{Name: req.Name, ClusterID: c.ID, Kind: store.PoolKind(req.Kind), Path: req.Path, Description: req.Description}
	switch p.Kind {
	case store.PoolShared:
		if req.Host != "" {
			return p, invalidField("host", "a shared pool is on every host of cluster %s; name no host (or make it local)", c.Name)
		}
	case store.PoolLocal:
		h, err := e.findHost(ctx, req.Host)
		if err != nil {
			return p, err
		}
		if h.ClusterID != c.ID {
			return p, invalidField("host", "host %s is not in cluster %s", h.Name, c.Name)
		}
		p.HostID = h.ID
	default:
		return p, invalidField("kind", "kind %q: want shared (every host sees the directory) or local (one host's)", req.Kind)
	}
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID})
	if err != nil {
		return p, err
	}
	if err := e.poolPathAllowed(ctx, p, hosts); err != nil {
		return p, err
	}
	if err := e.st.CreatePool(ctx, &p); err != nil {
		return p, err
	}
	// One host writes the marker; a refusal removes the pool again.
	var st agentapi.PoolStatus
	err = e.stor.onPool(ctx, p, func(h store.Host) error {
		return e.stor.call(ctx, h, "pools/init", agentPool(p), &st)
	})
	if err != nil {
		_ = e.st.DeletePool(context.WithoutCancel(ctx), p.ID)
		return p, err
	}
	e.stor.gen.Add(1)
	e.stor.checkPoolEverywhere(ctx, p)
	reason := fmt.Sprintf("%s pool at %s in cluster %s", p.Kind, p.Path, c.Name)
	err = e.appendEvent(ctx, e.st, store.Event{Action: "pool.add", ObjectKind: "pool", ObjectID: p.ID, ObjectName: p.Name,
		Message: fmt.Sprintf("Storage pool %s was added by %s.", p.Name, userName(ctx)), Reason: reason})
	return p, err
}

// poolPathAllowed checks, as written, that a host of the cluster allows
// the pool's directory for disk images (the directory listed, or below
// one); a cluster whose hosts report no policy has the default one.
func (e *engine) poolPathAllowed(ctx context.Context, p store.Pool, hosts []store.Host) error {
	var policies []hostpath.Policy
	for _, h := range hosts {
		if p.Kind == store.PoolLocal && h.ID != p.HostID {
			continue
		}
		if pol := e.vms.capacityOf(ctx, h).paths; pol != nil {
			policies = append(policies, *pol)
		}
	}
	if len(policies) == 0 {
		policies = []hostpath.Policy{hostpath.Default()}
	}
	for _, pol := range policies {
		for _, d := range pol.Disk {
			if p.Path == d || hostpath.Within(p.Path, d) {
				return nil
			}
		}
	}
	return api.FieldError(api.CodePoolPathNotAllowed, "path",
		"%s is not a directory the hosts allow for disk images (%s): a pool is such a directory or below one; have the hosts' administrator allow it (host_paths.disk in the agents' configuration)",
		p.Path, hostpath.Merge(policies...).Places(hostpath.Disk))
}

// DeletePool removes a pool that holds no volume (its directory and
// marker stay on the hosts).
func (s *Storage) DeletePool(ctx context.Context, ref string) error {
	e := s.e
	p, err := e.findPool(ctx, ref)
	if err != nil {
		return coded(err)
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeletePool(ctx, p.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "pool.remove", ObjectKind: "pool", ObjectID: p.ID, ObjectName: p.Name,
			Message: fmt.Sprintf("Storage pool %s was removed by %s (its directory and marker are left on the hosts).", p.Name, userName(ctx))})
	})
	if err != nil {
		return coded(err)
	}
	e.stor.gen.Add(1)
	return nil
}

// ----- the monitoring's pool checks

// poolCheckInterval is how often the monitoring asks a host about its
// pools (sooner when pools were added or removed).
var poolCheckInterval = 30 * time.Second

// checkHostPools asks an Up host about the pools it should have, when
// due, and records the answers; a pool that disappears from a host (or
// comes back) is an event.
func (s *storageService) checkHostPools(ctx context.Context, h store.Host) {
	if h.Status != store.HostUp && h.Status != store.HostNonOperational {
		return
	}
	gen := s.gen.Load()
	s.mu.Lock()
	last := s.checked[h.ID]
	due := last.gen != gen || time.Since(last.at) >= poolCheckInterval
	// The cluster's pools as last read, when still good: a host with none
	// to be asked about (most hosts of most clusters) needs no goroutine.
	var none bool
	if c := s.pools[h.ClusterID]; due && c.fresh(gen) {
		none = len(poolsToAsk(c.pools, h.ID)) == 0
	}
	// maxPoolChecks under way: the check waits for the host's next round.
	start := due && !none && s.checking < maxPoolChecks
	if start {
		s.checking++
	}
	if none || start {
		s.checked[h.ID] = hostCheck{at: time.Now(), gen: gen}
	}
	s.mu.Unlock()
	if !start {
		return
	}
	// In the background: a slow file system does not hold the host's
	// statistics back. (A copy: a closure over h itself would move every
	// call's h to the heap, due or not.)
	hc := h
	go func() {
		defer func() {
			s.mu.Lock()
			s.checking--
			s.mu.Unlock()
		}()
		if err := s.checkHost(ctx, hc); err != nil && ctx.Err() == nil {
			s.e.log.Debug("pool check", "host", hc.Name, "err", err)
		}
	}()
}

// poolsToAsk are the pools of a cluster a host is asked about: the shared
// ones and its own local ones.
func poolsToAsk(pools []store.Pool, hostID string) []store.Pool {
	var ask []store.Pool
	for _, p := range pools {
		if p.Kind == store.PoolShared || p.HostID == hostID {
			ask = append(ask, p)
		}
	}
	return ask
}

// checkHost asks a host about its cluster's pools (the shared ones and its
// own local ones) and records the answers.
func (s *storageService) checkHost(ctx context.Context, h store.Host) error {
	pools, err := s.clusterPools(ctx, h.ClusterID)
	if err != nil {
		return err
	}
	ask := poolsToAsk(pools, h.ID)
	if len(ask) == 0 {
		return nil
	}
	var req agentapi.PoolsRequest
	for _, p := range ask {
		req.Pools = append(req.Pools, agentPool(p))
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var sts []agentapi.PoolStatus
	if err := s.call(cctx, h, "pools/check", req, &sts); err != nil {
		return err
	}
	return s.record(ctx, h, ask, sts)
}

// record writes what a host said of pools, and an event for each pool
// that became unavailable on it, or available again.
func (s *storageService) record(ctx context.Context, h store.Host, ask []store.Pool, sts []agentapi.PoolStatus) error {
	byID := map[string]store.Pool{}
	for _, p := range ask {
		byID[p.ID] = p
	}
	old, err := s.e.st.ListHostPools(ctx, h.ID, "")
	if err != nil {
		return err
	}
	was := map[string]store.HostPool{}
	for _, hp := range old {
		was[hp.PoolID] = hp
	}
	var rows []store.HostPool
	var events []store.Event
	for _, st := range sts {
		p, ok := byID[st.Pool]
		if !ok {
			continue
		}
		row := store.HostPool{HostID: h.ID, PoolID: p.ID, OK: st.OK, Code: st.Code, Message: st.Message,
			CapacityBytes: int64(min(st.CapacityBytes, 1<<62)), FreeBytes: int64(min(st.FreeBytes, 1<<62))}
		rows = append(rows, row)
		prev, seen := was[p.ID]
		switch {
		case !st.OK && (!seen || prev.OK || prev.Code != st.Code):
			events = append(events, store.Event{Action: "host.storage", Severity: store.SeverityWarning, ObjectKind: "host",
				ObjectID: h.ID, ObjectName: h.Name, Code: api.CodePoolNotOnHost,
				Message: fmt.Sprintf("Storage pool %s is not available on host %s: VMs using it are not started there.", p.Name, h.Name),
				Reason:  st.Code + ": " + st.Message})
		case st.OK && seen && !prev.OK:
			events = append(events, store.Event{Action: "host.storage", ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
				Message: fmt.Sprintf("Storage pool %s is available on host %s again.", p.Name, h.Name)})
		}
	}
	return s.e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.SetHostPools(ctx, h.ID, rows); err != nil {
			return err
		}
		for _, ev := range events {
			if err := s.e.appendEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkPoolEverywhere asks every Up host that should have a pool about it
// (after its creation), in parallel.
func (s *storageService) checkPoolEverywhere(ctx context.Context, p store.Pool) {
	hosts, err := s.e.st.ListHosts(ctx, store.HostFilter{ClusterID: p.ClusterID, Brief: true})
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	for _, h := range hosts {
		if h.Status != store.HostUp || (p.Kind == store.PoolLocal && h.ID != p.HostID) {
			continue
		}
		wg.Add(1)
		go func(h store.Host) {
			defer wg.Done()
			full, err := s.e.st.GetHost(ctx, h.ID)
			if err == nil {
				_ = s.checkHost(ctx, full)
			}
		}(h)
	}
	wg.Wait()
}

// hostPools is, per host, the pools it has (for the scheduler): pool
// name → "" when the host has it, else why not.
func (s *storageService) hostPools(ctx context.Context, clusterID string) (map[string]map[string]string, error) {
	pools, err := s.e.st.ListPools(ctx, clusterID)
	if err != nil || len(pools) == 0 {
		return nil, err
	}
	names := map[string]store.Pool{}
	for _, p := range pools {
		names[p.ID] = p
	}
	hps, err := s.e.st.ListHostPools(ctx, "", "")
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, hp := range hps {
		p, ok := names[hp.PoolID]
		if !ok {
			continue
		}
		m := out[hp.HostID]
		if m == nil {
			m = map[string]string{}
			out[hp.HostID] = m
		}
		if hp.OK {
			m[p.Name] = ""
		} else {
			m[p.Name] = hp.Code + ": " + hp.Message
		}
	}
	return out, nil
}

// hostPoolsView is what a host last said of its pools, by pool name.
func (s *storageService) hostPoolsView(ctx context.Context, hostID string) ([]engineapi.HostPool, error) {
	hps, err := s.e.st.ListHostPools(ctx, hostID, "")
	if err != nil || len(hps) == 0 {
		return nil, err
	}
	n, err := s.e.objectNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]engineapi.HostPool, 0, len(hps))
	for _, hp := range hps {
		p, err := s.e.st.GetPool(ctx, hp.PoolID)
		if err != nil {
			continue
		}
		out = append(out, hostPoolView(hp, p.Name, n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pool < out[j].Pool })
	return out, nil
}
