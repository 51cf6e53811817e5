package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/enroll"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/store"
)

// Join token lifetimes.
const (
	defaultTokenTTL = time.Hour
	maxTokenTTL     = 7 * 24 * time.Hour
)

// hostView is a host's document; its report facts (virtualization,
// profile, firmware) are the ones e.reports knows.
func (e *engine) hostView(h store.Host, cluster string) engineapi.Host {
	v := hostView(h, cluster)
	e.reports.withReportFacts(&v, h)
	return v
}

func hostView(h store.Host, cluster string) engineapi.Host {
	v := engineapi.Host{ID: h.ID, Name: h.Name, Address: h.Address, ClusterID: h.ClusterID, Cluster: cluster,
		Status: string(h.Status), StatusCode: h.StatusCode, StatusMessage: h.StatusMessage, Arch: h.Arch,
		CPUModel: h.CPUModel, CPUType: h.CPUType, CPULevel: h.CPULevel, CPUFlags: h.CPUFlags,
		EmulatedMachines: h.EmulatedMachines, Enrolled: h.CertFingerprint != "", CertFingerprint: h.CertFingerprint,
		CertSerial: h.CertSerial, JoinTokenExpires: h.JoinTokenExpires, JoinTokenUsed: h.JoinTokenUsed,
		LastSeen: h.LastSeen, StatsAt: h.StatsAt, Stats: h.Stats, Capabilities: h.Capabilities,
		Version: h.Version, Created: h.Created, Updated: h.Updated}
	if v.CPUFlags == nil {
		v.CPUFlags = []string{}
	}
	if v.EmulatedMachines == nil {
		v.EmulatedMachines = []string{}
	}
	return v
}

// clusterNames maps cluster IDs to names.
func (e *engine) clusterNames(ctx context.Context) (map[string]string, error) {
	cs, err := e.st.ListClusters(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cs))
	for _, c := range cs {
		out[c.ID] = c.Name
	}
	return out, nil
}

// Hosts are the engine's hosts: added with a one-time join token, enrolled
// by their agent (Enrollment), monitored and admitted into their cluster
// by the leading engine, switched to Maintenance and activated, moved,
// removed.
type Hosts struct{ e *engine }

// hostOut is the answer about a host.
func (e *engine) hostOut(ctx context.Context, h store.Host) (engineapi.Host, error) {
	c, err := e.st.GetCluster(ctx, h.ClusterID)
	if err != nil {
		return engineapi.Host{}, coded(err)
	}
	e.reports.load(ctx, e.st, []store.Host{h})
	return e.hostView(h, c.Name), nil
}

// HostQuery selects hosts: those of a cluster (name or ID), in some
// statuses (Up, NonOperational, ...); Details adds each host's CPU flags
// and emulated machines. The answer is a page of at most Limit hosts (0:
// engineapi.DefaultHostPageSize) ordered by name, after the position of
// Continue (the token of the page before; empty: the first page).
type HostQuery struct {
	Cluster  string
	Statuses []string
	Details  bool
	Limit    int
	Continue string
}

// HostQueryFrom reads a query from named text values (an HTTP query's
// cluster, status as a comma-separated list, details, limit, continue).
func HostQueryFrom(get func(name string) string) (HostQuery, error) {
	q := HostQuery{Cluster: get("cluster"), Continue: get("continue")}
	if s := get("status"); s != "" {
		q.Statuses = strings.Split(s, ",")
	}
	switch d := get("details"); d {
	case "", "false", "0":
	case "true", "1":
		q.Details = true
	default:
		return q, invalidField("details", "details %q: want true or false", d)
	}
	n, err := parseLimit(get("limit"))
	q.Limit = n
	return q, err
}

// HostList is a page of hosts: Page, or, when Encoded is not nil, the
// page's JSON answer (made of the hosts' encodings kept with the list),
// and then Page holds only its Continue.
type HostList struct {
	Page    engineapi.HostPage
	Encoded []byte
}

