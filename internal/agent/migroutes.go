package agent

import (
	"net/http"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/httpx"
)

// migrationRoutes are the routes of live migration (migrate.go,
// incoming.go), in the order of the OpenAPI document.
func (a *Agent) migrationRoutes() []route {
	return []route{
		{Method: "POST", Path: "/v1/vms/{id}/migration/plan", Summary: "What a destination must offer for a running VM (its disks probed).", plain: a.postMigrationPlan},
		{Method: "POST", Path: "/v1/vms/{id}/migrate", Summary: "Send a running VM to an announced destination.", plain: a.postMigrate},
		{Method: "GET", Path: "/v1/vms/{id}/migration", Summary: "The VM's migration in flight (or the last one).", plain: a.getMigration},
		{Method: "DELETE", Path: "/v1/vms/{id}/migration", Summary: "Cancel the VM's migration in flight.", plain: a.deleteMigration},
		{Method: "POST", Path: "/v1/incoming", Summary: "Announce a VM about to arrive.", plain: a.postIncoming},
		{Method: "GET", Path: "/v1/incoming/{vm}", Summary: "An announced VM: how far it arrived.", plain: a.getIncoming},
		{Method: "DELETE", Path: "/v1/incoming/{vm}", Summary: "Withdraw an announcement.", plain: a.deleteIncoming},
	}
}

func (a *Agent) postMigrationPlan(w http.ResponseWriter, r *http.Request) error {
	plan, err := a.MigrationPlan(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, plan)
}

func (a *Agent) postMigrate(w http.ResponseWriter, r *http.Request) error {
	var order agentapi.MigrationOrder
	if err := httpx.DecodeJSON(r, &order, false); err != nil {
		return err
	}
	st, err := a.StartMigration(r.Context(), r.PathValue("id"), order)
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusAccepted, st)
}

func (a *Agent) getMigration(w http.ResponseWriter, r *http.Request) error {
	st, err := a.MigrationStatus(r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, st)
}

func (a *Agent) deleteMigration(w http.ResponseWriter, r *http.Request) error {
	st, err := a.CancelMigration(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, st)
}

func (a *Agent) postIncoming(w http.ResponseWriter, r *http.Request) error {
	var req agentapi.IncomingRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	in, err := a.Announce(r.Context(), req)
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusCreated, in)
}

func (a *Agent) getIncoming(w http.ResponseWriter, r *http.Request) error {
	in, err := a.Incoming(r.PathValue("vm"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, in)
}

func (a *Agent) deleteIncoming(w http.ResponseWriter, r *http.Request) error {
	in, err := a.Withdraw(r.Context(), r.PathValue("vm"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, in)
}
