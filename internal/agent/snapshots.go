package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/httpx"
	"polyvirt/internal/libvirtconn"
)

// Snapshots of a running VM (the engine takes those of a VM that is Down
// on its volumes at rest, /v1/storage/volumes/snapshot). Every snapshot is
// internal to the VM's qcow2 disks, so that it travels with its volumes:
//
//   - with memory: libvirt's internal snapshot (QEMU's savevm: the disks
//     and the memory), reverted and deleted through libvirt;
//   - disk only: QEMU's blockdev-snapshot-internal-sync on every writable
//     disk, in one transaction (libvirt 9.0 offers no internal disk-only
//     snapshot of a running domain), through libvirt's monitor
//     passthrough; such a snapshot is reverted with the VM Down (qemu-img
//     snapshot -a on its volumes), deleted from the running VM with
//     blockdev-snapshot-delete-internal-sync.

var snapshotNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// snapshotRoutes are the routes of a running VM's snapshots.
func (a *Agent) snapshotRoutes() []route {
	return []route{
		{Method: "POST", Path: "/v1/vms/{id}/snapshots", Summary: "Take a snapshot of a running VM: its disks at one instant (QEMU's blockdev-snapshot-internal-sync in one transaction), or with memory through libvirt.", plain: a.postSnapshot},
		{Method: "POST", Path: "/v1/vms/{id}/snapshots/{name}/revert", Summary: "Revert a running VM to a snapshot with memory (it runs on from there).", plain: a.revertSnapshot},
		{Method: "DELETE", Path: "/v1/vms/{id}/snapshots/{name}", Summary: "Delete a snapshot from a running VM's disks.", plain: a.deleteSnapshot},
	}
}

func (a *Agent) postSnapshot(w http.ResponseWriter, r *http.Request) error {
	var req agentapi.SnapshotRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	res, err := a.CreateSnapshot(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, res)
}

func (a *Agent) revertSnapshot(w http.ResponseWriter, r *http.Request) error {
	res, err := a.RevertSnapshot(r.Context(), r.PathValue("id"), r.PathValue("name"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, res)
}

func (a *Agent) deleteSnapshot(w http.ResponseWriter, r *http.Request) error {
	res, err := a.DeleteSnapshot(r.Context(), r.PathValue("id"), r.PathValue("name"))
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, res)
}

// runningSnapshots finds a running VM and its connection's snapshot calls.
func (a *Agent) runningSnapshots(ctx context.Context, id string) (*vmEntry, libvirtconn.AgentConn, libvirtconn.Snapshots, func(), error) {
	e, err := a.entry(id)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	unlock, err := a.lockVM(ctx, e)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, err := a.conn.get()
	if err != nil {
		unlock()
		return nil, nil, nil, nil, err
	}
	sc, ok := c.(libvirtconn.Snapshots)
	if !ok {
		unlock()
		return nil, nil, nil, nil, api.FieldError(api.CodeSnapshotUnsupported, "", "this agent's libvirt connection takes no snapshots")
	}
	st, err := c.DomainState(ctx, e.Domain)
	if err != nil {
		unlock()
		return nil, nil, nil, nil, err
	}
	if st != libvirtconn.StateRunning && st != libvirtconn.StatePaused && st != libvirtconn.StateBlocked {
		unlock()
		return nil, nil, nil, nil, api.FieldError(api.CodeVMNotRunning, "", "VM %s is %s: the snapshots of a VM that is not running are taken on its volumes", e.Name, stateOf(st))
	}
	return e, c, sc, unlock, nil
}

