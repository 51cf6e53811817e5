package engine

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/agent"
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/caps"
	"polyvirt/internal/client"
	"polyvirt/internal/pki"
	"polyvirt/internal/vmspec"
)

// fakeAgent speaks the agent API the engine uses for hosts and VMs —
// capabilities, statistics, VM create/list/get/delete/actions, events,
// screenshots and consoles — with VMs that only change state, so that the
// engine's scheduling, state synchronization and HA run in unit tests.
type fakeAgent struct {
	t      *testing.T
	name   string
	addr   string
	report *hostreport.Report
	body   []byte
	etag   string

	mu      sync.Mutex
	tlsCfg  *tls.Config
	srv     *http.Server
	vms     map[string]*fakeVM
	subs    map[chan agentapi.Event]bool
	typed   []byte
	created []string // the definitions received, in order (JSON)
	// libvirtDown, when set, is the agent's answer that it cannot reach
	// libvirt (statistics say so, VM lists fail).
	libvirtDown string
	// actions are the action requests received ("shutdown {...}").
	actions []string
	// lateStart, when set, makes a shutdown leave the guest running and
	// publish, before the answer, the "started" event of the start just
	// before as if it arrived late.
	lateStart bool
	// mig is its migration side (fakeagent_migrate_test.go).
	mig fakeMig
}

type fakeVM struct {
	vm  agentapi.VM
	def []byte
}

var fakeReports sync.Map // profile → *caps.Report

func fakeReport(t *testing.T, profile string) *hostreport.Report {
	t.Helper()
	if r, ok := fakeReports.Load(profile); ok {
		return r.(*hostreport.Report)
	}
	res, err := caps.Collect(context.Background(), caps.Options{Profile: profile})
	if err != nil {
		t.Fatalf("profile %s: %v", profile, err)
	}
	fakeReports.Store(profile, res.Report)
	return res.Report
}

// newFakeAgent adds a host to a cluster through the engine's API, enrolls
// the fake agent with its join token and starts it.
func newFakeAgent(t *testing.T, te *testEngine, name, cluster, profile string) *fakeAgent {
	t.Helper()
	return newFakeAgentWith(t, te, name, cluster, profile, nil)
}

