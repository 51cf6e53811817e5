// Command polyvirt-hostsim simulates many polyvirt hosts for an engine
// (oVirt's vdsmfake): it adds N hosts to a cluster through the engine's
// API, enrolls each with its one-time join token like `polyvirt agent
// join`, and answers the engine's monitoring (capabilities with ETag,
// statistics polled or pushed on the event stream) over mutual TLS and
// HTTP/2, one port per host. Several processes can share the work
// (--first, --total): each enrolls and serves its share, and one of them
// measures (it may serve none: --hosts 0 --total N --bench).
//
// With --bench it then measures the engine: its CPU and memory (from
// /proc, --engine-pid), the latency of API calls made meanwhile, how fresh
// the hosts' statistics stay (the ages of their last contact in the API,
// sampled through the window), and what the engine's own metrics say
// (GET /metrics: its polls, the statistics pushed, their ages, its heap
// and goroutines); with --pprof, Go's CPU, heap and goroutine profiles of the engine
// for each window. scripts/bench-engine.sh drives it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	hosts, first, total, parallel, loopbacks           int
	bench, warmup, upTimeout, trace                    time.Duration
	loads                                              []load
	enginePID                                          int
	dbProcess                                          string
	pprof, profileDir                                  string
	cpuProfile                                         string
	gcLog                                              string
	simsNice                                           int
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
	flag.IntVar(&o.hosts, "hosts", 1000, "number of simulated hosts of this process (0: none, only measure the --total hosts)")
	flag.IntVar(&o.first, "first", 0, "the number of this process's first host (several processes: 0, 2500, 5000, ...)")
	flag.IntVar(&o.total, "total", 0, "the hosts of all the processes, all Up before measuring (default --hosts)")
	flag.IntVar(&o.parallel, "parallel", 16, "hosts enrolled at once")
	flag.IntVar(&o.loopbacks, "loopbacks", 0, "spread the hosts over 127.0.0.1 to 127.0.0.N (default: one address per 2,500 hosts)")
	flag.DurationVar(&o.upTimeout, "up-timeout", 0, "how long to wait for every host to be Up (default 3m, plus 1m per 1,000 hosts)")
	flag.DurationVar(&o.bench, "bench", 0, "measure the engine for this long per API load once every host is Up, then exit (0: serve until interrupted)")
	flag.DurationVar(&o.warmup, "warmup", 15*time.Second, "wait this long after every host is Up before measuring")
	flag.IntVar(&o.enginePID, "engine-pid", 0, "the engine's process id (CPU and memory from /proc)")
	flag.StringVar(&o.dbProcess, "db-process", "", "also measure the CPU of the processes with this name (postgres)")
	flag.StringVar(&o.pprof, "pprof", "", "the engine's --pprof-listen address: take its CPU and heap profiles in each window")
	flag.StringVar(&o.profileDir, "profile-dir", ".", "where the profiles go (LOAD-cpu.pprof, LOAD-heap.pprof, LOAD-goroutine.pprof, LOAD-trace.out), with each window's calls (LOAD-calls.tsv: when each was due, in Unix ms, how long it took, in ms, and which)")
	flag.DurationVar(&o.trace, "trace", 0, "with --pprof, an execution trace of the engine this long from the middle of each window (LOAD-trace.out: go tool trace; 0: none)")
	var loads string
	flag.StringVar(&loads, "api-loads", "0:0s,2:100ms,175/s", "API loads to measure under, one window each: CLIENTS:PAUSE (each client pauses PAUSE between calls) or RATE/s (calls started at a fixed rate, whatever the answers take)")
	flag.StringVar(&o.output, "o", "text", "output: text or json")
	flag.StringVar(&o.cpuProfile, "cpu-profile", "", "write this process's own CPU profile to this file: a serving one's (--bench 0) from its hosts' enrollment to its end, the measuring one's over its windows")
	flag.IntVar(&o.simsNice, "sims-nice", 0, "once every host is Up, lower the other simulator processes' priority to this nice level (every thread of theirs), as if they ran on other machines (0: leave them)")
	flag.StringVar(&o.gcLog, "engine-gc-log", "", "the engine's log, run with GODEBUG=gctrace=1: each window also counts its API calls over 50 ms that overlapped the engine's garbage collections")
	flag.Parse()
	o.profiles = strings.Split(profiles, ",")
	var err error
	if o.loads, err = parseLoads(loads); err != nil {
		fmt.Fprintf(os.Stderr, "polyvirt-hostsim: --api-loads: %v\n", err)
		os.Exit(2)
	}
	if o.total == 0 {
		o.total = o.first + o.hosts
	}
	if o.loopbacks <= 0 {
		o.loopbacks = 1 + (o.first+o.hosts)/2500
	}
	if o.upTimeout <= 0 {
		o.upTimeout = 3*time.Minute + time.Duration(o.total/1000)*time.Minute
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "polyvirt-hostsim:", err)
		os.Exit(1)
	}
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
	// As many connections kept as calls of a fixed-rate load in flight: the
	// load measures the engine's answers, not TLS handshakes.
	eng, err := client.New(client.Options{Engine: o.engine, Token: token, CAPEM: ca, Timeout: 60 * time.Second, Conns: maxInFlight})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := ensureCluster(ctx, eng, o); err != nil {
		return err
	}

	sim := hostsim.New()
	defer sim.Close()
	start := time.Now()
	res := &Result{Hosts: o.total}
	if o.hosts > 0 {
		if err := enroll(ctx, eng, sim, o); err != nil {
			return err
		}
		res.EnrollSeconds = time.Since(start).Seconds()
		fmt.Fprintf(os.Stderr, "%d hosts enrolled in %.1fs\n", o.hosts, res.EnrollSeconds)
	}
	if o.bench == 0 {
		// A serving process does not wait for the others: the measuring
		// one (--hosts 0 --bench) does.
		fmt.Fprintln(os.Stderr, "serving; interrupt to stop")
		return serveProfiled(ctx, o.cpuProfile)
	}
	fmt.Fprintf(os.Stderr, "waiting for the %d hosts of cluster %s to be Up\n", o.total, o.cluster)
	if err := waitUp(ctx, eng, o); err != nil {
		return err
	}
	res.AllUpSeconds = time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "all %d hosts Up %.1fs after this process started\n", o.total, res.AllUpSeconds)
	hs, err := eng.Hosts(ctx, client.HostFilter{Cluster: o.cluster})
	if err != nil {
		return err
	}
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	if o.simsNice > 0 {
		n, err := renice("polyvirt-hostsim", os.Getpid(), o.simsNice)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "the other simulator processes' %d threads at nice %d\n", n, o.simsNice)
	}
	select {
	case <-time.After(o.warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	b := &bench{o: o, eng: eng, token: token, ca: ca, names: names}
	// The measuring process's own cost over the windows (its API calls
	// share the machine with the engine).
	stopProfile, err := startProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	var results []*Result
	for _, l := range o.loads {
		r := *res
		r.Load, r.API, r.APIErrors = l, map[string]*Latencies{}, map[string]int{}
		fmt.Fprintf(os.Stderr, "measuring for %s with %s\n", o.bench, l.Describe())
		if err := b.measure(ctx, &r); err != nil {
			return err
		}
		results = append(results, &r)
	}
	return report(o, results)
}

// ensureCluster creates the cluster when missing (another process may
// create it at the same time).
func ensureCluster(ctx context.Context, eng *client.Client, o options) error {
	_, err := eng.Cluster(ctx, o.cluster)
	if api.CodeOf(err) != api.CodeNotFound {
		return err
	}
	_, err = eng.CreateCluster(ctx, engineapi.ClusterRequest{Name: o.cluster, CPUType: o.cpuType})
	if err != nil {
		if _, again := eng.Cluster(ctx, o.cluster); again == nil {
			return nil
		}
	}
	return err
}

// enroll adds this process's hosts to the engine and enrolls them, a few
// at a time. A host that cannot be enrolled after enrollAttempts is left
// out (and said so) while the others go on: ending the process would take
// its enrolled hosts away from the engine too. It fails when no host
// could be enrolled.
func enroll(ctx context.Context, eng *client.Client, sim *hostsim.Sim, o options) error {
	jobs := make(chan int)
	var wg sync.WaitGroup
	var enrolled, failed atomic.Int64
	var lastErr atomic.Value
	for w := 0; w < o.parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := fmt.Sprintf("%s%05d", o.prefix, i)
				ip := fmt.Sprintf("127.0.0.%d", 1+i%o.loopbacks)
				h, err := sim.AddHostAt(name, o.profiles[i%len(o.profiles)], ip)
				if err == nil {
					err = enrollOne(ctx, eng, h, o)
				}
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						lastErr.Store(fmt.Errorf("host %s: %w", name, err))
						fmt.Fprintf(os.Stderr, "host %s left out: %v\n", name, err)
					}
					continue
				}
				if n := enrolled.Add(1); n%500 == 0 {
					fmt.Fprintf(os.Stderr, "enrolled %d hosts\n", n)
				}
			}
		}()
	}
	for i := o.first; i < o.first+o.hosts && ctx.Err() == nil; i++ {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d hosts could not be enrolled\n", n, o.hosts)
		if enrolled.Load() == 0 {
			return lastErr.Load().(error)
		}
	}
	return nil
}

