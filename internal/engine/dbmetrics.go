package engine

import (
	"context"
	"time"

	"polyvirt/internal/store"
)

// dbObserver is told of every call to the database (the engine's
// metrics: polyvirt_db_call_duration_seconds).
type dbObserver interface {
	DBCall(call string, took time.Duration, err error)
}

// observedStore is the engine's database with every call timed: by the
// store's method, a whole write transaction as "Transaction" and the
// calls made in it by their methods. A query the store gains later is
// passed through untimed until it is added to dbQueries.
type observedStore struct {
	dbQueries
	st store.Store
}

// observeStore wraps st.
func observeStore(st store.Store, o dbObserver) store.Store {
	return &observedStore{dbQueries: dbQueries{Queries: st, o: o}, st: st}
}

// InTx runs fn in one write transaction, timed as a whole; the calls fn
// makes are timed too.
func (s *observedStore) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	t := time.Now()
	err := s.st.InTx(ctx, func(tx store.Tx) error { return fn(dbQueries{Queries: tx, o: s.o}) })
	s.o.DBCall("Transaction", time.Since(t), err)
	return err
}

// Ping checks the database, timed.
func (s *observedStore) Ping(ctx context.Context) error {
	t := time.Now()
	err := s.st.Ping(ctx)
	s.o.DBCall("Ping", time.Since(t), err)
	return err
}

// TryAcquireLeadership tries to take a leadership (store.Store).
func (s *observedStore) TryAcquireLeadership(ctx context.Context, role string) (store.Leadership, bool, error) {
	return s.st.TryAcquireLeadership(ctx, role)
}

// Backend is the database's kind.
func (s *observedStore) Backend() store.Backend { return s.st.Backend() }

// SchemaVersion is the database's schema version.
func (s *observedStore) SchemaVersion(ctx context.Context) (int, error) {
	return s.st.SchemaVersion(ctx)
}

// Close closes the database.
func (s *observedStore) Close() error { return s.st.Close() }

// dbQueries times the queries of the database or of a transaction.
type dbQueries struct {
	store.Queries
	o dbObserver
}

func (q dbQueries) CreateUser(ctx context.Context, u *store.User) error {
	t := time.Now()
	err := q.Queries.CreateUser(ctx, u)
	q.o.DBCall("CreateUser", time.Since(t), err)
	return err
}

func (q dbQueries) GetUser(ctx context.Context, id string) (store.User, error) {
	t := time.Now()
	a, err := q.Queries.GetUser(ctx, id)
	q.o.DBCall("GetUser", time.Since(t), err)
	return a, err
}

func (q dbQueries) GetUserByName(ctx context.Context, name string) (store.User, error) {
	t := time.Now()
	a, err := q.Queries.GetUserByName(ctx, name)
	q.o.DBCall("GetUserByName", time.Since(t), err)
	return a, err
}

func (q dbQueries) GetUserByTokenHash(ctx context.Context, hash string) (store.User, error) {
	t := time.Now()
	a, err := q.Queries.GetUserByTokenHash(ctx, hash)
	q.o.DBCall("GetUserByTokenHash", time.Since(t), err)
	return a, err
}

func (q dbQueries) ListUsers(ctx context.Context) ([]store.User, error) {
	t := time.Now()
	a, err := q.Queries.ListUsers(ctx)
	q.o.DBCall("ListUsers", time.Since(t), err)
	return a, err
}

func (q dbQueries) UpdateUser(ctx context.Context, u *store.User) error {
	t := time.Now()
	err := q.Queries.UpdateUser(ctx, u)
	q.o.DBCall("UpdateUser", time.Since(t), err)
	return err
}

func (q dbQueries) DeleteUser(ctx context.Context, id string) error {
	t := time.Now()
	err := q.Queries.DeleteUser(ctx, id)
	q.o.DBCall("DeleteUser", time.Since(t), err)
	return err
}

func (q dbQueries) CreateCluster(ctx context.Context, c *store.Cluster) error {
	t := time.Now()
	err := q.Queries.CreateCluster(ctx, c)
	q.o.DBCall("CreateCluster", time.Since(t), err)
	return err
}

