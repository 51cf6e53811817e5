package agent

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"polyvirt/internal/openapidoc"
)

var update = flag.Bool("update", false, "rewrite the OpenAPI document from the route table")

// docRoutes is the route table as the OpenAPI document shows it.
func docRoutes() []openapidoc.Route {
	var out []openapidoc.Route
	for _, rt := range (&Agent{}).routes() {
		out = append(out, openapidoc.Route{Method: rt.Method, Path: rt.Path, Summary: rt.Summary})
	}
	return out
}

// agentDocOptions: every operation needs the client certificate the
// agent's CA signed (mutual TLS, an OpenAPI 3.1 security scheme).
var agentDocOptions = openapidoc.Options{
	OpenAPI: "3.1.0",
	Security: map[string]any{"mutualTLS": map[string]any{"type": "mutualTLS",
		"description": "A TLS client certificate signed by the CA the agent trusts (the engine's, given at polyvirt agent join); without one the handshake fails."}},
}

// TestOpenAPIDocument: the document is complete for the route table
// (every route an operation with its operationId, the mutual-TLS
// security and error answers; -update rewrites it) and says nothing the
// table does not.
func TestOpenAPIDocument(t *testing.T) {
	want, err := openapidoc.Complete(openAPI, docRoutes(), "/v1", agentDocOptions)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(want, openAPI) {
		t.Errorf("openapi.json is not complete for the route table: go test ./internal/agent -run TestOpenAPIDocument -update")
	}
	problems, err := openapidoc.Check(openAPI, docRoutes())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestOpenAPILint runs Redocly CLI's recommended rules on the document: a
// clean result, no ignore file.
func TestOpenAPILint(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	if _, err := os.Stat(filepath.Join(root, ".redocly.lint-ignore.yaml")); err == nil {
		t.Error("an ignore file hides the linter's findings")
	}
	report, clean, err := openapidoc.Lint(context.Background(), root, "internal/agent/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !clean {
		t.Errorf("Redocly CLI finds problems in openapi.json:\n%s", report)
	}
}
