package browser

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/engine"
	inlab "polyvirt/internal/lab"
	"polyvirt/internal/libvirtns"
)

// startMigrationLab runs the lab in this process (the lab package, as
// polyvirt up does) with a second host of this machine's architecture on
// a libvirtd of its own (lab.Options.SecondNative): x86_64-a and x86_64-b
// in one cluster, between which VMs migrate. Its domains and its own
// libvirtd are removed when the test ends.
func startMigrationLab(t *testing.T) (*lab, string, string) {
	t.Helper()
	requireLibvirt(t)
	if why := libvirtns.Require(); why != "" {
		missing(t, "a libvirt daemon of the lab's own for the second host: "+why)
	}
	sweepStaleLabs(t)
	dir := filepath.Join(t.TempDir(), "lab")
	l := &lab{t: t, dir: dir, prefix: "v" + randomSuffix()[:5] + "-", out: &lockedBuffer{}}
	registerLab(t, "lab-"+l.prefix)
	// The lab's own libvirtd and its domains outlive the lab: stopped after
	// it (cleanups run last registered first).
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, inlab.RecordFile)); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := inlab.Down(ctx, dir); err != nil {
			t.Errorf("stopping the lab's own libvirt daemons: %v", err)
		}
	})
	il, err := inlab.Start(context.Background(), inlab.Options{Dir: dir, Listen: "127.0.0.1:0", NamePrefix: l.prefix, HADelay: time.Hour,
		Executable: polyvirtBin(t), Notes: l.out, SecondNative: true,
		Monitor: engine.MonitorConfig{StatsInterval: time.Second, Failures: 3}})
	if err != nil {
		t.Fatalf("lab.Start: %v", err)
	}
	t.Cleanup(func() {
		il.Stop()
		if t.Failed() {
			for _, f := range []string{il.EngineLog(), il.HostLog(l.prefix + "x86_64-a"), il.HostLog(l.prefix + "x86_64-b")} {
				if b, err := os.ReadFile(f); err == nil {
					t.Logf("%s (end):\n%s", filepath.Base(f), tail(string(b), 6000))
				}
			}
		}
	})
	pw, err := os.ReadFile(il.PasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	l.url, l.password, l.api = il.EngineURL(), strings.TrimSpace(string(pw)), il.Client()
	l.env = []string{client.EnvConfig + "=" + filepath.Join(t.TempDir(), "none.json"), client.EnvEngine + "=" + il.EngineURL(),
		client.EnvTokenFile + "=" + il.TokenFile(), client.EnvCAFile + "=" + il.CAFile()}
	a, b := "", ""
	for _, h := range il.Hosts() {
		switch {
		case strings.HasSuffix(h.Name, "-a") && !strings.Contains(h.Name, "power"):
			a = h.Name
		case strings.HasSuffix(h.Name, "-b") && !strings.Contains(h.Name, "power") && il.Daemon(h.Name) != nil:
			b = h.Name
		}
	}
	if a == "" || b == "" {
		t.Fatalf("the lab has no second host of this machine's architecture: %+v", il.Hosts())
	}
	return l, a, b
}

