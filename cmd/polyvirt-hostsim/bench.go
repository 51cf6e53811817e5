package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// Result is what a benchmark window measured.
type Result struct {
	Load          load    `json:"load"`
	CallsPerS     float64 `json:"apiCallsPerSecond"`
	Hosts         int     `json:"hosts"`
	EnrollSeconds float64 `json:"enrollSeconds"`
	AllUpSeconds  float64 `json:"allUpSeconds"`
	WindowSeconds float64 `json:"windowSeconds"`
	// Load1 is the machine's load average at the end of the window (the
	// other processes sharing it).
	Load1          float64 `json:"loadAverage1m"`
	EngineCPUCores float64 `json:"engineCpuCores"`
	// EngineRunDelay is how long the engine's threads waited on a run
	// queue for a core, per second of the window (seconds per second, from
	// their /proc schedstat): what the other processes and its own other
	// threads cost it.
	EngineRunDelay  float64 `json:"engineRunDelay"`
	EngineRSSMiB    float64 `json:"engineRssMiB"`
	EngineMaxRSSMiB float64 `json:"engineMaxRssMiB"`
	EnginePeakMiB   float64 `json:"enginePeakRssMiB"`
	// PerHostKiB is the engine's RSS (at its highest in the window) per
	// host.
	PerHostKiB  float64 `json:"perHostKiB"`
	DBCPUCores  float64 `json:"dbCpuCores,omitempty"`
	SimCPUCores float64 `json:"simCpuCores"`
	// From the engine's metrics over the window.
	PollsPerSecond   float64 `json:"statsPollsPerSecond"`
	CapsPerSecond    float64 `json:"capabilitiesPollsPerSecond"`
	PushedPerSecond  float64 `json:"statsPushedPerSecond"`
	StatsAgeP50      float64 `json:"statsAgeP50Seconds"`
	StatsAgeP99      float64 `json:"statsAgeP99Seconds"`
	HeapInuseMiB     float64 `json:"engineHeapInuseMiB"`
	StackInuseMiB    float64 `json:"engineStackInuseMiB"`
	Goroutines       float64 `json:"engineGoroutines"`
	GoroutinesPerHst float64 `json:"engineGoroutinesPerHost"`
	// LastSeenP99Age and LastSeenMaxAge are how old the hosts' last
	// contact was in the API, sampled through the window (the monitoring
	// keeping up).
	LastSeenP99Age float64 `json:"lastSeenP99AgeSeconds"`
	LastSeenMaxAge float64 `json:"lastSeenMaxAgeSeconds"`
	HostsUp        int     `json:"hostsUp"`
	// ListAll is how long reading every host took, page by page (the
	// last-seen sampling's reads, every 5 s through the window).
	ListAll   *Latencies            `json:"listAllPages"`
	API       map[string]*Latencies `json:"api"`
	APIAll    *Latencies            `json:"apiAll"`
	APIErrors map[string]int        `json:"apiErrors,omitempty"`
	// With the engine's gctrace (--engine-gc-log): the calls slower than
	// slowCall, those of them that overlapped one of the engine's garbage
	// collections, and the collections of the window with the wall time
	// they took of it.
	SlowCalls     int     `json:"slowCalls,omitempty"`
	SlowCallsInGC int     `json:"slowCallsInGC,omitempty"`
	GCCycles      int     `json:"engineGCCycles,omitempty"`
	GCSeconds     float64 `json:"engineGCSeconds,omitempty"`
}

