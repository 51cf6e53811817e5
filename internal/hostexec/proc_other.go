//go:build !unix

package hostexec

import (
	"os"
	"os/exec"
)

// setProcessGroup does nothing where process groups do not exist.
func setProcessGroup(c *exec.Cmd) {}

// killProcessGroup kills the process itself where process groups do not
// exist.
func killProcessGroup(c *exec.Cmd) error {
	if c.Process == nil {
		return nil
	}
	return c.Process.Kill()
}

// signalName is empty where signals are not reported.
func signalName(ps *os.ProcessState) string { return "" }
