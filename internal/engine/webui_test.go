package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/store"
	"polyvirt/internal/webui"
)

// browser is a cookie-keeping HTTPS client of a test engine, as a web
// page uses the API: the session cookie, and the CSRF token in a header.
type browser struct {
	t    *testing.T
	te   *testEngine
	hc   *http.Client
	csrf string
	// origin, when set, is sent as the Origin header.
	origin string
}

func newBrowser(t *testing.T, te *testEngine) *browser {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(te.caPEM)
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, te: te, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

// do sends a request; body is JSON-encoded unless it is a []byte.
func (b *browser) do(method, path string, body any, hdr ...string) (int, []byte, http.Header) {
	b.t.Helper()
	var r io.Reader
	switch x := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(x)
	default:
		j, _ := json.Marshal(x)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.te.url+path, r)
	if err != nil {
		b.t.Fatal(err)
	}
	if b.csrf != "" {
		req.Header.Set(CSRFHeader, b.csrf)
	}
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

// signIn signs in and keeps the CSRF token.
func (b *browser) signIn(name, pw string) engineapi.Session {
	b.t.Helper()
	st, body, _ := b.do("POST", "/api/v1/session", engineapi.SignInRequest{Name: name, Password: pw})
	if st != http.StatusOK {
		b.t.Fatalf("sign in as %s: %d %s", name, st, body)
	}
	var s engineapi.Session
	if err := json.Unmarshal(body, &s); err != nil {
		b.t.Fatal(err)
	}
	b.csrf = s.CSRFToken
	return s
}

func errorCode(body []byte) string {
	var eb api.ErrorBody
	_ = json.Unmarshal(body, &eb)
	return eb.Error.Code
}

// addUser adds a user with a password.
func addUser(t *testing.T, te *testEngine, name, role, pw string) {
	t.Helper()
	ctx := context.Background()
	if _, err := te.admin.CreateUser(ctx, name, role); err != nil {
		t.Fatal(err)
	}
	if err := te.admin.SetPassword(ctx, name, pw); err != nil {
		t.Fatal(err)
	}
}

// TestWebSessions: sign-in with a password, the session cookie's
// attributes, the CSRF token on changes, roles, sign-out, a new password
// ending the sessions, and requests from another site refused.
func TestWebSessions(t *testing.T) {
	te := startEngine(t, testMonitor)
	addUser(t, te, "alice", "admin", "alice's long password")
	addUser(t, te, "viewer", "readonly", "viewer's long password")

	b := newBrowser(t, te)
	st, body, _ := b.do("GET", "/api/v1/session", nil)
	if st != 401 || errorCode(body) != api.CodeUnauthenticated {
		t.Errorf("session before sign-in: %d %s", st, body)
	}
	st, body, _ = b.do("POST", "/api/v1/session", engineapi.SignInRequest{Name: "alice", Password: "wrong password!"})
	if st != 401 || errorCode(body) != api.CodeSignInFailed {
		t.Errorf("wrong password: %d %s", st, body)
	}
	st, body, _ = b.do("POST", "/api/v1/session", engineapi.SignInRequest{Name: "nobody", Password: "alice's long password"})
	if st != 401 || errorCode(body) != api.CodeSignInFailed {
		t.Errorf("unknown user: %d %s", st, body)
	}
	// The cookie.
	st, body, hdr := b.do("POST", "/api/v1/session", engineapi.SignInRequest{Name: "alice", Password: "alice's long password"})
	if st != 200 {
		t.Fatalf("sign in: %d %s", st, body)
	}
	cookie := hdr.Get("Set-Cookie")
	for _, want := range []string{SessionCookie + "=", "Path=/", "Max-Age=43200", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %q", cookie, want)
		}
	}
	var s engineapi.Session
	json.Unmarshal(body, &s)
	if s.User.Name != "alice" || s.Via != "session" || len(s.CSRFToken) < 20 || time.Until(s.Expires) < 29*time.Minute ||
		!slices.Contains(s.Allowed, "POST /clusters") || !slices.Contains(s.Allowed, "POST /vms/{vm}/start") {
		t.Errorf("signed in: %+v", s)
	}
	// A change without the CSRF token is refused; with it, done.
	st, body, _ = b.do("POST", "/api/v1/clusters", engineapi.ClusterRequest{Name: "c1"})
	if st != 403 || errorCode(body) != api.CodeCSRFTokenInvalid {
		t.Errorf("change without the CSRF token: %d %s", st, body)
	}
	b.csrf = s.CSRFToken
	st, body, _ = b.do("POST", "/api/v1/clusters", engineapi.ClusterRequest{Name: "c1"}, CSRFHeader, "forged")
	if st != 403 || errorCode(body) != api.CodeCSRFTokenInvalid {
		t.Errorf("change with a forged CSRF token: %d %s", st, body)
	}
	if st, body, _ = b.do("POST", "/api/v1/clusters", engineapi.ClusterRequest{Name: "c1"}); st != 201 {
		t.Errorf("change with the CSRF token: %d %s", st, body)
	}
	// From another site: refused even with the token.
	b.origin = "https://evil.example"
	if st, body, _ = b.do("POST", "/api/v1/clusters", engineapi.ClusterRequest{Name: "c2"}); st != 403 || errorCode(body) != api.CodeCSRFTokenInvalid {
		t.Errorf("change from another origin: %d %s", st, body)
	}
	b.origin = ""
	if st, body, _ = b.do("POST", "/api/v1/clusters", engineapi.ClusterRequest{Name: "c2"}, "Sec-Fetch-Site", "cross-site"); st != 403 {
		t.Errorf("change from another site: %d %s", st, body)
	}
	// The session and an API token together: the token decides.
	if st, _, _ = b.do("GET", "/api/v1/whoami", nil, "Authorization", "Bearer "+te.token); st != 200 {
		t.Errorf("token with a cookie: %d", st)
	}

	// A readonly user reads, and is refused every change.
	v := newBrowser(t, te)
	vs := v.signIn("viewer", "viewer's long password")
	if slices.Contains(vs.Allowed, "POST /clusters") || slices.Contains(vs.Allowed, "POST /vms/{vm}/start") ||
		!slices.Contains(vs.Allowed, "GET /hosts") || !slices.Contains(vs.Allowed, "DELETE /session") {
		t.Errorf("readonly allowed: %v", vs.Allowed)
	}
	if st, body, _ = v.do("POST", "/api/v1/clusters", engineapi.ClusterRequest{Name: "c3"}); st != 403 || errorCode(body) != api.CodePermissionDenied {
		t.Errorf("readonly change: %d %s", st, body)
	}
	if st, _, _ = v.do("GET", "/api/v1/clusters", nil); st != 200 {
		t.Errorf("readonly read: %d", st)
	}
	// Its own password: with the current one only.
	if st, body, _ = v.do("PUT", "/api/v1/users/viewer/password", engineapi.PasswordRequest{Password: "a new long password", CurrentPassword: "wrong"}); st != 403 || errorCode(body) != api.CodePasswordInvalid {
		t.Errorf("own password with a wrong current one: %d %s", st, body)
	}
	if st, body, _ = v.do("PUT", "/api/v1/users/alice/password", engineapi.PasswordRequest{Password: "a new long password"}); st != 403 || errorCode(body) != api.CodePermissionDenied {
		t.Errorf("readonly setting another's password: %d %s", st, body)
	}
	if st, body, _ = b.do("PUT", "/api/v1/users/viewer/password", engineapi.PasswordRequest{Password: "short"}); st != 400 || errorCode(body) != api.CodePasswordInvalid {
		t.Errorf("a short password: %d %s", st, body)
	}
	// An admin gives viewer a new password: viewer's sessions end.
	if st, body, _ = b.do("PUT", "/api/v1/users/viewer/password", engineapi.PasswordRequest{Password: "a new long password"}); st != 204 {
		t.Errorf("admin sets a password: %d %s", st, body)
	}
	if st, body, _ = v.do("GET", "/api/v1/session", nil); st != 401 || errorCode(body) != api.CodeSessionExpired {
		t.Errorf("session after a new password: %d %s", st, body)
	}
	v.signIn("viewer", "a new long password")

	// Sign-out.
	if st, body, _ = b.do("DELETE", "/api/v1/session", nil); st != 204 {
		t.Errorf("sign out: %d %s", st, body)
	}
	if st, body, _ = b.do("GET", "/api/v1/clusters", nil); st != 401 {
		t.Errorf("after sign-out: %d %s", st, body)
	}
	// The audit log has the sign-ins.
	page, err := te.admin.Events(context.Background(), clientEventFilter("user.signin"))
	if err != nil || len(page.Events) != 3 {
		t.Errorf("sign-in events: %d %v", len(page.Events), err)
	}
}

