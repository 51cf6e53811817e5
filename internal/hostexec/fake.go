package hostexec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"sync"
	"time"
)

// FakeFunc answers one command of a Fake runner. It returns the result the
// command would have produced; a non-zero ExitCode becomes an ErrExit
// error, exactly as Exec reports it. It should return when ctx is done (the
// command's timeout or the caller's cancellation).
type FakeFunc func(ctx context.Context, cmd Command) (Result, error)

// Call is one command a Fake received.
type Call struct {
	// Name, Args, Env and Timeout are the command's.
	Name    string
	Args    []string
	Env     []string
	Timeout time.Duration
	// Stdin is everything the command's standard input held.
	Stdin []byte
}

// Fake is a scripted Runner for unit tests: each program name is answered
// by a FakeFunc; an unknown name is ErrNotFound. It applies the command's
// timeout and the output limit the way Exec does, and records every call.
// It is safe for concurrent use.
type Fake struct {
	// MaxOutput limits each stream as Exec.MaxOutput does.
	MaxOutput int

	mu       sync.Mutex
	handlers map[string]FakeFunc
	calls    []Call
}

// NewFake returns a Fake with no programs.
func NewFake() *Fake { return &Fake{handlers: map[string]FakeFunc{}} }

// Handle makes fn answer the program name (a bare name; a command given as
// a path is matched by its last element).
func (f *Fake) Handle(name string, fn FakeFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handlers == nil {
		f.handlers = map[string]FakeFunc{}
	}
	f.handlers[name] = fn
}

// Calls returns the calls received so far, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Run answers cmd with its program's FakeFunc; see Runner.
func (f *Fake) Run(ctx context.Context, cmd Command) (Result, error) {
	start := time.Now()
	timeout := effectiveTimeout(cmd.Timeout)
	res := Result{ExitCode: -1}
	var stdin []byte
	if cmd.Stdin != nil {
		b, err := io.ReadAll(io.LimitReader(cmd.Stdin, 64<<20))
		if err != nil {
			return res, newError(cmd, ErrStart, res, timeout, err)
		}
		stdin = b
		cmd.Stdin = bytes.NewReader(b)
	}
	f.mu.Lock()
	f.calls = append(f.calls, Call{Name: cmd.Name, Args: append([]string(nil), cmd.Args...),
		Env: append([]string(nil), cmd.Env...), Timeout: cmd.Timeout, Stdin: stdin})
	fn := f.handlers[cmd.Name]
	if fn == nil {
		fn = f.handlers[path.Base(cmd.Name)]
	}
	f.mu.Unlock()

	if cmd.Name == "" {
		return res, newError(cmd, ErrStart, res, timeout, errors.New("empty command name"))
	}
	if err := ctx.Err(); err != nil {
		return res, newError(cmd, ErrCanceled, res, timeout, err)
	}
	if fn == nil {
		return res, newError(cmd, ErrNotFound, res, timeout, errors.New("no fake program "+cmd.Name))
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := fn(runCtx, cmd)
	out.Duration = time.Since(start)
	max := effectiveMax(f.MaxOutput)
	if len(out.Stdout) > max {
		out.Stdout, out.StdoutTruncated = out.Stdout[:max], true
	}
	if len(out.Stderr) > max {
		out.Stderr, out.StderrTruncated = out.Stderr[:max], true
	}
	switch {
	case ctx.Err() != nil:
		out.ExitCode = -1
		return out, newError(cmd, ErrCanceled, out, timeout, ctx.Err())
	case runCtx.Err() != nil:
		out.ExitCode, out.Signal = -1, "killed"
		return out, newError(cmd, ErrTimeout, out, timeout, nil)
	case err != nil:
		var he *Error
		if errors.As(err, &he) {
			return out, err
		}
		return out, newError(cmd, ErrStart, out, timeout, err)
	case out.ExitCode != 0 || out.Signal != "":
		return out, newError(cmd, ErrExit, out, timeout, nil)
	}
	return out, nil
}

// Reply answers with stdout and exit status 0.
func Reply(stdout string) FakeFunc {
	return ReplyExit(0, stdout, "")
}

// ReplyExit answers with the given exit status and streams.
func ReplyExit(code int, stdout, stderr string) FakeFunc {
	return func(ctx context.Context, cmd Command) (Result, error) {
		return Result{ExitCode: code, Stdout: []byte(stdout), Stderr: []byte(stderr)}, nil
	}
}

// Hang never answers: it waits until the command times out or the caller
// gives up, as a hung tool does.
func Hang() FakeFunc {
	return func(ctx context.Context, cmd Command) (Result, error) {
		<-ctx.Done()
		return Result{ExitCode: -1}, nil
	}
}
