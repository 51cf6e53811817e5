// The import rules of polyvirt's layers (docs/architecture.md, "Layers"),
// checked with `go list` on every test run, so that they hold without
// anyone watching. A new layer or a new rule is one entry of the rules
// table below.
package internal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rule says what some packages may depend on. A pattern is an import path,
// or a path ending in "/..." that matches it and every package under it.
type rule struct {
	// Name says what the rule keeps, for the failure message.
	Name string
	// Packages are the packages the rule is about.
	Packages []string
	// Only, when set, lists the only polyvirt packages they may depend
	// on (transitively, tests excluded).
	Only []string
	// Never lists packages they may not depend on (transitively, tests
	// excluded).
	Never []string
	// NeverImport lists packages they may not import directly, their tests
	// included.
	NeverImport []string
	// Except allows one dependency a rule refuses, with the reason:
	// "package dependency" → why.
	Except map[string]string
}

// contracts is the contract layer: the architecture names and the
// documents every side speaks (internal/api/...).
var contracts = []string{"polyvirt/internal/arch", "polyvirt/internal/api/..."}

// rules is the table the test reads.
var rules = []rule{
	{
		Name:     "the contract layer imports nothing of polyvirt's but package arch",
		Packages: contracts,
		Only:     contracts,
	},
	{
		Name: "contracts and knowledge (rules, transformations, readers through a root) touch no libvirt connection, no HTTP and no database",
		Packages: append([]string{
			"polyvirt/internal/archspec",
			"polyvirt/internal/cpucatalog",
			"polyvirt/internal/vmspec",
			"polyvirt/internal/domxml",
			"polyvirt/internal/hostinfo",
			"polyvirt/internal/hostpath",
			"polyvirt/internal/strictdoc",
			"polyvirt/internal/cpuset",
			"polyvirt/internal/profiles",
			"polyvirt/internal/engine/scheduler",
			"polyvirt/internal/migpolicy",
			"polyvirt/internal/password",
		}, contracts...),
		Never: []string{
			"github.com/digitalocean/go-libvirt/...",
			"polyvirt/internal/libvirtconn/...",
			"net/http",
			"polyvirt/internal/store/...",
		},
	},
	{
		Name: "adapters (libvirt, SQL, processes, certificates, host readers) do not depend on the services and faces above them",
		Packages: []string{
			"polyvirt/internal/libvirtconn/...",
			"polyvirt/internal/virtcaps/...",
			"polyvirt/internal/caps/...",
			"polyvirt/internal/store/...",
			"polyvirt/internal/pki/...",
			"polyvirt/internal/hostexec/...",
			"polyvirt/internal/firmware/...",
			"polyvirt/internal/hoststats/...",
			"polyvirt/internal/libvirttls/...",
			"polyvirt/internal/libvirtns/...",
		},
		Never: []string{
			"polyvirt/internal/agent/...",
			"polyvirt/internal/engine/...",
			"polyvirt/internal/client/...",
			"polyvirt/internal/lab/...",
		},
	},
	{
		Name:     "the engine's services are callable without HTTP: no net/http, no HTTP helper, no face above them",
		Packages: []string{"polyvirt/internal/engine/service/..."},
		Never: []string{
			"net/http",
			"polyvirt/internal/httpx/...",
			"polyvirt/internal/engine",
			"polyvirt/internal/client/...",
			"polyvirt/internal/agent/...",
			"github.com/coder/websocket/...",
		},
	},
	{
		Name:     "the shared HTTP helper knows the contracts, not the services or the faces that use it",
		Packages: []string{"polyvirt/internal/httpx/..."},
		Only:     append([]string{"polyvirt/internal/strictdoc"}, contracts...),
	},
	{
		Name:     "the bulk transfer over TLS knows no polyvirt package: the CLI, the engine and the agent put it under their connections",
		Packages: []string{"polyvirt/internal/bulkconn/..."},
		Only:     []string{},
	},
	{
		Name:     "the engine's local socket (listening, peer credentials) knows no polyvirt package: the engine serves on it, the client dials it",
		Packages: []string{"polyvirt/internal/localsock/..."},
		Only:     []string{},
	},
	{
		Name:     "the metrics know the contracts only: the engine and the agent give them what they measured",
		Packages: []string{"polyvirt/internal/metrics/..."},
		Only:     contracts,
	},
	{
		Name:     "the OpenAPI documents' checker knows no polyvirt package: the APIs' tests give it their route tables",
		Packages: []string{"polyvirt/internal/openapidoc/..."},
		Only:     []string{},
	},
	{
		Name:     "the web UI's files and their headers know no polyvirt package: the engine serves them",
		Packages: []string{"polyvirt/internal/webui/..."},
		Only:     []string{},
	},
	{
		Name:     "the engine speaks to hosts through their agents only, never to libvirt",
		Packages: []string{"polyvirt/internal/engine/..."},
		Never:    []string{"github.com/digitalocean/go-libvirt/...", "polyvirt/internal/libvirtconn/..."},
	},
	{
		Name:     "the agent owns nothing durable: no engine database",
		Packages: []string{"polyvirt/internal/agent/..."},
		Never:    []string{"polyvirt/internal/store/...", "polyvirt/internal/engine/..."},
	},
	{
		Name:     "the engine's client speaks the contracts, not the engine's or the agent's insides",
		Packages: []string{"polyvirt/internal/client/..."},
		Never:    []string{"polyvirt/internal/engine/...", "polyvirt/internal/agent/...", "polyvirt/internal/store/..."},
	},
	{
		Name:        "nothing imports the commands",
		Packages:    []string{"polyvirt/..."},
		NeverImport: []string{"polyvirt/cmd/..."},
	},
}

