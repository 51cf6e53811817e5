package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/caps"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/profiles"
)

// fakeDomain is one domain of the fake libvirt.
type fakeDomain struct {
	d     libvirtconn.Domain
	xml   string
	state libvirtconn.DomainState
	// transient: gone once it stops (CreateDomain).
	transient bool
	// reason is the state's reason (0: 1).
	reason int32
}

// fakeConn is an in-memory libvirt for the agent's unit tests: domains
// with states, an error to inject per call, a delay on start, call counts.
type fakeConn struct {
	mu      sync.Mutex
	doms    map[string]*fakeDomain // by UUID
	fail    map[string]error       // call name → error
	delay   time.Duration
	starts  atomic.Int32
	defines atomic.Int32
	events  chan libvirtconn.LifecycleEvent
	gone    chan struct{}
	// hang holds the calls named here until the channel is closed (a QEMU
	// that does not answer).
	hang    map[string]chan struct{}
	queries atomic.Int32
	// bulk counts the statistics calls for figures (not states only),
	// bulkDomains the domains the last one asked for.
	bulk, bulkDomains atomic.Int32
	// ignoreShutdown makes shutdown requests do nothing (no guest OS).
	ignoreShutdown bool
	mig            *fakeMigration
}

func newFakeConn() *fakeConn {
	return &fakeConn{doms: map[string]*fakeDomain{}, fail: map[string]error{}, events: make(chan libvirtconn.LifecycleEvent, 16),
		gone: make(chan struct{}), hang: map[string]chan struct{}{}}
}

// hangOn makes the call hang until the returned function is called.
func (f *fakeConn) hangOn(call string) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.hang[call] = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.hang, call)
			f.mu.Unlock()
			close(ch)
		})
	}
}

