package engine

import (
	"net/http"
	"strconv"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
)

func (e *Engine) getRollout(w http.ResponseWriter, r *http.Request) error {
	ro, err := e.svc.Rollouts.Status(r.Context(), r.PathValue("cluster"))
	return answer(w, http.StatusOK, ro, err)
}

// postRollout starts a rollout: the image is the body, the request's
// fields the query.
func (e *Engine) postRollout(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	req := engineapi.RolloutRequest{ImageName: q.Get("name"), Hosts: list(q.Get("hosts")), Soak: q.Get("soak"),
		Commit: q.Get("commit"), Reason: q.Get("reason")}
	if v := q.Get("maxUnavailable"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return api.FieldError(api.CodeInvalidArgument, "maxUnavailable", "must be a number, not %q", v)
		}
		req.MaxUnavailable = n
	}
	ro, err := e.svc.Rollouts.Start(r.Context(), r.PathValue("cluster"), service.RolloutStart{RolloutRequest: req, Image: r.Body})
	return answer(w, http.StatusCreated, ro, err)
}

// rolloutAction is the handler of pause, resume or abort.
func (e *Engine) rolloutAction(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req engineapi.RolloutAction
		if err := httpx.DecodeJSON(r, &req, httpx.Optional); err != nil {
			return err
		}
		ro, err := e.svc.Rollouts.Control(r.Context(), r.PathValue("cluster"), action, req)
		return answer(w, http.StatusOK, ro, err)
	}
}
