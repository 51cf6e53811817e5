package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// The image library and templates.

func (e *engine) findImage(ctx context.Context, ref string) (store.Image, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Image{}, invalidField("image", "no image named")
	}
	im, err := e.st.GetImageByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if im2, err2 := e.st.GetImage(ctx, ref); err2 == nil {
			return im2, nil
		}
		return im, api.FieldError(api.CodeNotFound, "image", "image %q is not in the library (polyvirt image list)", ref)
	}
	return im, err
}

func (e *engine) imageView(ctx context.Context, im store.Image) (engineapi.Image, error) {
	out := engineapi.Image{ID: im.ID, Name: im.Name, Arch: string(im.Arch), OS: im.OS, Description: im.Description,
		Version: im.Version, Created: im.Created, Updated: im.Updated}
	v, err := e.st.GetVolume(ctx, im.VolumeID)
	if err != nil {
		return out, err
	}
	p, err := e.st.GetPool(ctx, v.PoolID)
	if err != nil {
		return out, err
	}
	c, err := e.st.GetCluster(ctx, p.ClusterID)
	if err != nil {
		return out, err
	}
	out.Pool, out.Cluster, out.Volume, out.Format, out.SizeBytes, out.SHA256 = p.Name, c.Name, v.Name, v.Format, v.VirtualSize, v.SHA256
	return out, nil
}

// ListImages lists the image library, of one architecture when arch is not
// empty.
func (s *Storage) ListImages(ctx context.Context, want string) ([]engineapi.Image, error) {
	e := s.e
	ims, err := e.st.ListImages(ctx)
	if err != nil {
		return nil, coded(err)
	}
	out := make([]engineapi.Image, 0, len(ims))
	for _, im := range ims {
		if want != "" {
			if a, err := arch.Parse(want); err != nil || a != im.Arch {
				continue
			}
		}
		v, err := e.imageView(ctx, im)
		if err != nil {
			return nil, coded(err)
		}
		out = append(out, v)
	}
	return out, nil
}

// GetImage is an image of the library (name or ID).
func (s *Storage) GetImage(ctx context.Context, ref string) (engineapi.Image, error) {
	im, err := s.e.findImage(ctx, ref)
	if err != nil {
		return engineapi.Image{}, coded(err)
	}
	v, err := s.e.imageView(ctx, im)
	return v, coded(err)
}

// imageArchAllowed refuses an image a cluster's hosts do not run.
func imageArchAllowed(im store.Image, c store.Cluster, field string) error {
	if c.Arch == arch.Unknown {
		return api.FieldError(api.CodeClusterNoArch, "cluster", "cluster %s has no architecture yet; set its CPU type or add a host first", c.Name)
	}
	guests := archspec.ClusterGuestArches(c.Arch)
	if !slices.Contains(guests, im.Arch) {
		return api.FieldError(api.CodeImageArch, field, "image %s is a %s image; cluster %s runs %s VMs: choose an image of its architecture", im.Name, im.Arch, c.Name, orList(guests))
	}
	return nil
}

// CreateImage adds a volume (uploaded first) to the library, with its
// architecture: one its pool's cluster runs.
func (s *Storage) CreateImage(ctx context.Context, req engineapi.ImageRequest) (engineapi.Image, error) {
	im, err := s.e.createImage(ctx, req)
	if err != nil {
		return engineapi.Image{}, coded(err)
	}
	v, err := s.e.imageView(ctx, im)
	return v, coded(err)
}

func (e *engine) createImage(ctx context.Context, req engineapi.ImageRequest) (store.Image, error) {
	if err := store.ValidName(req.Name); err != nil {
		return store.Image{}, invalidField("name", "%v", err)
	}
	a, err := arch.Parse(req.Arch)
	if err != nil {
		return store.Image{}, invalidField("arch", "%v", err)
	}
	p, v, err := e.findVolume(ctx, req.Pool, req.Volume)
	if err != nil {
		return store.Image{}, err
	}
	if v.State != store.VolumeReady {
		return store.Image{}, fail(api.CodeVolumeNotReady, "volume %s is %s: finish its upload first", v.Name, v.State)
	}
	c, err := e.st.GetCluster(ctx, p.ClusterID)
	if err != nil {
		return store.Image{}, err
	}
	im := store.Image{Name: req.Name, Arch: a, OS: req.OS, Description: req.Description, VolumeID: v.ID}
	if err := imageArchAllowed(im, c, "arch"); err != nil {
		return store.Image{}, err
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateImage(ctx, &im); err != nil {
			return err
		}
		v.Purpose = "image"
		if err := tx.UpdateVolume(ctx, &v); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "image.add", ObjectKind: "image", ObjectID: im.ID, ObjectName: im.Name,
			Message: fmt.Sprintf("Image %s (%s) was added to the library by %s.", im.Name, im.Arch, userName(ctx)),
			Reason:  fmt.Sprintf("volume %s of pool %s, %s, %d bytes", v.Name, p.Name, v.Format, v.VirtualSize)})
	})
	return im, err
}

