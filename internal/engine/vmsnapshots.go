package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/storage"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// VM snapshots: internal snapshots of the VM's qcow2 volumes (they travel
// with the volumes), taken on the running VM by its host's agent (disk
// only, or with its memory through libvirt), or on the volumes at rest
// when the VM is Down. A disk-only snapshot is reverted with the VM Down;
// a memory snapshot while the VM runs on the host that took it (it then
// runs on from there). The engine's records are the list.

// snapshotVolumes are a VM's writable disks' volumes: every one must be a
// qcow2 volume (a raw image, a host file, a block device keeps no
// snapshot).
func (e *Engine) snapshotVolumes(ctx context.Context, v store.VM) ([]store.Pool, []store.Volume, error) {
	def, err := vmspec.Decode(v.Definition)
	if err != nil {
		return nil, nil, fmt.Errorf("VM %s: the stored definition: %v", v.Name, err)
	}
	var pools []store.Pool
	var vols []store.Volume
	for i, d := range def.Disks {
		if d.ReadOnly || d.Device == "cdrom" {
			continue
		}
		if d.Volume == "" || d.Format != "qcow2" {
			what := "the host file " + d.Source
			if d.Volume != "" {
				what = "the " + d.Format + " volume " + d.Volume
			}
			return nil, nil, &api.Error{Status: http.StatusConflict, Code: api.CodeSnapshotNeedsQCOW2, Field: fmt.Sprintf("disks[%d]", i),
				Message: fmt.Sprintf("VM %s has %s as a writable disk: snapshots live in qcow2 volumes (make the disk a qcow2 volume, or attach it read-only)", v.Name, what)}
		}
		p, vol, err := e.findVolume(ctx, d.Pool, d.Volume)
		if err != nil {
			return nil, nil, err
		}
		pools, vols = append(pools, p), append(vols, vol)
	}
	if len(vols) == 0 {
		return nil, nil, api.NewError(http.StatusConflict, api.CodeSnapshotNeedsQCOW2, "VM %s has no writable disk to snapshot", v.Name)
	}
	return pools, vols, nil
}

func snapshotView(s store.Snapshot, vm string, n names, vols []store.Volume) engineapi.Snapshot {
	out := engineapi.Snapshot{ID: s.ID, VM: vm, Name: s.Name, Description: s.Description, Memory: s.Memory, VMState: s.VMState,
		Host: n.hosts[s.HostID], Volumes: []string{}, Created: s.Created}
	for _, v := range vols {
		out.Volumes = append(out.Volumes, v.Name)
	}
	return out
}

