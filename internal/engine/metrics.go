package engine

import (
	"context"
	"net/http"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/httpx"
	"polyvirt/internal/metrics"
	"polyvirt/internal/store"
)

// metricsPath is where the engine serves its metrics (Prometheus's
// default), beside the API: a token of the metrics role, or of any other,
// reads them.
const metricsPath = "/metrics"

// metricsRoute is the route of the metrics: not part of the REST API
// (not in the OpenAPI document), authenticated like it.
func (e *Engine) metricsRoute() route {
	h := e.metrics.Handler()
	return route{Method: "GET", Path: metricsPath, Summary: "The engine's metrics (Prometheus text format)", Role: store.RoleMetrics,
		h: func(w http.ResponseWriter, r *http.Request) error {
			h.ServeHTTP(w, r)
			return nil
		}}
}

// inventory counts the hosts and VMs for a scrape.
func (e *Engine) inventory(ctx context.Context) (metrics.Snapshot, error) {
	inv, err := e.svc.Metrics.Inventory(ctx)
	s := metrics.Snapshot{Leader: inv.Leader}
	if err != nil {
		return s, err
	}
	for _, h := range inv.Hosts {
		s.Hosts = append(s.Hosts, metrics.Count{Cluster: h.Cluster, Arch: h.Arch.String(), Status: h.Status, N: h.N})
	}
	for _, v := range inv.VMs {
		s.VMs = append(s.VMs, metrics.Count{Cluster: v.Cluster, Arch: v.Arch.String(), Status: v.State, N: v.N})
	}
	return s, nil
}

func (e *Engine) getScrapeTargets(w http.ResponseWriter, r *http.Request) error {
	ts, err := e.svc.Metrics.Targets(r.Context())
	return answer(w, http.StatusOK, ts, err)
}

func (e *Engine) postScrapeCertificate(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.ScrapeCertificateRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	c, err := e.svc.Metrics.IssueScrapeCertificate(r.Context(), req)
	return answer(w, http.StatusCreated, c, err)
}
