package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/storage"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// MaxUploadBody bounds the data of one upload request.
const MaxUploadBody = storage.MaxUploadSize

// findVolume finds a volume of a pool by name (or ID).
func (e *Engine) findVolume(ctx context.Context, poolRef, name string) (store.Pool, store.Volume, error) {
	p, err := e.findPool(ctx, poolRef)
	if err != nil {
		return p, store.Volume{}, err
	}
	v, err := e.st.GetVolumeByName(ctx, p.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		if v2, err2 := e.st.GetVolume(ctx, name); err2 == nil && v2.PoolID == p.ID {
			return p, v2, nil
		}
		return p, v, &api.Error{Status: http.StatusNotFound, Code: api.CodeVolumeNotFound, Field: "volume",
			Message: fmt.Sprintf("pool %s has no volume %q (polyvirt volume list --pool %s)", p.Name, name, p.Name)}
	}
	return p, v, err
}

// volumeView is a volume's answer; users, when not nil, says who uses it.
func (e *Engine) volumeView(ctx context.Context, p store.Pool, v store.Volume, users *store.VolumeUse) engineapi.Volume {
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

func (e *Engine) listVolumes(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var f store.VolumeFilter
	pools := map[string]store.Pool{}
	if ref := r.URL.Query().Get("pool"); ref != "" {
		p, err := e.findPool(ctx, ref)
		if err != nil {
			return err
		}
		f.PoolID = p.ID
	}
	ps, err := e.st.ListPools(ctx, "")
	if err != nil {
		return err
	}
	for _, p := range ps {
		pools[p.ID] = p
	}
	vs, err := e.st.ListVolumes(ctx, f)
	if err != nil {
		return err
	}
	out := make([]engineapi.Volume, 0, len(vs))
	for _, v := range vs {
		out = append(out, e.volumeView(ctx, pools[v.PoolID], v, nil))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (e *Engine) getVolume(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, v, err := e.findVolume(ctx, r.PathValue("pool"), r.PathValue("volume"))
	if err != nil {
		return err
	}
	u, err := e.st.VolumeUsers(ctx, v.ID)
	if err != nil {
		return err
	}
	out := e.volumeView(ctx, p, v, &u)
	if v.State == store.VolumeReady {
		// The file as its host sees it now.
		var info storage.VolumeInfo
		err := e.storage.onPool(ctx, p, func(h store.Host) error {
			return e.storage.call(ctx, h, "volumes/info", map[string]any{"pool": agentPool(p), "name": v.Name, "format": v.Format}, &info)
		})
		if err == nil {
			out.VirtualSize, out.ActualSize = info.VirtualSize, info.ActualSize
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// checkVolumeName refuses a name that cannot be a volume's.
func checkVolumeName(field, name string) error {
	if err := vmspec.CheckVolumeName(name); err != nil {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeVolumeNameInvalid, Field: field, Message: err.Error()}
	}
	return nil
}

func checkFormat(field, f string) error {
	if f != "raw" && f != "qcow2" {
		return invalidField(field, "format %q: want raw or qcow2", f)
	}
	return nil
}

// createVolume makes an empty volume, or starts an upload (the data then
// comes with PUT .../data). Asking again for an upload in progress with
// the same size and checksum answers it, where it stands.
func (e *Engine) createVolume(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req engineapi.VolumeRequest
	if err := decodeBody(r, &req, false); err != nil {
		return err
	}
	if err := checkVolumeName("name", req.Name); err != nil {
		return err
	}
	if err := checkFormat("format", req.Format); err != nil {
		return err
	}
	p, err := e.findPool(ctx, req.Pool)
	if err != nil {
		return err
	}
	if req.Upload != nil {
		return e.beginUpload(ctx, w, p, req)
	}
	if req.SizeBytes <= 0 || req.SizeBytes > storage.MaxVolumeSize {
		return invalidField("sizeBytes", "give the volume's size in bytes (1 to %d TiB), or upload its data", storage.MaxVolumeSize>>40)
	}
	if _, err := e.st.GetVolumeByName(ctx, p.ID, req.Name); err == nil {
		return api.NewError(http.StatusConflict, api.CodeVolumeExists, "pool %s has a volume %s already", p.Name, req.Name)
	}
	v, err := e.storage.makeVolume(ctx, p, storage.CreateRequest{Name: req.Name, Format: req.Format, SizeBytes: req.SizeBytes}, store.Volume{})
	if err != nil {
		return err
	}
	_ = e.appendEvent(ctx, e.st, store.Event{Action: "volume.add", ObjectKind: "volume", ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name,
		Message: fmt.Sprintf("Volume %s of pool %s was created by %s (%s, %d bytes).", v.Name, p.Name, userName(ctx), v.Format, v.VirtualSize)})
	return writeJSON(w, http.StatusCreated, e.volumeView(ctx, p, v, nil))
}

// makeVolume creates a volume on a host of its pool (empty, or an overlay
// when cr.Backing is set) and records it with the fields of rec (owner,
// purpose, backing); a record that cannot be written removes the file.
func (s *storageService) makeVolume(ctx context.Context, p store.Pool, cr storage.CreateRequest, rec store.Volume) (store.Volume, error) {
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
		return s.call(ctx, h, "volumes/delete", map[string]any{"pool": agentPool(p), "name": name}, nil)
	})
	if ae := asAgentError(err); err != nil && !(ae != nil && ae.Code == api.CodeVolumeNotFound) {
		s.e.log.Warn("could not remove a volume's file", "pool", p.Name, "volume", name, "err", err)
	}
}

func (e *Engine) beginUpload(ctx context.Context, w http.ResponseWriter, p store.Pool, req engineapi.VolumeRequest) error {
	up := req.Upload
	sum, err := storage.ParseSHA256(up.SHA256)
	if err != nil {
		return invalidField("upload.sha256", "%v", err)
	}
	if up.SizeBytes <= 0 || up.SizeBytes > storage.MaxUploadSize {
		return invalidField("upload.sizeBytes", "give the size of the image file in bytes")
	}
	status := http.StatusCreated
	v, err := e.st.GetVolumeByName(ctx, p.ID, req.Name)
	switch {
	case err == nil && v.State == store.VolumeUploading && v.UploadSize == up.SizeBytes && v.SHA256 == sum && v.Format == req.Format:
		status = http.StatusOK // the same upload, asked again: resume it
	case err == nil:
		return api.NewError(http.StatusConflict, api.CodeVolumeExists, "pool %s has a volume %s already (%s)", p.Name, req.Name, v.State)
	case !errors.Is(err, store.ErrNotFound):
		return err
	default:
		v = store.Volume{PoolID: p.ID, Name: req.Name, Format: req.Format, State: store.VolumeUploading, UploadSize: up.SizeBytes, SHA256: sum}
		if err := e.st.CreateVolume(ctx, &v); err != nil {
			return err
		}
	}
	ur := storage.UploadRequest{Pool: agentPool(p), Name: v.Name, Format: v.Format, SizeBytes: up.SizeBytes, SHA256: sum, VirtualSize: up.VirtualSize}
	var st storage.UploadStatus
	err = e.storage.onPool(ctx, p, func(h store.Host) error { return e.storage.call(ctx, h, "uploads", ur, &st) })
	if err != nil {
		if status == http.StatusCreated {
			_ = e.st.DeleteVolume(context.WithoutCancel(ctx), v.ID)
		}
		return storageError(err)
	}
	if status == http.StatusCreated {
		_ = e.appendEvent(ctx, e.st, store.Event{Action: "volume.upload", ObjectKind: "volume", ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name,
			Message: fmt.Sprintf("Upload of volume %s to pool %s started by %s (%s, %d bytes).", v.Name, p.Name, userName(ctx), v.Format, up.SizeBytes)})
	}
	out := e.volumeView(ctx, p, v, nil)
	out.Upload = progress(st)
	w.Header().Set(storage.UploadOffsetHeader, strconv.FormatInt(st.Offset, 10))
	return writeJSON(w, status, out)
}

func progress(st storage.UploadStatus) *engineapi.UploadProgress {
	p := &engineapi.UploadProgress{SizeBytes: st.SizeBytes, Offset: st.Offset, SHA256: st.SHA256, Done: st.Done}
	if st.SizeBytes > 0 {
		p.Percent = float64(st.Offset) * 100 / float64(st.SizeBytes)
	}
	return p
}

// uploadOffset reads where a request's data starts: Upload-Offset, or the
// first byte of a Content-Range whose size must be the upload's.
func uploadOffset(r *http.Request, size int64) (int64, error) {
	if h := r.Header.Get(storage.UploadOffsetHeader); h != "" {
		off, err := storage.ParseOffset(h)
		if err != nil {
			return 0, invalidField(storage.UploadOffsetHeader, "%v", err)
		}
		return off, nil
	}
	if h := r.Header.Get("Content-Range"); h != "" {
		first, _, total, err := storage.ParseContentRange(h)
		if err != nil {
			return 0, invalidField("Content-Range", "%v", err)
		}
		if total != size {
			return 0, invalidField("Content-Range", "the upload has %d bytes, not %d", size, total)
		}
		return first, nil
	}
	return 0, nil
}

// putVolumeData streams an upload's data through to the agent of a host
// that has the pool. The answer says where the upload stands; once the
// data is complete and accepted, the volume. A refused upload (checksum,
// format, size, a corrupt or truncated image, a backing file outside the
// pool) is removed whole, its record too, and answered with its code.
func (e *Engine) putVolumeData(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(24 * time.Hour))
	_ = rc.SetWriteDeadline(time.Now().Add(24 * time.Hour))
	p, v, err := e.findVolume(ctx, r.PathValue("pool"), r.PathValue("volume"))
	if err != nil {
		return err
	}
	if v.State != store.VolumeUploading {
		return api.NewError(http.StatusConflict, api.CodeUploadNotFound, "volume %s of pool %s is %s: no upload is in progress", v.Name, p.Name, v.State)
	}
	off, err := uploadOffset(r, v.UploadSize)
	if err != nil {
		return err
	}
	q := url.Values{"poolId": {p.ID}, "pool": {p.Name}, "poolPath": {p.Path}, "poolKind": {string(p.Kind)}, "name": {v.Name}}
	hdr := http.Header{storage.UploadOffsetHeader: {strconv.FormatInt(off, 10)}}
	if r.ContentLength >= 0 {
		hdr.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	var st storage.UploadStatus
	hosts, err := e.storage.hostsFor(ctx, p)
	if err != nil {
		return err
	}
	h := hosts[0]
	err = e.storage.doUpload(ctx, h, "/v1/storage/uploads/data?"+q.Encode(), hdr, r, &st)
	if err != nil {
		ae := asAgentError(err)
		switch {
		case ae == nil || ae.Status == 0 || ae.Code == api.CodeUploadInterrupted:
			return storageError(err)
		case ae.Code == api.CodeUploadOffset || ae.Code == api.CodeUploadBusy:
			e.setUploadOffset(ctx, w, h, p, v)
			return storageError(err)
		case ae.Status == http.StatusUnprocessableEntity:
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
		return storageError(err)
	}
	w.Header().Set(storage.UploadOffsetHeader, strconv.FormatInt(st.Offset, 10))
	ans := engineapi.UploadAnswer{Upload: *progress(st)}
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
			return err
		}
		vv := e.volumeView(ctx, p, v, nil)
		ans.Volume = &vv
	}
	return writeJSON(w, http.StatusOK, ans)
}

// setUploadOffset puts where an upload stands in an answer's header (a
// client resumes from there).
func (e *Engine) setUploadOffset(ctx context.Context, w http.ResponseWriter, h store.Host, p store.Pool, v store.Volume) {
	var st storage.UploadStatus
	if e.storage.call(ctx, h, "uploads/status", map[string]any{"pool": agentPool(p), "name": v.Name}, &st) == nil {
		w.Header().Set(storage.UploadOffsetHeader, strconv.FormatInt(st.Offset, 10))
	}
}

// doUpload streams a request's body to an agent.
func (s *storageService) doUpload(ctx context.Context, h store.Host, p string, hdr http.Header, r *http.Request, out *storage.UploadStatus) error {
	addr, err := s.e.vms.ops.target(h)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+addr+p, r.Body)
	if err != nil {
		return err
	}
	req.ContentLength = r.ContentLength
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := s.http.Do(req)
	if err != nil {
		return &agentCallError{Host: h.Name, Msg: shortError(err)}
	}
	defer resp.Body.Close()
	return decodeAgentAnswer(h, resp, out)
}

func (e *Engine) getVolumeUpload(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, v, err := e.findVolume(ctx, r.PathValue("pool"), r.PathValue("volume"))
	if err != nil {
		return err
	}
	if v.State != store.VolumeUploading {
		return writeJSON(w, http.StatusOK, engineapi.UploadProgress{SizeBytes: v.UploadSize, Offset: v.UploadSize, SHA256: v.SHA256, Done: true, Percent: 100})
	}
	var st storage.UploadStatus
	err = e.storage.onPool(ctx, p, func(h store.Host) error {
		return e.storage.call(ctx, h, "uploads/status", map[string]any{"pool": agentPool(p), "name": v.Name}, &st)
	})
	if err != nil {
		return storageError(err)
	}
	w.Header().Set(storage.UploadOffsetHeader, strconv.FormatInt(st.Offset, 10))
	return writeJSON(w, http.StatusOK, progress(st))
}

func (e *Engine) deleteVolumeUpload(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, v, err := e.findVolume(ctx, r.PathValue("pool"), r.PathValue("volume"))
	if err != nil {
		return err
	}
	if v.State != store.VolumeUploading {
		return api.NewError(http.StatusConflict, api.CodeUploadNotFound, "volume %s of pool %s is %s: no upload is in progress", v.Name, p.Name, v.State)
	}
	err = e.storage.onPool(ctx, p, func(h store.Host) error {
		return e.storage.call(ctx, h, "uploads/abort", map[string]any{"pool": agentPool(p), "name": v.Name}, nil)
	})
	if ae := asAgentError(err); err != nil && !(ae != nil && ae.Code == api.CodeUploadNotFound) {
		return storageError(err)
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteVolume(ctx, v.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "volume.upload", Severity: store.SeverityWarning, ObjectKind: "volume", ObjectID: v.ID,
			ObjectName: p.Name + "/" + v.Name, Message: fmt.Sprintf("Upload of volume %s to pool %s was cancelled by %s.", v.Name, p.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// volumeBusy refuses to change a volume a VM that is not Down uses.
func (e *Engine) volumeBusy(ctx context.Context, v store.Volume, what string) error {
	u, err := e.st.VolumeUsers(ctx, v.ID)
	if err != nil {
		return err
	}
	for _, name := range u.VMs {
		vm, err := e.st.GetVMByName(ctx, name)
		if err == nil && !isDown(vm) {
			return api.NewError(http.StatusConflict, api.CodeVolumeInUse, "Cannot %s volume %s: VM %s uses it and is %s; stop it first.", what, v.Name, vm.Name, vm.State)
		}
	}
	return nil
}

func (e *Engine) resizeVolume(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req engineapi.VolumeResize
	if err := decodeBody(r, &req, false); err != nil {
		return err
	}
	p, v, err := e.findVolume(ctx, r.PathValue("pool"), r.PathValue("volume"))
	if err != nil {
		return err
	}
	if v.State != store.VolumeReady {
		return api.NewError(http.StatusConflict, api.CodeVolumeNotReady, "volume %s is %s", v.Name, v.State)
	}
	if err := e.volumeBusy(ctx, v, "resize"); err != nil {
		return err
	}
	var info storage.VolumeInfo
	err = e.storage.onPool(ctx, p, func(h store.Host) error {
		return e.storage.call(ctx, h, "volumes/resize", map[string]any{"pool": agentPool(p), "name": v.Name, "format": v.Format, "sizeBytes": req.SizeBytes}, &info)
	})
	if err != nil {
		return storageError(err)
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
		return err
	}
	return writeJSON(w, http.StatusOK, e.volumeView(ctx, p, v, nil))
}

func (e *Engine) cloneVolume(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req engineapi.VolumeClone
	if err := decodeBody(r, &req, false); err != nil {
		return err
	}
	p, v, err := e.findVolume(ctx, r.PathValue("pool"), r.PathValue("volume"))
	if err != nil {
		return err
	}
	if err := checkVolumeName("name", req.Name); err != nil {
		return err
	}
	dst := p
	if req.Pool != "" {
		if dst, err = e.findPool(ctx, req.Pool); err != nil {
			return err
		}
	}
	if req.Format == "" {
		req.Format = v.Format
	}
	if err := checkFormat("format", req.Format); err != nil {
		return err
	}
	nv, err := e.storage.cloneVolume(ctx, p, v, dst, req.Name, req.Format, store.Volume{})
	if err != nil {
		return err
	}
	_ = e.appendEvent(ctx, e.st, store.Event{Action: "volume.clone", ObjectKind: "volume", ObjectID: nv.ID, ObjectName: dst.Name + "/" + nv.Name,
		Message: fmt.Sprintf("Volume %s of pool %s was cloned from %s of pool %s by %s.", nv.Name, dst.Name, v.Name, p.Name, userName(ctx))})
	return writeJSON(w, http.StatusCreated, e.volumeView(ctx, dst, nv, nil))
}

// cloneVolume copies a volume whole on a host that has both pools and
// records the copy with rec's fields.
func (s *storageService) cloneVolume(ctx context.Context, src store.Pool, v store.Volume, dst store.Pool, name, format string, rec store.Volume) (store.Volume, error) {
	if v.State != store.VolumeReady {
		return store.Volume{}, api.NewError(http.StatusConflict, api.CodeVolumeNotReady, "volume %s is %s", v.Name, v.State)
	}
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

// deleteVolume removes a volume nobody uses: its file, then its record.
func (e *Engine) deleteVolume(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, v, err := e.findVolume(ctx, r.PathValue("pool"), r.PathValue("volume"))
	if err != nil {
		return err
	}
	if err := e.storage.deleteVolume(ctx, p, v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *storageService) deleteVolume(ctx context.Context, p store.Pool, v store.Volume) error {
	u, err := s.e.st.VolumeUsers(ctx, v.ID)
	if err != nil {
		return err
	}
	if !u.Empty() {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeVolumeInUse, Field: "volume",
			Message: fmt.Sprintf("Cannot delete volume %s of pool %s: it is in use (%s).", v.Name, p.Name, u.String())}
	}
	path := "volumes/delete"
	if v.State == store.VolumeUploading {
		path = "uploads/abort"
	}
	err = s.onPool(ctx, p, func(h store.Host) error {
		return s.call(ctx, h, path, map[string]any{"pool": agentPool(p), "name": v.Name}, nil)
	})
	if ae := asAgentError(err); err != nil && !(ae != nil && (ae.Code == api.CodeVolumeNotFound || ae.Code == api.CodeUploadNotFound)) {
		return storageError(err)
	}
	return s.e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteVolume(ctx, v.ID); err != nil {
			return err
		}
		return s.e.appendEvent(ctx, tx, store.Event{Action: "volume.remove", ObjectKind: "volume", ObjectID: v.ID, ObjectName: p.Name + "/" + v.Name,
			Message: fmt.Sprintf("Volume %s of pool %s was deleted by %s.", v.Name, p.Name, userName(ctx))})
	})
}
