package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// event is one line of go test -json (go doc cmd/test2json).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
	ImportPath  string
}

// key names one test of one package.
type key struct{ pkg, test string }

func (k key) String() string { return k.pkg + " " + k.test }

// maxLine bounds one line of the stream (a test may print a long line).
const maxLine = 16 << 20

// maxKept bounds the output kept per running test.
const maxKept = 1 << 20

// summary follows the stream: the output of each running test (printed if
// it fails), the verdicts, the packages' own lines.
type summary struct {
	out io.Writer

	running map[key]*bytes.Buffer
	passed  int
	failed  []key
	skipped []skip
	// pkgFailed are the packages that failed by themselves (a build
	// error, a panic outside a test, a time-out).
	pkgFailed []string
	events    int
	first     time.Time
	last      time.Time
}

// skip is a skipped test and why.
type skip struct {
	key
	reason string
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, running: map[key]*bytes.Buffer{}}
}

// read consumes the stream; a line that is not a test event is printed as
// it is (go test writes some of its messages so).
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil || ev.Action == "" {
			fmt.Fprintf(s.out, "%s\n", line)
			continue
		}
		s.add(ev)
	}
	return sc.Err()
}

// add takes one event.
func (s *summary) add(ev event) {
	s.events++
	if !ev.Time.IsZero() {
		if s.first.IsZero() || ev.Time.Before(s.first) {
			s.first = ev.Time
		}
		if ev.Time.After(s.last) {
			s.last = ev.Time
		}
	}
	switch ev.Action {
	case "build-output":
		fmt.Fprint(s.out, ev.Output)
		return
	case "build-fail":
		return
	}
	if ev.Test == "" {
		s.packageEvent(ev)
		return
	}
	k := key{ev.Package, ev.Test}
	switch ev.Action {
	case "run":
		s.running[k] = &bytes.Buffer{}
	case "output":
		b := s.running[k]
		if b == nil {
			b = &bytes.Buffer{}
			s.running[k] = b
		}
		if b.Len() < maxKept {
			b.WriteString(ev.Output)
		}
	case "pass":
		s.passed++
		delete(s.running, k)
	case "fail":
		s.failed = append(s.failed, k)
		s.printTest(k)
		delete(s.running, k)
	case "skip":
		s.skipped = append(s.skipped, skip{k, skipReason(s.running[k])})
		delete(s.running, k)
	}
}

// packageEvent takes an event of a package itself.
func (s *summary) packageEvent(ev event) {
	switch ev.Action {
	case "output":
		if ev.Output == "PASS\n" || strings.HasPrefix(ev.Output, "=== ") {
			return
		}
		fmt.Fprint(s.out, ev.Output)
	case "fail":
		// Tests still running when their package failed (a panic, a
		// time-out) failed with it.
		var left []key
		for k := range s.running {
			if k.pkg == ev.Package {
				left = append(left, k)
			}
		}
		sort.Slice(left, func(i, j int) bool { return left[i].test < left[j].test })
		for _, k := range left {
			s.failed = append(s.failed, k)
			s.printTest(k)
			delete(s.running, k)
		}
		if len(left) == 0 && !s.anyFailed(ev.Package) {
			s.pkgFailed = append(s.pkgFailed, ev.Package)
		}
	}
}

func (s *summary) anyFailed(pkg string) bool {
	for _, k := range s.failed {
		if k.pkg == pkg {
			return true
		}
	}
	return false
}

// printTest prints a failed test's output, as go test does without -v.
func (s *summary) printTest(k key) {
	b := s.running[k]
	if b == nil {
		return
	}
	// Its verdict line first, then what it printed.
	var verdict, rest []string
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "=== "):
		case strings.HasPrefix(strings.TrimSpace(line), "--- "):
			verdict = append(verdict, line)
		default:
			rest = append(rest, line)
		}
	}
	fmt.Fprint(s.out, strings.Join(verdict, "")+strings.Join(rest, ""))
}

// skipReason is what a skipped test printed, without go test's own lines.
func skipReason(b *bytes.Buffer) string {
	if b == nil {
		return "no reason given"
	}
	var parts []string
	for _, line := range strings.Split(b.String(), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		// "    file_test.go:12: reason": the reason.
		if i := strings.Index(t, ".go:"); i > 0 && !strings.Contains(t[:i], " ") {
			if j := strings.Index(t[i+4:], ": "); j >= 0 {
				t = t[i+4+j+2:]
			}
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "no reason given"
	}
	return strings.Join(parts, " ")
}

// finish prints the summary; it tells whether the run succeeded.
func (s *summary) finish() bool {
	// Tests that never ended (the stream was cut).
	var left []key
	for k := range s.running {
		left = append(left, k)
	}
	sort.Slice(left, func(i, j int) bool { return left[i].String() < left[j].String() })
	for _, k := range left {
		s.failed = append(s.failed, k)
		s.printTest(k)
		fmt.Fprintf(s.out, "--- FAIL: %s (never ended)\n", k.test)
	}
	fmt.Fprintln(s.out)
	took := ""
	if !s.first.IsZero() {
		took = fmt.Sprintf(" in %s", s.last.Sub(s.first).Round(time.Second))
	}
	fmt.Fprintf(s.out, "Tests: %d passed, %d failed, %d skipped%s.\n", s.passed, len(s.failed), len(s.skipped), took)
	if len(s.skipped) > 0 {
		fmt.Fprintf(s.out, "Skipped:\n")
		sort.Slice(s.skipped, func(i, j int) bool { return s.skipped[i].String() < s.skipped[j].String() })
		for _, sk := range s.skipped {
			fmt.Fprintf(s.out, "  %s: %s\n", sk.key, sk.reason)
		}
	}
	if len(s.failed) > 0 {
		fmt.Fprintf(s.out, "Failed:\n")
		for _, k := range s.failed {
			fmt.Fprintf(s.out, "  %s\n", k)
		}
	}
	if len(s.pkgFailed) > 0 {
		fmt.Fprintf(s.out, "Packages that failed outside their tests (build errors, panics, time-outs): %s\n", strings.Join(s.pkgFailed, ", "))
	}
	if s.passed+len(s.failed)+len(s.skipped) == 0 && len(s.pkgFailed) == 0 {
		fmt.Fprintf(s.out, "No test ran (%d events).\n", s.events)
		return false
	}
	return len(s.failed) == 0 && len(s.pkgFailed) == 0
}
