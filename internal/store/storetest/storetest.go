// Package storetest is the conformance suite of package store: the same
// tests run against every implementation (SQLite and PostgreSQL), so that
// both behave the same, errors included.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"polyvirt/internal/arch"
	"polyvirt/internal/store"
)

// Opener opens a new, empty store for one test; the store is closed and
// its data removed by t.Cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the conformance suite; each test gets a store of its own.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"SchemaVersion", testSchemaVersion},
		{"InvalidInput", testInvalidInput},
		{"Users", testUsers},
		{"Clusters", testClusters},
		{"ClusterArchLocked", testClusterArchLocked},
		{"DeleteClusterInUse", testDeleteClusterInUse},
		{"Hosts", testHosts},
		{"HostStats", testHostStats},
		{"HostStatsLargeBatch", testHostStatsLargeBatch},
		{"JoinToken", testJoinToken},
		{"JoinTokenConcurrent", testJoinTokenConcurrent},
		{"OptimisticLock", testOptimisticLock},
		{"VMs", testVMs},
		{"DeleteHostInUse", testDeleteHostInUse},
		{"Events", testEvents},
		{"EventsPaging", testEventsPaging},
		{"Firmware", testFirmware},
		{"Storage", testStorage},
		{"FirmwareConcurrent", testFirmwareConcurrent},
		{"Rollouts", testRollouts},
		{"InTx", testInTx},
		{"Leadership", testLeadership},
		{"Canceled", testCanceled},
		{"Passwords", testPasswords},
		{"WebSessions", testWebSessions},
		{"ConsoleTickets", testConsoleTickets},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var ctx = context.Background()

// jsonEqual compares JSON documents as values (PostgreSQL's jsonb does not
// keep the bytes).
var jsonEqual = cmp.Comparer(jsonSame)

func jsonSame(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return cmp.Equal(x, y)
}

// wantErr checks that err is a *store.Error of kind naming field ("" for
// any field).
func wantErr(t *testing.T, what string, err, kind error, field string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error %v; want %v", what, err, kind)
		return
	}
	var se *store.Error
	if !errors.As(err, &se) {
		t.Errorf("%s: error %T %v is not a *store.Error", what, err, err)
		return
	}
	if field != "" && se.Field != field {
		t.Errorf("%s: error names field %q; want %q (%v)", what, se.Field, field, err)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func mkCluster(t *testing.T, s store.Queries, name string) store.Cluster {
	t.Helper()
	c := store.Cluster{Name: name, EmulatedMachineCandidates: []string{"pseries-*", "pseries"}}
	must(t, "create cluster "+name, s.CreateCluster(ctx, &c))
	return c
}

func mkHost(t *testing.T, s store.Queries, name, clusterID string) store.Host {
	t.Helper()
	h := store.Host{Name: name, Address: name + ".example:54321", ClusterID: clusterID, Arch: arch.PPC64LE,
		CPUFlags: []string{"powernv", "model_POWER8"}, EmulatedMachines: []string{"pseries-7.2"}}
	must(t, "create host "+name, s.CreateHost(ctx, &h))
	return h
}

func testSchemaVersion(t *testing.T, s store.Store) {
	v, err := s.SchemaVersion(ctx)
	must(t, "schema version", err)
	if v != store.LatestSchemaVersion() || v < 1 {
		t.Errorf("schema version %d; want %d", v, store.LatestSchemaVersion())
	}
	must(t, "ping", s.Ping(ctx))
}

func testInvalidInput(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "c1")
	long := strings.Repeat("a", 64)
	cases := []struct {
		name  string
		err   error
		field string
	}{
		{"cluster empty name", s.CreateCluster(ctx, &store.Cluster{}), "name"},
		{"cluster bad name", s.CreateCluster(ctx, &store.Cluster{Name: "-x"}), "name"},
		{"cluster long name", s.CreateCluster(ctx, &store.Cluster{Name: long}), "name"},
		{"cluster space", s.CreateCluster(ctx, &store.Cluster{Name: "a b"}), "name"},
		{"cluster bad arch", s.CreateCluster(ctx, &store.Cluster{Name: "c2", Arch: "mips"}), "arch"},
		{"cluster bad id", s.CreateCluster(ctx, &store.Cluster{ID: "a/b", Name: "c3"}), "id"},
		{"host bad name", s.CreateHost(ctx, &store.Host{Name: "h/1", Address: "a:1", ClusterID: c.ID}), "name"},
		{"host no address", s.CreateHost(ctx, &store.Host{Name: "h1", ClusterID: c.ID}), "address"},
		{"host no cluster", s.CreateHost(ctx, &store.Host{Name: "h1", Address: "a:1"}), "clusterId"},
		{"host bad status", s.CreateHost(ctx, &store.Host{Name: "h1", Address: "a:1", ClusterID: c.ID, Status: "Happy"}), "status"},
		{"host bad JSON", s.CreateHost(ctx, &store.Host{Name: "h1", Address: "a:1", ClusterID: c.ID, Capabilities: []byte("{")}), "capabilities"},
		{"user bad role", s.CreateUser(ctx, &store.User{Name: "u", Role: "root"}), "role"},
		{"user bad name", s.CreateUser(ctx, &store.User{Name: "ü", Role: store.RoleAdmin}), "name"},
		{"vm bad state", s.CreateVM(ctx, &store.VM{Name: "v", ClusterID: c.ID, State: "Dancing"}), "state"},
		{"vm bad JSON", s.CreateVM(ctx, &store.VM{Name: "v", ClusterID: c.ID, Definition: []byte("nope")}), "definition"},
		{"event no action", s.AppendEvent(ctx, &store.Event{Message: "m"}), "action"},
		{"event no message", s.AppendEvent(ctx, &store.Event{Action: "a"}), "message"},
		{"event bad severity", s.AppendEvent(ctx, &store.Event{Action: "a", Message: "m", Severity: "fatal"}), "severity"},
		{"firmware bad state", s.CreateFirmwareOperation(ctx, &store.FirmwareOperation{HostID: "x", State: "maybe"}), "state"},
		{"join token no expiry", s.SetHostJoinToken(ctx, "x", "hash", time.Time{}), "expires"},
	}
	for _, tc := range cases {
		wantErr(t, tc.name, tc.err, store.ErrInvalid, tc.field)
	}
	_, err := s.ListEvents(ctx, store.EventFilter{MinSeverity: "meh"})
	wantErr(t, "list events bad severity", err, store.ErrInvalid, "minSeverity")
	_, err = s.UpdateHostStats(ctx, []store.HostStats{{HostID: "x", Stats: []byte("[")}})
	wantErr(t, "stats bad JSON", err, store.ErrInvalid, "stats")
	// Nothing of the above was written.
	hosts, err := s.ListHosts(ctx, store.HostFilter{})
	must(t, "list hosts", err)
	clusters, err := s.ListClusters(ctx)
	must(t, "list clusters", err)
	if len(hosts) != 0 || len(clusters) != 1 {
		t.Errorf("after refused input: %d hosts, %d clusters; want 0 and 1", len(hosts), len(clusters))
	}
}