// wait blocks while the call hangs.
func (f *fakeConn) wait(call string) {
	f.mu.Lock()
	ch := f.hang[call]
	f.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

var _ libvirtconn.AgentConn = (*fakeConn)(nil)

func (f *fakeConn) err(call string) error {
	f.wait(call)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[call]
}

func (f *fakeConn) dom(d libvirtconn.Domain) (*fakeDomain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.doms[d.UUID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", libvirtconn.ErrNoDomain, d.Name)
	}
	return x, nil
}

func (f *fakeConn) Capabilities(context.Context) (string, error) { return "", errors.New("unused") }
func (f *fakeConn) DomainCapabilities(context.Context, string, string, string, string) (string, error) {
	return "", errors.New("unused")
}
func (f *fakeConn) Versions(context.Context) (string, string, error) { return "9.0.0", "7.2.0", nil }
func (f *fakeConn) Close() error                                     { return nil }

func (f *fakeConn) DefineDomain(_ context.Context, xml string) (libvirtconn.Domain, error) {
	if err := f.err("define"); err != nil {
		return libvirtconn.Domain{}, err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(xml); err != nil {
		return libvirtconn.Domain{}, err
	}
	f.defines.Add(1)
	d := libvirtconn.Domain{Name: dom.Name, UUID: dom.UUID, ID: -1}
	f.mu.Lock()
	f.doms[d.UUID] = &fakeDomain{d: d, xml: xml, state: libvirtconn.StateShutoff}
	f.mu.Unlock()
	return d, nil
}

func (f *fakeConn) CreateDomain(_ context.Context, xml string) (libvirtconn.Domain, error) {
	if err := f.err("create"); err != nil {
		return libvirtconn.Domain{}, err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(xml); err != nil {
		return libvirtconn.Domain{}, err
	}
	d := libvirtconn.Domain{Name: dom.Name, UUID: dom.UUID, ID: 1}
	f.mu.Lock()
	st := libvirtconn.StateRunning
	if c, ok := f.fail["create-crashes"]; ok && c != nil {
		st = libvirtconn.StateCrashed
	}
	f.doms[d.UUID] = &fakeDomain{d: d, xml: xml, state: st, transient: true}
	f.mu.Unlock()
	return d, nil
}

func (f *fakeConn) LookupDomain(_ context.Context, name string) (libvirtconn.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.doms {
		if x.d.Name == name {
			return x.d, nil
		}
	}
	return libvirtconn.Domain{}, fmt.Errorf("%w: %s", libvirtconn.ErrNoDomain, name)
}

func (f *fakeConn) LookupDomainByUUID(_ context.Context, uuid string) (libvirtconn.Domain, error) {
	x, err := f.dom(libvirtconn.Domain{UUID: uuid, Name: uuid})
	if err != nil {
		return libvirtconn.Domain{}, err
	}
	return x.d, nil
}

func (f *fakeConn) ListDomains(context.Context) ([]libvirtconn.Domain, error) {
	if err := f.err("list"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []libvirtconn.Domain
	for _, x := range f.doms {
		out = append(out, x.d)
	}
	return out, nil
}

// transition changes a domain's state after the injected error check.
func (f *fakeConn) transition(call string, d libvirtconn.Domain, to libvirtconn.DomainState) error {
	if err := f.err(call); err != nil {
		return err
	}
	x, err := f.dom(d)
	if err != nil {
		return err
	}
	f.mu.Lock()
	x.state = to
	f.mu.Unlock()
	return nil
}

func (f *fakeConn) StartDomain(_ context.Context, d libvirtconn.Domain) error {
	f.starts.Add(1)
	time.Sleep(f.delay)
	return f.transition("start", d, libvirtconn.StateRunning)
}
func (f *fakeConn) DestroyDomain(_ context.Context, d libvirtconn.Domain) error {
	if err := f.transition("destroy", d, libvirtconn.StateShutoff); err != nil {
		return err
	}
	f.mu.Lock()
	if x := f.doms[d.UUID]; x != nil && x.transient {
		delete(f.doms, d.UUID)
	}
	f.mu.Unlock()
	return nil
}
func (f *fakeConn) ShutdownDomain(_ context.Context, d libvirtconn.Domain) error {
	f.wait("qemu:" + d.UUID)
	f.mu.Lock()
	ignore := f.ignoreShutdown
	f.mu.Unlock()
	if ignore {
		// A guest without an OS: the request is taken and nothing happens.
		return f.err("shutdown")
	}
	return f.transition("shutdown", d, libvirtconn.StateShutoff)
}
func (f *fakeConn) RebootDomain(_ context.Context, d libvirtconn.Domain) error {
	return f.transition("reboot", d, libvirtconn.StateRunning)
}
func (f *fakeConn) SuspendDomain(_ context.Context, d libvirtconn.Domain) error {
	return f.transition("suspend", d, libvirtconn.StatePaused)
}
func (f *fakeConn) ResumeDomain(_ context.Context, d libvirtconn.Domain) error {
	return f.transition("resume", d, libvirtconn.StateRunning)
}

func (f *fakeConn) UndefineDomain(_ context.Context, d libvirtconn.Domain, _ libvirtconn.UndefineFlags) error {
	if err := f.err("undefine"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.doms, d.UUID)
	return nil
}

func (f *fakeConn) DomainXML(_ context.Context, d libvirtconn.Domain, _ bool) (string, error) {
	x, err := f.dom(d)
	if err != nil {
		return "", err
	}
	return x.xml, nil
}

func (f *fakeConn) DomainState(ctx context.Context, d libvirtconn.Domain) (libvirtconn.DomainState, error) {
	s, _, err := f.DomainStateReason(ctx, d)
	return s, err
}

func (f *fakeConn) DomainStateReason(_ context.Context, d libvirtconn.Domain) (libvirtconn.DomainState, int32, error) {
	x, err := f.dom(d)
	if err != nil {
		return 0, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if x.reason != 0 {
		return x.state, x.reason, nil
	}
	return x.state, 1, nil
}

func (f *fakeConn) QueryStatus(_ context.Context, d libvirtconn.Domain) (string, error) {
	f.queries.Add(1)
	f.wait("qemu:" + d.UUID)
	if err := f.err("query-status"); err != nil {
		return "", err
	}
	x, err := f.dom(d)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if x.state == libvirtconn.StatePaused {
		return "paused", nil
	}
	return "running", nil
}

func (f *fakeConn) Screenshot(_ context.Context, d libvirtconn.Domain, _ uint32) ([]byte, string, error) {
	f.wait("qemu:" + d.UUID)
	if err := f.err("screenshot"); err != nil {
		return nil, "", err
	}
	// A 2x1 PPM: one red, one blue pixel.
	return []byte("P6\n2 1\n255\n\xff\x00\x00\x00\x00\xff"), "image/x-portable-pixmap", nil
}

func (f *fakeConn) DomainStats(_ context.Context, ds []libvirtconn.Domain, o libvirtconn.StatsOptions) ([]libvirtconn.DomainStats, error) {
	if !o.StateOnly {
		f.bulk.Add(1)
		f.bulkDomains.Store(int32(len(ds)))
		if err := f.err("stats"); err != nil {
			return nil, err
		}
		// A QEMU that does not answer holds the call, as libvirt's would.
		for _, d := range ds {
			f.wait("qemu:" + d.UUID)
		}
	}
	var out []libvirtconn.DomainStats
	for _, d := range ds {
		x, err := f.dom(d)
		if err != nil {
			continue
		}
		out = append(out, libvirtconn.DomainStats{Domain: d, State: x.state, VCPUs: 1, BalloonKiB: 512 * 1024, CPUTimeNs: 1e9})
	}
	return out, nil
}

func (f *fakeConn) Events(ctx context.Context) (<-chan libvirtconn.LifecycleEvent, error) {
	return f.events, nil
}

func (f *fakeConn) Disconnected() <-chan struct{} { return f.gone }

// addForeign defines a domain with XML polyvirt did not write (or another
// host's owner element).
func (f *fakeConn) addForeign(name, uuid, ownerHost string) {
	meta := ""
	if ownerHost != "" {
		meta = `<metadata><owner xmlns="urn:polyvirt:agent:1" vm="` + uuid + `" host="` + ownerHost + `" arch="x86_64"><definition>{}</definition></owner></metadata>`
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.doms[uuid] = &fakeDomain{d: libvirtconn.Domain{Name: name, UUID: uuid}, state: libvirtconn.StateRunning,
		xml: `<domain type="kvm"><name>` + name + `</name><uuid>` + uuid + `</uuid>` + meta + `</domain>`}
}

// newTestAgent is an agent on the fake libvirt, with the S822L profile's
// capabilities (a fake-KVM POWER8 host).
func newTestAgent(t *testing.T, f *fakeConn) *Agent {
	t.Helper()
	cfg, err := Config{HostID: "unit-power8", DataDir: t.TempDir(), Profile: "s822l-power8e"}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	res, err := caps.Collect(context.Background(), caps.Options{Profile: cfg.Profile})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{
		cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		realArch: arch.X86_64, fake: true, capsRes: res,
		index: newVMIndex(), locks: newKeyedMutex(), hub: newEventHub(),
		root: "/", paths: cfg.HostPaths.Policy(),
	}
	a.cfg.QEMUTimeout.Duration = 300 * time.Millisecond
	if p, err := profiles.Get(cfg.Profile); err == nil {
		a.hostFS = p.Root
	}
	a.conn = newConnManager("fake:///", a.log)
	a.conn.dial = func(string, time.Duration) (libvirtconn.AgentConn, error) { return f, nil }
	a.initRuntime()
	return a
}

const unitVM = `{"name": "unit-ppc", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "display": {"type": "vnc"}}`

// libvirtErr is a libvirt RPC error with a code.
func libvirtErr(code golibvirt.ErrorNumber, msg string) error {
	return golibvirt.Error{Code: uint32(code), Message: msg}
}

func decodePNG(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }
