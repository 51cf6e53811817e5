package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/engine/wire"
	"polyvirt/internal/store"
)

// hostListTTL is how long the API serves the host list from memory: the
// statistics in it are at most this much older than in the database, and
// another engine's changes take this long to show; this engine's own
// changes show at once (they drop the list).
const hostListTTL = time.Second

// hostList is the brief host list the API's lists and counts are served
// from: read at most once per hostListTTL, whatever the number of callers
// (a thousand hosts listed ten times a second is one read and one encoding
// per second).
type hostList struct {
	// gen counts the invalidations; loaded is the gen the list was read at.
	gen atomic.Uint64

	mu     sync.Mutex
	at     time.Time
	loaded uint64
	views  []wire.Host
	// all is the JSON answer of the unfiltered list.
	all []byte
	// counts are the hosts per cluster and status.
	counts map[string]map[string]int
}

// invalidate drops the list: the next caller reads it again. It does not
// wait for a read under way.
func (l *hostList) invalidate() { l.gen.Add(1) }

// get returns the list, read again when older than the TTL.
func (l *hostList) get(ctx context.Context, e *Engine) ([]wire.Host, []byte, map[string]map[string]int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gen := l.gen.Load()
	if !l.at.IsZero() && l.loaded == gen && time.Since(l.at) < hostListTTL {
		return l.views, l.all, l.counts, nil
	}
	start := time.Now()
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{Brief: true})
	if err != nil {
		return nil, nil, nil, err
	}
	names, err := e.clusterNames(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	views := make([]wire.Host, 0, len(hosts))
	counts := map[string]map[string]int{}
	for _, h := range hosts {
		views = append(views, hostView(h, names[h.ClusterID]))
		m := counts[h.ClusterID]
		if m == nil {
			m = map[string]int{}
			counts[h.ClusterID] = m
		}
		m[string(h.Status)]++
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(views); err != nil {
		return nil, nil, nil, err
	}
	// Dropped while it was read: served to this caller, read again by the
	// next one (loaded is older than gen then).
	l.views, l.all, l.counts, l.at, l.loaded = views, buf.Bytes(), counts, start, gen
	return l.views, l.all, l.counts, nil
}
