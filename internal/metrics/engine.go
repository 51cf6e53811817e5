// Package metrics is polyvirt's Prometheus instrumentation: the engine's
// metrics (its hosts and VMs, its API, its database calls, its monitoring
// of the agents, its scheduling decisions, migrations and firmware
// operations) and the agent's (its host's CPU, memory and load, and per
// VM its CPU time, memory, balloon, disk and network counters), served in
// Prometheus's text format by Handler.
//
// Labels are bounded: a route is its pattern (/api/v1/vms/{vm}), never
// the path asked; a database call is the store's method; outcomes and
// kinds are fixed lists. Only the agent's per-VM series name their VM,
// and an agent has a few dozen VMs at most.
//
// The package knows no service and no adapter of polyvirt's: the engine
// and the agent give it what they measured (Engine's methods, an
// AgentSample) and what is counted when a scrape comes (a Source).
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every polyvirt metric.
const namespace = "polyvirt"

// Count is how many objects of a cluster and an architecture are in a
// status (hosts) or state (VMs).
type Count struct {
	Cluster, Arch, Status string
	N                     int
}

// Snapshot is what the engine counts when it is scraped.
type Snapshot struct {
	Hosts, VMs []Count
	// Leader tells whether this engine leads the monitoring.
	Leader bool
}

// Source counts the engine's objects for a scrape.
type Source func(ctx context.Context) (Snapshot, error)

// EngineInfo is the engine's identity, for polyvirt_engine_info.
type EngineInfo struct {
	Name, Version, Backend string
}

// The label values known in advance: their series exist from the start
// (at 0), so that rate() and increase() see the first event.
var (
	pollKinds        = []string{"stats", "capabilities"}
	scheduleOutcomes = []string{"placed", "no-host", "error"}
	migrationOutcome = []string{"succeeded", "failed", "cancelled"}
	firmwareSteps    = []string{"upload", "validate", "flash", "commit", "reject", "cancel"}
	firmwareOutcomes = []string{"done", "refused", "failed"}
)

// Engine is the engine's metrics. Its methods are safe for concurrent use.
type Engine struct {
	reg *prometheus.Registry

	apiRequests *prometheus.CounterVec
	apiDuration *prometheus.HistogramVec
	dbDuration  *prometheus.HistogramVec
	dbErrors    *prometheus.CounterVec
	polls       *prometheus.CounterVec
	pollFails   *prometheus.CounterVec
	pollTime    *prometheus.HistogramVec
	pushed      prometheus.Counter
	statsAge    prometheus.Histogram
	decisions   *prometheus.CounterVec
	decideTime  prometheus.Histogram
	migrations  *prometheus.CounterVec
	firmware    *prometheus.CounterVec
}

// latencyBuckets are the buckets of the API's and the agents' latencies,
// in seconds (1 ms to 10 s).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// dbBuckets are the buckets of the database calls (100 µs to 5 s).
var dbBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}

// NewEngine makes the engine's metrics; src counts its hosts and VMs at
// each scrape.
func NewEngine(info EngineInfo, src Source) *Engine {
	m := &Engine{reg: prometheus.NewRegistry()}
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "api", Name: "requests_total",
		Help: "API requests answered, by method, route pattern and HTTP status code."}, []string{"method", "route", "code"})
	m.apiDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "api", Name: "request_duration_seconds",
		Help: "Time to answer an API request (until its handler returned), by method and route pattern; the consoles' websockets are left out.", Buckets: latencyBuckets},
		[]string{"method", "route"})
	m.dbDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "db", Name: "call_duration_seconds",
		Help: "Time of a call to the database, by the store's method (Transaction: a whole write transaction).", Buckets: dbBuckets}, []string{"call"})
	m.dbErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "db", Name: "call_errors_total",
		Help: "Calls to the database that failed (not found and conflicts included), by the store's method."}, []string{"call"})
	m.polls = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "agent", Name: "polls_total",
		Help: "Requests of the host monitoring to the agents, by kind (stats, capabilities)."}, []string{"kind"})
	m.pollFails = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "agent", Name: "poll_failures_total",
		Help: "Requests of the host monitoring that the agent did not answer, by kind."}, []string{"kind"})
	m.pollTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "agent", Name: "poll_duration_seconds",
		Help: "Time of a request of the host monitoring to an agent, by kind.", Buckets: latencyBuckets}, []string{"kind"})
	m.pushed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "agent", Name: "stats_pushed_total",
		Help: "Hosts' statistics their agents pushed on their event streams (not asked for: no poll)."})
	m.statsAge = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "host", Name: "stats_age_seconds",
		Help:    "How old a host's statistics were when the next ones arrived (the monitoring keeping up with its interval).",
		Buckets: []float64{.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60, 120}})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "scheduling", Name: "decisions_total",
		Help: "Scheduling decisions, by outcome (placed, no-host, error)."}, []string{"outcome"})
	m.decideTime = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "scheduling", Name: "decision_duration_seconds",
		Help: "Time of a scheduling decision: the cluster's facts gathered and a host chosen.", Buckets: latencyBuckets})
	m.migrations = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "migrations_total",
		Help: "Live migrations, by outcome (succeeded, failed, cancelled)."}, []string{"outcome"})
	m.firmware = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "firmware", Name: "operations_total",
		Help: "Firmware operations asked of hosts, by step and outcome (done, refused, failed)."}, []string{"step", "outcome"})
	for _, k := range pollKinds {
		m.polls.WithLabelValues(k)
		m.pollFails.WithLabelValues(k)
	}
	for _, o := range scheduleOutcomes {
		m.decisions.WithLabelValues(o)
	}
	for _, o := range migrationOutcome {
		m.migrations.WithLabelValues(o)
	}
	for _, s := range firmwareSteps {
		for _, o := range firmwareOutcomes {
			m.firmware.WithLabelValues(s, o)
		}
	}
	m.reg.MustRegister(m.apiRequests, m.apiDuration, m.dbDuration, m.dbErrors, m.polls, m.pollFails, m.pollTime, m.pushed, m.statsAge,
		m.decisions, m.decideTime, m.migrations, m.firmware,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "engine", Name: "info",
			Help:        "The engine answering: its name, version and database backend (always 1).",
			ConstLabels: prometheus.Labels{"name": info.Name, "version": info.Version, "backend": info.Backend}},
			func() float64 { return 1 }),
		&inventory{src: src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in Prometheus's text format (the caller
// authenticates the scraper).
func (m *Engine) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 30 * time.Second})
}