func testUsers(t *testing.T, s store.Store) {
	_, hash, err := store.NewToken()
	must(t, "new token", err)
	u := store.User{Name: "admin", Role: store.RoleAdmin, TokenHash: hash}
	must(t, "create", s.CreateUser(ctx, &u))
	if u.ID == "" || u.Version != 1 || u.Created.IsZero() {
		t.Errorf("created user not filled in: %+v", u)
	}
	for what, get := range map[string]func() (store.User, error){
		"by id":    func() (store.User, error) { return s.GetUser(ctx, u.ID) },
		"by name":  func() (store.User, error) { return s.GetUserByName(ctx, "admin") },
		"by token": func() (store.User, error) { return s.GetUserByTokenHash(ctx, hash) },
	} {
		got, err := get()
		must(t, "get "+what, err)
		if diff := cmp.Diff(u, got); diff != "" {
			t.Errorf("get %s (-created +got):\n%s", what, diff)
		}
	}
	_, err = s.GetUserByTokenHash(ctx, store.HashToken("forged"))
	wantErr(t, "forged token", err, store.ErrNotFound, "")
	_, err = s.GetUserByTokenHash(ctx, "")
	wantErr(t, "empty token", err, store.ErrNotFound, "")
	wantErr(t, "duplicate name", s.CreateUser(ctx, &store.User{Name: "admin", Role: store.RoleReadOnly}), store.ErrConflict, "name")
	wantErr(t, "duplicate token", s.CreateUser(ctx, &store.User{Name: "other", Role: store.RoleReadOnly, TokenHash: hash}), store.ErrConflict, "token_hash")
	ro := store.User{Name: "viewer", Role: store.RoleReadOnly}
	must(t, "create viewer", s.CreateUser(ctx, &ro))
	vmm := store.User{Name: "operator", Role: store.RoleVMManager}
	must(t, "create a vm-manager", s.CreateUser(ctx, &vmm))
	if got, err := s.GetUser(ctx, vmm.ID); err != nil || got.Role != store.RoleVMManager {
		t.Errorf("vm-manager read back: %+v %v", got, err)
	}
	// The metrics role passes the database's constraint too.
	prom := store.User{Name: "prometheus", Role: store.RoleMetrics}
	must(t, "create a metrics user", s.CreateUser(ctx, &prom))
	if got, err := s.GetUser(ctx, prom.ID); err != nil || got.Role != store.RoleMetrics {
		t.Errorf("metrics user read back: %+v %v", got, err)
	}
	must(t, "delete the metrics user", s.DeleteUser(ctx, prom.ID))
	wantErr(t, "unknown role", s.CreateUser(ctx, &store.User{Name: "root", Role: "superuser"}), store.ErrInvalid, "role")
	must(t, "delete the vm-manager", s.DeleteUser(ctx, vmm.ID))
	stale := u
	u.Role = store.RoleReadOnly
	must(t, "update", s.UpdateUser(ctx, &u))
	if u.Version != 2 {
		t.Errorf("version after update %d; want 2", u.Version)
	}
	wantErr(t, "stale update", s.UpdateUser(ctx, &stale), store.ErrConflict, "version")
	users, err := s.ListUsers(ctx)
	must(t, "list", err)
	if diff := cmp.Diff([]store.User{u, ro}, users); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	must(t, "delete", s.DeleteUser(ctx, ro.ID))
	wantErr(t, "delete again", s.DeleteUser(ctx, ro.ID), store.ErrNotFound, "")
	_, err = s.GetUser(ctx, ro.ID)
	wantErr(t, "get deleted", err, store.ErrNotFound, "")
	wantErr(t, "update deleted", s.UpdateUser(ctx, &ro), store.ErrNotFound, "")
}

func testClusters(t *testing.T, s store.Store) {
	c := store.Cluster{Name: "power", Description: "POWER hosts", EmulatedMachineCandidates: []string{"pseries-*"}, MigrationPolicy: "minimal-downtime"}
	must(t, "create", s.CreateCluster(ctx, &c))
	got, err := s.GetClusterByName(ctx, "power")
	must(t, "get by name", err)
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("get (-created +got):\n%s", diff)
	}
	if got.Arch != arch.Unknown || got.CPUType != "" || got.EmulatedMachine != "" {
		t.Errorf("new cluster has arch %q, CPU type %q, machine %q; want all unset", got.Arch, got.CPUType, got.EmulatedMachine)
	}
	if got.ShutdownTimeoutSeconds != store.DefaultShutdownTimeoutSeconds {
		t.Errorf("new cluster's shutdown time-out %d; want the default %d", got.ShutdownTimeoutSeconds, store.DefaultShutdownTimeoutSeconds)
	}
	for _, bad := range []int{-1, store.MaxShutdownTimeoutSeconds + 1} {
		b := c
		b.ShutdownTimeoutSeconds = bad
		wantErr(t, fmt.Sprintf("shutdown time-out %d", bad), s.UpdateCluster(ctx, &b), store.ErrInvalid, "shutdownTimeoutSeconds")
	}
	c.ShutdownTimeoutSeconds = 120
	if got.MigrationMaxOutgoing != store.DefaultMigrationsPerHost || got.MigrationMaxIncoming != store.DefaultMigrationsPerHost || got.MigrationEncrypted {
		t.Errorf("new cluster's migration settings %d/%d/%v; want %d/%d and no encryption", got.MigrationMaxOutgoing,
			got.MigrationMaxIncoming, got.MigrationEncrypted, store.DefaultMigrationsPerHost, store.DefaultMigrationsPerHost)
	}
	for _, bad := range []int{-1, store.MaxMigrationsPerHost + 1} {
		b := c
		b.MigrationMaxIncoming = bad
		wantErr(t, fmt.Sprintf("incoming migrations %d", bad), s.UpdateCluster(ctx, &b), store.ErrInvalid, "migrationMaxIncoming")
	}
	c.MigrationMaxOutgoing, c.MigrationMaxIncoming, c.MigrationEncrypted = 3, 1, true
	wantErr(t, "duplicate", s.CreateCluster(ctx, &store.Cluster{Name: "power"}), store.ErrConflict, "name")
	// The first host sets the arch and CPU type; aliases are canonical.
	c.Arch, c.CPUType, c.EmulatedMachine = "ppc64el", "IBM POWER8", "pseries-7.2"
	must(t, "update", s.UpdateCluster(ctx, &c))
	got, err = s.GetCluster(ctx, c.ID)
	must(t, "get", err)
	if got.Arch != arch.PPC64LE || got.Version != 2 || !got.Updated.After(got.Created) && !got.Updated.Equal(got.Created) {
		t.Errorf("after update: %+v", got)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
	x := mkCluster(t, s, "x86")
	list, err := s.ListClusters(ctx)
	must(t, "list", err)
	if diff := cmp.Diff([]store.Cluster{c, x}, list); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	x.Name = "power"
	wantErr(t, "rename onto another", s.UpdateCluster(ctx, &x), store.ErrConflict, "name")
	must(t, "delete", s.DeleteCluster(ctx, c.ID))
	wantErr(t, "delete again", s.DeleteCluster(ctx, c.ID), store.ErrNotFound, "")
	_, err = s.GetClusterByName(ctx, "power")
	wantErr(t, "get deleted", err, store.ErrNotFound, "")
}

func testClusterArchLocked(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "power")
	c.Arch = arch.PPC64
	must(t, "set arch of an empty cluster", s.UpdateCluster(ctx, &c))
	c.Arch = arch.X86_64
	must(t, "change arch of an empty cluster", s.UpdateCluster(ctx, &c))
	c.Arch = arch.PPC64
	must(t, "change it back", s.UpdateCluster(ctx, &c))
	mkHost(t, s, "p8", c.ID)
	c.CPUType = "IBM POWER9"
	must(t, "change the CPU type with hosts", s.UpdateCluster(ctx, &c))
	before := c
	c.Arch = arch.X86_64
	wantErr(t, "change arch with hosts", s.UpdateCluster(ctx, &c), store.ErrInUse, "arch")
	got, err := s.GetCluster(ctx, c.ID)
	must(t, "get", err)
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("refused update changed the cluster (-want +got):\n%s", diff)
	}
}

