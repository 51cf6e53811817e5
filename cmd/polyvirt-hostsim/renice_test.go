package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestRenice: every thread of the processes of the name gets the nice
// level (a multi-threaded process, not only its first thread); the
// calling process is left alone.
func TestRenice(t *testing.T) {
	// A copy of this test binary under a name of its own, that only
	// waits (TestMain): a Go process, so several threads.
	bin := filepath.Join(t.TempDir(), "renice-target")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "RENICE_TARGET=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	// Its threads: a Go process starts several.
	var tasks []string
	for range 100 {
		tasks, _ = filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "[0-9]*"))
		if len(tasks) > 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(tasks) < 2 {
		t.Fatalf("the target has %d threads", len(tasks))
	}
	n, err := renice("renice-target", os.Getpid(), 17)
	if err != nil {
		t.Fatal(err)
	}
	if n < len(tasks) {
		t.Errorf("%d threads set, the target has %d", n, len(tasks))
	}
	for _, task := range tasks {
		if nice := threadNice(t, task); nice != 17 {
			t.Errorf("thread %s: nice %d, want 17", filepath.Base(task), nice)
		}
	}
	if nice := threadNice(t, filepath.Join("/proc", strconv.Itoa(os.Getpid()))); nice == 17 {
		t.Error("the calling process was set too")
	}
	if n, err := renice("no-such-process", os.Getpid(), 17); err != nil || n != 0 {
		t.Errorf("no process of the name: %d threads, %v", n, err)
	}
}

// TestMain runs the tests, or is TestRenice's target process
// (RENICE_TARGET=1): it waits to be killed.
func TestMain(m *testing.M) {
	if os.Getenv("RENICE_TARGET") != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// threadNice reads a thread's (or process's) nice level: field 19 of its
// /proc stat.
func threadNice(t *testing.T, dir string) int {
	t.Helper()
	f, err := statFields(filepath.Join(dir, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(f[19-3])
	if err != nil {
		t.Fatal(err)
	}
	return n
}