// Registry is the engine's registry (tests gather it).
func (m *Engine) Registry() *prometheus.Registry { return m.reg }

// APIRequest records an answered API request: its method, route pattern
// and status code, and how long it took (not for a stream: a console's
// websocket lasts as long as its user watches).
func (m *Engine) APIRequest(method, route string, code int, took time.Duration, stream bool) {
	m.apiRequests.WithLabelValues(method, route, statusText(code)).Inc()
	if !stream {
		m.apiDuration.WithLabelValues(method, route).Observe(took.Seconds())
	}
}

// DBCall records a call to the database: the store's method, its time,
// whether it failed.
func (m *Engine) DBCall(call string, took time.Duration, err error) {
	m.dbDuration.WithLabelValues(call).Observe(took.Seconds())
	if err != nil {
		m.dbErrors.WithLabelValues(call).Inc()
	}
}

// AgentPoll records a request of the monitoring to an agent.
func (m *Engine) AgentPoll(kind string, took time.Duration, err error) {
	m.polls.WithLabelValues(kind).Inc()
	m.pollTime.WithLabelValues(kind).Observe(took.Seconds())
	if err != nil {
		m.pollFails.WithLabelValues(kind).Inc()
	}
}

// StatsPushed records a host's statistics pushed by its agent.
func (m *Engine) StatsPushed() { m.pushed.Inc() }

// StatsAge records how old a host's statistics were when new ones came.
func (m *Engine) StatsAge(age time.Duration) { m.statsAge.Observe(age.Seconds()) }

// Scheduled records a scheduling decision.
func (m *Engine) Scheduled(outcome string, took time.Duration) {
	m.decisions.WithLabelValues(outcome).Inc()
	m.decideTime.Observe(took.Seconds())
}

// Migration records a live migration's outcome.
func (m *Engine) Migration(outcome string) { m.migrations.WithLabelValues(outcome).Inc() }

// Firmware records a firmware operation's outcome.
func (m *Engine) Firmware(step, outcome string) { m.firmware.WithLabelValues(step, outcome).Inc() }

// inventory counts the hosts and VMs when scraped.
type inventory struct{ src Source }

var (
	hostsDesc = prometheus.NewDesc(namespace+"_hosts", "Hosts, by cluster, architecture (unknown until the host reported) and status.",
		[]string{"cluster", "arch", "status"}, nil)
	vmsDesc = prometheus.NewDesc(namespace+"_vms", "VMs, by cluster, architecture and state.",
		[]string{"cluster", "arch", "state"}, nil)
	leaderDesc = prometheus.NewDesc(namespace+"_engine_leader", "1 when this engine leads the host monitoring, else 0.", nil, nil)
	invUpDesc  = prometheus.NewDesc(namespace+"_engine_inventory_up",
		"1 when the hosts and VMs could be counted for this scrape, 0 when the database failed (polyvirt_hosts and polyvirt_vms are then missing).", nil, nil)
)

func (c *inventory) Describe(ch chan<- *prometheus.Desc) {
	ch <- hostsDesc
	ch <- vmsDesc
	ch <- leaderDesc
	ch <- invUpDesc
}

func (c *inventory) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := c.src(ctx)
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(invUpDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, boolValue(s.Leader))
	if err != nil {
		return
	}
	for _, h := range s.Hosts {
		ch <- prometheus.MustNewConstMetric(hostsDesc, prometheus.GaugeValue, float64(h.N), h.Cluster, orUnknown(h.Arch), h.Status)
	}
	for _, v := range s.VMs {
		ch <- prometheus.MustNewConstMetric(vmsDesc, prometheus.GaugeValue, float64(v.N), v.Cluster, orUnknown(v.Arch), v.Status)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// statusText is a status code as a label value.
func statusText(code int) string {
	if code <= 0 {
		code = http.StatusOK
	}
	if code < 100 || code > 999 {
		return "other"
	}
	return strconv.Itoa(code)
}
