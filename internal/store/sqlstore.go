package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// execer is what *sql.DB and *sql.Tx have in common.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// sqlStore is the implementation both backends share: database/sql over
// modernc.org/sqlite or over a pgxpool (pgx's stdlib bridge), with the
// differences in a dialect and a few hooks.
type sqlStore struct {
	queries
	db *sql.DB
	d  *dialect
	// writeSem serializes write transactions (SQLite has one writer; waiting
	// here is cheaper and fairer than SQLite's busy loop). nil: no limit.
	writeSem chan struct{}
	// guard checks, before each operation, that the database is usable
	// (SQLite: the file is still the one opened). nil: nothing to check.
	guard func() error
	// lead implements TryAcquireLeadership.
	lead func(ctx context.Context, role string) (Leadership, bool, error)
	// closeHook releases what the backend holds besides db.
	closeHook func() error
	// copyStats: UpdateHostStats of more hosts than one statement takes,
	// outside a transaction, goes through COPY (copyHostStats; PostgreSQL:
	// 1,000 hosts' reports in 28% less time with 9 times fewer bytes
	// allocated; fewer take less time as UPDATEs, BenchmarkHostStatsBatch*).
	copyStats bool

	// stmts keeps the prepared statements by their SQL (the dialect's),
	// nstmts counts them (at most maxStmts), when the dialect prepares.
	stmts  sync.Map
	nstmts atomic.Int32

	closeOnce sync.Once
	closeErr  error
}

// maxStmts bounds the statements kept prepared: the queries are the
// package's own, a few hundred texts (some with as many placeholders as
// a list given), and any beyond are run as text.
const maxStmts = 512

// maxStmtLen is the longest SQL kept prepared: the batch writes' (a row of
// placeholders per host, as many rows as hosts in the batch) are long,
// of many lengths, and each large once prepared; they run as text.
const maxStmtLen = 2048

// prepareWait bounds the wait for a connection to prepare a statement on
// from within a transaction (which holds one of the pool's; another was
// free a moment before): past it the statement runs as text this time.
const prepareWait = 50 * time.Millisecond

func newSQLStore(db *sql.DB, d *dialect) *sqlStore {
	s := &sqlStore{db: db, d: d}
	s.queries = queries{s: s, ex: db}
	return s
}

// Backend implements Store.
func (s *sqlStore) Backend() Backend { return s.d.backend }

func (s *sqlStore) check(op string) error {
	if s.guard == nil {
		return nil
	}
	if err := s.guard(); err != nil {
		var se *Error
		if errors.As(err, &se) && se.Op == "" {
			se.Op = op
		}
		return err
	}
	return nil
}

// Ping implements Store.
func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.check("ping"); err != nil {
		return err
	}
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return s.d.wrap(ctx, err, "ping", "database")
	}
	return nil
}

// SchemaVersion implements Store.
func (s *sqlStore) SchemaVersion(ctx context.Context) (int, error) {
	if err := s.check("read schema version"); err != nil {
		return 0, err
	}
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, s.d.wrap(ctx, err, "read schema version", "schema")
	}
	return int(v.Int64), nil
}

// TryAcquireLeadership implements Store.
func (s *sqlStore) TryAcquireLeadership(ctx context.Context, role string) (Leadership, bool, error) {
	if err := ValidName(role); err != nil {
		return nil, false, invalid("acquire leadership", "", "role", "%s", err)
	}
	if err := s.check("acquire leadership"); err != nil {
		return nil, false, err
	}
	return s.lead(ctx, role)
}

// Close implements Store.
func (s *sqlStore) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		s.stmts.Range(func(_, v any) bool {
			errs = append(errs, v.(*sql.Stmt).Close())
			return true
		})
		errs = append(errs, s.db.Close())
		if s.closeHook != nil {
			errs = append(errs, s.closeHook())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// InTx runs fn in one write transaction.
func (s *sqlStore) InTx(ctx context.Context, fn func(tx Tx) error) error {
	return s.runTx(ctx, "transaction", func(q *queries) error { return fn(q) })
}

// runTx runs fn in a transaction of its own: committed when fn returns nil
// and no statement failed, rolled back otherwise.
func (s *sqlStore) runTx(ctx context.Context, op string, fn func(q *queries) error) (err error) {
	if err := s.check(op); err != nil {
		return err
	}
	if s.writeSem != nil {
		select {
		case s.writeSem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("store: %s: %w", op, ctx.Err())
		}
		defer func() { <-s.writeSem }()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.d.wrap(ctx, err, op, "")
	}
	st := &txState{}
	q := &queries{s: s, ex: tx, tx: st}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	if err := fn(q); err != nil {
		return err
	}
	if st.failed != nil {
		return st.failed
	}
	done = true
	if err := tx.Commit(); err != nil {
		return s.d.wrap(ctx, err, op, "commit")
	}
	return nil
}

// txState is the state of one transaction.
type txState struct {
	// failed is the first database error in the transaction: it is
	// spoilt, and the calls after it fail.
	failed error
}

// queries implements Queries on the database (each write its own
// transaction) or inside a transaction (tx != nil).
type queries struct {
	s  *sqlStore
	ex execer
	tx *txState
}

// prepared answers the statement of query (the dialect's SQL) prepared on
// the database, when the dialect prepares and it could be; nil: run the
// query as text.
func (s *sqlStore) prepared(ctx context.Context, query string, inTx bool) *sql.Stmt {
	if !s.d.prepare || len(query) > maxStmtLen {
		return nil
	}
	if v, ok := s.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if s.nstmts.Load() >= maxStmts {
		return nil
	}
	if inTx {
		// The transaction holds a connection of the pool: prepare on
		// another only when one is free now (a pool of one never has).
		if s.db.Stats().Idle == 0 {
			return nil
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, prepareWait)
		defer cancel()
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		// Run as text: its error, if it has one, is the statement's.
		return nil
	}
	if v, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return v.(*sql.Stmt)
	}
	s.nstmts.Add(1)
	return st
}