func (q dbQueries) GetCluster(ctx context.Context, id string) (store.Cluster, error) {
	t := time.Now()
	a, err := q.Queries.GetCluster(ctx, id)
	q.o.DBCall("GetCluster", time.Since(t), err)
	return a, err
}

func (q dbQueries) GetClusterByName(ctx context.Context, name string) (store.Cluster, error) {
	t := time.Now()
	a, err := q.Queries.GetClusterByName(ctx, name)
	q.o.DBCall("GetClusterByName", time.Since(t), err)
	return a, err
}

func (q dbQueries) ListClusters(ctx context.Context) ([]store.Cluster, error) {
	t := time.Now()
	a, err := q.Queries.ListClusters(ctx)
	q.o.DBCall("ListClusters", time.Since(t), err)
	return a, err
}

func (q dbQueries) UpdateCluster(ctx context.Context, c *store.Cluster) error {
	t := time.Now()
	err := q.Queries.UpdateCluster(ctx, c)
	q.o.DBCall("UpdateCluster", time.Since(t), err)
	return err
}

func (q dbQueries) DeleteCluster(ctx context.Context, id string) error {
	t := time.Now()
	err := q.Queries.DeleteCluster(ctx, id)
	q.o.DBCall("DeleteCluster", time.Since(t), err)
	return err
}

func (q dbQueries) CreateHost(ctx context.Context, h *store.Host) error {
	t := time.Now()
	err := q.Queries.CreateHost(ctx, h)
	q.o.DBCall("CreateHost", time.Since(t), err)
	return err
}

func (q dbQueries) GetHost(ctx context.Context, id string) (store.Host, error) {
	t := time.Now()
	a, err := q.Queries.GetHost(ctx, id)
	q.o.DBCall("GetHost", time.Since(t), err)
	return a, err
}

func (q dbQueries) GetHostByName(ctx context.Context, name string) (store.Host, error) {
	t := time.Now()
	a, err := q.Queries.GetHostByName(ctx, name)
	q.o.DBCall("GetHostByName", time.Since(t), err)
	return a, err
}

func (q dbQueries) GetHostByCertFingerprint(ctx context.Context, fingerprint string) (store.Host, error) {
	t := time.Now()
	a, err := q.Queries.GetHostByCertFingerprint(ctx, fingerprint)
	q.o.DBCall("GetHostByCertFingerprint", time.Since(t), err)
	return a, err
}

func (q dbQueries) ListHosts(ctx context.Context, f store.HostFilter) ([]store.Host, error) {
	t := time.Now()
	a, err := q.Queries.ListHosts(ctx, f)
	q.o.DBCall("ListHosts", time.Since(t), err)
	return a, err
}

func (q dbQueries) CountHosts(ctx context.Context) (map[string]map[store.HostStatus]int, error) {
	t := time.Now()
	a, err := q.Queries.CountHosts(ctx)
	q.o.DBCall("CountHosts", time.Since(t), err)
	return a, err
}

func (q dbQueries) HostsRevision(ctx context.Context) (store.HostsRevision, error) {
	t := time.Now()
	r, err := q.Queries.HostsRevision(ctx)
	q.o.DBCall("HostsRevision", time.Since(t), err)
	return r, err
}

func (q dbQueries) UpdateHost(ctx context.Context, h *store.Host) error {
	t := time.Now()
	err := q.Queries.UpdateHost(ctx, h)
	q.o.DBCall("UpdateHost", time.Since(t), err)
	return err
}

func (q dbQueries) UpdateHostStats(ctx context.Context, stats []store.HostStats) ([]string, error) {
	t := time.Now()
	a, err := q.Queries.UpdateHostStats(ctx, stats)
	q.o.DBCall("UpdateHostStats", time.Since(t), err)
	return a, err
}

func (q dbQueries) SetHostJoinToken(ctx context.Context, hostID, hash string, expires time.Time) error {
	t := time.Now()
	err := q.Queries.SetHostJoinToken(ctx, hostID, hash, expires)
	q.o.DBCall("SetHostJoinToken", time.Since(t), err)
	return err
}