// CreateSnapshot snapshots a running VM: disk only (every writable disk,
// atomically) or with its memory.
func (a *Agent) CreateSnapshot(ctx context.Context, id string, req agentapi.SnapshotRequest) (*agentapi.SnapshotResult, error) {
	if !snapshotNameRE.MatchString(req.Name) {
		return nil, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "snapshot name %q: 1 to 64 letters, digits, '.', '_', '-'", req.Name)
	}
	if len(req.Description) > 1024 || strings.ContainsAny(req.Description, "\x00") {
		return nil, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "description: at most 1024 characters")
	}
	e, c, sc, unlock, err := a.runningSnapshots(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	nodes, err := a.writableNodes(ctx, sc, e)
	if err != nil {
		return nil, err
	}
	res := &agentapi.SnapshotResult{VM: e.ID, Name: req.Name, Memory: req.Memory}
	for _, n := range nodes {
		res.Disks = append(res.Disks, n.File)
	}
	if req.Memory {
		if err := sc.CreateSnapshot(ctx, e.Domain, req.Name, req.Description); err != nil {
			return nil, api.FieldError(api.CodeSnapshotFailed, "", "libvirt refused the snapshot of VM %s: %v", e.Name, err)
		}
	} else {
		actions := make([]map[string]any, 0, len(nodes))
		for _, n := range nodes {
			actions = append(actions, map[string]any{"type": "blockdev-snapshot-internal-sync",
				"data": map[string]string{"device": n.Node, "name": req.Name}})
		}
		if err := qmp(ctx, sc, e, "transaction", map[string]any{"actions": actions}); err != nil {
			return nil, err
		}
	}
	st, _ := c.DomainState(ctx, e.Domain)
	res.State = stateOf(st)
	a.log.Info("VM snapshot taken", "vm", e.ID, "name", e.Name, "snapshot", req.Name, "memory", req.Memory, "disks", len(nodes))
	return res, nil
}

// RevertSnapshot brings a running VM back to a snapshot with its memory
// (libvirt's). A disk-only snapshot is reverted with the VM Down.
func (a *Agent) RevertSnapshot(ctx context.Context, id, name string) (*agentapi.SnapshotResult, error) {
	e, c, sc, unlock, err := a.runningSnapshots(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	has, err := sc.HasSnapshot(ctx, e.Domain, name)
	if err != nil {
		return nil, err
	}
	if !has {
		return nil, api.FieldError(api.CodeSnapshotRevertNeedsDown, "", "snapshot %s of VM %s holds no memory on this host: stop the VM, then revert its disks", name, e.Name)
	}
	if err := sc.RevertSnapshot(ctx, e.Domain, name); err != nil {
		return nil, api.FieldError(api.CodeSnapshotFailed, "", "libvirt could not revert VM %s to %s: %v", e.Name, name, err)
	}
	st, _ := c.DomainState(ctx, e.Domain)
	a.log.Info("VM reverted to a snapshot", "vm", e.ID, "name", e.Name, "snapshot", name)
	return &agentapi.SnapshotResult{VM: e.ID, Name: name, Memory: true, State: stateOf(st)}, nil
}

// DeleteSnapshot deletes a snapshot from a running VM's disks.
func (a *Agent) DeleteSnapshot(ctx context.Context, id, name string) (*agentapi.SnapshotResult, error) {
	if !snapshotNameRE.MatchString(name) {
		return nil, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "snapshot name %q", name)
	}
	e, c, sc, unlock, err := a.runningSnapshots(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &agentapi.SnapshotResult{VM: e.ID, Name: name}
	has, err := sc.HasSnapshot(ctx, e.Domain, name)
	if err != nil {
		return nil, err
	}
	if has {
		res.Memory = true
		if err := sc.DeleteSnapshot(ctx, e.Domain, name); err != nil {
			return nil, api.FieldError(api.CodeSnapshotFailed, "", "libvirt could not delete snapshot %s of VM %s: %v", name, e.Name, err)
		}
	} else {
		nodes, err := a.writableNodes(ctx, sc, e)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			err := qmp(ctx, sc, e, "blockdev-snapshot-delete-internal-sync", map[string]string{"device": n.Node, "name": name})
			if err != nil && !strings.Contains(err.Error(), "not found") {
				return nil, err
			}
			res.Disks = append(res.Disks, n.File)
		}
	}
	st, _ := c.DomainState(ctx, e.Domain)
	res.State = stateOf(st)
	a.log.Info("VM snapshot deleted", "vm", e.ID, "name", e.Name, "snapshot", name)
	return res, nil
}