// pkg is what go list says of one package.
type pkg struct {
	ImportPath   string
	Deps         []string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// match reports whether path matches a pattern ("a/b" or "a/b/...").
func match(pattern, path string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == p || strings.HasPrefix(path, p+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// check applies the rules to the packages and returns every violation,
// one sentence each, and the patterns of Packages that matched nothing (a
// renamed package must not leave a rule about nothing).
func check(rules []rule, pkgs []pkg) (violations, unmatched []string) {
	for _, r := range rules {
		for _, pat := range r.Packages {
			if !slices.ContainsFunc(pkgs, func(p pkg) bool { return match(pat, p.ImportPath) }) {
				unmatched = append(unmatched, fmt.Sprintf("rule %q: no package matches %s", r.Name, pat))
			}
		}
		for _, p := range pkgs {
			if !matchAny(r.Packages, p.ImportPath) {
				continue
			}
			bad := func(kind, dep string) {
				if why, ok := r.Except[p.ImportPath+" "+dep]; ok && why != "" {
					return
				}
				violations = append(violations, fmt.Sprintf("%s %s %s, but %s", p.ImportPath, kind, dep, r.Name))
			}
			for _, d := range p.Deps {
				if r.Only != nil && strings.HasPrefix(d, "polyvirt/") && !matchAny(r.Only, d) {
					bad("depends on", d)
				}
				if matchAny(r.Never, d) {
					bad("depends on", d)
				}
			}
			for _, list := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
				for _, d := range list {
					if matchAny(r.NeverImport, d) {
						bad("imports", d)
					}
				}
			}
		}
	}
	sort.Strings(violations)
	return violations, unmatched
}

// listPackages runs go list on the whole module.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-e", "-json=ImportPath,Deps,Imports,TestImports,XTestImports,Error", "./...")
	cmd.Dir = filepath.Join("..") // the module root: this file is in internal/
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			pkg
			Error *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p.pkg)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; is this the polyvirt module?", len(pkgs))
	}
	return pkgs
}

// TestLayers checks the import rules on the module.
func TestLayers(t *testing.T) {
	violations, unmatched := check(rules, listPackages(t))
	for _, u := range unmatched {
		t.Error(u)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// TestLayerCheck checks the checker on a made-up module: every kind of
// violation is found, an exception with a reason lets one through, and a
// rule about no package is reported.
func TestLayerCheck(t *testing.T) {
	pkgs := []pkg{
		{ImportPath: "polyvirt/internal/arch"},
		{ImportPath: "polyvirt/internal/api/agentapi", Deps: []string{"encoding/json", "polyvirt/internal/arch", "polyvirt/internal/vmspec"}},
		{ImportPath: "polyvirt/internal/vmspec", Deps: []string{"net/http", "polyvirt/internal/arch"}},
		{ImportPath: "polyvirt/internal/domxml", Deps: []string{"github.com/digitalocean/go-libvirt/internal/lvgen"}},
		{ImportPath: "polyvirt/internal/engine", TestImports: []string{"polyvirt/cmd/polyvirt"}},
		{ImportPath: "polyvirt/internal/caps", Deps: []string{"net/http"}},
	}
	rules := []rule{
		{Name: "contracts are a leaf", Packages: []string{"polyvirt/internal/arch", "polyvirt/internal/api/..."}, Only: []string{"polyvirt/internal/arch", "polyvirt/internal/api/..."}},
		{Name: "no I/O", Packages: []string{"polyvirt/internal/vmspec", "polyvirt/internal/domxml", "polyvirt/internal/caps"},
			Never:  []string{"net/http", "github.com/digitalocean/go-libvirt/..."},
			Except: map[string]string{"polyvirt/internal/caps net/http": "a made-up reason"}},
		{Name: "no commands", Packages: []string{"polyvirt/..."}, NeverImport: []string{"polyvirt/cmd/..."}},
		{Name: "gone", Packages: []string{"polyvirt/internal/renamed"}},
	}
	violations, unmatched := check(rules, pkgs)
	want := []string{
		"polyvirt/internal/api/agentapi depends on polyvirt/internal/vmspec, but contracts are a leaf",
		"polyvirt/internal/domxml depends on github.com/digitalocean/go-libvirt/internal/lvgen, but no I/O",
		"polyvirt/internal/engine imports polyvirt/cmd/polyvirt, but no commands",
		"polyvirt/internal/vmspec depends on net/http, but no I/O",
	}
	if diff := cmp.Diff(want, violations); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
	if len(unmatched) != 1 || !strings.Contains(unmatched[0], "polyvirt/internal/renamed") {
		t.Errorf("unmatched patterns: %v", unmatched)
	}
}
