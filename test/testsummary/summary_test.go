package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/summary.golden")

// TestSummaryGolden: a captured go test -json stream of testdata/sample
// (passing, failing, skipped tests and subtests, a build error, a package
// without tests) gives testdata/summary.golden (go test -update).
func TestSummaryGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "stream.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s := newSummary(&out)
	if err := s.read(bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if s.finish() {
		t.Errorf("a run with failures succeeded")
	}
	path := filepath.Join("testdata", "summary.golden")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Errorf("(-golden +got; go test -update rewrites it):\n%s", diff)
	}
}

// durations are the figures of a run that change from run to run.
var durations = regexp.MustCompile(`\(\d+\.\d+s\)|\t\d+\.\d+s| in \d+s\.`)

// TestSummaryOfRealRun runs the real go test -json on testdata/sample and
// checks the summary against the captured one, timings aside: the golden
// stream stays what go test writes.
func TestSummaryOfRealRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: go test -json of testdata/sample not run")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "test", "-json", "-count=1", "-p", "1", "./...")
	cmd.Dir = filepath.Join("testdata", "sample")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	stream, err := cmd.Output()
	if err == nil {
		t.Fatalf("go test of the sample (with failing tests) succeeded")
	}
	var live bytes.Buffer
	s := newSummary(&live)
	if err := s.read(bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	ok := s.finish()
	want, err := os.ReadFile(filepath.Join("testdata", "summary.golden"))
	if err != nil {
		t.Fatal(err)
	}
	norm := func(s string) string { return durations.ReplaceAllString(s, "(T)") }
	if diff := cmp.Diff(norm(string(want)), norm(live.String())); diff != "" || ok {
		t.Errorf("succeeded %v; (-golden +live run):\n%s", ok, diff)
	}
}

func TestSummaryVerdicts(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		ok     bool
		want   []string
	}{
		{"all passed", `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}
{"Action":"pass","Package":"p"}`, true, []string{"ok  \tp\t0.1s\n", "Tests: 1 passed, 0 failed, 0 skipped."}},
		{"nothing ran", ``, false, []string{"No test ran (0 events)."}},
		{"a time-out panics the package", `{"Action":"run","Package":"p","Test":"TestSlow"}
{"Action":"output","Package":"p","Test":"TestSlow","Output":"=== RUN   TestSlow\n"}
{"Action":"output","Package":"p","Output":"panic: test timed out after 30m0s\n"}
{"Action":"fail","Package":"p"}`, false, []string{"panic: test timed out after 30m0s\n", "Tests: 0 passed, 1 failed, 0 skipped.", "Failed:\n  p TestSlow\n"}},
		{"cut stream", `{"Action":"run","Package":"p","Test":"TestCut"}
{"Action":"output","Package":"p","Test":"TestCut","Output":"    a_test.go:3: halfway\n"}`, false,
			[]string{"    a_test.go:3: halfway\n--- FAIL: TestCut (never ended)\n", "0 passed, 1 failed"}},
		{"other lines pass through", "go: downloading example.com/m v1.0.0\n" + `{"Action":"skip","Package":"p","Test":"TestS"}`, true,
			[]string{"go: downloading example.com/m v1.0.0\n", "Skipped:\n  p TestS: no reason given\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			s := newSummary(&out)
			if err := s.read(strings.NewReader(tc.stream)); err != nil {
				t.Fatal(err)
			}
			if ok := s.finish(); ok != tc.ok {
				t.Errorf("succeeded %v, want %v\n%s", ok, tc.ok, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestSkipReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{"=== RUN   TestX\n    x_test.go:12: no schema\n--- SKIP: TestX (0.00s)\n", "no schema"},
		{"    x_test.go:12: first\n        second line: with a colon\n", "first second line: with a colon"},
		{"--- SKIP: TestX (0.00s)\n", "no reason given"},
	}
	for _, tc := range tests {
		if got := skipReason(bytes.NewBufferString(tc.in)); got != tc.want {
			t.Errorf("skipReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := skipReason(nil); got != "no reason given" {
		t.Errorf("no output: %q", got)
	}
}

// FuzzSummary: any stream is read without a panic, and the counts add up.
func FuzzSummary(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "stream.jsonl")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"Action":"fail","Package":"p","Test":"T"}` + "\n{}\nnot json\n{\"Action\":\"output\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		s := newSummary(&out)
		if err := s.read(bytes.NewReader(b)); err != nil {
			return
		}
		ok := s.finish()
		if ok && len(s.failed) > 0 {
			t.Fatalf("succeeded with %d failures", len(s.failed))
		}
		if !strings.Contains(out.String(), "Tests: ") {
			t.Fatalf("no summary line:\n%s", out.String())
		}
	})
}