// List lists a page of the hosts a query selects: without Details from
// the list kept in memory (at most a few seconds old), with Details from
// the database.
func (s *Hosts) List(ctx context.Context, q HostQuery) (HostList, error) {
	l, err := s.e.listHosts(ctx, q)
	return l, coded(err)
}

func (e *engine) listHosts(ctx context.Context, q HostQuery) (HostList, error) {
	limit := q.Limit
	if limit == 0 {
		limit = engineapi.DefaultHostPageSize
	}
	if limit < 1 || limit > engineapi.MaxHostPageSize {
		return HostList{}, invalidField("limit", "limit %d: want a number from 1 to %d", limit, engineapi.MaxHostPageSize)
	}
	f := store.HostFilter{Brief: !q.Details}
	if q.Cluster != "" {
		c, err := e.findCluster(ctx, q.Cluster)
		if err != nil {
			return HostList{}, err
		}
		f.ClusterID = c.ID
	}
	for _, x := range q.Statuses {
		st := store.HostStatus(strings.TrimSpace(x))
		if !st.Valid() {
			return HostList{}, invalidField("status", "unknown host status %q (known: %v)", x, store.HostStatuses())
		}
		f.Statuses = append(f.Statuses, st)
	}
	fp := queryFingerprint(f, q.Details)
	var after string
	if q.Continue != "" {
		var err error
		if after, err = parseContinue(q.Continue, fp); err != nil {
			return HostList{}, err
		}
	}
	if !q.Details {
		snap, err := e.hosts.get(ctx, e)
		if err != nil {
			return HostList{}, err
		}
		views := snap.views
		// The views are ordered by name: the page starts at the first
		// name after the cursor's.
		i, found := slices.BinarySearchFunc(views, after, func(h engineapi.Host, name string) int { return strings.Compare(h.Name, name) })
		if found {
			i++
		}
		// Only the page's hosts are encoded, each with its latest
		// statistics, straight into the page's buffer.
		m := e.monitor()
		var page engineapi.HostPage
		out := pageStart()
		n, last := 0, -1
		for ; i < len(views); i++ {
			h := &views[i]
			if (f.ClusterID != "" && h.ClusterID != f.ClusterID) || (len(f.Statuses) > 0 && !slices.Contains(f.Statuses, store.HostStatus(h.Status))) {
				continue
			}
			if n == limit {
				page.Continue = encodeContinue(views[last].Name, fp)
				break
			}
			if n > 0 {
				out = append(out, ',')
			}
			var err error
			if out, err = snap.appendEncoded(out, m, i); err != nil {
				return HostList{}, err
			}
			n++
			last = i
		}
		return HostList{Page: page, Encoded: pageEnd(out, page.Continue)}, nil
	}
	f.After, f.Limit = after, limit+1
	hosts, err := e.st.ListHosts(ctx, f)
	if err != nil {
		return HostList{}, err
	}
	names, err := e.clusterNames(ctx)
	if err != nil {
		return HostList{}, err
	}
	page := engineapi.HostPage{Hosts: make([]engineapi.Host, 0, min(len(hosts), limit))}
	if len(hosts) > limit {
		hosts = hosts[:limit]
		page.Continue = encodeContinue(hosts[limit-1].Name, fp)
	}
	e.reports.load(ctx, e.st, hosts)
	for _, h := range hosts {
		page.Hosts = append(page.Hosts, e.hostView(h, names[h.ClusterID]))
	}
	return HostList{Page: page}, nil
}

