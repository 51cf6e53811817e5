package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/pki"
)

// ppcKernelVM is a ppc64le pseries POWER8 VM with VNC + vga (USB tablet and
// keyboard by default) that boots Debian's ppc64el kernel directly.
func ppcKernelVM(name string) []byte {
	return []byte(fmt.Sprintf(`{
  "name": %q,
  "arch": "ppc64le",
  "machine": "pseries",
  "cpu": {"model": "POWER8"},
  "memory": {"sizeMiB": 1024},
  "display": {"type": "vnc", "video": "vga", "listen": "127.0.0.1"},
  "kernel": {
    "path": "/usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/vmlinux",
    "initrd": "/usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/initrd.gz",
    "cmdline": "console=hvc0"
  }
}`, name))
}

// x86VM is an x86_64 q35 VM with VNC and no disk: SeaBIOS paints its screen.
func x86VM(name string) []byte {
	return []byte(fmt.Sprintf(`{"name": %q, "arch": "x86_64", "machine": "q35", "memory": {"sizeMiB": 256},
  "display": {"type": "vnc", "video": "vga", "listen": "127.0.0.1"}}`, name))
}

// TestAgentEndToEnd runs real agent processes on the real libvirtd: a fake-KVM
// POWER8 host (S822L profile) and this x86_64 host.
func TestAgentEndToEnd(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	if _, err := os.Stat(debianPPCKernel); err != nil {
		missing(t, debianPPCKernel)
	}
	ca := newTestCA(t)
	sfx := randomSuffix()
	power := startAgent(t, ca, "e2e-power8-"+sfx, "--profile", "s822l-power8e", "--fake-memory-mib", "1024")
	x86 := startAgent(t, ca, "e2e-x86-"+sfx)

	var caps struct {
		Arch, EffectiveArch string
		FakeKVM             bool `json:"fakeKvm"`
		CPU                 struct{ Flags []string }
	}
	if st := power.do("GET", "/v1/capabilities", nil, &caps); st != 200 || caps.EffectiveArch != "ppc64le" || !caps.FakeKVM {
		t.Fatalf("POWER8 agent capabilities: %d %+v", st, caps)
	}
	if !containsString(caps.CPU.Flags, "model_POWER8") || !containsString(caps.CPU.Flags, "powernv") {
		t.Errorf("POWER8 agent flags %v", caps.CPU.Flags)
	}

	powerEvents := power.events(t)
	x86Events := x86.events(t)

	var ppcVM, xVM agentapi.VM
	if st := power.do("POST", "/v1/vms", ppcKernelVM("polyvirt-test-agent-ppc-"+sfx), &ppcVM); st != http.StatusCreated {
		t.Fatalf("create ppc64le VM: %d %+v", st, ppcVM)
	}
	t.Cleanup(func() { power.do("DELETE", "/v1/vms/"+ppcVM.ID+"?force=true", nil, nil) })
	if st := x86.do("POST", "/v1/vms", x86VM("polyvirt-test-agent-x86-"+sfx), &xVM); st != http.StatusCreated {
		t.Fatalf("create x86_64 VM: %d %+v", st, xVM)
	}
	t.Cleanup(func() { x86.do("DELETE", "/v1/vms/"+xVM.ID+"?force=true", nil, nil) })
	if ppcVM.Arch != "ppc64le" || ppcVM.State != agentapi.StateDefined || !ppcVM.FakeKVM {
		t.Errorf("ppc VM after create: %+v", ppcVM)
	}

	var res agentapi.ActionResult
	if st := power.do("POST", "/v1/vms/"+ppcVM.ID+"/start", nil, &res); st != 200 || !res.Changed || res.State != agentapi.StateRunning {
		t.Fatalf("start ppc VM: %d %+v", st, res)
	}
	if st := x86.do("POST", "/v1/vms/"+xVM.ID+"/start", nil, &res); st != 200 || res.State != agentapi.StateRunning {
		t.Fatalf("start x86 VM: %d %+v", st, res)
	}
	// Starting a running VM is a no-op that says so.
	if st := power.do("POST", "/v1/vms/"+ppcVM.ID+"/start", nil, &res); st != 200 || res.Changed || !strings.Contains(res.Message, "already") {
		t.Errorf("second start: %d %+v", st, res)
	}
	waitEvent(t, powerEvents, ppcVM.ID, "started", 30*time.Second)
	waitEvent(t, x86Events, xVM.ID, "started", 30*time.Second)

	// The live domain XML of the POWER VM: pseries, emulated, spapr-vty.
	var full agentapi.VM
	power.do("GET", "/v1/vms/"+ppcVM.ID, nil, &full)
	for _, want := range []string{"type='qemu'", "machine='pseries", "<model fallback='forbid'>POWER8</model>", "spapr-vio", "bus='usb'"} {
		if !strings.Contains(strings.ReplaceAll(full.DomainXML, `"`, `'`), want) {
			t.Errorf("live XML lacks %s", want)
		}
	}

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); waitScreenshot(t, power, ppcVM.ID) }()
	go func() { defer wg.Done(); waitScreenshot(t, x86, xVM.ID) }()
	go func() { defer wg.Done(); waitConsole(t, power, ppcVM.ID, "Linux version", 180*time.Second) }()
	wg.Wait()
	if t.Failed() {
		return
	}

	// Statistics see the running VMs.
	var stats agentapi.Stats
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		power.do("GET", "/v1/stats", nil, &stats)
		if stats.Host.VMsRunning == 1 && len(stats.VMs) == 1 && stats.VMs[0].CPUTimeNs > 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if stats.Host.VMsRunning != 1 || len(stats.VMs) != 1 || stats.VMs[0].ID != ppcVM.ID || stats.Host.MemTotalMiB == 0 {
		t.Errorf("stats: %+v", stats)
	}

	// A third agent with another host id on the same libvirtd sees
	// neither VM, and neither does the other agent.
	other := startAgent(t, ca, "e2e-other-"+sfx)
	for _, p := range []*agentProc{other, x86} {
		var vms []agentapi.VM
		p.do("GET", "/v1/vms", nil, &vms)
		for _, vm := range vms {
			if vm.ID == ppcVM.ID || (p == other && vm.ID == xVM.ID) {
				t.Errorf("agent %s sees VM %s of another host", p.hostID, vm.Name)
			}
		}
		var e api.ErrorBody
		if st := p.do("POST", "/v1/vms/"+ppcVM.ID+"/destroy", nil, &e); st != 404 || e.Error.Code != "VM_NOT_FOUND" {
			t.Errorf("agent %s may act on another host's VM: %d %+v", p.hostID, st, e)
		}
	}

	// kill -9 the POWER agent and start it again: the VM still runs, is
	// found again with its state, and can be stopped; nothing is defined
	// twice.
	power.kill9()
	power.start()
	var again agentapi.VM
	if st := power.do("GET", "/v1/vms/"+ppcVM.ID, nil, &again); st != 200 || again.State != agentapi.StateRunning || again.Name != ppcVM.Name {
		t.Fatalf("after kill -9 and restart: %d %+v", st, again)
	}
	var vms []agentapi.VM
	power.do("GET", "/v1/vms", nil, &vms)
	if len(vms) != 1 {
		t.Errorf("after restart the agent lists %d VMs; want 1", len(vms))
	}
	powerEvents = power.events(t)
	if st := power.do("POST", "/v1/vms/"+ppcVM.ID+"/destroy", nil, &res); st != 200 || !res.Changed || res.State != agentapi.StateDefined {
		t.Fatalf("destroy after restart: %d %+v", st, res)
	}
	waitEvent(t, powerEvents, ppcVM.ID, "stopped", 30*time.Second)
	if st := power.do("POST", "/v1/vms/"+ppcVM.ID+"/destroy", nil, &res); st != 200 || res.Changed {
		t.Errorf("destroy of a stopped VM: %d %+v", st, res)
	}
	if st := x86.do("POST", "/v1/vms/"+xVM.ID+"/destroy", nil, &res); st != 200 || !res.Changed {
		t.Errorf("destroy x86: %d %+v", st, res)
	}
	for _, c := range []struct {
		p  *agentProc
		id string
	}{{power, ppcVM.ID}, {x86, xVM.ID}} {
		if st := c.p.do("DELETE", "/v1/vms/"+c.id, nil, nil); st != http.StatusNoContent {
			t.Errorf("delete %s: %d", c.id, st)
		}
		if st := c.p.do("GET", "/v1/vms/"+c.id, nil, nil); st != 404 {
			t.Errorf("after delete GET %s: %d", c.id, st)
		}
	}
}