// TestSignInRateLimit: failed sign-ins for one user are refused for a
// while after the limit (429, Retry-After), even with the right password;
// another user is not affected.
func TestSignInRateLimit(t *testing.T) {
	te := startEngineConfig(t, Config{Monitor: testMonitor, Sessions: SessionConfig{FailuresPerUser: 3, FailuresPerAddress: 10, FailureWindow: time.Minute}})
	addUser(t, te, "alice", "admin", "alice's long password")
	addUser(t, te, "bob", "admin", "bob's long password")
	b := newBrowser(t, te)
	for i := 0; i < 3; i++ {
		if st, body, _ := b.do("POST", "/api/v1/session", engineapi.SignInRequest{Name: "alice", Password: "guess " + strconv.Itoa(i)}); st != 401 {
			t.Fatalf("failure %d: %d %s", i, st, body)
		}
	}
	st, body, hdr := b.do("POST", "/api/v1/session", engineapi.SignInRequest{Name: "alice", Password: "alice's long password"})
	if st != 429 || errorCode(body) != api.CodeSignInRateLimited {
		t.Errorf("after 3 failures: %d %s", st, body)
	}
	if n, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || n < 1 || n > 61 {
		t.Errorf("Retry-After %q", hdr.Get("Retry-After"))
	}
	if st, body, _ = b.do("POST", "/api/v1/session", engineapi.SignInRequest{Name: "bob", Password: "bob's long password"}); st != 200 {
		t.Errorf("another user: %d %s", st, body)
	}
}

