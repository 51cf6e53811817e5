package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/localsock"
)

// powerLab is an engine with a POWER8 cluster of two fake POWER8 hosts, a
// POWER9 cluster without hosts, an x86_64 cluster with one host and a
// cluster without architecture.
type powerLab struct {
	te       *testEngine
	p8a, p8b *fakeAgent
	x86      *fakeAgent
}

func newPowerLab(t *testing.T) *powerLab {
	t.Helper()
	te := startVMEngine(t, testMonitor, testVMs)
	ctx := context.Background()
	for _, c := range []engineapi.ClusterRequest{{Name: "power", CPUType: "IBM POWER8"}, {Name: "p9", CPUType: "IBM POWER9"},
		{Name: "x86", Arch: "x86_64"}, {Name: "empty"}} {
		if _, err := te.admin.CreateCluster(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	l := &powerLab{te: te}
	l.p8a = newFakeAgent(t, te, "p8a", "power", "s822l-power8e")
	l.p8b = newFakeAgent(t, te, "p8b", "power", "s822l-power8e")
	l.x86 = newFakeAgent(t, te, "x1", "x86", "x86-2s-intel")
	for _, h := range []string{"p8a", "p8b", "x1"} {
		waitHost(t, te.admin, h, 10*time.Second, status("Up"))
	}
	return l
}

const ppcDef = "name: %s\narch: ppc64le\nmemory: {sizeMiB: 1024}\nkernel: {path: /usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/vmlinux}\n"

func (l *powerLab) create(t *testing.T, name, cluster, yaml string, ha bool, pin string) engineapi.VM {
	t.Helper()
	v, err := l.te.admin.CreateVM(context.Background(), engineapi.VMRequest{Definition: defJSON(t, yaml), Cluster: cluster, HA: ha, Host: pin})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return v
}

// TestVMDefinitionAgainstCluster: what create accepts and fills in, and
// what it refuses, with every violation at once.
func TestVMDefinitionAgainstCluster(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	power, err := l.te.admin.Cluster(ctx, "power")
	if err != nil {
		t.Fatal(err)
	}

	// Defaults from the cluster: architecture of its hosts, CPU model of
	// its CPU type, its machine.
	v := l.create(t, "plain", "power", "name: plain\n", false, "")
	got := [5]string{v.Arch.String(), v.CPUModel, v.Machine, v.State, v.Cluster}
	if diff := cmp.Diff([5]string{"ppc64le", "POWER8", power.EmulatedMachine, "Down", "power"}, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	var def map[string]any
	if err := json.Unmarshal(v.Definition, &def); err != nil || def["uuid"] != v.ID || def["firmware"] != "slof" {
		t.Errorf("stored definition: %v %v", def, err)
	}
	x := l.create(t, "xplain", "x86", "name: xplain\n", false, "")
	if x.Arch != "x86_64" || x.CPUModel != "Cascadelake-Server-noTSX" || !strings.HasPrefix(x.Machine, "pc-") {
		t.Errorf("x86 defaults: %s %s %s", x.Arch, x.CPUModel, x.Machine)
	}
	if v := l.create(t, "be", "power", "name: be\narch: ppc64\n", false, ""); v.Arch != "ppc64" {
		t.Errorf("a big-endian POWER VM in the POWER cluster: %s", v.Arch)
	}
	if v := l.create(t, "p8compat", "power", "name: p8compat\ncpu: {mode: host-model, model: POWER8}\n", false, ""); v.CPUModel != "POWER8" {
		t.Errorf("host-model POWER8: %s", v.CPUModel)
	}
	if v := l.create(t, "uuid", "power", "name: uuid\nuuid: 6F1C1A9E3D2B4C559A0E2B7D1C9E4F10\n", false, ""); v.ID != "6f1c1a9e-3d2b-4c55-9a0e-2b7d1c9e4f10" {
		t.Errorf("id from the uuid: %s", v.ID)
	}

	type refusal struct {
		Status int
		Code   string
		Codes  []string
	}
	tests := []struct {
		name, cluster, yaml, pin string
		want                     refusal
		msg                      string
	}{
		{"SPICE on POWER", "power", "name: a\ndisplay: {type: spice}\n", "",
			refusal{422, "ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS", []string{"ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS"}}, "SPICE"},
		{"display open to the network", "power", "name: a\ndisplay: {type: vnc, listen: 0.0.0.0}\n", "",
			refusal{422, api.CodeDisplayNotLoopback, []string{api.CodeDisplayNotLoopback}}, "the display would listen on 0.0.0.0"},
		{"x86_64 VM in a POWER cluster", "power", "name: a\narch: x86_64\n", "",
			refusal{422, api.CodeVMClusterArch, []string{api.CodeVMClusterArch}}, "a x86_64 VM cannot be in cluster power, whose architecture is ppc64"},
		{"ppc64le VM in the x86_64 cluster", "x86", "name: a\narch: ppc64le\n", "",
			refusal{422, api.CodeVMClusterArch, []string{api.CodeVMClusterArch}}, "give arch i686 or x86_64"},
		{"cluster without architecture", "empty", "name: a\narch: ppc64le\n", "",
			refusal{409, api.CodeClusterNoArch, nil}, "has no architecture yet"},
		{"no host to take the architecture from", "p9", "name: a\n", "",
			refusal{422, "VM_ARCH_REQUIRED", []string{"VM_ARCH_REQUIRED"}}, "cluster p9 has no host"},
		{"POWER9 model in a POWER8 cluster", "power", "name: a\ncpu: {model: POWER9}\n", "",
			refusal{422, api.CodeVMCPUAboveCluster, []string{api.CodeVMCPUAboveCluster}}, "CPU model POWER9 (IBM POWER, level 2) is above the cluster's CPU type IBM POWER8"},
		{"POWER9 compat level in a POWER8 cluster", "power", "name: a\ncpu: {mode: host-model, model: power9}\n", "",
			refusal{422, api.CodeVMCPUAboveCluster, []string{api.CodeVMCPUAboveCluster}}, "POWER9"},
		{"an AMD model in an Intel cluster", "x86", "name: a\ncpu: {model: EPYC}\n", "",
			refusal{422, api.CodeVMCPUAboveCluster, []string{api.CodeVMCPUAboveCluster}}, "EPYC (AMD, level 3)"},
		{"a machine no host offers", "power", "name: a\nmachine: pseries-1.0\n", "",
			refusal{422, api.CodeVMMachineNotInCluster, []string{api.CodeVMMachineNotInCluster}}, "no host of cluster power offers machine"},
		{"everything at once", "power", "name: a\ncpu: {model: POWER10}\nmemory: {sizeMiB: 1000}\ndisplay: {type: spice}\nsound: {model: ich9}\n", "",
			refusal{422, api.CodeVMDefinitionInvalid, []string{api.CodeVMCPUAboveCluster, "MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC",
				"ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS", "SOUND_DEVICE_REQUESTED_ON_NOT_SUPPORTED_ARCH"}}, ""},
		{"pinned to a host of another cluster", "power", "name: a\n", "x1",
			refusal{409, api.CodePinnedHostCluster, nil}, "not in the VM's cluster power"},
		{"unknown field", "power", "name: a\nflavour: big\n", "", refusal{400, "DEFINITION_UNKNOWN_FIELD", []string{"DEFINITION_UNKNOWN_FIELD"}}, "flavour"},
		{"same name", "power", "name: plain\n", "", refusal{409, api.CodeAlreadyExists, nil}, ""},
		{"same uuid", "power", "name: other\nuuid: 6f1c1a9e-3d2b-4c55-9a0e-2b7d1c9e4f10\n", "", refusal{409, api.CodeVMUUIDInUse, nil}, ""},
		{"bad name", "power", "name: -x\n", "", refusal{422, "VM_NAME_INVALID", []string{"VM_NAME_INVALID"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.te.admin.CreateVM(ctx, engineapi.VMRequest{Definition: yamlToJSON(t, tc.yaml), Cluster: tc.cluster, Host: tc.pin})
			ce := clientErr(err)
			var codes []string
			for _, d := range ce.Details {
				codes = append(codes, d.Code)
			}
			if diff := cmp.Diff(tc.want, refusal{ce.Status, ce.Code, codes}); diff != "" {
				t.Errorf("(-want +got):\n%s\n%v", diff, err)
			}
			all := ce.Message
			for _, d := range ce.Details {
				all += " " + d.Message
			}
			if !strings.Contains(all, tc.msg) {
				t.Errorf("message %q lacks %q", all, tc.msg)
			}
		})
	}
}

// yamlToJSON converts a definition without validating it.
func yamlToJSON(t *testing.T, y string) json.RawMessage {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVMMove: only while Down, never to a cluster of another architecture.
func TestVMMove(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	l.create(t, "m", "power", "name: m\n", false, "")
	s := func(v string) *string { return &v }
	_, err := l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Cluster: s("x86")})
	if ce := clientErr(err); ce.Code != api.CodeVMClusterArch || ce.Status != 409 ||
		!strings.Contains(ce.Message, "the VM has architecture ppc64le and the cluster has architecture x86_64") {
		t.Errorf("move to x86: %v", err)
	}
	if _, err := l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Cluster: s("empty")}); clientErr(err).Code != api.CodeClusterNoArch {
		t.Errorf("move to a cluster without architecture: %v", err)
	}
	v, err := l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Cluster: s("p9")})
	if err != nil || v.Cluster != "p9" || v.CPUModel != "POWER9" {
		t.Errorf("move to p9 (the CPU model of its type): %+v %v", v, err)
	}
	if _, err := l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Cluster: s("power")}); err != nil {
		t.Errorf("back to power: %v", err)
	}
	ha := true
	v, err = l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Host: s("p8b"), HA: &ha})
	if err != nil || v.PinnedHost != "p8b" || !v.HA {
		t.Errorf("pin and HA: %+v %v", v, err)
	}
	if _, err := l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Host: s("x1")}); clientErr(err).Code != api.CodePinnedHostCluster {
		t.Errorf("pin to another cluster's host: %v", err)
	}
	if _, err := l.te.admin.VMAction(ctx, "m", "start", ""); err != nil {
		t.Fatal(err)
	}
	waitVM(t, l.te.admin, "m", 5*time.Second, vmState("Up"))
	if _, err := l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Cluster: s("p9")}); clientErr(err).Code != api.CodeVMStatusIllegal {
		t.Errorf("move while Up: %v", err)
	}
	if _, err := l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Definition: defJSON(t, "name: m\nmemory: {sizeMiB: 2048}\n")}); clientErr(err).Code != api.CodeVMStatusIllegal {
		t.Errorf("new definition while Up: %v", err)
	}
	if v, err := l.te.admin.UpdateVM(ctx, "m", engineapi.VMUpdate{Host: s("")}); err != nil || v.PinnedHost != "" {
		t.Errorf("unpin while Up: %+v %v", v, err)
	}
}

