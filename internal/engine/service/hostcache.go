package service

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// hostListTTL is how long the API serves the host list's rows from memory
// before checking them again: another engine's changes take about this
// long to show. This engine's own changes show at once (they drop the
// list).
const hostListTTL = time.Second

// hostListMaxAge is the oldest list served while a newer one is read in
// the background; an older one is read again before answering.
const hostListMaxAge = 5 * time.Second

// hostListLeaderMaxAge is hostListMaxAge on the leading engine, whose
// list is checked cheaply (the hosts' revision, from an index): a caller
// after a quiet while sees another engine's changes made meanwhile.
const hostListLeaderMaxAge = 2 * hostListTTL

// hostListLeaderRead is the longest the leading engine serves the list
// without reading its rows from the database again. In between, every
// hostListTTL, it asks the database for the hosts' revision (from an
// index) and reads the rows only when the revision changed (another
// engine changed a host; its own changes drop the list).
const hostListLeaderRead = 5 * time.Minute

// hostList is the brief host list the API's lists and the clusters' host
// counts are served from: a thousand hosts listed ten times a second is
// one read per second at most. When the list is a little old (under
// hostListMaxAge), the callers get it at once while it is read again in
// the background; when it is older, or was dropped (a change made here),
// they wait for the new one. On the leading engine the rows are read again
// when the hosts' revision changed, or after hostListLeaderRead, and the
// statistics a page shows are its monitor's latest, laid over the rows
// when the page is made (hostSnapshot.encoded).
type hostList struct {
	// gen counts the drops; the list held was read at generation loaded.
	gen atomic.Uint64

	mu         sync.Mutex
	at         time.Time
	readAt     time.Time
	loaded     uint64
	set        uint64
	refreshing bool
	snap       *hostSnapshot
	// rev is the hosts' revision read before the rows held (leader only).
	rev store.HostsRevision
}

// hostSnapshot is one read of the host list, shared by the callers until
// the next: never changed, but for its hosts' encodings, made when a page
// first needs them.
type hostSnapshot struct {
	// views are ordered by name (byte order), for the API's pages; their
	// statistics are those of the read (on the leader, its monitor's
	// latest then).
	views []engineapi.Host
	// enc holds each view's JSON without its statistics, made for the
	// page that first needed it: a page splices each host's latest
	// statistics in, straight into the page's buffer (ten thousand hosts
	// whose statistics change every few seconds cost no encoding kept
	// per host, and a page no copy of one).
	enc []atomic.Pointer[hostJSON]
	// counts are the hosts per cluster and status.
	counts map[string]map[string]int
}

// invalidate drops the list: the next caller reads it again. It does not
// wait for a read under way.
func (l *hostList) invalidate() { l.gen.Add(1) }

// get returns the list.
func (l *hostList) get(ctx context.Context, e *engine) (*hostSnapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gen := l.gen.Load()
	leader := e.monitor() != nil
	if l.snap != nil && !l.at.IsZero() && l.loaded == gen {
		age := time.Since(l.at)
		if age < hostListTTL {
			return l.snap, nil
		}
		maxAge := hostListMaxAge
		if leader {
			maxAge = hostListLeaderMaxAge
		}
		if age < maxAge {
			if !l.refreshing {
				l.refreshing = true
				go l.refresh(e, gen, l.set, l.rev, l.readAt, l.snap)
			}
			return l.snap, nil
		}
	}
	// The leader reads the hosts' revision first: a list too old to serve
	// as it is whose rows are still current (the same revision) is served
	// again; otherwise the rows are read (and the list remembers the
	// revision they are of).
	var rev store.HostsRevision
	if leader {
		var err error
		if rev, err = e.st.HostsRevision(ctx); err != nil {
			return nil, err
		}
		if l.snap != nil && l.loaded == gen && rev == l.rev && time.Since(l.readAt) < hostListLeaderRead {
			l.at = time.Now()
			return l.snap, nil
		}
	}
	snap, err := readHostList(ctx, e, nil)
	if err != nil {
		return nil, err
	}
	l.set++
	l.snap, l.loaded, l.rev = snap, gen, rev
	l.at = time.Now()
	l.readAt = l.at
	return snap, nil
}

