package engine

import (
	"net/http"
	"strconv"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/httpx"
	"polyvirt/internal/storage"
	"polyvirt/internal/store"
)

// The storage routes (service.Storage): pools and images are an
// administrator's; volumes, templates and snapshots are managed with VMs.

// MaxUploadBody bounds the data of one upload request.
const MaxUploadBody = service.MaxUploadBody

func (e *Engine) storageRoutes() []route {
	vmm := store.RoleVMManager
	return []route{
		{Method: "GET", Path: "/pools", Summary: "List storage pools", h: e.listPools},
		{Method: "POST", Path: "/pools", Summary: "Add a storage pool to a cluster (shared, or local to one host)", h: e.createPool},
		{Method: "GET", Path: "/pools/{pool}", Summary: "Show a storage pool and what each host says of it", h: e.getPool},
		{Method: "DELETE", Path: "/pools/{pool}", Summary: "Remove a storage pool that holds no volume", h: e.deletePool},
		{Method: "GET", Path: "/volumes", Summary: "List volumes", h: e.listVolumes},
		{Method: "POST", Path: "/volumes", Summary: "Create a volume, or start its upload", Role: vmm, h: e.createVolume},
		{Method: "GET", Path: "/volumes/{pool}/{volume}", Summary: "Show a volume", h: e.getVolume},
		{Method: "DELETE", Path: "/volumes/{pool}/{volume}", Summary: "Delete a volume nothing uses", Role: vmm, h: e.deleteVolume},
		{Method: "POST", Path: "/volumes/{pool}/{volume}/resize", Summary: "Grow a volume", Role: vmm, h: e.resizeVolume},
		{Method: "POST", Path: "/volumes/{pool}/{volume}/clone", Summary: "Copy a volume whole into a new one", Role: vmm, h: e.cloneVolume},
		{Method: "PUT", Path: "/volumes/{pool}/{volume}/data", Summary: "Send an upload's data, from its offset", Role: vmm, MaxBody: MaxUploadBody, h: e.putVolumeData},
		{Method: "GET", Path: "/volumes/{pool}/{volume}/upload", Summary: "Where an upload stands", h: e.getVolumeUpload},
		{Method: "DELETE", Path: "/volumes/{pool}/{volume}/upload", Summary: "Cancel an upload", Role: vmm, h: e.deleteVolumeUpload},
		{Method: "GET", Path: "/images", Summary: "List the image library", h: e.listImages},
		{Method: "POST", Path: "/images", Summary: "Add a volume to the image library, with its architecture", h: e.createImage},
		{Method: "GET", Path: "/images/{image}", Summary: "Show an image", h: e.getImage},
		{Method: "DELETE", Path: "/images/{image}", Summary: "Remove an image and its volume", h: e.deleteImage},
		{Method: "GET", Path: "/templates", Summary: "List templates", h: e.listTemplates},
		{Method: "POST", Path: "/templates", Summary: "Make a template of a VM that is Down", Role: vmm, h: e.createTemplate},
		{Method: "GET", Path: "/templates/{template}", Summary: "Show a template", h: e.getTemplate},
		{Method: "DELETE", Path: "/templates/{template}", Summary: "Remove a template and its volumes", Role: vmm, h: e.deleteTemplate},
		{Method: "GET", Path: "/vms/{vm}/snapshots", Summary: "List a VM's snapshots", h: e.listSnapshots},
		{Method: "POST", Path: "/vms/{vm}/snapshots", Summary: "Take a snapshot of a VM (disk only, or with memory)", Role: vmm, h: e.createSnapshot},
		{Method: "POST", Path: "/vms/{vm}/snapshots/{snapshot}/revert", Summary: "Revert a VM to a snapshot", Role: vmm, h: e.revertSnapshot},
		{Method: "DELETE", Path: "/vms/{vm}/snapshots/{snapshot}", Summary: "Delete a VM's snapshot", Role: vmm, h: e.deleteSnapshot},
	}
}

func (e *Engine) listPools(w http.ResponseWriter, r *http.Request) error {
	ps, err := e.svc.Storage.ListPools(r.Context(), r.URL.Query().Get("cluster"))
	return answer(w, http.StatusOK, ps, err)
}

func (e *Engine) getPool(w http.ResponseWriter, r *http.Request) error {
	p, err := e.svc.Storage.GetPool(r.Context(), r.PathValue("pool"))
	return answer(w, http.StatusOK, p, err)
}

func (e *Engine) createPool(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.PoolRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	p, err := e.svc.Storage.CreatePool(r.Context(), req)
	return answer(w, http.StatusCreated, p, err)
}

func (e *Engine) deletePool(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Storage.DeletePool(r.Context(), r.PathValue("pool")))
}

func (e *Engine) listVolumes(w http.ResponseWriter, r *http.Request) error {
	vs, err := e.svc.Storage.ListVolumes(r.Context(), r.URL.Query().Get("pool"))
	return answer(w, http.StatusOK, vs, err)
}

func (e *Engine) getVolume(w http.ResponseWriter, r *http.Request) error {
	v, err := e.svc.Storage.GetVolume(r.Context(), r.PathValue("pool"), r.PathValue("volume"))
	return answer(w, http.StatusOK, v, err)
}