// Get shows a host (name or ID), with its capabilities report when asked.
func (s *Hosts) Get(ctx context.Context, ref string, capabilities bool) (engineapi.Host, error) {
	var h store.Host
	var err error
	if capabilities {
		h, err = s.e.findHost(ctx, ref)
		if err == nil {
			s.e.reports.of(h) // its report is at hand: read its facts
		}
	} else {
		// The report (the largest column) is read only when its facts
		// are not known yet: a host asked for by name forty times a
		// second is a narrow read.
		h, err = s.e.findHostWithoutReport(ctx, ref)
		if err == nil {
			s.e.reports.load(ctx, s.e.st, []store.Host{h})
		}
	}
	if err != nil {
		return engineapi.Host{}, coded(err)
	}
	s.e.freshStats(ctx, &h)
	out, err := s.e.hostOut(ctx, h)
	if err != nil {
		return out, err
	}
	if out.Pools, err = s.e.stor.hostPoolsView(ctx, h.ID); err != nil {
		return out, coded(err)
	}
	return out, nil
}

// freshStats replaces a host's recorded statistics by the monitor's latest
// (on the leading engine), or by the agent's own when they are older than
// the statistics interval (the monitoring's reading
// and its batched write lag behind): a host read alone shows statistics at
// most one interval old, without a VM deleted since. An agent that does
// not answer within the poll time-out leaves the recorded ones (their age
// says how old they are).
func (e *engine) freshStats(ctx context.Context, h *store.Host) {
	if m := e.monitor(); m != nil {
		// The leader's monitor has the latest (the database gets them
		// every StatsWrite).
		if s := m.latestStats(h.ID); s != nil && s.At.After(h.StatsAt) && len(s.Stats) > 0 {
			h.Stats, h.StatsAt = s.Stats, s.At
			if s.At.After(h.LastSeen) {
				h.LastSeen = s.At
			}
		}
	}
	if h.CertFingerprint == "" || h.Address == "" || time.Since(h.StatsAt) <= e.cfg.Monitor.StatsInterval {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Monitor.PollTimeout)
	defer cancel()
	if b, err := e.agents.Stats(ctx, h.Address); err == nil {
		h.Stats, h.StatsAt = b, time.Now()
	}
}

// checkAddress checks a HOST:PORT.
func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || strings.TrimSpace(host) == "" {
		return invalidField("address", "address %q: want HOST:PORT, the address the agent listens on (polyvirt agent --listen)", a)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return invalidField("address", "address %q: the port must be a number from 1 to 65535", a)
	}
	if len(a) > 255 || strings.ContainsAny(a, " \t\r\n/") {
		return invalidField("address", "address %q: at most 255 characters, no spaces or slashes", a)
	}
	return nil
}

// addressTaken tells which other host has an address.
func addressTaken(ctx context.Context, q store.Queries, addr, except string) (string, error) {
	hosts, err := q.ListHosts(ctx, store.HostFilter{Brief: true, Address: addr})
	if err != nil {
		return "", err
	}
	for _, h := range hosts {
		if h.ID != except {
			return h.Name, nil
		}
	}
	return "", nil
}

func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return defaultTokenTTL, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d > maxTokenTTL {
		return 0, invalidField("tokenTtl", "token lifetime %q: want a duration from 1s to %s (such as 1h)", s, maxTokenTTL)
	}
	return d, nil
}

// joinCommand is what to run on the agent host.
func (e *engine) joinCommand() string {
	return fmt.Sprintf("polyvirt agent join --engine %s --data-dir /var/lib/polyvirt/agent --token-file -  # the token on stdin", e.cfg.URL)
}

// Add adds a host to a cluster, Installing until its agent joins with the
// one-time join token of the answer.
func (s *Hosts) Add(ctx context.Context, req engineapi.HostRequest) (engineapi.JoinToken, error) {
	t, err := s.e.addHost(ctx, req)
	return t, coded(err)
}

