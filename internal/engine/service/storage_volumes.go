package service

import (
	"context"
	"errors"
	"fmt"
	"io"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/storage"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// Volumes: made empty, uploaded (the data streamed through to the agent of
// a host that has the pool, resumable from where it stands), resized,
// cloned, deleted when nothing uses them.

// MaxUploadBody bounds the data of one upload request.
const MaxUploadBody = storage.MaxUploadSize

// findVolume finds a volume of a pool by name (or ID).
func (e *engine) findVolume(ctx context.Context, poolRef, name string) (store.Pool, store.Volume, error) {
	p, err := e.findPool(ctx, poolRef)
	if err != nil {
		return p, store.Volume{}, err
	}
	v, err := e.st.GetVolumeByName(ctx, p.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		if v2, err2 := e.st.GetVolume(ctx, name); err2 == nil && v2.PoolID == p.ID {
			return p, v2, nil
		}
		return p, v, api.FieldError(api.CodeVolumeNotFound, "volume", "pool %s has no volume %q (polyvirt volume list --pool %s)", p.Name, name, p.Name)
	}
	return p, v, err
}

// volumeView is a volume's answer; users, when not nil, says who uses it.
func (e *engine) volumeView(ctx context.Context, p store.Pool, v store.Volume, users *store.VolumeUse) engineapi.Volume {
	out := engineapi.Volume{ID: v.ID, Pool: p.Name, PoolID: p.ID, Name: v.Name, Format: v.Format, State: string(v.State),
		VirtualSize: v.VirtualSize, ActualSize: v.ActualSize, SHA256: v.SHA256, Purpose: v.Purpose, Version: v.Version,
		Created: v.Created, Updated: v.Updated}
	if v.BackingVolumeID != "" {
		if b, err := e.st.GetVolume(ctx, v.BackingVolumeID); err == nil {
			out.Backing = b.Name
		}
	}
	if v.OwnerVMID != "" {
		if vm, err := e.st.GetVM(ctx, v.OwnerVMID); err == nil {
			out.OwnerVM = vm.Name
		}
	}
	if users != nil && !users.Empty() {
		out.UsedBy = &engineapi.VolumeUse{VMs: users.VMs, Images: users.Images, Templates: users.Templates, Overlays: users.Overlays}
	}
	if v.State == store.VolumeUploading {
		out.Upload = &engineapi.UploadProgress{SizeBytes: v.UploadSize, SHA256: v.SHA256}
	}
	return out
}

// ListVolumes lists the volumes, of one pool (name or ID) when pool is
// not empty.
func (s *Storage) ListVolumes(ctx context.Context, pool string) ([]engineapi.Volume, error) {
	e := s.e
	var f store.VolumeFilter
	if pool != "" {
		p, err := e.findPool(ctx, pool)
		if err != nil {
			return nil, coded(err)
		}
		f.PoolID = p.ID
	}
	ps, err := e.st.ListPools(ctx, "")
	if err != nil {
		return nil, coded(err)
	}
	pools := map[string]store.Pool{}
	for _, p := range ps {
		pools[p.ID] = p
	}
	vs, err := e.st.ListVolumes(ctx, f)
	if err != nil {
		return nil, coded(err)
	}
	out := make([]engineapi.Volume, 0, len(vs))
	for _, v := range vs {
		out = append(out, e.volumeView(ctx, pools[v.PoolID], v, nil))
	}
	return out, nil
}

// GetVolume is a volume of a pool, who uses it, and its sizes as a host
// of its pool sees them now.
func (s *Storage) GetVolume(ctx context.Context, pool, name string) (engineapi.Volume, error) {
	e := s.e
	p, v, err := e.findVolume(ctx, pool, name)
	if err != nil {
		return engineapi.Volume{}, coded(err)
	}
	u, err := e.st.VolumeUsers(ctx, v.ID)
	if err != nil {
		return engineapi.Volume{}, coded(err)
	}
	out := e.volumeView(ctx, p, v, &u)
	if v.State == store.VolumeReady {
		var info agentapi.VolumeInfo
		err := e.stor.onPool(ctx, p, func(h store.Host) error {
			return e.stor.call(ctx, h, "volumes/info", agentapi.VolumeRequest{Pool: agentPool(p), Name: v.Name, Format: v.Format}, &info)
		})
		if err == nil {
			out.VirtualSize, out.ActualSize = info.VirtualSize, info.ActualSize
		}
	}
	return out, nil
}

// checkVolumeName refuses a name that cannot be a volume's.
func checkVolumeName(field, name string) error {
	if err := vmspec.CheckVolumeName(name); err != nil {
		return api.FieldError(api.CodeVolumeNameInvalid, field, "%v", err)
	}
	return nil
}

func checkFormat(field, f string) error {
	if f != "raw" && f != "qcow2" {
		return invalidField(field, "format %q: want raw or qcow2", f)
	}
	return nil
}

// CreateVolume makes an empty volume, or starts an upload (its data then
// comes with UploadData). Asking again for an upload in progress with the
// same size and checksum answers it where it stands; created is false
// then.
func (s *Storage) CreateVolume(ctx context.Context, req engineapi.VolumeRequest) (v engineapi.Volume, created bool, err error) {
	v, created, err = s.e.createVolume(ctx, req)
	return v, created, coded(err)
}

func (e *engine) createVolume(ctx context.Context, req engineapi.VolumeRequest) (engineapi.Volume, bool, error) {
	if err := checkVolumeName("name", req.Name); err != nil {
		return engineapi.Volume{}, false, err
	}
	if err := checkFormat("format", req.Format); err != nil {
		return engineapi.Volume{}, false, err
	}
	p, err := e.findPool(ctx, req.Pool)
	if err != nil {
		return engineapi.Volume{}, false, err
	}
	if req.Upload != nil {
		return e.beginUpload(ctx, p, req)
	}
	if req.SizeBytes <= 0 || req.SizeBytes > storage.MaxVolumeSize {
		return engineapi.Volume{}, false, invalidField("sizeBytes", "give the volume's size in bytes (1 to %d TiB), or upload its data", storage.MaxVolumeSize>>40)
	}
	if _, err := e.st.GetVolumeByName(ctx, p.ID, req.Name); err == nil {
		return engineapi.Volume{}, false, fail(api.CodeVolumeExists, "pool %s has a volume %s already", p.Name, req.Name)
	}
	v, err := e.stor.makeVolume(ctx, p, agentapi.CreateRequest{Name: req.Name, Format: req.Format, SizeBytes: req.SizeBytes}, store.Volume{})
	if err != nil {
		return engineapi.Volume{}, false, err
	}
	_ = e.appendEvent(ctx, e.st, store.Event{Action: "volume.add", ObjectKind: "volume", ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name,
		Message: fmt.Sprintf("Volume %s of pool %s was created by %s (%s, %d bytes).", v.Name, p.Name, userName(ctx), v.Format, v.VirtualSize)})
	return e.volumeView(ctx, p, v, nil), true, nil
}

// makeVolume creates a volume on a host of its pool (empty, or an overlay
// when cr.Backing is set) and records it with the fields of rec (owner,
// purpose, backing); a record that cannot be written removes the file.
func (s *storageService) makeVolume(ctx context.Context, p store.Pool, cr agentapi.CreateRequest, rec store.Volume) (store.Volume, error) {
	info, err := s.createFile(ctx, p, cr)
	if err != nil {
		return store.Volume{}, err
	}
	rec.PoolID, rec.Name, rec.Format, rec.State = p.ID, cr.Name, cr.Format, store.VolumeReady
	rec.VirtualSize, rec.ActualSize = info.VirtualSize, info.ActualSize
	if err := s.e.st.CreateVolume(ctx, &rec); err != nil {
		s.removeFile(context.WithoutCancel(ctx), p, cr.Name)
		return store.Volume{}, err
	}
	return rec, nil
}

// removeFile deletes a volume's file (best effort: a leftover is logged).
func (s *storageService) removeFile(ctx context.Context, p store.Pool, name string) {
	err := s.onPool(ctx, p, func(h store.Host) error {
		return s.call(ctx, h, "volumes/delete", agentapi.VolumeRequest{Pool: agentPool(p), Name: name}, nil)
	})
	if err != nil && agentCode(err) != api.CodeVolumeNotFound {
		s.e.log.Warn("could not remove a volume's file", "pool", p.Name, "volume", name, "err", err)
	}
}

func (e *engine) beginUpload(ctx context.Context, p store.Pool, req engineapi.VolumeRequest) (engineapi.Volume, bool, error) {
	up := req.Upload
	sum, err := storage.ParseSHA256(up.SHA256)
	if err != nil {
		return engineapi.Volume{}, false, invalidField("upload.sha256", "%v", err)
	}
	if up.SizeBytes <= 0 || up.SizeBytes > storage.MaxUploadSize {
		return engineapi.Volume{}, false, invalidField("upload.sizeBytes", "give the size of the image file in bytes")
	}
	created := true
	v, err := e.st.GetVolumeByName(ctx, p.ID, req.Name)
	switch {
	case err == nil && v.State == store.VolumeUploading && v.UploadSize == up.SizeBytes && v.SHA256 == sum && v.Format == req.Format:
		created = false // the same upload, asked again: resume it
	case err == nil:
		return engineapi.Volume{}, false, fail(api.CodeVolumeExists, "pool %s has a volume %s already (%s)", p.Name, req.Name, v.State)
	case !errors.Is(err, store.ErrNotFound):
		return engineapi.Volume{}, false, err
	default:
		v = store.Volume{PoolID: p.ID, Name: req.Name, Format: req.Format, State: store.VolumeUploading, UploadSize: up.SizeBytes, SHA256: sum}
		if err := e.st.CreateVolume(ctx, &v); err != nil {
			return engineapi.Volume{}, false, err
		}
	}
	ur := agentapi.UploadRequest{Pool: agentPool(p), Name: v.Name, Format: v.Format, SizeBytes: up.SizeBytes, SHA256: sum, VirtualSize: up.VirtualSize}
	var st agentapi.UploadStatus
	err = e.stor.onPool(ctx, p, func(h store.Host) error { return e.stor.call(ctx, h, "uploads", ur, &st) })
	if err != nil {
		if created {
			_ = e.st.DeleteVolume(context.WithoutCancel(ctx), v.ID)
		}
		return engineapi.Volume{}, false, err
	}
	if created {
		_ = e.appendEvent(ctx, e.st, store.Event{Action: "volume.upload", ObjectKind: "volume", ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name,
			Message: fmt.Sprintf("Upload of volume %s to pool %s started by %s (%s, %d bytes).", v.Name, p.Name, userName(ctx), v.Format, up.SizeBytes)})
	}
	out := e.volumeView(ctx, p, v, nil)
	out.Upload = progress(st)
	return out, created, nil
}

func progress(st agentapi.UploadStatus) *engineapi.UploadProgress {
	p := &engineapi.UploadProgress{SizeBytes: st.SizeBytes, Offset: st.Offset, SHA256: st.SHA256, Done: st.Done}
	if st.SizeBytes > 0 {
		p.Percent = float64(st.Offset) * 100 / float64(st.SizeBytes)
	}
	return p
}

// UploadChunk is data of an upload: from Offset, Length bytes (-1:
// unknown). Total, when not -1, is the upload's size as the sender says
// it (a Content-Range's): it must be the upload's.
type UploadChunk struct {
	Offset, Length, Total int64
	Data                  io.Reader
}

// UploadData streams an upload's data through to the agent of a host that
// has the pool. The answer says where the upload stands (also when the
// data was refused for its offset: Upload.Offset is where to resume);
// once the data is complete and accepted, the volume. A refused upload (checksum,
// format, size, a corrupt or truncated image, a backing file outside the
// pool) is removed whole, its record too, and answered with its code.
func (s *Storage) UploadData(ctx context.Context, pool, name string, c UploadChunk) (engineapi.UploadAnswer, error) {
	ans, err := s.e.uploadData(ctx, pool, name, c)
	return ans, coded(err)
}

func (e *engine) uploadData(ctx context.Context, pool, name string, c UploadChunk) (engineapi.UploadAnswer, error) {
	var ans engineapi.UploadAnswer
	p, v, err := e.findVolume(ctx, pool, name)
	if err != nil {
		return ans, err
	}
	if v.State != store.VolumeUploading {
		return ans, fail(api.CodeUploadNotFound, "volume %s of pool %s is %s: no upload is in progress", v.Name, p.Name, v.State)
	}
	if c.Total >= 0 && c.Total != v.UploadSize {
		return ans, invalidField("Content-Range", "the upload has %d bytes, not %d", v.UploadSize, c.Total)
	}
	hosts, err := e.stor.hostsFor(ctx, p)
	if err != nil {
		return ans, err
	}
	h := hosts[0]
	st, err := e.stor.agents.UploadData(ctx, h, agentPool(p), v.Name, c.Offset, c.Length, c.Data)
	if err != nil {
		ae := asAgentError(err)
		switch {
		case ae == nil || ae.Status == 0 || ae.Code == api.CodeUploadInterrupted:
		case ae.Code == api.CodeUploadOffset || ae.Code == api.CodeUploadBusy:
			// Where the upload stands, for the client to resume from.
			var now agentapi.UploadStatus
			if e.stor.call(ctx, h, "uploads/status", agentapi.VolumeRequest{Pool: agentPool(p), Name: v.Name}, &now) == nil {
				ans.Upload = *progress(now)
			}
		case ae.Status == 422:
			// Refused: the agent removed the data; the record goes too.
			_ = e.st.InTx(context.WithoutCancel(ctx), func(tx store.Tx) error {
				if err := tx.DeleteVolume(ctx, v.ID); err != nil {
					return err
				}
				return e.appendEvent(ctx, tx, store.Event{Action: "volume.upload", Severity: store.SeverityError, ObjectKind: "volume",
					ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name, Code: ae.Code,
					Message: fmt.Sprintf("Upload of volume %s to pool %s was refused: nothing was kept.", v.Name, p.Name), Reason: ae.Msg})
			})
		}
		return ans, err
	}
	ans.Upload = *progress(st)
	if st.Done && st.Volume != nil {
		v.State, v.VirtualSize, v.ActualSize = store.VolumeReady, st.Volume.VirtualSize, st.Volume.ActualSize
		if st.Volume.Backing != "" {
			if b, err := e.st.GetVolumeByName(ctx, p.ID, st.Volume.Backing); err == nil {
				v.BackingVolumeID = b.ID
			}
		}
		err := e.st.InTx(ctx, func(tx store.Tx) error {
			if err := tx.UpdateVolume(ctx, &v); err != nil {
				return err
			}
			return e.appendEvent(ctx, tx, store.Event{Action: "volume.upload", ObjectKind: "volume", ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name,
				Message: fmt.Sprintf("Volume %s of pool %s was uploaded (%s, %d bytes, virtual size %d, SHA-256 %s).", v.Name, p.Name, v.Format, v.UploadSize, v.VirtualSize, v.SHA256)})
		})
		if err != nil {
			return ans, err
		}
		vv := e.volumeView(ctx, p, v, nil)
		ans.Volume = &vv
	}
	return ans, nil
}

// UploadStatus is where a volume's upload stands (done for a volume that
// is ready).
func (s *Storage) UploadStatus(ctx context.Context, pool, name string) (engineapi.UploadProgress, error) {
	e := s.e
	p, v, err := e.findVolume(ctx, pool, name)
	if err != nil {
		return engineapi.UploadProgress{}, coded(err)
	}
	if v.State != store.VolumeUploading {
		return engineapi.UploadProgress{SizeBytes: v.UploadSize, Offset: v.UploadSize, SHA256: v.SHA256, Done: true, Percent: 100}, nil
	}
	var st agentapi.UploadStatus
	err = e.stor.onPool(ctx, p, func(h store.Host) error {
		return e.stor.call(ctx, h, "uploads/status", agentapi.VolumeRequest{Pool: agentPool(p), Name: v.Name}, &st)
	})
	if err != nil {
		return engineapi.UploadProgress{}, coded(err)
	}
	return *progress(st), nil
}

// CancelUpload cancels an upload: its data and its record are removed.
func (s *Storage) CancelUpload(ctx context.Context, pool, name string) error {
	e := s.e
	p, v, err := e.findVolume(ctx, pool, name)
	if err != nil {
		return coded(err)
	}
	if v.State != store.VolumeUploading {
		return fail(api.CodeUploadNotFound, "volume %s of pool %s is %s: no upload is in progress", v.Name, p.Name, v.State)
	}
	err = e.stor.onPool(ctx, p, func(h store.Host) error {
		return e.stor.call(ctx, h, "uploads/abort", agentapi.VolumeRequest{Pool: agentPool(p), Name: v.Name}, nil)
	})
	if err != nil && agentCode(err) != api.CodeUploadNotFound {
		return coded(err)
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteVolume(ctx, v.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "volume.upload", Severity: store.SeverityWarning, ObjectKind: "volume", ObjectID: v.ID,
			ObjectName: p.Name + "/" + v.Name, Message: fmt.Sprintf("Upload of volume %s to pool %s was cancelled by %s.", v.Name, p.Name, userName(ctx))})
	})
	return coded(err)
}

