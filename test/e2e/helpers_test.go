// Package e2e holds polyvirt's end-to-end tests: real processes, a real
// libvirtd with real QEMU, and real kernels booted under QEMU (POWER guests
// under TCG included).
//
// Most of the tests run side by side (t.Parallel; scripts/test.sh gives go
// test -parallel 3): most of their time goes to waiting for daemons, the
// engine's rounds and small guests. Each has names, libvirt domains (a
// prefix of its own), daemons, ports and directories of its own, and
// checks only what it made; a lab's hosts of the README's names
// (power8-a) in two engines at once are told apart by their domain
// prefixes, as two labs of polyvirt up are. The tests whose guests keep
// the cores busy for minutes or whose assertions are about a guest's
// timing — TestRolloutLab, TestMigration, TestMigrationFaults,
// TestREADMEWalkthrough, TestConsoleNeverStallsTheGuest — are not
// parallel: go test runs them one after the other, before the parallel
// ones.
package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// requireReal reports whether missing real components (libvirtd, QEMU, the
// ppc64el kernel) must fail the test instead of skipping it: the project's
// test command sets POLYVIRT_REQUIRE_LIBVIRT=1.
func requireReal() bool { return os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" }

// missing fails or skips the test for an absent component.
func missing(t *testing.T, what string) {
	t.Helper()
	if requireReal() {
		t.Fatalf("%s is missing (scripts/test.sh installs it)", what)
	}
	t.Skipf("%s is missing; run scripts/test.sh to install it", what)
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = up
	}
}

// goBuild builds a package of the module for goarch (CGO off) into dir.
func goBuild(t *testing.T, goarch, pkg, out string) string {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s for %s: %v\n%s", pkg, goarch, err, b)
	}
	return out
}

// between returns the text between two marker lines.
func between(s, begin, end string) (string, bool) {
	i := strings.Index(s, begin)
	if i < 0 {
		return "", false
	}
	rest := s[i+len(begin):]
	j := strings.Index(rest, end)
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}
