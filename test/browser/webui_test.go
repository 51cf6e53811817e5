package browser

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// xssProbe is a metadata value that runs a script if a page renders it as
// HTML.
const xssProbe = `<img src=x onerror=alert(1)>`

// watcher records what a tab must never do: open a JavaScript dialog (a
// script that should not run), or break the Content-Security-Policy.
type watcher struct {
	mu       sync.Mutex
	problems []string
	// confirms are the confirmation dialogs a tab may open next (a
	// control that asks before it acts), by the tab's name: accepted.
	confirms map[string]int
}

// allowConfirm lets a tab open one confirmation dialog, which is accepted.
func (w *watcher) allowConfirm(who string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.confirms == nil {
		w.confirms = map[string]int{}
	}
	w.confirms[who]++
}

// takeConfirm uses up a confirmation dialog allowConfirm allowed.
func (w *watcher) takeConfirm(who string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.confirms[who] == 0 {
		return false
	}
	w.confirms[who]--
	return true
}

func (w *watcher) add(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, s)
}

func (w *watcher) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Error(p)
	}
}

// watch closes every JavaScript dialog of a tab and records it, and
// records the console's Content-Security-Policy violations and uncaught
// exceptions.
func (w *watcher) watch(tb *tab, who string) {
	dialogs := chromedp.Events(tb.ctx, page.JavascriptDialogOpening)
	messages := chromedp.Console(tb.ctx)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			accept := ev.Type == page.DialogTypeConfirm && w.takeConfirm(who)
			if !accept {
				w.add(fmt.Sprintf("%s: a JavaScript %s dialog opened: %q", who, ev.Type, ev.Message))
			}
			_, _ = chromedp.Call(tb.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
		}
	}()
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if strings.Contains(m.Text, "Content Security Policy") || m.IsException() {
				w.add(fmt.Sprintf("%s: %s:%d %s", who, m.URL, m.Line+1, m.Text))
			}
		}
	}()
}

