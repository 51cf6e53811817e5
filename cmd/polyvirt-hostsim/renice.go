package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// renice sets the nice level of every thread of every process of this
// user with this command name (processesNamed) but self, and returns how
// many threads it set. Linux keeps a nice level per thread
// (setpriority(2) on a process id sets its first thread's only), and a Go
// process runs its goroutines on several: each is set.
func renice(name string, self, nice int) (int, error) {
	n := 0
	for _, pid := range processesNamed(name) {
		if pid == self {
			continue
		}
		d := filepath.Join("/proc", strconv.Itoa(pid))
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
