package hostexec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

type outcome struct {
	Stdout          string
	Stderr          string
	ExitCode        int
	StdoutTruncated bool
	Kind            string
}

func kindOf(err error) string {
	for _, k := range []error{ErrTimeout, ErrNotFound, ErrExit, ErrCanceled, ErrStart} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func TestExecRun(t *testing.T) {
	bin := t.TempDir()
	other := t.TempDir()
	writeScript(t, bin, "ok", "echo out; echo err >&2\n")
	writeScript(t, bin, "fail", "echo 'update_flash: Must be root to execute this command.' >&2; exit 4\n")
	writeScript(t, bin, "env", "echo \"$FOO|$PATH\"\n")
	writeScript(t, bin, "cat", "exec /bin/cat\n")
	writeScript(t, bin, "big", "head -c 3000000 /dev/zero\n")
	writeScript(t, bin, "killed", "kill -9 $$\n")
	writeScript(t, bin, "which", "echo first\n")
	writeScript(t, other, "which", "echo second\n")
	if err := os.WriteFile(filepath.Join(bin, "noexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := bin + ":" + other + ":/usr/bin:/bin"

	tests := []struct {
		name string
		x    Exec
		cmd  Command
		want outcome
	}{
		{"success captures both streams", Exec{Path: path}, Command{Name: "ok"},
			outcome{Stdout: "out\n", Stderr: "err\n"}},
		{"non-zero exit", Exec{Path: path}, Command{Name: "fail"},
			outcome{Stderr: "update_flash: Must be root to execute this command.\n", ExitCode: 4, Kind: ErrExit.Error()}},
		{"killed by a signal", Exec{Path: path}, Command{Name: "killed"},
			outcome{ExitCode: -1, Kind: ErrExit.Error()}},
		{"not found", Exec{Path: path}, Command{Name: "lsmcode-missing"},
			outcome{ExitCode: -1, Kind: ErrNotFound.Error()}},
		{"not executable", Exec{Path: path}, Command{Name: "noexec"},
			outcome{ExitCode: -1, Kind: ErrNotFound.Error()}},
		{"absolute path", Exec{}, Command{Name: filepath.Join(bin, "ok")},
			outcome{Stdout: "out\n", Stderr: "err\n"}},
		{"missing absolute path", Exec{}, Command{Name: filepath.Join(bin, "nope")},
			outcome{ExitCode: -1, Kind: ErrNotFound.Error()}},
		{"empty name", Exec{}, Command{},
			outcome{ExitCode: -1, Kind: ErrStart.Error()}},
		{"first directory of the path wins", Exec{Path: path}, Command{Name: "which"},
			outcome{Stdout: "first\n"}},
		{"env and PATH reach the child", Exec{Path: path, Env: []string{"FOO=base", "PATH=/nowhere"}},
			Command{Name: "env", Env: []string{"FOO=cmd"}},
			outcome{Stdout: "cmd|" + path + "\n"}},
		{"PATH of Env is the search path", Exec{Env: []string{"PATH=" + other}}, Command{Name: "which"},
			outcome{Stdout: "second\n"}},
		{"stdin", Exec{Path: path}, Command{Name: "cat", Stdin: strings.NewReader("image bytes")},
			outcome{Stdout: "image bytes"}},
		{"output limit", Exec{Path: path, MaxOutput: 1000}, Command{Name: "big"},
			outcome{Stdout: strings.Repeat("\x00", 1000), StdoutTruncated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := tt.x.Run(context.Background(), tt.cmd)
			got := outcome{Stdout: string(res.Stdout), Stderr: string(res.Stderr), ExitCode: res.ExitCode,
				StdoutTruncated: res.StdoutTruncated, Kind: kindOf(err)}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Run(%s) (-want +got):\n%s\nerror: %v", tt.cmd, diff, err)
			}
			if err == nil && res.Duration <= 0 {
				t.Errorf("Duration = %v, want > 0", res.Duration)
			}
		})
	}
}

func TestExecErrorMessages(t *testing.T) {
	bin := t.TempDir()
	writeScript(t, bin, "fail", "echo 'update_flash: Must be root to execute this command.' >&2; exit 4\n")
	writeScript(t, bin, "hang", "sleep 30\n")
	x := &Exec{Path: bin + ":/usr/bin:/bin"}
	tests := []struct {
		name string
		cmd  Command
		want string
	}{
		{"exit", Command{Name: "fail", Args: []string{"-v", "-f", "/tmp/my image.img"}},
			"fail -v -f '/tmp/my image.img': exit status 4: update_flash: Must be root to execute this command."},
		{"timeout", Command{Name: "hang", Timeout: 100 * time.Millisecond},
			"hang: timed out after 100ms (process group killed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := x.Run(context.Background(), tt.cmd)
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExecTimeoutKillsProcessGroup runs a script that leaves a grandchild
// behind and checks that the timeout kills both.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	bin := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "pid")
	writeScript(t, bin, "hang", "sleep 60 &\necho $! > "+pidFile+"\nwait\n")
	x := &Exec{Path: bin + ":/usr/bin:/bin"}
	start := time.Now()
	res, err := x.Run(context.Background(), Command{Name: "hang", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %v after a 300ms timeout", took)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1", res.ExitCode)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still running after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive tells whether pid runs (a zombie does not count).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestExecCanceled(t *testing.T) {
	bin := t.TempDir()
	writeScript(t, bin, "hang", "sleep 30\n")
	x := &Exec{Path: bin + ":/usr/bin:/bin"}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := x.Run(ctx, Command{Name: "hang", Timeout: time.Minute})
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("err = %v, want ErrCanceled", err)
	}
	_, err = x.Run(ctx, Command{Name: "hang"})
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("err on a done context = %v, want ErrCanceled", err)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   int
		exited bool
	}{
		{"exit error", &Error{Kind: ErrExit, ExitCode: 8}, 8, true},
		{"timeout", &Error{Kind: ErrTimeout, ExitCode: -1}, 0, false},
		{"other", errors.New("x"), 0, false},
		{"nil", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ok := ExitCode(tt.err)
			if diff := cmp.Diff([]any{tt.code, tt.exited}, []any{code, ok}); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestCommandString(t *testing.T) {
	tests := []struct {
		cmd  Command
		want string
	}{
		{Command{Name: "update_flash", Args: []string{"-v", "-f", "/tmp/fwupdate/01SV810_133_081.img"}},
			"update_flash -v -f /tmp/fwupdate/01SV810_133_081.img"},
		{Command{Name: "x", Args: []string{"a b", "it's", ""}}, `x 'a b' 'it'\''s' ''`},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.cmd.String()); diff != "" {
			t.Errorf("String (-want +got):\n%s", diff)
		}
	}
}

func TestLimitedBuffer(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		writes    []string
		want      string
		truncated bool
	}{
		{"fits", 10, []string{"abc", "def"}, "abcdef", false},
		{"exact", 6, []string{"abc", "def"}, "abcdef", false},
		{"cut in a write", 4, []string{"abc", "def"}, "abcd", true},
		{"after full", 3, []string{"abc", "def"}, "abc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &limitedBuffer{max: tt.max}
			for _, w := range tt.writes {
				n, err := b.Write([]byte(w))
				if n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if diff := cmp.Diff([]any{tt.want, tt.truncated}, []any{string(b.buf), b.truncated}); diff != "" {
				t.Error(diff)
			}
		})
	}
}
