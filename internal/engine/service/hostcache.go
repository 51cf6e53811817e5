package service

import (
	"bytes"
	"context"
	"encoding/json"
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

// hostList is the brief host list the API's lists and the clusters' host
// counts are served from: a thousand hosts listed ten times a second is
// one read and one encoding per second. When the list is a little old
// (under hostListMaxAge), the callers get it at once while it is read
// again in the background; when it is older, or was dropped (a change made
// here), they wait for the new one.
type hostList struct {
	// gen counts the drops; the list held was read at generation loaded.
	gen atomic.Uint64

	mu         sync.Mutex
	at         time.Time
	loaded     uint64
	refreshing bool
	views      []engineapi.Host
	// all is the JSON answer of the unfiltered list.
	all []byte
	// counts are the hosts per cluster and status.
	counts map[string]map[string]int
}

// invalidate drops the list: the next caller reads it again. It does not
// wait for a read under way.
func (l *hostList) invalidate() { l.gen.Add(1) }

// get returns the list.
func (l *hostList) get(ctx context.Context, e *engine) ([]engineapi.Host, []byte, map[string]map[string]int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gen := l.gen.Load()
	if age := time.Since(l.at); !l.at.IsZero() && l.loaded == gen && age < hostListMaxAge {
		if age >= hostListTTL && !l.refreshing {
			l.refreshing = true
			go l.refresh(e, gen)
		}
		return l.views, l.all, l.counts, nil
	}
	views, all, counts, err := readHostList(ctx, e)
	if err != nil {
		return nil, nil, nil, err
	}
	l.views, l.all, l.counts, l.at, l.loaded = views, all, counts, time.Now(), gen
	return views, all, counts, nil
}

// refresh reads the list again in the background; a failure drops it, so
// that the next caller reads it (and gets the error).
func (l *hostList) refresh(e *engine, gen uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	views, all, counts, err := readHostList(ctx, e)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshing = false
	if err != nil {
		l.at = time.Time{}
		return
	}
	if l.loaded == gen {
		l.views, l.all, l.counts, l.at = views, all, counts, start
	}
}

// readHostList reads the brief host list and makes its views, answer and
// counts.
func readHostList(ctx context.Context, e *engine) ([]engineapi.Host, []byte, map[string]map[string]int, error) {
	hosts, err := e.st.ListHosts(ctx, store.HostFilter{Brief: true})
	if err != nil {
		return nil, nil, nil, err
	}
	names, err := e.clusterNames(ctx)
	if err != nil {
		return nil, nil, nil, err
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
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(views); err != nil {
		return nil, nil, nil, err
	}
	return views, buf.Bytes(), counts, nil
}
