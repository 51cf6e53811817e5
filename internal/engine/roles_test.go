package engine

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/store"
)

// routeRoles is the least role of every route: "" for a public one. A new
// route must be added here, with the role it needs.
var routeRoles = map[string]store.Role{
	"GET /api/v1/openapi.json":                                "",
	"GET /api/v1/health":                                      "",
	"POST /api/v1/join":                                       "",
	"GET /api/v1/info":                                        store.RoleReadOnly,
	"GET /api/v1/whoami":                                      store.RoleMetrics,
	"GET /api/v1/users":                                       store.RoleReadOnly,
	"POST /api/v1/users":                                      store.RoleAdmin,
	"GET /api/v1/users/{user}":                                store.RoleReadOnly,
	"DELETE /api/v1/users/{user}":                             store.RoleAdmin,
	"POST /api/v1/users/{user}/token":                         store.RoleAdmin,
	"GET /api/v1/cpu-types":                                   store.RoleReadOnly,
	"GET /api/v1/clusters":                                    store.RoleReadOnly,
	"POST /api/v1/clusters":                                   store.RoleAdmin,
	"GET /api/v1/clusters/{cluster}":                          store.RoleReadOnly,
	"PATCH /api/v1/clusters/{cluster}":                        store.RoleAdmin,
	"DELETE /api/v1/clusters/{cluster}":                       store.RoleAdmin,
	"GET /api/v1/hosts":                                       store.RoleReadOnly,
	"POST /api/v1/hosts":                                      store.RoleAdmin,
	"GET /api/v1/hosts/{host}":                                store.RoleReadOnly,
	"PATCH /api/v1/hosts/{host}":                              store.RoleAdmin,
	"DELETE /api/v1/hosts/{host}":                             store.RoleAdmin,
	"POST /api/v1/hosts/{host}/maintenance":                   store.RoleAdmin,
	"POST /api/v1/hosts/{host}/activate":                      store.RoleAdmin,
	"POST /api/v1/hosts/{host}/join-token":                    store.RoleAdmin,
	"GET /api/v1/hosts/{host}/firmware":                       store.RoleReadOnly,
	"POST /api/v1/hosts/{host}/firmware/image":                store.RoleAdmin,
	"POST /api/v1/hosts/{host}/firmware/validate":             store.RoleAdmin,
	"POST /api/v1/hosts/{host}/firmware/flash":                store.RoleAdmin,
	"POST /api/v1/hosts/{host}/firmware/commit":               store.RoleAdmin,
	"POST /api/v1/hosts/{host}/firmware/reject":               store.RoleAdmin,
	"POST /api/v1/hosts/{host}/firmware/cancel":               store.RoleAdmin,
	"POST /api/v1/hosts/{host}/firmware/clear":                store.RoleAdmin,
	"GET /api/v1/clusters/{cluster}/firmware/rollout":         store.RoleReadOnly,
	"POST /api/v1/clusters/{cluster}/firmware/rollout":        store.RoleAdmin,
	"POST /api/v1/clusters/{cluster}/firmware/rollout/pause":  store.RoleAdmin,
	"POST /api/v1/clusters/{cluster}/firmware/rollout/resume": store.RoleAdmin,
	"POST /api/v1/clusters/{cluster}/firmware/rollout/abort":  store.RoleAdmin,
	"GET /api/v1/events":                                      store.RoleReadOnly,
	"GET /api/v1/vms":                                         store.RoleReadOnly,
	"POST /api/v1/vms":                                        store.RoleVMManager,
	"GET /api/v1/vms/{vm}":                                    store.RoleReadOnly,
	"PATCH /api/v1/vms/{vm}":                                  store.RoleVMManager,
	"DELETE /api/v1/vms/{vm}":                                 store.RoleVMManager,
	"POST /api/v1/vms/{vm}/start":                             store.RoleVMManager,
	"POST /api/v1/vms/{vm}/shutdown":                          store.RoleVMManager,
	"POST /api/v1/vms/{vm}/destroy":                           store.RoleVMManager,
	"POST /api/v1/vms/{vm}/reboot":                            store.RoleVMManager,
	"POST /api/v1/vms/{vm}/pause":                             store.RoleVMManager,
	"POST /api/v1/vms/{vm}/resume":                            store.RoleVMManager,
	"GET /api/v1/vms/{vm}/screenshot":                         store.RoleReadOnly,
	"GET /api/v1/vms/{vm}/console":                            store.RoleReadOnly,
	"GET /api/v1/pools":                                       store.RoleReadOnly,
	"POST /api/v1/pools":                                      store.RoleAdmin,
	"GET /api/v1/pools/{pool}":                                store.RoleReadOnly,
	"DELETE /api/v1/pools/{pool}":                             store.RoleAdmin,
	"GET /api/v1/volumes":                                     store.RoleReadOnly,
	"POST /api/v1/volumes":                                    store.RoleVMManager,
	"GET /api/v1/volumes/{pool}/{volume}":                     store.RoleReadOnly,
	"DELETE /api/v1/volumes/{pool}/{volume}":                  store.RoleVMManager,
	"POST /api/v1/volumes/{pool}/{volume}/resize":             store.RoleVMManager,
	"POST /api/v1/volumes/{pool}/{volume}/clone":              store.RoleVMManager,
	"PUT /api/v1/volumes/{pool}/{volume}/data":                store.RoleVMManager,
	"GET /api/v1/volumes/{pool}/{volume}/upload":              store.RoleReadOnly,
	"DELETE /api/v1/volumes/{pool}/{volume}/upload":           store.RoleVMManager,
	"GET /api/v1/images":                                      store.RoleReadOnly,
	"POST /api/v1/images":                                     store.RoleAdmin,
	"GET /api/v1/images/{image}":                              store.RoleReadOnly,
	"DELETE /api/v1/images/{image}":                           store.RoleAdmin,
	"GET /api/v1/templates":                                   store.RoleReadOnly,
	"POST /api/v1/templates":                                  store.RoleVMManager,
	"GET /api/v1/templates/{template}":                        store.RoleReadOnly,
	"DELETE /api/v1/templates/{template}":                     store.RoleVMManager,
	"GET /api/v1/vms/{vm}/snapshots":                          store.RoleReadOnly,
	"POST /api/v1/vms/{vm}/snapshots":                         store.RoleVMManager,
	"POST /api/v1/vms/{vm}/snapshots/{snapshot}/revert":       store.RoleVMManager,
	"DELETE /api/v1/vms/{vm}/snapshots/{snapshot}":            store.RoleVMManager,
	"GET /api/v1/metrics/targets":                             store.RoleMetrics,
	"POST /api/v1/metrics/scrape-certificates":                store.RoleAdmin,
	"POST /api/v1/vms/{vm}/migrate":                           store.RoleVMManager,
	"GET /api/v1/vms/{vm}/migration":                          store.RoleReadOnly,
	"DELETE /api/v1/vms/{vm}/migration":                       store.RoleVMManager,
	"GET /api/v1/hosts/{host}/evacuation":                     store.RoleReadOnly,
	// The web UI's.
	"GET /api/v1/session":                       store.RoleReadOnly,
	"POST /api/v1/session":                      "",
	"DELETE /api/v1/session":                    store.RoleReadOnly,
	"PUT /api/v1/users/{user}/password":         store.RoleReadOnly,
	"GET /api/v1/clusters/{cluster}/vm-options": store.RoleReadOnly,
	"POST /api/v1/clusters/{cluster}/vm-check":  store.RoleReadOnly,
	"GET /api/v1/overview":                      store.RoleReadOnly,
	"GET /api/v1/events/stream":                 store.RoleReadOnly,
	"GET /api/v1/hosts/{host}/stats/history":    store.RoleReadOnly,
	"POST /api/v1/vms/{vm}/console-ticket":      store.RoleVMManager,
	"GET /api/v1/vms/{vm}/vnc":                  "",
}