func (e *engine) addHost(ctx context.Context, req engineapi.HostRequest) (engineapi.JoinToken, error) {
	var none engineapi.JoinToken
	if err := store.ValidName(req.Name); err != nil {
		return none, invalidField("name", "%v", err)
	}
	if err := checkAddress(req.Address); err != nil {
		return none, err
	}
	ttl, err := parseTTL(req.TokenTTL)
	if err != nil {
		return none, err
	}
	c, err := e.findCluster(ctx, req.Cluster)
	if err != nil {
		return none, err
	}
	tok, err := enroll.NewToken(e.ca.Cert)
	if err != nil {
		return none, err
	}
	expires := time.Now().Add(ttl).UTC()
	h := store.Host{Name: req.Name, Address: req.Address, ClusterID: c.ID, Status: store.HostInstalling,
		StatusMessage: "waiting for its agent to join (polyvirt agent join)"}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if other, err := addressTaken(ctx, tx, h.Address, ""); err != nil {
			return err
		} else if other != "" {
			return &api.Error{Code: api.CodeHostAddressInUse, Field: "address",
				Message: fmt.Sprintf("Cannot add host %s: host %s already has the address %s.", h.Name, other, h.Address)}
		}
		if err := tx.CreateHost(ctx, &h); err != nil {
			return err
		}
		if err := tx.SetHostJoinToken(ctx, h.ID, tok.Hash(), expires); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "host.add", ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
			Message: fmt.Sprintf("Host %s was added by %s.", h.Name, userName(ctx)),
			Reason:  fmt.Sprintf("address %s, cluster %s; join token valid until %s", h.Address, c.Name, expires.Format(time.RFC3339))})
	})
	if err != nil {
		return none, err
	}
	e.hostChanged()
	h, err = e.st.GetHost(ctx, h.ID)
	if err != nil {
		return none, err
	}
	h.Capabilities = nil
	return engineapi.JoinToken{Host: e.hostView(h, c.Name), Token: tok.String(), Expires: expires, Command: e.joinCommand()}, nil
}

// mutateHost reads a host in a transaction, lets fn change it (and add
// events), and writes it when fn says so; it starts again when the host
// changed meanwhile (the monitor writes statuses too).
func (e *engine) mutateHost(ctx context.Context, id string, fn func(tx store.Tx, h *store.Host) (write bool, err error)) (store.Host, error) {
	for attempt := 0; ; attempt++ {
		err := e.st.InTx(ctx, func(tx store.Tx) error {
			h, err := tx.GetHost(ctx, id)
			if err != nil {
				return err
			}
			write, err := fn(tx, &h)
			if err != nil || !write {
				return err
			}
			return tx.UpdateHost(ctx, &h)
		})
		if isStale(err) && attempt < 8 {
			time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
			continue
		}
		if err != nil {
			return store.Host{}, err
		}
		h, err := e.st.GetHost(ctx, id)
		h.Capabilities = nil
		return h, err
	}
}

// runningVMs names the VMs the engine has on a host in any state but Down.
func runningVMs(ctx context.Context, q store.Queries, hostID string) ([]string, error) {
	vms, err := q.ListVMs(ctx, store.VMFilter{HostID: hostID})
	if err != nil {
		return nil, err
	}
	var running []string
	for _, vm := range vms {
		if vm.State != store.VMDown {
			running = append(running, vm.Name)
		}
	}
	return running, nil
}

// Activate makes a host take part again: admission runs again (Connecting,
// then Up or NonOperational), or it waits for its agent to join.
func (s *Hosts) Activate(ctx context.Context, ref string, req engineapi.ActionRequest) (engineapi.Host, error) {
	h, err := s.e.hostActivate(ctx, ref, req)
	if err != nil {
		return engineapi.Host{}, coded(err)
	}
	return s.e.hostOut(ctx, h)
}