// enrollAttempts is how many times a host's enrollment is tried: an
// engine busy admitting thousands of hosts can answer a join after the
// agent's time-out.
const enrollAttempts = 5

// enrollOne adds a host to the engine and enrolls it, again with a new
// join token when an attempt failed.
func enrollOne(ctx context.Context, eng *client.Client, h *hostsim.Host, o options) error {
	var err error
	added := false
	for attempt := 0; attempt < enrollAttempts && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt) * 2 * time.Second):
			}
		}
		var jt engineapi.JoinToken
		if !added {
			jt, err = eng.AddHost(ctx, engineapi.HostRequest{Name: h.Name(), Address: h.Addr(), Cluster: o.cluster})
			if api.CodeOf(err) == api.CodeAlreadyExists || api.CodeOf(err) == api.CodeHostAddressInUse {
				// An earlier attempt added it and its answer was lost.
				added = true
			} else if err != nil {
				continue
			}
		}
		if added {
			if jt, err = eng.JoinToken(ctx, h.Name(), ""); err != nil {
				continue
			}
		}
		added = true
		if _, err = h.Enroll(ctx, o.engine, jt.Token); err == nil {
			return nil
		}
	}
	return err
}

// waitUp waits until the cluster has --total hosts Up.
func waitUp(ctx context.Context, eng *client.Client, o options) error {
	deadline := time.Now().Add(o.upTimeout)
	for {
		hs, err := eng.Hosts(ctx, client.HostFilter{Cluster: o.cluster, Statuses: []string{"Up"}})
		if err == nil && len(hs) >= o.total {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			why := map[string]int{}
			if all, err := eng.Hosts(ctx, client.HostFilter{Cluster: o.cluster}); err == nil {
				why["(listed)"] = len(all)
				for _, h := range all {
					if h.Status != "Up" {
						why[h.Status+" "+h.StatusCode]++
					}
				}
			}
			return fmt.Errorf("only %d of %d hosts Up after %s (%v); the others: %v", len(hs), o.total, o.upTimeout, err, why)
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// pick returns a random element.
func pick(names []string) string { return names[rand.N(len(names))] }

// writeFile writes a profile.
func writeFile(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// quantile is the q-quantile of sorted durations, in seconds.
func quantile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	i = min(max(i, 0), len(d)-1)
	return d[i].Seconds()
}

// printJSON writes v as indented JSON.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
