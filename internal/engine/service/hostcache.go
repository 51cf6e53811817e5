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

// hostListTTL is how long the API serves the host list from memory before
// reading it again: the statistics in it lag the database by about this
// much, and another engine's changes take this long to show. This
// engine's own changes show at once (they drop the list).
const hostListTTL = time.Second

// hostListMaxAge is the oldest list served while a newer one is read in
// the background; an older one is read again before answering.
const hostListMaxAge = 5 * time.Second

// hostListLeaderMaxAge is hostListMaxAge on the leading engine, whose list
// is made again cheaply (the statistics laid over it while the rows stay
// the same): a caller after a quiet while gets statistics as fresh as the
// monitor's, not those of the last call.
const hostListLeaderMaxAge = 2 * hostListTTL

// hostListLeaderRead is the longest the leading engine serves the list
// without reading its rows from the database again. In between, every
// hostListTTL, it asks the database for the hosts' revision (from an
// index) and reads the rows only when the revision changed (another
// engine changed a host; its own changes drop the list), and lays its
// monitor's latest statistics over the list held (restat): a few hosts'
// encodings instead of reading ten thousand rows.
const hostListLeaderRead = 5 * time.Minute

// hostList is the brief host list the API's lists and the clusters' host
// counts are served from: a thousand hosts listed ten times a second is
// one read and one encoding per second. When the list is a little old
// (under hostListMaxAge), the callers get it at once while it is read
// again in the background; when it is older, or was dropped (a change made
// here), they wait for the new one. On the leading engine the statistics
// in it are its monitor's latest (at most hostListTTL old), and the rows
// are read again when the hosts' revision changed, or after
// hostListLeaderRead.
type hostList struct {
	// gen counts the drops; the list held was read at generation loaded.
	gen atomic.Uint64

	mu         sync.Mutex
	at         time.Time
	readAt     time.Time
	loaded     uint64
	set        uint64
	refreshing bool
	// views are ordered by name (byte order), for the API's pages.
	views []engineapi.Host
	// enc holds each view's JSON: a page of the API's list is these
	// joined; js each view's JSON without its statistics (encoded once
	// per read, the statistics spliced in: hostJSON).
	enc [][]byte
	js  []hostJSON
	// counts are the hosts per cluster and status.
	counts map[string]map[string]int
	// rev is the hosts' revision read before the rows held (leader only).
	rev store.HostsRevision
}

// invalidate drops the list: the next caller reads it again. It does not
// wait for a read under way.
func (l *hostList) invalidate() { l.gen.Add(1) }