func (e *engine) hostActivate(ctx context.Context, ref string, req engineapi.ActionRequest) (store.Host, error) {
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return h, err
	}
	h, err = e.mutateHost(ctx, h.ID, func(tx store.Tx, h *store.Host) (bool, error) {
		noop, aerr := checkAction(actActivate, h.Name, h.Status)
		if aerr != nil {
			return false, aerr
		}
		if noop {
			return false, nil
		}
		if h.CertFingerprint == "" {
			h.Status, h.StatusCode, h.StatusMessage = store.HostInstalling, "", "waiting for its agent to join (polyvirt agent join)"
		} else {
			h.Status, h.StatusCode = store.HostConnecting, ""
			h.StatusMessage = fmt.Sprintf("activation requested by %s: checking the host", userName(ctx))
		}
		return true, e.appendEvent(ctx, tx, store.Event{Action: "host.activate", ObjectKind: "host", ObjectID: h.ID,
			ObjectName: h.Name, Message: fmt.Sprintf("Activation of host %s initiated by %s.", h.Name, userName(ctx)), Reason: req.Reason})
	})
	if err != nil {
		return h, err
	}
	e.hostChanged()
	return h, nil
}

// Remove removes a host that is not Up (Maintenance first) and runs no VM
// of the engine.
func (s *Hosts) Remove(ctx context.Context, ref string) error {
	return coded(s.e.removeHost(ctx, ref))
}