func testDeleteClusterInUse(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "busy")
	h := mkHost(t, s, "h1", c.ID)
	wantErr(t, "delete with a host", s.DeleteCluster(ctx, c.ID), store.ErrInUse, "")
	must(t, "delete host", s.DeleteHost(ctx, h.ID))
	vm := store.VM{Name: "vm1", ClusterID: c.ID}
	must(t, "create VM", s.CreateVM(ctx, &vm))
	err := s.DeleteCluster(ctx, c.ID)
	wantErr(t, "delete with a VM", err, store.ErrInUse, "")
	if err != nil && !strings.Contains(err.Error(), "0 hosts and 1 VMs") {
		t.Errorf("error %q does not say what uses the cluster", err)
	}
	must(t, "delete VM", s.DeleteVM(ctx, vm.ID))
	must(t, "delete empty cluster", s.DeleteCluster(ctx, c.ID))
}

func testHosts(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "power")
	c2 := mkCluster(t, s, "other")
	caps := json.RawMessage(`{"arch": "ppc64le", "cpu": {"model": "POWER8E", "flags": ["powernv", "model_POWER8"]}, "n": 1.5}`)
	h := store.Host{Name: "p8", Address: "10.0.0.8:54321", ClusterID: c.ID, Arch: arch.PPC64LE, CPUModel: "POWER8E (raw)",
		CPUFlags: []string{"powernv", "model_POWER8"}, CPUType: "IBM POWER8", CPULevel: 1,
		EmulatedMachines: []string{"pseries-7.2", "pseries"}, Capabilities: caps, CapabilitiesHash: "abc",
		CertFingerprint: "sha256:01", CertSerial: "42",
		// Ignored by CreateHost: written by their own methods only.
		Stats: json.RawMessage(`{}`), LastSeen: time.Now(), JoinTokenExpires: time.Now()}
	must(t, "create", s.CreateHost(ctx, &h))
	if h.Status != store.HostInstalling || h.Stats != nil || !h.LastSeen.IsZero() || !h.JoinTokenExpires.IsZero() {
		t.Errorf("created host: status %q stats %s seen %v token %v", h.Status, h.Stats, h.LastSeen, h.JoinTokenExpires)
	}
	for what, get := range map[string]func() (store.Host, error){
		"by id":          func() (store.Host, error) { return s.GetHost(ctx, h.ID) },
		"by name":        func() (store.Host, error) { return s.GetHostByName(ctx, "p8") },
		"by fingerprint": func() (store.Host, error) { return s.GetHostByCertFingerprint(ctx, "sha256:01") },
	} {
		got, err := get()
		must(t, "get "+what, err)
		if diff := cmp.Diff(h, got, jsonEqual); diff != "" {
			t.Errorf("get %s (-created +got):\n%s", what, diff)
		}
	}
	_, err := s.GetHostByCertFingerprint(ctx, "")
	wantErr(t, "empty fingerprint", err, store.ErrNotFound, "")
	wantErr(t, "duplicate name", s.CreateHost(ctx, &store.Host{Name: "p8", Address: "a:1", ClusterID: c.ID}), store.ErrConflict, "name")
	wantErr(t, "duplicate fingerprint", s.CreateHost(ctx, &store.Host{Name: "p9", Address: "a:1", ClusterID: c.ID, CertFingerprint: "sha256:01"}), store.ErrConflict, "cert_fingerprint")
	wantErr(t, "unknown cluster", s.CreateHost(ctx, &store.Host{Name: "p9", Address: "a:1", ClusterID: "nope"}), store.ErrNotFound, "clusterId")

	x := store.Host{Name: "x1", Address: "10.0.0.1:54321", ClusterID: c2.ID, Status: store.HostUp}
	must(t, "create x1", s.CreateHost(ctx, &x))
	// Hosts without a fingerprint do not collide.
	y := store.Host{Name: "x2", Address: "10.0.0.2:54321", ClusterID: c2.ID, Status: store.HostNonResponsive}
	must(t, "create x2", s.CreateHost(ctx, &y))

	h.Status, h.StatusCode, h.StatusMessage = store.HostNonOperational, "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER", "Missing CPU features: model_POWER9"
	h.Capabilities = json.RawMessage(`{"changed": true}`)
	must(t, "update", s.UpdateHost(ctx, &h))
	got, err := s.GetHost(ctx, h.ID)
	must(t, "get after update", err)
	if diff := cmp.Diff(h, got, jsonEqual); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
	noCaps := func(hs ...store.Host) []store.Host {
		out := make([]store.Host, len(hs))
		for i, h := range hs {
			h.Capabilities = nil
			out[i] = h
		}
		return out
	}
	cases := []struct {
		name   string
		filter store.HostFilter
		want   []store.Host
	}{
		{"all", store.HostFilter{}, noCaps(h, x, y)},
		{"all with capabilities", store.HostFilter{WithCapabilities: true}, []store.Host{h, x, y}},
		{"cluster", store.HostFilter{ClusterID: c2.ID}, noCaps(x, y)},
		{"statuses", store.HostFilter{Statuses: []store.HostStatus{store.HostUp, store.HostNonOperational}}, noCaps(h, x)},
		{"cluster and status", store.HostFilter{ClusterID: c2.ID, Statuses: []store.HostStatus{store.HostNonResponsive}}, noCaps(y)},
		{"no match", store.HostFilter{ClusterID: "nope"}, []store.Host{}},
		{"without statistics", store.HostFilter{ClusterID: c2.ID, NoStats: true}, noCaps(x, y)},
		// Pages: the names after a position, at most Limit of them.
		{"first page", store.HostFilter{Limit: 2}, noCaps(h, x)},
		{"after a name", store.HostFilter{After: "p8"}, noCaps(x, y)},
		{"after a name, limited", store.HostFilter{After: "p8", Limit: 1}, noCaps(x)},
		{"after a name that is no host's", store.HostFilter{After: "x15"}, noCaps(y)},
		{"after the last", store.HostFilter{After: "x2", Limit: 5}, []store.Host{}},
		{"filtered, then paged", store.HostFilter{ClusterID: c2.ID, After: "x1", Limit: 1}, noCaps(y)},
	}
	for _, tc := range cases {
		list, err := s.ListHosts(ctx, tc.filter)
		must(t, "list "+tc.name, err)
		if diff := cmp.Diff(tc.want, list, jsonEqual); diff != "" {
			t.Errorf("list %s (-want +got):\n%s", tc.name, diff)
		}
	}
	// Moving a host to another cluster.
	h.ClusterID = c2.ID
	must(t, "move", s.UpdateHost(ctx, &h))
	h.ClusterID = "nope"
	wantErr(t, "move to a missing cluster", s.UpdateHost(ctx, &h), store.ErrNotFound, "clusterId")
	must(t, "delete", s.DeleteHost(ctx, x.ID))
	wantErr(t, "delete again", s.DeleteHost(ctx, x.ID), store.ErrNotFound, "")
}

