package agent

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/hostexec"
	"polyvirt/internal/httpx"
	"polyvirt/internal/storage"
	"polyvirt/internal/vmspec"
)

// The agent's storage API (/v1/storage/...): the engine describes the
// pool in every request (id, name, path, kind); the agent keeps nothing of
// it but what is in the pool's directory. See package storage.

// storageHost is this host's storage, under its path policy; the agent's
// own directory is no pool.
func (a *Agent) storageHost() *storage.Host {
	own, err := filepath.Abs(a.cfg.DataDir)
	if err != nil {
		own = a.cfg.DataDir
	}
	return &storage.Host{Root: a.root, Policy: a.paths, Exclude: []string{own}, Runner: &hostexec.Exec{}}
}

// storageRoutes are the storage API's routes: a JSON request naming the
// pool, a JSON answer; the upload's data is a stream.
func (a *Agent) storageRoutes() []route {
	post := func(p string, h func(ctx context.Context, b []byte) (any, error)) route {
		return route{Method: "POST", Path: "/v1/storage/" + p, Summary: storageSummaries[p], plain: func(w http.ResponseWriter, r *http.Request) error {
			b, err := httpx.ReadBody(r)
			if err != nil {
				return err
			}
			out, err := h(r.Context(), b)
			if err != nil {
				return err
			}
			return httpx.WriteJSON(w, http.StatusOK, out)
		}}
	}
	return []route{
		post("pools/check", func(ctx context.Context, b []byte) (any, error) {
			var req agentapi.PoolsRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			h := a.storageHost()
			out := make([]storage.PoolStatus, 0, len(req.Pools))
			for _, p := range req.Pools {
				out = append(out, h.CheckPool(p))
			}
			return out, nil
		}),
		post("pools/init", func(ctx context.Context, b []byte) (any, error) {
			var p storage.Pool
			if err := httpx.Unmarshal(b, &p, false); err != nil {
				return nil, err
			}
			st, err := a.storageHost().InitPool(p)
			if err != nil {
				return nil, err
			}
			a.log.Info("pool initialized", "pool", p.Name, "path", p.Path)
			return st, nil
		}),
		post("volumes/create", func(ctx context.Context, b []byte) (any, error) {
			var req storage.CreateRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			return a.storageHost().Create(ctx, req)
		}),
		post("volumes/info", func(ctx context.Context, b []byte) (any, error) {
			var req agentapi.VolumeRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			return a.storageHost().Info(ctx, req.Pool, req.Name, req.Format)
		}),
		post("volumes/resize", func(ctx context.Context, b []byte) (any, error) {
			var req agentapi.VolumeRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			return a.storageHost().Resize(ctx, req.Pool, req.Name, req.Format, req.SizeBytes)
		}),
		post("volumes/clone", func(ctx context.Context, b []byte) (any, error) {
			var req agentapi.VolumeRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			if req.Target == nil {
				return nil, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "a clone needs its target (pool, name, format)")
			}
			return a.storageHost().Clone(ctx, req.Pool, req.Name, req.Format, req.Target.Pool, req.Target.Name, req.Target.Format)
		}),
		post("volumes/delete", func(ctx context.Context, b []byte) (any, error) {
			var req agentapi.VolumeRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			if err := a.storageHost().Delete(req.Pool, req.Name); err != nil {
				return nil, err
			}
			a.log.Info("volume deleted", "pool", req.Pool.Name, "volume", req.Name)
			return map[string]bool{"deleted": true}, nil
		}),
		post("volumes/snapshot", func(ctx context.Context, b []byte) (any, error) {
			var req agentapi.VolumeRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			if err := a.storageHost().Snapshot(ctx, req.Pool, req.Name, req.Op, req.Snapshot); err != nil {
				return nil, err
			}
			return map[string]bool{"done": true}, nil
		}),
		post("uploads", func(ctx context.Context, b []byte) (any, error) {
			var req storage.UploadRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			return a.storageHost().BeginUpload(req)
		}),
		post("uploads/status", func(ctx context.Context, b []byte) (any, error) {
			var req agentapi.VolumeRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			return a.storageHost().Upload(req.Pool, req.Name)
		}),
		post("uploads/abort", func(ctx context.Context, b []byte) (any, error) {
			var req agentapi.VolumeRequest
			if err := httpx.Unmarshal(b, &req, false); err != nil {
				return nil, err
			}
			if err := a.storageHost().AbortUpload(req.Pool, req.Name); err != nil {
				return nil, err
			}
			return map[string]bool{"aborted": true}, nil
		}),
		{Method: "PUT", Path: "/v1/storage/uploads/data", Summary: "Send an upload's data from its offset (Upload-Offset); complete, it is checked and becomes the volume, or is removed whole.", stream: a.uploadData},
	}
}