// volumeBusy refuses to change a volume a VM that is not Down uses.
func (e *engine) volumeBusy(ctx context.Context, v store.Volume, what string) error {
	u, err := e.st.VolumeUsers(ctx, v.ID)
	if err != nil {
		return err
	}
	for _, name := range u.VMs {
		vm, err := e.st.GetVMByName(ctx, name)
		if err == nil && !isDown(vm) {
			return fail(api.CodeVolumeInUse, "Cannot %s volume %s: VM %s uses it and is %s; stop it first.", what, v.Name, vm.Name, vm.State)
		}
	}
	return nil
}

// ResizeVolume grows a volume no running VM uses.
func (s *Storage) ResizeVolume(ctx context.Context, pool, name string, req engineapi.VolumeResize) (engineapi.Volume, error) {
	v, err := s.e.resizeVolume(ctx, pool, name, req)
	return v, coded(err)
}

func (e *engine) resizeVolume(ctx context.Context, pool, name string, req engineapi.VolumeResize) (engineapi.Volume, error) {
	p, v, err := e.findVolume(ctx, pool, name)
	if err != nil {
		return engineapi.Volume{}, err
	}
	if v.State != store.VolumeReady {
		return engineapi.Volume{}, fail(api.CodeVolumeNotReady, "volume %s is %s", v.Name, v.State)
	}
	if err := e.volumeBusy(ctx, v, "resize"); err != nil {
		return engineapi.Volume{}, err
	}
	var info agentapi.VolumeInfo
	err = e.stor.onPool(ctx, p, func(h store.Host) error {
		return e.stor.call(ctx, h, "volumes/resize", agentapi.VolumeRequest{Pool: agentPool(p), Name: v.Name, Format: v.Format, SizeBytes: req.SizeBytes}, &info)
	})
	if err != nil {
		return engineapi.Volume{}, err
	}
	old := v.VirtualSize
	v.VirtualSize, v.ActualSize = info.VirtualSize, info.ActualSize
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpdateVolume(ctx, &v); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "volume.resize", ObjectKind: "volume", ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name,
			Message: fmt.Sprintf("Volume %s of pool %s was resized by %s from %d to %d bytes.", v.Name, p.Name, userName(ctx), old, v.VirtualSize)})
	})
	if err != nil {
		return engineapi.Volume{}, err
	}
	return e.volumeView(ctx, p, v, nil), nil
}