// BlockNode is one disk of a running VM as QEMU's query-block reports it.
type BlockNode struct {
	// Node is the format node's name (libvirt-2-format).
	Node string
	// Driver is the image format (qcow2, raw); File the image file.
	Driver   string
	File     string
	ReadOnly bool
}

// writableNodes lists a running VM's writable disks, all qcow2 (refused
// otherwise: a raw disk has nowhere to keep a snapshot).
func (a *Agent) writableNodes(ctx context.Context, sc libvirtconn.Snapshots, e *vmEntry) ([]BlockNode, error) {
	out, err := sc.MonitorCommand(ctx, e.Domain, `{"execute":"query-block"}`)
	if err != nil {
		return nil, err
	}
	nodes, err := ParseQueryBlock([]byte(out))
	if err != nil {
		return nil, api.FieldError(api.CodeSnapshotFailed, "", "VM %s: %v", e.Name, err)
	}
	var rw []BlockNode
	for _, n := range nodes {
		if n.ReadOnly {
			continue
		}
		if n.Driver != "qcow2" {
			return nil, api.FieldError(api.CodeSnapshotNeedsQCOW2, "", "VM %s has the writable %s disk %s: a snapshot lives in qcow2 disks; convert it (or attach it read-only)", e.Name, n.Driver, n.File)
		}
		rw = append(rw, n)
	}
	if len(rw) == 0 {
		return nil, api.FieldError(api.CodeSnapshotNeedsQCOW2, "", "VM %s has no writable disk to snapshot", e.Name)
	}
	return rw, nil
}

// qmp runs one QMP command and returns its error, if any.
func qmp(ctx context.Context, sc libvirtconn.Snapshots, e *vmEntry, command string, args any) error {
	b, err := json.Marshal(map[string]any{"execute": command, "arguments": args})
	if err != nil {
		return err
	}
	out, err := sc.MonitorCommand(ctx, e.Domain, string(b))
	if err != nil {
		return api.FieldError(api.CodeSnapshotFailed, "", "VM %s: %s: %v", e.Name, command, err)
	}
	if err := ParseQMPReply([]byte(out)); err != nil {
		return api.FieldError(api.CodeSnapshotFailed, "", "VM %s: %s: %v", e.Name, command, err)
	}
	return nil
}

// ParseQueryBlock reads QEMU's query-block answer: the disks with an
// image inserted.
func ParseQueryBlock(b []byte) ([]BlockNode, error) {
	var reply struct {
		Return []struct {
			Device   string `json:"device"`
			QDev     string `json:"qdev"`
			Inserted *struct {
				NodeName string `json:"node-name"`
				Drv      string `json:"drv"`
				RO       bool   `json:"ro"`
				File     string `json:"file"`
			} `json:"inserted"`
		} `json:"return"`
		Error *qmpErr `json:"error"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return nil, fmt.Errorf("query-block: the answer is not QMP JSON: %v", err)
	}
	if reply.Error != nil {
		return nil, reply.Error
	}
	var out []BlockNode
	for i, d := range reply.Return {
		if d.Inserted == nil {
			continue // an empty CD-ROM tray
		}
		in := d.Inserted
		if in.NodeName == "" || in.Drv == "" {
			return nil, fmt.Errorf("query-block: device %d (%s) without node-name or driver", i, d.QDev)
		}
		out = append(out, BlockNode{Node: in.NodeName, Driver: in.Drv, File: in.File, ReadOnly: in.RO})
	}
	return out, nil
}

// qmpErr is a QMP error answer.
type qmpErr struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpErr) Error() string { return e.Class + ": " + e.Desc }

// ParseQMPReply reads a QMP answer: nil for a "return", the error of an
// "error".
func ParseQMPReply(b []byte) error {
	var reply struct {
		Return json.RawMessage `json:"return"`
		Error  *qmpErr         `json:"error"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return fmt.Errorf("the answer is not QMP JSON: %v", err)
	}
	if reply.Error != nil {
		return reply.Error
	}
	if reply.Return == nil {
		return fmt.Errorf("the answer has neither return nor error")
	}
	return nil
}