// DeleteImage removes an image and its volume, unless VMs' disks are
// overlays on it.
func (s *Storage) DeleteImage(ctx context.Context, ref string) error {
	return coded(s.e.deleteImage(ctx, ref))
}

func (e *engine) deleteImage(ctx context.Context, ref string) error {
	im, err := e.findImage(ctx, ref)
	if err != nil {
		return err
	}
	v, err := e.st.GetVolume(ctx, im.VolumeID)
	if err != nil {
		return err
	}
	u, err := e.st.VolumeUsers(ctx, v.ID)
	if err != nil {
		return err
	}
	u.Images = nil
	if !u.Empty() {
		return fail(api.CodeImageInUse, "Cannot delete image %s: its volume is in use (%s).", im.Name, u.String())
	}
	p, err := e.st.GetPool(ctx, v.PoolID)
	if err != nil {
		return err
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteImage(ctx, im.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "image.remove", ObjectKind: "image", ObjectID: im.ID, ObjectName: im.Name,
			Message: fmt.Sprintf("Image %s was removed from the library by %s.", im.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	return e.stor.deleteVolume(ctx, p, v)
}

// ----- templates

func (e *engine) findTemplate(ctx context.Context, ref string) (store.Template, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Template{}, invalidField("template", "no template named")
	}
	t, err := e.st.GetTemplateByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if t2, err2 := e.st.GetTemplate(ctx, ref); err2 == nil {
			return t2, nil
		}
		return t, api.FieldError(api.CodeNotFound, "template", "template %q does not exist (polyvirt template list)", ref)
	}
	return t, err
}

func (e *engine) templateView(ctx context.Context, t store.Template) engineapi.Template {
	out := engineapi.Template{ID: t.ID, Name: t.Name, Arch: string(t.Arch), Description: t.Description, Definition: t.Definition,
		Volumes: []string{}, Version: t.Version, Created: t.Created, Updated: t.Updated}
	if c, err := e.st.GetCluster(ctx, t.ClusterID); err == nil {
		out.Cluster = c.Name
	}
	for _, id := range t.VolumeIDs {
		if v, err := e.st.GetVolume(ctx, id); err == nil {
			if p, err := e.st.GetPool(ctx, v.PoolID); err == nil {
				out.Volumes = append(out.Volumes, p.Name+"/"+v.Name)
			}
		}
	}
	return out
}

// ListTemplates lists the templates.
func (s *Storage) ListTemplates(ctx context.Context) ([]engineapi.Template, error) {
	ts, err := s.e.st.ListTemplates(ctx)
	if err != nil {
		return nil, coded(err)
	}
	out := make([]engineapi.Template, 0, len(ts))
	for _, t := range ts {
		out = append(out, s.e.templateView(ctx, t))
	}
	return out, nil
}

// GetTemplate is a template (name or ID).
func (s *Storage) GetTemplate(ctx context.Context, ref string) (engineapi.Template, error) {
	t, err := s.e.findTemplate(ctx, ref)
	if err != nil {
		return engineapi.Template{}, coded(err)
	}
	return s.e.templateView(ctx, t), nil
}

// CreateTemplate makes a template of a VM that is Down: its definition
// (no uuid, no MAC addresses, no cloud-init seed) and a copy of each of
// its writable volumes; read-only volumes (an installer image) are shared.
func (s *Storage) CreateTemplate(ctx context.Context, req engineapi.TemplateRequest) (engineapi.Template, error) {
	t, err := s.e.createTemplate(ctx, req)
	if err != nil {
		return engineapi.Template{}, coded(err)
	}
	return s.e.templateView(ctx, t), nil
}

func (e *engine) createTemplate(ctx context.Context, req engineapi.TemplateRequest) (store.Template, error) {
	if err := store.ValidName(req.Name); err != nil {
		return store.Template{}, invalidField("name", "%v", err)
	}
	if _, err := e.st.GetTemplateByName(ctx, req.Name); err == nil {
		return store.Template{}, fail(api.CodeAlreadyExists, "template %s exists already", req.Name)
	}
	vm, err := e.findVM(ctx, req.VM)
	if err != nil {
		return store.Template{}, err
	}
	if !isDown(vm) {
		return store.Template{}, vmStatusError(vm, "make a template of", "stop it first: its disks are copied")
	}
	def, err := vmspec.Decode(vm.Definition)
	if err != nil {
		return store.Template{}, fmt.Errorf("VM %s: the stored definition: %v", vm.Name, err)
	}
	tdef := def.Clone()
	tdef.Name, tdef.UUID = req.Name, ""
	for i := range tdef.NICs {
		tdef.NICs[i].MAC = ""
	}
	var made []store.Volume
	var shared []string
	cleanup := func() {
		for _, v := range made {
			if p, err := e.st.GetPool(ctx, v.PoolID); err == nil {
				e.stor.removeFile(context.WithoutCancel(ctx), p, v.Name)
			}
		}
	}
	var disks []vmspec.Disk
	for i, d := range tdef.Disks {
		if d.Volume == "" {
			if !d.ReadOnly && d.Device != "cdrom" {
				cleanup()
				return store.Template{}, api.FieldError(api.CodeTemplateDisk, fmt.Sprintf("disks[%d]", i), "disk %d of VM %s is the host file %s, not a volume: a template copies volumes only; move it into a pool (upload it as a volume)", i, vm.Name, d.Source)
			}
			disks = append(disks, d)
			continue
		}
		p, v, err := e.findVolume(ctx, d.Pool, d.Volume)
		if err != nil {
			cleanup()
			return store.Template{}, err
		}
		if v.Purpose == "seed" {
			continue // the VM's own cloud-init seed
		}
		if d.ReadOnly || d.Device == "cdrom" {
			shared = append(shared, v.ID)
			d.Source = ""
			disks = append(disks, d)
			continue
		}
		name := fmt.Sprintf("%s-disk%d.%s", req.Name, i, v.Format)
		copyOf, err := e.stor.cloneFile(ctx, p, v, p, name, v.Format)
		if err != nil {
			cleanup()
			return store.Template{}, err
		}
		made = append(made, store.Volume{PoolID: p.ID, Name: name, Format: v.Format, State: store.VolumeReady,
			VirtualSize: copyOf.VirtualSize, ActualSize: copyOf.ActualSize, Purpose: "template"})
		d.Volume, d.Source = name, ""
		disks = append(disks, d)
	}
	tdef.Disks = disks
	b, err := json.Marshal(tdef)
	if err != nil {
		cleanup()
		return store.Template{}, err
	}
	c, err := e.st.GetCluster(ctx, vm.ClusterID)
	if err != nil {
		cleanup()
		return store.Template{}, err
	}
	a, _ := arch.Parse(string(def.Arch))
	t := store.Template{Name: req.Name, ClusterID: c.ID, Arch: a, Definition: b, Description: req.Description}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		for i := range made {
			if err := tx.CreateVolume(ctx, &made[i]); err != nil {
				return err
			}
			t.VolumeIDs = append(t.VolumeIDs, made[i].ID)
		}
		t.VolumeIDs = append(t.VolumeIDs, shared...)
		if err := tx.CreateTemplate(ctx, &t); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "template.add", ObjectKind: "template", ObjectID: t.ID, ObjectName: t.Name,
			Message: fmt.Sprintf("Template %s was created from VM %s by %s.", t.Name, vm.Name, userName(ctx)),
			Reason:  fmt.Sprintf("%s, %d volumes copied", t.Arch, len(made))})
	})
	if err != nil {
		cleanup()
		return store.Template{}, err
	}
	return t, nil
}

