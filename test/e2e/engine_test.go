package e2e

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/enroll"
	"polyvirt/internal/client"
	"polyvirt/internal/pki"
)

// TestEngineEndToEnd runs a real engine process on SQLite and real agent
// processes on the real libvirtd (fake-KVM POWER8 and POWER9 agents, and
// this x86_64 host), enrolled with polyvirt agent join and driven through
// the CLI.
func TestEngineEndToEnd(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	ctx := context.Background()
	eng := initEngine(t, "engine-a", nil)
	eng.start()
	c := newCLI(t)

	// Log in (the token on stdin), create clusters, list CPU types.
	out := c.run(eng.token+"\n", "login", "--engine", eng.url, "--ca-file", eng.caFile)
	if !strings.Contains(out, "Logged in to "+eng.url+" as admin (admin)") {
		t.Errorf("login: %s", out)
	}
	if fi, err := os.Stat(strings.TrimPrefix(c.env[0], client.EnvConfig+"=")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("login configuration: %v %v, want mode 0600", fi, err)
	}
	c.run("", "cluster", "create", "power", "--arch", "ppc64le")
	var p9 engineapi.Cluster
	c.json(&p9, "cluster", "create", "p9", "--cpu-type", "IBM POWER9")
	if p9.Arch != "ppc64" || p9.CPUType != "IBM POWER9" {
		t.Errorf("cluster p9: %+v", p9)
	}
	c.run("", "cluster", "create", "p8", "--cpu-type", "IBM POWER8")
	if out := c.run("", "cpu-types", "--arch", "ppc64le"); !strings.Contains(out, "IBM POWER8") || !strings.Contains(out, "powernv,model_POWER8") {
		t.Errorf("cpu-types --arch ppc64le:\n%s", out)
	}
	if errOut := c.fail("", "cluster", "create", "bad", "--arch", "x86_64", "--cpu-type", "IBM POWER8"); !strings.Contains(errOut, "INVALID_ARGUMENT (cpuType)") {
		t.Errorf("cluster with a CPU type of another arch: %s", errOut)
	}

	// Four agents join.
	type agentSpec struct{ name, cluster, profile string }
	specs := []agentSpec{{"power8", "power", "s822l-power8e"}, {"intel", "power", ""}, {"old", "p9", "s822l-power8e"}, {"new", "p8", "ac922-power9"}}
	agents := map[string]*agentProc{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range specs {
		extra := []string{}
		if s.profile != "" {
			extra = append(extra, "--profile", s.profile)
		}
		// host add and agent join in turn (the CLI), the agents' starts in parallel.
		wg.Add(1)
		go func(s agentSpec) {
			defer wg.Done()
			p := joinAgent(t, c, eng, s.name, s.cluster, extra...)
			mu.Lock()
			agents[s.name] = p
			mu.Unlock()
		}(s)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	type verdict struct{ Status, Code, CPUType, Message string }
	want := map[string]verdict{
		"power8": {"Up", "", "IBM POWER8", ""},
		"intel": {"NonOperational", "ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER", "",
			"Host intel has architecture x86_64 and cannot join cluster power which has architecture ppc64"},
		"old": {"NonOperational", "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER", "IBM POWER8", "Missing CPU features: model_POWER9"},
		"new": {"Up", "", "IBM POWER9", ""},
	}
	for name, w := range want {
		h := waitHost(t, eng.api, name, 60*time.Second, func(h engineapi.Host) bool { return h.Status == w.Status && !h.LastSeen.IsZero() })
		got := verdict{h.Status, h.StatusCode, h.CPUType, w.Message}
		if w.CPUType == "" {
			got.CPUType = ""
		}
		if diff := cmp.Diff(w, got); diff != "" || !strings.Contains(h.StatusMessage, w.Message) {
			t.Errorf("host %s (-want +got):\n%s\nmessage %q", name, diff, h.StatusMessage)
		}
	}
	var power engineapi.Cluster
	c.json(&power, "cluster", "show", "power")
	if power.Arch != "ppc64" || power.CPUType != "IBM POWER8" || !strings.HasPrefix(power.EmulatedMachine, "pseries") {
		t.Errorf("cluster power after its first host: %+v", power)
	}
	table := c.run("", "host", "list")
	for _, s := range []string{"NAME", "power8", "Up", "IBM POWER8", "intel", "NonOperational", "ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER"} {
		if !strings.Contains(table, s) {
			t.Errorf("host list lacks %q:\n%s", s, table)
		}
	}
	var hosts []engineapi.Host
	c.json(&hosts, "host", "list", "--cluster", "power")
	if len(hosts) != 2 {
		t.Errorf("host list --cluster power: %d hosts", len(hosts))
	}

	// An enrolled agent accepts the engine's client certificate only.
	other := newTestCA(t)
	pair, err := tls.X509KeyPair(other.cli.CertPEM, other.cli.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, InsecureSkipVerify: true}
	if conn, err := tlsDial(agents["power8"].addr, cfg); err == nil {
		conn.Write([]byte("GET /v1/openapi.json HTTP/1.0\r\n\r\n"))
		b := make([]byte, 5)
		n, _ := conn.Read(b)
		conn.Close()
		if string(b[:n]) == "HTTP/" {
			t.Errorf("the agent answered a client with a certificate of another CA")
		}
	}
	if st := agents["power8"].do("GET", "/v1/capabilities", nil, nil); st != 200 {
		t.Errorf("the engine's client certificate: %d", st)
	}

	// Killed → NonResponsive → restarted → Up.
	p8 := agents["power8"]
	p8.kill9()
	nr := waitHost(t, eng.api, "power8", 30*time.Second, hostStatus("NonResponsive"))
	if nr.StatusCode != "AGENT_UNREACHABLE" {
		t.Errorf("killed agent: %s %q", nr.StatusCode, nr.StatusMessage)
	}
	p8.start()
	waitHost(t, eng.api, "power8", 60*time.Second, hostStatus("Up"))

	// Disappearing mid-request (stopped: connections accepted, no answer).
	nw := agents["new"]
	nw.signal(syscall.SIGSTOP)
	nr = waitHost(t, eng.api, "new", 30*time.Second, hostStatus("NonResponsive"))
	nw.signal(syscall.SIGCONT)
	if !strings.Contains(nr.StatusMessage, "timeout") {
		t.Errorf("stopped agent: %q", nr.StatusMessage)
	}
	waitHost(t, eng.api, "new", 30*time.Second, hostStatus("Up"))

	// Reinstalled as another architecture, then back.
	p8.restartWith()
	no := waitHost(t, eng.api, "power8", 60*time.Second, hostStatus("NonOperational"))
	if no.StatusCode != "ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER" || no.Arch != "x86_64" {
		t.Errorf("power8 reinstalled as x86_64: %s %s %q", no.Arch, no.StatusCode, no.StatusMessage)
	}
	p8.restartWith("--profile", "s822l-power8e")
	waitHost(t, eng.api, "power8", 60*time.Second, hostStatus("Up"))

	// Join tokens: forged, expired, reused — refused, nothing written.
	var jt engineapi.JoinToken
	c.json(&jt, "host", "add", "late", "--address", freeAddr(t), "--cluster", "power", "--token-ttl", "1s")
	tok, err := enroll.ParseToken(jt.Token)
	if err != nil {
		t.Fatal(err)
	}
	forged := enroll.Token{Secret: strings.Repeat("Q", 43), CAHash: tok.CAHash}
	time.Sleep(1200 * time.Millisecond)
	for _, tc := range []struct{ name, token, code string }{
		{"forged", forged.String(), api.CodeJoinTokenInvalid},
		{"expired", jt.Token, api.CodeJoinTokenExpired},
		{"malformed", "pvj1.nope", "three parts separated by dots"},
	} {
		dir := filepath.Join(t.TempDir(), tc.name)
		errOut := c.fail(tc.token+"\n", "agent", "join", "--engine", eng.url, "--data-dir", dir)
		if !strings.Contains(errOut, tc.code) {
			t.Errorf("join with a %s token: %s", tc.name, errOut)
		}
		if files := dirFiles(dir); files != "" {
			t.Errorf("join with a %s token wrote %s", tc.name, files)
		}
	}
	c.json(&jt, "host", "join-token", "late")
	c.run(jt.Token+"\n", "agent", "join", "--engine", eng.url, "--data-dir", filepath.Join(t.TempDir(), "ok"))
	if errOut := c.fail(jt.Token+"\n", "agent", "join", "--engine", eng.url, "--data-dir", filepath.Join(t.TempDir(), "again")); !strings.Contains(errOut, api.CodeJoinTokenUsed) {
		t.Errorf("reused token: %s", errOut)
	}
	otherCA, _ := pki.NewCA("another engine")
	alien := enroll.Token{Secret: tok.Secret, CAHash: pki.Fingerprint(otherCA.Cert)}
	if errOut := c.fail(alien.String()+"\n", "agent", "join", "--engine", eng.url, "--data-dir", t.TempDir()); !strings.Contains(errOut, "does not hold the CA of the join token") {
		t.Errorf("join an engine that is not the token's: %s", errOut)
	}

	// Maintenance and activation through the CLI; remove refused while Up.
	if errOut := c.fail("", "host", "remove", "new"); !strings.Contains(errOut, "ACTION_TYPE_FAILED_VDS_STATUS_ILLEGAL") {
		t.Errorf("remove an Up host: %s", errOut)
	}
	if out := c.run("", "host", "maintenance", "new", "--reason", "e2e"); !strings.Contains(out, "Maintenance") {
		t.Errorf("maintenance: %s", out)
	}
	if errOut := c.fail("", "host", "update", "new", "--cluster", "x86"); !strings.Contains(errOut, "NOT_FOUND") {
		t.Errorf("move to an unknown cluster: %s", errOut)
	}
	c.run("", "cluster", "create", "x86", "--arch", "x86_64")
	if errOut := c.fail("", "host", "update", "new", "--cluster", "x86"); !strings.Contains(errOut, "ACTION_TYPE_FAILED_VDS_CLUSTER_DIFFERENT_ARCHITECTURES") {
		t.Errorf("move a POWER host to an x86_64 cluster: %s", errOut)
	}
	var act engineapi.Host
	c.json(&act, "host", "activate", "new", "--wait", "30s")
	if act.Status != "Up" {
		t.Errorf("activate --wait: %s %q", act.Status, act.StatusMessage)
	}

	// The audit log through the CLI.
	evTable := c.run("", "events", "--host", "power8", "--limit", "100")
	for _, s := range []string{"Host power8 moved to Non-Responsive state.", "Status of host power8 was set to Up.", "AGENT_UNREACHABLE", "admin"} {
		if !strings.Contains(evTable, s) {
			t.Errorf("events --host power8 lacks %q:\n%s", s, evTable)
		}
	}
	var page engineapi.EventPage
	c.json(&page, "events", "--cluster", "power", "--limit", "200")
	codes := map[string]bool{}
	for _, ev := range page.Events {
		codes[ev.Code] = true
	}
	if !codes["ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER"] || !codes["AGENT_UNREACHABLE"] {
		t.Errorf("events --cluster power codes: %v", codes)
	}

	// A read-only user reads and cannot change anything.
	var ut engineapi.UserToken
	c.json(&ut, "user", "add", "viewer", "--role", "readonly")
	ro := newCLI(t)
	// Without the CA: the login shows what the engine presents; with its
	// fingerprint pinned it works.
	if errOut := ro.fail(ut.Token+"\n", "login", "--engine", eng.url); !strings.Contains(errOut, eng.caFP) {
		t.Errorf("login to an untrusted engine does not show its CA fingerprint:\n%s", errOut)
	}
	ro.run(ut.Token+"\n", "login", "--engine", eng.url, "--insecure-fingerprint", eng.caFP)
	ro.run("", "host", "list")
	if errOut := ro.fail("", "cluster", "create", "nope"); !strings.Contains(errOut, "PERMISSION_DENIED") {
		t.Errorf("readonly cluster create: %s", errOut)
	}

	// The engine restarted keeps everything, and goes on monitoring.
	before := snapshot(t, ctx, eng.api)
	eng.stop()
	eng.start()
	after := snapshot(t, ctx, eng.api)
	if diff := cmp.Diff(before.state, after.state); diff != "" {
		t.Errorf("after the engine's restart (-before +after):\n%s", diff)
	}
	for id := range before.events {
		if !after.events[id] {
			t.Errorf("event %d lost over the restart", id)
		}
	}
	seen := before.lastSeen["power8"]
	waitHost(t, eng.api, "power8", 30*time.Second, func(h engineapi.Host) bool { return h.Status == "Up" && h.LastSeen.After(seen) })

	// The database file deleted: clear errors, nothing else breaks. (The
	// leader's host list and the API token's user are kept in memory a
	// second or two: the first calls may still be answered from there.)
	for _, f := range []string{"polyvirt.db", "polyvirt.db-wal", "polyvirt.db-shm"} {
		os.Remove(filepath.Join(eng.dir, f))
	}
	var errOut string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		out, stderr, code := runCLI(t, c.env, "", "host", "list")
		if code != 0 {
			errOut = stderr
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host list still answers 15 s after the database file was deleted:\n%s", out)
		}
	}
	if !strings.Contains(errOut, "DATABASE_FAILURE") || !strings.Contains(errOut, "database file is gone") {
		t.Errorf("host list without the database file: %s", errOut)
	}
}

// engineState is what must survive a restart.
type engineState struct {
	state    map[string]string
	events   map[int64]bool
	lastSeen map[string]time.Time
}

func snapshot(t *testing.T, ctx context.Context, api *client.Client) engineState {
	t.Helper()
	s := engineState{state: map[string]string{}, events: map[int64]bool{}, lastSeen: map[string]time.Time{}}
	cs, err := api.Clusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		s.state["cluster "+c.Name] = strings.Join([]string{c.ID, c.Arch.String(), c.CPUType, c.EmulatedMachine}, " ")
	}
	hs, err := api.Hosts(ctx, client.HostFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		s.state["host "+h.Name] = strings.Join([]string{h.ID, h.Cluster, h.Status, h.StatusCode, h.Arch.String(), h.CPUType, h.CertFingerprint}, " ")
		s.lastSeen[h.Name] = h.LastSeen
	}
	us, err := api.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Name+":"+u.Role)
	}
	sort.Strings(names)
	s.state["users"] = strings.Join(names, ",")
	page, err := api.Events(ctx, client.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range page.Events {
		s.events[ev.ID] = true
	}
	return s
}