// newFakeAgentWith is newFakeAgent with a report changed by edit.
func newFakeAgentWith(t *testing.T, te *testEngine, name, cluster, profile string, edit func(*hostreport.Report)) *fakeAgent {
	t.Helper()
	rep := fakeReport(t, profile)
	if edit != nil {
		c := *rep
		edit(&c)
		rep = &c
	}
	body, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{t: t, name: name, addr: ln.Addr().String(), report: rep, body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`,
		vms: map[string]*fakeVM{}, subs: map[chan agentapi.Event]bool{}}
	ctx := context.Background()
	jt, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: name, Address: a.addr, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	e, err := agent.Enroll(ctx, te.url, jt.Token, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.tlsCfg, err = pki.ServerTLS([]byte(e.Cert), e.KeyPEM, []byte(e.CACert)); err != nil {
		t.Fatal(err)
	}
	a.serve(ln)
	t.Cleanup(a.stop)
	fakeAgents.Store(a.addr, a)
	t.Cleanup(func() { fakeAgents.Delete(a.addr) })
	return a
}

func (a *fakeAgent) serve(ln net.Listener) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.srv = &http.Server{Handler: a.handler(), ErrorLog: nil}
	a.srv.ErrorLog = slog.NewLogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler(), slog.LevelDebug)
	srv := a.srv
	go srv.Serve(tls.NewListener(ln, a.tlsCfg))
}

// stop closes the listener and every connection (a killed agent).
func (a *fakeAgent) stop() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	for ch := range a.subs {
		close(ch)
		delete(a.subs, ch)
	}
	a.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// restart listens again on the same address.
func (a *fakeAgent) restart() {
	a.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", a.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		a.t.Fatal(err)
	}
	a.serve(ln)
}

func (a *fakeAgent) publish(vm agentapi.VM, event, detail string) {
	ev := agentapi.Event{Time: time.Now(), Host: a.name, VM: vm.ID, Name: vm.Name, Event: event, Detail: detail, State: vm.State}
	for ch := range a.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// setState changes a VM's state as libvirt would, with its event.
func (a *fakeAgent) setState(id string, st agentapi.VMState, reason, event, detail string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.vms[id]
	if v == nil {
		return
	}
	v.vm.State, v.vm.Reason = st, reason
	a.publish(v.vm, event, detail)
}

// put adds a VM as if it had been created (by anyone) on this host.
func (a *fakeAgent) put(vm agentapi.VM) {
	a.mu.Lock()
	defer a.mu.Unlock()
	vm.Host = a.name
	a.vms[vm.ID] = &fakeVM{vm: vm, def: vm.Definition}
}

func (a *fakeAgent) get(id string) (agentapi.VM, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.vms[id]
	if !ok {
		return agentapi.VM{}, false
	}
	return v.vm, true
}

// definitions counts the definitions of a VM the agent received.
func (a *fakeAgent) definitions(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, d := range a.created {
		if strings.Contains(d, `"uuid":"`+id+`"`) {
			n++
		}
	}
	return n
}

func (a *fakeAgent) lastDefinition() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.created) == 0 {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(a.created[len(a.created)-1]), &m)
	return m
}

func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: code, Message: msg}})
}

func (a *fakeAgent) handler() http.Handler {
	mux := http.NewServeMux()
	// update_flash -f reboots the host: the agent goes before it answers.
	mux.HandleFunc("POST /v1/firmware/flash", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	mux.HandleFunc("GET /v1/firmware", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(agentapi.FirmwareStatus{})
	})
	mux.HandleFunc("GET /v1/capabilities", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", a.etag)
		if r.Header.Get("If-None-Match") == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(a.body)
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		lv := &agentapi.LibvirtStatus{Connected: a.libvirtDown == "", Error: a.libvirtDown}
		a.mu.Unlock()
		json.NewEncoder(w).Encode(agentapi.Stats{Host: agentapi.HostStats{Time: time.Now(), CPUs: 8, MemTotalMiB: 16384}, VMs: []agentapi.VMStats{}, Libvirt: lv})
	})
	mux.HandleFunc("GET /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.libvirtDown != "" {
			a.mu.Unlock()
			writeAPIError(w, http.StatusServiceUnavailable, "LIBVIRT_UNAVAILABLE", a.libvirtDown)
			return
		}
		out := []agentapi.VM{}
		for _, v := range a.vms {
			out = append(out, v.vm)
		}
		a.mu.Unlock()
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("POST /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		def, err := vmspec.Decode(b)
		if err == nil {
			_, err = vmspec.Validate(def, vmspec.Options{Host: a.report})
		}
		if err != nil {
			writeAPIError(w, http.StatusUnprocessableEntity, "VM_DEFINITION_INVALID", err.Error())
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, ok := a.vms[def.UUID]; ok {
			writeAPIError(w, http.StatusConflict, "VM_EXISTS", "exists")
			return
		}
		vm := agentapi.VM{ID: def.UUID, Name: def.Name, Arch: def.Arch, State: agentapi.StateDefined, Host: a.name, Definition: b, FakeKVM: true}
		a.vms[def.UUID] = &fakeVM{vm: vm, def: b}
		a.created = append(a.created, string(b))
		a.publish(vm, "defined", "added")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(vm)
	})
	mux.HandleFunc("GET /v1/vms/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := a.get(r.PathValue("id"))
		if !ok {
			writeAPIError(w, http.StatusNotFound, "VM_NOT_FOUND", "no such VM")
			return
		}
		json.NewEncoder(w).Encode(v)
	})
	mux.HandleFunc("DELETE /v1/vms/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		v, ok := a.vms[r.PathValue("id")]
		if !ok {
			writeAPIError(w, http.StatusNotFound, "VM_NOT_FOUND", "no such VM")
			return
		}
		if v.vm.State != agentapi.StateDefined && r.URL.Query().Get("force") != "true" {
			writeAPIError(w, http.StatusConflict, "VM_IS_RUNNING", "running")
			return
		}
		delete(a.vms, v.vm.ID)
		v.vm.State = agentapi.StateUnknown
		a.publish(v.vm, "undefined", "removed")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/vms/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.actions = append(a.actions, strings.TrimSpace(r.PathValue("action")+" "+string(body)))
		v, ok := a.vms[r.PathValue("id")]
		if !ok {
			writeAPIError(w, http.StatusNotFound, "VM_NOT_FOUND", "no such VM")
			return
		}
		res := agentapi.ActionResult{VM: v.vm.ID, Action: r.PathValue("action"), Changed: true}
		switch res.Action {
		case "start":
			v.vm.State = agentapi.StateRunning
			a.publish(v.vm, "started", "booted")
		case "destroy":
			v.vm.State = agentapi.StateDefined
			a.publish(v.vm, "stopped", "destroyed")
		case "shutdown":
			if a.lateStart {
				a.publish(v.vm, "started", "booted")
				time.Sleep(300 * time.Millisecond) // the engine sees it first
				break
			}
			// The guest powers off a moment later.
			id := v.vm.ID
			go func() {
				time.Sleep(50 * time.Millisecond)
				a.setState(id, agentapi.StateDefined, "shutdown", "stopped", "shutdown")
			}()
		case "pause":
			v.vm.State = agentapi.StatePaused
			a.publish(v.vm, "suspended", "paused")
		case "resume":
			v.vm.State = agentapi.StateRunning
			a.publish(v.vm, "resumed", "unpaused")
		case "reboot":
		}
		res.Message, res.State = res.Action+" done", v.vm.State
		json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("GET /v1/vms/{id}/screenshot", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.get(r.PathValue("id")); !ok {
			writeAPIError(w, http.StatusNotFound, "VM_NOT_FOUND", "no such VM")
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG\r\n\x1a\nfake " + a.name))
	})
	mux.HandleFunc("GET /v1/vms/{id}/console", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.get(r.PathValue("id")); !ok {
			writeAPIError(w, http.StatusNotFound, "VM_NOT_FOUND", "no such VM")
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		ws.Write(ctx, websocket.MessageBinary, []byte("[    0.000000] Linux version 6.1.0 (fake "+a.name+")\n"))
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if string(b) == "bye" {
				// The console ends (as when its VM stops).
				ws.Close(websocket.StatusGoingAway, "bye from "+a.name)
				return
			}
			a.mu.Lock()
			a.typed = append(a.typed, b...)
			a.mu.Unlock()
			ws.Write(ctx, websocket.MessageBinary, append([]byte("echo: "), b...))
		}
	})
	a.migrationRoutes(mux)
	mux.HandleFunc("GET /v1/vms/{id}/vnc", func(w http.ResponseWriter, r *http.Request) {
		// An RFB server's greeting, then an echo of what the viewer sends.
		if _, ok := a.get(r.PathValue("id")); !ok {
			writeAPIError(w, http.StatusNotFound, "VM_NOT_FOUND", "no such VM")
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		ws.Write(ctx, websocket.MessageBinary, []byte("RFB 003.008\n"))
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if string(b) == "bye" {
				// The VNC server ends (as when its VM stops).
				ws.Close(websocket.StatusGoingAway, "bye from "+a.name)
				return
			}
			ws.Write(ctx, websocket.MessageBinary, append([]byte("vnc: "), b...))
		}
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		ch := make(chan agentapi.Event, 64)
		a.mu.Lock()
		a.subs[ch] = true
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			if a.subs[ch] {
				delete(a.subs, ch)
				close(ch)
			}
			a.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, ": fake\n\n")
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev, ok := <-ch:
				if !ok {
					return
				}
				b, _ := json.Marshal(ev)
				fmt.Fprintf(w, "event: vm\ndata: %s\n\n", b)
				w.(http.Flusher).Flush()
			}
		}
	})
	return mux
}

// testVMs is a fast VM configuration for tests: HA restarts at once.
var testVMs = VMConfig{HADelay: -1, HAInterval: 100 * time.Millisecond, Resync: 500 * time.Millisecond, AdoptAfter: 300 * time.Millisecond}

// startVMEngine is startEngine with a VM configuration.
func startVMEngine(t *testing.T, mc MonitorConfig, vc VMConfig) *testEngine {
	t.Helper()
	return startEngineConfig(t, Config{Monitor: mc, VMs: vc})
}

// startEngineConfig initializes and runs an engine configured by cfg (its
// data directory, URL and logger set here).
func startEngineConfig(t *testing.T, cfg Config) *testEngine {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	res, err := Init(ctx, InitOptions{DataDir: dir, Name: "localhost", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + ln.Addr().String()
	logs := &syncBuffer{}
	cfg.DataDir, cfg.URL = dir, url
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, FileCA))
	if err != nil {
		t.Fatal(err)
	}
	te := &testEngine{e: e, dir: dir, url: url, token: res.AdminToken, caPEM: caPEM, log: logs, mc: cfg.Monitor, vc: cfg.VMs}
	te.serve(e, ln)
	t.Cleanup(func() {
		te.stop()
		if t.Failed() {
			t.Logf("engine log:\n%s", logs.String())
		}
	})
	te.admin = te.client(t, res.AdminToken)
	return te
}

// serve runs an engine of te until stop.
func (te *testEngine) serve(e *Engine, ln net.Listener) {
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Serve(sctx, ln); close(done) }()
	var once sync.Once
	te.e = e
	te.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			e.Close()
		})
	}
}

// restart stops the engine and starts it again on its data directory, at
// another address (the agents keep theirs).
func (te *testEngine) restart(t *testing.T) {
	t.Helper()
	te.stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	te.url = "https://" + ln.Addr().String()
	e, err := Open(context.Background(), Config{DataDir: te.dir, URL: te.url, Monitor: te.mc, VMs: te.vc,
		Logger: slog.New(slog.NewTextHandler(te.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	te.serve(e, ln)
	te.admin = te.client(t, te.token)
}

// waitVM waits until a VM satisfies ok and returns it.
func waitVM(t *testing.T, c *client.Client, name string, within time.Duration, ok func(engineapi.VM) bool) engineapi.VM {
	t.Helper()
	deadline := time.Now().Add(within)
	var v engineapi.VM
	var err error
	for time.Now().Before(deadline) {
		v, err = c.VM(context.Background(), name)
		if err == nil && ok(v) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("VM %s did not reach the expected state within %s: last %s on %q (err %v)", name, within, v.State, v.Host, err)
	return v
}

func vmState(s string) func(engineapi.VM) bool {
	return func(v engineapi.VM) bool { return v.State == s }
}

// clientErr is the client error of err (a zero one when err is another).
func clientErr(err error) api.Error {
	var ce *api.Error
	if errors.As(err, &ce) {
		return *ce
	}
	return api.Error{Message: fmt.Sprint(err)}
}

// defJSON is a definition in YAML turned into the request's JSON.
func defJSON(t *testing.T, yaml string) json.RawMessage {
	t.Helper()
	def, err := vmspec.Decode([]byte(yaml))
	if err != nil {
		t.Fatalf("definition: %v", err)
	}
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// contains reports whether s holds every part.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