// TestSessionIdleExpiry: a session not used for its idle time ends.
func TestSessionIdleExpiry(t *testing.T) {
	te := startEngineConfig(t, Config{Monitor: testMonitor, Sessions: SessionConfig{Idle: 300 * time.Millisecond}})
	addUser(t, te, "alice", "admin", "alice's long password")
	b := newBrowser(t, te)
	b.signIn("alice", "alice's long password")
	if st, _, _ := b.do("GET", "/api/v1/hosts", nil); st != 200 {
		t.Fatalf("fresh session: %d", st)
	}
	time.Sleep(500 * time.Millisecond)
	if st, body, _ := b.do("GET", "/api/v1/hosts", nil); st != 401 || errorCode(body) != api.CodeSessionExpired {
		t.Errorf("idle session: %d %s", st, body)
	}
}

// TestUIPagesAndHeaders: the page and files with their security headers
// and compression; the page saying how to build the UI when it is not
// built.
func TestUIPagesAndHeaders(t *testing.T) {
	te := startEngine(t, testMonitor)
	b := newBrowser(t, te)
	te.e.SetUIFiles(webui.NewFS(fstest.MapFS{}))
	st, body, hdr := b.do("GET", "/", nil)
	if st != 503 || !strings.Contains(string(body), "scripts/build-ui.sh") {
		t.Errorf("UI not built: %d %s", st, body)
	}
	big := strings.Repeat("console.log('polyvirt');\n", 100)
	te.e.SetUIFiles(webui.NewFS(fstest.MapFS{
		"index.html":   {Data: []byte("<!doctype html><title>polyvirt</title><script type=module src=/ui/app.js></script>")},
		"app.js":       {Data: []byte(big)},
		"console.html": {Data: []byte("<!doctype html><title>console</title>")},
	}))
	for _, tc := range []struct {
		path, ctype, csp string
	}{
		{"/", "text/html; charset=utf-8", "script-src 'self'; style-src 'self';"},
		{"/ui/app.js", "text/javascript; charset=utf-8", "script-src 'self'; style-src 'self';"},
		{"/ui/console.html", "text/html; charset=utf-8", "style-src 'self' 'unsafe-inline'"},
		{"/api/v1/health", "application/json", "default-src 'none'; frame-ancestors 'none'"},
	} {
		st, body, hdr = b.do("GET", tc.path, nil)
		if st != 200 || hdr.Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s: %d %s %s", tc.path, st, hdr.Get("Content-Type"), body)
		}
		csp := hdr.Get("Content-Security-Policy")
		if !strings.Contains(csp, tc.csp) || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src 'self' 'unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		if hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", tc.path, hdr)
		}
	}
	// Compressed when the browser takes it (the Transport decompresses
	// what it asked for itself; ask explicitly to see the encoding).
	_, raw, hdr := b.do("GET", "/ui/app.js", nil, "Accept-Encoding", "gzip, deflate, br")
	if hdr.Get("Content-Encoding") != "gzip" || len(raw) >= len(big)/4 || hdr.Get("ETag") == "" {
		t.Errorf("app.js: encoding %q, %d bytes of %d, ETag %q", hdr.Get("Content-Encoding"), len(raw), len(big), hdr.Get("ETag"))
	}
	if st, _, _ = b.do("GET", "/ui/app.js", nil, "If-None-Match", hdr.Get("ETag")); st != 304 {
		t.Errorf("revalidation: %d", st)
	}
	for _, p := range []string{"/ui/nothing.js", "/ui/../index.html", "/ui/", "/ui/.hidden"} {
		if st, _, _ = b.do("GET", p, nil); st != 404 {
			t.Errorf("GET %s: %d; want 404", p, st)
		}
	}
}

