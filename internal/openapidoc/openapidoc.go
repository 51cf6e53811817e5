// Package openapidoc keeps an API's OpenAPI document in step with its
// route table and the contract layer: every route has its operation (and
// every operation a route), with an operationId, the least role that may
// call it, its security, and its error answers — every coded error is a
// 4xx or 5xx answer whose body is api.ErrorBody (ErrorBody in the
// document). Complete makes a document so; the APIs' tests check that the
// documents they serve are complete (go test -update rewrites them) and
// lint them with Redocly CLI's recommended rules (Lint).
package openapidoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Route is one route of an API's table, as its document shows it.
type Route struct {
	// Method and Path (the document's path, its prefix included).
	Method, Path string
	// Summary says what it does.
	Summary string
	// Role is the least role that may call it ("" when the API has no
	// roles); Public marks an operation without authentication.
	Role   string
	Public bool
}

// Options say what every operation of an API shares.
type Options struct {
	// Security is the document's security scheme (name → scheme), every
	// operation's but the public ones'.
	Security map[string]any
	// License is the document's license (info.license).
	License map[string]any
	// OpenAPI is the document's version ("" keeps it).
	OpenAPI string
}

// errorResponse is the shared answer of every error.
var errorResponse = map[string]any{
	"description": "An error: its code (error.code) says which, with a message and the field at fault; several at once in errors. Every code and its status are in docs/api.md.",
	"content": map[string]any{
		"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/ErrorBody"}},
	},
}

// OperationID is a route's operationId: the method and the path's words
// ("get_vms_vm" for GET /api/v1/vms/{vm}), after prefix.
func OperationID(method, path, prefix string) string {
	p := strings.TrimPrefix(path, prefix)
	var words []string
	for _, w := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '{' || r == '}' || r == '.' || r == '-' }) {
		words = append(words, w)
	}
	return strings.ToLower(method) + "_" + strings.Join(words, "_")
}

// Complete completes a document (JSON) for a route table: an operation per
// route (the missing ones are added with the route's summary), its
// operationId (kept when it has one), x-polyvirt-role, security, and the
// 4XX and 5XX answers of the shared Error response. prefix is the API's
// path prefix, for the operationIds.
func Complete(doc []byte, routes []Route, prefix string, o Options) ([]byte, error) {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("the OpenAPI document: %v", err)
	}
	if o.OpenAPI != "" {
		d["openapi"] = o.OpenAPI
	}
	info := obj(d, "info")
	if o.License != nil {
		info["license"] = o.License
	}
	comps := obj(d, "components")
	obj(comps, "responses")["Error"] = errorResponse
	var schemeName string
	for name, s := range o.Security {
		obj(comps, "securitySchemes")[name] = s
		schemeName = name
	}
	if schemeName != "" {
		d["security"] = []any{map[string]any{schemeName: []any{}}}
	}
	paths := obj(d, "paths")
	for _, rt := range routes {
		item := obj(paths, rt.Path)
		op := obj(item, strings.ToLower(rt.Method))
		if _, ok := op["summary"]; !ok {
			op["summary"] = rt.Summary
		}
		if _, ok := op["operationId"]; !ok {
			op["operationId"] = OperationID(rt.Method, rt.Path, prefix)
		}
		if rt.Role != "" {
			op["x-polyvirt-role"] = rt.Role
		}
		if rt.Public {
			op["security"] = []any{}
		} else {
			delete(op, "security")
		}
		resp := obj(op, "responses")
		delete(resp, "default")
		for code, r := range resp {
			if strings.HasPrefix(code, "4") || strings.HasPrefix(code, "5") {
				if m, ok := r.(map[string]any); ok {
					_, ref := m["$ref"]
					if _, has := m["content"]; !has && !ref {
						m["content"] = errorResponse["content"]
					}
				}
			}
		}
		resp["4XX"] = map[string]any{"$ref": "#/components/responses/Error"}
		resp["5XX"] = map[string]any{"$ref": "#/components/responses/Error"}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Check lists what a document says that its route table does not: an
// operation without a route (or a route without an operation), one
// without an operationId or with one another operation has, without its
// success answer or the shared Error response for 4XX and 5XX, a role that
// is not the route's.
func Check(doc []byte, routes []Route) ([]string, error) {
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	want := map[string]Route{}
	for _, rt := range routes {
		want[strings.ToLower(rt.Method)+" "+rt.Path] = rt
	}
	var problems []string
	ids := map[string]string{}
	for path, item := range d.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			key := method + " " + path
			rt, ok := want[key]
			if !ok {
				problems = append(problems, key+": no route")
				continue
			}
			delete(want, key)
			var op struct {
				OperationID string                     `json:"operationId"`
				Role        string                     `json:"x-polyvirt-role"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("%s: %v", key, err)
			}
			if op.OperationID == "" {
				problems = append(problems, key+": no operationId")
			} else if other, dup := ids[op.OperationID]; dup {
				problems = append(problems, fmt.Sprintf("%s: operationId %s is %s's too", key, op.OperationID, other))
			}
			ids[op.OperationID] = key
			if op.Role != rt.Role {
				problems = append(problems, fmt.Sprintf("%s: x-polyvirt-role %q, the route's is %q", key, op.Role, rt.Role))
			}
			for _, code := range []string{"4XX", "5XX"} {
				if !strings.Contains(string(op.Responses[code]), "#/components/responses/Error") {
					problems = append(problems, fmt.Sprintf("%s: no %s answer of the Error response", key, code))
				}
			}
			success := false
			for code := range op.Responses {
				success = success || strings.HasPrefix(code, "2") || code == "101"
			}
			if !success {
				problems = append(problems, key+": no success answer (2xx, or 101 for a websocket)")
			}
		}
	}
	for key := range want {
		problems = append(problems, key+": a route without an operation")
	}
	sort.Strings(problems)
	return problems, nil
}

func obj(m map[string]any, key string) map[string]any {
	if v, ok := m[key].(map[string]any); ok {
		return v
	}
	v := map[string]any{}
	m[key] = v
	return v
}