// storageSummaries say what each storage route does.
var storageSummaries = map[string]string{
	"pools/check":      "Check pools: each pool's directory, its marker file, whether it is writable, its capacity and free space.",
	"pools/init":       "Initialize a pool: write its marker file into its directory (one the host path policy allows for disk images).",
	"volumes/create":   "Create a volume: an empty raw or qcow2 file, or a qcow2 overlay on a volume of the same pool.",
	"volumes/info":     "A volume's format and sizes (qemu-img info, without opening a backing file).",
	"volumes/resize":   "Grow a volume (never shrink it).",
	"volumes/clone":    "Copy a volume whole into a new one (qemu-img convert), in its pool or another.",
	"volumes/delete":   "Delete a volume's file.",
	"volumes/snapshot": "Create, revert or delete an internal snapshot of a qcow2 volume at rest (qemu-img snapshot).",
	"uploads":          "Begin an upload (or answer where the same upload stands).",
	"uploads/status":   "Where an upload stands.",
	"uploads/abort":    "Abort an upload: its data and state removed.",
}

// uploadData is PUT /v1/storage/uploads/data?poolId=&pool=&poolPath=
// &poolKind=&name= with the data as the body, starting at the
// Upload-Offset header. The data may come slowly: its own deadline.
func (a *Agent) uploadData(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(24 * time.Hour))
	_ = rc.SetWriteDeadline(time.Now().Add(24 * time.Hour))
	q := r.URL.Query()
	p := storage.Pool{ID: q.Get("poolId"), Name: q.Get("pool"), Path: q.Get("poolPath"), Kind: q.Get("poolKind")}
	off, err := storage.ParseOffset(r.Header.Get(storage.UploadOffsetHeader))
	if err != nil {
		writeError(w, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "%v", err))
		return
	}
	st, err := a.storageHost().WriteUpload(r.Context(), p, q.Get("name"), off, r.Body)
	if st.Name != "" {
		w.Header().Set(storage.UploadOffsetHeader, strconv.FormatInt(st.Offset, 10))
	}
	if err != nil {
		if api.CodeOf(err) == "" {
			// The data stopped coming (the engine or its client went
			// away): the upload stays where it got to.
			a.log.Info("upload interrupted", "pool", p.Name, "volume", q.Get("name"), "offset", st.Offset, "err", err)
			err = api.FieldError(api.CodeUploadInterrupted, "", "the data stopped at byte %d: %v; resume from there", st.Offset, err)
		}
		writeError(w, err)
		return
	}
	if st.Done {
		a.log.Info("volume uploaded", "pool", p.Name, "volume", st.Name, "bytes", st.SizeBytes, "sha256", st.SHA256)
	}
	_ = httpx.WriteJSON(w, http.StatusOK, st)
}

// volumeDisks lists a definition's disks that name a volume.
func volumeDisks(vm *vmspec.VM) []storage.DiskRef {
	var out []storage.DiskRef
	for i, d := range vm.Disks {
		if d.Volume == "" {
			continue
		}
		out = append(out, storage.DiskRef{Field: "disks[" + strconv.Itoa(i) + "]", Pool: d.Pool, Volume: d.Volume, Source: d.Source, Format: d.Format})
	}
	return out
}

// checkVolumes checks a definition's volume disks on this host: each in
// its pool's directory here, leading nowhere else. At start they must
// exist.
func (a *Agent) checkVolumes(vm *vmspec.VM, atStart bool) error {
	h := a.storageHost()
	var errs api.Errors
	for _, d := range volumeDisks(vm) {
		if e := h.CheckDisk(d, atStart); e != nil {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// checkStartVolumes checks, right before a start, the volume disks of the
// definition a VM was created from.
func (a *Agent) checkStartVolumes(e *vmEntry) error {
	if len(e.Definition) == 0 {
		return nil
	}
	def, err := vmspec.Decode(e.Definition)
	if err != nil {
		return nil // a definition of an older agent: its paths are checked as the domain's
	}
	if err := a.checkVolumes(def, true); err != nil {
		a.log.Warn("VM start refused: volumes", "vm", e.ID, "name", e.Name, "err", err.Error())
		return err
	}
	return nil
}
