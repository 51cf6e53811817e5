// Package store is the engine's persistence: one interface (Store) with two
// implementations that share a schema, its migrations and their behaviour,
// down to the errors they return:
//
//   - SQLite (modernc.org/sqlite, pure Go): the default, one file under the
//     engine's data directory, WAL journal, a busy timeout, foreign keys on,
//     every change in a transaction. One engine process owns the file and
//     is always the leader.
//   - PostgreSQL (github.com/jackc/pgx/v5 through pgxpool), for several
//     engine processes on one database: they share the data safely
//     (transactions, unique keys, optimistic versions) and elect the one
//     that monitors the hosts with an advisory lock (TryAcquireLeadership).
//
// Every method that changes data runs in a transaction, its own or the one
// of InTx. Objects that two engines could change at once (users, clusters,
// hosts, VMs, firmware operations) carry a Version: an update names the
// version it read and fails with ErrConflict when someone else got there
// first. Errors are *Error values wrapping ErrNotFound, ErrConflict,
// ErrInUse, ErrInvalid, ErrExpired, ErrUnavailable (retryable) or
// ErrStorage, naming the object and the field.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Backend names an implementation.
type Backend string

// The backends.
const (
	SQLite   Backend = "sqlite"
	Postgres Backend = "postgres"
)

