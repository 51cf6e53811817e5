package browser

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

var yes = true

// chromiumPath is Debian's Chromium (package chromium); nothing downloads
// a browser.
const chromiumPath = "/usr/bin/chromium"

// browser is one Chromium process for a test.
type browser struct {
	t     testing.TB
	alloc context.Context
	root  context.Context
	base  string
}

// startBrowser starts a headless Chromium with a fresh profile that
// accepts the engine's certificate (and no other that its CA does not
// sign) and stops it with the test.
func startBrowser(t testing.TB, engineURL string) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, "Debian's Chromium (package chromium)")
	}
	spki, err := serverSPKI(engineURL)
	if err != nil {
		t.Fatalf("the engine's certificate: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		// Trust the engine's own certificate, by its public key.
		chromedp.Flag("ignore-certificate-errors-spki-list", spki),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
		// Chromium keeps its singleton socket in a directory of its own
		// under TMPDIR, and a browser stopped by a signal leaves it: one
		// the test removes.
		chromedp.Env("TMPDIR="+t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return &browser{t: t, alloc: alloc, root: root, base: strings.TrimSuffix(engineURL, "/")}
}

// serverSPKI is the base64 SHA-256 of the public key of the certificate
// an HTTPS server presents (Chromium's --ignore-certificate-errors-spki-list).
func serverSPKI(u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	conn, err := tls.Dial("tcp", pu.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("%s sent no certificate", u)
	}
	var keys []string
	for _, c := range certs {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		keys = append(keys, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return strings.Join(keys, ","), nil
}

// tab is one browser context (its own cookies: one signed-in user) with
// one tab.
type tab struct {
	b   *browser
	t   testing.TB
	ctx context.Context
}

// on is the tab for another (sub)test: its failures fail that test.
func (tb *tab) on(t testing.TB) *tab {
	c := *tb
	c.t = t
	return &c
}

// newTab opens a tab in a new browser context (separate cookies).
func (b *browser) newTab() *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("new tab: %v", err)
	}
	return &tab{b: b, t: b.t, ctx: ctx}
}

// do runs actions with a time limit.
func (tb *tab) do(within time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, within)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates JavaScript (awaiting a promise) and decodes its value.
func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, func(p *runtime.EvaluateParams) { p.AwaitPromise = &yes }))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", clip(js), err)
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy.
func (tb *tab) waitJS(within time.Duration, what, js string) {
	tb.t.Helper()
	// An exception (an element not there yet) counts as false.
	expr := "(() => { try { return (" + js + "); } catch (e) { return false; } })()"
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		ctx, cancel := context.WithTimeout(tb.ctx, left+5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(left), chromedp.WithPollingInterval(100*time.Millisecond)))
		cancel()
		if err == nil {
			return
		}
		// The page navigated while it was polled (a form submitted, a
		// redirect): poll the new document.
		if navigated(err) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		tb.t.Fatalf("waiting for %s (%s): %v", what, clip(js), err)
	}
}

// navigated tells an error of a page that navigated while a script ran.
func navigated(err error) bool {
	for _, s := range []string{"Inspected target navigated or closed", "Execution context was destroyed", "Cannot find context with specified id"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// open navigates to a path of the engine.
func (tb *tab) open(path string) {
	tb.t.Helper()
	// From a blank page: a new document every time (a fragment alone
	// would not load one).
	tb.do(30*time.Second, "open "+path, chromedp.Navigate("about:blank"), chromedp.Navigate(tb.b.base+path))
}

// signIn signs in through the sign-in page with the keyboard alone.
func (tb *tab) signIn(user, password string) {
	tb.t.Helper()
	tb.open("/")
	tb.waitJS(time.Minute, "the sign-in form", `document.activeElement && document.activeElement.name === 'username'`)
	tb.do(20*time.Second, "type the user name and password",
		chromedp.KeyEvent(user+"\t"), chromedp.KeyEvent(password), chromedp.KeyEvent("\r"))
	tb.waitJS(time.Minute, "signed in", `!!document.querySelector('nav.primary') && document.querySelector('.who .user').textContent.includes(`+jsString(user)+`)`)
}

// screenshot saves a screenshot of the page under the screenshot
// directory ($POLYVIRT_SCREENSHOTS, else a directory under the temporary
// one) and returns its path.
func (tb *tab) screenshot(name string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := screenshotDir(tb.t)
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot: %s", path)
	return path
}

func screenshotDir(t testing.TB) string {
	dir := os.Getenv("POLYVIRT_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "polyvirt-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// jsString quotes a Go string as a JavaScript string literal.
func jsString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029 || r == '<' || r == '>':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}
