package store

import (
	"hash/fnv"
	"sync"
)

// lockKey is the PostgreSQL advisory lock key of a name in a schema: the
// locks of installations in other schemas of one database never collide.
func lockKey(schema, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("polyvirt\x00" + schema + "\x00" + name))
	return int64(h.Sum64())
}

// leaders keeps the leaderships a store holds, to end them at Close and,
// in one process, to refuse a role already held.
type leaders struct {
	mu   sync.Mutex
	held map[string]releaser
}

type releaser interface {
	Leadership
	end()
	holder() any
}

// fileLeaders is the registry of the SQLite file at path: every Store of
// the process on that file shares it, so one role has one holder.
func fileLeaders(path string) *leaders {
	fileLeadersMu.Lock()
	defer fileLeadersMu.Unlock()
	l, ok := fileLeadersByPath[path]
	if !ok {
		l = &leaders{}
		fileLeadersByPath[path] = l
	}
	return l
}

var (
	fileLeadersMu     sync.Mutex
	fileLeadersByPath = map[string]*leaders{}
)

func (l *leaders) add(role string, r releaser) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[string]releaser{}
	}
	if old, ok := l.held[role]; ok {
		select {
		case <-old.Lost():
		default:
			return false
		}
	}
	l.held[role] = r
	return true
}

func (l *leaders) remove(role string, r releaser) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[role] == r {
		delete(l.held, role)
	}
}

// endOwned ends the leaderships a holder (a Store) has; nil ends all.
func (l *leaders) endOwned(holder any) {
	l.mu.Lock()
	var all []releaser
	for role, r := range l.held {
		if holder == nil || r.holder() == holder {
			all = append(all, r)
			delete(l.held, role)
		}
	}
	l.mu.Unlock()
	for _, r := range all {
		r.end()
	}
}

// lost is the Lost channel and its closing, shared by the leaderships.
type lost struct {
	once sync.Once
	ch   chan struct{}
}

func newLost() lost { return lost{ch: make(chan struct{})} }

func (l *lost) close() { l.once.Do(func() { close(l.ch) }) }

func (l *lost) isLost() bool {
	select {
	case <-l.ch:
		return true
	default:
		return false
	}
}
