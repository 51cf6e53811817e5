package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// renice sets the nice level of every thread of every process of this
// user with this command name (truncated as /proc's comm is) but self,
// and returns how
// many threads it set. Linux keeps a nice level per thread
// (setpriority(2) on a process id sets its first thread's only), and a Go
// process runs its goroutines on several: each is set.
func renice(name string, self, nice int) (int, error) {
	if len(name) > 15 {
		name = name[:15]
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	n := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		if fi, err := os.Stat(d); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
			continue // another user's (or gone)
		}
		tasks, _ := filepath.Glob(filepath.Join(d, "task", "[0-9]*"))
		for _, t := range tasks {
			tid, err := strconv.Atoi(filepath.Base(t))
			if err != nil {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
				if os.IsNotExist(err) || err == syscall.ESRCH {
					continue // the thread ended meanwhile
				}
				return n, fmt.Errorf("nice %d for thread %d of process %d (%s): %w", nice, tid, pid, name, err)
			}
			n++
		}
	}
	return n, nil
}