func (e *Engine) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	v, err := e.findVM(ctx, r.PathValue("vm"))
	if err != nil {
		return err
	}
	ss, err := e.st.ListSnapshots(ctx, v.ID)
	if err != nil {
		return err
	}
	n, err := e.objectNames(ctx)
	if err != nil {
		return err
	}
	out := make([]engineapi.Snapshot, 0, len(ss))
	for _, s := range ss {
		out = append(out, snapshotView(s, v.Name, n, e.volumesOf(ctx, s.VolumeIDs)))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (e *Engine) volumesOf(ctx context.Context, ids []string) []store.Volume {
	var out []store.Volume
	for _, id := range ids {
		if v, err := e.st.GetVolume(ctx, id); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// running tells whether a VM runs (its memory is live) on its host.
func running(v store.VM) bool {
	return v.HostID != "" && (v.State == store.VMUp || v.State == store.VMPaused || v.State == store.VMPoweringUp)
}

// createSnapshot takes a snapshot of a VM: of a running one on its host
// (disk only, every disk at the same instant; or with its memory), of a
// Down one on its volumes at rest.
func (e *Engine) createSnapshot(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req engineapi.SnapshotRequest
	if err := decodeBody(r, &req, false); err != nil {
		return err
	}
	if err := store.ValidName(req.Name); err != nil {
		return invalidField("name", "%v", err)
	}
	v, err := e.findVM(ctx, r.PathValue("vm"))
	if err != nil {
		return err
	}
	if _, err := e.st.GetSnapshot(ctx, v.ID, req.Name); err == nil {
		return api.NewError(http.StatusConflict, api.CodeAlreadyExists, "VM %s has a snapshot %s already", v.Name, req.Name)
	}
	pools, vols, err := e.snapshotVolumes(ctx, v)
	if err != nil {
		return err
	}
	snap := store.Snapshot{VMID: v.ID, Name: req.Name, Description: req.Description, Memory: req.Memory, VMState: string(v.State)}
	snap.InternalName = "pv-" + strings.ReplaceAll(newCorrelationID(), "-", "")
	for _, vol := range vols {
		snap.VolumeIDs = append(snap.VolumeIDs, vol.ID)
	}
	switch {
	case running(v):
		h, err := e.st.GetHost(ctx, v.HostID)
		if err != nil {
			return err
		}
		body := map[string]any{"name": snap.InternalName, "description": req.Description, "memory": req.Memory}
		if err := e.vms.ops.call(ctx, h, http.MethodPost, "/v1/vms/"+url.PathEscape(v.ID)+"/snapshots", mustJSON(body), nil); err != nil {
			return e.snapshotFailed(ctx, v, "create", req.Name, agentAPIError(err))
		}
		if req.Memory {
			snap.HostID = h.ID
		}
	case req.Memory:
		return api.NewError(http.StatusConflict, api.CodeSnapshotMemory, "VM %s is %s: a snapshot with memory is of a running VM; take a disk-only one", v.Name, v.State)
	case !isDown(v):
		return vmStatusError(v, "snapshot", "wait until it is Up or Down")
	default:
		if err := e.storage.snapshotAtRest(ctx, pools, vols, storage.SnapshotCreate, snap.InternalName); err != nil {
			return e.snapshotFailed(ctx, v, "create", req.Name, err)
		}
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateSnapshot(ctx, &snap); err != nil {
			return err
		}
		kind := "disk-only"
		if snap.Memory {
			kind = "with memory"
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "vm.snapshot.create", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
			Message: fmt.Sprintf("Snapshot %s of VM %s was taken by %s (%s, VM %s).", snap.Name, v.Name, userName(ctx), kind, v.State),
			Reason:  req.Description})
	})
	if err != nil {
		return err
	}
	n, err := e.objectNames(ctx)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, snapshotView(snap, v.Name, n, vols))
}

func (e *Engine) snapshotFailed(ctx context.Context, v store.VM, op, name string, err error) error {
	ae := asAPIError(err)
	_ = e.appendEvent(ctx, e.st, store.Event{Action: "vm.snapshot." + op, Severity: store.SeverityError, ObjectKind: "vm",
		ObjectID: v.ID, ObjectName: v.Name, Code: ae.Code,
		Message: fmt.Sprintf("Snapshot %s of VM %s could not be %s.", name, v.Name, map[string]string{"create": "taken", "revert": "reverted to", "delete": "deleted"}[op]),
		Reason:  ae.Message})
	return err
}

// snapshotAtRest runs one operation on the internal snapshot of each
// volume (a VM that is Down); a creation that fails on one volume is
// undone on the others.
func (s *storageService) snapshotAtRest(ctx context.Context, pools []store.Pool, vols []store.Volume, op storage.SnapshotOp, name string) error {
	for i, v := range vols {
		p := pools[i]
		err := s.onPool(ctx, p, func(h store.Host) error {
			return s.call(ctx, h, "volumes/snapshot", map[string]any{"pool": agentPool(p), "name": v.Name, "op": op, "snapshot": name}, nil)
		})
		if err != nil {
			if op == storage.SnapshotCreate {
				_ = s.snapshotAtRest(context.WithoutCancel(ctx), pools[:i], vols[:i], storage.SnapshotDelete, name)
			}
			return storageError(err)
		}
	}
	return nil
}

