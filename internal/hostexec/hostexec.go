// Package hostexec runs host commands through one interface, Runner, so that
// every package that needs a host tool (lsmcode, update_flash, ...) can be
// tested with fake executables put first on the PATH (Exec) or with a
// scripted runner (Fake).
//
// A run captures stdout and stderr (each limited, DefaultMaxOutput unless
// told otherwise, so that a runaway tool cannot exhaust memory), the exit
// status and the duration. The error of a run that did not succeed says why
// in a way callers can test with errors.Is: ErrTimeout (the whole process
// group was killed), ErrNotFound, ErrExit (non-zero exit status), ErrCanceled
// (the caller's context ended) or ErrStart (the process could not start).
// The Result is returned with every error, holding what was captured.
package hostexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// DefaultMaxOutput is the number of bytes of each stream (stdout, stderr)
// kept from one run when the runner is not told another limit: 1 MiB.
const DefaultMaxOutput = 1 << 20

// DefaultTimeout bounds a command whose Timeout is zero.
const DefaultTimeout = 5 * time.Minute

// Command is one host command to run.
type Command struct {
	// Name is the program: a bare name looked up in the runner's search
	// path, or a path.
	Name string
	// Args are the arguments, without the program name.
	Args []string
	// Timeout bounds the run; zero means DefaultTimeout. When it expires
	// the process group of the command is killed.
	Timeout time.Duration
	// Stdin, when not nil, is the command's standard input.
	Stdin io.Reader
	// Env holds extra "KEY=value" entries added to the runner's
	// environment for this run (a later entry wins over an earlier one).
	Env []string
}

// String prints the command line as a shell would show it (arguments with
// spaces or quotes are quoted), for messages and logs.
func (c Command) String() string {
	parts := make([]string, 0, 1+len(c.Args))
	for _, s := range append([]string{c.Name}, c.Args...) {
		parts = append(parts, quote(s))
	}
	return strings.Join(parts, " ")
}

func quote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.ContainsAny(s, " \t\n'\"\\$`;&|<>*?()[]{}!#~") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

// Result is what one run produced.
type Result struct {
	// Stdout and Stderr are the captured streams, each cut at the runner's
	// limit.
	Stdout []byte
	Stderr []byte
	// StdoutTruncated and StderrTruncated tell that a stream was longer
	// than the limit (the rest was read and discarded).
	StdoutTruncated bool
	StderrTruncated bool
	// ExitCode is the exit status; -1 when the process did not exit by
	// itself (killed by a signal, timed out, never started).
	ExitCode int
	// Signal names the signal that ended the process ("killed"), if any.
	Signal string
	// Duration is the wall time of the run.
	Duration time.Duration
}

// Runner runs host commands.
type Runner interface {
	// Run runs cmd and waits for it. The error is nil only when the
	// command exited with status 0; otherwise it is an *Error. The Result
	// is meaningful in both cases.
	Run(ctx context.Context, cmd Command) (Result, error)
}

// Sentinel errors, matched with errors.Is against an *Error.
var (
	// ErrTimeout: the command ran longer than its timeout and its process
	// group was killed.
	ErrTimeout = errors.New("timed out")
	// ErrNotFound: the program does not exist in the search path (or the
	// given path does not exist or is not executable).
	ErrNotFound = errors.New("command not found")
	// ErrExit: the command exited with a non-zero status or was killed
	// by a signal.
	ErrExit = errors.New("exited with non-zero status")
	// ErrCanceled: the caller's context was canceled before the command
	// ended; its process group was killed.
	ErrCanceled = errors.New("canceled")
	// ErrStart: the process could not be started for another reason.
	ErrStart = errors.New("could not start")
)

// Error is the error of a run that did not succeed.
type Error struct {
	// Command is the command line (Command.String()).
	Command string
	// Kind is one of the sentinel errors above.
	Kind error
	// ExitCode is the exit status when Kind is ErrExit (-1 for a signal).
	ExitCode int
	// Signal names the signal when the process was killed by one.
	Signal string
	// Timeout is the limit that expired when Kind is ErrTimeout.
	Timeout time.Duration
	// Stderr is the first line of the captured stderr (or of stdout when
	// stderr is empty), to make the message useful on its own.
	Stderr string
	// Err is the underlying cause, if any (from os/exec).
	Err error
}

// Error prints "CMD: KIND[: detail]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Command)
	b.WriteString(": ")
	switch {
	case errors.Is(e.Kind, ErrTimeout):
		fmt.Fprintf(&b, "timed out after %s (process group killed)", e.Timeout)
	case errors.Is(e.Kind, ErrExit) && e.Signal != "":
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	case errors.Is(e.Kind, ErrExit):
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	case e.Err != nil:
		fmt.Fprintf(&b, "%v: %v", e.Kind, e.Err)
	default:
		b.WriteString(e.Kind.Error())
	}
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Is matches the sentinel Kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// newError builds the *Error of a run from its result.
func newError(cmd Command, kind error, res Result, timeout time.Duration, cause error) *Error {
	line := firstLine(res.Stderr)
	if line == "" {
		line = firstLine(res.Stdout)
	}
	return &Error{
		Command:  cmd.String(),
		Kind:     kind,
		ExitCode: res.ExitCode,
		Signal:   res.Signal,
		Timeout:  timeout,
		Stderr:   line,
		Err:      cause,
	}
}

// firstLine returns the first non-empty line of b, trimmed and cut to 200
// bytes.
func firstLine(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if len(l) > 200 {
			l = l[:200] + "…"
		}
		return strings.ToValidUTF8(l, "?")
	}
	return ""
}

// ExitCode returns the exit status carried by err (an *Error of kind
// ErrExit) and true, or 0 and false for any other error.
func ExitCode(err error) (int, bool) {
	var e *Error
	if errors.As(err, &e) && e.Kind == ErrExit {
		return e.ExitCode, true
	}
	return 0, false
}

// limitedBuffer keeps the first max bytes written to it and counts the
// rest; it never fails a write, so the writing process is never blocked or
// killed by a full pipe.
type limitedBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

// Write keeps what fits and drops the rest.
func (l *limitedBuffer) Write(p []byte) (int, error) {
	room := l.max - len(l.buf)
	if room >= len(p) {
		l.buf = append(l.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		l.buf = append(l.buf, p[:room]...)
	}
	l.truncated = true
	return len(p), nil
}

func effectiveTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

func effectiveMax(n int) int {
	if n <= 0 {
		return DefaultMaxOutput
	}
	return n
}