// TestWebUIMigration drives a live migration from the web UI in Debian's
// Chromium, with two x86_64 hosts of the lab: the VM page's Migrate form
// (the destination chosen among its cluster's hosts, a bandwidth cap)
// shows the migration's progress while it runs, then its outcome with the
// total time and the downtime; the graphical console opened before the
// move follows the VM (the page notes "the VM moved to HOST" and opens the
// console again: its canvas is the agent's screenshot on the new host,
// not blank). A migration canceled from the page leaves the VM where it
// was. A readonly user's Migrate is disabled and refused. Host maintenance
// says it evacuates; refused while a VM pinned to the host cannot leave,
// the page names it with its reason, and the explicit choice to shut it
// down (the CLI's --stop-vms) switches the host to Maintenance.
func TestWebUIMigration(t *testing.T) {
	l, hostA, hostB := startMigrationLab(t)
	requireUIBuilt(t, l)
	ctx := context.Background()
	vm := l.name("mig")
	va, err := l.api.Host(ctx, hostA, false)
	if err != nil {
		t.Fatal(err)
	}
	// Debian's amd64 installer booting (its kernel's messages, then its
	// menu, on the VNC display): its memory in use (the installer's
	// unpacked initrd) takes a while to copy at a few MiB/s, long enough
	// to watch and to cancel.
	example, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "x86_64-debian-installer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	def := filepath.Join(t.TempDir(), "vm.yaml")
	if err := os.WriteFile(def, []byte(strings.NewReplacer("name: debian-installer-amd64", "name: "+vm).Replace(string(example))), 0o644); err != nil {
		t.Fatal(err)
	}
	l.cli("", "vm", "create", "--cluster", va.Cluster, "-f", def, "--host", hostA, "--start")
	v := waitVMState(t, l, vm, "Up", 3*time.Minute)
	if v.Host != hostA {
		t.Fatalf("the VM runs on %s; want %s", v.Host, hostA)
	}
	waitScreen(t, l, vm)
	// Unpinned: it may leave.
	unpin := ""
	if _, err := l.api.UpdateVM(ctx, vm, engineapi.VMUpdate{Host: &unpin}); err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t, l.url)
	var w watcher
	defer w.check(t)
	admin := b.newTab()
	w.watch(admin, "admin")
	admin.signIn("admin", l.password)
	con := b.newTab()
	w.watch(con, "console")
	con.signIn("admin", l.password)

	// The console, open before the move, shows the guest's screen.
	con.open("/ui/console.html#vm=" + vm + "&type=vnc")
	con.waitJS(time.Minute, "the console connected", `document.getElementById('console-status').textContent.startsWith('Connected')`)
	con.waitJS(time.Minute, "the first frame", `!!window.polyvirtConsole && window.polyvirtConsole.firstFrame !== null`)
	canvasMatches(t, l, con, vm, "before the move")

	t.Run("migrate with progress", func(t *testing.T) {
		admin := admin.on(t)
		admin.open("/#/vms/" + vm)
		admin.waitJS(30*time.Second, "the destination hosts", fmt.Sprintf(`[...document.querySelectorAll('#mig-host option')].some((o) => o.value === %s)`, jsString(hostB)))
		if opts := eval[[]string](admin, `[...document.querySelectorAll('#mig-host option')].map((o) => o.value)`); contains(opts, hostA) || !contains(opts, "") {
			t.Errorf("the destinations offered: %q; want the engine's choice and the other hosts, not %s", opts, hostA)
		}
		// What the page shows while it runs, every phase recorded.
		eval[bool](admin, `(() => { window.phasesSeen = []; new MutationObserver(() => {
			for (const e of document.querySelectorAll('.migration-phase')) if (!window.phasesSeen.includes(e.textContent)) window.phasesSeen.push(e.textContent);
			const p = document.querySelector('.migration progress'); if (p) window.progressSeen = Math.max(window.progressSeen || 0, p.value);
		}).observe(document.getElementById('main'), {subtree: true, childList: true, characterData: true}); return true; })()`)
		admin.do(10*time.Second, "choose the destination and a bandwidth cap",
			chromedp.SetValue(`#mig-host`, hostB), chromedp.SetValue(`#mig-bandwidth`, "8"), chromedp.Click(`button[data-route="POST /vms/{vm}/migrate"]`))
		admin.waitJS(time.Minute, "the progress", `window.progressSeen > 0`)
		admin.screenshot("vm-migrating")
		admin.waitJS(5*time.Minute, "the outcome on the page", `!!document.querySelector('.migration-outcome.migration-completed')`)
		out := eval[string](admin, `document.querySelector('.migration-outcome').textContent`)
		if !strings.Contains(out, "Migrated from "+hostA+" to "+hostB+" in ") || !strings.Contains(out, "downtime ") || strings.Contains(out, "not measured") {
			t.Errorf("the outcome: %q", out)
		}
		phases := eval[[]string](admin, `window.phasesSeen`)
		if !contains(phases, "copying-memory") {
			t.Errorf("the page did not show the migration copying memory; phases shown: %q", phases)
		}
		t.Logf("phases shown: %q, progress up to %v %%; %s", phases, eval[float64](admin, `window.progressSeen || 0`), out)
		admin.screenshot("vm-migrated")
		if p := eval[float64](admin, `window.progressSeen || 0`); p <= 0 {
			t.Errorf("the progress bar never moved")
		}
		if v := waitVMState(t, l, vm, "Up", time.Minute); v.Host != hostB {
			t.Errorf("the VM after the migration runs on %s; want %s", v.Host, hostB)
		}
	})

	t.Run("the console follows", func(t *testing.T) {
		con := con.on(t)
		con.waitJS(3*time.Minute, "the console open again on the new host", `window.polyvirtConsole.moves === 1 && window.polyvirtConsole.firstFrame !== null &&
			document.getElementById('console-status').textContent.startsWith('Connected')`)
		note := eval[string](con, `document.getElementById('console-moved').textContent`)
		if !strings.Contains(note, "The VM moved to "+hostB) {
			t.Errorf("the console's note: %q", note)
		}
		canvasMatches(t, l, con, vm, "after the move")
		con.screenshot("console-after-migration")
	})

	t.Run("cancel in flight", func(t *testing.T) {
		admin := admin.on(t)
		admin.open("/#/vms/" + vm)
		admin.waitJS(30*time.Second, "the form", fmt.Sprintf(`[...document.querySelectorAll('#mig-host option')].some((o) => o.value === %s)`, jsString(hostA)))
		admin.do(10*time.Second, "migrate at 1 MiB/s",
			chromedp.SetValue(`#mig-host`, hostA), chromedp.SetValue(`#mig-bandwidth`, "1"), chromedp.Click(`button[data-route="POST /vms/{vm}/migrate"]`))
		admin.waitJS(3*time.Minute, "the migration copying memory", `!!document.querySelector('.migration-phase') && document.querySelector('.migration-phase').textContent === 'copying-memory' &&
			!!document.querySelector('button[data-route="DELETE /vms/{vm}/migration"]:not([disabled])')`)
		w.allowConfirm("admin")
		admin.do(10*time.Second, "cancel", chromedp.Click(`button[data-route="DELETE /vms/{vm}/migration"]`))
		admin.waitJS(3*time.Minute, "the outcome", `!!document.querySelector('.migration-outcome.migration-canceled')`)
		if out := eval[string](admin, `document.querySelector('.migration-outcome').textContent`); !strings.Contains(out, "canceled") || !strings.Contains(out, "the VM runs on "+hostB) {
			t.Errorf("the outcome of the cancel: %q", out)
		}
		if v := waitVMState(t, l, vm, "Up", time.Minute); v.Host != hostB {
			t.Errorf("the VM after the cancel runs on %s; want %s", v.Host, hostB)
		}
	})

	t.Run("read-only user", func(t *testing.T) {
		l.cli("", "user", "add", "viewer", "--role", "readonly")
		l.cli("viewer's long password\n", "user", "passwd", "viewer")
		ro := b.newTab().on(t)
		w.watch(ro, "viewer")
		ro.signIn("viewer", "viewer's long password")
		ro.open("/#/vms/" + vm)
		ro.waitJS(30*time.Second, "the Migrate control", `!!document.querySelector('button[data-route="POST /vms/{vm}/migrate"]')`)
		if n := eval[int](ro, `[...document.querySelectorAll('#migration button, #migration select, #migration input')].filter((e) => !e.disabled).length`); n != 0 {
			t.Errorf("the readonly user's migration controls: %d enabled", n)
		}
		forged := eval[string](ro, fmt.Sprintf(`(async () => {
			const s = await (await fetch('/api/v1/session')).json();
			const r = await fetch('/api/v1/vms/%s/migrate', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrfToken}, body: '{}'});
			return r.status + ' ' + (await r.json()).error.code;
		})()`, vm))
		if forged != "403 PERMISSION_DENIED" {
			t.Errorf("a readonly user's forged migration: %s", forged)
		}
	})

	t.Run("maintenance refused, then with the VMs shut down", func(t *testing.T) {
		admin := admin.on(t)
		// Pinned to the host it runs on: it cannot leave.
		cur, err := l.api.VM(ctx, vm)
		if err != nil {
			t.Fatal(err)
		}
		pin := cur.Host
		if _, err := l.api.UpdateVM(ctx, vm, engineapi.VMUpdate{Host: &pin}); err != nil {
			t.Fatal(err)
		}
		admin.open("/#/hosts/" + pin)
		admin.waitJS(30*time.Second, "the host page", `!!document.querySelector('button[data-route="POST /hosts/{host}/maintenance"]:not([disabled])')`)
		if btn := eval[string](admin, `document.querySelector('button[data-route="POST /hosts/{host}/maintenance"]').textContent`); !strings.Contains(btn, "evacuate") {
			t.Errorf("the maintenance button says %q; want it to say it evacuates", btn)
		}
		w.allowConfirm("admin")
		admin.do(10*time.Second, "maintenance", chromedp.Click(`button[data-route="POST /hosts/{host}/maintenance"]`))
		admin.waitJS(time.Minute, "the refusal naming the VM", fmt.Sprintf(`!!document.querySelector('#maintenance-refusal:not([hidden]) li[data-vm=%s]')`, jsString(vm)))
		refusal := eval[string](admin, `document.getElementById('maintenance-refusal').textContent`)
		if !strings.Contains(refusal, "HOST_MAINTENANCE_VMS_CANNOT_MIGRATE") || !strings.Contains(refusal, "pinned") {
			t.Errorf("the refusal: %q", refusal)
		}
		admin.screenshot("host-maintenance-refused")
		if h, err := l.api.Host(ctx, pin, false); err != nil || h.Status != "Up" {
			t.Errorf("the host after the refusal: %s %v", h.Status, err)
		}
		w.allowConfirm("admin")
		admin.do(10*time.Second, "shut them down and switch", chromedp.Click(`#maintenance-refusal button`))
		admin.waitJS(3*time.Minute, "the host in Maintenance", `document.querySelector('main h1 .badge').textContent === 'Maintenance'`)
		if v := waitVMState(t, l, vm, "Down", time.Minute); v.State != "Down" {
			t.Errorf("the pinned VM: %s", v.State)
		}
	})
}

