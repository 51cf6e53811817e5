package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/storage"
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

// storageTimeout bounds a storage call to an agent (a clone of a large
// volume, an upload's last check).
const storageTimeout = time.Hour

// storageService is the engine's storage part.
type storageService struct {
	e    *Engine
	http *http.Client

	// gen changes when pools are created or deleted: every host's pools
	// are checked again at its next monitoring round.
	gen     atomic.Int64
	mu      sync.Mutex
	checked map[string]hostCheck
}

type hostCheck struct {
	at  time.Time
	gen int64
}

func newStorageService(e *Engine, ops *agentOps) *storageService {
	tr := ops.tr.Clone()
	tr.ResponseHeaderTimeout = storageTimeout
	tr.WriteBufferSize = 256 << 10
	tr.ReadBufferSize = 256 << 10
	return &storageService{e: e, http: &http.Client{Transport: tr}, checked: map[string]hostCheck{}}
}

// call sends a JSON request to a host's storage API; out receives the
// answer. Errors are *agentCallError.
func (s *storageService) call(ctx context.Context, h store.Host, p string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return s.do(ctx, h, http.MethodPost, "/v1/storage/"+p, nil, bytes.NewReader(body), "application/json", out)
}

func (s *storageService) do(ctx context.Context, h store.Host, method, p string, hdr http.Header, body io.Reader, ctype string, out any) error {
	addr, err := s.e.vms.ops.target(h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+p, body)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", ctype)
	if u := userFrom(ctx); u != nil {
		req.Header.Set("X-Polyvirt-User", u.Name)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return &agentCallError{Host: h.Name, Msg: shortError(err)}
	}
	defer resp.Body.Close()
	return decodeAgentAnswer(h, resp, out)
}

// decodeAgentAnswer reads an agent's answer into out, or its error.
func decodeAgentAnswer(h store.Host, resp *http.Response, out any) error {
	method, p := resp.Request.Method, resp.Request.URL.Path
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	if err != nil {
		return &agentCallError{Host: h.Name, Msg: fmt.Sprintf("reading the answer of %s %s: %v", method, p, err)}
	}
	if resp.StatusCode >= 300 {
		ce := &agentCallError{Host: h.Name, Status: resp.StatusCode, Code: fmt.Sprintf("HTTP_%d", resp.StatusCode), Msg: strings.TrimSpace(string(b))}
		var eb api.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			ce.Code, ce.Msg, ce.Errors = eb.Error.Code, eb.Error.Message, eb.Errors
		}
		return ce
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return &agentCallError{Host: h.Name, Status: http.StatusBadGateway, Code: api.CodeAgentError, Msg: fmt.Sprintf("the answer of %s %s: %v", method, p, err)}
		}
	}
	return nil
}

// agentPool is how an agent is told of a pool.
func agentPool(p store.Pool) storage.Pool {
	return storage.Pool{ID: p.ID, Name: p.Name, Path: p.Path, Kind: string(p.Kind)}
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
			return nil, api.NewError(http.StatusConflict, api.CodePoolNotAvailable, "pool %s is local to host %s, which is %s; its volumes are reached through that host only", p.Name, h.Name, h.Status)
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
		return nil, api.NewError(http.StatusConflict, api.CodePoolNotAvailable, "%s", msg)
	}
	return out, nil
}