// TestVMOptionsAndCheck: the form's options follow the cluster's
// architecture; a definition is checked with every violation and its
// field.
func TestVMOptionsAndCheck(t *testing.T) {
	l := newPowerLab(t)
	te := l.te
	b := newBrowser(t, te)
	addUser(t, te, "viewer", "readonly", "viewer's long password")
	b.signIn("viewer", "viewer's long password")
	st, body, _ := b.do("GET", "/api/v1/clusters/power/vm-options", nil)
	if st != 200 {
		t.Fatalf("vm-options: %d %s", st, body)
	}
	var o engineapi.VMOptions
	json.Unmarshal(body, &o)
	if o.DefaultArch != "ppc64le" || o.EmulatedMachine == "" || len(o.Arches) == 0 {
		t.Fatalf("power options: %+v", o)
	}
	var le engineapi.ArchOptions
	for _, a := range o.Arches {
		if a.Arch == "ppc64le" {
			le = a
		}
	}
	var displays []string
	for _, d := range le.Displays {
		displays = append(displays, d.Type)
	}
	if diff := cmp.Diff([]string{"vnc"}, displays); diff != "" {
		t.Errorf("POWER displays (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"virtio", "spapr-vlan"}, le.NICModels); diff != "" {
		t.Errorf("POWER NICs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"POWER8"}, le.CPUModels); diff != "" {
		t.Errorf("CPU models of a POWER8 cluster (-want +got):\n%s", diff)
	}
	if le.MemoryMultipleMiB != 256 || le.ConsoleDevice != "hvc0" || !slices.Contains(le.DiskBuses, "scsi") || slices.Contains(le.DiskBuses, "ide") {
		t.Errorf("POWER options: %+v", le)
	}
	st, body, _ = b.do("GET", "/api/v1/clusters/p9/vm-options", nil)
	json.Unmarshal(body, &o)
	if st != 200 || len(o.Arches) == 0 || !slices.Contains(o.Arches[0].CPUModels, "POWER9") {
		t.Errorf("p9 options: %d %+v", st, o)
	}
	st, body, _ = b.do("GET", "/api/v1/clusters/x86/vm-options", nil)
	json.Unmarshal(body, &o)
	if st != 200 || o.DefaultArch != "x86_64" || len(o.Arches) == 0 {
		t.Fatalf("x86 options: %d %s", st, body)
	}
	for _, a := range o.Arches {
		if a.Arch == "x86_64" && (len(a.Displays) < 2 || !slices.Contains(a.NICModels, "e1000")) {
			t.Errorf("x86_64 options: %+v", a)
		}
	}

	// The check: the installer with SPICE on POWER, as YAML.
	spice := "name: inst\narch: ppc64le\nmemory: {sizeMiB: 1000}\ndisplay: {type: spice}\nkernel: {path: /var/lib/polyvirt/images/vmlinux}\nmetadata: {purpose: installer}\n"
	st, body, _ = b.do("POST", "/api/v1/clusters/power/vm-check", engineapi.VMCheckRequest{Text: spice})
	var c engineapi.VMCheck
	json.Unmarshal(body, &c)
	codes := map[string]string{}
	for _, e := range c.Errors {
		codes[e.Field] = e.Code
	}
	if st != 200 || codes["display.type"] != "ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS" ||
		codes["memory.sizeMiB"] == "" || len(c.Definition) == 0 || len(c.Completed) != 0 {
		t.Errorf("check of SPICE on POWER: %d %s", st, body)
	}
	var def map[string]any
	json.Unmarshal(c.Definition, &def)
	if def["name"] != "inst" || def["display"].(map[string]any)["type"] != "spice" {
		t.Errorf("the definition as read: %s", c.Definition)
	}
	fixed := strings.NewReplacer("spice", "vnc", "1000", "1024").Replace(spice)
	st, body, _ = b.do("POST", "/api/v1/clusters/power/vm-check", engineapi.VMCheckRequest{Text: fixed})
	c = engineapi.VMCheck{}
	json.Unmarshal(body, &c)
	if st != 200 || len(c.Errors) != 0 || !strings.Contains(string(c.Completed), `"machine":"pseries`) {
		t.Errorf("check of the fixed definition: %d %s", st, body)
	}
	st, body, _ = b.do("POST", "/api/v1/clusters/power/vm-check", engineapi.VMCheckRequest{Text: "name: [unclosed"})
	c = engineapi.VMCheck{}
	json.Unmarshal(body, &c)
	if st != 200 || len(c.Errors) != 1 || len(c.Definition) != 0 {
		t.Errorf("check of broken YAML: %d %s", st, body)
	}
	st, body, _ = b.do("POST", "/api/v1/clusters/nope/vm-check", engineapi.VMCheckRequest{Text: fixed})
	if st != 404 {
		t.Errorf("check for an unknown cluster: %d %s", st, body)
	}
}

// TestConsoleTicket: a ticket opens the graphical console's websocket once,
// for its VM, within its time; a readonly user gets none.
func TestConsoleTicket(t *testing.T) {
	l := newPowerLab(t)
	te := l.te
	ctx := context.Background()
	l.create(t, "vm1", "power", "name: vm1\narch: ppc64le\nmemory: {sizeMiB: 1024}\nkernel: {path: /var/lib/polyvirt/images/vmlinux}\n", false, "")
	l.create(t, "vm2", "power", "name: vm2\narch: ppc64le\nmemory: {sizeMiB: 1024}\nkernel: {path: /var/lib/polyvirt/images/vmlinux}\n", false, "")
	addUser(t, te, "alice", "admin", "alice's long password")
	addUser(t, te, "viewer", "readonly", "viewer's long password")
	b := newBrowser(t, te)
	b.signIn("alice", "alice's long password")
	st, body, _ := b.do("POST", "/api/v1/vms/vm1/console-ticket", engineapi.ConsoleTicketRequest{Type: "vnc"})
	if st != 409 || errorCode(body) != api.CodeVMStatusIllegal {
		t.Errorf("ticket of a VM that is Down: %d %s", st, body)
	}
	for _, n := range []string{"vm1", "vm2"} {
		if _, err := te.admin.VMAction(ctx, n, "start", ""); err != nil {
			t.Fatal(err)
		}
	}
	ticket := func(vm string) engineapi.ConsoleTicket {
		t.Helper()
		st, body, _ := b.do("POST", "/api/v1/vms/"+vm+"/console-ticket", nil)
		var tk engineapi.ConsoleTicket
		if st != 201 || json.Unmarshal(body, &tk) != nil {
			t.Fatalf("ticket: %d %s", st, body)
		}
		return tk
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(te.caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	open := func(path string) (*websocket.Conn, int, string) {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(dctx, "wss"+strings.TrimPrefix(te.url, "https")+path,
			&websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"binary"}})
		if err != nil {
			st, code := 0, ""
			if resp != nil {
				st = resp.StatusCode
				if resp.Body != nil {
					b, _ := io.ReadAll(resp.Body)
					code = errorCode(b)
				}
			}
			return nil, st, code
		}
		return ws, 101, ""
	}
	tk := ticket("vm1")
	if time.Until(tk.Expires) > 31*time.Second || !strings.HasPrefix(tk.Path, "/api/v1/vms/") {
		t.Errorf("ticket: %+v", tk)
	}
	ws, st, _ := open(tk.Path)
	if ws == nil {
		t.Fatalf("open the console: %d", st)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil || string(msg) != "RFB 003.008\n" {
		t.Errorf("the VNC server's greeting: %q %v", msg, err)
	}
	ws.Write(ctx, websocket.MessageBinary, []byte("RFB 003.008\n"))
	if _, msg, err = ws.Read(ctx); err != nil || string(msg) != "vnc: RFB 003.008\n" {
		t.Errorf("the viewer's bytes at the VNC server: %q %v", msg, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// Used, forged, for another VM, none: refused.
	vm2 := ticket("vm2")
	for name, path := range map[string]string{
		"used":           tk.Path,
		"forged":         strings.Replace(tk.Path, "ticket=", "ticket=x", 1),
		"for another VM": strings.Replace(vm2.Path, url.PathEscape(vm2.VM), url.PathEscape(tk.VM), 1),
		"none":           "/api/v1/vms/vm1/vnc",
	} {
		if ws, st, code := open(path); ws != nil || st != 401 || code != api.CodeConsoleTicketInvalid {
			t.Errorf("%s ticket: %d %s", name, st, code)
		}
	}
	// Expired.
	exp := ticket("vm1")
	_, h, _ := strings.Cut(exp.Path, "ticket=")
	h, _ = url.QueryUnescape(h)
	if err := te.e.st.CreateConsoleTicket(ctx, &store.ConsoleTicket{Hash: store.HashToken(h + "x"), UserID: "u", VMID: exp.VM, Kind: "vnc", Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if ws, st, code := open(strings.Replace(exp.Path, "ticket=", "ticket=", 1) + "x"); ws != nil || st != 401 || code != api.CodeConsoleTicketInvalid {
		t.Errorf("expired ticket: %d %s", st, code)
	}
	// A readonly user gets no ticket.
	v := newBrowser(t, te)
	v.signIn("viewer", "viewer's long password")
	if st, body, _ := v.do("POST", "/api/v1/vms/vm1/console-ticket", nil); st != 403 || errorCode(body) != api.CodePermissionDenied {
		t.Errorf("readonly ticket: %d %s", st, body)
	}
	page, err := te.admin.Events(ctx, clientEventFilter("vm.console"))
	if err != nil || len(page.Events) != 1 || !strings.Contains(page.Events[0].Message, "User alice opened the graphical console of VM vm1") {
		t.Errorf("console events: %+v %v", page.Events, err)
	}
}

// TestEventStream: a new event reaches the stream's listener.
func TestEventStream(t *testing.T) {
	te := startEngine(t, testMonitor)
	addUser(t, te, "viewer", "readonly", "viewer's long password")
	b := newBrowser(t, te)
	b.signIn("viewer", "viewer's long password")
	req, _ := http.NewRequest("GET", te.url+"/api/v1/events/stream", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := b.hc.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	got := make(chan engineapi.Event, 8)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev engineapi.Event
				if json.Unmarshal([]byte(d), &ev) == nil {
					got <- ev
				}
			}
		}
	}()
	// Created after the stream opened (and after its poller found the
	// log's end).
	time.Sleep(2 * service.EventPoll)
	if _, err := te.admin.CreateCluster(context.Background(), engineapi.ClusterRequest{Name: "live"}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-got:
			if ev.Action == "cluster.add" && ev.ObjectName == "live" {
				return
			}
		case <-ctx.Done():
			t.Fatal("the cluster's event did not come on the stream")
		}
	}
}

func clientEventFilter(action string) client.EventFilter { return client.EventFilter{Action: action} }

// status sends a request and reads the answer's status, and its error
// body when it is an error (a stream's body is not read).
func (te *testEngine) status(t *testing.T, method, path, token string, body []byte) (int, api.ErrorBody) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(te.caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	req, err := http.NewRequest(method, te.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Errorf("%s %s: %d answer is not a JSON error body: %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, eb
}

// TestOverview: GET /api/v1/overview counts each cluster's hosts by status
// and VMs by state, lists the hosts of a small cluster and those that need
// attention (with their reasons), and the totals; a readonly user reads it.
func TestOverview(t *testing.T) {
	l := newPowerLab(t)
	te := l.te
	ctx := context.Background()
	l.startedOn(t, "up1", "")
	l.create(t, "down1", "power", "name: down1\narch: ppc64le\nmemory: {sizeMiB: 1024}\n", false, "")
	if _, err := te.admin.Maintenance(ctx, "x1", ""); err != nil {
		t.Fatal(err)
	}
	waitHost(t, te.admin, "x1", 10*time.Second, status("Maintenance"))
	// p8b stops answering: it needs attention.
	l.p8b.stop()
	waitHost(t, te.admin, "p8b", 20*time.Second, func(h engineapi.Host) bool { return h.Status != "Up" })
	addUser(t, te, "viewer", "readonly", "viewer's long password")
	b := newBrowser(t, te)
	b.signIn("viewer", "viewer's long password")
	st, body, _ := b.do("GET", "/api/v1/overview", nil)
	if st != 200 {
		t.Fatalf("overview: %d %s", st, body)
	}
	var o engineapi.Overview
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatal(err)
	}
	clusters := map[string]engineapi.OverviewCluster{}
	for _, c := range o.Clusters {
		clusters[c.Name] = c
	}
	p := clusters["power"]
	var lines []string
	for _, x := range p.HostLines {
		lines = append(lines, x.Name+" "+x.CPUType)
	}
	sort.Strings(lines)
	if diff := cmp.Diff([]string{"p8a IBM POWER8", "p8b IBM POWER8"}, lines); diff != "" {
		t.Errorf("the power cluster's host lines (-want +got):\n%s", diff)
	}
	if p.Hosts["Up"] != 1 || len(p.Hosts) != 2 || p.VMs["Up"] != 1 || p.VMs["Down"] != 1 || p.Arch != "ppc64" || p.CPUType != "IBM POWER8" {
		t.Errorf("the power cluster: %+v", p)
	}
	if x := clusters["x86"]; x.Hosts["Maintenance"] != 1 || len(x.VMs) != 0 {
		t.Errorf("the x86 cluster: %+v", x)
	}
	if e := clusters["empty"]; len(e.Hosts) != 0 || e.HostLines != nil {
		t.Errorf("the empty cluster: %+v", e)
	}
	if o.Hosts != 3 || o.HostsUp != 1 || o.VMs != 2 || o.VMsRunning != 1 || o.AttentionTotal != 1 || len(o.Attention) != 1 ||
		o.Attention[0].Name != "p8b" || o.Attention[0].Status == "Up" || o.Attention[0].StatusMessage == "" {
		t.Errorf("the overview's totals and attention: %+v", o)
	}
}
