package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/pki"
	"polyvirt/internal/store"
)

// fakeStorage is the hosts' storage API as a test wants it: a pool one
// host lacks, uploads refused with a code.
type fakeStorage struct {
	mu sync.Mutex
	// lacks: host name → the code of the pool check's answer.
	lacks map[string]string
	// refuse: the code an upload's data is refused with ("": accepted).
	refuse string
	// calls: "host op" in order.
	calls []string
	// files: the volumes' files that exist, "pool/name".
	files map[string]bool
}

func (f *fakeStorage) Storage(_ context.Context, h store.Host, op string, in, out any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, h.Name+" "+op)
	switch op {
	case "pools/init":
		p := in.(agentapi.Pool)
		*out.(*agentapi.PoolStatus) = agentapi.PoolStatus{Pool: p.ID, Name: p.Name, OK: true}
	case "pools/check":
		var sts []agentapi.PoolStatus
		for _, p := range in.(agentapi.PoolsRequest).Pools {
			st := agentapi.PoolStatus{Pool: p.ID, Name: p.Name, OK: true, CapacityBytes: 100 << 30, FreeBytes: 60 << 30}
			if code := f.lacks[h.Name]; code != "" {
				st = agentapi.PoolStatus{Pool: p.ID, Name: p.Name, Code: code, Message: p.Path + " has no pool marker"}
			}
			sts = append(sts, st)
		}
		*out.(*[]agentapi.PoolStatus) = sts
	case "uploads":
		r := in.(agentapi.UploadRequest)
		f.files[r.Pool.Name+"/.upload-"+r.Name] = true
		*out.(*agentapi.UploadStatus) = agentapi.UploadStatus{Pool: r.Pool.ID, Name: r.Name, Format: r.Format, SizeBytes: r.SizeBytes, SHA256: r.SHA256}
	case "volumes/delete", "uploads/abort":
		r := in.(agentapi.VolumeRequest)
		delete(f.files, r.Pool.Name+"/"+r.Name)
		delete(f.files, r.Pool.Name+"/.upload-"+r.Name)
	default:
		return &AgentError{Host: h.Name, Status: 404, Code: api.CodeNotFound, Msg: op}
	}
	return nil
}

func (f *fakeStorage) UploadData(_ context.Context, h store.Host, p agentapi.Pool, name string, offset, length int64, data io.Reader) (agentapi.UploadStatus, error) {
	b, _ := io.ReadAll(data)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, h.Name+" uploads/data")
	delete(f.files, p.Name+"/.upload-"+name)
	if f.refuse != "" {
		return agentapi.UploadStatus{}, &AgentError{Host: h.Name, Status: api.HTTPStatus(f.refuse), Code: f.refuse, Msg: "refused"}
	}
	f.files[p.Name+"/"+name] = true
	size := offset + int64(len(b))
	return agentapi.UploadStatus{Pool: p.ID, Name: name, SizeBytes: size, Offset: size, Done: true,
		Volume: &agentapi.VolumeInfo{Pool: p.ID, Name: name, Format: "raw", VirtualSize: size, ActualSize: size, FileSize: size}}, nil
}

func (f *fakeStorage) CreateSnapshot(context.Context, store.Host, string, agentapi.SnapshotRequest) error {
	return nil
}
func (f *fakeStorage) RevertSnapshot(context.Context, store.Host, string, string) error { return nil }
func (f *fakeStorage) DeleteSnapshot(context.Context, store.Host, string, string) error { return nil }

// noStats is an Agents whose hosts give no statistics (the only call the
// storage tests make of it).
type noStats struct{ Agents }

func (noStats) Stats(context.Context, string) ([]byte, error) { return nil, io.EOF }

// storageLab is a store with a POWER cluster of two Up hosts, p8a and p8b,
// and services whose storage calls go to a fakeStorage.
func storageLab(t *testing.T, fs *fakeStorage) (*Services, store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "engine.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	c := store.Cluster{Name: "power", Arch: arch.PPC64}
	if err := st.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"p8a", "p8b"} {
		h := store.Host{Name: name, Address: "192.0.2." + string(rune('1'+i)) + ":9443", ClusterID: c.ID, Status: store.HostUp,
			CertFingerprint: strings.Repeat(string(rune('a'+i)), 64)}
		if err := st.CreateHost(ctx, &h); err != nil {
			t.Fatal(err)
		}
	}
	if fs.files == nil {
		fs.files = map[string]bool{}
	}
	svc := New(Config{Store: st, Agents: noStats{}, StorageAgents: fs, CA: ca, Name: "test"})
	t.Cleanup(svc.Close)
	return svc, st
}

