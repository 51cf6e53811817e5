package engine

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/httpx"
	"polyvirt/internal/store"
)

//go:embed openapi.json
var openAPI []byte

// routes is the API: every route, in the order of the OpenAPI document.
func (e *Engine) routes() []route {
	return append([]route{
		{Method: "GET", Path: "/openapi.json", Public: true, Summary: "This API's OpenAPI document", h: e.getOpenAPI},
		{Method: "GET", Path: "/health", Public: true, Summary: "Whether the engine and its database answer", h: e.getHealth},
		{Method: "POST", Path: "/join", Public: true, Summary: "Enroll an agent with a one-time join token", h: e.postJoin},
		{Method: "GET", Path: "/info", Summary: "The engine that answers", h: e.getInfo},
		{Method: "GET", Path: "/whoami", Summary: "The authenticated user", h: e.getWhoami},
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
		{Method: "POST", Path: "/hosts/{host}/maintenance", Summary: "Switch a host to Maintenance", h: e.hostMaintenance},
		{Method: "POST", Path: "/hosts/{host}/activate", Summary: "Activate a host (admission again)", h: e.hostActivate},
		{Method: "POST", Path: "/hosts/{host}/join-token", Summary: "Issue a new one-time join token for a host", h: e.hostJoinToken},
		{Method: "GET", Path: "/hosts/{host}/firmware", Summary: "A host's system firmware: levels, the current operation, the engine's records", h: e.getHostFirmware},
		{Method: "POST", Path: "/hosts/{host}/firmware/image", Summary: "Upload a firmware image (the vendor's RPM or a .img) to a host", h: e.postHostFirmwareImage, MaxBody: MaxFirmwareUpload},
		{Method: "POST", Path: "/hosts/{host}/firmware/validate", Summary: "Validate the uploaded firmware image against the host (update_flash -v)", h: e.firmwareStep("validate")},
		{Method: "POST", Path: "/hosts/{host}/firmware/flash", Summary: "Flash the validated image: the host in Maintenance, no VM running; it reboots (update_flash -f)", h: e.firmwareStep("flash")},
		{Method: "POST", Path: "/hosts/{host}/firmware/commit", Summary: "Keep the new firmware level (update_flash -c)", h: e.firmwareStep("commit")},
		{Method: "POST", Path: "/hosts/{host}/firmware/reject", Summary: "Return to the old firmware level (update_flash -r)", h: e.firmwareStep("reject")},
		{Method: "POST", Path: "/hosts/{host}/firmware/cancel", Summary: "Drop an uploaded or validated firmware image", h: e.firmwareStep("cancel")},
		{Method: "GET", Path: "/events", Summary: "The audit log, newest first", h: e.listEvents},
	}, e.vmRoutes()...)
}

func (e *Engine) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPI)
	return err
}

func (e *Engine) getHealth(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	h := engineapi.Health{Status: "ok", Leader: e.IsLeader()}
	status := http.StatusOK
	if err := e.st.Ping(ctx); err != nil {
		h.Status, h.Error = "unavailable", err.Error()
		status = http.StatusServiceUnavailable
	}
	return httpx.WriteJSON(w, status, h)
}

func (e *Engine) getInfo(w http.ResponseWriter, r *http.Request) error {
	v, err := e.st.SchemaVersion(r.Context())
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, engineapi.Info{Name: e.settings.Name, Version: Version, Backend: string(e.st.Backend()),
		SchemaVersion: v, Leader: e.IsLeader(), CAFingerprint: e.caFP, Time: time.Now().UTC()})
}

func (e *Engine) getWhoami(w http.ResponseWriter, r *http.Request) error {
	return httpx.WriteJSON(w, http.StatusOK, userView(*userFrom(r.Context())))
}

func userView(u store.User) engineapi.User {
	return engineapi.User{ID: u.ID, Name: u.Name, Role: string(u.Role), Version: u.Version, Created: u.Created, Updated: u.Updated}
}

func (e *Engine) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := e.st.ListUsers(r.Context())
	if err != nil {
		return err
	}
	out := make([]engineapi.User, 0, len(us))
	for _, u := range us {
		out = append(out, userView(u))
	}
	return httpx.WriteJSON(w, http.StatusOK, out)
}

func (e *Engine) findUser(ctx context.Context, ref string) (store.User, error) {
	u, err := e.st.GetUserByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if u2, err2 := e.st.GetUser(ctx, ref); err2 == nil {
			return u2, nil
		}
		return u, api.NewError(http.StatusNotFound, api.CodeNotFound, "user %q does not exist", ref)
	}
	return u, err
}

func (e *Engine) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := e.findUser(r.Context(), r.PathValue("user"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, userView(u))
}

func (e *Engine) createUser(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req engineapi.UserRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	if err := store.ValidName(req.Name); err != nil {
		return invalidField("name", "%v", err)
	}
	if req.Role == "" {
		req.Role = string(store.RoleReadOnly)
	}
	if !store.Role(req.Role).Valid() {
		return invalidField("role", "role %q: want admin, vm-manager or readonly", req.Role)
	}
	token, hash, err := NewAPIToken()
	if err != nil {
		return err
	}
	u := store.User{Name: req.Name, Role: store.Role(req.Role), TokenHash: hash}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, &u); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.add", ObjectKind: "user", ObjectID: u.ID, ObjectName: u.Name,
			Message: fmt.Sprintf("User %s was added with the %s role by %s.", u.Name, u.Role, userName(ctx))})
	})
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusCreated, engineapi.UserToken{User: userView(u), Token: token})
}