// Latencies summarizes call durations in milliseconds.
type Latencies struct {
	Calls int     `json:"calls"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
}

func summarize(d []time.Duration) *Latencies {
	l := &Latencies{Calls: len(d)}
	if len(d) == 0 {
		return l
	}
	slices.Sort(d)
	l.P50, l.P95, l.P99 = quantile(d, 0.50)*1000, quantile(d, 0.95)*1000, quantile(d, 0.99)*1000
	l.Max = d[len(d)-1].Seconds() * 1000
	return l
}

// bench measures the engine.
type bench struct {
	o     options
	eng   *client.Client
	token string
	ca    []byte
	names []string
}

// httpClient is an HTTPS client trusting the engine CA.
func (b *bench) httpClient(timeout time.Duration) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.ca)
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// engineMetrics reads the engine's GET /metrics.
func (b *bench) engineMetrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(b.o.engine, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.httpClient(30 * time.Second).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// sample is a metric's value (a counter, a gauge) with labels.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// histogramQuantile is the q-quantile of a histogram's observations
// between two scrapes (linear within a bucket, as PromQL's).
func histogramQuantile(before, after map[string]*dto.MetricFamily, name string, q float64) float64 {
	buckets := func(mfs map[string]*dto.MetricFamily) ([]float64, []float64) {
		mf := mfs[name]
		if mf == nil || len(mf.Metric) == 0 || mf.Metric[0].Histogram == nil {
			return nil, nil
		}
		var ub, n []float64
		for _, bk := range mf.Metric[0].Histogram.Bucket {
			ub = append(ub, bk.GetUpperBound())
			n = append(n, float64(bk.GetCumulativeCount()))
		}
		ub = append(ub, math.Inf(1))
		n = append(n, float64(mf.Metric[0].Histogram.GetSampleCount()))
		return ub, n
	}
	ub, n1 := buckets(after)
	_, n0 := buckets(before)
	if len(ub) == 0 {
		return 0
	}
	if len(n0) != len(n1) {
		n0 = make([]float64, len(n1))
	}
	total := n1[len(n1)-1] - n0[len(n0)-1]
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, prev := 0.0, 0.0
	for i := range ub {
		c := n1[i] - n0[i]
		if c >= rank {
			if math.IsInf(ub[i], 1) {
				return lower
			}
			return lower + (ub[i]-lower)*(rank-prev)/math.Max(c-prev, 1e-9)
		}
		lower, prev = ub[i], c
	}
	return lower
}

// profile takes a profile of the engine (pprof's path) into the profile
// directory.
func (b *bench) profile(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+b.o.pprof+path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return writeFile(b.o.profileDir, file, data)
}

// measure runs one measurement window under its API load.
func (b *bench) measure(ctx context.Context, res *Result) error {
	o := b.o
	if o.pprof != "" {
		// The heap at the window's start: with the one at its end
		// (go tool pprof -base), what the window allocated.
		if err := b.profile(ctx, "/debug/pprof/heap", res.Load.String()+"-heap-start.pprof"); err != nil {
			return err
		}
	}
	m0, err := b.engineMetrics(ctx)
	if err != nil {
		return err
	}
	engCPU0, _ := procCPU(o.enginePID)
	engWait0 := threadsRunDelay(o.enginePID)
	simCPU0 := namedCPU("polyvirt-hostsim")
	dbCPU0 := namedCPU(o.dbProcess)
	t0 := time.Now()

	var mu sync.Mutex
	var spans []callSpan
	var ages, listAll []time.Duration
	var maxRSS float64
	wctx, cancel := context.WithTimeout(ctx, o.bench)
	defer cancel()
	var wg sync.WaitGroup
	var profErr error
	if o.pprof != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secs := int(o.bench.Seconds()) - 2
			profErr = b.profile(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(secs, 1)), res.Load.String()+"-cpu.pprof")
		}()
	}
	var traceErr error
	if o.pprof != "" && o.trace > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secs := max(int(o.trace.Seconds()), 1)
			select {
			case <-wctx.Done():
				return
			case <-time.After((o.bench - time.Duration(secs)*time.Second) / 2):
			}
			traceErr = b.profile(ctx, fmt.Sprintf("/debug/pprof/trace?seconds=%d", secs), res.Load.String()+"-trace.out")
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			if r, err := procRSS(o.enginePID, "VmRSS"); err == nil {
				mu.Lock()
				maxRSS = max(maxRSS, r)
				mu.Unlock()
			}
			select {
			case <-wctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	// The hosts' last contact as the API shows it, every few seconds.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-wctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			t := time.Now()
			_, got, err := b.readAll(wctx, o.cluster)
			if err != nil {
				continue
			}
			mu.Lock()
			listAll = append(listAll, time.Since(t))
			ages = append(ages, got...)
			mu.Unlock()
		}
	}()
	type call struct {
		name   string
		weight int
		do     func() error
	}
	// The answers are read whole but not decoded: the latency is the
	// engine's, not this client's JSON decoding.
	get := func(path string, q url.Values) error {
		var raw json.RawMessage
		return b.eng.Do(wctx, "GET", path, q, nil, &raw)
	}
	calls := []call{
		{"GET /hosts/{host}", 40, func() error { return get("/hosts/"+pick(b.names), nil) }},
		{"GET /clusters", 20, func() error { return get("/clusters", nil) }},
		{"GET /events?limit=50", 20, func() error { return get("/events", url.Values{"limit": {"50"}}) }},
		{"GET /hosts?status=NonResponsive,NonOperational", 15, func() error {
			return get("/hosts", url.Values{"status": {"NonResponsive,NonOperational"}})
		}},
		// The first page of the whole list (its default size, 500 hosts);
		// reading every page is measured apart (ListAll).
		{"GET /hosts (first page)", 5, func() error { return get("/hosts", nil) }},
	}
	total := 0
	for _, c := range calls {
		total += c.weight
	}
	// one makes a call picked by weight; its latency counts from start
	// (when it was due, for a fixed rate: the time it waited for a free
	// slot is latency too).
	one := func(start time.Time) {
		r := rand.N(total)
		var c call
		for _, c = range calls {
			if r < c.weight {
				break
			}
			r -= c.weight
		}
		err := c.do()
		d := time.Since(start)
		if wctx.Err() != nil {
			return
		}
		mu.Lock()
		if err != nil {
			res.APIErrors[c.name+": "+err.Error()]++
		} else {
			spans = append(spans, callSpan{start: start, took: d, name: c.name})
		}
		mu.Unlock()
	}
	for w := 0; w < res.Load.Clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				one(time.Now())
				time.Sleep(res.Load.Pause)
			}
		}()
	}
	if res.Load.Rate > 0 {
		// Open loop: a call is due every 1/Rate whatever the answers
		// take, at most maxInFlight at once.
		wg.Add(1)
		go func() {
			defer wg.Done()
			every := time.Duration(float64(time.Second) / res.Load.Rate)
			slots := make(chan struct{}, maxInFlight)
			var calls sync.WaitGroup
			defer calls.Wait()
			t := time.NewTimer(0)
			defer t.Stop()
			for due := time.Now(); ; due = due.Add(every) {
				t.Reset(time.Until(due))
				select {
				case <-wctx.Done():
					return
				case <-t.C:
				}
				select {
				case <-wctx.Done():
					return
				case slots <- struct{}{}:
				}
				calls.Add(1)
				go func(due time.Time) {
					defer calls.Done()
					defer func() { <-slots }()
					one(due)
				}(due)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(profErr, traceErr); err != nil {
		return err
	}
	t1 := time.Now()
	window := t1.Sub(t0).Seconds()
	res.WindowSeconds = window
	if o.gcLog != "" {
		if err := b.gcShare(res, spans, t0, t1); err != nil {
			return err
		}
	}
	if o.pprof != "" {
		// Each call of the window, for lining them up with the engine's
		// log or trace: when it was due (Unix ms), how long it took (ms),
		// what it was.
		var calls strings.Builder
		for _, c := range spans {
			fmt.Fprintf(&calls, "%d\t%.1f\t%s\n", c.start.UnixMilli(), float64(c.took)/float64(time.Millisecond), c.name)
		}
		if err := writeFile(o.profileDir, res.Load.String()+"-calls.tsv", []byte(calls.String())); err != nil {
			return err
		}
	}
	engCPU1, _ := procCPU(o.enginePID)
	res.EngineRunDelay = cpuSpent(engWait0, threadsRunDelay(o.enginePID)) / window
	simCPU1 := namedCPU("polyvirt-hostsim")
	dbCPU1 := namedCPU(o.dbProcess)
	res.EngineCPUCores = (engCPU1 - engCPU0) / window
	res.SimCPUCores = cpuSpent(simCPU0, simCPU1) / window
	if o.dbProcess != "" {
		res.DBCPUCores = cpuSpent(dbCPU0, dbCPU1) / window
	}
	res.EngineMaxRSSMiB = maxRSS
	res.EngineRSSMiB, _ = procRSS(o.enginePID, "VmRSS")
	res.EnginePeakMiB, _ = procRSS(o.enginePID, "VmHWM")
	res.PerHostKiB = maxRSS * 1024 / float64(max(res.Hosts, 1))
	res.Load1 = loadAverage()
	m1, err := b.engineMetrics(ctx)
	if err != nil {
		return err
	}
	rate := func(name string, labels ...string) float64 {
		return (sample(m1, name, labels...) - sample(m0, name, labels...)) / window
	}
	res.PollsPerSecond = rate("polyvirt_agent_polls_total", "kind", "stats")
	res.CapsPerSecond = rate("polyvirt_agent_polls_total", "kind", "capabilities")
	res.PushedPerSecond = rate("polyvirt_agent_stats_pushed_total")
	res.StatsAgeP50 = histogramQuantile(m0, m1, "polyvirt_host_stats_age_seconds", 0.5)
	res.StatsAgeP99 = histogramQuantile(m0, m1, "polyvirt_host_stats_age_seconds", 0.99)
	res.HeapInuseMiB = sample(m1, "go_memstats_heap_inuse_bytes") / (1 << 20)
	res.StackInuseMiB = sample(m1, "go_memstats_stack_inuse_bytes") / (1 << 20)
	res.Goroutines = sample(m1, "go_goroutines")
	res.GoroutinesPerHst = res.Goroutines / float64(max(res.Hosts, 1))
	if o.pprof != "" {
		if err := b.profile(ctx, "/debug/pprof/heap", res.Load.String()+"-heap.pprof"); err != nil {
			return err
		}
		if err := b.profile(ctx, "/debug/pprof/goroutine", res.Load.String()+"-goroutine.pprof"); err != nil {
			return err
		}
	}
	var all []time.Duration
	lat := map[string][]time.Duration{}
	for _, c := range spans {
		lat[c.name] = append(lat[c.name], c.took)
	}
	for name, d := range lat {
		all = append(all, d...)
		res.API[name] = summarize(d)
	}
	res.APIAll = summarize(all)
	res.ListAll = summarize(listAll)
	res.CallsPerS = float64(res.APIAll.Calls) / window
	hs, last, err := b.readAll(ctx, o.cluster)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.Status == "Up" {
			res.HostsUp++
		}
	}
	ages = append(ages, last...)
	res.LastSeenP99Age, res.LastSeenMaxAge = quantile(ages, 0.99), quantile(ages, 1)
	return nil
}

// gcShare reads the engine's garbage collections from its log (gctrace)
// and counts the window's slow calls that overlapped them.
func (b *bench) gcShare(res *Result, spans []callSpan, from, to time.Time) error {
	started, err := processStart(b.o.enginePID)
	if err != nil {
		return fmt.Errorf("the engine's start: %w", err)
	}
	f, err := os.Open(b.o.gcLog)
	if err != nil {
		return err
	}
	defer f.Close()
	cycles, err := parseGCTrace(f, started)
	if err != nil {
		return fmt.Errorf("%s: %w", b.o.gcLog, err)
	}
	var gcTime time.Duration
	res.SlowCalls, res.SlowCallsInGC, res.GCCycles, gcTime = gcOverlap(spans, cycles, from, to)
	res.GCSeconds = gcTime.Seconds()
	return nil
}

// hostBrief is what the bench reads of each listed host; the rest of its
// document, the statistics above all, is skipped rather than decoded. The
// measuring process shares the two cores with the engine: decoding ten
// thousand hosts whole every few seconds took it ~350 ms of CPU each
// time, its API calls of the window waiting meanwhile (the bursts of slow
// calls every 5.5 s, with no collection of the engine's under them).
type hostBrief struct {
	Name     string    `json:"name"`
	Status   string    `json:"status"`
	LastSeen time.Time `json:"lastSeen"`
}

// readAll reads a cluster's hosts page by page, as the client does, and
// how old each host's last contact was when its page came (not after the
// last page: reading them all takes a while).
func (b *bench) readAll(ctx context.Context, cluster string) ([]hostBrief, []time.Duration, error) {
	var hs []hostBrief
	var ages []time.Duration
	cont := ""
	for {
		var p struct {
			Hosts    []hostBrief `json:"hosts"`
			Continue string      `json:"continue"`
		}
		if err := b.eng.HostPageInto(ctx, client.HostFilter{Cluster: cluster}, engineapi.MaxHostPageSize, cont, &p); err != nil {
			return nil, nil, err
		}
		now := time.Now()
		for _, h := range p.Hosts {
			ages = append(ages, now.Sub(h.LastSeen))
		}
		hs = append(hs, p.Hosts...)
		if cont = p.Continue; cont == "" {
			return hs, ages, nil
		}
	}
}

func report(o options, rs []*Result) error {
	if o.output == "json" {
		return printJSON(rs)
	}
	for _, r := range rs {
		if err := reportOne(o, r); err != nil {
			return err
		}
	}
	return nil
}

func reportOne(o options, r *Result) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "API load\t%s: %.0f calls/s\n", r.Load.Describe(), r.CallsPerS)
	fmt.Fprintf(w, "hosts\t%d (%d Up at the end)\n", r.Hosts, r.HostsUp)
	if r.EnrollSeconds > 0 {
		fmt.Fprintf(w, "enrolled in\t%.1f s (all Up after %.1f s)\n", r.EnrollSeconds, r.AllUpSeconds)
	} else {
		fmt.Fprintf(w, "all Up after\t%.1f s (from this process's start)\n", r.AllUpSeconds)
	}
	fmt.Fprintf(w, "window\t%.0f s, load average %.2f at its end\n", r.WindowSeconds, r.Load1)
	fmt.Fprintf(w, "statistics\t%.0f pushed/s, %.0f polled/s; capabilities %.0f polls/s\n", r.PushedPerSecond, r.PollsPerSecond, r.CapsPerSecond)
	fmt.Fprintf(w, "statistics age when the next came\tp50 %.2f s, p99 %.2f s\n", r.StatsAgeP50, r.StatsAgeP99)
	fmt.Fprintf(w, "last seen age in the API (sampled)\tp99 %.1f s, max %.1f s\n", r.LastSeenP99Age, r.LastSeenMaxAge)
	fmt.Fprintf(w, "engine CPU\t%.3f cores\n", r.EngineCPUCores)
	fmt.Fprintf(w, "engine threads waiting for a core\t%.0f ms per second (run queue delay, all its threads)\n", r.EngineRunDelay*1000)
	if r.PushedPerSecond > 0 {
		fmt.Fprintf(w, "engine CPU per statistics push\t%.0f µs (all the engine's CPU over the pushes)\n", r.EngineCPUCores/r.PushedPerSecond*1e6)
	}
	fmt.Fprintf(w, "engine RSS\t%.0f MiB now, %.0f MiB max in the window (%.0f KiB per host), %.0f MiB peak (VmHWM)\n", r.EngineRSSMiB, r.EngineMaxRSSMiB, r.PerHostKiB, r.EnginePeakMiB)
	fmt.Fprintf(w, "engine Go heap, stacks\t%.0f MiB in use, %.0f MiB of stacks, %.0f goroutines (%.1f per host)\n", r.HeapInuseMiB, r.StackInuseMiB, r.Goroutines, r.GoroutinesPerHst)
	if o.dbProcess != "" {
		fmt.Fprintf(w, "%s CPU\t%.3f cores\n", o.dbProcess, r.DBCPUCores)
	}
	fmt.Fprintf(w, "simulator CPU (all processes)\t%.3f cores\n", r.SimCPUCores)
	if r.APIAll.Calls > 0 {
		fmt.Fprintf(w, "API (all calls)\t%d calls, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.APIAll.Calls, r.APIAll.P50, r.APIAll.P95, r.APIAll.P99, r.APIAll.Max)
	}
	var names []string
	for n := range r.API {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := r.API[n]
		fmt.Fprintf(w, "  %s\t%d calls, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms\n", n, l.Calls, l.P50, l.P95, l.P99, l.Max)
	}
	if o.gcLog != "" {
		fmt.Fprintf(w, "API calls over %s\t%d of %d; %d of them overlapped the engine's garbage collections (%d, %.1f s of the %.0f s window)\n",
			slowCall, r.SlowCalls, r.APIAll.Calls, r.SlowCallsInGC, r.GCCycles, r.GCSeconds, r.WindowSeconds)
	}
	if l := r.ListAll; l != nil && l.Calls > 0 {
		fmt.Fprintf(w, "every host, page by page (sampled)\t%d reads, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", l.Calls, l.P50, l.P99, l.Max)
	}
	for e, n := range r.APIErrors {
		fmt.Fprintf(w, "API error\t%d × %s\n", n, e)
	}
	fmt.Fprintln(w)
	return w.Flush()
}

// clockTicks is USER_HZ, 100 on every Linux architecture polyvirt runs on.
const clockTicks = 100

// procCPU is a process's user+system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, errors.New("stat: short")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
}

// procStat is a process's /proc stat after its command's ")": its state
// (field 3 of proc(5)) first.
func procStat(pid int) ([]string, error) {
	if pid <= 0 {
		return nil, errors.New("no pid")
	}
	return statFields(fmt.Sprintf("/proc/%d/stat", pid))
}

// statFields reads a /proc stat file (a process's or a thread's): its
// fields after the command name, which is in parentheses and may hold
// spaces, so that field N of proc(5) is at N-3.
func statFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseStat(string(b))
}

// parseStat splits a /proc stat line into its fields after the command
// name (the text up to its last ')').
func parseStat(s string) ([]string, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("stat: no ')' closing the command name")
	}
	return strings.Fields(s[i+1:]), nil
}

// threadsRunDelay is how long each thread of a process waited on a run
// queue so far, in seconds, by thread id (/proc/PID/task/TID/schedstat);
// none when the kernel keeps no scheduler statistics.
func threadsRunDelay(pid int) map[int]float64 {
	out := map[int]float64{}
	if pid <= 0 {
		return out
	}
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*", pid))
	for _, d := range dirs {
		tid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "schedstat"))
		if err != nil {
			continue
		}
		if st, err := parseSchedstat(string(b)); err == nil {
			out[tid] = float64(st.waitNs) / 1e9
		}
	}
	return out
}

// schedstat is a thread's /proc schedstat: the time it ran on a CPU, the
// time it waited on a run queue (both in nanoseconds), and its timeslices.
type schedstat struct {
	runNs, waitNs, slices uint64
}

// parseSchedstat reads a schedstat line ("RUN WAIT SLICES").
func parseSchedstat(s string) (schedstat, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return schedstat{}, fmt.Errorf("schedstat: %d fields, want 3 (run time, wait time, timeslices)", len(f))
	}
	var v [3]uint64
	for i, name := range []string{"run time", "wait time", "timeslices"} {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return schedstat{}, fmt.Errorf("schedstat: %s %q: not a count", name, f[i])
		}
		v[i] = n
	}
	return schedstat{runNs: v[0], waitNs: v[1], slices: v[2]}, nil
}

// procRSS reads a memory line of /proc/PID/status, in MiB.
func procRSS(pid int, key string) (float64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024, nil
			}
		}
	}
	return 0, errors.New(key + " not found")
}

// namedCPU is the CPU time (seconds) of every process with this command
// name (truncated as /proc's comm is), by process id.
func namedCPU(name string) map[int]float64 {
	out := map[int]float64{}
	for _, pid := range processesNamed(name) {
		if c, err := procCPU(pid); err == nil {
			out[pid] = c
		}
	}
	return out
}

// processesNamed lists the processes whose command name is name
// (truncated to 15 bytes, as /proc's comm is); none for "".
func processesNamed(name string) []int {
	if name == "" {
		return nil
	}
	if len(name) > 15 {
		name = name[:15]
	}
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpuSpent is the CPU time the processes of after spent since before:
// one that started meanwhile counts from 0 (a reused process id too), one
// that ended meanwhile is not counted (PostgreSQL's backends come and go;
// a sum of the two samples' totals went negative).
func cpuSpent(before, after map[int]float64) float64 {
	var total float64
	for pid, c := range after {
		if b, ok := before[pid]; ok && b <= c {
			total += c - b
		} else {
			// New, or a new process with a reused id.
			total += c
		}
	}
	return total
}

// loadAverage is the machine's 1-minute load average.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
