package engine

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
	for _, rt := range (&Engine{}).routes() {
		out = append(out, openapidoc.Route{Method: rt.Method, Path: "/api/v1" + rt.Path, Summary: rt.Summary,
			Role: string(rt.needs()), Public: rt.Public})
	}
	return out
}

// engineDocOptions are what every operation of the engine's API shares:
// its bearer tokens.
var engineDocOptions = openapidoc.Options{
	Security: map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer",
		"description": "An API token: Authorization: Bearer TOKEN (polyvirt engine init prints the first administrator's; polyvirt user add makes more)."}},
}

// TestOpenAPIDocument: the document is complete for the route table
// (every route an operation with its operationId, role, security and
// error answers; -update rewrites it) and says nothing the table does not.
func TestOpenAPIDocument(t *testing.T) {
	want, err := openapidoc.Complete(openAPI, docRoutes(), "/api/v1", engineDocOptions)
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
		t.Errorf("openapi.json is not complete for the route table: go test ./internal/engine -run TestOpenAPIDocument -update")
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
	if _, err := os.Stat(filepath.Join(root, "redocly.yaml")); err != nil {
		t.Errorf("the linter's configuration (the recommended rules): %v", err)
	}
	report, clean, err := openapidoc.Lint(context.Background(), root, "internal/engine/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !clean {
		t.Errorf("Redocly CLI finds problems in openapi.json:\n%s", report)
	}
}