// DeleteTemplate removes a template and the volumes it copied, unless
// VMs' disks are overlays on them.
func (s *Storage) DeleteTemplate(ctx context.Context, ref string) error {
	return coded(s.e.deleteTemplate(ctx, ref))
}

func (e *engine) deleteTemplate(ctx context.Context, ref string) error {
	t, err := e.findTemplate(ctx, ref)
	if err != nil {
		return err
	}
	var own []store.Volume
	for _, id := range t.VolumeIDs {
		v, err := e.st.GetVolume(ctx, id)
		if err != nil {
			return err
		}
		if v.Purpose != "template" {
			continue
		}
		u, err := e.st.VolumeUsers(ctx, v.ID)
		if err != nil {
			return err
		}
		u.Templates = nil
		if !u.Empty() {
			return fail(api.CodeTemplateInUse, "Cannot delete template %s: its volume %s is in use (%s).", t.Name, v.Name, u.String())
		}
		own = append(own, v)
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteTemplate(ctx, t.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "template.remove", ObjectKind: "template", ObjectID: t.ID, ObjectName: t.Name,
			Message: fmt.Sprintf("Template %s was removed by %s.", t.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	for _, v := range own {
		if p, err := e.st.GetPool(ctx, v.PoolID); err == nil {
			if err := e.stor.deleteVolume(ctx, p, v); err != nil {
				e.log.Warn("a template's volume was left", "template", t.Name, "volume", v.Name, "err", err)
			}
		}
	}
	return nil
}