// onPool runs fn on the first host that can act on a pool and answers;
// a host that does not answer passes the turn to the next.
func (s *storageService) onPool(ctx context.Context, p store.Pool, fn func(h store.Host) error) error {
	hosts, err := s.hostsFor(ctx, p)
	if err != nil {
		return err
	}
	var last error
	for _, h := range hosts {
		err := fn(h)
		if ae := asAgentError(err); ae != nil && ae.Status == 0 {
			last = err
			continue
		}
		return err
	}
	return last
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
		return api.NewError(http.StatusConflict, api.CodePoolNotAvailable, "no Up host has all of pools %s", strings.Join(names, ", "))
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

// storageError answers an agent's storage refusal with its code and
// status.
func storageError(err error) error {
	return agentAPIError(err)
}

// ----- pools

func (e *Engine) findPool(ctx context.Context, ref string) (store.Pool, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Pool{}, invalidField("pool", "no pool named")
	}
	p, err := e.st.GetPoolByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if p2, err2 := e.st.GetPool(ctx, ref); err2 == nil {
			return p2, nil
		}
		return p, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Field: "pool",
			Message: fmt.Sprintf("pool %q does not exist (polyvirt pool list)", ref)}
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
		if hp.OK && hp.Checked.After(time.Time{}) && hp.CapacityBytes > 0 {
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

func (e *Engine) listPools(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	clusterID := ""
	if ref := r.URL.Query().Get("cluster"); ref != "" {
		c, err := e.findCluster(ctx, ref)
		if err != nil {
			return err
		}
		clusterID = c.ID
	}
	ps, err := e.st.ListPools(ctx, clusterID)
	if err != nil {
		return err
	}
	n, err := e.objectNames(ctx)
	if err != nil {
		return err
	}
	out := make([]engineapi.Pool, 0, len(ps))
	for _, p := range ps {
		v, err := e.storage.poolView(ctx, p, n)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (e *Engine) getPool(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := e.findPool(ctx, r.PathValue("pool"))
	if err != nil {
		return err
	}
	return e.poolAnswer(ctx, w, http.StatusOK, p)
}

func (e *Engine) poolAnswer(ctx context.Context, w http.ResponseWriter, status int, p store.Pool) error {
	n, err := e.objectNames(ctx)
	if err != nil {
		return err
	}
	v, err := e.storage.poolView(ctx, p, n)
	if err != nil {
		return err
	}
	return writeJSON(w, status, v)
}

// createPool adds a pool: its directory must be one the cluster's hosts
// allow for disk images (as written); one host writes its marker (a
// directory holding another pool's is refused), then every Up host of the
// cluster is asked whether it has it.
func (e *Engine) createPool(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req engineapi.PoolRequest
	if err := decodeBody(r, &req, false); err != nil {
		return err
	}
	if err := vmspec.CheckPoolName(req.Name); err != nil {
		return invalidField("name", "%v", err)
	}
	if !path.IsAbs(req.Path) || path.Clean(req.Path) != req.Path || req.Path == "/" {
		return invalidField("path", "path %q: give the pool's directory as a clean absolute path", req.Path)
	}
	c, err := e.findCluster(ctx, req.Cluster)
	if err != nil {
		return err
	}
	p := store.Pool{Name: req.Name, ClusterID: c.ID, Kind: store.PoolKind(req.Kind), Path: req.Path, Description: req.Description}
	switch p.Kind {
	case store.PoolShared:
		if req.Host != "" {
			return invalidField("host", "a shared pool is on every host of cluster %s; name no host (or make it local)", c.Name)
		}
	case store.PoolLocal:
		h, err := e.findHost(ctx, req.Host)
		if err != nil {
			return err
		}
		if h.ClusterID != c.ID {
			return invalidField("host", "host %s is not in cluster %s", h.Name, c.Name)
		}
		p.HostID = h.ID
	default:
		return invalidField("kind", "kind %q: want shared (every host sees the directory) or local (one host's)", req.Kind)
	}
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID})
	if err != nil {
		return err
	}
	if err := e.poolPathAllowed(ctx, p, hosts); err != nil {
		return err
	}
	if err := e.st.CreatePool(ctx, &p); err != nil {
		return err
	}
	// One host writes the marker; a refusal removes the pool again.
	var st storage.PoolStatus
	err = e.storage.onPool(ctx, p, func(h store.Host) error {
		return e.storage.call(ctx, h, "pools/init", agentPool(p), &st)
	})
	if err != nil {
		_ = e.st.DeletePool(context.WithoutCancel(ctx), p.ID)
		return storageError(err)
	}
	e.storage.gen.Add(1)
	e.storage.checkPoolEverywhere(ctx, p)
	reason := fmt.Sprintf("%s pool at %s in cluster %s", p.Kind, p.Path, c.Name)
	if err := e.appendEvent(ctx, e.st, store.Event{Action: "pool.add", ObjectKind: "pool", ObjectID: p.ID, ObjectName: p.Name,
		Message: fmt.Sprintf("Storage pool %s was added by %s.", p.Name, userName(ctx)), Reason: reason}); err != nil {
		return err
	}
	return e.poolAnswer(ctx, w, http.StatusCreated, p)
}

// poolPathAllowed checks, as written, that a host of the cluster allows
// the pool's directory for disk images (the directory listed, or below
// one); a cluster whose hosts report no policy has the default one.
func (e *Engine) poolPathAllowed(ctx context.Context, p store.Pool, hosts []store.Host) error {
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
	return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodePoolPathNotAllowed, Field: "path",
		Message: fmt.Sprintf("%s is not a directory the hosts allow for disk images (%s): a pool is such a directory or below one; have the hosts' administrator allow it (host_paths.disk in the agents' configuration)",
			p.Path, hostpath.Merge(policies...).Places(hostpath.Disk))}
}

func (e *Engine) deletePool(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := e.findPool(ctx, r.PathValue("pool"))
	if err != nil {
		return err
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeletePool(ctx, p.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "pool.remove", ObjectKind: "pool", ObjectID: p.ID, ObjectName: p.Name,
			Message: fmt.Sprintf("Storage pool %s was removed by %s (its directory and marker are left on the hosts).", p.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	e.storage.gen.Add(1)
	w.WriteHeader(http.StatusNoContent)
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
	if due {
		s.checked[h.ID] = hostCheck{at: time.Now(), gen: gen}
	}
	s.mu.Unlock()
	if !due {
		return
	}
	// In the background: a slow file system does not hold the host's
	// statistics back.
	go func() {
		if err := s.checkHost(ctx, h); err != nil && ctx.Err() == nil {
			s.e.log.Debug("pool check", "host", h.Name, "err", err)
		}
	}()
}

// checkHost asks a host about its cluster's pools (the shared ones and its
// own local ones) and records the answers.
func (s *storageService) checkHost(ctx context.Context, h store.Host) error {
	pools, err := s.e.st.ListPools(ctx, h.ClusterID)
	if err != nil {
		return err
	}
	var ask []store.Pool
	for _, p := range pools {
		if p.Kind == store.PoolShared || p.HostID == h.ID {
			ask = append(ask, p)
		}
	}
	if len(ask) == 0 {
		return nil
	}
	req := struct {
		Pools []storage.Pool `json:"pools"`
	}{}
	for _, p := range ask {
		req.Pools = append(req.Pools, agentPool(p))
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var sts []storage.PoolStatus
	if err := s.call(cctx, h, "pools/check", req, &sts); err != nil {
		return err
	}
	return s.record(ctx, h, ask, sts)
}

// record writes what a host said of pools, and an event for each pool
// that became unavailable on it, or available again.
func (s *storageService) record(ctx context.Context, h store.Host, ask []store.Pool, sts []storage.PoolStatus) error {
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
