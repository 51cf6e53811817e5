package agent

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/hostpath"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/vmspec"
)

// consoleLog is where a VM's serial console output goes, named by the
// agent in its own directory (never by a definition): a file console's
// file, a pty console's log.
func (a *Agent) consoleLog(id string) string {
	return filepath.Join(a.consoleDir(), id+".log")
}

// pathChecker checks the host paths of VM id against this host's policy;
// the agent's own directory (keys, console files) is out of every VM's
// reach.
func (a *Agent) pathChecker(id string) hostpath.Checker {
	own, err := filepath.Abs(a.cfg.DataDir)
	if err != nil {
		own = a.cfg.DataDir
	}
	return hostpath.Checker{Policy: a.paths, Root: a.root, ConsoleFile: a.consoleLog(id), Exclude: []string{own}}
}

// checkDefinitionPaths checks the host paths of a validated definition
// when the VM is created: where each leads, as far as it exists yet.
func (a *Agent) checkDefinitionPaths(id string, vm *vmspec.VM) error {
	if errs := a.pathChecker(id).Check(hostpath.FromDefinition(vm), hostpath.AtCreate); len(errs) > 0 {
		return errs
	}
	return nil
}

// checkStartPaths checks, right before a start, every host path of the
// domain libvirt is about to start (its inactive definition): each must
// exist and lead where this host allows. Links changed since the VM was
// created, and domains defined by an agent that had no policy, are caught
// here.
func (a *Agent) checkStartPaths(ctx context.Context, c libvirtconn.AgentConn, e *vmEntry) error {
	x, err := c.DomainXML(ctx, e.Domain, true)
	if err != nil {
		return err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return err
	}
	if errs := a.pathChecker(e.ID).Check(hostpath.FromDomain(&dom), hostpath.AtStart); len(errs) > 0 {
		a.log.Warn("VM start refused: host paths", "vm", e.ID, "name", e.Name, "err", errs.Error())
		return errs
	}
	return nil
}

// warnWritablePlaces logs the allowed directories others than their owner
// may write to: whoever can write there can swap a link between the check
// before a start and QEMU's opening of the file.
func (a *Agent) warnWritablePlaces() {
	seen := map[string]bool{}
	for _, u := range hostpath.FileUses {
		for _, d := range a.paths.Dirs(u) {
			if seen[d] {
				continue
			}
			seen[d] = true
			fi, err := os.Stat(filepath.Join(a.root, d))
			if err == nil && fi.IsDir() && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
				a.log.Warn("an allowed directory of VM files is writable by others than its owner: keep it to root (host_paths)", "dir", d, "mode", fi.Mode().Perm().String())
			}
		}
	}
}