func (e *Engine) findSnapshot(ctx context.Context, r *http.Request) (store.VM, store.Snapshot, error) {
	v, err := e.findVM(ctx, r.PathValue("vm"))
	if err != nil {
		return v, store.Snapshot{}, err
	}
	s, err := e.st.GetSnapshot(ctx, v.ID, r.PathValue("snapshot"))
	if errors.Is(err, store.ErrNotFound) {
		return v, s, &api.Error{Status: http.StatusNotFound, Code: api.CodeSnapshotNotFound, Field: "snapshot",
			Message: fmt.Sprintf("VM %s has no snapshot %q (polyvirt vm snapshot list %s)", v.Name, r.PathValue("snapshot"), v.Name)}
	}
	return v, s, err
}

// revertSnapshot brings a VM back to a snapshot: a memory snapshot while
// the VM runs on the host that took it (it runs on from the snapshot);
// otherwise its disks, with the VM Down.
func (e *Engine) revertSnapshot(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	v, s, err := e.findSnapshot(ctx, r)
	if err != nil {
		return err
	}
	vols := e.volumesOf(ctx, s.VolumeIDs)
	how := "its disks"
	switch {
	case s.Memory && running(v) && v.HostID == s.HostID:
		h, err := e.st.GetHost(ctx, v.HostID)
		if err != nil {
			return err
		}
		if err := e.vms.ops.call(ctx, h, http.MethodPost, "/v1/vms/"+url.PathEscape(v.ID)+"/snapshots/"+url.PathEscape(s.InternalName)+"/revert", nil, nil); err != nil {
			return e.snapshotFailed(ctx, v, "revert", s.Name, agentAPIError(err))
		}
		how = "its disks and memory"
	case !isDown(v):
		hint := "stop it first: a disk-only snapshot is reverted while the VM is Down"
		if s.Memory {
			hint = "its memory is on the host that took it; stop the VM to revert its disks only"
		}
		return vmStatusError(v, "revert", hint)
	default:
		pools := make([]store.Pool, len(vols))
		for i, vol := range vols {
			if pools[i], err = e.st.GetPool(ctx, vol.PoolID); err != nil {
				return err
			}
		}
		if err := e.storage.snapshotAtRest(ctx, pools, vols, storage.SnapshotRevert, s.InternalName); err != nil {
			return e.snapshotFailed(ctx, v, "revert", s.Name, err)
		}
	}
	if err := e.appendEvent(ctx, e.st, store.Event{Action: "vm.snapshot.revert", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
		Message: fmt.Sprintf("VM %s was reverted to snapshot %s (%s) by %s.", v.Name, s.Name, how, userName(ctx))}); err != nil {
		return err
	}
	n, err := e.objectNames(ctx)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, snapshotView(s, v.Name, n, vols))
}

// deleteSnapshot deletes a snapshot from the VM's volumes (through the
// running VM, or at rest) and from the records.
func (e *Engine) deleteSnapshot(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	v, s, err := e.findSnapshot(ctx, r)
	if err != nil {
		return err
	}
	vols := e.volumesOf(ctx, s.VolumeIDs)
	switch {
	case running(v):
		h, err := e.st.GetHost(ctx, v.HostID)
		if err != nil {
			return err
		}
		if err := e.vms.ops.call(ctx, h, http.MethodDelete, "/v1/vms/"+url.PathEscape(v.ID)+"/snapshots/"+url.PathEscape(s.InternalName), nil, nil); err != nil {
			return e.snapshotFailed(ctx, v, "delete", s.Name, agentAPIError(err))
		}
	case !isDown(v):
		return vmStatusError(v, "delete a snapshot of", "wait until it is Up or Down")
	default:
		pools := make([]store.Pool, len(vols))
		for i, vol := range vols {
			if pools[i], err = e.st.GetPool(ctx, vol.PoolID); err != nil {
				return err
			}
		}
		if err := e.storage.snapshotAtRest(ctx, pools, vols, storage.SnapshotDelete, s.InternalName); err != nil {
			return e.snapshotFailed(ctx, v, "delete", s.Name, err)
		}
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteSnapshot(ctx, s.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "vm.snapshot.delete", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
			Message: fmt.Sprintf("Snapshot %s of VM %s was deleted by %s.", s.Name, v.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
