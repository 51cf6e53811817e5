package engine

import (
	"net/http"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/httpx"
)

// The cluster routes (service.Clusters).

func (e *Engine) listClusters(w http.ResponseWriter, r *http.Request) error {
	cs, err := e.svc.Clusters.List(r.Context())
	return answer(w, http.StatusOK, cs, err)
}

func (e *Engine) getCluster(w http.ResponseWriter, r *http.Request) error {
	c, err := e.svc.Clusters.Get(r.Context(), r.PathValue("cluster"))
	return answer(w, http.StatusOK, c, err)
}

func (e *Engine) createCluster(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.ClusterRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	c, err := e.svc.Clusters.Create(r.Context(), req)
	return answer(w, http.StatusCreated, c, err)
}

func (e *Engine) updateCluster(w http.ResponseWriter, r *http.Request) error {
	var upd engineapi.ClusterUpdate
	if err := httpx.DecodeJSON(r, &upd, false); err != nil {
		return err
	}
	c, err := e.svc.Clusters.Update(r.Context(), r.PathValue("cluster"), upd)
	return answer(w, http.StatusOK, c, err)
}

func (e *Engine) deleteCluster(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Clusters.Delete(r.Context(), r.PathValue("cluster")))
}