// createVolume answers 201 with a new volume or upload, 200 with an
// upload asked for again (Upload-Offset: where it stands).
func (e *Engine) createVolume(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.VolumeRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	v, created, err := e.svc.Storage.CreateVolume(r.Context(), req)
	if err != nil {
		return err
	}
	if v.Upload != nil {
		w.Header().Set(engineapi.UploadOffsetHeader, strconv.FormatInt(v.Upload.Offset, 10))
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return httpx.WriteJSON(w, status, v)
}

// uploadChunk reads where a request's data starts: Upload-Offset, or the
// first byte of a Content-Range (whose size the service checks).
func uploadChunk(r *http.Request) (service.UploadChunk, error) {
	c := service.UploadChunk{Length: r.ContentLength, Total: -1, Data: r.Body}
	if h := r.Header.Get(engineapi.UploadOffsetHeader); h != "" {
		off, err := storage.ParseOffset(h)
		if err != nil {
			return c, invalidField(engineapi.UploadOffsetHeader, "%v", err)
		}
		c.Offset = off
		return c, nil
	}
	if h := r.Header.Get("Content-Range"); h != "" {
		first, _, total, err := storage.ParseContentRange(h)
		if err != nil {
			return c, invalidField("Content-Range", "%v", err)
		}
		c.Offset, c.Total = first, total
	}
	return c, nil
}

// putVolumeData streams an upload's data through to an agent; the data
// may come slowly: the request has a day. The answer's Upload-Offset says
// where the upload stands, also when the data was refused for its offset.
func (e *Engine) putVolumeData(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(24 * time.Hour))
	_ = rc.SetWriteDeadline(time.Now().Add(24 * time.Hour))
	c, err := uploadChunk(r)
	if err != nil {
		return err
	}
	ans, err := e.svc.Storage.UploadData(r.Context(), r.PathValue("pool"), r.PathValue("volume"), c)
	if ans.Upload.SizeBytes > 0 {
		w.Header().Set(engineapi.UploadOffsetHeader, strconv.FormatInt(ans.Upload.Offset, 10))
	}
	return answer(w, http.StatusOK, ans, err)
}

func (e *Engine) getVolumeUpload(w http.ResponseWriter, r *http.Request) error {
	p, err := e.svc.Storage.UploadStatus(r.Context(), r.PathValue("pool"), r.PathValue("volume"))
	if err == nil {
		w.Header().Set(engineapi.UploadOffsetHeader, strconv.FormatInt(p.Offset, 10))
	}
	return answer(w, http.StatusOK, p, err)
}

func (e *Engine) deleteVolumeUpload(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Storage.CancelUpload(r.Context(), r.PathValue("pool"), r.PathValue("volume")))
}

func (e *Engine) resizeVolume(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.VolumeResize
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	v, err := e.svc.Storage.ResizeVolume(r.Context(), r.PathValue("pool"), r.PathValue("volume"), req)
	return answer(w, http.StatusOK, v, err)
}

func (e *Engine) cloneVolume(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.VolumeClone
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	v, err := e.svc.Storage.CloneVolume(r.Context(), r.PathValue("pool"), r.PathValue("volume"), req)
	return answer(w, http.StatusCreated, v, err)
}

func (e *Engine) deleteVolume(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Storage.DeleteVolume(r.Context(), r.PathValue("pool"), r.PathValue("volume")))
}

func (e *Engine) listImages(w http.ResponseWriter, r *http.Request) error {
	ims, err := e.svc.Storage.ListImages(r.Context(), r.URL.Query().Get("arch"))
	return answer(w, http.StatusOK, ims, err)
}

func (e *Engine) getImage(w http.ResponseWriter, r *http.Request) error {
	im, err := e.svc.Storage.GetImage(r.Context(), r.PathValue("image"))
	return answer(w, http.StatusOK, im, err)
}

func (e *Engine) createImage(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.ImageRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	im, err := e.svc.Storage.CreateImage(r.Context(), req)
	return answer(w, http.StatusCreated, im, err)
}

func (e *Engine) deleteImage(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Storage.DeleteImage(r.Context(), r.PathValue("image")))
}

func (e *Engine) listTemplates(w http.ResponseWriter, r *http.Request) error {
	ts, err := e.svc.Storage.ListTemplates(r.Context())
	return answer(w, http.StatusOK, ts, err)
}

func (e *Engine) getTemplate(w http.ResponseWriter, r *http.Request) error {
	t, err := e.svc.Storage.GetTemplate(r.Context(), r.PathValue("template"))
	return answer(w, http.StatusOK, t, err)
}

func (e *Engine) createTemplate(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.TemplateRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	t, err := e.svc.Storage.CreateTemplate(r.Context(), req)
	return answer(w, http.StatusCreated, t, err)
}

func (e *Engine) deleteTemplate(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Storage.DeleteTemplate(r.Context(), r.PathValue("template")))
}

func (e *Engine) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	ss, err := e.svc.Storage.ListSnapshots(r.Context(), r.PathValue("vm"))
	return answer(w, http.StatusOK, ss, err)
}

func (e *Engine) createSnapshot(w http.ResponseWriter, r *http.Request) error {
	var req engineapi.SnapshotRequest
	if err := httpx.DecodeJSON(r, &req, false); err != nil {
		return err
	}
	s, err := e.svc.Storage.CreateSnapshot(r.Context(), r.PathValue("vm"), req)
	return answer(w, http.StatusCreated, s, err)
}

func (e *Engine) revertSnapshot(w http.ResponseWriter, r *http.Request) error {
	s, err := e.svc.Storage.RevertSnapshot(r.Context(), r.PathValue("vm"), r.PathValue("snapshot"))
	return answer(w, http.StatusOK, s, err)
}

func (e *Engine) deleteSnapshot(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, e.svc.Storage.DeleteSnapshot(r.Context(), r.PathValue("vm"), r.PathValue("snapshot")))
}
