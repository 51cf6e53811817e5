package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/libvirtconn"
)

// fakeMigration is the fake libvirt's migration side: a migration runs
// while its test feeds it progress (jobs) and ends when the test says
// (finish), moving the domain to the destination's fake.
type fakeMigration struct {
	mu sync.Mutex
	// peers are the destinations by URI (without the query).
	peers map[string]*fakeConn
	// jobs are the job figures DomainJob returns, one per call while a
	// migration runs (the last one again when they run out).
	jobs []libvirtconn.JobStats
	// finish ends the running migration with its error (nil: arrived).
	finish chan error
	// running is the migration in progress (its params, its URI).
	running *fakeRun
	// incoming marks domains of this fake that are the destination of a
	// migration in progress (by UUID).
	incoming map[string]bool
	// completed are the completed job figures of domains (by UUID).
	completed map[string]libvirtconn.JobStats
	// calls records the knobs turned ("downtime 150ms", "abort", ...).
	calls []string
}

type fakeRun struct {
	uuid string
	uri  string
	p    libvirtconn.MigrateParams
}

func (f *fakeConn) migration() *fakeMigration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mig == nil {
		f.mig = &fakeMigration{peers: map[string]*fakeConn{}, finish: make(chan error, 1),
			incoming: map[string]bool{}, completed: map[string]libvirtconn.JobStats{}}
	}
	return f.mig
}

func (m *fakeMigration) record(call string) {
	m.mu.Lock()
	m.calls = append(m.calls, call)
	m.mu.Unlock()
}

func (m *fakeMigration) recorded() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

func (f *fakeConn) MigratableXML(ctx context.Context, d libvirtconn.Domain, _ bool) (string, error) {
	return f.DomainXML(ctx, d, false)
}

func (f *fakeConn) Migrate(ctx context.Context, d libvirtconn.Domain, uri string, p libvirtconn.MigrateParams) error {
	m := f.migration()
	if _, err := f.dom(d); err != nil {
		return err
	}
	m.mu.Lock()
	peer := m.peers[strings.SplitN(uri, "?", 2)[0]]
	m.running = &fakeRun{uuid: d.UUID, uri: uri, p: p}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = nil
		m.mu.Unlock()
	}()
	var err error
	select {
	case err = <-m.finish:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	if peer == nil {
		return errors.New("fake: no destination at " + uri)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(p.DestXML); err != nil {
		return err
	}
	peer.mu.Lock()
	peer.doms[d.UUID] = &fakeDomain{d: libvirtconn.Domain{Name: p.DestName, UUID: d.UUID, ID: 7}, xml: p.DestXML, state: libvirtconn.StateRunning}
	peer.mu.Unlock()
	f.mu.Lock()
	delete(f.doms, d.UUID)
	f.mu.Unlock()
	return nil
}

func (f *fakeConn) DomainJob(_ context.Context, d libvirtconn.Domain, completed bool) (libvirtconn.JobStats, error) {
	if _, err := f.dom(d); err != nil {
		return libvirtconn.JobStats{}, err
	}
	m := f.migration()
	m.mu.Lock()
	defer m.mu.Unlock()
	if completed {
		if j, ok := m.completed[d.UUID]; ok {
			return j, nil
		}
		return libvirtconn.JobStats{Type: libvirtconn.JobNone}, nil
	}
	if m.incoming[d.UUID] {
		return libvirtconn.JobStats{Type: libvirtconn.JobUnbounded, Operation: libvirtconn.JobMigrationIn}, nil
	}
	if m.running == nil || m.running.uuid != d.UUID || len(m.jobs) == 0 {
		return libvirtconn.JobStats{Type: libvirtconn.JobNone}, nil
	}
	j := m.jobs[0]
	if len(m.jobs) > 1 {
		m.jobs = m.jobs[1:]
	}
	j.Type, j.Operation = libvirtconn.JobUnbounded, libvirtconn.JobMigrationOut
	return j, nil
}

func (f *fakeConn) AbortJob(_ context.Context, d libvirtconn.Domain) error {
	m := f.migration()
	m.record("abort")
	m.mu.Lock()
	running := m.running != nil && m.running.uuid == d.UUID
	m.mu.Unlock()
	if !running {
		return errors.New("fake: no job")
	}
	select {
	case m.finish <- errors.New("operation aborted: migration out job: canceled by client"):
	default:
	}
	return nil
}

func (f *fakeConn) SetMaxDowntime(_ context.Context, _ libvirtconn.Domain, d time.Duration) error {
	f.migration().record("downtime " + d.String())
	return nil
}

func (f *fakeConn) StartPostCopy(context.Context, libvirtconn.Domain) error {
	f.migration().record("postcopy")
	return nil
}
