package hostexec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DefaultKillGrace is how long Exec waits for the output pipes to close
// after the command ended or its process group was killed.
const DefaultKillGrace = 2 * time.Second

// Exec runs real processes. The zero value runs commands found in the
// agent's own PATH with the agent's environment.
type Exec struct {
	// Path is the search path for bare command names, in PATH syntax
	// ("/fake/bin:/usr/sbin:/usr/bin"). When set it is also the PATH of the
	// child's environment, so that a script finds the same tools. Empty:
	// the PATH of Env (or of the agent's environment).
	Path string
	// Env is the child's base environment ("KEY=value"); nil means the
	// agent's own (os.Environ()). Command.Env entries are added to it.
	Env []string
	// MaxOutput limits each captured stream, in bytes; zero means
	// DefaultMaxOutput.
	MaxOutput int
	// KillGrace bounds the wait for the output pipes after the command
	// ended or was killed (a grandchild that escaped the process group may
	// hold them open); zero means DefaultKillGrace.
	KillGrace time.Duration
}

// Run runs cmd as a new process in its own process group; see Runner.
func (x *Exec) Run(ctx context.Context, cmd Command) (Result, error) {
	start := time.Now()
	res := Result{ExitCode: -1}
	timeout := effectiveTimeout(cmd.Timeout)
	if cmd.Name == "" {
		return res, newError(cmd, ErrStart, res, timeout, errors.New("empty command name"))
	}
	if err := ctx.Err(); err != nil {
		return res, newError(cmd, ErrCanceled, res, timeout, err)
	}
	env := x.environ(cmd.Env)
	path, err := lookPath(cmd.Name, searchPath(x.Path, env))
	if err != nil {
		res.Duration = time.Since(start)
		return res, newError(cmd, ErrNotFound, res, timeout, err)
	}

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := exec.CommandContext(runCtx, path, cmd.Args...)
	c.Args[0] = cmd.Name
	c.Env = env
	c.Stdin = cmd.Stdin
	max := effectiveMax(x.MaxOutput)
	stdout := &limitedBuffer{max: max}
	stderr := &limitedBuffer{max: max}
	c.Stdout = stdout
	c.Stderr = stderr
	setProcessGroup(c)
	c.Cancel = func() error { return killProcessGroup(c) }
	c.WaitDelay = x.KillGrace
	if c.WaitDelay <= 0 {
		c.WaitDelay = DefaultKillGrace
	}

	err = c.Run()
	res.Duration = time.Since(start)
	res.Stdout, res.StdoutTruncated = stdout.buf, stdout.truncated
	res.Stderr, res.StderrTruncated = stderr.buf, stderr.truncated
	if c.ProcessState != nil {
		res.ExitCode = c.ProcessState.ExitCode()
		res.Signal = signalName(c.ProcessState)
	}

	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		return res, newError(cmd, ErrCanceled, res, timeout, ctx.Err())
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return res, newError(cmd, ErrTimeout, res, timeout, nil)
	case c.ProcessState != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) || res.ExitCode != 0 || res.Signal != "" {
			return res, newError(cmd, ErrExit, res, timeout, nil)
		}
		// Exited 0 but the pipes did not close within the grace time.
		return res, newError(cmd, ErrStart, res, timeout, err)
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound):
		return res, newError(cmd, ErrNotFound, res, timeout, err)
	default:
		return res, newError(cmd, ErrStart, res, timeout, err)
	}
}

// environ returns the child's environment: the base, PATH replaced by
// x.Path when set, then the command's extra entries.
func (x *Exec) environ(extra []string) []string {
	base := x.Env
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+len(extra)+1)
	env = append(env, base...)
	if x.Path != "" {
		env = append(env, "PATH="+x.Path)
	}
	env = append(env, extra...)
	return dedupEnv(env)
}

// dedupEnv keeps the last entry of each key, in first-seen order.
func dedupEnv(env []string) []string {
	last := make(map[string]int, len(env))
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	out := make([]string, 0, len(last))
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if last[k] == i {
			out = append(out, kv)
		}
	}
	return out
}

// searchPath is x.Path, else the PATH of env.
func searchPath(path string, env []string) string {
	if path != "" {
		return path
	}
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds an executable regular file: name itself when it holds a
// slash, else the first match in the directories of path.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", err
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q is not in the search path %q", name, path)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}
