package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// sqliteTime is how SQLite stores times: UTC, fixed width, so that text
// order is time order.
const sqliteTime = "2006-01-02T15:04:05.000000Z"

// dialect is what differs between the backends in the shared SQL code.
type dialect struct {
	backend Backend
	// forUpdate locks the rows a SELECT reads until the transaction ends
	// (PostgreSQL; SQLite's write transactions lock the whole file).
	forUpdate string
	// prepare keeps the statements prepared (sqlStore.prepared): the
	// backend parses the SQL of a statement given as text each time
	// (SQLite); PostgreSQL's driver (pgx) keeps its own per connection.
	prepare bool
}

var (
	sqliteDialect   = &dialect{backend: SQLite, prepare: true}
	postgresDialect = &dialect{backend: Postgres, forUpdate: " FOR UPDATE"}
)

// q rewrites the ? placeholders of a query for PostgreSQL ($1, $2, ...).
// The queries of this package hold no literal '?'.
func (d *dialect) q(query string) string {
	if d.backend != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// storedTime is t as both backends keep it: UTC, to the microsecond.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ts is a time argument: NULL for the zero time, else storedTime.
func (d *dialect) ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = storedTime(t)
	if d.backend == SQLite {
		return t.Format(sqliteTime)
	}
	return t
}

// js is a JSON argument: NULL when empty.
func (d *dialect) js(doc json.RawMessage) any {
	if len(doc) == 0 {
		return nil
	}
	return string(doc)
}

// list is a []string argument, stored as a JSON array.
func list(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, err := json.Marshal(l)
	if err != nil { // cannot happen for []string
		return "[]"
	}
	return string(b)
}

// str is an optional text argument: NULL when empty (unique columns where
// "no value" must not collide).
func str(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// The scanners below read a column whatever the backend gives: SQLite
// gives text and integers, PostgreSQL typed values.

// tcol scans a nullable time.
type tcol struct{ p *time.Time }

// Scan implements sql.Scanner.
func (c tcol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.p = time.Time{}
	case time.Time:
		*c.p = x.UTC()
	case string:
		return c.parse(x)
	case []byte:
		return c.parse(string(x))
	default:
		return fmt.Errorf("time column: unexpected %T", v)
	}
	return nil
}

func (c tcol) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time column: %w", err)
	}
	*c.p = t.UTC()
	return nil
}

// nstr scans a nullable text as "" for NULL.
type nstr struct{ p *string }

// Scan implements sql.Scanner.
func (c nstr) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.p = ""
	case string:
		*c.p = x
	case []byte:
		*c.p = string(x)
	default:
		return fmt.Errorf("text column: unexpected %T", v)
	}
	return nil
}

// jcol scans a nullable JSON document.
type jcol struct{ p *json.RawMessage }

// Scan implements sql.Scanner.
func (c jcol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.p = nil
	case string:
		*c.p = json.RawMessage(x)
	case []byte:
		*c.p = append(json.RawMessage(nil), x...)
	default:
		return fmt.Errorf("JSON column: unexpected %T", v)
	}
	return nil
}

// jlist scans a JSON array of strings; NULL and [] give an empty list.
// The lists read are shared between rows (lists): callers read them and
// never change their elements.
type jlist struct{ p *[]string }

// Scan implements sql.Scanner.
func (c jlist) Scan(v any) error {
	var raw json.RawMessage
	if err := (jcol{&raw}).Scan(v); err != nil {
		return err
	}
	out := []string{}
	if len(raw) > 0 {
		if l, ok := lists.get(raw); ok {
			*c.p = l
			return nil
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("JSON list column: %w", err)
		}
		// Clipped: an append to a shared list copies it.
		out = out[:len(out):len(out)]
		lists.put(raw, out)
	}
	*c.p = out
	return nil
}

// listCacheMax bounds the lists shared.
const listCacheMax = 4096

// listCache shares the string lists read from JSON columns between the
// rows that hold the same one: the hosts of one model have the same CPU
// flags and emulated machines, and ten thousand hosts would otherwise be
// ten thousand copies of each list in each copy of the host list the
// engine keeps (the monitoring's, the API's). Lists are read-only.
type listCache struct {
	mu sync.Mutex
	m  map[string][]string
}

// lists is the process's list cache (read-only data, shared by every
// store: a list is the same whichever database it came from).
var lists = listCache{m: map[string][]string{}}

func (c *listCache) get(raw []byte) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[string(raw)]
	return l, ok
}

func (c *listCache) put(raw []byte, l []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) < listCacheMax {
		c.m[string(raw)] = l
	}
}

// The SQLite result codes the classification needs (stable ABI numbers).
const (
	sqliteBusy              = 5
	sqliteLocked            = 6
	sqliteReadOnly          = 8
	sqliteInterrupt         = 9
	sqliteIOErr             = 10
	sqliteCorrupt           = 11
	sqliteFull              = 13
	sqliteCantOpen          = 14
	sqliteConstraint        = 19
	sqliteNotADB            = 26
	sqliteConstraintFK      = 787
	sqliteConstraintTrigger = 1811
	sqliteConstraintUnique  = 2067
	sqliteConstraintPK      = 1555
	sqliteReadOnlyDBMoved   = 1032
)