// CloneVolume copies a volume whole into a new one (of its pool, or
// another of a host that has both).
func (s *Storage) CloneVolume(ctx context.Context, pool, name string, req engineapi.VolumeClone) (engineapi.Volume, error) {
	v, err := s.e.cloneVolumeReq(ctx, pool, name, req)
	return v, coded(err)
}

func (e *engine) cloneVolumeReq(ctx context.Context, pool, name string, req engineapi.VolumeClone) (engineapi.Volume, error) {
	p, v, err := e.findVolume(ctx, pool, name)
	if err != nil {
		return engineapi.Volume{}, err
	}
	if err := checkVolumeName("name", req.Name); err != nil {
		return engineapi.Volume{}, err
	}
	dst := p
	if req.Pool != "" {
		if dst, err = e.findPool(ctx, req.Pool); err != nil {
			return engineapi.Volume{}, err
		}
	}
	if req.Format == "" {
		req.Format = v.Format
	}
	if err := checkFormat("format", req.Format); err != nil {
		return engineapi.Volume{}, err
	}
	nv, err := e.stor.cloneVolume(ctx, p, v, dst, req.Name, req.Format, store.Volume{})
	if err != nil {
		return engineapi.Volume{}, err
	}
	_ = e.appendEvent(ctx, e.st, store.Event{Action: "volume.clone", ObjectKind: "volume", ObjectID: nv.ID, ObjectName: dst.Name + "/" + nv.Name,
		Message: fmt.Sprintf("Volume %s of pool %s was cloned from %s of pool %s by %s.", nv.Name, dst.Name, v.Name, p.Name, userName(ctx))})
	return e.volumeView(ctx, dst, nv, nil), nil
}

