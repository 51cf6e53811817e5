package engine

import (
	_ "embed"
	"net/http"
	"strconv"
	"strings"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/enroll"
	"polyvirt/internal/arch"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
	"polyvirt/internal/store"
)

//go:embed openapi.json
var openAPI []byte

// routes is the API: every route, in the order of the OpenAPI document.
// Each handler decodes the request, calls a service (package service) and
// encodes its answer.
func (e *Engine) routes() []route {
	vmm := store.RoleVMManager // managing VMs: vm-manager or admin
	rs := []route{
		{Method: "GET", Path: "/openapi.json", Public: true, Summary: "This API's OpenAPI document", h: e.getOpenAPI},
		{Method: "GET", Path: "/health", Public: true, Summary: "Whether the engine and its database answer", h: e.getHealth},
		{Method: "POST", Path: "/join", Public: true, Summary: "Enroll an agent with a one-time join token", h: e.postJoin},
		{Method: "GET", Path: "/info", Summary: "The engine that answers", h: e.getInfo},
		{Method: "GET", Path: "/whoami", Summary: "The authenticated user", Role: store.RoleMetrics, h: e.getWhoami},
		{Method: "GET", Path: "/users", Summary: "List users", h: e.listUsers},
		{Method: "POST", Path: "/users", Summary: "Add a user (its token is shown once)", h: e.createUser},
		{Method: "GET", Path: "/users/{user}", Summary: "Show a user", h: e.getUser},
		{Method: "DELETE", Path: "/users/{user}", Summary: "Remove a user", h: e.deleteUser},
		{Method: "POST", Path: "/users/{user}/token", Summary: "Give a user a new API token (the old one stops working)", h: e.rotateToken},
		{Method: "GET", Path: "/cpu-types", Summary: "The cluster CPU types", h: e.listCPUTypes},
		{Method: "GET", Path: "/clusters", Summary: "List clusters", h: e.listClusters},
		{Method: "POST", Path: "/clusters", Summary: "Create a cluster", h: e.createCluster},
		{Method: "GET", Path: "/clusters/{cluster}", Summary: "Show a cluster", h: e.getCluster},
		{Method: "PATCH", Path: "/clusters/{cluster}", Summary: "Change a cluster", h: e.updateCluster},
		{Method: "DELETE", Path: "/clusters/{cluster}", Summary: "Delete a cluster without hosts or VMs", h: e.deleteCluster},
		{Method: "GET", Path: "/hosts", Summary: "List hosts", h: e.listHosts},
		{Method: "POST", Path: "/hosts", Summary: "Add a host; answers its one-time join token", h: e.addHost},
		{Method: "GET", Path: "/hosts/{host}", Summary: "Show a host", h: e.getHost},
		{Method: "PATCH", Path: "/hosts/{host}", Summary: "Rename a host, change its address or cluster", h: e.updateHost},
		{Method: "DELETE", Path: "/hosts/{host}", Summary: "Remove a host", h: e.removeHost},
		{Method: "POST", Path: "/hosts/{host}/maintenance", Summary: "Switch a host to Maintenance: its VMs migrate to other hosts of its cluster first (PreparingForMaintenance); refused, naming each VM that cannot leave and why, unless stopVms", h: e.hostMaintenance},
		{Method: "GET", Path: "/hosts/{host}/evacuation", Summary: "A host's evacuation (its switch to Maintenance): each VM's outcome", h: e.hostEvacuation},
		{Method: "POST", Path: "/hosts/{host}/activate", Summary: "Activate a host (admission again)", h: e.hostActivate},
		{Method: "POST", Path: "/hosts/{host}/join-token", Summary: "Issue a new one-time join token for a host", h: e.hostJoinToken},
		{Method: "GET", Path: "/hosts/{host}/firmware", Summary: "A host's system firmware: levels, the current operation, the engine's records", h: e.getHostFirmware},
		{Method: "POST", Path: "/hosts/{host}/firmware/image", Summary: "Upload a firmware image (the vendor's RPM or a .img) to a host", h: e.postHostFirmwareImage, MaxBody: MaxFirmwareUpload},
		{Method: "POST", Path: "/hosts/{host}/firmware/validate", Summary: "Validate the uploaded firmware image against the host (update_flash -v)", h: e.firmwareStep("validate")},
		{Method: "POST", Path: "/hosts/{host}/firmware/flash", Summary: "Flash the validated image: the host in Maintenance, no VM running; it reboots (update_flash -f)", h: e.firmwareStep("flash")},
		{Method: "POST", Path: "/hosts/{host}/firmware/commit", Summary: "Keep the new firmware level (update_flash -c)", h: e.firmwareStep("commit")},
		{Method: "POST", Path: "/hosts/{host}/firmware/reject", Summary: "Return to the old firmware level (update_flash -r)", h: e.firmwareStep("reject")},
		{Method: "POST", Path: "/hosts/{host}/firmware/cancel", Summary: "Cancel an uploaded, validated or rebooting firmware operation (an ended one is cleared)", h: e.firmwareStep("cancel")},
		{Method: "POST", Path: "/hosts/{host}/firmware/clear", Summary: "Clear an ended firmware operation (failed, cancelled, committed, rejected): the host shows none; the engine keeps its record", h: e.firmwareStep("clear")},
		{Method: "GET", Path: "/clusters/{cluster}/firmware/rollout", Summary: "A cluster's rolling firmware update: the one under way, else the last one", h: e.getRollout},
		{Method: "POST", Path: "/clusters/{cluster}/firmware/rollout", Summary: "Start a rolling firmware update of a cluster's hosts: the image (the body) validated on every host first, then host by host (query: name, hosts, maxUnavailable, soak, commit, reason)", h: e.postRollout, MaxBody: MaxFirmwareUpload},
		{Method: "POST", Path: "/clusters/{cluster}/firmware/rollout/pause", Summary: "Pause a rollout: no further host starts", h: e.rolloutAction("pause")},
		{Method: "POST", Path: "/clusters/{cluster}/firmware/rollout/resume", Summary: "Resume a paused rollout", h: e.rolloutAction("resume")},
		{Method: "POST", Path: "/clusters/{cluster}/firmware/rollout/abort", Summary: "Abort a rollout: no further host starts, a flashed host's update is rejected", h: e.rolloutAction("abort")},
		{Method: "GET", Path: "/events", Summary: "The audit log, newest first", h: e.listEvents},
		{Method: "GET", Path: "/vms", Summary: "List VMs", h: e.listVMs},
		{Method: "POST", Path: "/vms", Summary: "Create a VM in a cluster (its definition checked against the cluster)", Role: vmm, h: e.createVM},
		{Method: "GET", Path: "/vms/{vm}", Summary: "Show a VM", h: e.getVM},
		{Method: "PATCH", Path: "/vms/{vm}", Summary: "Change a VM (definition and cluster while it is Down; pin and HA any time)", Role: vmm, h: e.updateVM},
		{Method: "DELETE", Path: "/vms/{vm}", Summary: "Remove a VM (Down, or with force=true)", Role: vmm, h: e.deleteVM},
	}
	summaries := map[string]string{
		"start":    "Schedule a VM on a host of its cluster and start it",
		"shutdown": "Ask a VM's guest to power off; it is powered off when not down within the time-out (timeoutSeconds, else the cluster's) unless force is false",
		"destroy":  "Power a VM off at once",
		"reboot":   "Ask a VM's guest to reboot",
		"pause":    "Pause a VM",
		"resume":   "Resume a paused VM",
	}
	for _, a := range service.VMActions {
		rs = append(rs, route{Method: "POST", Path: "/vms/{vm}/" + a, Summary: summaries[a], Role: vmm, h: e.vmAction(a)})
	}
	rs = append(rs,
		route{Method: "GET", Path: "/vms/{vm}/screenshot", Summary: "A PNG screenshot of a running VM's display", h: e.vmScreenshot},
		route{Method: "GET", Path: "/vms/{vm}/console", Summary: "The serial console of a running VM (websocket); it follows the VM when it migrates", Stream: true, h: e.vmConsole},
		route{Method: "POST", Path: "/vms/{vm}/migrate", Summary: "Migrate a running VM to another host of its cluster (live); answers at once with the migration as it starts", Role: vmm, h: e.migrateVM},
		route{Method: "GET", Path: "/vms/{vm}/migration", Summary: "A VM's migration in flight (its phase and figures), or its last one", h: e.getMigration},
		route{Method: "DELETE", Path: "/vms/{vm}/migration", Summary: "Cancel a VM's migration in flight: it keeps running on its source", Role: vmm, h: e.cancelMigration},
		route{Method: "GET", Path: "/metrics/targets", Summary: "The agents to scrape (Prometheus HTTP service discovery)", Role: store.RoleMetrics, h: e.getScrapeTargets},
		route{Method: "POST", Path: "/metrics/scrape-certificates", Summary: "Issue a scrape certificate: it reads the agents' metrics and nothing else", h: e.postScrapeCertificate},
	)
	return append(append(rs, e.storageRoutes()...), e.webRoutes()...)
}