// refresh checks the list in the background: the leader reads the hosts'
// revision, and when it is still rev (the list held, set number set, read
// at readAt) and the rows are not older than hostListLeaderRead, keeps
// the list; otherwise the rows are read again. A failure drops the list,
// so that the next caller reads it (and gets the error).
func (l *hostList) refresh(e *engine, gen, set uint64, rev store.HostsRevision, readAt time.Time, snap *hostSnapshot) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	var err error
	read := true
	var prev []engineapi.Host
	if e.monitor() != nil {
		var now store.HostsRevision
		now, err = e.st.HostsRevision(ctx)
		read = err == nil && (now != rev || time.Since(readAt) >= hostListLeaderRead)
		rev, prev = now, snap.views
	}
	if err == nil && read {
		snap, err = readHostList(ctx, e, prev)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshing = false
	if err != nil {
		l.at = time.Time{}
		return
	}
	if l.loaded != gen || l.set != set {
		// Dropped, or read again by a caller, meanwhile.
		return
	}
	l.at = start
	if read {
		l.set++
		l.snap, l.readAt, l.rev = snap, start, rev
	}
}

// laidStats answers the statistics a view shows: the monitor's latest
// (m, on the leading engine) when they are newer than the view's, else
// the view's; and its last contact, the later of the view's and the
// statistics'.
func laidStats(m *monitor, v *engineapi.Host) laid {
	l := laidOf(v)
	if m == nil {
		return l
	}
	if s := m.latestStats(v.ID); s != nil && s.At.After(l.at) && len(s.Stats) > 0 {
		l.stats, l.at = s.Stats, s.At
		if l.at.After(l.seen) {
			l.seen = l.at
		}
	}
	return l
}

// appendEncoded appends view i's JSON with the statistics it shows now
// (laidStats) to dst: the JSON json.Marshal makes of it.
func (s *hostSnapshot) appendEncoded(dst []byte, m *monitor, i int) ([]byte, error) {
	v := &s.views[i]
	js := s.enc[i].Load()
	if js == nil {
		j, err := newHostJSON(v)
		if err != nil {
			return dst, err
		}
		js = &j
		s.enc[i].Store(js)
	}
	return js.appendWith(dst, v, laidStats(m, v))
}

// latestViews is a copy of the views with the statistics they show now
// (laidStats).
func (s *hostSnapshot) latestViews(m *monitor) []engineapi.Host {
	views := slices.Clone(s.views)
	for i := range views {
		laidStats(m, &views[i]).setOn(&views[i])
	}
	return views
}

// carryStats gives the views read without their statistics documents
// those of the list before, when they are of the same time; a view left
// without any says it has none (no time either) until the monitor's
// latest are laid over it.
func carryStats(views, prev []engineapi.Host) {
	byID := make(map[string]*engineapi.Host, len(prev))
	for i := range prev {
		byID[prev[i].ID] = &prev[i]
	}
	for i := range views {
		v := &views[i]
		if v.Stats != nil {
			continue
		}
		if p, ok := byID[v.ID]; ok && p.Stats != nil && !p.StatsAt.Before(v.StatsAt) {
			v.Stats, v.StatsAt = p.Stats, p.StatsAt
			if p.LastSeen.After(v.LastSeen) {
				v.LastSeen = p.LastSeen
			}
			continue
		}
		v.StatsAt = time.Time{}
	}
}

// readHostList reads the brief host list and makes its views (ordered by
// name) and the counts; the views' JSON is made when a page needs it.
// With the list before (prev, on the leading engine), the statistics
// documents are not read: they are the monitor's latest, else the list
// before's (the largest column, and ten thousand of them every few
// seconds).
func readHostList(ctx context.Context, e *engine, prev []engineapi.Host) (*hostSnapshot, error) {
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{Brief: true, NoStats: prev != nil})
	if err != nil {
		return nil, err
	}
	names, err := e.clusterNames(ctx)
	if err != nil {
		return nil, err
	}
	e.reports.load(ctx, e.st, hosts)
	views := make([]engineapi.Host, 0, len(hosts))
	counts := map[string]map[string]int{}
	m := e.monitor()
	for _, h := range hosts {
		v := e.hostView(h, names[h.ClusterID])
		laidStats(m, &v).setOn(&v)
		views = append(views, v)
		c := counts[h.ClusterID]
		if c == nil {
			c = map[string]int{}
			counts[h.ClusterID] = c
		}
		c[string(h.Status)]++
	}
	if prev != nil {
		carryStats(views, prev)
	}
	// The database's order is its collation's; the pages need one order
	// that Go compares (their cursor is the last name of a page).
	slices.SortFunc(views, func(a, b engineapi.Host) int { return strings.Compare(a.Name, b.Name) })
	return &hostSnapshot{views: views, enc: make([]atomic.Pointer[hostJSON], len(views)), counts: counts}, nil
}
