package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cloudinit"
	"polyvirt/internal/storage"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// A VM's disks from pools: volumes a definition names are looked up in
// their pool (of the VM's cluster) and the definition is given their file
// (the pool's directory and the volume's name: the host's agent checks
// again that it resolves inside the pool); a VM made from an image or a
// template gets new volumes (qcow2 overlays, or copies), and a VM with
// cloud-init a seed volume, all recorded as the VM's own (deleted with
// it).

// createFile makes a volume's file on a host of its pool.
func (s *storageService) createFile(ctx context.Context, p store.Pool, cr agentapi.CreateRequest) (agentapi.VolumeInfo, error) {
	cr.Pool = agentPool(p)
	var info agentapi.VolumeInfo
	err := s.onPool(ctx, p, func(h store.Host) error { return s.call(ctx, h, "volumes/create", cr, &info) })
	return info, err
}

// cloneFile copies a volume whole into a new file, on a host that has both
// pools.
func (s *storageService) cloneFile(ctx context.Context, src store.Pool, v store.Volume, dst store.Pool, name, format string) (agentapi.VolumeInfo, error) {
	if v.State != store.VolumeReady {
		return agentapi.VolumeInfo{}, fail(api.CodeVolumeNotReady, "volume %s is %s", v.Name, v.State)
	}
	if _, err := s.e.st.GetVolumeByName(ctx, dst.ID, name); err == nil {
		return agentapi.VolumeInfo{}, fail(api.CodeVolumeExists, "pool %s has a volume %s already", dst.Name, name)
	}
	var info agentapi.VolumeInfo
	req := agentapi.VolumeRequest{Pool: agentPool(src), Name: v.Name, Format: v.Format,
		Target: &agentapi.VolumeRequest{Pool: agentPool(dst), Name: name, Format: format}}
	err := s.onPools(ctx, []store.Pool{src, dst}, func(h store.Host) error { return s.call(ctx, h, "volumes/clone", req, &info) })
	return info, err
}