// TestVMLifecycle: start (balanced, pinned, refused with the reasons),
// the actions, state from the agent's events, screenshot, console,
// delete.
func TestVMLifecycle(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	adm := l.te.admin
	for _, n := range []string{"a", "b"} {
		l.create(t, n, "power", strings.ReplaceAll(ppcDef, "%s", n), false, "")
	}
	ra, err := adm.VMAction(ctx, "a", "start", "")
	if err != nil || !ra.Changed || ra.State != "Up" || ra.Host == "" {
		t.Fatalf("start a: %+v %v", ra, err)
	}
	rb, err := adm.VMAction(ctx, "b", "start", "")
	if err != nil || rb.Host == ra.Host {
		t.Errorf("b balanced away from a's host %s: %+v %v", ra.Host, rb, err)
	}
	if r, err := adm.VMAction(ctx, "a", "start", ""); err != nil || r.Changed || !strings.Contains(r.Message, "already Up") {
		t.Errorf("start a running VM: %+v %v", r, err)
	}
	hostA := l.p8a
	if ra.Host == "p8b" {
		hostA = l.p8b
	}
	av, ok := hostA.get(ra.VM)
	if !ok || av.State != api2Running {
		t.Fatalf("the agent of %s has %+v", ra.Host, av)
	}
	d := hostA.lastDefinition()
	meta, _ := d["metadata"].(map[string]any)
	if d["uuid"] != ra.VM || meta[service.MarkerKey] == nil || d["machine"] == "" {
		t.Errorf("definition sent to the agent: %v", d)
	}

	// Pinned to the busier host.
	l.create(t, "pinned", "power", strings.ReplaceAll(ppcDef, "%s", "pinned"), false, ra.Host)
	if r, err := adm.VMAction(ctx, "pinned", "start", ""); err != nil || r.Host != ra.Host {
		t.Errorf("pinned start: %+v %v", r, err)
	}

	// No host fits: one reason per host.
	l.create(t, "huge", "power", "name: huge\nmemory: {sizeMiB: 1048576}\n", false, "")
	_, err = adm.VMAction(ctx, "huge", "start", "")
	ce := clientErr(err)
	if ce.Status != 409 || ce.Code != api.CodeSchedulingFilteredOut || len(ce.Details) != 2 {
		t.Fatalf("huge: %+v", ce)
	}
	for _, e := range ce.Details {
		if e.Code != api.CodeNotEnoughMemory || !strings.HasPrefix(e.Field, "host:p8") ||
			!strings.Contains(e.Message, "did not satisfy internal filter Memory because its available memory is too low") {
			t.Errorf("reason %+v", e)
		}
	}
	if v, _ := adm.VM(ctx, "huge"); v.State != "Down" || v.Host != "" {
		t.Errorf("huge after the refusal: %s on %q", v.State, v.Host)
	}
	// Both hosts in maintenance? No: a host that is not Up says so.
	l.p8b.stop()
	waitHost(t, adm, "p8b", 10*time.Second, status("NonResponsive"))
	_, err = adm.VMAction(ctx, "huge", "start", "")
	reasons := ""
	for _, e := range clientErr(err).Details {
		reasons += e.Code + " "
	}
	if !strings.Contains(reasons, api.CodeHostNotUp) {
		t.Errorf("reasons with p8b down: %s", reasons)
	}
	l.p8b.restart()
	waitHost(t, adm, "p8b", 10*time.Second, status("Up"))

	// Actions.
	if r, err := adm.VMAction(ctx, "a", "pause", ""); err != nil || r.State != "Paused" {
		t.Errorf("pause: %+v %v", r, err)
	}
	if r, err := adm.VMAction(ctx, "a", "resume", ""); err != nil || r.State != "Up" {
		t.Errorf("resume: %+v %v", r, err)
	}
	if r, err := adm.VMAction(ctx, "a", "reboot", ""); err != nil || r.State != "Up" {
		t.Errorf("reboot: %+v %v", r, err)
	}
	if r, err := adm.VMAction(ctx, "a", "shutdown", ""); err != nil || r.State != "PoweringDown" {
		t.Errorf("shutdown: %+v %v", r, err)
	}
	v := waitVM(t, adm, "a", 5*time.Second, vmState("Down"))
	if v.Host != "" || v.LastHost != ra.Host {
		t.Errorf("after the guest powered off: host %q last %q", v.Host, v.LastHost)
	}
	if r, err := adm.VMAction(ctx, "a", "shutdown", ""); err != nil || r.Changed {
		t.Errorf("shutdown a Down VM: %+v %v", r, err)
	}
	if _, err := adm.VMAction(ctx, "a", "pause", ""); clientErr(err).Code != api.CodeVMStatusIllegal {
		t.Errorf("pause a Down VM: %v", err)
	}
	// Started again on its host unchanged: not defined again; changed: it is.
	a2 := l.create(t, "again", "power", strings.ReplaceAll(ppcDef, "%s", "again"), false, "p8b")
	for i, mem := range []int{0, 0, 2048} {
		if mem != 0 {
			if _, err := adm.UpdateVM(ctx, "again", engineapi.VMUpdate{Definition: defJSON(t, "name: again\nmemory: {sizeMiB: 2048}\n")}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := adm.VMAction(ctx, "again", "start", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := adm.VMAction(ctx, "again", "destroy", ""); err != nil {
			t.Fatal(err)
		}
		if n, want := l.p8b.definitions(a2.ID), []int{1, 1, 2}[i]; n != want {
			t.Errorf("start %d: the agent got %d definitions of the VM, want %d", i+1, n, want)
		}
	}
	if r, err := adm.VMAction(ctx, "b", "destroy", ""); err != nil || r.State != "Down" || !r.Changed {
		t.Errorf("destroy: %+v %v", r, err)
	}

	// Screenshot and console through the engine.
	if _, err := adm.Screenshot(ctx, "a"); clientErr(err).Code != api.CodeVMStatusIllegal {
		t.Errorf("screenshot of a Down VM: %v", err)
	}
	png, err := adm.Screenshot(ctx, "pinned")
	if err != nil || !strings.HasPrefix(string(png), "\x89PNG") || !strings.Contains(string(png), ra.Host) {
		t.Errorf("screenshot: %q %v", png, err)
	}
	ws, err := adm.Console(ctx, "pinned", false)
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil || !strings.Contains(string(msg), "Linux version") {
		t.Errorf("console: %q %v", msg, err)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, []byte("root\n")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err = ws.Read(ctx); err != nil || string(msg) != "echo: root\n" {
		t.Errorf("console input: %q %v", msg, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	// The same over the engine's local socket (a websocket over HTTP on a
	// unix socket, as the CLI on the engine's machine opens it).
	sock := serveLocalSocket(t, l.te, filepath.Join(t.TempDir(), "engine.sock"), localsock.Policy{UIDs: []uint32{uint32(os.Geteuid())}, GID: -1})
	lc, err := client.New(client.Options{Engine: sock, Token: l.te.token, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ws, err = lc.Console(ctx, "pinned", false)
	if err != nil {
		t.Fatalf("the console over the local socket: %v", err)
	}
	if _, msg, err = ws.Read(ctx); err != nil || !strings.Contains(string(msg), "Linux version") {
		t.Errorf("console over the local socket: %q %v", msg, err)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, []byte("root\n")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err = ws.Read(ctx); err != nil || string(msg) != "echo: root\n" {
		t.Errorf("console input over the local socket: %q %v", msg, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	// A readonly user watches but does not type.
	ro, err := adm.CreateUser(ctx, "watcher", "readonly")
	if err != nil {
		t.Fatal(err)
	}
	rc := l.te.client(t, ro.Token)
	ws, err = rc.Console(ctx, "pinned", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, msg, err = ws.Read(ctx); err != nil || !strings.Contains(string(msg), "Linux version") {
		t.Errorf("readonly console: %q %v", msg, err)
	}
	_ = ws.Write(ctx, websocket.MessageBinary, []byte("rm -rf /\n"))
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, msg, err = ws.Read(rctx); err == nil {
		t.Errorf("a readonly user's input reached the console: %q", msg)
	}
	cancel()
	ws.CloseNow()
	if _, err := rc.VMAction(ctx, "pinned", "destroy", ""); clientErr(err).Code != api.CodePermissionDenied {
		t.Errorf("readonly destroy: %v", err)
	}
	// A vm-manager types, and manages VMs, not clusters.
	vmm, err := adm.CreateUser(ctx, "operator", "vm-manager")
	if err != nil {
		t.Fatal(err)
	}
	mc := l.te.client(t, vmm.Token)
	ws, err = mc.Console(ctx, "pinned", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, []byte("uptime\n")); err != nil {
		t.Fatal(err)
	}
	// (The fake agent replays the boot first.)
	for i := 0; i < 3; i++ {
		if _, msg, err = ws.Read(ctx); err != nil || string(msg) == "echo: uptime\n" {
			break
		}
	}
	if err != nil || string(msg) != "echo: uptime\n" {
		t.Errorf("vm-manager console input: %q %v", msg, err)
	}
	ws.CloseNow()
	if _, err := mc.CreateCluster(ctx, engineapi.ClusterRequest{Name: "mine"}); clientErr(err).Code != api.CodePermissionDenied {
		t.Errorf("a vm-manager creates a cluster: %v", err)
	}

	// Delete: Down only, or forced.
	if err := adm.DeleteVM(ctx, "pinned", false); clientErr(err).Code != api.CodeVMStatusIllegal {
		t.Errorf("delete a running VM: %v", err)
	}
	pv, _ := adm.VM(ctx, "pinned")
	if err := adm.DeleteVM(ctx, "pinned", true); err != nil {
		t.Errorf("forced delete: %v", err)
	}
	if _, ok := hostA.get(pv.ID); ok {
		t.Errorf("the forced delete left the VM on its host")
	}
	if err := adm.DeleteVM(ctx, "a", false); err != nil {
		t.Errorf("delete: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := hostA.get(ra.VM); ok && time.Now().Before(deadline); _, ok = hostA.get(ra.VM) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := hostA.get(ra.VM); ok {
		t.Errorf("the deleted VM's definition is still on its last host")
	}
	vms, err := adm.VMs(ctx, client.VMFilter{Cluster: "power", States: []string{"Down"}})
	if err != nil || len(vms) != 3 {
		t.Errorf("Down VMs of power (b, huge, again): %d %v", len(vms), err)
	}
	page, err := adm.Events(ctx, client.EventFilter{Kind: "vm", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, ev := range page.Events {
		msgs = append(msgs, ev.Message)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"VM a was created by admin.", "VM a was started by admin (Host: " + ra.Host + ").",
		"VM shutdown initiated by admin on VM a", "VM a is down on host " + ra.Host, "VM b powered off by admin", "VM a was removed by admin."} {
		if !strings.Contains(all, want) {
			t.Errorf("events lack %q:\n%s", want, all)
		}
	}
}

const api2Running = agentapi.StateRunning

// TestVMStateFromAgents: what the agents say of VMs, on events and on
// reconnection, and what the engine does about it.
func TestVMStateFromAgents(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	api1 := l.te.admin
	v := l.create(t, "crashy", "power", strings.ReplaceAll(ppcDef, "%s", "crashy"), false, "p8a")
	if _, err := api1.VMAction(ctx, "crashy", "start", ""); err != nil {
		t.Fatal(err)
	}
	waitVM(t, api1, "crashy", 5*time.Second, vmState("Up"))
	// Paused from the host (not through the engine), then running again.
	l.p8a.setState(v.ID, agentapi.StatePaused, "user", "suspended", "paused")
	waitVM(t, api1, "crashy", 5*time.Second, vmState("Paused"))
	l.p8a.setState(v.ID, agentapi.StateRunning, "unpaused", "resumed", "unpaused")
	waitVM(t, api1, "crashy", 5*time.Second, vmState("Up"))
	// A crash of a VM that is not HA: Down, with the error.
	l.p8a.setState(v.ID, agentapi.StateDefined, "crashed", "stopped", "crashed")
	waitVM(t, api1, "crashy", 5*time.Second, vmState("Down"))
	page, _ := api1.Events(ctx, client.EventFilter{Object: v.ID, Code: "VM_DOWN_ERROR"})
	if len(page.Events) != 1 || !strings.Contains(page.Events[0].Message, "VM crashy is down with error on host p8a") {
		t.Errorf("crash event: %+v", page.Events)
	}

	// An HA VM that crashes starts again.
	h := l.create(t, "phoenix", "power", strings.ReplaceAll(ppcDef, "%s", "phoenix"), true, "")
	r, err := api1.VMAction(ctx, "phoenix", "start", "")
	if err != nil {
		t.Fatal(err)
	}
	agentOf := map[string]*fakeAgent{"p8a": l.p8a, "p8b": l.p8b}
	agentOf[r.Host].setState(h.ID, agentapi.StateDefined, "crashed", "stopped", "crashed")
	waitVM(t, api1, "phoenix", 5*time.Second, func(v engineapi.VM) bool {
		p, _ := api1.Events(ctx, client.EventFilter{Object: h.ID, Action: "vm.ha-restart"})
		return v.State == "Up" && len(p.Events) > 0
	})
	// A guest that powers itself off is not restarted.
	v2 := waitVM(t, api1, "phoenix", 5*time.Second, vmState("Up"))
	agentOf[v2.Host].setState(h.ID, agentapi.StateDefined, "shutdown", "stopped", "shutdown")
	waitVM(t, api1, "phoenix", 5*time.Second, vmState("Down"))
	time.Sleep(500 * time.Millisecond)
	if v, _ := api1.VM(ctx, "phoenix"); v.State != "Down" {
		t.Errorf("an HA VM shut down from its guest was started again: %s", v.State)
	}

	// Reconciliation when a host's agent comes back: a VM the engine has
	// Down that runs there is adopted; a VM the engine deleted (its marker)
	// is removed; a VM it never knew is reported and left alone.
	adopt := l.create(t, "adopted", "power", strings.ReplaceAll(ppcDef, "%s", "adopted"), false, "")
	l.p8b.stop()
	waitHost(t, api1, "p8b", 10*time.Second, status("NonResponsive"))
	l.p8b.put(agentapi.VM{ID: adopt.ID, Name: "adopted", State: agentapi.StateRunning, Definition: adopt.Definition})
	marked, _ := json.Marshal(map[string]any{"name": "gone", "metadata": map[string]string{service.MarkerKey: l.te.e.svc.VMs.Marker()}})
	l.p8b.put(agentapi.VM{ID: "11111111-2222-4333-8444-555555555555", Name: "gone", State: agentapi.StateDefined, Definition: marked})
	l.p8b.put(agentapi.VM{ID: "99999999-2222-4333-8444-555555555555", Name: "alien", State: agentapi.StateRunning, Definition: json.RawMessage(`{"name":"alien"}`)})
	l.p8b.restart()
	waitVM(t, api1, "adopted", 10*time.Second, func(v engineapi.VM) bool { return v.State == "Up" && v.Host == "p8b" })
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := l.p8b.get("11111111-2222-4333-8444-555555555555"); ok && time.Now().Before(deadline); _, ok = l.p8b.get("11111111-2222-4333-8444-555555555555") {
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := l.p8b.get("11111111-2222-4333-8444-555555555555"); ok {
		t.Errorf("a VM the engine deleted is still on the host")
	}
	if _, ok := l.p8b.get("99999999-2222-4333-8444-555555555555"); !ok {
		t.Errorf("a VM the engine never managed was removed")
	}
	time.Sleep(1200 * time.Millisecond) // two resyncs: still reported once
	page, _ = api1.Events(ctx, client.EventFilter{Code: "HOST_HAS_UNMANAGED_VM"})
	if len(page.Events) != 1 || !strings.Contains(page.Events[0].Message, "Host p8b has VM alien") {
		t.Errorf("foreign VM events: %+v", page.Events)
	}
}

// TestHARestartAfterHostLoss: the host of an HA VM stops answering; the
// VM is Unknown, then runs on the other host; the old host comes back
// with the VM still running: that copy is destroyed.
func TestHARestartAfterHostLoss(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	api1 := l.te.admin
	ha := l.create(t, "ha1", "power", strings.ReplaceAll(ppcDef, "%s", "ha1"), true, "p8a")
	plain := l.create(t, "plain1", "power", strings.ReplaceAll(ppcDef, "%s", "plain1"), false, "p8a")
	for _, n := range []string{"ha1", "plain1"} {
		if _, err := api1.VMAction(ctx, n, "start", ""); err != nil {
			t.Fatal(err)
		}
	}
	// The HA VM may run anywhere in the cluster.
	s := ""
	if _, err := api1.UpdateVM(ctx, "ha1", engineapi.VMUpdate{Host: &s}); err != nil {
		t.Fatal(err)
	}
	l.p8a.stop()
	v := waitVM(t, api1, "ha1", 15*time.Second, func(v engineapi.VM) bool { return v.State == "Up" && v.Host == "p8b" })
	if v.LastHost != "p8a" {
		t.Errorf("last host %q", v.LastHost)
	}
	if p := waitVM(t, api1, "plain1", 5*time.Second, vmState("Unknown")); p.Host != "p8a" {
		t.Errorf("the plain VM: %s on %s", p.State, p.Host)
	}
	if _, err := api1.VMAction(ctx, "plain1", "start", ""); clientErr(err).Code != api.CodeVMStatusIllegal {
		t.Errorf("start an Unknown VM: %v", err)
	}
	if _, ok := l.p8b.get(ha.ID); !ok {
		t.Fatalf("p8b does not run the HA VM")
	}
	// p8a comes back, still running both.
	l.p8a.restart()
	waitHost(t, api1, "p8a", 10*time.Second, status("Up"))
	waitVM(t, api1, "plain1", 5*time.Second, func(v engineapi.VM) bool { return v.State == "Up" && v.Host == "p8a" })
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := l.p8a.get(ha.ID); ok && time.Now().Before(deadline); _, ok = l.p8a.get(ha.ID) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := l.p8a.get(ha.ID); ok {
		t.Errorf("the stale copy of the HA VM is still on p8a")
	}
	if v, _ := api1.VM(ctx, "ha1"); v.State != "Up" || v.Host != "p8b" {
		t.Errorf("ha1 after p8a came back: %s on %s", v.State, v.Host)
	}
	// The destroy's event is written once the agent answered it: a moment
	// after the copy went.
	wanted := []string{"VM ha1 was set to the Unknown status: host p8a does not answer.",
		"Highly available VM ha1 was restarted on host p8b.",
		"VM ha1 was found Up on host p8a while it runs on host p8b: the copy on p8a was destroyed."}
	var all string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		page, _ := api1.Events(ctx, client.EventFilter{Object: ha.ID, Limit: 50})
		var msgs []string
		for _, ev := range page.Events {
			msgs = append(msgs, ev.Message)
		}
		all = strings.Join(msgs, "\n")
		if strings.Contains(all, wanted[2]) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wanted {
		if !strings.Contains(all, want) {
			t.Errorf("events lack %q:\n%s", want, all)
		}
	}
	_ = plain
}

// TestHANoHost: an HA VM whose only host dies stays Unknown, the engine
// says why, and it restarts when a host can take it.
func TestHANoHost(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	api1 := l.te.admin
	l.create(t, "lonely", "power", strings.ReplaceAll(ppcDef, "%s", "lonely"), true, "p8a")
	if _, err := api1.VMAction(ctx, "lonely", "start", ""); err != nil {
		t.Fatal(err)
	}
	l.p8a.stop()
	waitVM(t, api1, "lonely", 10*time.Second, vmState("Unknown"))
	waitFor(t, 5*time.Second, func() bool {
		p, _ := api1.Events(ctx, client.EventFilter{Action: "vm.ha-restart", Code: api.CodeSchedulingFilteredOut})
		return len(p.Events) == 1 && strings.Contains(p.Events[0].Message, "Highly available VM lonely could not be restarted (host p8a does not answer)") &&
			strings.Contains(p.Events[0].Reason, "filter PinToHost")
	})
	l.p8a.restart()
	waitVM(t, api1, "lonely", 10*time.Second, func(v engineapi.VM) bool { return v.State == "Up" && v.Host == "p8a" })
}

func waitFor(t *testing.T, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not so within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLateDefinedEventKeepsVMUp: the "defined" event of a VM's start (a
// start defines, then starts), read after the start took the VM Up, does
// not take it Down; the events after it are applied as before.
func TestLateDefinedEventKeepsVMUp(t *testing.T) {
	l := newPowerLab(t)
	v := l.startedOn(t, "late", "")
	a := l.agent(v.Host)
	a.mu.Lock()
	fv := a.vms[v.ID].vm
	fv.State = agentapi.StateDefined
	a.publish(fv, "defined", "added")
	fv.State = agentapi.StatePaused
	a.publish(fv, "suspended", "paused")
	a.mu.Unlock()
	waitVM(t, l.te.admin, "late", 5*time.Second, func(v engineapi.VM) bool { return v.State == "Paused" })
	for _, e := range eventsOf(t, l.te, v.ID) {
		if strings.HasPrefix(e, api.CodeVMDown+" ") {
			t.Errorf("the VM went Down: %q", e)
		}
	}
}