// get returns the list.
func (l *hostList) get(ctx context.Context, e *engine) ([]engineapi.Host, [][]byte, map[string]map[string]int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gen := l.gen.Load()
	if !l.at.IsZero() && l.loaded == gen {
		age := time.Since(l.at)
		if age < hostListTTL {
			return l.views, l.enc, l.counts, nil
		}
		maxAge := hostListMaxAge
		if e.monitor() != nil {
			maxAge = hostListLeaderMaxAge
		}
		if age < maxAge {
			if !l.refreshing {
				l.refreshing = true
				go l.refresh(e, gen, l.set, l.rev, l.readAt, l.views, l.js, l.enc)
			}
			return l.views, l.enc, l.counts, nil
		}
	}
	// The leader reads the hosts' revision first: a list too old to serve
	// as it is whose rows are still current (the same revision) gets only
	// the statistics laid over it again, here; otherwise the rows are read
	// (and the list remembers the revision they are of).
	var rev store.HostsRevision
	if e.monitor() != nil {
		var err error
		if rev, err = e.st.HostsRevision(ctx); err != nil {
			return nil, nil, nil, err
		}
		if !l.at.IsZero() && l.loaded == gen && rev == l.rev && time.Since(l.readAt) < hostListLeaderRead {
			views, enc, err := restat(e, l.views, l.js, l.enc)
			if err != nil {
				return nil, nil, nil, err
			}
			l.set++
			l.views, l.enc, l.at = views, enc, time.Now()
			return l.views, l.enc, l.counts, nil
		}
	}
	views, js, enc, counts, err := readHostList(ctx, e, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	l.set++
	l.views, l.js, l.enc, l.counts, l.loaded, l.rev = views, js, enc, counts, gen, rev
	l.at = time.Now()
	l.readAt = l.at
	return views, enc, counts, nil
}

// refresh makes the list again in the background: the leader reads the
// hosts' revision, and when it is still rev (the list held, set number
// set, read at readAt) and the rows are not older than
// hostListLeaderRead, lays its monitor's latest statistics over the list
// held (views and enc); otherwise the rows are read again. A failure
// drops the list, so that the next caller reads it (and gets the error).
func (l *hostList) refresh(e *engine, gen, set uint64, rev store.HostsRevision, readAt time.Time, views []engineapi.Host, js []hostJSON, enc [][]byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	var counts map[string]map[string]int
	var err error
	read := true
	var prev []engineapi.Host
	if e.monitor() != nil {
		var now store.HostsRevision
		now, err = e.st.HostsRevision(ctx)
		read = err == nil && (now != rev || time.Since(readAt) >= hostListLeaderRead)
		rev, prev = now, views
	}
	switch {
	case err != nil:
	case read:
		views, js, enc, counts, err = readHostList(ctx, e, prev)
	default:
		views, enc, err = restat(e, views, js, enc)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshing = false
	if err != nil {
		l.at = time.Time{}
		return
	}
	if l.loaded != gen || (!read && l.set != set) {
		return
	}
	l.set++
	l.views, l.enc, l.at = views, enc, start
	if read {
		l.js, l.counts, l.readAt, l.rev = js, counts, start, rev
	}
}

// restat lays the monitor's latest statistics over a list: the hosts
// whose statistics are newer are copied and their statistics spliced into
// their JSON (js) again; the list given is not changed.
func restat(e *engine, views []engineapi.Host, js []hostJSON, enc [][]byte) ([]engineapi.Host, [][]byte, error) {
	views, enc = slices.Clone(views), slices.Clone(enc)
	changed := overlayStats(e, views)
	for _, i := range changed {
		b, err := js[i].with(&views[i])
		if err != nil {
			return nil, nil, err
		}
		enc[i] = b
	}
	return views, enc, nil
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

// overlayStats lays the monitor's latest statistics (when this engine
// leads) over views, and answers the indexes of those it changed.
func overlayStats(e *engine, views []engineapi.Host) []int {
	m := e.monitor()
	if m == nil {
		return nil
	}
	var changed []int
	for i := range views {
		v := &views[i]
		if s := m.latestStats(v.ID); s != nil && s.At.After(v.StatsAt) && len(s.Stats) > 0 {
			v.Stats, v.StatsAt = s.Stats, s.At
			if s.At.After(v.LastSeen) {
				v.LastSeen = s.At
			}
			changed = append(changed, i)
		}
	}
	return changed
}

// readHostList reads the brief host list and makes its views (ordered by
// name), their JSON and the counts. With the list before (prev, on the
// leading engine), the statistics documents are not read: they are the
// monitor's latest, else the list before's (the largest column, and
// ten thousand of them every few seconds).
func readHostList(ctx context.Context, e *engine, prev []engineapi.Host) ([]engineapi.Host, []hostJSON, [][]byte, map[string]map[string]int, error) {
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{Brief: true, NoStats: prev != nil})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	names, err := e.clusterNames(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	e.reports.load(ctx, e.st, hosts)
	views := make([]engineapi.Host, 0, len(hosts))
	counts := map[string]map[string]int{}
	for _, h := range hosts {
		views = append(views, e.hostView(h, names[h.ClusterID]))
		m := counts[h.ClusterID]
		if m == nil {
			m = map[string]int{}
			counts[h.ClusterID] = m
		}
		m[string(h.Status)]++
	}
	overlayStats(e, views)
	if prev != nil {
		carryStats(views, prev)
	}
	// The database's order is its collation's; the pages need one order
	// that Go compares (their cursor is the last name of a page).
	slices.SortFunc(views, func(a, b engineapi.Host) int { return strings.Compare(a.Name, b.Name) })
	js := make([]hostJSON, len(views))
	enc := make([][]byte, len(views))
	for i := range views {
		if js[i], err = newHostJSON(&views[i]); err != nil {
			return nil, nil, nil, nil, err
		}
		if enc[i], err = js[i].with(&views[i]); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	return views, js, enc, counts, nil
}