// uploadBytes makes a volume's file of a few bytes (a cloud-init seed)
// through the upload path: checked like any upload.
func (s *storageService) uploadBytes(ctx context.Context, p store.Pool, name, format string, data []byte) (agentapi.VolumeInfo, error) {
	sum := sha256.Sum256(data)
	ur := agentapi.UploadRequest{Pool: agentPool(p), Name: name, Format: format, SizeBytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	var out agentapi.VolumeInfo
	err := s.onPool(ctx, p, func(h store.Host) error {
		var st agentapi.UploadStatus
		if err := s.call(ctx, h, "uploads", ur, &st); err != nil {
			return err
		}
		st, err := s.agents.UploadData(ctx, h, agentPool(p), name, 0, int64(len(data)), bytes.NewReader(data))
		if err != nil {
			return err
		}
		if !st.Done || st.Volume == nil {
			return fmt.Errorf("the upload of %s stopped at %d of %d bytes", name, st.Offset, len(data))
		}
		out = *st.Volume
		return nil
	})
	return out, err
}

// plannedFile is a volume the engine makes for a VM.
type plannedFile struct {
	pool store.Pool
	rec  store.Volume
	// how: "overlay" on src, "clone" of src, "seed" of data.
	how     string
	src     store.Volume
	srcPool store.Pool
	size    int64
	data    []byte
	made    bool
}

// vmPlan is the storage of a VM being created: the volumes to make, and
// the existing volumes its definition names.
type vmPlan struct {
	files     []*plannedFile
	volumeIDs []string
}

func (p *vmPlan) planned(pool, name string) *plannedFile {
	for _, f := range p.files {
		if f.pool.Name == pool && f.rec.Name == name {
			return f
		}
	}
	return nil
}

// planVMStorage applies a create request's storage parts to its
// definition: a template's definition and disks, an image's disk, a
// cloud-init seed; then resolves every volume disk.
func (e *engine) planVMStorage(ctx context.Context, req *engineapi.VMRequest, def *vmspec.VM, c store.Cluster, vmID string) (*vmspec.VM, *vmPlan, error) {
	plan := &vmPlan{}
	sr := req.VMStorageRequest
	if sr.Template != "" && sr.Image != "" {
		return nil, nil, invalidField("image", "a VM is made from an image or from a template, not both")
	}
	if sr.Template != "" {
		var err error
		if def, err = e.fromTemplate(ctx, req, def, c, plan); err != nil {
			return nil, nil, err
		}
	}
	if sr.Image != "" {
		if err := e.fromImage(ctx, req, def, c, plan); err != nil {
			return nil, nil, err
		}
	}
	if sr.CloudInit != nil {
		if err := e.withSeed(ctx, req, def, vmID, plan); err != nil {
			return nil, nil, err
		}
	} else if sr.Image == "" && sr.Template == "" && (sr.Clone || sr.Pool != "" || sr.DiskSizeBytes != 0) {
		return nil, nil, invalidField("clone", "clone, pool and diskSizeBytes go with an image, a template or cloud-init")
	}
	ids, err := e.resolveDisks(ctx, def, c, plan)
	if err != nil {
		return nil, nil, err
	}
	plan.volumeIDs = ids
	return def, plan, nil
}

// fromImage gives the VM a first disk made from a library image: a qcow2
// overlay on the image's volume (in its pool), or a whole copy (Clone,
// into Pool or the image's pool).
func (e *engine) fromImage(ctx context.Context, req *engineapi.VMRequest, def *vmspec.VM, c store.Cluster, plan *vmPlan) error {
	sr := req.VMStorageRequest
	im, err := e.findImage(ctx, sr.Image)
	if err != nil {
		return err
	}
	if err := imageArchAllowed(im, c, "image"); err != nil {
		return err
	}
	if def.Arch != "" {
		if a, err := arch.Parse(string(def.Arch)); err == nil && a != im.Arch {
			return api.FieldError(api.CodeArchConflict, "definition.arch", "the definition says %s but image %s is a %s image; leave arch out", a, im.Name, im.Arch)
		}
	}
	def.Arch = im.Arch
	src, err := e.st.GetVolume(ctx, im.VolumeID)
	if err != nil {
		return err
	}
	srcPool, err := e.st.GetPool(ctx, src.PoolID)
	if err != nil {
		return err
	}
	dst, err := e.targetPool(ctx, sr, srcPool, c)
	if err != nil {
		return err
	}
	f := &plannedFile{pool: dst, src: src, srcPool: srcPool, size: sr.DiskSizeBytes, how: "overlay",
		rec: store.Volume{Name: def.Name + "-root.qcow2", Format: "qcow2", Purpose: "disk"}}
	if sr.Clone {
		f.how, f.rec.Name, f.rec.Format = "clone", def.Name+"-root."+src.Format, src.Format
	} else if dst.ID != srcPool.ID {
		return invalidField("pool", "an overlay lives in its image's pool %s; give --clone to copy image %s into pool %s", srcPool.Name, im.Name, dst.Name)
	}
	if sr.DiskSizeBytes != 0 && (sr.DiskSizeBytes < src.VirtualSize || sr.DiskSizeBytes > storage.MaxVolumeSize) {
		return invalidField("diskSizeBytes", "%d bytes: at least the image's %d (a disk never shrinks)", sr.DiskSizeBytes, src.VirtualSize)
	}
	plan.files = append(plan.files, f)
	def.Disks = append([]vmspec.Disk{{Pool: dst.Name, Volume: f.rec.Name}}, def.Disks...)
	return nil
}

// targetPool is where a VM's new volumes go: Pool, or the source's pool;
// it must be of the VM's cluster.
func (e *engine) targetPool(ctx context.Context, sr engineapi.VMStorageRequest, src store.Pool, c store.Cluster) (store.Pool, error) {
	dst := src
	if sr.Pool != "" {
		var err error
		if dst, err = e.findPool(ctx, sr.Pool); err != nil {
			return dst, err
		}
	}
	if dst.ClusterID != c.ID {
		return dst, api.FieldError(api.CodePoolNotInCluster, "pool", "pool %s is not a pool of cluster %s; give a pool of the VM's cluster (--pool) with --clone", dst.Name, c.Name)
	}
	return dst, nil
}

// fromTemplate makes the VM's definition from a template's (the request's
// definition overrides its fields) and its disks from the template's
// volumes (overlays, or copies with Clone); read-only volumes are shared.
func (e *engine) fromTemplate(ctx context.Context, req *engineapi.VMRequest, def *vmspec.VM, c store.Cluster, plan *vmPlan) (*vmspec.VM, error) {
	sr := req.VMStorageRequest
	t, err := e.findTemplate(ctx, sr.Template)
	if err != nil {
		return nil, err
	}
	guests := archspec.ClusterGuestArches(c.Arch)
	if !containsArch(guests, t.Arch) {
		return nil, api.FieldError(api.CodeVMClusterArch, "template", "template %s is of a %s VM; cluster %s runs %s VMs: use a template of its architecture", t.Name, t.Arch, c.Name, orList(guests))
	}
	var base, over map[string]json.RawMessage
	if err := json.Unmarshal(t.Definition, &base); err != nil {
		return nil, fmt.Errorf("template %s: its definition: %v", t.Name, err)
	}
	if err := json.Unmarshal(req.Definition, &over); err != nil {
		return nil, invalidField("definition", "%v", err)
	}
	for k, v := range over {
		base[k] = v
	}
	b, _ := json.Marshal(base)
	merged, err := decodeDefinition(b)
	if err != nil {
		return nil, err
	}
	for i := range merged.Disks {
		d := &merged.Disks[i]
		if d.Volume == "" || d.ReadOnly || d.Device == "cdrom" {
			continue
		}
		srcPool, src, err := e.findVolume(ctx, d.Pool, d.Volume)
		if err != nil {
			return nil, err
		}
		dst, err := e.targetPool(ctx, sr, srcPool, c)
		if err != nil {
			return nil, err
		}
		f := &plannedFile{pool: dst, src: src, srcPool: srcPool, how: "overlay",
			rec: store.Volume{Name: fmt.Sprintf("%s-disk%d.qcow2", merged.Name, i), Format: "qcow2", Purpose: "disk"}}
		if sr.Clone {
			f.how, f.rec.Name, f.rec.Format = "clone", fmt.Sprintf("%s-disk%d.%s", merged.Name, i, src.Format), src.Format
		} else if dst.ID != srcPool.ID {
			return nil, invalidField("pool", "an overlay lives in its template volume's pool %s; give --clone to copy it into pool %s", srcPool.Name, dst.Name)
		}
		plan.files = append(plan.files, f)
		d.Pool, d.Volume, d.Source, d.Format = dst.Name, f.rec.Name, "", ""
	}
	return merged, nil
}

func containsArch(as []arch.Arch, a arch.Arch) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// withSeed gives the VM a cloud-init seed: a NoCloud ISO volume (raw) in
// Pool or its first volume disk's pool, attached as a CD-ROM on the bus
// the architecture gives CD-ROMs (spapr-vscsi on POWER, SATA on q35).
func (e *engine) withSeed(ctx context.Context, req *engineapi.VMRequest, def *vmspec.VM, vmID string, plan *vmPlan) error {
	ci := req.CloudInit
	host := ci.Hostname
	if host == "" {
		host = def.Name
	}
	seed := cloudinit.Seed{InstanceID: vmID, Hostname: host, UserData: []byte(ci.UserData), NetworkConfig: []byte(ci.NetworkConfig), SSHKeys: ci.SSHKeys}
	if err := seed.Check(); err != nil {
		var es api.Errors
		if errors.As(err, &es) {
			out := make(api.Errors, 0, len(es))
			for _, x := range es {
				out = append(out, &api.Error{Code: x.Code, Field: "cloudInit." + x.Field, Message: x.Message})
			}
			return out
		}
		return err
	}
	iso, err := seed.ISO()
	if err != nil {
		return err
	}
	poolName := req.Pool
	if poolName == "" {
		for _, d := range def.Disks {
			if d.Pool != "" {
				poolName = d.Pool
				break
			}
		}
	}
	if poolName == "" {
		return invalidField("pool", "a cloud-init seed is a volume: give the pool it goes in (--pool), or a disk from a pool")
	}
	p, err := e.findPool(ctx, poolName)
	if err != nil {
		return err
	}
	f := &plannedFile{pool: p, how: "seed", data: iso, rec: store.Volume{Name: def.Name + "-seed.iso", Format: "raw", Purpose: "seed"}}
	plan.files = append(plan.files, f)
	def.Disks = append(def.Disks, vmspec.Disk{Device: "cdrom", Pool: p.Name, Volume: f.rec.Name, ReadOnly: true})
	return nil
}

// resolveDisks gives every volume disk of a definition its file (the
// pool's directory and the volume's name) and format, and returns the IDs
// of the existing volumes it names. Every refusal comes back at once.
func (e *engine) resolveDisks(ctx context.Context, def *vmspec.VM, c store.Cluster, plan *vmPlan) ([]string, error) {
	var errs api.Errors
	var ids []string
	bad := func(code, field, format string, args ...any) {
		errs = append(errs, &api.Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for i := range def.Disks {
		d := &def.Disks[i]
		field := fmt.Sprintf("disks[%d]", i)
		if d.Volume == "" {
			if d.Pool != "" {
				bad(api.CodeDiskPool, field+".volume", "pool %q without a volume; name the volume", d.Pool)
			}
			continue
		}
		if err := vmspec.CheckVolumeName(d.Volume); err != nil {
			bad(api.CodeDiskVolumeName, field+".volume", "%v", err)
			continue
		}
		if d.Pool == "" {
			bad(api.CodeDiskPool, field+".pool", "volume %s needs its pool", d.Volume)
			continue
		}
		format := ""
		var p store.Pool
		if f := plan.planned(d.Pool, d.Volume); f != nil {
			p, format = f.pool, f.rec.Format
		} else {
			var err error
			p, err = e.st.GetPoolByName(ctx, d.Pool)
			if errors.Is(err, store.ErrNotFound) {
				bad(api.CodePoolNotFound, field+".pool", "there is no pool %q (polyvirt pool list)", d.Pool)
				continue
			}
			if err != nil {
				return nil, err
			}
			if p.ClusterID != c.ID {
				bad(api.CodePoolNotInCluster, field+".pool", "pool %s is not a pool of cluster %s", p.Name, c.Name)
				continue
			}
			v, err := e.st.GetVolumeByName(ctx, p.ID, d.Volume)
			if errors.Is(err, store.ErrNotFound) {
				bad(api.CodeVolumeNotFound, field+".volume", "pool %s has no volume %s", p.Name, d.Volume)
				continue
			}
			if err != nil {
				return nil, err
			}
			if v.State != store.VolumeReady {
				bad(api.CodeVolumeNotReady, field+".volume", "volume %s is %s: finish its upload first", v.Name, v.State)
				continue
			}
			format = v.Format
			ids = append(ids, v.ID)
		}
		if p.ClusterID != c.ID {
			bad(api.CodePoolNotInCluster, field+".pool", "pool %s is not a pool of cluster %s", p.Name, c.Name)
			continue
		}
		file := path.Join(p.Path, d.Volume)
		if d.Source != "" && d.Source != file {
			bad(api.CodeDiskSourceConflict, field+".source", "a volume's file is where its pool has it (%s); give the volume or the source, not both", file)
			continue
		}
		if d.Format != "" && d.Format != format {
			bad(api.CodeDiskSourceConflict, field+".format", "volume %s is %s, not %s; leave format out", d.Volume, format, d.Format)
			continue
		}
		d.Source, d.Format, d.Type = file, format, "file"
	}
	if len(errs) > 0 {
		return nil, definitionError(errs)
	}
	return ids, nil
}

// makeFiles makes the planned volumes' files; on a failure it removes
// those it made.
func (s *storageService) makeFiles(ctx context.Context, plan *vmPlan) error {
	if plan == nil {
		return nil
	}
	for _, f := range plan.files {
		var info agentapi.VolumeInfo
		var err error
		switch f.how {
		case "overlay":
			info, err = s.createFile(ctx, f.pool, agentapi.CreateRequest{Name: f.rec.Name, Format: "qcow2", SizeBytes: f.size,
				Backing: f.src.Name, BackingFormat: f.src.Format})
			f.rec.BackingVolumeID = f.src.ID
		case "clone":
			info, err = s.cloneFile(ctx, f.srcPool, f.src, f.pool, f.rec.Name, f.rec.Format)
			if err == nil && f.size > info.VirtualSize {
				f.made = true
				err = s.onPool(ctx, f.pool, func(h store.Host) error {
					return s.call(ctx, h, "volumes/resize", agentapi.VolumeRequest{Pool: agentPool(f.pool), Name: f.rec.Name, Format: f.rec.Format, SizeBytes: f.size}, &info)
				})
			}
		case "seed":
			info, err = s.uploadBytes(ctx, f.pool, f.rec.Name, "raw", f.data)
			sum := sha256.Sum256(f.data)
			f.rec.SHA256, f.rec.UploadSize = hex.EncodeToString(sum[:]), int64(len(f.data))
		}
		if err != nil {
			s.removePlanned(context.WithoutCancel(ctx), plan)
			return err
		}
		f.made = true
		f.rec.PoolID, f.rec.State, f.rec.VirtualSize, f.rec.ActualSize = f.pool.ID, store.VolumeReady, info.VirtualSize, info.ActualSize
	}
	return nil
}

// removePlanned removes the files made for a VM that was not created.
func (s *storageService) removePlanned(ctx context.Context, plan *vmPlan) {
	if plan == nil {
		return
	}
	for _, f := range plan.files {
		if f.made {
			s.removeFile(ctx, f.pool, f.rec.Name)
			f.made = false
		}
	}
}

// recordPlan records a new VM's volumes (its own, then the links to every
// volume its definition names) in the VM's creation transaction.
func recordPlan(ctx context.Context, tx store.Tx, plan *vmPlan, vmID string) error {
	if plan == nil {
		return nil
	}
	ids := append([]string(nil), plan.volumeIDs...)
	for _, f := range plan.files {
		f.rec.OwnerVMID = vmID
		if err := tx.CreateVolume(ctx, &f.rec); err != nil {
			return err
		}
		ids = append(ids, f.rec.ID)
	}
	return tx.SetVMVolumes(ctx, vmID, ids)
}

// deleteOwnedVolumes removes the volumes made for a VM after the VM is
// gone (best effort: a volume left is reported).
func (e *engine) deleteOwnedVolumes(ctx context.Context, vmName string, owned []store.Volume) {
	for _, v := range owned {
		p, err := e.st.GetPool(ctx, v.PoolID)
		if err == nil {
			err = e.stor.deleteVolume(ctx, p, v)
		}
		if err != nil {
			e.log.Warn("a deleted VM's volume was left", "vm", vmName, "volume", v.Name, "err", err)
			_ = e.appendEvent(ctx, e.st, store.Event{Action: "volume.remove", Severity: store.SeverityWarning, ObjectKind: "volume",
				ObjectID: v.ID, ObjectName: v.Name, Message: fmt.Sprintf("Volume %s of deleted VM %s was left: %v", v.Name, vmName, err)})
		}
	}
}

// vmPools are the pools a VM's definition uses (for the scheduler).
func vmPools(def *vmspec.VM) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range def.Disks {
		if d.Pool != "" && d.Volume != "" && !seen[d.Pool] {
			seen[d.Pool] = true
			out = append(out, d.Pool)
		}
	}
	return out
}