// Queries are the data operations, on a Store (each call its own
// transaction) or inside InTx (all calls one transaction).
type Queries interface {
	// CreateUser adds a user; ID (generated when empty), Version, Created
	// and Updated are filled in. A duplicate name or token is ErrConflict.
	CreateUser(ctx context.Context, u *User) error
	// GetUser returns a user by ID.
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByName returns a user by name.
	GetUserByName(ctx context.Context, name string) (User, error)
	// GetUserByTokenHash returns the user whose API token has this hash.
	GetUserByTokenHash(ctx context.Context, hash string) (User, error)
	// ListUsers lists the users by name.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser writes a user's name, role and token hash if its version
	// is still u.Version, then increments u.Version.
	UpdateUser(ctx context.Context, u *User) error
	// DeleteUser removes a user, with its password and web sessions.
	DeleteUser(ctx context.Context, id string) error

	// SetUserPassword stores the hash of a user's web UI password
	// (package password); "" removes it. An unknown user is ErrNotFound.
	SetUserPassword(ctx context.Context, userID, hash string) error
	// GetUserPassword returns the hash of a user's password; ErrNotFound
	// when the user has none.
	GetUserPassword(ctx context.Context, userID string) (string, error)
	// CreateWebSession records a signed-in web session (Created and
	// LastSeen are filled in) and removes the sessions that ended.
	CreateWebSession(ctx context.Context, s *WebSession) error
	// GetWebSession returns a session by the hash of its identifier:
	// ErrNotFound when there is none (or its user was removed), ErrExpired
	// when it ended.
	GetWebSession(ctx context.Context, idHash string) (WebSession, error)
	// TouchWebSession records that a session was used and its new expiry.
	TouchWebSession(ctx context.Context, idHash string, seen, expires time.Time) error
	// DeleteWebSession ends a session (sign-out).
	DeleteWebSession(ctx context.Context, idHash string) error
	// DeleteUserWebSessions ends every session of a user (a new
	// password) and returns how many there were.
	DeleteUserWebSessions(ctx context.Context, userID string) (int64, error)
	// CreateConsoleTicket records a console ticket (by its hash) and
	// removes the tickets that expired.
	CreateConsoleTicket(ctx context.Context, t *ConsoleTicket) error
	// TakeConsoleTicket uses a ticket once, atomically: of two concurrent
	// takers exactly one gets it. An unknown or used ticket is
	// ErrNotFound, an expired one ErrExpired (and it is gone too).
	TakeConsoleTicket(ctx context.Context, hash string) (ConsoleTicket, error)

	// CreateCluster adds a cluster.
	CreateCluster(ctx context.Context, c *Cluster) error
	// GetCluster returns a cluster by ID.
	GetCluster(ctx context.Context, id string) (Cluster, error)
	// GetClusterByName returns a cluster by name.
	GetClusterByName(ctx context.Context, name string) (Cluster, error)
	// ListClusters lists the clusters by name.
	ListClusters(ctx context.Context) ([]Cluster, error)
	// UpdateCluster writes a cluster if its version is still c.Version.
	// Changing a defined architecture while the cluster has hosts or VMs
	// is ErrInUse.
	UpdateCluster(ctx context.Context, c *Cluster) error
	// DeleteCluster removes a cluster; ErrInUse while it has hosts or VMs.
	DeleteCluster(ctx context.Context, id string) error

	// CreateHost adds a host to an existing cluster.
	CreateHost(ctx context.Context, h *Host) error
	// GetHost returns a host by ID, with its capabilities and stats.
	GetHost(ctx context.Context, id string) (Host, error)
	// GetHostByName returns a host by name.
	GetHostByName(ctx context.Context, name string) (Host, error)
	// GetHostByCertFingerprint returns the host whose agent certificate
	// has this fingerprint.
	GetHostByCertFingerprint(ctx context.Context, fingerprint string) (Host, error)
	// ListHosts lists hosts by name.
	ListHosts(ctx context.Context, f HostFilter) ([]Host, error)
	// CountHosts counts the hosts of every cluster by status (cluster ID →
	// status → count; clusters without hosts are absent).
	CountHosts(ctx context.Context) (map[string]map[HostStatus]int, error)
	// HostsRevision summarizes the hosts table cheaply (from an index):
	// it differs whenever a host was added, changed or removed since an
	// earlier answer (statistics are not host changes).
	HostsRevision(ctx context.Context) (HostsRevision, error)
	// UpdateHost writes a host (everything but its stats and join token)
	// if its version is still h.Version.
	UpdateHost(ctx context.Context, h *Host) error
	// UpdateHostStats records monitoring reports and when the hosts were
	// last seen, all in one transaction, without version checks (the last
	// report wins). Reports of hosts that do not exist (removed meanwhile)
	// are skipped and their IDs returned; err is a database failure, and
	// then nothing was written.
	UpdateHostStats(ctx context.Context, stats []HostStats) (missing []string, err error)
	// SetHostJoinToken gives a host a new one-time join token (its hash)
	// valid until expires, replacing any previous one; the host's version
	// changes.
	SetHostJoinToken(ctx context.Context, hostID, hash string, expires time.Time) error
	// ConsumeJoinToken uses a join token once, atomically: it returns the
	// host the token was issued for. An unknown token is ErrNotFound, an
	// expired one ErrExpired, a used one ErrConflict; of two concurrent
	// calls with one token exactly one succeeds. The host's version changes.
	ConsumeJoinToken(ctx context.Context, hash string) (Host, error)
	// DeleteHost removes a host and its firmware history; ErrInUse while
	// VMs run on it or are pinned to it, or a firmware operation is active.
	DeleteHost(ctx context.Context, id string) error

	// CreateVM adds a VM to an existing cluster.
	CreateVM(ctx context.Context, vm *VM) error
	// GetVM returns a VM by ID.
	GetVM(ctx context.Context, id string) (VM, error)
	// GetVMByName returns a VM by name.
	GetVMByName(ctx context.Context, name string) (VM, error)
	// ListVMs lists VMs by name.
	ListVMs(ctx context.Context, f VMFilter) ([]VM, error)
	// UpdateVM writes a VM if its version is still vm.Version; a change of
	// State sets StateChanged.
	UpdateVM(ctx context.Context, vm *VM) error
	// DeleteVM removes a VM.
	DeleteVM(ctx context.Context, id string) error

	// AppendEvent adds an event to the audit log; ID (and Time, when zero)
	// are filled in.
	AppendEvent(ctx context.Context, e *Event) error
	// ListEvents returns a page of events, newest first.
	ListEvents(ctx context.Context, f EventFilter) (EventPage, error)

	// CreateFirmwareOperation starts a firmware operation on a host;
	// ErrConflict when the host already has one that has not ended.
	CreateFirmwareOperation(ctx context.Context, op *FirmwareOperation) error
	// GetFirmwareOperation returns an operation by ID.
	GetFirmwareOperation(ctx context.Context, id string) (FirmwareOperation, error)
	// GetActiveFirmwareOperation returns the host's operation that has not
	// ended; ErrNotFound when there is none.
	GetActiveFirmwareOperation(ctx context.Context, hostID string) (FirmwareOperation, error)
	// ListFirmwareOperations lists a host's operations, newest first.
	ListFirmwareOperations(ctx context.Context, hostID string) ([]FirmwareOperation, error)
	// UpdateFirmwareOperation writes an operation (state, levels, steps,
	// error) if its version is still op.Version. An ended operation cannot
	// be reopened (ErrInvalid).
	UpdateFirmwareOperation(ctx context.Context, op *FirmwareOperation) error

	// CreateRollout starts a cluster's rolling firmware update; ErrConflict
	// when the cluster already has one that has not ended.
	CreateRollout(ctx context.Context, r *Rollout) error
	// GetRollout returns a rollout by ID.
	GetRollout(ctx context.Context, id string) (Rollout, error)
	// ListRollouts lists rollouts, newest first.
	ListRollouts(ctx context.Context, f RolloutFilter) ([]Rollout, error)
	// UpdateRollout writes a rollout's state and document if its version
	// is still r.Version. An ended rollout cannot be reopened (ErrInvalid).
	UpdateRollout(ctx context.Context, r *Rollout) error

	// StorageQueries: pools, volumes, images, templates, snapshots.
	StorageQueries
}

