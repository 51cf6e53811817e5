// Command polyvirt-hostsim simulates many polyvirt hosts for an engine
// (oVirt's vdsmfake): it adds N hosts to a cluster through the engine's
// API, enrolls each with its one-time join token like `polyvirt agent
// join`, and answers the engine's monitoring (capabilities with ETag,
// statistics) over mutual TLS, one port per host. With --bench it then
// measures the engine: its CPU and memory (from /proc, --engine-pid), the
// latency of API calls made meanwhile, and how fresh the hosts' statistics
// stay. scripts/bench-engine.sh drives it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/test/hostsim"
)

type options struct {
	engine, caFile, tokenFile, cluster, prefix, output string
	cpuType                                            string
	profiles                                           []string
	hosts, parallel                                    int
	bench, warmup, upTimeout                           time.Duration
	loads                                              []load
	enginePID                                          int
	dbProcess                                          string
}

func main() {
	var o options
	var profiles string
	flag.StringVar(&o.engine, "engine", "", "the engine's URL, https://HOST:PORT (required)")
	flag.StringVar(&o.caFile, "ca-file", "", "the engine CA (its ca.pem)")
	flag.StringVar(&o.tokenFile, "token-file", "", "a file holding an administrator's API token (required)")
	flag.StringVar(&o.cluster, "cluster", "sim", "the cluster of the simulated hosts (created when missing)")
	flag.StringVar(&o.cpuType, "cpu-type", "IBM POWER8", "the CPU type of the cluster when it is created (the profiles' lowest)")
	flag.StringVar(&o.prefix, "prefix", "sim-", "prefix of the host names")
	flag.StringVar(&profiles, "profiles", "s822l-power8e,ac922-power9", "host profiles, used in turn")
	flag.IntVar(&o.hosts, "hosts", 1000, "number of simulated hosts")
	flag.IntVar(&o.parallel, "parallel", 16, "hosts enrolled at once")
	flag.DurationVar(&o.upTimeout, "up-timeout", 3*time.Minute, "how long to wait for every host to be Up")
	flag.DurationVar(&o.bench, "bench", 0, "measure the engine for this long once every host is Up, then exit (0: serve until interrupted)")
	flag.DurationVar(&o.warmup, "warmup", 15*time.Second, "wait this long after every host is Up before measuring")
	flag.IntVar(&o.enginePID, "engine-pid", 0, "the engine's process id (CPU and memory from /proc)")
	flag.StringVar(&o.dbProcess, "db-process", "", "also measure the CPU of the processes with this name (postgres)")
	var loads string
	flag.StringVar(&loads, "api-loads", "0:0s,2:100ms,4:20ms", "API loads to measure under, one window each: CLIENTS:PAUSE (each client pauses PAUSE between calls)")
	flag.StringVar(&o.output, "o", "text", "output: text or json")
	flag.Parse()
	o.profiles = strings.Split(profiles, ",")
	for _, l := range strings.Split(loads, ",") {
		c, p, ok := strings.Cut(strings.TrimSpace(l), ":")
		n, err1 := strconv.Atoi(c)
		d, err2 := time.ParseDuration(p)
		if !ok || err1 != nil || err2 != nil || n < 0 || d < 0 {
			fmt.Fprintf(os.Stderr, "polyvirt-hostsim: --api-loads %q: want CLIENTS:PAUSE,... such as 4:20ms\n", loads)
			os.Exit(2)
		}
		o.loads = append(o.loads, load{Clients: n, Pause: d})
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "polyvirt-hostsim:", err)
		os.Exit(1)
	}
}

// load is an API load: clients calling in a loop with a pause.
type load struct {
	Clients int           `json:"clients"`
	Pause   time.Duration `json:"pauseNs"`
}

// Result is what a benchmark window measured.
type Result struct {
	Load            load    `json:"load"`
	CallsPerS       float64 `json:"apiCallsPerSecond"`
	Hosts           int     `json:"hosts"`
	EnrollSeconds   float64 `json:"enrollSeconds"`
	AllUpSeconds    float64 `json:"allUpSeconds"`
	WindowSeconds   float64 `json:"windowSeconds"`
	EngineCPUCores  float64 `json:"engineCpuCores"`
	EngineRSSMiB    float64 `json:"engineRssMiB"`
	EngineMaxRSSMiB float64 `json:"engineMaxRssMiB"`
	EnginePeakMiB   float64 `json:"enginePeakRssMiB"`
	DBCPUCores      float64 `json:"dbCpuCores,omitempty"`
	SimCPUCores     float64 `json:"simCpuCores"`
	PollsPerSecond  float64 `json:"pollsPerSecond"`
	// LastSeenMaxAge and LastSeenP99Age are how old the hosts' last
	// contact was at the end (the monitoring keeping up).
	LastSeenP99Age float64               `json:"lastSeenP99AgeSeconds"`
	LastSeenMaxAge float64               `json:"lastSeenMaxAgeSeconds"`
	HostsUp        int                   `json:"hostsUp"`
	API            map[string]*Latencies `json:"api"`
	APIAll         *Latencies            `json:"apiAll"`
	APIErrors      map[string]int        `json:"apiErrors,omitempty"`
}