func testHostStats(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "c")
	h := mkHost(t, s, "h1", c.ID)
	h2 := mkHost(t, s, "h2", c.ID)
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	missing, err := s.UpdateHostStats(ctx, []store.HostStats{
		{HostID: h.ID, Stats: json.RawMessage(`{"cpu": 12.5, "memFree": 1024}`), At: at},
		{HostID: "gone"},
		{HostID: h2.ID},
	})
	must(t, "update stats", err)
	if diff := cmp.Diff([]string{"gone"}, missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	got, err := s.GetHost(ctx, h.ID)
	must(t, "get", err)
	want := at.Truncate(time.Microsecond)
	if !got.StatsAt.Equal(want) || !got.LastSeen.Equal(want) || !jsonSame(got.Stats, json.RawMessage(`{"memFree":1024,"cpu":12.5}`)) {
		t.Errorf("stats %s at %v seen %v; want at %v", got.Stats, got.StatsAt, got.LastSeen, want)
	}
	if got.Version != h.Version {
		t.Errorf("stats changed the host's version: %d → %d", h.Version, got.Version)
	}
	// A report without stats only records that the host was seen.
	later := at.Add(time.Minute).Truncate(time.Microsecond)
	_, err = s.UpdateHostStats(ctx, []store.HostStats{{HostID: h.ID, At: later}})
	must(t, "seen", err)
	got, err = s.GetHost(ctx, h.ID)
	must(t, "get", err)
	if !got.LastSeen.Equal(later) || !got.StatsAt.Equal(want) || len(got.Stats) == 0 {
		t.Errorf("after a bare report: stats %s at %v seen %v", got.Stats, got.StatsAt, got.LastSeen)
	}
	// Listed without the statistics document: their time is there.
	bare, err := s.ListHosts(ctx, store.HostFilter{ClusterID: c.ID, NoStats: true, Limit: 1})
	must(t, "list without statistics", err)
	if len(bare) != 1 || bare[0].Stats != nil || !bare[0].StatsAt.Equal(want) || !bare[0].LastSeen.Equal(later) {
		t.Errorf("listed without statistics: %+v; want h1 without stats, at %v, seen %v", bare, want, later)
	}
	got2, err := s.GetHost(ctx, h2.ID)
	must(t, "get h2", err)
	if got2.LastSeen.IsZero() || got2.Stats != nil {
		t.Errorf("h2: stats %s seen %v; want no stats, seen now", got2.Stats, got2.LastSeen)
	}
	// An update of the host keeps its stats.
	got.Status = store.HostUp
	must(t, "update host", s.UpdateHost(ctx, &got))
	again, err := s.GetHost(ctx, h.ID)
	must(t, "get", err)
	if len(again.Stats) == 0 || !again.LastSeen.Equal(later) {
		t.Errorf("UpdateHost lost the stats: %s %v", again.Stats, again.LastSeen)
	}
	missing, err = s.UpdateHostStats(ctx, nil)
	if err != nil || missing != nil {
		t.Errorf("empty batch: %v %v", missing, err)
	}
}

// testHostStatsLargeBatch: a batch of more hosts than one statement takes
// (PostgreSQL writes it through COPY) keeps UpdateHostStats' contract —
// each host's last report of the batch wins, a report without statistics
// only records the contact, unknown hosts are answered in order.
func testHostStatsLargeBatch(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "c")
	const n = 300
	ids := make([]string, 0, n)
	must(t, "create hosts", s.InTx(ctx, func(tx store.Tx) error {
		for i := 0; i < n; i++ {
			h := store.Host{Name: fmt.Sprintf("h%03d", i), Address: fmt.Sprintf("h%03d.example:54321", i), ClusterID: c.ID, Arch: arch.PPC64LE,
				CPUFlags: []string{"powernv", "model_POWER8"}, EmulatedMachines: []string{"pseries-7.2"}}
			if err := tx.CreateHost(ctx, &h); err != nil {
				return err
			}
			ids = append(ids, h.ID)
		}
		return nil
	}))
	first := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	at := first.Add(time.Minute + 987654321)
	must(t, "first stats", func() error {
		_, err := s.UpdateHostStats(ctx, []store.HostStats{{HostID: ids[1], Stats: json.RawMessage(`{"n":"first"}`), At: first}})
		return err
	}())
	var batch []store.HostStats
	batch = append(batch, store.HostStats{HostID: "gone-1", Stats: json.RawMessage(`{}`), At: at})
	for i, id := range ids {
		batch = append(batch, store.HostStats{HostID: id, Stats: json.RawMessage(`{"n":"early"}`), At: at})
		if i != 1 {
			batch = append(batch, store.HostStats{HostID: id, Stats: json.RawMessage(fmt.Sprintf(`{"n": %d, "s": "\u00e9t\u00e9 \"x\""}`, i)), At: at})
		}
	}
	// Host 1's last report has no document: its first stays.
	batch = append(batch, store.HostStats{HostID: ids[1], At: at}, store.HostStats{HostID: "gone-2", At: at})
	missing, err := s.UpdateHostStats(ctx, batch)
	must(t, "large batch", err)
	if diff := cmp.Diff([]string{"gone-1", "gone-2"}, missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	hosts, err := s.ListHosts(ctx, store.HostFilter{ClusterID: c.ID})
	must(t, "list", err)
	if len(hosts) != n {
		t.Fatalf("%d hosts listed, want %d", len(hosts), n)
	}
	want := at.Truncate(time.Microsecond)
	for _, h := range hosts {
		var i int
		if _, err := fmt.Sscanf(h.Name, "h%03d", &i); err != nil {
			t.Fatal(err)
		}
		doc, statsAt := fmt.Sprintf(`{"n": %d, "s": "été \"x\""}`, i), want
		if i == 1 {
			doc, statsAt = `{"n":"first"}`, first
		}
		if !jsonSame(h.Stats, json.RawMessage(doc)) || !h.StatsAt.Equal(statsAt) || !h.LastSeen.Equal(want) {
			t.Errorf("host %s: stats %s at %v, seen %v; want %s at %v, seen %v", h.Name, h.Stats, h.StatsAt, h.LastSeen, doc, statsAt, want)
		}
	}
}

func testJoinToken(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "c")
	h := mkHost(t, s, "h1", c.ID)
	token, hash, err := store.NewToken()
	must(t, "new token", err)
	if token == hash || len(hash) != 64 || store.HashToken(token) != hash {
		t.Fatalf("token %q hash %q", token, hash)
	}
	_, err = s.ConsumeJoinToken(ctx, hash)
	wantErr(t, "token not issued", err, store.ErrNotFound, "")
	wantErr(t, "token for a missing host", s.SetHostJoinToken(ctx, "nope", hash, time.Now().Add(time.Hour)), store.ErrNotFound, "")
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	must(t, "set", s.SetHostJoinToken(ctx, h.ID, hash, expires))
	got, err := s.GetHost(ctx, h.ID)
	must(t, "get", err)
	if !got.JoinTokenExpires.Equal(expires) || !got.JoinTokenUsed.IsZero() || got.Version != h.Version+1 {
		t.Errorf("after set: expires %v used %v version %d", got.JoinTokenExpires, got.JoinTokenUsed, got.Version)
	}
	_, err = s.ConsumeJoinToken(ctx, store.HashToken("forged"))
	wantErr(t, "forged", err, store.ErrNotFound, "")
	_, err = s.ConsumeJoinToken(ctx, "")
	wantErr(t, "empty", err, store.ErrNotFound, "")
	used, err := s.ConsumeJoinToken(ctx, hash)
	must(t, "consume", err)
	if used.ID != h.ID || used.JoinTokenUsed.IsZero() {
		t.Errorf("consumed: host %s used %v", used.ID, used.JoinTokenUsed)
	}
	_, err = s.ConsumeJoinToken(ctx, hash)
	wantErr(t, "consume twice", err, store.ErrConflict, "")

	// An expired token.
	_, old, _ := store.NewToken()
	must(t, "set expired", s.SetHostJoinToken(ctx, h.ID, old, time.Now().Add(-time.Second)))
	_, err = s.ConsumeJoinToken(ctx, old)
	wantErr(t, "expired", err, store.ErrExpired, "")
	// The previous token was replaced.
	_, err = s.ConsumeJoinToken(ctx, hash)
	wantErr(t, "replaced token", err, store.ErrNotFound, "")
	// Two hosts cannot share a token.
	h2 := mkHost(t, s, "h2", c.ID)
	wantErr(t, "shared token", s.SetHostJoinToken(ctx, h2.ID, old, time.Now().Add(time.Hour)), store.ErrConflict, "join_token_hash")
}