// answer writes a service's answer: v with status, or the error.
func answer[T any](w http.ResponseWriter, status int, v T, err error) error {
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, status, v)
}

// noContent answers 204, or the error.
func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// list splits a comma-separated query value ("" is none).
func list(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func queryBool(r *http.Request, name string) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return b
}

func (e *Engine) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	return httpx.JSONRaw(w, http.StatusOK, openAPI)
}

func (e *Engine) getHealth(w http.ResponseWriter, r *http.Request) error {
	h, ok := e.svc.System.Health(r.Context())
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return httpx.WriteJSON(w, status, h)
}

func (e *Engine) postJoin(w http.ResponseWriter, r *http.Request) error {
	var req enroll.JoinRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	resp, err := e.svc.Enrollment.Join(r.Context(), req, httpx.RemoteIP(r))
	return answer(w, http.StatusOK, resp, err)
}

func (e *Engine) getInfo(w http.ResponseWriter, r *http.Request) error {
	info, err := e.svc.System.Info(r.Context())
	return answer(w, http.StatusOK, info, err)
}

func (e *Engine) getWhoami(w http.ResponseWriter, r *http.Request) error {
	u, err := e.svc.Users.Whoami(r.Context())
	return answer(w, http.StatusOK, u, err)
}

func (e *Engine) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := e.svc.Users.List(r.Context())
	return answer(w, http.StatusOK, us, err)
}

