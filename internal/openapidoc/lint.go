package openapidoc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// LintDir is the project-local directory of the linter (Redocly CLI,
// installed from its package.json and lockfile with npm ci).
const LintDir = "tools/openapi"

// Lint runs Redocly CLI's recommended rules on the documents (paths) and
// returns its report and whether it is clean: no error and no warning.
// root is the module's root; the linter is installed there first when it
// is not (npm ci in LintDir: it needs node and npm).
func Lint(ctx context.Context, root string, paths ...string) (report string, clean bool, err error) {
	dir := filepath.Join(root, LintDir)
	bin := filepath.Join(dir, "node_modules", ".bin", "redocly")
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", false, fmt.Errorf("installing Redocly CLI (npm ci in %s; scripts/test.sh installs node and npm): %v\n%s", LintDir, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	args := append([]string{"lint", "--format=stylish"}, paths...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	report = out.String()
	if runErr != nil {
		if _, ok := runErr.(*exec.ExitError); !ok {
			return report, false, runErr
		}
	}
	return report, runErr == nil && !warned(report), nil
}

// warned tells whether a stylish report lists a problem.
func warned(report string) bool {
	return regexp.MustCompile(`(?m)^\s*\d+:\d+\s+(error|warning)\s`).MatchString(report) ||
		regexp.MustCompile(`(?i)validation failed|with \d+ warning`).MatchString(report)
}