// TestRouteRoles: every route needs the role of routeRoles, the OpenAPI
// document says so (x-polyvirt-role), and over HTTP each role is let
// through exactly the routes its rank allows: the others answer 403
// PERMISSION_DENIED before anything is done (objects that do not exist
// answer 404 to a role let through).
func TestRouteRoles(t *testing.T) {
	e := &Engine{}
	var got, want []string
	for _, rt := range e.routes() {
		got = append(got, rt.Method+" /api/v1"+rt.Path+" "+string(rt.needs()))
	}
	for k, r := range routeRoles {
		want = append(want, k+" "+string(r))
	}
	sort.Strings(got)
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("route roles (-want +got):\n%s", diff)
	}

	var doc struct {
		Paths map[string]map[string]struct {
			Role string `json:"x-polyvirt-role"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			k := strings.ToUpper(m) + " " + p
			if r, ok := routeRoles[k]; ok && op.Role != string(r) {
				t.Errorf("openapi.json: %s has x-polyvirt-role %q; the route needs %q", k, op.Role, r)
			}
		}
	}

	te := startEngine(t, testMonitor)
	tokens := map[store.Role]string{store.RoleAdmin: te.token}
	for _, r := range []store.Role{store.RoleVMManager, store.RoleReadOnly, store.RoleMetrics} {
		u, err := te.admin.CreateUser(ctx, "user-"+string(r), string(r))
		if err != nil {
			t.Fatal(err)
		}
		if u.User.Role != string(r) {
			t.Fatalf("created %+v", u.User)
		}
		tokens[r] = u.Token
	}
	fill := strings.NewReplacer("{user}", "nobody", "{cluster}", "nowhere", "{host}", "nohost", "{vm}", "novm")
	for k, need := range routeRoles {
		if need == "" {
			continue
		}
		method, path, _ := strings.Cut(k, " ")
		for _, have := range store.Roles {
			t.Run(k+" as "+string(have), func(t *testing.T) {
				st, eb := te.status(t, method, fill.Replace(path), tokens[have], []byte(`{}`))
				denied := st == 403 && eb.Error.Code == api.CodePermissionDenied
				if allowed := allows(have, need); allowed == denied {
					t.Errorf("%s as %s: %d %s (%s); want it allowed %v", k, have, st, eb.Error.Code, eb.Error.Message, allowed)
				}
				if denied && !strings.Contains(eb.Error.Message, "needs the "+string(need)+" role") {
					t.Errorf("refusal does not name the role needed: %s", eb.Error.Message)
				}
			})
		}
	}
}

// TestCreateUserRoles: users get any of the four roles, and no other.
func TestCreateUserRoles(t *testing.T) {
	te := startEngine(t, testMonitor)
	for _, r := range store.Roles {
		u, err := te.admin.CreateUser(ctx, "u-"+string(r), string(r))
		if err != nil || u.User.Role != string(r) {
			t.Errorf("%s: %+v %v", r, u, err)
		}
		who, err := te.client(t, u.Token).WhoAmI(ctx)
		if err != nil || who.Role != string(r) {
			t.Errorf("whoami of a %s: %+v %v", r, who, err)
		}
	}
	st, eb, _ := te.raw(t, "POST", "/api/v1/users", te.token, []byte(`{"name":"root","role":"superuser"}`))
	if st != 400 || eb.Error.Code != api.CodeInvalidArgument || eb.Error.Field != "role" || !strings.Contains(eb.Error.Message, "admin, vm-manager, readonly or metrics") {
		t.Errorf("an unknown role: %d %+v", st, eb)
	}
}