func (e *Engine) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := e.svc.Users.Get(r.Context(), r.PathValue("user"))
	return answer(w, http.StatusOK, u, err)
}

func (e *Engine) createUser(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.UserRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	ut, err := e.svc.Users.Create(r.Context(), req)
	return answer(w, http.StatusCreated, ut, err)
}

func (e *Engine) deleteUser(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Users.Delete(r.Context(), r.PathValue("user")))
}

func (e *Engine) rotateToken(w http.ResponseWriter, r *http.Request) error {
	ut, err := e.svc.Users.RotateToken(r.Context(), r.PathValue("user"))
	return answer(w, http.StatusOK, ut, err)
}

func (e *Engine) listCPUTypes(w http.ResponseWriter, r *http.Request) error {
	a := arch.Unknown
	if name := r.URL.Query().Get("arch"); name != "" {
		var err error
		if a, err = arch.Parse(name); err != nil {
			return invalidField("arch", "%v", err)
		}
	}
	return httpx.WriteJSON(w, http.StatusOK, e.svc.Clusters.CPUTypes(a))
}

func (e *Engine) listEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := service.EventQueryFrom(r.URL.Query().Get)
	if err != nil {
		return err
	}
	page, err := e.svc.Events.List(r.Context(), q)
	return answer(w, http.StatusOK, page, err)
}