// Tx is a transaction: the data operations, all committed together by
// InTx or none. After a call inside a Tx fails with a database error the
// transaction is spoilt (PostgreSQL aborts it): the later calls fail, and
// InTx rolls back.
type Tx interface {
	Queries
}

// Store is the engine's database.
type Store interface {
	Queries
	// InTx runs fn in one transaction: committed when fn returns nil,
	// rolled back when it returns an error (returned as it is) or panics.
	// It runs at the database's isolation: read committed on PostgreSQL
	// (the store locks the rows its checks depend on), serializable on
	// SQLite (one writer at a time).
	// Objects fn changed through pointers keep the values written even
	// when the transaction is rolled back.
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// TryAcquireLeadership tries, without waiting, to become the leader
	// of a role ("monitoring") among the engines that share this database.
	// On PostgreSQL it holds a session advisory lock on a connection of its
	// own: the lock is released when that connection or its process dies,
	// and another engine's next try gets it. On SQLite the one process is
	// the leader; a second holder in that process is refused.
	TryAcquireLeadership(ctx context.Context, role string) (Leadership, bool, error)
	// Backend names the implementation.
	Backend() Backend
	// SchemaVersion is the highest migration applied.
	SchemaVersion(ctx context.Context) (int, error)
	// Ping checks that the database answers (and, for SQLite, that its
	// file is still the one opened).
	Ping(ctx context.Context) error
	// Close releases the database; leaderships end.
	Close() error
}

// Leadership is a role held by this engine among those sharing the
// database.
type Leadership interface {
	// Role is the role held.
	Role() string
	// Lost is closed when the leadership ends: released, or its lock lost
	// (connection broken). A leader must stop acting as one then.
	Lost() <-chan struct{}
	// Check verifies, with a round trip, that the leadership still holds;
	// an error means it was lost (and Lost is closed).
	Check(ctx context.Context) error
	// Release gives the role up.
	Release(ctx context.Context) error
}

// RoleMonitoring is the role of the engine that monitors the hosts.
const RoleMonitoring = "monitoring"

// Options tune Open.
type Options struct {
	// Schema is the PostgreSQL schema polyvirt's tables live in (created
	// when missing; "public" when empty). Engines of one installation must
	// use the same schema; leadership locks are per schema.
	Schema string
	// Password is the PostgreSQL password when the URL has none (read
	// from a secret file: configuration files never hold it). Without
	// either, PostgreSQL's own PGPASSWORD and password file apply.
	Password string
	// MaxConns bounds the PostgreSQL connection pool (10 when 0) or the
	// SQLite connections (8 when 0).
	MaxConns int
	// LeaderCheckInterval is how often a PostgreSQL leadership checks its
	// connection (2s when 0): a lock lost with its connection is noticed
	// within about this time (a ping that hangs is given up after five of
	// these, at least 10 s).
	LeaderCheckInterval time.Duration
	// BusyTimeout is how long SQLite waits for a lock (10s when 0).
	BusyTimeout time.Duration
	// SQLiteSynchronousNormal trades durability for speed: with it, a
	// commit is not fsynced (WAL's synchronous=NORMAL): a power loss may
	// lose the last commits but never corrupts the file. Off (FULL) by
	// default.
	SQLiteSynchronousNormal bool
}

// Open opens the database a URL names and applies the pending migrations:
// "postgres://..." or "postgresql://..." is PostgreSQL; "sqlite:PATH",
// "file:PATH" or a plain path is a SQLite file.
func Open(ctx context.Context, url string, opts Options) (Store, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return OpenPostgres(ctx, url, opts)
	case strings.HasPrefix(url, "sqlite://"):
		return OpenSQLite(ctx, strings.TrimPrefix(url, "sqlite://"), opts)
	case strings.HasPrefix(url, "sqlite:"):
		return OpenSQLite(ctx, strings.TrimPrefix(url, "sqlite:"), opts)
	case strings.HasPrefix(url, "file:"):
		return OpenSQLite(ctx, strings.TrimPrefix(url, "file:"), opts)
	case strings.Contains(url, "://"):
		return nil, invalid("open", "", "url", "unsupported database URL %q: want postgres://... or a SQLite file path", redact(url))
	}
	return OpenSQLite(ctx, url, opts)
}

// DefaultSQLitePath is the SQLite file under an engine data directory.
func DefaultSQLitePath(dataDir string) string { return filepath.Join(dataDir, "polyvirt.db") }

// validJSON checks an optional JSON document.
func validJSON(op, object, field string, doc json.RawMessage) error {
	if len(doc) == 0 {
		return nil
	}
	if !json.Valid(doc) {
		return invalid(op, object, field, "is not valid JSON")
	}
	return nil
}

func describe(kind, name, id string) string {
	switch {
	case name != "":
		return fmt.Sprintf("%s %q", kind, name)
	case id != "":
		return fmt.Sprintf("%s %s", kind, id)
	}
	return kind
}