func testJoinTokenConcurrent(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "c")
	h := mkHost(t, s, "h1", c.ID)
	_, hash, _ := store.NewToken()
	must(t, "set", s.SetHostJoinToken(ctx, h.ID, hash, time.Now().Add(time.Hour)))
	const n = 8
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.ConsumeJoinToken(ctx, hash)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflicts.Add(1)
			default:
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Errorf("%d wins, %d conflicts; want 1 and %d", wins.Load(), conflicts.Load(), n-1)
	}
}

func testOptimisticLock(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "c")
	h := mkHost(t, s, "h1", c.ID)
	vm := store.VM{Name: "vm1", ClusterID: c.ID}
	must(t, "create VM", s.CreateVM(ctx, &vm))
	const n = 6
	race := func(what string, update func(i int) error) {
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				err := update(i)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("%s %d: %v", what, i, err)
				}
			}(i)
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != n-1 {
			t.Errorf("%s: %d wins, %d conflicts; want 1 and %d", what, wins.Load(), conflicts.Load(), n-1)
		}
	}
	race("cluster", func(i int) error {
		mine := c // every writer read version 1
		mine.MigrationPolicy = fmt.Sprintf("policy-%d", i)
		return s.UpdateCluster(ctx, &mine)
	})
	race("host", func(i int) error {
		mine := h
		mine.StatusMessage = fmt.Sprintf("writer %d", i)
		return s.UpdateHost(ctx, &mine)
	})
	race("vm", func(i int) error {
		mine := vm
		mine.State = store.VMPoweringUp
		return s.UpdateVM(ctx, &mine)
	})
	got, err := s.GetCluster(ctx, c.ID)
	must(t, "get cluster", err)
	if got.Version != 2 || !strings.HasPrefix(got.MigrationPolicy, "policy-") {
		t.Errorf("cluster after the race: version %d policy %q", got.Version, got.MigrationPolicy)
	}
}

func testVMs(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "power")
	h1 := mkHost(t, s, "p8a", c.ID)
	h2 := mkHost(t, s, "p8b", c.ID)
	def := json.RawMessage(`{"name": "web", "arch": "ppc64le", "memoryMiB": 2048}`)
	vm := store.VM{Name: "web", ClusterID: c.ID, PinnedHostID: h1.ID, Definition: def, HA: true}
	must(t, "create", s.CreateVM(ctx, &vm))
	if vm.State != store.VMDown || vm.StateChanged.IsZero() {
		t.Errorf("new VM: state %q changed %v", vm.State, vm.StateChanged)
	}
	for what, get := range map[string]func() (store.VM, error){
		"by id":   func() (store.VM, error) { return s.GetVM(ctx, vm.ID) },
		"by name": func() (store.VM, error) { return s.GetVMByName(ctx, "web") },
	} {
		got, err := get()
		must(t, "get "+what, err)
		if diff := cmp.Diff(vm, got, jsonEqual); diff != "" {
			t.Errorf("get %s (-created +got):\n%s", what, diff)
		}
	}
	plain := store.VM{Name: "db", ClusterID: c.ID}
	must(t, "create plain", s.CreateVM(ctx, &plain))
	if string(plain.Definition) != "{}" {
		t.Errorf("empty definition stored as %s", plain.Definition)
	}
	wantErr(t, "duplicate", s.CreateVM(ctx, &store.VM{Name: "web", ClusterID: c.ID}), store.ErrConflict, "name")
	wantErr(t, "unknown cluster", s.CreateVM(ctx, &store.VM{Name: "x", ClusterID: "nope"}), store.ErrNotFound, "clusterId")
	wantErr(t, "unknown host", s.CreateVM(ctx, &store.VM{Name: "x", ClusterID: c.ID, HostID: "nope"}), store.ErrNotFound, "hostId")

	// A state change moves StateChanged, another change does not.
	changed := vm.StateChanged
	time.Sleep(2 * time.Millisecond)
	vm.State, vm.HostID = store.VMUp, h1.ID
	must(t, "start", s.UpdateVM(ctx, &vm))
	if !vm.StateChanged.After(changed) {
		t.Errorf("StateChanged %v not after %v", vm.StateChanged, changed)
	}
	changed = vm.StateChanged
	vm.Definition = json.RawMessage(`{"name": "web", "memoryMiB": 4096}`)
	must(t, "edit", s.UpdateVM(ctx, &vm))
	if !vm.StateChanged.Equal(changed) {
		t.Errorf("StateChanged moved without a state change: %v → %v", changed, vm.StateChanged)
	}
	got, err := s.GetVM(ctx, vm.ID)
	must(t, "get", err)
	if diff := cmp.Diff(vm, got, jsonEqual); diff != "" {
		t.Errorf("after updates (-want +got):\n%s", diff)
	}
	// A pending action is kept with the VM (in full and brief lists too),
	// and goes when cleared.
	vm.Pending = &store.VMPending{Action: "start", HostID: h1.ID, User: "ops", Reason: "maintenance over",
		CorrelationID: "c-1", Engine: "engine-a", At: time.Now().UTC().Truncate(time.Microsecond)}
	must(t, "set pending", s.UpdateVM(ctx, &vm))
	for _, brief := range []bool{false, true} {
		list, err := s.ListVMs(ctx, store.VMFilter{HostID: h1.ID, Brief: brief})
		must(t, "list pending", err)
		if len(list) != 1 || list[0].Pending == nil {
			t.Fatalf("list (brief %v): %+v; want web with its pending action", brief, list)
		}
		if diff := cmp.Diff(vm.Pending, list[0].Pending); diff != "" {
			t.Errorf("pending action (brief %v) (-want +got):\n%s", brief, diff)
		}
	}
	wantErr(t, "pending without action", s.UpdateVM(ctx, &store.VM{ID: vm.ID, Name: "web", ClusterID: c.ID, Version: vm.Version,
		Pending: &store.VMPending{User: "ops"}}), store.ErrInvalid, "pending")
	vm.Pending = nil
	must(t, "clear pending", s.UpdateVM(ctx, &vm))
	if got, err := s.GetVM(ctx, vm.ID); err != nil || got.Pending != nil {
		t.Errorf("after clearing: pending %+v (%v)", got.Pending, err)
	}
	// A migration in flight: its destination and its document; a brief
	// list leaves the document out.
	vm.State, vm.MigratingToHostID, vm.MigrationPolicy = store.VMMigratingFrom, h2.ID, "post-copy"
	vm.Migration = json.RawMessage(`{"id": "m1", "phase": "copying-memory", "pass": 2}`)
	must(t, "migrating", s.UpdateVM(ctx, &vm))
	got, err = s.GetVM(ctx, vm.ID)
	must(t, "get migrating", err)
	if diff := cmp.Diff(vm, got, jsonEqual); diff != "" {
		t.Errorf("migrating (-want +got):\n%s", diff)
	}
	brief, err := s.ListVMs(ctx, store.VMFilter{HostID: h1.ID, Brief: true})
	must(t, "brief list", err)
	if len(brief) != 1 || brief[0].MigratingToHostID != h2.ID || brief[0].Migration != nil || brief[0].MigrationPolicy != "post-copy" {
		t.Errorf("brief list: %+v", brief)
	}
	wantErr(t, "migrating to an unknown host", s.UpdateVM(ctx, &store.VM{ID: vm.ID, Name: "web", ClusterID: c.ID, Version: vm.Version,
		MigratingToHostID: "nope"}), store.ErrNotFound, "migratingToHostId")
	wantErr(t, "a migration that is no JSON", s.UpdateVM(ctx, &store.VM{ID: vm.ID, Name: "web", ClusterID: c.ID, Version: vm.Version,
		Migration: json.RawMessage(`{"id":`)}), store.ErrInvalid, "migration")
	vm.State, vm.MigratingToHostID = store.VMUp, ""
	must(t, "arrived", s.UpdateVM(ctx, &vm))
	yes, no := true, false
	cases := []struct {
		name   string
		filter store.VMFilter
		want   []string
	}{
		{"all", store.VMFilter{}, []string{"db", "web"}},
		{"cluster", store.VMFilter{ClusterID: c.ID}, []string{"db", "web"}},
		{"on host", store.VMFilter{HostID: h1.ID}, []string{"web"}},
		{"on other host", store.VMFilter{HostID: h2.ID}, []string{}},
		{"pinned", store.VMFilter{PinnedHostID: h1.ID}, []string{"web"}},
		{"states", store.VMFilter{States: []store.VMState{store.VMDown, store.VMPaused}}, []string{"db"}},
		{"ha", store.VMFilter{HA: &yes}, []string{"web"}},
		{"not ha", store.VMFilter{HA: &no}, []string{"db"}},
	}
	for _, tc := range cases {
		list, err := s.ListVMs(ctx, tc.filter)
		must(t, "list "+tc.name, err)
		names := []string{}
		for _, v := range list {
			names = append(names, v.Name)
		}
		if diff := cmp.Diff(tc.want, names); diff != "" {
			t.Errorf("list %s (-want +got):\n%s", tc.name, diff)
		}
	}
	// The last host is forgotten when that host goes.
	plain.LastHostID = h2.ID
	must(t, "set last host", s.UpdateVM(ctx, &plain))
	must(t, "delete h2", s.DeleteHost(ctx, h2.ID))
	got, err = s.GetVM(ctx, plain.ID)
	must(t, "get plain", err)
	if got.LastHostID != "" {
		t.Errorf("last host %q after its deletion", got.LastHostID)
	}
	must(t, "delete", s.DeleteVM(ctx, plain.ID))
	wantErr(t, "delete again", s.DeleteVM(ctx, plain.ID), store.ErrNotFound, "")
	wantErr(t, "update deleted", s.UpdateVM(ctx, &plain), store.ErrNotFound, "")
}