// TestPoolMissingOnAHost: a pool one host lacks is recorded with the
// host's reason, an event says so, the scheduler's facts exclude the host,
// the host's answer names the pool, and the pool's kind says its disks are
// shared.
func TestPoolMissingOnAHost(t *testing.T) {
	ctx := context.Background()
	fs := &fakeStorage{lacks: map[string]string{"p8b": api.CodePoolMarkerMissing}}
	svc, st := storageLab(t, fs)
	p, err := svc.Storage.CreatePool(ctx, engineapi.PoolRequest{Name: "nfs1", Cluster: "power", Kind: "shared", Path: "/var/lib/polyvirt/images/nfs1"})
	if err != nil {
		t.Fatal(err)
	}
	byHost := map[string]engineapi.HostPool{}
	for _, hp := range p.Hosts {
		byHost[hp.Host] = hp
	}
	if !byHost["p8a"].OK || byHost["p8b"].OK || byHost["p8b"].Code != api.CodePoolMarkerMissing {
		t.Errorf("the pool's hosts: %+v", p.Hosts)
	}
	if p.CapacityBytes != 100<<30 || p.FreeBytes != 60<<30 {
		t.Errorf("capacity %d, free %d", p.CapacityBytes, p.FreeBytes)
	}
	page, err := svc.Events.List(ctx, EventQuery{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range page.Events {
		found = found || (ev.Action == "host.storage" && ev.ObjectName == "p8b" && ev.Code == api.CodePoolNotOnHost &&
			strings.Contains(ev.Reason, api.CodePoolMarkerMissing))
	}
	if !found {
		t.Errorf("no host.storage event for p8b: %+v", page.Events)
	}
	c, err := st.GetClusterByName(ctx, "power")
	if err != nil {
		t.Fatal(err)
	}
	facts, err := svc.e.stor.hostPools(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := st.GetHostByName(ctx, "p8b")
	ha, _ := st.GetHostByName(ctx, "p8a")
	if facts[ha.ID]["nfs1"] != "" || !strings.HasPrefix(facts[hb.ID]["nfs1"], api.CodePoolMarkerMissing) {
		t.Errorf("the scheduler's pool facts: %v", facts)
	}
	h, err := svc.Hosts.Get(ctx, "p8b", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Pools) != 1 || h.Pools[0].Pool != "nfs1" || h.Pools[0].OK {
		t.Errorf("host p8b's pools: %+v", h.Pools)
	}
	// The operations on the pool go to the host that has it.
	fs.mu.Lock()
	calls := append([]string(nil), fs.calls...)
	fs.mu.Unlock()
	if len(calls) == 0 || calls[0] != "p8a pools/init" {
		t.Errorf("calls %v: the marker is written by a host that has the pool", calls)
	}
}

// TestRefusedUploadLeavesNothing: an upload the agent refuses (its code
// passed on with its status) leaves no record; the agent removed the data.
func TestRefusedUploadLeavesNothing(t *testing.T) {
	ctx := context.Background()
	for _, code := range []string{api.CodeVolumeChecksumMismatch, api.CodeVolumeCorrupt, api.CodeVolumeBackingOutsidePool, api.CodeVolumeTruncated} {
		t.Run(code, func(t *testing.T) {
			fs := &fakeStorage{refuse: code}
			svc, st := storageLab(t, fs)
			if _, err := svc.Storage.CreatePool(ctx, engineapi.PoolRequest{Name: "nfs1", Cluster: "power", Kind: "shared", Path: "/var/lib/polyvirt/images/nfs1"}); err != nil {
				t.Fatal(err)
			}
			v, created, err := svc.Storage.CreateVolume(ctx, engineapi.VolumeRequest{Pool: "nfs1", Name: "disk.raw", Format: "raw",
				Upload: &engineapi.UploadRequest{SizeBytes: 4, SHA256: strings.Repeat("0", 64)}})
			if err != nil || !created || v.State != string(store.VolumeUploading) {
				t.Fatalf("begin: %+v %v %v", v, created, err)
			}
			_, err = svc.Storage.UploadData(ctx, "nfs1", "disk.raw", UploadChunk{Offset: 0, Length: 4, Total: -1, Data: strings.NewReader("data")})
			ae := Coded(err)
			if ae.Code != code || api.StatusOf(ae) != 422 {
				t.Errorf("refusal %v (status %d); want %s 422", err, api.StatusOf(ae), code)
			}
			vs, err := svc.Storage.ListVolumes(ctx, "nfs1")
			if err != nil || len(vs) != 0 {
				t.Errorf("volumes after a refused upload: %+v %v", vs, err)
			}
			if len(fs.files) != 0 {
				t.Errorf("files left: %v", fs.files)
			}
			_ = st
		})
	}
}

// TestVolumeNamesStayInTheirPool: a volume name that would climb out of its
// pool is refused before any agent is asked.
func TestVolumeNamesStayInTheirPool(t *testing.T) {
	ctx := context.Background()
	fs := &fakeStorage{}
	svc, _ := storageLab(t, fs)
	if _, err := svc.Storage.CreatePool(ctx, engineapi.PoolRequest{Name: "nfs1", Cluster: "power", Kind: "shared", Path: "/var/lib/polyvirt/images/nfs1"}); err != nil {
		t.Fatal(err)
	}
	fs.calls = nil
	for _, name := range []string{"../x.raw", "a/b.raw", ".hidden", "..", "x\x00.raw"} {
		_, _, err := svc.Storage.CreateVolume(ctx, engineapi.VolumeRequest{Pool: "nfs1", Name: name, Format: "raw", SizeBytes: 1 << 20})
		if ae := Coded(err); ae.Code != api.CodeVolumeNameInvalid || api.StatusOf(ae) != 422 {
			t.Errorf("%q: %v", name, err)
		}
	}
	if len(fs.calls) != 0 {
		t.Errorf("agents asked: %v", fs.calls)
	}
}

// stuckChecks is a storage API whose pool checks wait for release,
// counting those under way.
type stuckChecks struct {
	fakeStorage
	release chan struct{}
	mu      sync.Mutex
	now     int
	most    int
}

func (s *stuckChecks) Storage(ctx context.Context, h store.Host, op string, in, out any) error {
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	<-s.release
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
	return &AgentError{Host: h.Name, Status: 503, Code: api.CodeNotFound, Msg: "released"}
}

func (s *stuckChecks) underWay() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// TestPoolChecksBounded: of many hosts coming Up at once, maxPoolChecks
// are asked about their pools at a time; the others are not marked
// checked, and are asked at a round of theirs once checks ended.
func TestPoolChecksBounded(t *testing.T) {
	agents := &stuckChecks{release: make(chan struct{})}
	s := newStorageService(&engine{log: slog.New(slog.DiscardHandler)}, agents)
	s.pools = map[string]*clusterPools{"c1": {at: time.Now(), pools: []store.Pool{{ID: "p1", Name: "shared", Kind: store.PoolShared, ClusterID: "c1"}}}}
	host := func(i int) store.Host {
		return store.Host{ID: fmt.Sprintf("h%d", i), Name: fmt.Sprintf("host%d", i), ClusterID: "c1", Status: store.HostUp}
	}
	ctx := context.Background()
	n := maxPoolChecks + 20
	for i := range n {
		s.checkHostPools(ctx, host(i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for agents.underWay() < maxPoolChecks && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	checked := len(s.checked)
	s.mu.Unlock()
	if got := agents.underWay(); got != maxPoolChecks || checked != maxPoolChecks {
		t.Fatalf("%d checks under way, %d hosts marked checked; want %d of %d hosts", got, checked, maxPoolChecks, n)
	}
	close(agents.release)
	for {
		s.mu.Lock()
		left := s.checking
		s.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d checks still under way", left)
		}
		time.Sleep(time.Millisecond)
	}
	// The hosts' next rounds: the 20 left out are asked now, the others
	// are not due.
	for i := range n {
		s.checkHostPools(ctx, host(i))
	}
	for {
		s.mu.Lock()
		checked, left := len(s.checked), s.checking
		s.mu.Unlock()
		if checked == n && left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d hosts checked, %d under way", checked, n, left)
		}
		time.Sleep(time.Millisecond)
	}
	if agents.most > maxPoolChecks {
		t.Errorf("%d checks at once (limit %d)", agents.most, maxPoolChecks)
	}
}