func (e *engine) removeHost(ctx context.Context, ref string) error {
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return err
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		cur, err := tx.GetHost(ctx, h.ID)
		if err != nil {
			return err
		}
		if _, aerr := checkAction(actRemove, cur.Name, cur.Status); aerr != nil {
			return aerr
		}
		if err := tx.DeleteHost(ctx, cur.ID); err != nil {
			if errors.Is(err, store.ErrInUse) {
				return fail(api.CodeHostHasVMs, "Cannot remove host %s: %s.", cur.Name, storeMessage(asStoreError(err)))
			}
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "host.remove", ObjectKind: "host", ObjectID: cur.ID, ObjectName: cur.Name,
			Message: fmt.Sprintf("Host %s was removed by %s.", cur.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	e.hostChanged()
	return nil
}

func asStoreError(err error) *store.Error {
	var se *store.Error
	if errors.As(err, &se) {
		return se
	}
	return &store.Error{Detail: err.Error()}
}

// Update renames a host, or changes its address or its cluster (one of
// its architecture; both while it is in Maintenance or not enrolled yet).
func (s *Hosts) Update(ctx context.Context, ref string, upd engineapi.HostUpdate) (engineapi.Host, error) {
	h, err := s.e.updateHost(ctx, ref, upd)
	if err != nil {
		return engineapi.Host{}, coded(err)
	}
	return s.e.hostOut(ctx, h)
}

func (e *engine) updateHost(ctx context.Context, ref string, upd engineapi.HostUpdate) (store.Host, error) {
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return h, err
	}
	var target store.Cluster
	if upd.Cluster != nil {
		if target, err = e.findCluster(ctx, *upd.Cluster); err != nil {
			return h, err
		}
	}
	if upd.Name != nil {
		if err := store.ValidName(*upd.Name); err != nil {
			return h, invalidField("name", "%v", err)
		}
	}
	if upd.Address != nil {
		if err := checkAddress(*upd.Address); err != nil {
			return h, err
		}
	}
	h, err = e.mutateHost(ctx, h.ID, func(tx store.Tx, h *store.Host) (bool, error) {
		if upd.Version != nil && *upd.Version != h.Version {
			return false, &api.Error{Code: api.CodeVersionConflict, Field: "version",
				Message: fmt.Sprintf("host %s is at version %d, not %d: read it again", h.Name, h.Version, *upd.Version)}
		}
		oldName := h.Name
		var changes []string
		if upd.Name != nil && *upd.Name != h.Name {
			changes = append(changes, fmt.Sprintf("name %s → %s", h.Name, *upd.Name))
			h.Name = *upd.Name
		}
		if upd.Address != nil && *upd.Address != h.Address {
			if h.CertFingerprint != "" {
				if _, aerr := checkAction(actMove, h.Name, h.Status); aerr != nil {
					return false, aerr
				}
			}
			if other, err := addressTaken(ctx, tx, *upd.Address, h.ID); err != nil {
				return false, err
			} else if other != "" {
				return false, &api.Error{Code: api.CodeHostAddressInUse, Field: "address",
					Message: fmt.Sprintf("Cannot change the address of host %s: host %s already has the address %s.", h.Name, other, *upd.Address)}
			}
			changes = append(changes, fmt.Sprintf("address %s → %s", h.Address, *upd.Address))
			h.Address = *upd.Address
		}
		if upd.Cluster != nil && target.ID != h.ClusterID {
			if _, aerr := checkAction(actMove, h.Name, h.Status); aerr != nil {
				return false, aerr
			}
			if err := checkMoveArch(*h, target); err != nil {
				return false, err
			}
			changes = append(changes, "cluster → "+target.Name)
			h.ClusterID = target.ID
		}
		if len(changes) == 0 {
			return false, nil
		}
		return true, e.appendEvent(ctx, tx, store.Event{Action: "host.update", ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
			Message: fmt.Sprintf("Host %s configuration was updated by %s.", oldName, userName(ctx)), Reason: strings.Join(changes, "; ")})
	})
	if err != nil {
		return h, err
	}
	e.hostChanged()
	return h, nil
}

// checkMoveArch refuses to move a host to a cluster of another
// architecture (ACTION_TYPE_FAILED_VDS_CLUSTER_DIFFERENT_ARCHITECTURES).
func checkMoveArch(h store.Host, target store.Cluster) error {
	if h.Arch == arch.Unknown || target.Arch == arch.Unknown {
		return nil
	}
	ha, err := archspec.ClusterArch(h.Arch)
	if err != nil || ha != target.Arch {
		return &api.Error{Code: api.CodeHostClusterArch, Field: "cluster",
			Message: fmt.Sprintf("Cannot move host %s to cluster %s: the host has architecture %s and the cluster has architecture %s.",
				h.Name, target.Name, h.Arch, target.Arch)}
	}
	return nil
}

// JoinToken issues a new one-time join token for a host (replacing its
// last one), to enroll its agent again.
func (s *Hosts) JoinToken(ctx context.Context, ref string, req engineapi.JoinTokenRequest) (engineapi.JoinToken, error) {
	t, err := s.e.hostJoinToken(ctx, ref, req)
	return t, coded(err)
}

func (e *engine) hostJoinToken(ctx context.Context, ref string, req engineapi.JoinTokenRequest) (engineapi.JoinToken, error) {
	var none engineapi.JoinToken
	ttl, err := parseTTL(req.TokenTTL)
	if err != nil {
		return none, err
	}
	h, err := e.findHost(ctx, ref)
	if err != nil {
		return none, err
	}
	tok, err := enroll.NewToken(e.ca.Cert)
	if err != nil {
		return none, err
	}
	expires := time.Now().Add(ttl).UTC()
	h, err = e.mutateHost(ctx, h.ID, func(tx store.Tx, h *store.Host) (bool, error) {
		if _, aerr := checkAction(actJoinToken, h.Name, h.Status); aerr != nil {
			return false, aerr
		}
		if err := tx.SetHostJoinToken(ctx, h.ID, tok.Hash(), expires); err != nil {
			return false, err
		}
		return false, e.appendEvent(ctx, tx, store.Event{Action: "host.join-token", ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
			Message: fmt.Sprintf("A new join token was issued for host %s by %s.", h.Name, userName(ctx)),
			Reason:  "valid until " + expires.Format(time.RFC3339)})
	})
	if err != nil {
		return none, err
	}
	c, err := e.st.GetCluster(ctx, h.ClusterID)
	if err != nil {
		return none, err
	}
	return engineapi.JoinToken{Host: e.hostView(h, c.Name), Token: tok.String(), Expires: expires, Command: e.joinCommand()}, nil
}