// TestWebUI drives the web UI in Debian's Chromium against polyvirt up on
// the real libvirtd: sign-in and the overview (power8-a as IBM POWER8 beside
// the x86_64 host); the POWER installer VM of the example created in the
// form with a SPICE display (the violation beside the display field, with
// its code), fixed, created and started; the same for an x86_64 installer;
// their serial consoles ("Linux version"); their graphical consoles (the
// noVNC canvas is the agent's screenshot of the same moment, not blank; a
// key typed in the browser moves the installer's menu); the XSS probe
// rendered as text; a readonly user's disabled controls and its forged
// requests refused, and a forged cross-site form refused; a phone's width;
// screenshots of every page.
func TestWebUI(t *testing.T) {
	requireLibvirt(t)
	requireFile(t, ppcKernel, "Debian's ppc64el installer (package debian-installer-12-netboot-ppc64el)")
	requireFile(t, amd64Kernel, "Debian's amd64 installer (package debian-installer-12-netboot-amd64)")
	l := startLab(t)
	requireUIBuilt(t, l)
	b := startBrowser(t, l.url)
	var w watcher
	defer w.check(t)
	ctx := context.Background()

	clusters, err := l.api.Clusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	powerCluster, nativeCluster := l.name("power"), ""
	for _, c := range clusters {
		if c.Name != powerCluster {
			nativeCluster = c.Name
		}
	}
	powerHost := l.name("power8-a")
	hosts, err := l.api.Hosts(ctx, client.HostFilter{})
	if err != nil {
		t.Fatal(err)
	}
	nativeHost := ""
	for _, h := range hosts {
		if h.Name != powerHost {
			nativeHost = h.Name
		}
	}

	admin := b.newTab()
	w.watch(admin, "admin")
	admin.signIn("admin", l.password)

	t.Run("overview", func(t *testing.T) {
		admin := admin.on(t)
		admin.open("/#/overview")
		admin.waitJS(30*time.Second, "the hosts on the overview", fmt.Sprintf(`!!document.querySelector('li[data-host=%s]') && !!document.querySelector('li[data-host=%s]')`,
			jsString(powerHost), jsString(nativeHost)))
		got := eval[string](admin, fmt.Sprintf(`document.querySelector('li[data-host=%s]').textContent`, jsString(powerHost)))
		if !strings.Contains(got, powerHost) || !strings.Contains(got, "IBM POWER8") || !strings.Contains(got, "Up") {
			t.Errorf("the POWER8 host on the overview: %q; want %s as IBM POWER8, Up", got, powerHost)
		}
		groups := eval[[]string](admin, `[...document.querySelectorAll('.arch-group h3')].map((e) => e.textContent)`)
		if !contains(groups, "ppc64 · IBM POWER8") || len(groups) != 2 {
			t.Errorf("the overview's groups by architecture and CPU type: %q", groups)
		}
		admin.waitJS(10*time.Second, "live events", `document.querySelector('.live-state').dataset.state === 'live'`)
		admin.screenshot("overview")
	})

	powerVM, x86VM := l.name("deb"), l.name("amd")
	t.Run("POWER VM in the form with SPICE, fixed", func(t *testing.T) {
		admin := admin.on(t)
		example, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "ppc64le-debian-installer.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		yaml := strings.Replace(strings.Replace(string(example), "type: vnc", "type: spice", 1), "name: debian-installer-ppc64el", "name: "+powerVM, 1)
		admin.open("/#/vms-new?cluster=" + powerCluster)
		admin.waitJS(20*time.Second, "the form's options", `document.querySelectorAll('#vm-display option').length > 0 && document.getElementById('vm-arch').value === 'ppc64le'`)
		// What the form offers on POWER: VNC, virtio or spapr-vlan NICs.
		displays := eval[[]string](admin, `[...document.querySelectorAll('#vm-display option')].map((o) => o.value)`)
		nics := eval[[]string](admin, `[...document.querySelectorAll('#vm-nic-model option')].map((o) => o.value)`)
		if contains(displays, "spice") || !contains(displays, "vnc") || !contains(nics, "spapr-vlan") || contains(nics, "e1000") {
			t.Errorf("POWER form: displays %q, NICs %q", displays, nics)
		}
		// Every control has a label.
		if unlabeled := eval[[]string](admin, `[...document.querySelectorAll('main input, main select, main textarea')].filter((e) => !e.labels.length && !e.getAttribute('aria-label')).map((e) => e.id || e.name)`); len(unlabeled) > 0 {
			t.Errorf("form controls without a label: %q", unlabeled)
		}
		admin.do(10*time.Second, "paste the definition", chromedp.SetValue(`#vm-yaml`, yaml), chromedp.Click(`#vm-yaml-load`))
		admin.waitJS(20*time.Second, "the definition in the form", `document.getElementById('vm-name').value === `+jsString(powerVM))
		admin.do(10*time.Second, "create", chromedp.Click(`#vm-create`))
		const spiceCode = "ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS"
		admin.waitJS(20*time.Second, "the SPICE violation beside the display field",
			`!document.getElementById('vm-display-error').hidden && document.getElementById('vm-display-error').textContent.includes(`+jsString(spiceCode)+`)`)
		if inv := eval[string](admin, `document.getElementById('vm-display').getAttribute('aria-invalid')`); inv != "true" {
			t.Errorf("the display field is not marked invalid: %q", inv)
		}
		admin.screenshot("vm-form-violation")
		if _, err := l.api.VM(ctx, powerVM); api.CodeOf(err) != api.CodeNotFound {
			t.Errorf("the refused VM exists: %v", err)
		}
		// Fix it with the keyboard: VNC in the display list.
		admin.do(10*time.Second, "choose VNC", chromedp.Focus(`#vm-display`), chromedp.KeyEvent("v"))
		admin.waitJS(5*time.Second, "VNC chosen", `document.getElementById('vm-display').value === 'vnc'`)
		admin.do(10*time.Second, "create and start", chromedp.Click(`#vm-create-start`))
		admin.waitJS(90*time.Second, "the VM's page", `location.hash === `+jsString("#/vms/"+powerVM)+` && !!document.querySelector('main h1')`)
		v := waitVMState(t, l, powerVM, "Up", 3*time.Minute)
		if v.Arch != "ppc64le" || v.Host != powerHost || !strings.Contains(string(v.Definition), `"type":"vnc"`) {
			t.Errorf("the POWER VM: arch %s on %s, %s", v.Arch, v.Host, v.Definition)
		}
		admin.screenshot("vm-power")
	})

	t.Run("x86_64 VM in the form", func(t *testing.T) {
		admin := admin.on(t)
		example, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "x86_64-debian-installer.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		yaml := strings.Replace(string(example), "name: debian-installer-amd64", "name: "+x86VM, 1)
		admin.open("/#/vms-new?cluster=" + nativeCluster)
		admin.waitJS(20*time.Second, "the form's options", `document.getElementById('vm-arch').value === 'x86_64' && document.querySelectorAll('#vm-display option').length > 0`)
		displays := eval[[]string](admin, `[...document.querySelectorAll('#vm-display option')].map((o) => o.value)`)
		if !contains(displays, "spice") || !contains(displays, "vnc") {
			t.Errorf("x86_64 form: displays %q", displays)
		}
		admin.do(10*time.Second, "paste the definition", chromedp.SetValue(`#vm-yaml`, yaml), chromedp.Click(`#vm-yaml-load`))
		admin.waitJS(20*time.Second, "the definition in the form", `document.getElementById('vm-name').value === `+jsString(x86VM))
		admin.screenshot("vm-form")
		admin.do(10*time.Second, "create and start", chromedp.Click(`#vm-create-start`))
		admin.waitJS(90*time.Second, "the VM's page", `location.hash === `+jsString("#/vms/"+x86VM))
		v := waitVMState(t, l, x86VM, "Up", 3*time.Minute)
		if v.Arch != "x86_64" || v.Host != nativeHost {
			t.Errorf("the x86_64 VM: arch %s on %s", v.Arch, v.Host)
		}
	})

	// The graphical consoles before the serial ones: a guest whose serial
	// console was opened and left can stall on its output (and its QEMU
	// then answers libvirt late) until the agent drains its consoles.
	for _, vm := range []string{x86VM, powerVM} {
		t.Run("graphical console of "+vm, func(t *testing.T) {
			graphicalConsole(t, l, admin.on(t), vm)
		})
	}

	for _, vm := range []string{powerVM, x86VM} {
		t.Run("serial console of "+vm, func(t *testing.T) {
			admin := admin.on(t)
			admin.open("/ui/console.html#vm=" + vm + "&type=serial")
			admin.waitJS(4*time.Minute, `"Linux version" in the serial console`,
				`!!window.polyvirtConsole && window.polyvirtConsole.transcript().includes('Linux version')`)
			admin.screenshot("serial-" + strings.TrimPrefix(vm, l.prefix))
		})
	}

	xssVM := l.name("xss")
	t.Run("XSS probe", func(t *testing.T) {
		admin := admin.on(t)
		name := xssVM
		file := filepath.Join(t.TempDir(), "xss.yaml")
		def := fmt.Sprintf("name: %s\nmemory: {sizeMiB: 256}\ndisplay: {type: none}\nmetadata:\n  note: %q\n", name, xssProbe)
		if err := os.WriteFile(file, []byte(def), 0o644); err != nil {
			t.Fatal(err)
		}
		l.cli("", "vm", "create", "--cluster", nativeCluster, "-f", file)
		admin.open("/#/vms/" + name)
		admin.waitJS(20*time.Second, "the metadata", `document.querySelectorAll('table.metadata td').length > 0`)
		cells := eval[[]string](admin, `[...document.querySelectorAll('table.metadata td')].map((e) => e.textContent)`)
		if !contains(cells, xssProbe) {
			t.Errorf("the metadata cells %q do not show %q as text", cells, xssProbe)
		}
		if n := eval[int](admin, `document.querySelectorAll('img[src="x"]').length`); n != 0 {
			t.Errorf("the probe became %d img elements", n)
		}
		if !strings.Contains(eval[string](admin, `document.querySelector('pre.definition').textContent`), xssProbe) {
			t.Errorf("the definition does not show the probe as text")
		}
		admin.screenshot("vm-xss-probe")
	})

	t.Run("read-only user", func(t *testing.T) {
		admin := admin.on(t)
		l.cli("", "user", "add", "viewer", "--role", "readonly")
		out := l.cli("viewer's long password\n", "user", "passwd", "viewer")
		if !strings.Contains(out, "the web UI password of viewer is set") {
			t.Errorf("user passwd: %s", out)
		}
		ro := b.newTab().on(t)
		w.watch(ro, "viewer")
		ro.signIn("viewer", "viewer's long password")
		ro.open("/#/vms")
		ro.waitJS(20*time.Second, "the VM list", `document.querySelectorAll('table.vms tbody tr button').length > 0`)
		res := eval[map[string]int](ro, `(() => {
			const b = [...document.querySelectorAll('main button[data-route]')].filter((e) => !e.dataset.route.startsWith('GET '));
			return {controls: b.length, enabled: b.filter((e) => !e.disabled).length,
				newVM: document.querySelectorAll('.toolbar a').length,
				consoles: document.querySelectorAll('main a[href*="type=vnc"]').length};
		})()`)
		if res["controls"] < 8 || res["enabled"] != 0 || res["newVM"] != 0 || res["consoles"] != 0 {
			t.Errorf("readonly VM list: %v; want every changing control disabled, no New VM link, no graphical console link", res)
		}
		ro.screenshot("readonly-vms")
		ro.open("/#/hosts/" + powerHost)
		ro.waitJS(20*time.Second, "the host page", `document.querySelectorAll('main button[data-route]').length > 0`)
		if n := eval[int](ro, `[...document.querySelectorAll('main button[data-route]')].filter((e) => !e.disabled).length`); n != 0 {
			t.Errorf("readonly host page: %d enabled controls", n)
		}
		// Forged requests from the signed-in page: refused.
		forged := eval[[]string](ro, fmt.Sprintf(`(async () => {
			const s = await (await fetch('/api/v1/session')).json();
			const call = async (hdrs) => {
				const r = await fetch('/api/v1/vms/%s/destroy', {method: 'POST', headers: Object.assign({'Content-Type': 'application/json'}, hdrs), body: '{}'});
				return r.status + ' ' + (await r.json()).error.code;
			};
			return [await call({'X-CSRF-Token': s.csrfToken}), await call({})];
		})()`, powerVM))
		if len(forged) != 2 || forged[0] != "403 PERMISSION_DENIED" || forged[1] != "403 CSRF_TOKEN_INVALID" {
			t.Errorf("forged requests of the readonly user: %q", forged)
		}
		// A form of another site posting to the engine: the session cookie
		// does not go (SameSite=Strict), and no CSRF token either.
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><body onload="document.forms[0].submit()"><form method="post" action="%s/api/v1/vms/%s/destroy"></form></body>`, l.url, powerVM)
		}))
		defer evil.Close()
		admin.open("/#/overview")
		admin.do(30*time.Second, "the other site's page", chromedp.Navigate(evil.URL))
		admin.waitJS(20*time.Second, "the engine's answer", `location.href.includes('/destroy') && document.body.textContent.includes('"code"')`)
		answer := eval[string](admin, `document.body.textContent`)
		if !strings.Contains(answer, "UNAUTHENTICATED") && !strings.Contains(answer, "CSRF_TOKEN_INVALID") {
			t.Errorf("a cross-site form: %s", answer)
		}
		for _, vm := range []string{powerVM, x86VM} {
			if v, err := l.api.VM(ctx, vm); err != nil || v.State != "Up" {
				t.Errorf("VM %s after the forged requests: %s %v", vm, v.State, err)
			}
		}
	})

	t.Run("phone width", func(t *testing.T) {
		phone := b.newTab().on(t)
		w.watch(phone, "phone")
		phone.do(10*time.Second, "a phone's screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		phone.signIn("admin", l.password)
		for _, p := range []string{"overview", "vms", "hosts/" + powerHost} {
			phone.open("/#/" + p)
			phone.waitJS(20*time.Second, "the page", `!!document.querySelector('main h1') && !document.querySelector('main .loading')`)
			if over := eval[int](phone, `document.documentElement.scrollWidth - window.innerWidth`); over > 1 {
				t.Errorf("%s is %d px wider than a phone's screen", p, over)
			}
			phone.screenshot("phone-" + strings.NewReplacer("/", "-", l.prefix, "").Replace(p))
		}
	})

	t.Run("hosts pages", func(t *testing.T) {
		admin := admin.on(t)
		admin.open("/#/hosts")
		admin.waitJS(20*time.Second, "the host list", fmt.Sprintf(`document.querySelectorAll('main table tbody tr').length === %d`, len(hosts)))
		admin.screenshot("hosts")
		admin.open("/#/hosts/" + powerHost)
		admin.waitJS(20*time.Second, "the POWER host", `document.querySelector('dl.facts') && document.querySelector('dl.facts').textContent.includes('8247-22L')`)
		facts := eval[string](admin, `document.querySelector('dl.facts').textContent`)
		for _, want := range []string{"IBM POWER8", "PowerNV", "SMT off", "IBM Power System S822L"} {
			if !strings.Contains(facts, want) {
				t.Errorf("the POWER host's facts lack %q: %s", want, facts)
			}
		}
		marks := eval[string](admin, `document.querySelector('.marks').textContent`)
		if !strings.Contains(marks, "fake KVM") || !strings.Contains(marks, "TCG") {
			t.Errorf("the POWER host's marks: %q", marks)
		}
		admin.waitJS(20*time.Second, "a statistics chart", `document.querySelectorAll('.charts svg polyline, .charts svg circle').length > 0`)
		admin.screenshot("host-power8")
		admin.open("/#/vms")
		admin.waitJS(20*time.Second, "the VM list", `document.querySelectorAll('table.vms tbody tr').length === 3`)
		admin.waitJS(60*time.Second, "a screen thumbnail", `[...document.querySelectorAll('table.vms img.thumb')].some((i) => i.complete && i.naturalWidth > 0)`)
		admin.screenshot("vms")
		// The pages fit a 1280×800 window (the browser's) without scrolling
		// sideways.
		for _, p := range []string{"overview", "hosts", "hosts/" + powerHost, "vms", "vms/" + powerVM, "vms-new?cluster=" + powerCluster} {
			admin.open("/#/" + p)
			admin.waitJS(20*time.Second, "the page", `!!document.querySelector('main h1') && !document.querySelector('main .loading')`)
			if w, over := eval[int](admin, `window.innerWidth`), eval[int](admin, `document.documentElement.scrollWidth - window.innerWidth`); w < 1260 || w > 1280 || over > 1 {
				t.Errorf("%s in a %d px wide window is %d px wider", p, w, over)
			}
		}
	})

	t.Run("actions", func(t *testing.T) {
		admin := admin.on(t)
		// click clicks a page's control of an API route once it is enabled.
		// (The page draws itself again on the engine's events: a button
		// found may be replaced before the click lands; it is found again.)
		click := func(route string) {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(admin.ctx, time.Until(deadline))
				_, err := chromedp.Run(ctx, chromedp.Click(chromedp.CSS(`main button[data-route="`+route+`"]:not([disabled])`)))
				cancel()
				if err == nil {
					return
				}
				if !strings.Contains(err.Error(), "Could not find node") && !strings.Contains(err.Error(), "not attached") || time.Now().After(deadline) {
					t.Fatalf("click %s: %v", route, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		// A VM started, powered off and deleted from its page.
		admin.open("/#/vms/" + xssVM)
		click("POST /vms/{vm}/start")
		waitVMState(t, l, xssVM, "Up", 3*time.Minute)
		admin.waitJS(30*time.Second, "the page showing Up", `document.querySelector('main h1 .badge').textContent === 'Up'`)
		w.allowConfirm("admin")
		click("POST /vms/{vm}/destroy")
		waitVMState(t, l, xssVM, "Down", 3*time.Minute)
		admin.waitJS(30*time.Second, "the page showing Down", `document.querySelector('main h1 .badge').textContent === 'Down'`)
		for _, vm := range []string{xssVM, powerVM} {
			admin.open("/#/vms/" + vm)
			w.allowConfirm("admin")
			click("DELETE /vms/{vm}")
			admin.waitJS(2*time.Minute, "the VM gone", `document.querySelector('main').textContent.includes('This VM does not exist')`)
			if _, err := l.api.VM(ctx, vm); api.CodeOf(err) != api.CodeNotFound {
				t.Errorf("VM %s after Delete: %v", vm, err)
			}
		}
		// The host without VMs: Maintenance, then Activate.
		admin.open("/#/hosts/" + powerHost)
		w.allowConfirm("admin")
		click("POST /hosts/{host}/maintenance")
		admin.waitJS(2*time.Minute, "the host in Maintenance", `document.querySelector('main h1 .badge').textContent === 'Maintenance'`)
		admin.screenshot("host-maintenance")
		click("POST /hosts/{host}/activate")
		admin.waitJS(2*time.Minute, "the host Up again", `document.querySelector('main h1 .badge').textContent === 'Up'`)
		if h, err := l.api.Host(ctx, powerHost, false); err != nil || h.Status != "Up" {
			t.Errorf("host %s after Activate: %s %v", powerHost, h.Status, err)
		}
	})

	t.Run("firmware rollout", func(t *testing.T) {
		admin := admin.on(t)
		image := filepath.Join(moduleRoot(t), "examples", "firmware", "01SV810_133_081.img")
		admin.open("/#/clusters/" + powerCluster)
		admin.waitJS(30*time.Second, "the cluster's page", `!!document.getElementById('ro-image') && document.getElementById('rollout').textContent.includes('No firmware rollout yet')`)
		if unlabeled := eval[[]string](admin, `[...document.querySelectorAll('main input, main select')].filter((e) => !e.labels.length && !e.getAttribute('aria-label')).map((e) => e.id)`); len(unlabeled) > 0 {
			t.Errorf("the rollout form's controls without a label: %q", unlabeled)
		}
		// Started from the page: the image uploaded, each host waiting for
		// its commit (it cannot end by itself meanwhile).
		w.allowConfirm("admin")
		admin.do(20*time.Second, "start a rollout",
			chromedp.Click(`.rollout-start summary`), chromedp.SetUploadFiles(`#ro-image`, []string{image}), chromedp.SetValue(`#ro-commit`, "manual"),
			chromedp.SetValue(`#ro-reason`, "browser test"), chromedp.Click(`button[data-route="POST /clusters/{cluster}/firmware/rollout"]`))
		admin.waitJS(2*time.Minute, "the rollout running, its hosts listed", fmt.Sprintf(`document.querySelector('.rollout-state') && document.querySelector('.rollout-state').textContent === 'running' &&
			[...document.querySelectorAll('table.rollout-hosts tbody th')].some((e) => e.textContent === %s)`, jsString(powerHost)))
		admin.screenshot("cluster-rollout")
		step := func(route, state string, within time.Duration) {
			t.Helper()
			// The panel draws itself again as the rollout goes on: a button
			// found may be replaced before the click lands; it is found again.
			deadline := time.Now().Add(time.Minute)
			for {
				cctx, cancel := context.WithTimeout(admin.ctx, time.Until(deadline))
				_, err := chromedp.Run(cctx, chromedp.Click(chromedp.CSS(`button[data-route="`+route+`"]:not([disabled])`)))
				cancel()
				if err == nil {
					break
				}
				if !strings.Contains(err.Error(), "Could not find node") && !strings.Contains(err.Error(), "not attached") || time.Now().After(deadline) {
					t.Fatalf("click %s: %v", route, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			admin.waitJS(within, "the rollout "+state, `document.querySelector('.rollout-state').textContent === `+jsString(state))
			if r, err := l.api.Rollout(ctx, powerCluster); err != nil || r.State != state {
				t.Errorf("the rollout after %s: %s %v", route, r.State, err)
			}
		}
		step("POST /clusters/{cluster}/firmware/rollout/pause", "paused", time.Minute)
		step("POST /clusters/{cluster}/firmware/rollout/resume", "running", time.Minute)
		// Aborted once the host on its way is back on its old level.
		w.allowConfirm("admin")
		step("POST /clusters/{cluster}/firmware/rollout/abort", "aborted", 10*time.Minute)
		if r, err := l.api.Rollout(ctx, powerCluster); err != nil || r.ImageName != filepath.Base(image) || r.Reason != "browser test" || r.Commit != "manual" {
			t.Errorf("the rollout started from the page: %+v %v", r, err)
		}
		admin.screenshot("cluster-rollout-aborted")
	})
}

// graphicalConsole opens a VM's graphical console and checks that its
// canvas is the agent's screenshot of the same moment (the installer's
// menu, not blank), then that a key typed in the browser moves the menu.
func graphicalConsole(t *testing.T, l *lab, admin *tab, vm string) {
	ctx := context.Background()
	// shot is the agent's screenshot of the VM. On a busy shared machine
	// QEMU under TCG answers its monitor late (libvirt's domain job lock
	// times out) and libvirtd drops connections the agent makes again:
	// a failed screenshot is tried again for a while.
	var shotErr error
	shot := func() image.Image {
		t.Helper()
		until := time.Now().Add(3 * time.Minute)
		for {
			png, err := l.api.Screenshot(ctx, vm)
			if err == nil {
				img, err := decodePNG(png)
				if err != nil {
					t.Fatalf("the screenshot of %s: %v", vm, err)
				}
				return img
			}
			shotErr = err
			if time.Now().After(until) {
				t.Fatalf("the agent's screenshot of %s: %v", vm, err)
			}
			t.Logf("the agent's screenshot of %s (trying again): %v", vm, err)
			time.Sleep(5 * time.Second)
		}
	}
	// The installer's menu first, and settled: the same on two screenshots
	// 3 s apart (TCG boots slowly, and on a loaded machine the installer
	// draws its screen slowly).
	deadline := time.Now().Add(8 * time.Minute)
	for prev := image.Image(nil); ; {
		s := shot()
		if installerMenu(s) && prev != nil {
			if d, err := screenDiff(prev, s, 24); err == nil && d == 0 {
				break
			}
		}
		if !installerMenu(s) {
			s = nil
		}
		prev = s
		if time.Now().After(deadline) {
			t.Fatalf("the installer's menu did not show on %s's screen (%v)", vm, shotErr)
		}
		time.Sleep(3 * time.Second)
	}
	admin.open("/ui/console.html#vm=" + vm + "&type=vnc")
	admin.waitJS(30*time.Second, "the console connected", `document.getElementById('console-status').textContent.startsWith('Connected')`)
	canvas := func() image.Image {
		t.Helper()
		url := eval[string](admin, `document.querySelector('#screen canvas').toDataURL('image/png')`)
		img, err := decodePNG([]byte(url))
		if err != nil {
			t.Fatalf("the canvas: %v", err)
		}
		return img
	}
	admin.waitJS(20*time.Second, "the first frame", `!!window.polyvirtConsole && window.polyvirtConsole.firstFrame !== null`)
	// The same moment: the canvas before and after the agent's
	// screenshot agree with each other and with it.
	var before image.Image
	var last string
	// (A moment the installer draws its screen again is tried again: the
	// picture both show must be the menu.)
	for i := 0; i < 40 && before == nil; i++ {
		c1 := canvas()
		s := shot()
		c2 := canvas()
		stable, err1 := screenDiff(c1, c2, 24)
		d, err2 := screenDiff(c1, s, 24)
		last = fmt.Sprintf("canvas %dx%d, screenshot %dx%d, canvas changed %.4f, canvas vs screenshot %.4f, blank %v, the menu %v (%v %v)",
			c1.Bounds().Dx(), c1.Bounds().Dy(), s.Bounds().Dx(), s.Bounds().Dy(), stable, d, blank(c1), installerMenu(c1), err1, err2)
		if err1 == nil && err2 == nil && stable == 0 && d < 0.005 && !blank(c1) && installerMenu(c1) {
			before = s
			break
		}
		time.Sleep(time.Second)
	}
	if before == nil {
		t.Fatalf("the noVNC canvas never matched the agent's screenshot of the installer's menu: %s", last)
	}
	t.Logf("%s: %s", vm, last)
	admin.screenshot("console-" + strings.TrimPrefix(vm, l.prefix))
	// A key: the menu's selection moves down.
	admin.do(10*time.Second, "press Down in the console",
		chromedp.Evaluate[chromedp.Void](`window.polyvirtConsole.rfb.focus()`), chromedp.KeyEvent(kb.ArrowDown))
	deadline = time.Now().Add(2 * time.Minute)
	for {
		after := shot()
		d, err := screenDiff(before, after, 24)
		if err == nil && d > 0.001 && installerMenu(after) {
			t.Logf("%s: after Down, %.4f of the screen changed", vm, d)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key typed in the browser did not reach %s: the screen changed %.4f (%v)", vm, d, err)
		}
		time.Sleep(2 * time.Second)
	}
	// The browser shows the moved menu too: its canvas changed and is the
	// agent's screenshot again.
	deadline = time.Now().Add(time.Minute)
	for {
		c := canvas()
		moved, err1 := screenDiff(before, c, 24)
		d, err2 := screenDiff(c, shot(), 24)
		if err1 == nil && err2 == nil && moved > 0.001 && d < 0.005 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the canvas does not show the moved menu: changed %.4f, canvas vs screenshot %.4f (%v %v)", moved, d, err1, err2)
		}
		time.Sleep(time.Second)
	}
	admin.screenshot("console-" + strings.TrimPrefix(vm, l.prefix) + "-after-down")
}

// waitVMState waits for a VM's state.
func waitVMState(t *testing.T, l *lab, name, state string, within time.Duration) engineapi.VM {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, err := l.api.VM(context.Background(), name)
		if err == nil && v.State == state {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM %s is not %s after %s: %s %v", name, state, within, v.State, err)
		}
		time.Sleep(time.Second)
	}
}

// requireUIBuilt fails when the engine serves the page saying the UI is not
// built.
func requireUIBuilt(t *testing.T, l *lab) {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(l.dir, "engine", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(l.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `<script type="module"`) {
		t.Fatalf("the engine's binary has no web UI (%d): run scripts/build-ui.sh, then build polyvirt again (scripts/test.sh does both)", resp.StatusCode)
	}
	for h, want := range map[string]string{"Content-Security-Policy": "script-src 'self';", "X-Content-Type-Options": "nosniff"} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("the page's %s is %q; want %q in it", h, resp.Header.Get(h), want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
