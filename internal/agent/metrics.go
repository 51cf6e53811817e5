package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/hoststats"
	"polyvirt/internal/httpx"
	"polyvirt/internal/metrics"
	"polyvirt/internal/pki"
	"polyvirt/internal/profiles"
)

// Version is the agent's version, set at build time with
// -ldflags "-X polyvirt/internal/agent.Version=...".
var Version = "dev"

// MetricsPath is where the agent serves its metrics (Prometheus's
// default), on its mutual-TLS port and on the metrics listener
// (metrics_listen): any client certificate of the engine CA reads them,
// a scrape certificate (pki.Scrape) reads nothing else.
const MetricsPath = "/metrics"

// userHZ is the kernel's clock tick of /proc/stat, 100 on every
// architecture polyvirt runs on.
const userHZ = 100

// agentMetrics are the agent's Prometheus metrics, made once.
type agentMetrics struct {
	once sync.Once
	m    *metrics.Agent
}

// metricsHandler serves the metrics of the last statistics round (no
// libvirt call per scrape).
func (a *Agent) metricsHandler() http.Handler {
	a.prom.once.Do(func() {
		info := metrics.AgentInfo{HostID: a.cfg.HostID, Arch: a.effectiveArch().String(), Version: Version, FakeKVM: a.fake}
		a.prom.m = metrics.NewAgent(info, a.stats.metricSample, func() bool { return a.conn.status().Connected })
	})
	return a.prom.m.Handler()
}

// effectiveArch is the architecture the host presents: its fake
// architecture, its profile's, or the machine's.
func (a *Agent) effectiveArch() arch.Arch {
	if a.cfg.FakeArch != arch.Unknown {
		return a.cfg.FakeArch
	}
	if a.cfg.Profile != "" {
		if p, err := profiles.Get(a.cfg.Profile); err == nil {
			return p.Arch
		}
	}
	return a.realArch
}

// metricSample is the last statistics round for the metrics.
func (k *statsKeeper) metricSample() (metrics.AgentSample, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.metric, k.have
}

// sampleForMetrics is a statistics round for the metrics: the host's reading
// r (when hostOK) with its usage over the interval, the totals of its
// running VMs (h), and every VM's figures.
func sampleForMetrics(start time.Time, r hoststats.Reading, usage float64, hostOK bool, h agentapi.HostStats, figures []vmFigure) metrics.AgentSample {
	const kib = 1024
	s := metrics.AgentSample{Time: start, Took: time.Since(start), HostOK: hostOK}
	if hostOK {
		s.Host = metrics.HostSample{CPUs: r.CPU.CPUs, BusySeconds: float64(r.CPU.Busy) / userHZ, TotalSeconds: float64(r.CPU.Total) / userHZ,
			UsageRatio: usage / 100, MemTotal: r.Memory.TotalKiB * kib, MemFree: r.Memory.FreeKiB * kib, MemAvailable: r.Memory.AvailableKiB * kib,
			Load1: r.Load.Load1, Load5: r.Load.Load5, Load15: r.Load.Load15,
			VMsRunning: h.VMsRunning, VCPUsUsed: h.VCPUsUsed, MemoryUsed: h.MemoryUsedMiB * kib * kib}
	}
	for _, f := range figures {
		d := f.d
		v := metrics.VMSample{ID: f.e.ID, Name: f.e.Name, State: string(stateOf(d.State)), Figures: f.full, VCPUs: d.VCPUs,
			CPUSeconds: float64(d.CPUTimeNs) / 1e9, Memory: d.BalloonKiB * kib, MaxMemory: d.MaxMemoryKiB * kib,
			RSS: d.Balloon.RSSKiB * kib, Available: d.Balloon.AvailableKiB * kib, Usable: d.Balloon.UsableKiB * kib,
			Unused: d.Balloon.UnusedKiB * kib, SwapIn: d.Balloon.SwapInKiB * kib, SwapOut: d.Balloon.SwapOutKiB * kib}
		for _, b := range d.Blocks {
			v.Disks = append(v.Disks, metrics.DiskSample{Name: b.Name, ReadBytes: b.ReadBytes, WriteBytes: b.WriteBytes, ReadOps: b.ReadOps, WriteOps: b.WriteOps})
		}
		for _, n := range d.Interfaces {
			v.NICs = append(v.NICs, metrics.NICSample{Name: n.Name, RxBytes: n.RxBytes, TxBytes: n.TxBytes, RxPkts: n.RxPkts, TxPkts: n.TxPkts})
		}
		s.VMs = append(s.VMs, v)
	}
	return s
}

// getMetrics serves GET /metrics.
func (a *Agent) getMetrics(w http.ResponseWriter, r *http.Request) {
	a.metricsHandler().ServeHTTP(w, r)
}

// scrapeOnly lets a scrape certificate read the metrics and nothing else:
// its other requests are refused (403 PERMISSION_DENIED).
func scrapeOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && pki.IsScrape(r.TLS.PeerCertificates[0]) &&
			!(r.Method == http.MethodGet && r.URL.Path == MetricsPath) {
			httpx.WriteError(w, api.NewError(http.StatusForbidden, api.CodePermissionDenied,
				"a scrape certificate (%s) reads GET %s only", r.TLS.PeerCertificates[0].Subject.CommonName, MetricsPath))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeMetrics serves the metrics alone on ln (metrics_listen), with the
// API's mutual TLS: any client certificate of the engine CA, a scrape
// certificate among them, reads GET /metrics; nothing else is served.
func (a *Agent) ServeMetrics(ctx context.Context, ln net.Listener) error {
	tlsCfg, err := a.tlsConfig()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+MetricsPath, a.getMetrics)
	mux.HandleFunc("/", httpx.NotFound(MetricsPath))
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err = srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