// stmt answers the statement of query (the dialect's SQL) prepared for
// these queries (the database's, or the transaction's), nil when it is
// run as text.
func (q *queries) stmt(ctx context.Context, query string) *sql.Stmt {
	tx, inTx := q.ex.(*sql.Tx)
	st := q.s.prepared(ctx, query, inTx)
	if st == nil || !inTx {
		return st
	}
	// The transaction's connection reuses the statement when it was
	// prepared there before, and prepares it otherwise.
	return tx.StmtContext(ctx, st)
}

// write runs fn in the current transaction, or in one of its own.
func (q *queries) write(ctx context.Context, op string, fn func(w *queries) error) error {
	if q.tx == nil {
		return q.s.runTx(ctx, op, fn)
	}
	if q.tx.failed != nil {
		return q.spoilt(op)
	}
	return fn(q)
}

// read runs fn on the database or in the current transaction.
func (q *queries) read(op string, fn func() error) error {
	if q.tx == nil {
		if err := q.s.check(op); err != nil {
			return err
		}
	} else if q.tx.failed != nil {
		return q.spoilt(op)
	}
	return fn()
}

func (q *queries) spoilt(op string) error {
	return &Error{Kind: ErrInvalid, Op: op, Detail: "the transaction failed earlier and must be rolled back", Err: q.tx.failed}
}

// fail records a database error: it spoils the transaction.
func (q *queries) fail(ctx context.Context, err error, op, object string) error {
	err = q.s.d.wrap(ctx, err, op, object)
	if q.tx != nil && q.tx.failed == nil {
		q.tx.failed = err
	}
	return err
}

func (q *queries) exec(ctx context.Context, op, object, query string, args ...any) (int64, error) {
	query = q.s.d.q(query)
	var res sql.Result
	var err error
	if st := q.stmt(ctx, query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = q.ex.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return 0, q.fail(ctx, err, op, object)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, q.fail(ctx, err, op, object)
	}
	return n, nil
}

// one reads one row with scan; no row is ErrNotFound.
func (q *queries) one(ctx context.Context, op, object string, scan func(rowScanner) error, query string, args ...any) error {
	query = q.s.d.q(query)
	var row *sql.Row
	if st := q.stmt(ctx, query); st != nil {
		row = st.QueryRowContext(ctx, args...)
	} else {
		row = q.ex.QueryRowContext(ctx, query, args...)
	}
	err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(op, object)
	}
	if err != nil {
		return q.fail(ctx, err, op, object)
	}
	return nil
}

// many reads rows with scan.
func (q *queries) many(ctx context.Context, op, object string, scan func(rowScanner) error, query string, args ...any) error {
	query = q.s.d.q(query)
	var rows *sql.Rows
	var err error
	if st := q.stmt(ctx, query); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = q.ex.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return q.fail(ctx, err, op, object)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return q.fail(ctx, err, op, object)
		}
	}
	if err := rows.Err(); err != nil {
		return q.fail(ctx, err, op, object)
	}
	return nil
}

// exists reports whether a query returns a row.
func (q *queries) exists(ctx context.Context, op, object, query string, args ...any) (bool, error) {
	var one int
	err := q.one(ctx, op, object, func(r rowScanner) error { return r.Scan(&one) }, query, args...)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// count runs a COUNT query.
func (q *queries) count(ctx context.Context, op, object, query string, args ...any) (int64, error) {
	var n int64
	err := q.one(ctx, op, object, func(r rowScanner) error { return r.Scan(&n) }, query, args...)
	return n, err
}

// afterUpdate explains an UPDATE ... WHERE id = ? AND version = ? that
// changed nothing: the row is gone (ErrNotFound) or newer (ErrConflict).
func (q *queries) afterUpdate(ctx context.Context, op, object, table, id string, version int64) error {
	ok, err := q.exists(ctx, op, object, "SELECT 1 FROM "+table+" WHERE id = ?", id)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(op, object)
	}
	return staleVersion(op, object, version)
}

var (
	_ Store = (*sqlStore)(nil)
	_ Tx    = (*queries)(nil)
)