func testDeleteHostInUse(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "c")
	h := mkHost(t, s, "h1", c.ID)
	vm := store.VM{Name: "vm1", ClusterID: c.ID, HostID: h.ID, State: store.VMUp}
	must(t, "create VM", s.CreateVM(ctx, &vm))
	wantErr(t, "delete with a running VM", s.DeleteHost(ctx, h.ID), store.ErrInUse, "")
	vm.HostID, vm.PinnedHostID, vm.State = "", h.ID, store.VMDown
	must(t, "stop and pin", s.UpdateVM(ctx, &vm))
	wantErr(t, "delete with a pinned VM", s.DeleteHost(ctx, h.ID), store.ErrInUse, "")
	vm.PinnedHostID = ""
	must(t, "unpin", s.UpdateVM(ctx, &vm))
	op := store.FirmwareOperation{HostID: h.ID, State: store.FirmwareFlashing}
	must(t, "start firmware", s.CreateFirmwareOperation(ctx, &op))
	wantErr(t, "delete during a firmware update", s.DeleteHost(ctx, h.ID), store.ErrInUse, "")
	op.State = store.FirmwareCommitted
	must(t, "end firmware", s.UpdateFirmwareOperation(ctx, &op))
	must(t, "delete", s.DeleteHost(ctx, h.ID))
	_, err := s.GetFirmwareOperation(ctx, op.ID)
	wantErr(t, "firmware history of a deleted host", err, store.ErrNotFound, "")
}

func testEvents(t *testing.T, s store.Store) {
	base := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	in := []store.Event{
		{Time: base, User: "admin", Action: "cluster.create", ObjectKind: "cluster", ObjectID: "c1", ObjectName: "power", Message: "Cluster power was created"},
		{Time: base.Add(time.Second), Action: "host.status", Severity: store.SeverityWarning, ObjectKind: "host", ObjectID: "h1", ObjectName: "p8",
			Code: "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER", Message: "Host p8 moved to Non-Operational state", Reason: "Missing CPU features: model_POWER9", CorrelationID: "req-1"},
		{Time: base.Add(2 * time.Second), User: "admin", Action: "host.maintenance", ObjectKind: "host", ObjectID: "h1", ObjectName: "p8", Message: "Host p8 was switched to Maintenance", CorrelationID: "req-1"},
		{Time: base.Add(3 * time.Second), Action: "host.status", Severity: store.SeverityError, ObjectKind: "host", ObjectID: "h2", ObjectName: "x1", Message: "Host x1 is not responding"},
		{Action: "engine.start", Severity: store.SeverityAlert, Message: "Engine started"},
	}
	for i := range in {
		must(t, "append", s.AppendEvent(ctx, &in[i]))
		if in[i].ID == 0 || (i > 0 && in[i].ID <= in[i-1].ID) {
			t.Errorf("event %d: ID %d", i, in[i].ID)
		}
	}
	if in[0].Severity != store.SeverityInfo || in[4].Time.IsZero() {
		t.Errorf("defaults: severity %q time %v", in[0].Severity, in[4].Time)
	}
	rev := func(idx ...int) []store.Event {
		out := []store.Event{}
		for _, i := range idx {
			out = append(out, in[i])
		}
		return out
	}
	cases := []struct {
		name   string
		filter store.EventFilter
		want   []store.Event
	}{
		{"all, newest first", store.EventFilter{}, rev(4, 3, 2, 1, 0)},
		{"object", store.EventFilter{ObjectKind: "host", ObjectID: "h1"}, rev(2, 1)},
		{"user", store.EventFilter{User: "admin"}, rev(2, 0)},
		{"action", store.EventFilter{Action: "host.status"}, rev(3, 1)},
		{"code", store.EventFilter{Code: "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER"}, rev(1)},
		{"correlation", store.EventFilter{CorrelationID: "req-1"}, rev(2, 1)},
		{"warning or worse", store.EventFilter{MinSeverity: store.SeverityWarning}, rev(4, 3, 1)},
		{"error or worse", store.EventFilter{MinSeverity: store.SeverityError}, rev(4, 3)},
		{"info or worse", store.EventFilter{MinSeverity: store.SeverityInfo}, rev(4, 3, 2, 1, 0)},
		{"since", store.EventFilter{Since: base.Add(time.Second), Until: base.Add(3 * time.Second)}, rev(2, 1)},
		{"before", store.EventFilter{Before: in[2].ID}, rev(1, 0)},
		{"nothing", store.EventFilter{ObjectKind: "vm"}, rev()},
	}
	for _, tc := range cases {
		page, err := s.ListEvents(ctx, tc.filter)
		must(t, "list "+tc.name, err)
		if diff := cmp.Diff(tc.want, page.Events); diff != "" {
			t.Errorf("list %s (-want +got):\n%s", tc.name, diff)
		}
		if page.Next != 0 {
			t.Errorf("list %s: next %d on the last page", tc.name, page.Next)
		}
	}
}

