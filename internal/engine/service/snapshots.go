package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
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
func (e *engine) snapshotVolumes(ctx context.Context, v store.VM) ([]store.Pool, []store.Volume, error) {
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
			return nil, nil, api.FieldError(api.CodeSnapshotNeedsQCOW2, fmt.Sprintf("disks[%d]", i),
				"VM %s has %s as a writable disk: snapshots live in qcow2 volumes (make the disk a qcow2 volume, or attach it read-only)", v.Name, what)
		}
		p, vol, err := e.findVolume(ctx, d.Pool, d.Volume)
		if err != nil {
			return nil, nil, err
		}
		pools, vols = append(pools, p), append(vols, vol)
	}
	if len(vols) == 0 {
		return nil, nil, fail(api.CodeSnapshotNeedsQCOW2, "VM %s has no writable disk to snapshot", v.Name)
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

// snapshotOut is the answer about a snapshot.
func (e *engine) snapshotOut(ctx context.Context, s store.Snapshot, vm string, vols []store.Volume) (engineapi.Snapshot, error) {
	n, err := e.objectNames(ctx)
	if err != nil {
		return engineapi.Snapshot{}, coded(err)
	}
	return snapshotView(s, vm, n, vols), nil
}

// ListSnapshots lists a VM's snapshots.
func (s *Storage) ListSnapshots(ctx context.Context, vm string) ([]engineapi.Snapshot, error) {
	e := s.e
	v, err := e.findVM(ctx, vm)
	if err != nil {
		return nil, coded(err)
	}
	ss, err := e.st.ListSnapshots(ctx, v.ID)
	if err != nil {
		return nil, coded(err)
	}
	n, err := e.objectNames(ctx)
	if err != nil {
		return nil, coded(err)
	}
	out := make([]engineapi.Snapshot, 0, len(ss))
	for _, sn := range ss {
		out = append(out, snapshotView(sn, v.Name, n, e.volumesOf(ctx, sn.VolumeIDs)))
	}
	return out, nil
}

func (e *engine) volumesOf(ctx context.Context, ids []string) []store.Volume {
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

// CreateSnapshot takes a snapshot of a VM: of a running one on its host
// (disk only, every disk at the same instant; or with its memory), of a
// Down one on its volumes at rest.
func (s *Storage) CreateSnapshot(ctx context.Context, vm string, req engineapi.SnapshotRequest) (engineapi.Snapshot, error) {
	e := s.e
	if err := store.ValidName(req.Name); err != nil {
		return engineapi.Snapshot{}, invalidField("name", "%v", err)
	}
	v, err := e.findVM(ctx, vm)
	if err != nil {
		return engineapi.Snapshot{}, coded(err)
	}
	snap, vols, err := e.createSnapshot(ctx, v, req)
	if err != nil {
		return engineapi.Snapshot{}, coded(err)
	}
	return e.snapshotOut(ctx, snap, v.Name, vols)
}

func (e *engine) createSnapshot(ctx context.Context, v store.VM, req engineapi.SnapshotRequest) (store.Snapshot, []store.Volume, error) {
	if _, err := e.st.GetSnapshot(ctx, v.ID, req.Name); err == nil {
		return store.Snapshot{}, nil, fail(api.CodeSnapshotExists, "VM %s has a snapshot %s already", v.Name, req.Name)
	}
	pools, vols, err := e.snapshotVolumes(ctx, v)
	if err != nil {
		return store.Snapshot{}, nil, err
	}
	snap := store.Snapshot{VMID: v.ID, Name: req.Name, Description: req.Description, Memory: req.Memory, VMState: string(v.State)}
	snap.InternalName = "pv-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	for _, vol := range vols {
		snap.VolumeIDs = append(snap.VolumeIDs, vol.ID)
	}
	switch {
	case running(v):
		h, err := e.st.GetHost(ctx, v.HostID)
		if err != nil {
			return snap, nil, err
		}
		ar := agentapi.SnapshotRequest{Name: snap.InternalName, Description: req.Description, Memory: req.Memory}
		if err := e.stor.agents.CreateSnapshot(ctx, h, v.ID, ar); err != nil {
			return snap, nil, e.snapshotFailed(ctx, v, "create", req.Name, err)
		}
		if req.Memory {
			snap.HostID = h.ID
		}
	case req.Memory:
		return snap, nil, fail(api.CodeSnapshotMemory, "VM %s is %s: a snapshot with memory is of a running VM; take a disk-only one", v.Name, v.State)
	case !isDown(v):
		return snap, nil, vmStatusError(v, "snapshot", "wait until it is Up or Down")
	default:
		if err := e.stor.snapshotAtRest(ctx, pools, vols, agentapi.SnapshotCreate, snap.InternalName); err != nil {
			return snap, nil, e.snapshotFailed(ctx, v, "create", req.Name, err)
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
	return snap, vols, err
}

// snapshotFailed records a failed snapshot operation as an event and
// returns the error.
func (e *engine) snapshotFailed(ctx context.Context, v store.VM, op, name string, err error) error {
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
func (s *storageService) snapshotAtRest(ctx context.Context, pools []store.Pool, vols []store.Volume, op agentapi.SnapshotOp, name string) error {
	for i, v := range vols {
		p := pools[i]
		err := s.onPool(ctx, p, func(h store.Host) error {
			return s.call(ctx, h, "volumes/snapshot", agentapi.VolumeRequest{Pool: agentPool(p), Name: v.Name, Op: op, Snapshot: name}, nil)
		})
		if err != nil {
			if op == agentapi.SnapshotCreate {
				_ = s.snapshotAtRest(context.WithoutCancel(ctx), pools[:i], vols[:i], agentapi.SnapshotDelete, name)
			}
			return err
		}
	}
	return nil
}

func (e *engine) findSnapshot(ctx context.Context, vm, name string) (store.VM, store.Snapshot, error) {
	v, err := e.findVM(ctx, vm)
	if err != nil {
		return v, store.Snapshot{}, err
	}
	s, err := e.st.GetSnapshot(ctx, v.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return v, s, api.FieldError(api.CodeSnapshotNotFound, "snapshot", "VM %s has no snapshot %q (polyvirt vm snapshot list %s)", v.Name, name, v.Name)
	}
	return v, s, err
}

// snapshotPools are the pools of a snapshot's volumes.
func (e *engine) snapshotPools(ctx context.Context, vols []store.Volume) ([]store.Pool, error) {
	pools := make([]store.Pool, len(vols))
	for i, vol := range vols {
		var err error
		if pools[i], err = e.st.GetPool(ctx, vol.PoolID); err != nil {
			return nil, err
		}
	}
	return pools, nil
}

// RevertSnapshot brings a VM back to a snapshot: a memory snapshot while
// the VM runs on the host that took it (it runs on from the snapshot);
// otherwise its disks, with the VM Down.
func (s *Storage) RevertSnapshot(ctx context.Context, vm, name string) (engineapi.Snapshot, error) {
	e := s.e
	v, sn, err := e.findSnapshot(ctx, vm, name)
	if err != nil {
		return engineapi.Snapshot{}, coded(err)
	}
	vols := e.volumesOf(ctx, sn.VolumeIDs)
	if err := e.revertSnapshot(ctx, v, sn, vols); err != nil {
		return engineapi.Snapshot{}, coded(err)
	}
	return e.snapshotOut(ctx, sn, v.Name, vols)
}

func (e *engine) revertSnapshot(ctx context.Context, v store.VM, s store.Snapshot, vols []store.Volume) error {
	how := "its disks"
	switch {
	case s.Memory && running(v) && v.HostID == s.HostID:
		h, err := e.st.GetHost(ctx, v.HostID)
		if err != nil {
			return err
		}
		if err := e.stor.agents.RevertSnapshot(ctx, h, v.ID, s.InternalName); err != nil {
			return e.snapshotFailed(ctx, v, "revert", s.Name, err)
		}
		how = "its disks and memory"
	case !isDown(v):
		hint := "stop it first: a disk-only snapshot is reverted while the VM is Down"
		if s.Memory {
			hint = "its memory is on the host that took it; stop the VM to revert its disks only"
		}
		return vmStatusError(v, "revert", hint)
	default:
		pools, err := e.snapshotPools(ctx, vols)
		if err != nil {
			return err
		}
		if err := e.stor.snapshotAtRest(ctx, pools, vols, agentapi.SnapshotRevert, s.InternalName); err != nil {
			return e.snapshotFailed(ctx, v, "revert", s.Name, err)
		}
	}
	return e.appendEvent(ctx, e.st, store.Event{Action: "vm.snapshot.revert", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
		Message: fmt.Sprintf("VM %s was reverted to snapshot %s (%s) by %s.", v.Name, s.Name, how, userName(ctx))})
}

// DeleteSnapshot deletes a snapshot from the VM's volumes (through the
// running VM, or at rest) and from the records.
func (s *Storage) DeleteSnapshot(ctx context.Context, vm, name string) error {
	e := s.e
	v, sn, err := e.findSnapshot(ctx, vm, name)
	if err != nil {
		return coded(err)
	}
	return coded(e.deleteSnapshot(ctx, v, sn))
}

func (e *engine) deleteSnapshot(ctx context.Context, v store.VM, s store.Snapshot) error {
	vols := e.volumesOf(ctx, s.VolumeIDs)
	switch {
	case running(v):
		h, err := e.st.GetHost(ctx, v.HostID)
		if err != nil {
			return err
		}
		if err := e.stor.agents.DeleteSnapshot(ctx, h, v.ID, s.InternalName); err != nil {
			return e.snapshotFailed(ctx, v, "delete", s.Name, err)
		}
	case !isDown(v):
		return vmStatusError(v, "delete a snapshot of", "wait until it is Up or Down")
	default:
		pools, err := e.snapshotPools(ctx, vols)
		if err != nil {
			return err
		}
		if err := e.stor.snapshotAtRest(ctx, pools, vols, agentapi.SnapshotDelete, s.InternalName); err != nil {
			return e.snapshotFailed(ctx, v, "delete", s.Name, err)
		}
	}
	return e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteSnapshot(ctx, s.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "vm.snapshot.delete", ObjectKind: "vm", ObjectID: v.ID, ObjectName: v.Name,
			Message: fmt.Sprintf("Snapshot %s of VM %s was deleted by %s.", s.Name, v.Name, userName(ctx))})
	})
}