// canvasMatches waits until the console's canvas is the agent's
// screenshot of the VM (not blank).
func canvasMatches(t *testing.T, l *lab, tb *tab, vm, when string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		url := eval[string](tb, `document.querySelector('#screen canvas').toDataURL('image/png')`)
		c, err1 := decodePNG([]byte(url))
		png, err := l.api.Screenshot(context.Background(), vm)
		var s image.Image
		var err2 error
		if err == nil {
			s, err2 = decodePNG(png)
		} else {
			err2 = err
		}
		if err1 == nil && err2 == nil {
			d, err := screenDiff(c, s, 24)
			last = fmt.Sprintf("canvas %dx%d vs screenshot %dx%d: %.4f differ, blank %v (%v)", c.Bounds().Dx(), c.Bounds().Dy(), s.Bounds().Dx(), s.Bounds().Dy(), d, blank(c), err)
			if err == nil && d < 0.005 && !blank(c) {
				t.Logf("%s: %s", when, last)
				return
			}
		} else {
			last = fmt.Sprintf("%v %v", err1, err2)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the console's canvas is not the VM's screen: %s", when, last)
		}
		time.Sleep(time.Second)
	}
}

// waitScreen waits until the agent's screenshot of the VM is not blank
// (its kernel writes on the display).
func waitScreen(t *testing.T, l *lab, vm string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		png, err := l.api.Screenshot(context.Background(), vm)
		if err != nil {
			last = err
		} else if s, err := decodePNG(png); err != nil {
			t.Fatal(err)
		} else if !blank(s) {
			return
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("%s's screen stayed blank (%v)", vm, last)
}
