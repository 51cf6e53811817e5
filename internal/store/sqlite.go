package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// OpenSQLite opens (creating it when missing) the SQLite database file at
// path and applies the pending migrations. The file is in WAL mode with a
// busy timeout and foreign keys on; write transactions are BEGIN IMMEDIATE
// and serialized in the process.
//
// One engine process uses a file: it is always the leader of every role
// (TryAcquireLeadership refuses only a second holder in the process).
// Every call checks that the file is still the one opened: deleted or
// replaced under the store, it fails with ErrStorage instead of writing to
// a file nobody will read again.
func OpenSQLite(ctx context.Context, path string, opts Options) (Store, error) {
	const op = "open"
	if strings.TrimSpace(path) == "" {
		return nil, invalid(op, "SQLite database", "path", "is empty")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, invalid(op, "SQLite database", "path", "%q: '?' and '#' are not allowed in the path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{Kind: ErrInvalid, Op: op, Object: "SQLite database", Field: "path", Err: err}
	}
	obj := "SQLite database " + abs
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, &Error{Kind: ErrStorage, Op: op, Object: obj, Detail: "cannot create its directory: " + err.Error(), Err: err}
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	sync := "FULL"
	if opts.SQLiteSynchronousNormal {
		sync = "NORMAL"
	}
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(%s)&_txlock=immediate",
		abs, busy.Milliseconds(), sync)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, sqliteDialect.wrap(ctx, err, op, obj)
	}
	max := opts.MaxConns
	if max <= 0 {
		max = 8
	}
	db.SetMaxOpenConns(max)
	db.SetMaxIdleConns(max)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	fail := func(err error) (Store, error) {
		db.Close()
		return nil, err
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fail(sqliteDialect.wrap(ctx, err, op, obj))
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(newErr(ErrStorage, op, obj, "", fmt.Sprintf("journal mode is %q, not WAL (does the file system support it?)", mode)))
	}
	opened, err := os.Stat(abs)
	if err != nil {
		return fail(&Error{Kind: ErrStorage, Op: op, Object: obj, Err: err})
	}
	s := newSQLStore(db, sqliteDialect)
	s.writeSem = make(chan struct{}, 1)
	s.guard = func() error {
		cur, err := os.Stat(abs)
		switch {
		case err != nil:
			return &Error{Kind: ErrStorage, Object: obj, Err: err,
				Detail: "the database file is gone (deleted while polyvirt had it open?): restore it from a backup or restart the engine"}
		case !os.SameFile(opened, cur):
			return &Error{Kind: ErrStorage, Object: obj,
				Detail: "the database file was replaced while polyvirt had it open: restart the engine to use the new one"}
		}
		return nil
	}
	ls := fileLeaders(abs)
	s.lead = func(ctx context.Context, role string) (Leadership, bool, error) {
		l := &localLeadership{role: role, lost: newLost(), ls: ls, owner: s}
		if !ls.add(role, l) {
			return nil, false, nil
		}
		return l, true, nil
	}
	s.closeHook = func() error { ls.endOwned(s); return nil }
	if _, err := migrate(ctx, db, sqliteDialect, ""); err != nil {
		return fail(err)
	}
	return s, nil
}

// localLeadership is a role held in this process (SQLite).
type localLeadership struct {
	role  string
	lost  lost
	ls    *leaders
	owner *sqlStore
}

// Role implements Leadership.
func (l *localLeadership) Role() string { return l.role }

// Lost implements Leadership.
func (l *localLeadership) Lost() <-chan struct{} { return l.lost.ch }
func (l *localLeadership) end()                  { l.lost.close() }
func (l *localLeadership) holder() any           { return l.owner }

// Check implements Leadership.
func (l *localLeadership) Check(ctx context.Context) error {
	if l.lost.isLost() {
		return newErr(ErrConflict, "check leadership", "role "+l.role, "", "the leadership was released")
	}
	return nil
}

// Release implements Leadership.
func (l *localLeadership) Release(ctx context.Context) error {
	l.ls.remove(l.role, l)
	l.lost.close()
	return nil
}