// Latencies summarizes call durations in milliseconds.
type Latencies struct {
	Calls int     `json:"calls"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
	all   []time.Duration
}

func summarize(d []time.Duration) *Latencies {
	l := &Latencies{Calls: len(d)}
	if len(d) == 0 {
		return l
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(p*float64(len(d))+0.5) - 1
		i = min(max(i, 0), len(d)-1)
		return float64(d[i].Microseconds()) / 1000
	}
	l.P50, l.P95, l.P99, l.Max = q(0.50), q(0.95), q(0.99), float64(d[len(d)-1].Microseconds())/1000
	return l
}

func run(o options) error {
	if o.engine == "" || o.tokenFile == "" {
		return errors.New("--engine and --token-file are required")
	}
	token, err := client.ReadTokenFile(o.tokenFile)
	if err != nil {
		return err
	}
	var ca []byte
	if o.caFile != "" {
		if ca, err = os.ReadFile(o.caFile); err != nil {
			return err
		}
	}
	eng, err := client.New(client.Options{Engine: o.engine, Token: token, CAPEM: ca, Timeout: 60 * time.Second})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if _, err := eng.Cluster(ctx, o.cluster); api.CodeOf(err) == api.CodeNotFound {
		if _, err := eng.CreateCluster(ctx, engineapi.ClusterRequest{Name: o.cluster, CPUType: o.cpuType}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}

	sim := hostsim.New()
	defer sim.Close()
	start := time.Now()
	hosts := make([]*hostsim.Host, o.hosts)
	jobs := make(chan int)
	errs := make(chan error, o.parallel)
	var wg sync.WaitGroup
	var enrolled atomic.Int64
	for w := 0; w < o.parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := fmt.Sprintf("%s%04d", o.prefix, i)
				h, err := sim.AddHost(name, o.profiles[i%len(o.profiles)])
				if err == nil {
					var jt engineapi.JoinToken
					if jt, err = eng.AddHost(ctx, engineapi.HostRequest{Name: name, Address: h.Addr(), Cluster: o.cluster}); err == nil {
						_, err = h.Enroll(ctx, o.engine, jt.Token)
					}
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("host %s: %w", name, err):
					default:
					}
					continue
				}
				hosts[i] = h
				if n := enrolled.Add(1); n%100 == 0 {
					fmt.Fprintf(os.Stderr, "enrolled %d hosts\n", n)
				}
			}
		}()
	}
feed:
	for i := 0; i < o.hosts; i++ {
		select {
		case jobs <- i:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			return err
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	res := &Result{Hosts: o.hosts, EnrollSeconds: time.Since(start).Seconds(), API: map[string]*Latencies{}, APIErrors: map[string]int{}}
	fmt.Fprintf(os.Stderr, "%d hosts enrolled in %.1fs; waiting for them to be Up\n", o.hosts, res.EnrollSeconds)
	deadline := time.Now().Add(o.upTimeout)
	for {
		hs, err := eng.Hosts(ctx, client.HostFilter{Cluster: o.cluster, Statuses: []string{"Up"}})
		if err == nil && len(hs) >= o.hosts {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			why := map[string]int{}
			if all, err := eng.Hosts(ctx, client.HostFilter{Cluster: o.cluster}); err == nil {
				for _, h := range all {
					if h.Status != "Up" {
						why[h.Status+" "+h.StatusCode]++
					}
				}
			}
			return fmt.Errorf("only %d of %d hosts Up after %s (%v); the others: %v", len(hs), o.hosts, o.upTimeout, err, why)
		}
		time.Sleep(time.Second)
	}
	res.AllUpSeconds = time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "all %d hosts Up %.1fs after the start\n", o.hosts, res.AllUpSeconds)
	if o.bench == 0 {
		fmt.Fprintln(os.Stderr, "serving; interrupt to stop")
		<-ctx.Done()
		return nil
	}
	select {
	case <-time.After(o.warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	var results []*Result
	for _, l := range o.loads {
		r := *res
		r.Load, r.API, r.APIErrors = l, map[string]*Latencies{}, map[string]int{}
		fmt.Fprintf(os.Stderr, "measuring for %s with %d API clients pausing %s\n", o.bench, l.Clients, l.Pause)
		if err := measure(ctx, o, eng, hosts, &r); err != nil {
			return err
		}
		results = append(results, &r)
	}
	return report(o, results)
}

// measure runs the measurement window.
func measure(ctx context.Context, o options, eng *client.Client, hosts []*hostsim.Host, res *Result) error {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name()
	}
	polls := func() int64 {
		var n int64
		for _, h := range hosts {
			n += h.Requests()
		}
		return n
	}
	engCPU0, _ := procCPU(o.enginePID)
	simCPU0, _ := procCPU(os.Getpid())
	dbCPU0 := namedCPU(o.dbProcess)
	polls0 := polls()
	t0 := time.Now()

	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	var maxRSS float64
	wctx, cancel := context.WithTimeout(ctx, o.bench)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			if r, err := procRSS(o.enginePID, "VmRSS"); err == nil && r > maxRSS {
				maxRSS = r
			}
			select {
			case <-wctx.Done():
			case <-time.After(time.Second):
			}
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
		return eng.Do(wctx, "GET", path, q, nil, &raw)
	}
	calls := []call{
		{"GET /hosts/{host}", 40, func() error { return get("/hosts/"+names[rand.N(len(names))], nil) }},
		{"GET /clusters", 20, func() error { return get("/clusters", nil) }},
		{"GET /events?limit=50", 20, func() error { return get("/events", url.Values{"limit": {"50"}}) }},
		{"GET /hosts?status=NonResponsive,NonOperational", 15, func() error {
			return get("/hosts", url.Values{"status": {"NonResponsive,NonOperational"}})
		}},
		{"GET /hosts (all)", 5, func() error { return get("/hosts", nil) }},
	}
	total := 0
	for _, c := range calls {
		total += c.weight
	}
	for w := 0; w < res.Load.Clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				r := rand.N(total)
				var c call
				for _, c = range calls {
					if r < c.weight {
						break
					}
					r -= c.weight
				}
				t := time.Now()
				err := c.do()
				d := time.Since(t)
				if wctx.Err() != nil {
					return
				}
				mu.Lock()
				if err != nil {
					res.APIErrors[c.name+": "+err.Error()]++
				} else {
					lat[c.name] = append(lat[c.name], d)
				}
				mu.Unlock()
				time.Sleep(res.Load.Pause)
			}
		}()
	}
	wg.Wait()
	window := time.Since(t0).Seconds()
	res.WindowSeconds = window
	engCPU1, _ := procCPU(o.enginePID)
	simCPU1, _ := procCPU(os.Getpid())
	dbCPU1 := namedCPU(o.dbProcess)
	res.EngineCPUCores = (engCPU1 - engCPU0) / window
	res.SimCPUCores = (simCPU1 - simCPU0) / window
	if o.dbProcess != "" {
		res.DBCPUCores = (dbCPU1 - dbCPU0) / window
	}
	res.PollsPerSecond = float64(polls()-polls0) / window
	res.EngineMaxRSSMiB = maxRSS
	res.EngineRSSMiB, _ = procRSS(o.enginePID, "VmRSS")
	res.EnginePeakMiB, _ = procRSS(o.enginePID, "VmHWM")
	var all []time.Duration
	for name, d := range lat {
		all = append(all, d...)
		res.API[name] = summarize(d)
	}
	res.APIAll = summarize(all)
	res.CallsPerS = float64(res.APIAll.Calls) / window
	hs, err := eng.Hosts(ctx, client.HostFilter{Cluster: o.cluster})
	if err != nil {
		return err
	}
	now := time.Now()
	var ages []time.Duration
	for _, h := range hs {
		if h.Status == "Up" {
			res.HostsUp++
		}
		ages = append(ages, now.Sub(h.LastSeen))
	}
	a := summarize(ages)
	res.LastSeenP99Age, res.LastSeenMaxAge = a.P99/1000, a.Max/1000
	return nil
}

func report(o options, rs []*Result) error {
	if o.output == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
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
	fmt.Fprintf(w, "API load\t%d clients pausing %s: %.0f calls/s\n", r.Load.Clients, r.Load.Pause, r.CallsPerS)
	fmt.Fprintf(w, "hosts\t%d (%d Up at the end)\n", r.Hosts, r.HostsUp)
	fmt.Fprintf(w, "enrolled in\t%.1f s (all Up after %.1f s)\n", r.EnrollSeconds, r.AllUpSeconds)
	fmt.Fprintf(w, "window\t%.0f s\n", r.WindowSeconds)
	fmt.Fprintf(w, "agent polls answered\t%.0f /s\n", r.PollsPerSecond)
	fmt.Fprintf(w, "engine CPU\t%.3f cores\n", r.EngineCPUCores)
	fmt.Fprintf(w, "engine RSS\t%.0f MiB now, %.0f MiB max in the window, %.0f MiB peak (VmHWM)\n", r.EngineRSSMiB, r.EngineMaxRSSMiB, r.EnginePeakMiB)
	if o.dbProcess != "" {
		fmt.Fprintf(w, "%s CPU\t%.3f cores\n", o.dbProcess, r.DBCPUCores)
	}
	fmt.Fprintf(w, "simulator CPU\t%.3f cores\n", r.SimCPUCores)
	fmt.Fprintf(w, "last seen age at the end\tp99 %.1f s, max %.1f s\n", r.LastSeenP99Age, r.LastSeenMaxAge)
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
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')'")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("stat: short")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
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

// namedCPU sums the CPU time of every process with this command name.
func namedCPU(name string) float64 {
	if name == "" {
		return 0
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var total float64
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		if c, err := procCPU(pid); err == nil {
			total += c
		}
	}
	return total
}