func testEventsPaging(t *testing.T, s store.Store) {
	const n = 57
	for i := 0; i < n; i++ {
		e := store.Event{Action: "test", ObjectKind: "vm", ObjectID: fmt.Sprint(i % 3), Message: fmt.Sprintf("event %d", i)}
		must(t, "append", s.AppendEvent(ctx, &e))
	}
	for _, size := range []int{1, 10, 19, 57, 100} {
		var got []string
		f := store.EventFilter{Limit: size}
		pages := 0
		for {
			page, err := s.ListEvents(ctx, f)
			must(t, "page", err)
			pages++
			if len(page.Events) > size {
				t.Fatalf("page of %d events with limit %d", len(page.Events), size)
			}
			for _, e := range page.Events {
				got = append(got, e.Message)
			}
			if page.Next == 0 {
				break
			}
			f.Before = page.Next
			if pages > n+1 {
				t.Fatal("paging does not end")
			}
		}
		if len(got) != n || got[0] != fmt.Sprintf("event %d", n-1) || got[n-1] != "event 0" {
			t.Errorf("limit %d: %d events in %d pages, first %q last %q", size, len(got), pages, got[0], got[len(got)-1])
		}
		if wantPages := (n + size - 1) / size; pages != wantPages && !(n%size == 0 && pages == wantPages) {
			t.Errorf("limit %d: %d pages; want %d", size, pages, wantPages)
		}
	}
	// Paging with a filter.
	page, err := s.ListEvents(ctx, store.EventFilter{ObjectKind: "vm", ObjectID: "1", Limit: 5})
	must(t, "filtered page", err)
	if len(page.Events) != 5 || page.Next == 0 || page.Events[0].Message != "event 55" {
		t.Errorf("filtered first page: %d events, next %d, first %q", len(page.Events), page.Next, page.Events[0].Message)
	}
	page, err = s.ListEvents(ctx, store.EventFilter{Limit: 5000})
	must(t, "huge limit", err)
	if len(page.Events) != n {
		t.Errorf("limit 5000 gave %d events", len(page.Events))
	}
}

func testFirmware(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "power")
	h := mkHost(t, s, "p8", c.ID)
	_, err := s.GetActiveFirmwareOperation(ctx, h.ID)
	wantErr(t, "no active operation", err, store.ErrNotFound, "")
	t0 := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
	op := store.FirmwareOperation{HostID: h.ID, State: store.FirmwareUploading, FromLevel: "SV860_070", ToLevel: "SV860_245",
		ImageName: "01SV860_245_165.img", ImageSHA256: "ab12", RequestedBy: "admin",
		Steps: []store.FirmwareStep{{Time: t0, State: store.FirmwareUploading, Message: "upload started"}}}
	must(t, "create", s.CreateFirmwareOperation(ctx, &op))
	wantErr(t, "second active", s.CreateFirmwareOperation(ctx, &store.FirmwareOperation{HostID: h.ID, State: store.FirmwareValidating}), store.ErrConflict, "hostId")
	wantErr(t, "unknown host", s.CreateFirmwareOperation(ctx, &store.FirmwareOperation{HostID: "nope", State: store.FirmwareValidating}), store.ErrNotFound, "hostId")
	active, err := s.GetActiveFirmwareOperation(ctx, h.ID)
	must(t, "active", err)
	if diff := cmp.Diff(op, active); diff != "" {
		t.Errorf("active (-created +got):\n%s", diff)
	}
	for _, st := range []store.FirmwareState{store.FirmwareValidating, store.FirmwareValidated, store.FirmwareFlashing,
		store.FirmwareRebooting, store.FirmwareAwaitingDecision, store.FirmwareCommitting, store.FirmwareCommitted} {
		op.State = st
		op.Steps = append(op.Steps, store.FirmwareStep{Time: t0.Add(time.Duration(len(op.Steps)) * time.Minute), State: st})
		must(t, "to "+string(st), s.UpdateFirmwareOperation(ctx, &op))
	}
	got, err := s.GetFirmwareOperation(ctx, op.ID)
	must(t, "get", err)
	if diff := cmp.Diff(op, got); diff != "" {
		t.Errorf("after the workflow (-want +got):\n%s", diff)
	}
	_, err = s.GetActiveFirmwareOperation(ctx, h.ID)
	wantErr(t, "active after commit", err, store.ErrNotFound, "")
	op.State = store.FirmwareFlashing
	wantErr(t, "reopen", s.UpdateFirmwareOperation(ctx, &op), store.ErrInvalid, "state")
	stale := got
	stale.Version--
	stale.Error = "x"
	wantErr(t, "stale", s.UpdateFirmwareOperation(ctx, &stale), store.ErrConflict, "version")
	// A new operation may start now; it ends rejected.
	second := store.FirmwareOperation{HostID: h.ID, State: store.FirmwareValidating}
	must(t, "second operation", s.CreateFirmwareOperation(ctx, &second))
	second.State, second.Error = store.FirmwareFailed, "update_flash: image is for another machine type"
	must(t, "fail", s.UpdateFirmwareOperation(ctx, &second))
	list, err := s.ListFirmwareOperations(ctx, h.ID)
	must(t, "list", err)
	if len(list) != 2 || list[0].ID != second.ID || list[1].ID != op.ID {
		t.Errorf("list: %d operations, want [second, first]", len(list))
	}
}

func testFirmwareConcurrent(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "power")
	h := mkHost(t, s, "p8", c.ID)
	const n = 6
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := s.CreateFirmwareOperation(ctx, &store.FirmwareOperation{HostID: h.ID, State: store.FirmwareUploading})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("create: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Errorf("%d wins, %d conflicts; want 1 and %d", wins.Load(), conflicts.Load(), n-1)
	}
}

