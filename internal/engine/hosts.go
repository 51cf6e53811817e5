package engine

import (
	"net/http"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
)

// The host routes (service.Hosts, service.Firmware).

// listHosts answers GET /api/v1/hosts?cluster=&status=Up,NonOperational
// &details=true&limit=&continue=: a page of hosts ordered by name and the
// continue token of the next; without details, the hosts come without
// their CPU flags and emulated machines (GET /hosts/{host} has them).
func (e *Engine) listHosts(w http.ResponseWriter, r *http.Request) error {
	q, err := service.HostQueryFrom(r.URL.Query().Get)
	if err != nil {
		return err
	}
	l, err := e.svc.Hosts.List(r.Context(), q)
	if err != nil || l.Encoded == nil {
		return answer(w, http.StatusOK, l.Page, err)
	}
	// Written (copied into the connection's buffers) when JSONRaw
	// returns: the page's buffer serves the next page.
	defer l.Release()
	return httpx.JSONRaw(w, http.StatusOK, l.Encoded)
}

func (e *Engine) getHost(w http.ResponseWriter, r *http.Request) error {
	h, err := e.svc.Hosts.Get(r.Context(), r.PathValue("host"), queryBool(r, "capabilities"))
	return answer(w, http.StatusOK, h, err)
}

func (e *Engine) addHost(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.HostRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	t, err := e.svc.Hosts.Add(r.Context(), req)
	return answer(w, http.StatusCreated, t, err)
}

func (e *Engine) updateHost(w http.ResponseWriter, r *http.Request) error {
	var upd engineapi.HostUpdate
	if err := httpx.DecodeJSON(r, &upd, false); err != nil {
		return err
	}
	h, err := e.svc.Hosts.Update(r.Context(), r.PathValue("host"), upd)
	return answer(w, http.StatusOK, h, err)
}

func (e *Engine) removeHost(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Hosts.Remove(r.Context(), r.PathValue("host")))
}

func (e *Engine) hostMaintenance(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.MaintenanceRequest
	if err := httpx.DecodeJSON(r, &req, httpx.Optional); err != nil {
		return err
	}
	h, err := e.svc.Hosts.Maintenance(r.Context(), r.PathValue("host"), req)
	return answer(w, http.StatusOK, h, err)
}

func (e *Engine) hostEvacuation(w http.ResponseWriter, r *http.Request) error {
	ev, err := e.svc.Hosts.Evacuation(r.Context(), r.PathValue("host"))
	return answer(w, http.StatusOK, ev, err)
}

func (e *Engine) hostActivate(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.ActionRequest
	if err := httpx.DecodeJSON(r, &req, httpx.Optional); err != nil {
		return err
	}
	h, err := e.svc.Hosts.Activate(r.Context(), r.PathValue("host"), req)
	return answer(w, http.StatusOK, h, err)
}

func (e *Engine) hostJoinToken(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.JoinTokenRequest
	if err := httpx.DecodeJSON(r, &req, httpx.Optional); err != nil {
		return err
	}
	t, err := e.svc.Hosts.JoinToken(r.Context(), r.PathValue("host"), req)
	return answer(w, http.StatusOK, t, err)
}

func (e *Engine) getHostFirmware(w http.ResponseWriter, r *http.Request) error {
	f, err := e.svc.Firmware.Status(r.Context(), r.PathValue("host"))
	return answer(w, http.StatusOK, f, err)
}

func (e *Engine) postHostFirmwareImage(w http.ResponseWriter, r *http.Request) error {
	img := service.FirmwareImage{Name: r.URL.Query().Get("name"), Data: r.Body}
	res, err := e.svc.Firmware.Upload(r.Context(), r.PathValue("host"), img)
	return answer(w, http.StatusOK, res, err)
}

// firmwareStep is the handler of one step.
func (e *Engine) firmwareStep(step string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req engineapi.FirmwareStepRequest
		if err := httpx.DecodeJSON(r, &req, httpx.Optional); err != nil {
			return err
		}
		res, err := e.svc.Firmware.Step(r.Context(), r.PathValue("host"), step, req)
		return answer(w, http.StatusOK, res, err)
	}
}
