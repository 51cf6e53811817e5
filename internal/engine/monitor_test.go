package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/client"
	"polyvirt/internal/pki"
	"polyvirt/test/hostsim"
)

// simHost adds a host to the engine and enrolls a simulated agent for it.
func simHost(t *testing.T, te *testEngine, sim *hostsim.Sim, name, profile, cluster string) *hostsim.Host {
	t.Helper()
	h, err := sim.AddHost(name, profile)
	if err != nil {
		t.Fatal(err)
	}
	jt, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: name, Address: h.Addr(), Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Enroll(ctx, te.url, jt.Token); err != nil {
		t.Fatal(err)
	}
	return h
}

func newSim(t *testing.T) *hostsim.Sim {
	sim := hostsim.New()
	t.Cleanup(sim.Close)
	return sim
}

func TestMonitorAdmission(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	for _, c := range []engineapi.ClusterRequest{{Name: "power", Arch: "ppc64le"}, {Name: "p9", CPUType: "IBM POWER9"},
		{Name: "p8", CPUType: "IBM POWER8"}, {Name: "any"}} {
		if _, err := te.admin.CreateCluster(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	simHost(t, te, sim, "power8", "s822l-power8e", "power")
	simHost(t, te, sim, "intel", "x86-2s-intel", "power")
	simHost(t, te, sim, "old", "s822l-power8e", "p9")
	simHost(t, te, sim, "new", "ac922-power9", "p8")
	simHost(t, te, sim, "first", "x86-2s-intel", "any")

	type want struct{ status, code, cpuType, message string }
	tests := []struct {
		host string
		want want
	}{
		{"power8", want{"Up", "", "IBM POWER8", ""}},
		{"intel", want{"NonOperational", "ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER", "Secure Intel Cascadelake Server Family",
			"Host intel has architecture x86_64 and cannot join cluster power which has architecture ppc64"}},
		{"old", want{"NonOperational", "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER", "IBM POWER8", "Missing CPU features: model_POWER9"}},
		{"new", want{"Up", "", "IBM POWER9", ""}},
		{"first", want{"Up", "", "Secure Intel Cascadelake Server Family", ""}},
	}
	for _, tc := range tests {
		h := waitHost(t, te.admin, tc.host, 10*time.Second, func(h engineapi.Host) bool { return h.Status == tc.want.status && !h.LastSeen.IsZero() })
		if h.StatusCode != tc.want.code || h.CPUType != tc.want.cpuType || !strings.Contains(h.StatusMessage, tc.want.message) {
			t.Errorf("host %s: %s %s %q (CPU type %s); want %+v", tc.host, h.Status, h.StatusCode, h.StatusMessage, h.CPUType, tc.want)
		}
		if h.LastSeen.IsZero() || len(h.Stats) == 0 {
			t.Errorf("host %s: no statistics (last seen %v)", tc.host, h.LastSeen)
		}
	}
	for _, c := range []struct{ name, arch, cpu, machine string }{
		{"power", "ppc64", "IBM POWER8", "pseries-7.2"}, {"p9", "ppc64", "IBM POWER9", ""},
		{"p8", "ppc64", "IBM POWER8", "pseries-7.2"}, {"any", "x86_64", "Secure Intel Cascadelake Server Family", "pc-q35-7.2"},
	} {
		cl, err := te.admin.Cluster(ctx, c.name)
		if err != nil || cl.Arch.String() != c.arch || cl.CPUType != c.cpu || cl.EmulatedMachine != c.machine {
			t.Errorf("cluster %s: arch %s, CPU %s, machine %s (%v); want %+v", c.name, cl.Arch, cl.CPUType, cl.EmulatedMachine, err, c)
		}
	}
	// The reference engine's messages are in the audit log.
	page, err := te.admin.Events(ctx, client.EventFilter{Action: "host.status"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, ev := range page.Events {
		msgs = append(msgs, ev.Message)
	}
	all := strings.Join(msgs, "\n")
	for _, m := range []string{"Status of host power8 was set to Up.",
		"Host intel has architecture x86_64 and cannot join cluster power which has architecture ppc64",
		"Host old moved to Non-Operational state as host does not meet the cluster's minimum CPU level. Missing CPU features: model_POWER9"} {
		if !strings.Contains(all, m) {
			t.Errorf("no event %q in:\n%s", m, all)
		}
	}
}

func TestMonitorNonResponsive(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power"}); err != nil {
		t.Fatal(err)
	}
	h := simHost(t, te, sim, "p8", "s822l-power8e", "power")
	up := waitHost(t, te.admin, "p8", 10*time.Second, status("Up"))

	// Killed: connection refused.
	h.Stop()
	nr := waitHost(t, te.admin, "p8", 10*time.Second, status("NonResponsive"))
	if nr.StatusCode != api.CodeAgentUnreachable || !strings.Contains(nr.StatusMessage, "connection refused") {
		t.Errorf("non-responsive host: %s %q", nr.StatusCode, nr.StatusMessage)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	// Up again, and seen again.
	waitHost(t, te.admin, "p8", 10*time.Second, func(h engineapi.Host) bool { return h.Status == "Up" && h.LastSeen.After(up.LastSeen) })

	// Hung mid-request: the poll times out.
	h.Hang(true)
	nr = waitHost(t, te.admin, "p8", 10*time.Second, status("NonResponsive"))
	if !strings.Contains(nr.StatusMessage, "poll timeout") && !strings.Contains(nr.StatusMessage, "timeout") {
		t.Errorf("hung host: %q", nr.StatusMessage)
	}
	h.Hang(false)
	waitHost(t, te.admin, "p8", 10*time.Second, status("Up"))

	page, err := te.admin.Events(ctx, client.EventFilter{Host: "p8", Action: "host.status"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range page.Events {
		got = append(got, ev.Message)
	}
	want := []string{"Status of host p8 was set to Up.", "Host p8 moved to Non-Responsive state.",
		"Status of host p8 was set to Up.", "Host p8 moved to Non-Responsive state.", "Status of host p8 was set to Up."}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("status events, newest first:\n got %q\nwant %q", got, want)
	}
}

func TestMonitorReinstallOtherArch(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power", Arch: "ppc64"}); err != nil {
		t.Fatal(err)
	}
	h := simHost(t, te, sim, "p8", "s822l-power8e", "power")
	waitHost(t, te.admin, "p8", 10*time.Second, status("Up"))
	if err := h.SetProfile("x86-2s-intel"); err != nil {
		t.Fatal(err)
	}
	no := waitHost(t, te.admin, "p8", 10*time.Second, status("NonOperational"))
	if no.StatusCode != "ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER" || no.Arch != "x86_64" {
		t.Errorf("reinstalled as x86_64: %s %s %q", no.Arch, no.StatusCode, no.StatusMessage)
	}
	if err := h.SetProfile("ac922-power9"); err != nil {
		t.Fatal(err)
	}
	up := waitHost(t, te.admin, "p8", 10*time.Second, status("Up"))
	if up.CPUType != "IBM POWER9" || up.Arch != "ppc64le" {
		t.Errorf("reinstalled as POWER9: %s %s", up.Arch, up.CPUType)
	}
}

func TestHostActions(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	for _, c := range []engineapi.ClusterRequest{{Name: "power", Arch: "ppc64"}, {Name: "power2", Arch: "ppc64"}, {Name: "x86", Arch: "x86_64"}} {
		if _, err := te.admin.CreateCluster(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	h := simHost(t, te, sim, "p8", "s822l-power8e", "power")
	waitHost(t, te.admin, "p8", 10*time.Second, status("Up"))

	// Up: no removal, no move, no new token.
	if err := te.admin.RemoveHost(ctx, "p8"); errOf(err) != (apiErr{409, api.CodeHostStatusIllegal, ""}) {
		t.Errorf("remove an Up host: %v", err)
	}
	if _, err := te.admin.UpdateHost(ctx, "p8", engineapi.HostUpdate{Cluster: ptr("power2")}); errOf(err).Code != api.CodeHostStatusIllegal {
		t.Errorf("move an Up host: %v", err)
	}
	if _, err := te.admin.JoinToken(ctx, "p8", ""); errOf(err).Code != api.CodeHostStatusIllegal {
		t.Errorf("join token of an Up host: %v", err)
	}
	// Maintenance holds whatever the agent does.
	m, err := te.admin.Maintenance(ctx, "p8", "firmware update")
	if err != nil || m.Status != "Maintenance" || !strings.Contains(m.StatusMessage, "firmware update") {
		t.Fatalf("maintenance: %+v %v", m, err)
	}
	if m, err := te.admin.Maintenance(ctx, "p8", ""); err != nil || m.Status != "Maintenance" {
		t.Errorf("maintenance again: %+v %v", m, err)
	}
	h.Stop()
	time.Sleep(4 * testMonitor.StatsInterval * time.Duration(testMonitor.Failures))
	if got, _ := te.admin.Host(ctx, "p8", false); got.Status != "Maintenance" {
		t.Errorf("a stopped host in maintenance became %s", got.Status)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	// A host cannot move to a cluster of another architecture.
	if _, err := te.admin.UpdateHost(ctx, "p8", engineapi.HostUpdate{Cluster: ptr("x86")}); errOf(err) != (apiErr{409, api.CodeHostClusterArch, "cluster"}) {
		t.Errorf("move to an x86_64 cluster: %v", err)
	}
	moved, err := te.admin.UpdateHost(ctx, "p8", engineapi.HostUpdate{Cluster: ptr("power2")})
	if err != nil || moved.Cluster != "power2" {
		t.Fatalf("move to power2: %+v %v", moved, err)
	}
	a, err := te.admin.Activate(ctx, "p8", "")
	if err != nil || (a.Status != "Connecting" && a.Status != "Up") {
		t.Fatalf("activate: %+v %v", a, err)
	}
	waitHost(t, te.admin, "p8", 10*time.Second, status("Up"))
	if cl, _ := te.admin.Cluster(ctx, "power2"); cl.CPUType != "IBM POWER8" {
		t.Errorf("power2 after its first host: %+v", cl)
	}
	// Raising the cluster's CPU type over its Up host is refused; the
	// same level is fine.
	if _, err := te.admin.UpdateCluster(ctx, "power2", engineapi.ClusterUpdate{CPUType: ptr("IBM POWER9")}); errOf(err) != (apiErr{409, api.CodeClusterCPUIllegal, "cpuType"}) {
		t.Errorf("raise the CPU type over an Up POWER8: %v", err)
	}
	// Remove: maintenance first.
	if _, err := te.admin.Maintenance(ctx, "p8", ""); err != nil {
		t.Fatal(err)
	}
	if err := te.admin.RemoveHost(ctx, "p8"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := te.admin.Host(ctx, "p8", false); errOf(err).Status != 404 {
		t.Errorf("removed host: %v", err)
	}
	page, err := te.admin.Events(ctx, client.EventFilter{Kind: "host", User: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, ev := range page.Events {
		msgs = append(msgs, ev.Message)
	}
	for _, m := range []string{"Host p8 was removed by admin.", "Host p8 was switched to Maintenance mode by admin (Reason: firmware update).",
		"Activation of host p8 initiated by admin.", "Host p8 configuration was updated by admin.", "Host p8 was added by admin."} {
		if !strings.Contains(strings.Join(msgs, "\n"), m) {
			t.Errorf("no event %q in %q", m, msgs)
		}
	}
}

func TestMonitorRefusesAnotherAgent(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "power"}); err != nil {
		t.Fatal(err)
	}
	a := simHost(t, te, sim, "a", "s822l-power8e", "power")
	b, err := sim.AddHost("b", "s822l-power8e")
	if err != nil {
		t.Fatal(err)
	}
	jt, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: "b", Address: b.Addr(), Cluster: "power"})
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.Enroll(ctx, te.url, jt.Token)
	if err != nil {
		t.Fatal(err)
	}
	waitHost(t, te.admin, "a", 10*time.Second, status("Up"))
	// Host a's address now answers with b's certificate (signed by the
	// engine CA, but not the one enrolled for a).
	cfg, err := pki.ServerTLS([]byte(eb.Cert), eb.KeyPEM, []byte(eb.CACert))
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	a.UseTLS(cfg)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	nr := waitHost(t, te.admin, "a", 10*time.Second, status("NonResponsive"))
	if !strings.Contains(nr.StatusMessage, "not the one enrolled for this host") {
		t.Errorf("impostor: %q", nr.StatusMessage)
	}
}

// TestHostDocumentTellsTCG: a host whose KVM cannot run guests says so in
// its document (list and show), with the reason, its real CPU vendor and
// the AMD type it was admitted with; a profile host says which profile it
// presents and its firmware levels.
func TestHostDocumentTellsTCG(t *testing.T) {
	te := startEngine(t, testMonitor)
	for _, c := range []string{"x86", "power"} {
		if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: c}); err != nil {
			t.Fatal(err)
		}
	}
	newFakeAgentWith(t, te, "x86_64-a", "x86", "x86-2s-intel", func(r *hostreport.Report) {
		r.Profile, r.FakeKVM = "", true
		r.CPU.Model, r.CPU.Vendor = "AMD EPYC", "AuthenticAMD"
		r.CPU.Flags = []string{"fpu", "sse2", "nx", "lm", "model_qemu64", "model_Opteron_G2"}
		r.Virt.KVM, r.Virt.KVMReason, r.Virt.Virtualization, r.Virt.DomainType = false, "/dev/kvm is absent", "tcg", "qemu"
	})
	newFakeAgent(t, te, "power8-a", "power", "s822l-power8e")
	h := waitHost(t, te.admin, "x86_64-a", 10*time.Second, status("Up"))
	want := engineapi.Host{CPUVendor: "AuthenticAMD", Virtualization: "tcg", VirtualizationReason: "/dev/kvm is absent", FakeKVM: true, CPUType: "AMD Opteron G4"}
	got := engineapi.Host{CPUVendor: h.CPUVendor, Virtualization: h.Virtualization, VirtualizationReason: h.VirtualizationReason, FakeKVM: h.FakeKVM, CPUType: h.CPUType}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("host show x86_64-a (-want +got):\n%s", diff)
	}
	p := waitHost(t, te.admin, "power8-a", 10*time.Second, status("Up"))
	if p.Profile != "s822l-power8e" || p.Virtualization != "tcg" || !strings.Contains(p.VirtualizationReason, "fake KVM (profile s822l-power8e)") {
		t.Errorf("power8-a: profile %q virtualization %q (%q)", p.Profile, p.Virtualization, p.VirtualizationReason)
	}
	if len(p.Firmware) == 0 || p.Firmware[0].Component != "opal" {
		t.Errorf("power8-a firmware %+v", p.Firmware)
	}
	// The brief list carries them too (it holds no report).
	hosts, err := te.admin.Hosts(ctx, client.HostFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range hosts {
		if l.Virtualization != "tcg" || (l.Name == "x86_64-a" && l.VirtualizationReason != "/dev/kvm is absent") || (l.Name == "power8-a" && l.Profile == "") {
			t.Errorf("host list: %s virtualization %q (%q) profile %q", l.Name, l.Virtualization, l.VirtualizationReason, l.Profile)
		}
	}
	cl, err := te.admin.Cluster(ctx, "x86")
	if err != nil || cl.CPUType != "AMD Opteron G4" {
		t.Errorf("cluster x86: %q (%v)", cl.CPUType, err)
	}
}

// TestMonitorAdmitsManyAtOnce enrolls hosts all at once into a cluster
// without a CPU type: their first admissions are written together (the
// monitor's admitter), and the outcome is the one of admissions one after
// the other: the cluster takes the first host's CPU type once, every host
// is Up, each with its one status event.
func TestMonitorAdmitsManyAtOnce(t *testing.T) {
	te := startEngine(t, testMonitor)
	sim := newSim(t)
	if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "batch", Arch: "ppc64le"}); err != nil {
		t.Fatal(err)
	}
	const n = 24
	hosts := make([]*hostsim.Host, n)
	tokens := make([]string, n)
	for i := range hosts {
		name := fmt.Sprintf("b%02d", i)
		h, err := sim.AddHost(name, "s822l-power8e")
		if err != nil {
			t.Fatal(err)
		}
		jt, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: name, Address: h.Addr(), Cluster: "batch"})
		if err != nil {
			t.Fatal(err)
		}
		hosts[i], tokens[i] = h, jt.Token
	}
	errs := make(chan error, n)
	for i, h := range hosts {
		go func() {
			_, err := h.Enroll(ctx, te.url, tokens[i])
			errs <- err
		}()
	}
	for range hosts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hosts {
		got := waitHost(t, te.admin, h.Name(), 30*time.Second, status("Up"))
		if got.CPUType != "IBM POWER8" || got.StatusCode != "" {
			t.Errorf("host %s: CPU type %q, status code %q; want IBM POWER8 and none", h.Name(), got.CPUType, got.StatusCode)
		}
	}
	cl, err := te.admin.Cluster(ctx, "batch")
	if err != nil || cl.CPUType != "IBM POWER8" || cl.EmulatedMachine != "pseries-7.2" {
		t.Errorf("cluster batch: CPU %q, machine %q (%v); want IBM POWER8, pseries-7.2", cl.CPUType, cl.EmulatedMachine, err)
	}
	page, err := te.admin.Events(ctx, client.EventFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	// Each host's status events, oldest first: set to Up once, or again
	// only after another status (a round that timed out on a loaded
	// machine), never twice in a row.
	last := map[string]string{}
	clusterUpdates := 0
	var seen []string
	for i := len(page.Events) - 1; i >= 0; i-- {
		ev := page.Events[i]
		seen = append(seen, ev.Action+" "+ev.ObjectName+": "+ev.Message+" "+ev.Reason)
		switch {
		case ev.Action == "cluster.update" && ev.ObjectName == "batch":
			clusterUpdates++
		case ev.Action == "host.status":
			up := strings.HasSuffix(ev.Message, "was set to Up.")
			if up && last[ev.ObjectName] == "Up" {
				t.Errorf("host %s set to Up twice in a row", ev.ObjectName)
			}
			last[ev.ObjectName] = map[bool]string{true: "Up", false: "other"}[up]
		}
	}
	if clusterUpdates != 1 {
		t.Errorf("%d cluster.update events for cluster batch; want 1 (its first host sets its CPU type)", clusterUpdates)
	}
	for _, h := range hosts {
		if last[h.Name()] != "Up" {
			t.Errorf("host %s: its last status event is not its setting to Up (%q)", h.Name(), last[h.Name()])
		}
	}
	if t.Failed() {
		t.Logf("events, oldest first:\n%s", strings.Join(seen, "\n"))
	}
}
