package engine

import (
	"net/http"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
)

// The VM routes (service.VMs; the console's bridge is console.go).

// listVMs answers GET /api/v1/vms?cluster=&host=&state=Up,Down.
func (e *Engine) listVMs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	vms, err := e.svc.VMs.List(r.Context(), service.VMQuery{Cluster: q.Get("cluster"), Host: q.Get("host"), States: list(q.Get("state"))})
	return answer(w, http.StatusOK, vms, err)
}

func (e *Engine) getVM(w http.ResponseWriter, r *http.Request) error {
	v, err := e.svc.VMs.Get(r.Context(), r.PathValue("vm"))
	return answer(w, http.StatusOK, v, err)
}

func (e *Engine) createVM(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.VMRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	v, err := e.svc.VMs.Create(r.Context(), req)
	return answer(w, http.StatusCreated, v, err)
}

func (e *Engine) updateVM(w http.ResponseWriter, r *http.Request) error {
	var upd engineapi.VMUpdate
	if err := httpx.DecodeJSON(r, &upd, false); err != nil {
		return err
	}
	v, err := e.svc.VMs.Update(r.Context(), r.PathValue("vm"), upd)
	return answer(w, http.StatusOK, v, err)
}

func (e *Engine) deleteVM(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.VMs.Delete(r.Context(), r.PathValue("vm"), queryBool(r, "force")))
}

// vmAction is the handler of one action route.
func (e *Engine) vmAction(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req engineapi.VMActionRequest
		if err := httpx.DecodeJSON(r, &req, httpx.Optional); err != nil {
			return err
		}
		res, err := e.svc.VMs.Act(r.Context(), r.PathValue("vm"), action, req)
		return answer(w, http.StatusOK, res, err)
	}
}

func (e *Engine) migrateVM(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.MigrationRequest
	if err := httpx.DecodeJSON(r, &req, httpx.Optional); err != nil {
		return err
	}
	m, err := e.svc.VMs.Migrate(r.Context(), r.PathValue("vm"), req)
	return answer(w, http.StatusAccepted, m, err)
}

func (e *Engine) getMigration(w http.ResponseWriter, r *http.Request) error {
	m, err := e.svc.VMs.Migration(r.Context(), r.PathValue("vm"))
	return answer(w, http.StatusOK, m, err)
}

func (e *Engine) cancelMigration(w http.ResponseWriter, r *http.Request) error {
	m, err := e.svc.VMs.CancelMigration(r.Context(), r.PathValue("vm"))
	return answer(w, http.StatusOK, m, err)
}

// vmScreenshot answers GET /api/v1/vms/{vm}/screenshot: the PNG the VM's
// host takes of its display.
func (e *Engine) vmScreenshot(w http.ResponseWriter, r *http.Request) error {
	img, err := e.svc.VMs.Screenshot(r.Context(), r.PathValue("vm"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpx.Bytes(w, "image/png", img)
}
