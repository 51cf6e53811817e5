//go:build unix

package hostexec

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup starts the command as the leader of a new process group,
// so that a timeout kills it with every process it started.
func setProcessGroup(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills the command's whole process group.
func killProcessGroup(c *exec.Cmd) error {
	if c.Process == nil {
		return nil
	}
	if err := syscall.Kill(-c.Process.Pid, syscall.SIGKILL); err != nil {
		// The group may be gone already; kill the leader at least.
		return c.Process.Kill()
	}
	return nil
}

// signalName names the signal that ended the process, "" if none.
func signalName(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal().String()
	}
	return ""
}