func (e *Engine) deleteUser(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	u, err := e.findUser(ctx, r.PathValue("user"))
	if err != nil {
		return err
	}
	if me := userFrom(ctx); me != nil && me.ID == u.ID {
		return api.NewError(http.StatusConflict, api.CodeInUse, "user %s cannot remove itself", u.Name)
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if u.Role == store.RoleAdmin {
			all, err := tx.ListUsers(ctx)
			if err != nil {
				return err
			}
			admins := 0
			for _, x := range all {
				if x.Role == store.RoleAdmin {
					admins++
				}
			}
			if admins <= 1 {
				return api.NewError(http.StatusConflict, api.CodeInUse, "user %s is the last administrator", u.Name)
			}
		}
		if err := tx.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.remove", ObjectKind: "user", ObjectID: u.ID, ObjectName: u.Name,
			Message: fmt.Sprintf("User %s was removed by %s.", u.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Engine) rotateToken(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	u, err := e.findUser(ctx, r.PathValue("user"))
	if err != nil {
		return err
	}
	token, hash, err := NewAPIToken()
	if err != nil {
		return err
	}
	u.TokenHash = hash
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpdateUser(ctx, &u); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.token", ObjectKind: "user", ObjectID: u.ID, ObjectName: u.Name,
			Message: fmt.Sprintf("User %s was given a new API token by %s.", u.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, engineapi.UserToken{User: userView(u), Token: token})
}

func (e *Engine) listCPUTypes(w http.ResponseWriter, r *http.Request) error {
	types := cpucatalog.All()
	if name := r.URL.Query().Get("arch"); name != "" {
		a, err := arch.Parse(name)
		if err != nil {
			return invalidField("arch", "%v", err)
		}
		types = cpucatalog.Types(a)
	}
	return httpx.WriteJSON(w, http.StatusOK, cpucatalog.APITypes(types))
}

func eventView(ev store.Event) engineapi.Event {
	return engineapi.Event{ID: ev.ID, Time: ev.Time, User: ev.User, Action: ev.Action, Severity: string(ev.Severity),
		ObjectKind: ev.ObjectKind, ObjectID: ev.ObjectID, ObjectName: ev.ObjectName, Code: ev.Code,
		Message: ev.Message, Reason: ev.Reason, CorrelationID: ev.CorrelationID}
}

// listEvents answers GET /api/v1/events?host=&cluster=&kind=&object=&user=
// &action=&code=&severity=&since=&until=&before=&limit=.
func (e *Engine) listEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	f := store.EventFilter{ObjectKind: q.Get("kind"), ObjectID: q.Get("object"), User: q.Get("user"),
		Action: q.Get("action"), Code: q.Get("code"), CorrelationID: q.Get("correlation"),
		MinSeverity: store.Severity(q.Get("severity"))}
	if f.MinSeverity != "" && !f.MinSeverity.Valid() {
		return invalidField("severity", "severity %q: want info, warning, error or alert", f.MinSeverity)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return invalidField(p.name, "%s %q: want an RFC 3339 time (2024-05-01T12:00:00Z)", p.name, v)
			}
			*p.dst = t
		}
	}
	for _, p := range []struct {
		name     string
		min, max int64
		set      func(int64)
	}{
		{"before", 1, 1 << 62, func(v int64) { f.Before = v }},
		{"limit", 1, 1000, func(v int64) { f.Limit = int(v) }},
	} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < p.min || n > p.max {
				return invalidField(p.name, "%s %q: want a number from %d to %d", p.name, v, p.min, p.max)
			}
			p.set(n)
		}
	}
	if ref := q.Get("host"); ref != "" {
		h, err := e.findHost(ctx, ref)
		if err != nil {
			return err
		}
		f.ObjectKind, f.ObjectID = "host", h.ID
	}
	if ref := q.Get("cluster"); ref != "" {
		c, err := e.findCluster(ctx, ref)
		if err != nil {
			return err
		}
		hosts, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID, Brief: true})
		if err != nil {
			return err
		}
		ids := []string{c.ID}
		for _, h := range hosts {
			ids = append(ids, h.ID)
		}
		if len(ids) > 1000 {
			ids = ids[:1000]
		}
		f.ObjectIDs = ids
	}
	page, err := e.st.ListEvents(ctx, f)
	if err != nil {
		return err
	}
	out := engineapi.EventPage{Events: make([]engineapi.Event, 0, len(page.Events)), Next: page.Next}
	for _, ev := range page.Events {
		out.Events = append(out.Events, eventView(ev))
	}
	return httpx.WriteJSON(w, http.StatusOK, out)
}

// findCluster finds a cluster by name or ID.
func (e *Engine) findCluster(ctx context.Context, ref string) (store.Cluster, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Cluster{}, invalidField("cluster", "no cluster named")
	}
	c, err := e.st.GetClusterByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if c2, err2 := e.st.GetCluster(ctx, ref); err2 == nil {
			return c2, nil
		}
		return c, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Field: "cluster",
			Message: fmt.Sprintf("cluster %q does not exist (polyvirt cluster list)", ref)}
	}
	return c, err
}

// findHost finds a host by name or ID.
func (e *Engine) findHost(ctx context.Context, ref string) (store.Host, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Host{}, invalidField("host", "no host named")
	}
	h, err := e.st.GetHostByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if h2, err2 := e.st.GetHost(ctx, ref); err2 == nil {
			return h2, nil
		}
		return h, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Field: "host",
			Message: fmt.Sprintf("host %q does not exist (polyvirt host list)", ref)}
	}
	return h, err
}