// cloneVolume copies a volume whole on a host that has both pools and
// records the copy with rec's fields.
func (s *storageService) cloneVolume(ctx context.Context, src store.Pool, v store.Volume, dst store.Pool, name, format string, rec store.Volume) (store.Volume, error) {
	info, err := s.cloneFile(ctx, src, v, dst, name, format)
	if err != nil {
		return store.Volume{}, err
	}
	rec.PoolID, rec.Name, rec.Format, rec.State = dst.ID, name, format, store.VolumeReady
	rec.VirtualSize, rec.ActualSize = info.VirtualSize, info.ActualSize
	if err := s.e.st.CreateVolume(ctx, &rec); err != nil {
		s.removeFile(context.WithoutCancel(ctx), dst, name)
		return store.Volume{}, err
	}
	return rec, nil
}

// DeleteVolume removes a volume nothing uses: its file, then its record.
func (s *Storage) DeleteVolume(ctx context.Context, pool, name string) error {
	p, v, err := s.e.findVolume(ctx, pool, name)
	if err != nil {
		return coded(err)
	}
	return coded(s.e.stor.deleteVolume(ctx, p, v))
}

func (s *storageService) deleteVolume(ctx context.Context, p store.Pool, v store.Volume) error {
	u, err := s.e.st.VolumeUsers(ctx, v.ID)
	if err != nil {
		return err
	}
	if !u.Empty() {
		return api.FieldError(api.CodeVolumeInUse, "volume", "Cannot delete volume %s of pool %s: it is in use (%s).", v.Name, p.Name, u.String())
	}
	op := "volumes/delete"
	if v.State == store.VolumeUploading {
		op = "uploads/abort"
	}
	err = s.onPool(ctx, p, func(h store.Host) error {
		return s.call(ctx, h, op, agentapi.VolumeRequest{Pool: agentPool(p), Name: v.Name}, nil)
	})
	if code := agentCode(err); err != nil && code != api.CodeVolumeNotFound && code != api.CodeUploadNotFound {
		return err
	}
	return s.e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteVolume(ctx, v.ID); err != nil {
			return err
		}
		return s.e.appendEvent(ctx, tx, store.Event{Action: "volume.remove", ObjectKind: "volume", ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name,
			Message: fmt.Sprintf("Volume %s of pool %s was deleted by %s.", v.Name, p.Name, userName(ctx))})
	})
}
