package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/libvirttls"
	"polyvirt/internal/migpolicy"
	"polyvirt/internal/pki"
)

// testCA is one CA for the migration tests' hosts.
var testCA = func() *pki.CA {
	ca, err := pki.NewCA("unit CA")
	if err != nil {
		panic(err)
	}
	return ca
}()

// newMigrationAgent is a test agent named host that takes VMs at addr,
// with its libvirt certificate (none when withTLS is false).
func newMigrationAgent(t *testing.T, f *fakeConn, host, addr string, withTLS bool) *Agent {
	t.Helper()
	a := newTestAgent(t, f)
	a.cfg.HostID = host
	a.cfg.DomainPrefix = host + "-"
	a.cfg.Migration.Address = addr
	a.cfg.Migration.StreamAddress = "127.0.0.1"
	if withTLS {
		is, err := testCA.Issue(host, []string{"127.0.0.1"}, pki.LibvirtPeer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := libvirttls.Write(a.cfg.Migration.PKIDir, testCA.CertPEM, is.CertPEM, is.KeyPEM); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(a.consoleDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a.runMigrations(ctx)
	return a
}

func init() { monitorInterval = 10 * time.Millisecond }

// runningVM creates and starts the unit VM on a.
func runningVM(t *testing.T, a *Agent) *agentapi.VM {
	t.Helper()
	vm := create(t, a, unitVM)
	if _, err := a.Act(context.Background(), vm.ID, "start"); err != nil {
		t.Fatal(err)
	}
	return vm
}

// order is a migration order for vm to the destination agent dst, after
// announcing it there.
func order(t *testing.T, src, dst *Agent, vm *agentapi.VM, policy string) agentapi.MigrationOrder {
	t.Helper()
	ctx := context.Background()
	plan, err := src.MigrationPlan(ctx, vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	in, err := dst.Announce(ctx, agentapi.IncomingRequest{Migration: "m1", VM: vm.ID, Name: vm.Name, SourceHost: src.HostID(),
		Definition: vm.Definition, Disks: plan.Disks})
	if err != nil {
		t.Fatal(err)
	}
	p, err := migpolicy.For(policy)
	if err != nil {
		t.Fatal(err)
	}
	return agentapi.MigrationOrder{Migration: "m1", DestinationHost: dst.HostID(), Destination: *in, Policy: p.Name,
		Schedule: p.Schedule, AutoConverge: p.AutoConverge, PostCopy: p.PostCopy}
}

// waitPhase waits until the migration of vm on a is finished.
func waitFinished(t *testing.T, a *Agent, vm string) agentapi.MigrationStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := a.MigrationStatus(vm)
		if err == nil && agentapi.MigrationFinished(st.Phase) {
			return *st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the migration of %s did not finish", vm)
	return agentapi.MigrationStatus{}
}

func TestDestinationXML(t *testing.T) {
	x := `<domain type="qemu">
  <name>power8-a-web1</name>
  <uuid>5b1c6bd6-2c43-5a51-9b1e-9e3d9d7e07c4</uuid>
  <metadata>
    <polyvirt:vm xmlns:polyvirt="urn:polyvirt:vm:1"><polyvirt:entry key="role">web</polyvirt:entry></polyvirt:vm>
    <owner:owner xmlns:owner="urn:polyvirt:agent:1" vm="1b4e28ba-2fa1-41d2-883f-0016d3cca427" name="web1" host="power8-a" arch="ppc64le" fakeKvm="true"><owner:definition>{"name":"web1"}</owner:definition></owner:owner>
  </metadata>
  <memory unit="KiB">524288</memory>
  <devices>
    <serial type="pty"><log file="/var/lib/polyvirt/a/consoles/1b4e28ba.log" append="on"/><target type="spapr-vio-serial" port="0"/></serial>
    <console type="pty"><log file="/var/lib/polyvirt/a/consoles/1b4e28ba.log" append="on"/><target type="serial" port="0"/></console>
  </devices>
</domain>`
	owner := Owner{VM: "1b4e28ba-2fa1-41d2-883f-0016d3cca427", Name: "web1", Host: "power8-b", Arch: "ppc64le", FakeKVM: true,
		UUIDFrom: "power8-a", Definition: `{"name":"web1"}`}
	out, err := destinationXML(x, owner, "/var/lib/polyvirt/b/consoles/1b4e28ba.log")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ownerOf(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(owner, Owner{VM: got.VM, Name: got.Name, Host: got.Host, Arch: got.Arch, FakeKVM: got.FakeKVM,
		UUIDFrom: got.UUIDFrom, Definition: got.Definition}); diff != "" {
		t.Errorf("owner (-want +got):\n%s", diff)
	}
	// The name stays (libvirt renames it on the way).
	for _, want := range []string{"<name>power8-a-web1</name>", "<uuid>5b1c6bd6-2c43-5a51-9b1e-9e3d9d7e07c4</uuid>",
		`<polyvirt:entry key="role">web</polyvirt:entry>`} {
		if !strings.Contains(out, want) {
			t.Errorf("the destination XML lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "urn:polyvirt:agent:1"); n != 1 {
		t.Errorf("%d owner elements:\n%s", n, out)
	}
	if strings.Contains(out, "/var/lib/polyvirt/a/") || strings.Count(out, "/var/lib/polyvirt/b/consoles/1b4e28ba.log") != 2 {
		t.Errorf("console logs:\n%s", out)
	}
	// A prefixed destination accepts the domain's UUID as derived for its
	// origin host.
	b := &Agent{cfg: Config{HostID: "power8-b", DomainPrefix: "power8-b-"}}
	if got := b.expectedUUID(owner); got != derivedUUID("power8-a", owner.VM) {
		t.Errorf("expected UUID %s", got)
	}
}

func TestMigrationOrderRefusals(t *testing.T) {
	f := newFakeConn()
	a := newMigrationAgent(t, f, "power8-a", "127.0.0.1:16501", true)
	vm := create(t, a, unitVM)
	good := agentapi.MigrationOrder{Migration: "m1", DestinationHost: "power8-b",
		Destination: agentapi.Incoming{LibvirtURI: "qemu+tls://127.0.0.1:16502/system", DomainName: "power8-b-unit-ppc", MigrationAddress: "tcp://127.0.0.1"}}
	cases := []struct {
		name   string
		change func(*agentapi.MigrationOrder)
		code   string
		text   string
	}{
		{"plain TCP", func(o *agentapi.MigrationOrder) { o.Destination.LibvirtURI = "qemu+tcp://127.0.0.1:16509/system" },
			api.CodeInvalidArgument, "a destination is reached over TLS only"},
		{"a pkipath of the engine's choice", func(o *agentapi.MigrationOrder) {
			o.Destination.LibvirtURI = "qemu+tls://127.0.0.1:16502/system?pkipath=/etc"
		}, api.CodeInvalidArgument, "over TLS only"},
		{"to itself", func(o *agentapi.MigrationOrder) { o.DestinationHost = "power8-a" }, api.CodeInvalidArgument, "another host"},
		{"post-copy step without post-copy", func(o *agentapi.MigrationOrder) {
			o.Schedule.Stalling = []agentapi.StallingStep{{Limit: 1, ConvergenceAction: agentapi.ConvergenceAction{Action: "postCopy"}}}
		}, api.CodeInvalidArgument, "a post-copy step needs postCopy"},
		{"a stopped VM", func(*agentapi.MigrationOrder) {}, api.CodeMigrationVMNotUp, "only a running VM migrates"},
	}
	for _, c := range cases {
		o := good
		c.change(&o)
		_, err := a.StartMigration(context.Background(), vm.ID, o)
		if e := asAPIError(err); e.Code != c.code || !strings.Contains(e.Message, c.text) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// A host without its libvirt certificate sends nothing.
	b := newMigrationAgent(t, newFakeConn(), "power8-c", "", false)
	vmb := runningVM(t, b)
	_, err := b.StartMigration(context.Background(), vmb.ID, good)
	if e := asAPIError(err); e.Code != api.CodeMigrationNoTLS {
		t.Errorf("without TLS files: %v", err)
	}
	// ... and takes nothing.
	_, err = b.Announce(context.Background(), agentapi.IncomingRequest{Migration: "m1", VM: vm.ID, Name: vm.Name, SourceHost: "power8-a", Definition: vm.Definition})
	if e := asAPIError(err); e.Code != api.CodeMigrationNoTLS {
		t.Errorf("an announcement without TLS: %v", err)
	}
}

// TestMigrationArrives: the VM moves; the source no longer lists it, the
// destination lists it once libvirt finished it, with its domain renamed
// and owned by the destination.
func TestMigrationArrives(t *testing.T) {
	fa, fb := newFakeConn(), newFakeConn()
	a := newMigrationAgent(t, fa, "power8-a", "127.0.0.1:16501", true)
	b := newMigrationAgent(t, fb, "power8-b", "127.0.0.1:16502", true)
	fa.migration().peers["qemu+tls://127.0.0.1:16502/system"] = fb
	vm := runningVM(t, a)
	if err := os.WriteFile(a.consoleLog(vm.ID), []byte("boot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o := order(t, a, b, vm, migpolicy.MinimalDowntime)
	fa.migration().jobs = []libvirtconn.JobStats{
		{MemIteration: 1, MemTotal: 512 << 20, MemProcessed: 100 << 20, MemRemaining: 412 << 20, MemBps: 80 << 20},
		{MemIteration: 1, MemTotal: 512 << 20, MemProcessed: 300 << 20, MemRemaining: 212 << 20, MemBps: 80 << 20},
	}
	st, err := a.StartMigration(ctx, vm.ID, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != agentapi.PhasePreparing || st.Migration != "m1" || st.DestinationHost != "power8-b" {
		t.Errorf("started: %+v", st)
	}
	// A second order while it runs.
	if _, err := a.StartMigration(ctx, vm.ID, o); asAPIError(err).Code != api.CodeMigrationInProgress {
		t.Errorf("a second migration: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, _ := a.MigrationStatus(vm.ID)
		if s.Phase == agentapi.PhaseCopyingMemory && s.MemoryProcessed == 300<<20 && s.AllowedDowntimeMs == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The run's parameters: the destination's name and owner, over TLS
	// with this host's pkipath.
	fa.migration().mu.Lock()
	run := *fa.migration().running
	fa.migration().mu.Unlock()
	if run.uri != "qemu+tls://127.0.0.1:16502/system?pkipath="+a.cfg.Migration.PKIDir || run.p.DestName != "power8-b-unit-ppc" ||
		run.p.MigrationURI != "tcp://127.0.0.1" || !run.p.AutoConverge || run.p.PostCopy {
		t.Errorf("migration parameters: %s %+v", run.uri, run.p)
	}
	if ow, err := ownerOf(run.p.DestXML); err != nil || ow.Host != "power8-b" || ow.UUIDFrom != "power8-a" {
		t.Errorf("destination owner: %+v %v", ow, err)
	}
	// The domain is on the destination, arriving: not listed there yet.
	fb.migration().incoming[run.uuid] = true
	fa.migration().finish <- nil
	done := waitFinished(t, a, vm.ID)
	if done.Phase != agentapi.PhaseCompleted || done.Error != "" {
		t.Errorf("finished: %+v", done)
	}
	if vms, _ := a.ListVMs(ctx); len(vms) != 0 {
		t.Errorf("the source lists %+v", vms)
	}
	if _, err := os.Stat(a.consoleLog(vm.ID)); !os.IsNotExist(err) {
		t.Errorf("the source's console log stays: %v", err)
	}
	c, _ := b.conn.get()
	e, err := b.readEntry(ctx, c, libvirtconn.Domain{UUID: run.uuid, Name: "power8-b-unit-ppc"})
	if err != nil {
		t.Fatalf("the destination reads the domain: %v", err)
	}
	if !b.incomingDomain(ctx, c, e) {
		t.Fatal("the arriving domain was not taken as incoming")
	}
	if vms, _ := b.ListVMs(ctx); len(vms) != 0 {
		t.Errorf("the destination lists an arriving VM: %+v", vms)
	}
	in, _ := b.Incoming(vm.ID)
	if in.State != agentapi.IncomingArriving {
		t.Errorf("incoming: %+v", in)
	}
	// libvirt finished it.
	fb.migration().mu.Lock()
	delete(fb.migration().incoming, run.uuid)
	fb.migration().completed[run.uuid] = libvirtconn.JobStats{Type: libvirtconn.JobCompleted, Operation: libvirtconn.JobMigrationIn,
		Downtime: 147 * time.Millisecond, Elapsed: 7 * time.Second}
	fb.migration().mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if vms, _ := b.ListVMs(ctx); len(vms) == 1 {
			if vms[0].ID != vm.ID || vms[0].Host != "power8-b" || vms[0].State != agentapi.StateRunning {
				t.Errorf("the destination lists %+v", vms[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the VM did not arrive")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		in, _ = b.Incoming(vm.ID)
		if in.DowntimeMs != 0 || time.Now().After(deadline) {
			break
		}
	}
	if in.State != agentapi.IncomingArrived || in.DowntimeMs != 147 || in.TotalMs != 7000 {
		t.Errorf("arrived: %+v", in)
	}
}

// TestMigrationConvergence: the schedule raises the allowed downtime pass
// after pass and gives up at its end; the VM stays.
func TestMigrationConvergence(t *testing.T) {
	fa, fb := newFakeConn(), newFakeConn()
	a := newMigrationAgent(t, fa, "power8-a", "127.0.0.1:16501", true)
	b := newMigrationAgent(t, fb, "power8-b", "127.0.0.1:16502", true)
	vm := runningVM(t, a)
	o := order(t, a, b, vm, migpolicy.MinimalDowntime)
	for pass := 1; pass <= 9; pass++ {
		for range 2 {
			fa.migration().jobs = append(fa.migration().jobs, libvirtconn.JobStats{MemIteration: pass, MemTotal: 1 << 30, MemRemaining: 300 << 20})
		}
	}
	if _, err := a.StartMigration(context.Background(), vm.ID, o); err != nil {
		t.Fatal(err)
	}
	st := waitFinished(t, a, vm.ID)
	want := []string{"downtime 100ms", "downtime 150ms", "downtime 200ms", "downtime 300ms", "downtime 400ms", "downtime 500ms", "abort"}
	if diff := cmp.Diff(want, fa.migration().recorded()); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if st.Phase != agentapi.PhaseFailed || st.Code != api.CodeMigrationNotConverging || st.AllowedDowntimeMs != 500 ||
		len(st.Steps) != 7 || st.Steps[6] != "gave up at pass 9: the copy does not converge" {
		t.Errorf("outcome: %+v", st)
	}
	if vms, _ := a.ListVMs(context.Background()); len(vms) != 1 || vms[0].State != agentapi.StateRunning {
		t.Errorf("the VM after a migration that gave up: %+v", vms)
	}
}

func TestMigrationCancel(t *testing.T) {
	fa, fb := newFakeConn(), newFakeConn()
	a := newMigrationAgent(t, fa, "power8-a", "127.0.0.1:16501", true)
	b := newMigrationAgent(t, fb, "power8-b", "127.0.0.1:16502", true)
	vm := runningVM(t, a)
	fa.migration().jobs = []libvirtconn.JobStats{{MemIteration: 1, MemTotal: 1 << 30, MemRemaining: 1 << 29}}
	if _, err := a.StartMigration(context.Background(), vm.ID, order(t, a, b, vm, migpolicy.MinimalDowntime)); err != nil {
		t.Fatal(err)
	}
	st, err := a.CancelMigration(context.Background(), vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != agentapi.PhaseCanceled || st.Code != api.CodeMigrationCanceled {
		t.Errorf("canceled: %+v", st)
	}
	if _, err := a.CancelMigration(context.Background(), vm.ID); asAPIError(err).Code != api.CodeMigrationNotInProgress {
		t.Errorf("cancel again: %v", err)
	}
	// The announcement is taken back at the destination.
	in, err := b.Withdraw(context.Background(), vm.ID)
	if err != nil || in.State != agentapi.IncomingGone {
		t.Errorf("withdraw: %+v %v", in, err)
	}
	if _, err := b.Incoming(vm.ID); err == nil {
		t.Error("the withdrawn announcement is still there")
	}
}

// TestUnannouncedArrivalDestroyed: a domain owned by this host that
// arrives without an announcement is destroyed.
func TestUnannouncedArrivalDestroyed(t *testing.T) {
	fb := newFakeConn()
	b := newMigrationAgent(t, fb, "power8-b", "127.0.0.1:16502", true)
	id := "0d5c0a3e-5b4b-4d69-9c0a-1f2e3d4c5b6a"
	uuid := derivedUUID("power8-a", id)
	fb.mu.Lock()
	fb.doms[uuid] = &fakeDomain{d: libvirtconn.Domain{Name: "power8-b-intruder", UUID: uuid}, state: libvirtconn.StatePaused,
		xml: `<domain type="qemu"><name>power8-b-intruder</name><uuid>` + uuid + `</uuid><metadata><owner xmlns="urn:polyvirt:agent:1" vm="` + id +
			`" name="intruder" host="power8-b" arch="ppc64le" uuidFrom="power8-a"><definition>{}</definition></owner></metadata></domain>`}
	fb.mu.Unlock()
	fb.migration().incoming[uuid] = true
	c, _ := b.conn.get()
	if err := b.recover(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if st, _ := fb.DomainState(context.Background(), libvirtconn.Domain{UUID: uuid}); st != libvirtconn.StateShutoff {
		t.Errorf("the unannounced domain is %s, not destroyed", st)
	}
	if vms, _ := b.ListVMs(context.Background()); len(vms) != 0 {
		t.Errorf("listed: %+v", vms)
	}
}

// TestOutgoingPausedNotDestroyed: an agent that starts again while its
// host sends a VM finds the domain paused for the migration (its
// switch-over): that is a VM it sends, not one arriving unannounced — it
// stays, listed, and its migration is followed (a restarted source agent
// once destroyed it, and the VM was lost).
func TestOutgoingPausedNotDestroyed(t *testing.T) {
	fa := newFakeConn()
	a := newMigrationAgent(t, fa, "power8-a", "127.0.0.1:16501", true)
	id := "0d5c0a3e-5b4b-4d69-9c0a-1f2e3d4c5b6b"
	uuid := derivedUUID("power8-a", id)
	fa.mu.Lock()
	fa.doms[uuid] = &fakeDomain{d: libvirtconn.Domain{Name: "power8-a-leaving", UUID: uuid}, state: libvirtconn.StatePaused, reason: pausedMigration,
		xml: `<domain type="qemu"><name>power8-a-leaving</name><uuid>` + uuid + `</uuid><metadata><owner xmlns="urn:polyvirt:agent:1" vm="` + id +
			`" name="leaving" host="power8-a" arch="ppc64le" uuidFrom="power8-a"><definition>{}</definition></owner></metadata></domain>`}
	fa.mu.Unlock()
	m := fa.migration()
	m.mu.Lock()
	m.running = &fakeRun{uuid: uuid}
	m.jobs = []libvirtconn.JobStats{{MemTotal: 1 << 30, MemProcessed: 1 << 29, MemIteration: 1}}
	m.mu.Unlock()
	c, _ := a.conn.get()
	if err := a.recover(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if st, err := fa.DomainState(context.Background(), libvirtconn.Domain{UUID: uuid}); err != nil || st != libvirtconn.StatePaused {
		t.Errorf("the domain being sent is %v (%v); it must stay paused for its migration", st, err)
	}
	if vms, _ := a.ListVMs(context.Background()); len(vms) != 1 || vms[0].ID != id {
		t.Errorf("listed: %+v; want the VM being sent", vms)
	}
}

// TestAnnouncedDisks: a disk whose probe the destination sees is shared;
// another is made here empty to be copied into (raw: of the disk's size);
// one that exists here and is not shared is refused, and nothing is made.
func TestAnnouncedDisks(t *testing.T) {
	fb := newFakeConn()
	b := newMigrationAgent(t, fb, "power8-b", "127.0.0.1:16502", true)
	shared, local := t.TempDir(), t.TempDir()
	b.paths.Disk = []string{shared, local}
	probe := filepath.Join(shared, ".polyvirt-probe-1")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	def := json.RawMessage(`{"name": "d1", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "disks": [{"source": "` + shared + `/a.img"}, {"source": "` + local + `/b.img"}]}`)
	id := "6f0e4b1a-7c2d-4e8f-9a0b-1c2d3e4f5a6b"
	disks := []agentapi.MigrationDisk{
		{Target: "vda", Path: shared + "/a.img", Format: "raw", VirtualSize: 1 << 20, Probe: probe},
		{Target: "vdb", Path: local + "/b.img", Format: "raw", VirtualSize: 3 << 20, Probe: local + "/.polyvirt-probe-elsewhere"},
	}
	in, err := b.Announce(context.Background(), agentapi.IncomingRequest{Migration: "m2", VM: id, Name: "d1", SourceHost: "power8-a", Definition: def, Disks: disks})
	if err != nil {
		t.Fatal(err)
	}
	if !in.Disks[0].Shared || in.Disks[1].Shared {
		t.Errorf("verdicts: %+v", in.Disks)
	}
	fi, err := os.Stat(local + "/b.img")
	if err != nil || fi.Size() != 3<<20 {
		t.Errorf("the image to copy into: %v %v", fi, err)
	}
	if _, err := os.Stat(shared + "/a.img"); !os.IsNotExist(err) {
		t.Errorf("a shared disk was made: %v", err)
	}
	// Withdrawn: the image made for it goes.
	if _, err := b.Withdraw(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(local + "/b.img"); !os.IsNotExist(err) {
		t.Errorf("the image made for a withdrawn VM stays: %v", err)
	}
	// A file of its own at the path: refused.
	if err := os.WriteFile(local+"/b.img", []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = b.Announce(context.Background(), agentapi.IncomingRequest{Migration: "m3", VM: id, Name: "d1", SourceHost: "power8-a", Definition: def, Disks: disks})
	if e := asAPIError(err); e.Code != api.CodeMigrationDiskExists || !strings.Contains(e.Message, "exists there already and is not the same storage") {
		t.Errorf("an existing disk: %v", err)
	}
	if b, _ := os.ReadFile(local + "/b.img"); string(b) != "mine" {
		t.Errorf("the host's own file was touched: %q", b)
	}
}

// TestStaleArrivalForgotten: an announcement this agent kept as arriving
// (it was killed in the middle of the arrival) whose domain is gone — the
// migration failed meanwhile — does not refuse the next announcement of
// the VM.
func TestStaleArrivalForgotten(t *testing.T) {
	fa, fb := newFakeConn(), newFakeConn()
	a := newMigrationAgent(t, fa, "power8-a", "127.0.0.1:16501", true)
	b := newMigrationAgent(t, fb, "power8-b", "127.0.0.1:16502", true)
	vm := runningVM(t, a)
	ctx := context.Background()
	req := agentapi.IncomingRequest{Migration: "m1", VM: vm.ID, Name: vm.Name, SourceHost: a.HostID(), Definition: vm.Definition}
	if _, err := b.Announce(ctx, req); err != nil {
		t.Fatal(err)
	}
	b.mig.mu.Lock()
	b.mig.in[vm.ID].Info.State = agentapi.IncomingArriving
	b.mig.mu.Unlock()
	req.Migration = "m2"
	in, err := b.Announce(ctx, req)
	if err != nil {
		t.Fatalf("announcement after a stale arrival: %v", err)
	}
	if in.Migration != "m2" || in.State != agentapi.IncomingAnnounced {
		t.Errorf("announced: %+v", in)
	}
}

// TestFakeKVMPlanCPU: on a fake-KVM host the domain runs the CPU TCG
// emulates; the plan says the VM's own CPU (host-model: the host's
// level), as a real host of its kind would run it.
func TestFakeKVMPlanCPU(t *testing.T) {
	a := newMigrationAgent(t, newFakeConn(), "power8-a", "127.0.0.1:16501", true)
	vm := create(t, a, `{"name": "hm", "arch": "ppc64le", "cpu": {"mode": "host-model"}, "memory": {"sizeMiB": 512}}`)
	if _, err := a.Act(context.Background(), vm.ID, "start"); err != nil {
		t.Fatal(err)
	}
	plan, err := a.MigrationPlan(context.Background(), vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if plan.CPUMode != "host-model" || plan.CPUModel != "" {
		t.Errorf("plan CPU: mode %q model %q; want host-model without a model", plan.CPUMode, plan.CPUModel)
	}
}