// classify turns a driver error into a store error kind, the field
// concerned (from a constraint) and a description. ok is false for errors
// it does not know (programming errors: bad SQL, bad arguments).
func (d *dialect) classify(err error) (kind error, field, detail string, ok bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code()
		switch code & 0xff {
		case sqliteConstraint:
			switch code {
			case sqliteConstraintUnique, sqliteConstraintPK:
				return ErrConflict, sqliteField(se.Error()), "already exists", true
			case sqliteConstraintFK:
				return ErrInUse, "", "is referenced by other objects (or references a missing one)", true
			case sqliteConstraintTrigger:
				// ON DELETE RESTRICT reports through the trigger code.
				if strings.Contains(se.Error(), "FOREIGN KEY") {
					return ErrInUse, "", "is referenced by other objects", true
				}
			}
			return ErrInvalid, sqliteField(se.Error()), se.Error(), true
		case sqliteBusy, sqliteLocked:
			return ErrUnavailable, "", "the database is locked by another writer", true
		case sqliteFull:
			return ErrStorage, "", "the disk is full (SQLite: database or disk is full); free space and retry", true
		case sqliteReadOnly:
			if code == sqliteReadOnlyDBMoved {
				return ErrStorage, "", "the database file was moved or deleted while open", true
			}
			return ErrStorage, "", "the database is read-only", true
		case sqliteIOErr, sqliteCorrupt, sqliteCantOpen, sqliteNotADB:
			return ErrStorage, "", se.Error(), true
		case sqliteInterrupt:
			return ErrUnavailable, "", "interrupted", true
		}
		return nil, "", "", false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return ErrConflict, pgField(pe.ConstraintName), "already exists", true
		case pe.Code == "23503":
			return ErrInUse, pgField(pe.ConstraintName), "is referenced by other objects (or references a missing one)", true
		case pe.Code == "23514", pe.Code == "23502", pe.Code == "22P02", pe.Code == "P0001":
			return ErrInvalid, pgField(pe.ConstraintName), pe.Message, true
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03", pe.Code == "57014":
			return ErrUnavailable, "", pe.Message + " (" + pe.Code + ")", true
		case pe.Code == "53100":
			return ErrStorage, "", "the database server's disk is full: " + pe.Message, true
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57P"):
			return ErrUnavailable, "", pe.Message + " (" + pe.Code + ")", true
		case strings.HasPrefix(pe.Code, "58"):
			return ErrStorage, "", pe.Message + " (" + pe.Code + ")", true
		}
		return nil, "", "", false
	}
	if d.backend == Postgres && connectionError(err) {
		msg := strings.Join(strings.Fields(err.Error()), " ") // pgx's messages span lines
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) {
			return ErrUnavailable, "", "cannot connect to PostgreSQL: " + msg, true
		}
		return ErrUnavailable, "", "lost the connection to PostgreSQL: " + msg, true
	}
	return nil, "", "", false
}

// connectionError reports whether err says the connection to the server
// failed or broke.
func connectionError(err error) bool {
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.As(err, &ne), errors.As(err, &ce),
		pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	}
	msg := err.Error()
	for _, s := range []string{"conn closed", "connection reset", "broken pipe", "unexpected EOF",
		"failed to connect", "connection refused", "closed pool", "the database system is"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// sqliteField takes the column out of "UNIQUE constraint failed: t.col".
func sqliteField(msg string) string {
	i := strings.LastIndex(msg, ": ")
	if i < 0 {
		return ""
	}
	cols := msg[i+2:]
	if j := strings.Index(cols, " ("); j >= 0 { // modernc appends " (2067)"
		cols = cols[:j]
	}
	if j := strings.Index(cols, ","); j >= 0 {
		cols = cols[:j]
	}
	if j := strings.LastIndex(cols, "."); j >= 0 {
		cols = cols[j+1:]
	}
	return strings.TrimSpace(strings.TrimSuffix(cols, ")"))
}

// pgField takes the column out of a constraint named TABLE_COLUMN_key or
// TABLE_COLUMN_fkey (the names the migrations give).
func pgField(constraint string) string {
	for _, table := range []string{"users_", "clusters_", "hosts_", "host_stats_", "vms_", "events_", "firmware_operations_",
		"storage_pools_", "host_pools_", "template_volumes_", "vm_volumes_", "volumes_", "images_", "templates_", "snapshots_"} {
		if strings.HasPrefix(constraint, table) {
			c := strings.TrimPrefix(constraint, table)
			for _, suf := range []string{"_key", "_fkey", "_check", "_pkey"} {
				c = strings.TrimSuffix(c, suf)
			}
			if c == "one_active" {
				return "host_id"
			}
			if c == "" {
				return "id"
			}
			return c
		}
	}
	return constraint
}

// wrap turns an error of the database into a store error for op on object.
// Errors already wrapped and context errors pass through.
func (d *dialect) wrap(ctx context.Context, err error, op, object string) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	if ctx != nil && ctx.Err() != nil {
		return fmt.Errorf("store: %s %s: %w", op, object, ctx.Err())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s %s: %w", op, object, err)
	}
	kind, field, detail, ok := d.classify(err)
	if !ok {
		return &Error{Op: op, Object: object, Err: err}
	}
	return &Error{Kind: kind, Op: op, Object: object, Field: field, Detail: detail, Err: err}
}
