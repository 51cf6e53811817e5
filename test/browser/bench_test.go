package browser

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/engine"
	"polyvirt/test/hostsim"
)

// The web UI's benchmarks (docs/benchmarks.md). Run them alone:
//
//	go test ./test/browser -run XXX -bench . -benchtime 5x -timeout 30m
//
// Their figures are metrics (b.ReportMetric), never assertions on time.

// simEngine is an engine in this process with simulated hosts
// (test/hostsim) enrolled like real agents.
type simEngine struct {
	url      string
	api      *client.Client
	password string
}

// startSimEngine starts an engine (its web UI embedded) and n simulated
// hosts in cluster "sim" (CPU type IBM POWER8, the S822L and AC922
// profiles in turn), and waits until every host is Up.
func startSimEngine(b *testing.B, n int) *simEngine {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	res, err := engine.Init(ctx, engine.InitOptions{DataDir: dir, Name: "localhost", Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	url := "https://" + ln.Addr().String()
	e, err := engine.Open(ctx, engine.Config{DataDir: dir, URL: url, Monitor: engine.MonitorConfig{StatsInterval: 2 * time.Second},
		Logger: slog.New(slog.NewTextHandler(os_discard{}, nil))})
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.Serve(sctx, ln); close(done) }()
	b.Cleanup(func() {
		cancel()
		<-done
		e.Close()
	})
	ca, err := os.ReadFile(filepath.Join(dir, engine.FileCA))
	if err != nil {
		b.Fatal(err)
	}
	api, err := client.New(client.Options{Engine: url, Token: res.AdminToken, CAPEM: ca, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	s := &simEngine{url: url, api: api, password: "a benchmark's long password"}
	if err := api.SetPassword(ctx, "admin", s.password); err != nil {
		b.Fatal(err)
	}
	if _, err := api.CreateCluster(ctx, engineapi.ClusterRequest{Name: "sim", CPUType: "IBM POWER8"}); err != nil {
		b.Fatal(err)
	}
	sim := hostsim.New()
	b.Cleanup(sim.Close)
	profiles := []string{"s822l-power8e", "ac922-power9"}
	jobs := make(chan int)
	var failed atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := fmt.Sprintf("sim-%04d", i)
				h, err := sim.AddHost(name, profiles[i%len(profiles)])
				if err == nil {
					var jt engineapi.JoinToken
					if jt, err = api.AddHost(ctx, engineapi.HostRequest{Name: name, Address: h.Addr(), Cluster: "sim"}); err == nil {
						_, err = h.Enroll(ctx, url, jt.Token)
					}
				}
				if err != nil {
					failed.Store(fmt.Errorf("host %s: %w", name, err))
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		hs, err := api.Hosts(ctx, client.HostFilter{Statuses: []string{"Up"}})
		if err == nil && len(hs) >= n {
			return s
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d simulated hosts Up after 5 minutes (%v)", len(hs), n, err)
		}
		time.Sleep(time.Second)
	}
}

type os_discard struct{}

func (os_discard) Write(p []byte) (int, error) { return len(p), nil }

// transfers counts the bytes a tab receives (what the network carried,
// compressed, headers included), by URL.
type transfers struct {
	mu    sync.Mutex
	urls  map[network.RequestID]string
	bytes map[string]float64
}

// watchTransfers records a tab's transfers with its cache off.
func watchTransfers(b *testing.B, tb *tab) *transfers {
	b.Helper()
	tr := &transfers{urls: map[network.RequestID]string{}, bytes: map[string]float64{}}
	sent := chromedp.Events(tb.ctx, network.RequestWillBeSent)
	done := chromedp.Events(tb.ctx, network.LoadingFinished)
	if _, err := chromedp.Call(tb.ctx, network.Enable, network.EnableParams{}); err != nil {
		b.Fatal(err)
	}
	if _, err := chromedp.Call(tb.ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		b.Fatal(err)
	}
	go func() {
		for ev, err := range sent {
			if err != nil {
				return
			}
			tr.mu.Lock()
			tr.urls[ev.RequestID] = ev.Request.URL
			tr.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range done {
			if err != nil {
				return
			}
			tr.mu.Lock()
			tr.bytes[tr.urls[ev.RequestID]] += ev.EncodedDataLength
			tr.mu.Unlock()
		}
	}()
	return tr
}

// reset forgets what was counted.
func (tr *transfers) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.bytes = map[string]float64{}
}

// sum is the bytes of the URLs for which keep is true, and their count.
func (tr *transfers) sum(keep func(url string) bool) (float64, int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	total, n := 0.0, 0
	for u, v := range tr.bytes {
		if keep(u) {
			total += v
			n++
		}
	}
	return total, n
}

// openOverview loads the overview again (the tab is on it: a reload, as
// a user's; the tab's renderer is not started again) and waits until it is
// rendered and answers input: the marks' times (ms since the navigation
// started).
func openOverview(b *testing.B, tb *tab, base string) (data, rendered, interactive float64) {
	b.Helper()
	if !strings.HasSuffix(eval[string](tb, `location.href`), "#/overview") {
		tb.do(30*time.Second, "open the overview", chromedp.Navigate(base+"/#/overview"))
	}
	tb.do(30*time.Second, "load the overview", chromedp.Reload())
	tb.waitJS(60*time.Second, "the overview rendered", `performance.getEntriesByName('polyvirt:overview-interactive').length > 0`)
	marks := eval[map[string]float64](tb, `({data: performance.getEntriesByName('polyvirt:overview-data')[0].startTime,
		rendered: performance.getEntriesByName('polyvirt:overview-rendered')[0].startTime,
		interactive: performance.getEntriesByName('polyvirt:overview-interactive')[0].startTime})`)
	return marks["data"], marks["rendered"], marks["interactive"]
}

// BenchmarkFirstPage: the bytes the browser receives (compressed, cache
// off) to show the first page after signing in — the overview of 2 hosts:
// the UI's files (HTML, CSS, JavaScript) and the API's answers; the
// console's code is not among them.
func BenchmarkFirstPage(b *testing.B) {
	s := startSimEngine(b, 2)
	br := startBrowser(b, s.url)
	tb := br.newTab()
	tb.signIn("admin", s.password)
	tr := watchTransfers(b, tb)
	var assets, total, rendered float64
	var files int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr.reset()
		_, r, _ := openOverview(b, tb, s.url)
		rendered += r
		a, n := tr.sum(func(u string) bool { return !strings.Contains(u, "/api/") })
		t, _ := tr.sum(func(string) bool { return true })
		assets, total, files = assets+a, total+t, n
		if c, _ := tr.sum(func(u string) bool { return strings.Contains(u, "/vendor/") || strings.Contains(u, "/console/") }); c > 0 {
			b.Fatalf("the first page loaded console code (%.0f bytes)", c)
		}
	}
	b.StopTimer()
	b.ReportMetric(assets/float64(b.N)/1024, "KB-ui-files")
	b.ReportMetric(total/float64(b.N)/1024, "KB-total")
	b.ReportMetric(float64(files), "ui-files")
	b.ReportMetric(rendered/float64(b.N), "ms-rendered")
}

// BenchmarkOverview1000Hosts: the overview of 1,000 simulated hosts
// rendered, and answering input again, in Chromium (ms since the
// navigation started; the data read from the engine included: GET
// /overview's counts), then the time to open the cluster (its first 100
// host lines read with GET /hosts?cluster= and drawn).
func BenchmarkOverview1000Hosts(b *testing.B) {
	s := startSimEngine(b, 1000)
	br := startBrowser(b, s.url)
	tb := br.newTab()
	tb.signIn("admin", s.password)
	tr := watchTransfers(b, tb)
	var data, rendered, interactive, total, opened float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr.reset()
		d, r, in := openOverview(b, tb, s.url)
		data, rendered, interactive = data+d, rendered+r, interactive+in
		t, _ := tr.sum(func(string) bool { return true })
		total += t
		// The cluster opened: its first page of host lines read and
		// drawn (ms since the click).
		opened += eval[float64](tb, `(async () => {
			const t0 = performance.now();
			document.querySelector('article[data-cluster="sim"] .open-hosts').click();
			while (document.querySelectorAll('article[data-cluster="sim"] .hosts-list li').length < 100) await new Promise((r) => setTimeout(r, 5));
			await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
			return performance.now() - t0;
		})()`)
	}
	b.StopTimer()
	if got := eval[string](tb, `document.querySelector('article[data-cluster="sim"] .counts').textContent`); !strings.HasPrefix(got, "1000 hosts — 1000 Up") {
		b.Fatalf("the overview's sim cluster: %q; want 1000 hosts, 1000 Up", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('.hosts-list li').length`); n != 100 {
		b.Fatalf("the opened cluster shows %d host lines; want its first 100", n)
	}
	// Where the last load's time went, for the record (a hidden page
	// would hold its frames back: it must be visible).
	if v := eval[string](tb, `document.visibilityState`); v != "visible" {
		b.Fatalf("the benchmark's page is %s", v)
	}
	for _, l := range eval[[]string](tb, `performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/'))
		.map((e) => Math.round(e.startTime) + '–' + Math.round(e.responseEnd) + ' ms ' + e.name.replace(location.origin, '') + ' ' + e.encodedBodyLength + ' B')`) {
		b.Log(l)
	}
	b.ReportMetric(data/float64(b.N), "ms-data")
	b.ReportMetric(rendered/float64(b.N), "ms-rendered")
	b.ReportMetric(interactive/float64(b.N), "ms-interactive")
	b.ReportMetric(total/float64(b.N)/1024, "KB-total")
	b.ReportMetric(opened/float64(b.N), "ms-open-cluster")
}

// BenchmarkConsoleFirstFrame: the time from opening a VM's graphical
// console page to its first picture (ms since the page's navigation
// started), in polyvirt up with an x86_64 VM on the real libvirtd.
func BenchmarkConsoleFirstFrame(b *testing.B) {
	l := startLab(b)
	vm := l.name("bench")
	var native string
	cs, err := l.api.Clusters(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range cs {
		if c.Name != l.name("power") {
			native = c.Name
		}
	}
	l.cli("", "vm", "create", vm, "--cluster", native, "--memory", "256", "--cpus", "1", "--start")
	br := startBrowser(b, l.url)
	tb := br.newTab()
	tb.signIn("admin", l.password)
	tb.do(30*time.Second, "open the console", chromedp.Navigate(l.url+"/ui/console.html#vm="+vm+"&type=vnc"))
	tb.waitJS(60*time.Second, "the first frame", `!!window.polyvirtConsole && window.polyvirtConsole.firstFrameAt !== null`)
	var at, connected float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Opened again (a reload, as a user's: the tab's renderer is not
		// started again).
		tb.do(30*time.Second, "open the console", chromedp.Reload())
		tb.waitJS(30*time.Second, "the first frame", `!!window.polyvirtConsole && window.polyvirtConsole.firstFrameAt !== null`)
		v := eval[map[string]float64](tb, `({at: window.polyvirtConsole.firstFrameAt, since: window.polyvirtConsole.firstFrame})`)
		at += v["at"]
		connected += v["since"]
	}
	b.StopTimer()
	for _, l := range eval[[]string](tb, `performance.getEntriesByType('resource').map((e) => Math.round(e.startTime) + '–' + Math.round(e.responseEnd) + ' ms ' + e.name.replace(location.origin, '')).concat(['dcl ' + Math.round(performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd)])`) {
		b.Log(l)
	}
	b.ReportMetric(at/float64(b.N), "ms-first-frame")
	b.ReportMetric(connected/float64(b.N), "ms-ticket-to-frame")
}