func testInTx(t *testing.T, s store.Store) {
	// Committed together.
	var c store.Cluster
	var h store.Host
	err := s.InTx(ctx, func(tx store.Tx) error {
		c = mkCluster(t, tx, "power")
		h = mkHost(t, tx, "p8", c.ID)
		h.Status = store.HostUp
		if err := tx.UpdateHost(ctx, &h); err != nil {
			return err
		}
		return tx.AppendEvent(ctx, &store.Event{Action: "host.add", ObjectKind: "host", ObjectID: h.ID, Message: "added"})
	})
	must(t, "commit", err)
	got, err := s.GetHost(ctx, h.ID)
	must(t, "get committed", err)
	if got.Status != store.HostUp || got.Version != 2 {
		t.Errorf("committed host: %s v%d", got.Status, got.Version)
	}
	// Rolled back on error: nothing of it stays.
	boom := errors.New("boom")
	err = s.InTx(ctx, func(tx store.Tx) error {
		mkCluster(t, tx, "x86")
		if err := tx.AppendEvent(ctx, &store.Event{Action: "a", Message: "rolled back"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("InTx returned %v; want boom", err)
	}
	// A database error spoils the transaction: later calls fail, and the
	// whole transaction rolls back even if fn swallows the error.
	err = s.InTx(ctx, func(tx store.Tx) error {
		mkCluster(t, tx, "arm")
		dup := tx.CreateCluster(ctx, &store.Cluster{Name: "arm"})
		wantErr(t, "duplicate in a transaction", dup, store.ErrConflict, "name")
		wantErr(t, "call after a failed one", tx.CreateCluster(ctx, &store.Cluster{Name: "s390"}), store.ErrInvalid, "")
		return nil // swallowed
	})
	wantErr(t, "InTx after a swallowed error", err, store.ErrConflict, "name")
	// A panic rolls back and goes on.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not come out of InTx")
			}
		}()
		_ = s.InTx(ctx, func(tx store.Tx) error {
			mkCluster(t, tx, "panic")
			panic("in a transaction")
		})
	}()
	list, err := s.ListClusters(ctx)
	must(t, "list", err)
	if len(list) != 1 || list[0].Name != "power" {
		t.Errorf("clusters after rollbacks: %v", list)
	}
	page, err := s.ListEvents(ctx, store.EventFilter{})
	must(t, "events", err)
	if len(page.Events) != 1 || page.Events[0].Message != "added" {
		t.Errorf("events after rollbacks: %v", page.Events)
	}
	// Reads in a transaction see its own writes.
	must(t, "read own writes", s.InTx(ctx, func(tx store.Tx) error {
		c2 := mkCluster(t, tx, "x86")
		got, err := tx.GetClusterByName(ctx, "x86")
		if err != nil {
			return err
		}
		if got.ID != c2.ID {
			t.Errorf("read %s; want %s", got.ID, c2.ID)
		}
		_, err = tx.GetClusterByName(ctx, "nope")
		wantErr(t, "not found in a transaction", err, store.ErrNotFound, "")
		// Not found does not spoil the transaction.
		_, err = tx.ListClusters(ctx)
		return err
	}))
}

func testLeadership(t *testing.T, s store.Store) {
	l, ok, err := s.TryAcquireLeadership(ctx, store.RoleMonitoring)
	must(t, "acquire", err)
	if !ok || l == nil || l.Role() != store.RoleMonitoring {
		t.Fatalf("acquire: %v %v", l, ok)
	}
	must(t, "check", l.Check(ctx))
	_, ok2, err := s.TryAcquireLeadership(ctx, store.RoleMonitoring)
	must(t, "second try", err)
	if ok2 {
		t.Error("a role held by this store was granted again")
	}
	other, ok3, err := s.TryAcquireLeadership(ctx, "scheduler")
	must(t, "another role", err)
	if !ok3 {
		t.Error("another role was refused")
	}
	must(t, "release", l.Release(ctx))
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Error("Lost not closed after Release")
	}
	if err := l.Check(ctx); err == nil {
		t.Error("Check passed after Release")
	}
	l2, ok, err := s.TryAcquireLeadership(ctx, store.RoleMonitoring)
	must(t, "acquire after release", err)
	if !ok {
		t.Fatal("not granted after release")
	}
	_, _, err = s.TryAcquireLeadership(ctx, "bad role!")
	wantErr(t, "bad role", err, store.ErrInvalid, "role")
	must(t, "release", l2.Release(ctx))
	if other != nil {
		must(t, "release other", other.Release(ctx))
	}
}

func testCanceled(t *testing.T, s store.Store) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := s.CreateCluster(cctx, &store.Cluster{Name: "c"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("create with a canceled context: %v", err)
	}
	_, err = s.ListClusters(cctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("list with a canceled context: %v", err)
	}
	list, err := s.ListClusters(ctx)
	must(t, "list", err)
	if len(list) != 0 {
		t.Errorf("a canceled create wrote %v", list)
	}
}

// testRollouts: a cluster's rollout is created with its document, one
// active per cluster, updated with its version, listed newest first, and an
// ended one is not reopened.
func testRollouts(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "ro")
	other := mkCluster(t, s, "ro2")
	doc := json.RawMessage(`{"hosts": [{"host": "a", "phase": "pending"}]}`)
	r := store.Rollout{ClusterID: c.ID, State: "running", Doc: doc}
	must(t, "create", s.CreateRollout(ctx, &r))
	if r.ID == "" || r.Version != 1 || r.Created.IsZero() {
		t.Errorf("created: %+v", r)
	}
	wantErr(t, "second active", s.CreateRollout(ctx, &store.Rollout{ClusterID: c.ID, State: "running", Doc: doc}), store.ErrConflict, "clusterId")
	wantErr(t, "unknown cluster", s.CreateRollout(ctx, &store.Rollout{ClusterID: "nope", State: "running", Doc: doc}), store.ErrNotFound, "clusterId")
	wantErr(t, "bad doc", s.CreateRollout(ctx, &store.Rollout{ClusterID: other.ID, State: "running", Doc: json.RawMessage(`{`)}), store.ErrInvalid, "doc")
	wantErr(t, "no state", s.CreateRollout(ctx, &store.Rollout{ClusterID: other.ID, Doc: doc}), store.ErrInvalid, "state")
	got, err := s.GetRollout(ctx, r.ID)
	must(t, "get", err)
	if d := cmp.Diff(r, got, jsonEqual, cmpopts.EquateApproxTime(time.Millisecond)); d != "" {
		t.Errorf("get (-created +read):\n%s", d)
	}
	stale := got
	r.Doc = json.RawMessage(`{"hosts": [{"host": "a", "phase": "done"}]}`)
	must(t, "update", s.UpdateRollout(ctx, &r))
	wantErr(t, "stale", s.UpdateRollout(ctx, &stale), store.ErrConflict, "version")
	active, err := s.ListRollouts(ctx, store.RolloutFilter{Active: true})
	must(t, "list active", err)
	if len(active) != 1 || active[0].ID != r.ID || !jsonSame(active[0].Doc, r.Doc) {
		t.Errorf("active: %+v", active)
	}
	r.State, r.Ended = "succeeded", true
	must(t, "end", s.UpdateRollout(ctx, &r))
	r.State, r.Ended = "running", false
	wantErr(t, "reopen", s.UpdateRollout(ctx, &r), store.ErrInvalid, "state")
	second := store.Rollout{ClusterID: c.ID, State: "running", Doc: doc}
	must(t, "second rollout", s.CreateRollout(ctx, &second))
	list, err := s.ListRollouts(ctx, store.RolloutFilter{ClusterID: c.ID})
	must(t, "list", err)
	if len(list) != 2 || list[0].ID != second.ID || list[1].ID != r.ID || !list[1].Ended || list[0].Ended {
		t.Errorf("list: %+v", list)
	}
	if l, err := s.ListRollouts(ctx, store.RolloutFilter{ClusterID: other.ID}); err != nil || len(l) != 0 {
		t.Errorf("another cluster's: %v %v", l, err)
	}
}
