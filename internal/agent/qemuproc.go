package agent

import (
	"bytes"
	"io/fs"
	"net/url"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A destroy of a VM whose QEMU does not answer: libvirt sends QEMU SIGTERM
// and waits 10 s before SIGKILL — a stopped or wedged QEMU never acts on
// SIGTERM. When libvirtd runs on this machine (a local URI) the agent
// sends the SIGKILL itself a moment after the destroy began; libvirt then
// finds the process gone and finishes the destroy as its own.

// killGrace is how long a destroy of a VM that does not answer is left to
// libvirt before the agent kills its QEMU.
const killGrace = time.Second

// localLibvirt tells whether a libvirt URI is a daemon on this machine
// (qemu:///system, qemu+unix:///system?socket=...), whose QEMU processes
// the agent sees.
func localLibvirt(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Host != "" {
		return false
	}
	return u.Scheme == "qemu" || u.Scheme == "qemu+unix"
}

// qemuProcesses finds, in a /proc tree, the QEMU processes of the domain
// with this UUID: a program named qemu-* whose command line has
// "-uuid UUID" (libvirt always passes it).
func qemuProcesses(proc fs.FS, uuid string) []int {
	entries, err := fs.ReadDir(proc, ".")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 {
			continue
		}
		b, err := fs.ReadFile(proc, e.Name()+"/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if !strings.HasPrefix(path.Base(args[0]), "qemu") {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-uuid" && strings.EqualFold(args[i+1], uuid) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// killStuckQEMU kills the QEMU of VM e unless done closes within
// killGrace: for a destroy of a VM whose QEMU does not answer, on a local
// libvirtd.
func (a *Agent) killStuckQEMU(e *vmEntry, done <-chan struct{}) {
	if a.procFS == nil || !localLibvirt(a.cfg.LibvirtURI) || a.health.notResponding(e.ID) == "" {
		return
	}
	select {
	case <-done:
		return
	case <-time.After(killGrace):
	}
	for _, pid := range qemuProcesses(a.procFS, e.Domain.UUID) {
		a.log.Warn("killing the QEMU of a VM that does not answer, for its destroy", "vm", e.ID, "name", e.Name, "pid", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