// waitScreenshot polls the screenshot of a VM until it is a valid PNG that
// is not a single colour.
func waitScreenshot(t *testing.T, p *agentProc, id string) {
	deadline := time.Now().Add(120 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := p.http.Get(p.url("/v1/vms/" + id + "/screenshot"))
		if err != nil {
			t.Errorf("screenshot: %v", err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
			t.Errorf("screenshot: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			return
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Errorf("screenshot is not a PNG: %v", err)
			return
		}
		if colours(img) > 1 {
			return
		}
		last = fmt.Sprintf("%dx%d, one colour", img.Bounds().Dx(), img.Bounds().Dy())
		time.Sleep(2 * time.Second)
	}
	t.Errorf("screenshot of %s stayed blank (%s)", id, last)
}

func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) > 1 {
				return len(seen)
			}
		}
	}
	return len(seen)
}

// waitConsole reads the console websocket until want appears.
func waitConsole(t *testing.T, p *agentProc, id, want string, within time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+p.addr+"/v1/vms/"+id+"/console", &websocket.DialOptions{HTTPClient: p.ca.client(t)})
	if err != nil {
		t.Errorf("console websocket: %v", err)
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	var seen strings.Builder
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Errorf("console of %s never showed %q (%v); it showed:\n%s", id, want, err, tailString(seen.String(), 2000))
			return
		}
		seen.Write(msg)
		if strings.Contains(seen.String(), want) {
			return
		}
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestAgentRefusesBadInput: every bad request gets a clear 4xx or a
// refused handshake, and nothing changes on the host.
func TestAgentRefusesBadInput(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	ca := newTestCA(t)
	sfx := randomSuffix()
	dir := t.TempDir()
	cfg := dir + "/agent.yaml"
	if err := os.WriteFile(cfg, []byte("request_timeout: 2s\nmax_body_bytes: 65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, ca, "e2e-bad-"+sfx, "--profile", "s822l-power8e", "--config", cfg)

	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		status int
		code   string
	}{
		{"malformed JSON", "POST", "/v1/vms", []byte(`{"name": "x", `), 400, "DEFINITION_SYNTAX_ERROR"},
		{"unknown field", "POST", "/v1/vms", []byte(`{"name": "x", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "colour": "red"}`), 400, "DEFINITION_UNKNOWN_FIELD"},
		{"wrong type", "POST", "/v1/vms", []byte(`{"name": "x", "arch": "ppc64le", "memory": {"sizeMiB": "lots"}}`), 400, "DEFINITION_WRONG_TYPE"},
		{"another architecture", "POST", "/v1/vms", x86VM("polyvirt-test-bad-" + sfx), 422, "HOST_CANNOT_RUN_VM_ARCH"},
		{"SPICE on POWER", "POST", "/v1/vms", []byte(`{"name": "polyvirt-test-spice-` + sfx + `", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "display": {"type": "spice"}}`), 422, "ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS"},
		{"a key twice", "POST", "/v1/vms", []byte(`{"name": "x", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "kernel": {"path": "/usr/lib/debian-installer/images/k", "path": "/etc/shadow"}}`), 400, "DEFINITION_DUPLICATE_KEY"},
		{"a bidi override in metadata", "POST", "/v1/vms", []byte(`{"name": "polyvirt-test-bidi-` + sfx + `", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "metadata": {"owner": "alice\u202e"}}`), 422, "VALUE_HAS_FORMAT_CHARACTERS"},
		{"huge body", "POST", "/v1/vms", bytes.Repeat([]byte(" "), 100000), 413, "REQUEST_BODY_TOO_LARGE"},
		{"unknown VM", "GET", "/v1/vms/00000000-0000-4000-8000-000000000000", nil, 404, "VM_NOT_FOUND"},
		{"unknown VM action", "POST", "/v1/vms/00000000-0000-4000-8000-000000000000/start", nil, 404, "VM_NOT_FOUND"},
		{"not a VM id", "DELETE", "/v1/vms/../../etc", nil, 404, ""},
		{"unknown endpoint", "GET", "/v2/everything", nil, 404, "NOT_FOUND"},
	}
	for _, c := range cases {
		var e api.ErrorBody
		st := p.do(c.method, c.path, c.body, &e)
		if st != c.status || (c.code != "" && e.Error.Code != c.code && !hasCode(e, c.code)) {
			t.Errorf("%s: %d %+v; want %d %s", c.name, st, e, c.status, c.code)
		}
	}

	// No client certificate, or one from another CA: the handshake fails.
	noCert, _ := pki.ClientTLS(nil, nil, ca.ca.CertPEM)
	other := newTestCA(t)
	foreign, _ := pki.ClientTLS(other.cli.CertPEM, other.cli.KeyPEM, ca.ca.CertPEM)
	for name, cfg := range map[string]*tls.Config{"no certificate": noCert, "certificate of another CA": foreign} {
		conn, err := tlsDial(p.addr, cfg)
		if err == nil {
			// TLS 1.3 reports the server's refusal on the first read.
			conn.Write([]byte("GET /v1/vms HTTP/1.1\r\nHost: x\r\n\r\n"))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Errorf("%s: the agent answered", name)
		}
	}

	// A slow client that never finishes its body is cut off.
	cfgTLS, _ := pki.ClientTLS(ca.cli.CertPEM, ca.cli.KeyPEM, ca.ca.CertPEM)
	conn, err := tlsDial(p.addr, cfgTLS)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"name\": ")
	start := time.Now()
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if time.Since(start) > 15*time.Second || !bytes.HasPrefix(reply, []byte("HTTP/1.1 408")) {
		t.Errorf("slow client: after %s got %q", time.Since(start), reply)
	}

	// Nothing was defined.
	var vms []agentapi.VM
	p.do("GET", "/v1/vms", nil, &vms)
	if len(vms) != 0 {
		t.Errorf("bad requests left VMs behind: %+v", vms)
	}
	var list []json.RawMessage
	p.do("GET", "/v1/vms", nil, &list)
}

func hasCode(e api.ErrorBody, code string) bool {
	for _, x := range e.Errors {
		if x.Code == code {
			return true
		}
	}
	return false
}