func (q dbQueries) ConsumeJoinToken(ctx context.Context, hash string) (store.Host, error) {
	t := time.Now()
	a, err := q.Queries.ConsumeJoinToken(ctx, hash)
	q.o.DBCall("ConsumeJoinToken", time.Since(t), err)
	return a, err
}

func (q dbQueries) DeleteHost(ctx context.Context, id string) error {
	t := time.Now()
	err := q.Queries.DeleteHost(ctx, id)
	q.o.DBCall("DeleteHost", time.Since(t), err)
	return err
}

func (q dbQueries) CreateVM(ctx context.Context, vm *store.VM) error {
	t := time.Now()
	err := q.Queries.CreateVM(ctx, vm)
	q.o.DBCall("CreateVM", time.Since(t), err)
	return err
}

func (q dbQueries) GetVM(ctx context.Context, id string) (store.VM, error) {
	t := time.Now()
	a, err := q.Queries.GetVM(ctx, id)
	q.o.DBCall("GetVM", time.Since(t), err)
	return a, err
}

func (q dbQueries) GetVMByName(ctx context.Context, name string) (store.VM, error) {
	t := time.Now()
	a, err := q.Queries.GetVMByName(ctx, name)
	q.o.DBCall("GetVMByName", time.Since(t), err)
	return a, err
}

func (q dbQueries) ListVMs(ctx context.Context, f store.VMFilter) ([]store.VM, error) {
	t := time.Now()
	a, err := q.Queries.ListVMs(ctx, f)
	q.o.DBCall("ListVMs", time.Since(t), err)
	return a, err
}

func (q dbQueries) UpdateVM(ctx context.Context, vm *store.VM) error {
	t := time.Now()
	err := q.Queries.UpdateVM(ctx, vm)
	q.o.DBCall("UpdateVM", time.Since(t), err)
	return err
}

func (q dbQueries) DeleteVM(ctx context.Context, id string) error {
	t := time.Now()
	err := q.Queries.DeleteVM(ctx, id)
	q.o.DBCall("DeleteVM", time.Since(t), err)
	return err
}

func (q dbQueries) AppendEvent(ctx context.Context, e *store.Event) error {
	t := time.Now()
	err := q.Queries.AppendEvent(ctx, e)
	q.o.DBCall("AppendEvent", time.Since(t), err)
	return err
}

func (q dbQueries) ListEvents(ctx context.Context, f store.EventFilter) (store.EventPage, error) {
	t := time.Now()
	a, err := q.Queries.ListEvents(ctx, f)
	q.o.DBCall("ListEvents", time.Since(t), err)
	return a, err
}

func (q dbQueries) CreateFirmwareOperation(ctx context.Context, op *store.FirmwareOperation) error {
	t := time.Now()
	err := q.Queries.CreateFirmwareOperation(ctx, op)
	q.o.DBCall("CreateFirmwareOperation", time.Since(t), err)
	return err
}

func (q dbQueries) GetFirmwareOperation(ctx context.Context, id string) (store.FirmwareOperation, error) {
	t := time.Now()
	a, err := q.Queries.GetFirmwareOperation(ctx, id)
	q.o.DBCall("GetFirmwareOperation", time.Since(t), err)
	return a, err
}

func (q dbQueries) GetActiveFirmwareOperation(ctx context.Context, hostID string) (store.FirmwareOperation, error) {
	t := time.Now()
	a, err := q.Queries.GetActiveFirmwareOperation(ctx, hostID)
	q.o.DBCall("GetActiveFirmwareOperation", time.Since(t), err)
	return a, err
}

func (q dbQueries) ListFirmwareOperations(ctx context.Context, hostID string) ([]store.FirmwareOperation, error) {
	t := time.Now()
	a, err := q.Queries.ListFirmwareOperations(ctx, hostID)
	q.o.DBCall("ListFirmwareOperations", time.Since(t), err)
	return a, err
}

func (q dbQueries) UpdateFirmwareOperation(ctx context.Context, op *store.FirmwareOperation) error {
	t := time.Now()
	err := q.Queries.UpdateFirmwareOperation(ctx, op)
	q.o.DBCall("UpdateFirmwareOperation", time.Since(t), err)
	return err
}
