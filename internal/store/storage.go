package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"polyvirt/internal/arch"
)

// ----- pools

const poolCols = `id, name, cluster_id, kind, host_id, path, description, version, created_at, updated_at`

func scanPool(p *Pool) func(rowScanner) error {
	return func(r rowScanner) error {
		var kind string
		err := r.Scan(&p.ID, &p.Name, &p.ClusterID, &kind, nstr{&p.HostID}, &p.Path, &p.Description,
			&p.Version, tcol{&p.Created}, tcol{&p.Updated})
		p.Kind = PoolKind(kind)
		return err
	}
}

func newID(op, kind, name, id string) (string, error) {
	if id == "" {
		return uuid.NewString(), nil
	}
	if err := validID(id); err != nil {
		return "", invalid(op, describe(kind, name, ""), "id", "%s", err)
	}
	return id, nil
}

// CreatePool implements Queries.
func (q *queries) CreatePool(ctx context.Context, in *Pool) error {
	const op = "create"
	p := *in
	var err error
	if p.ID, err = newID(op, "pool", p.Name, p.ID); err != nil {
		return err
	}
	obj := describe("pool", p.Name, "")
	if err := ValidName(p.Name); err != nil {
		return invalid(op, obj, "name", "%s", err)
	}
	switch {
	case p.Kind == PoolShared && p.HostID != "":
		return invalid(op, obj, "host", "a shared pool is on every host of its cluster; name no host")
	case p.Kind == PoolLocal && p.HostID == "":
		return invalid(op, obj, "host", "a local pool is on one host; name it")
	case p.Kind != PoolShared && p.Kind != PoolLocal:
		return invalid(op, obj, "kind", "kind %q: want shared or local", p.Kind)
	case !strings.HasPrefix(p.Path, "/") || len(p.Path) > 4096:
		return invalid(op, obj, "path", "want an absolute path")
	case len(p.Description) > 4096:
		return invalid(op, obj, "description", "longer than 4096 characters")
	}
	p.Version, p.Created = 1, now()
	p.Updated = p.Created
	d := q.s.d
	err = q.write(ctx, op, func(w *queries) error {
		if p.HostID != "" {
			var cluster string
			if err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&cluster) },
				`SELECT cluster_id FROM hosts WHERE id = ?`+d.forUpdate, p.HostID); err != nil {
				if isNotFound(err) {
					return newErr(ErrNotFound, op, obj, "host", "host "+p.HostID+" does not exist")
				}
				return err
			}
			if cluster != p.ClusterID {
				return invalid(op, obj, "host", "the host is in another cluster than the pool")
			}
		}
		_, err := w.exec(ctx, op, obj, `INSERT INTO storage_pools (`+poolCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.Name, p.ClusterID, string(p.Kind), str(p.HostID), p.Path, p.Description, p.Version, d.ts(p.Created), d.ts(p.Updated))
		return err
	})
	if err == nil {
		*in = p
	}
	return err
}

func (q *queries) getPool(ctx context.Context, object, where string, args ...any) (Pool, error) {
	var p Pool
	err := q.read("get", func() error {
		return q.one(ctx, "get", object, scanPool(&p), `SELECT `+poolCols+` FROM storage_pools WHERE `+where, args...)
	})
	return p, err
}

// GetPool implements Queries.
func (q *queries) GetPool(ctx context.Context, id string) (Pool, error) {
	return q.getPool(ctx, describe("pool", "", id), "id = ?", id)
}

// GetPoolByName implements Queries.
func (q *queries) GetPoolByName(ctx context.Context, name string) (Pool, error) {
	return q.getPool(ctx, describe("pool", name, ""), "name = ?", name)
}

// ListPools implements Queries.
func (q *queries) ListPools(ctx context.Context, clusterID string) ([]Pool, error) {
	out := []Pool{}
	where, args := "", []any{}
	if clusterID != "" {
		where, args = " WHERE cluster_id = ?", append(args, clusterID)
	}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "pools", func(r rowScanner) error {
			var p Pool
			if err := scanPool(&p)(r); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		}, `SELECT `+poolCols+` FROM storage_pools`+where+` ORDER BY name`, args...)
	})
	return out, err
}

// DeletePool implements Queries.
func (q *queries) DeletePool(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("pool", "", id)
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.count(ctx, op, obj, `SELECT COUNT(*) FROM volumes WHERE pool_id = ?`, id)
		if err != nil {
			return err
		}
		if n > 0 {
			return newErr(ErrInUse, op, obj, "volumes", fmt.Sprintf("holds %d volumes; delete them first", n))
		}
		n, err = w.exec(ctx, op, obj, `DELETE FROM storage_pools WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

// SetHostPools implements Queries.
func (q *queries) SetHostPools(ctx context.Context, hostID string, ps []HostPool) error {
	const op = "update"
	obj := describe("host", "", hostID)
	d := q.s.d
	at := now()
	return q.write(ctx, op, func(w *queries) error {
		for _, p := range ps {
			if p.Checked.IsZero() {
				p.Checked = at
			}
			if _, err := w.exec(ctx, op, obj, `DELETE FROM host_pools WHERE host_id = ? AND pool_id = ?`, hostID, p.PoolID); err != nil {
				return err
			}
			ok, err := w.exists(ctx, op, obj, `SELECT 1 FROM storage_pools WHERE id = ?`, p.PoolID)
			if err != nil {
				return err
			}
			if !ok {
				continue // deleted meanwhile
			}
			if _, err := w.exec(ctx, op, obj, `INSERT INTO host_pools (host_id, pool_id, ok, code, message, capacity_bytes,
				free_bytes, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, hostID, p.PoolID, p.OK, p.Code, clipText(p.Message, 2048),
				p.CapacityBytes, p.FreeBytes, d.ts(p.Checked)); err != nil {
				return err
			}
		}
		return nil
	})
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ListHostPools implements Queries.
func (q *queries) ListHostPools(ctx context.Context, hostID, poolID string) ([]HostPool, error) {
	out := []HostPool{}
	var where []string
	var args []any
	if hostID != "" {
		where, args = append(where, "host_id = ?"), append(args, hostID)
	}
	if poolID != "" {
		where, args = append(where, "pool_id = ?"), append(args, poolID)
	}
	w := ""
	if len(where) > 0 {
		w = " WHERE " + strings.Join(where, " AND ")
	}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "host pools", func(r rowScanner) error {
			var p HostPool
			if err := r.Scan(&p.HostID, &p.PoolID, &p.OK, &p.Code, &p.Message, &p.CapacityBytes, &p.FreeBytes, tcol{&p.Checked}); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		}, `SELECT host_id, pool_id, ok, code, message, capacity_bytes, free_bytes, checked_at FROM host_pools`+w+` ORDER BY host_id, pool_id`, args...)
	})
	return out, err
}

// ----- volumes

const volumeCols = `id, pool_id, name, format, state, virtual_size, actual_size, upload_size, sha256,
	backing_volume_id, owner_vm_id, purpose, version, created_at, updated_at`

func scanVolume(v *Volume) func(rowScanner) error {
	return func(r rowScanner) error {
		var state string
		err := r.Scan(&v.ID, &v.PoolID, &v.Name, &v.Format, &state, &v.VirtualSize, &v.ActualSize, &v.UploadSize, &v.SHA256,
			nstr{&v.BackingVolumeID}, nstr{&v.OwnerVMID}, &v.Purpose, &v.Version, tcol{&v.Created}, tcol{&v.Updated})
		v.State = VolumeState(state)
		return err
	}
}

func checkVolume(op string, v *Volume) error {
	obj := describe("volume", v.Name, v.ID)
	switch {
	case v.Name == "" || len(v.Name) > 128 || strings.ContainsAny(v.Name, "/\x00") || strings.HasPrefix(v.Name, "."):
		return invalid(op, obj, "name", "not a volume name")
	case v.Format != "raw" && v.Format != "qcow2":
		return invalid(op, obj, "format", "format %q: want raw or qcow2", v.Format)
	case v.State != VolumeUploading && v.State != VolumeReady:
		return invalid(op, obj, "state", "state %q", v.State)
	case v.VirtualSize < 0 || v.ActualSize < 0 || v.UploadSize < 0:
		return invalid(op, obj, "size", "negative size")
	case v.PoolID == "":
		return invalid(op, obj, "pool", "no pool")
	}
	return nil
}

// CreateVolume implements Queries.
func (q *queries) CreateVolume(ctx context.Context, in *Volume) error {
	const op = "create"
	v := *in
	var err error
	if v.ID, err = newID(op, "volume", v.Name, v.ID); err != nil {
		return err
	}
	if err := checkVolume(op, &v); err != nil {
		return err
	}
	v.Version, v.Created = 1, now()
	v.Updated = v.Created
	d := q.s.d
	err = q.write(ctx, op, func(w *queries) error {
		_, err := w.exec(ctx, op, describe("volume", v.Name, ""), `INSERT INTO volumes (`+volumeCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.PoolID, v.Name, v.Format, string(v.State), v.VirtualSize, v.ActualSize, v.UploadSize, v.SHA256,
			str(v.BackingVolumeID), str(v.OwnerVMID), v.Purpose, v.Version, d.ts(v.Created), d.ts(v.Updated))
		return err
	})
	if err == nil {
		*in = v
	}
	return err
}

func (q *queries) getVolume(ctx context.Context, object, where string, args ...any) (Volume, error) {
	var v Volume
	err := q.read("get", func() error {
		return q.one(ctx, "get", object, scanVolume(&v), `SELECT `+volumeCols+` FROM volumes WHERE `+where, args...)
	})
	return v, err
}

// GetVolume implements Queries.
func (q *queries) GetVolume(ctx context.Context, id string) (Volume, error) {
	return q.getVolume(ctx, describe("volume", "", id), "id = ?", id)
}

// GetVolumeByName implements Queries.
func (q *queries) GetVolumeByName(ctx context.Context, poolID, name string) (Volume, error) {
	return q.getVolume(ctx, describe("volume", name, ""), "pool_id = ? AND name = ?", poolID, name)
}

// ListVolumes implements Queries.
func (q *queries) ListVolumes(ctx context.Context, f VolumeFilter) ([]Volume, error) {
	out := []Volume{}
	var where []string
	var args []any
	if f.PoolID != "" {
		where, args = append(where, "pool_id = ?"), append(args, f.PoolID)
	}
	if f.OwnerVMID != "" {
		where, args = append(where, "owner_vm_id = ?"), append(args, f.OwnerVMID)
	}
	w := ""
	if len(where) > 0 {
		w = " WHERE " + strings.Join(where, " AND ")
	}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "volumes", func(r rowScanner) error {
			var v Volume
			if err := scanVolume(&v)(r); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		}, `SELECT `+volumeCols+` FROM volumes`+w+` ORDER BY pool_id, name`, args...)
	})
	return out, err
}

// UpdateVolume implements Queries.
func (q *queries) UpdateVolume(ctx context.Context, in *Volume) error {
	const op = "update"
	v := *in
	if err := checkVolume(op, &v); err != nil {
		return err
	}
	obj := describe("volume", v.Name, v.ID)
	v.Updated = now()
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `UPDATE volumes SET state = ?, virtual_size = ?, actual_size = ?, upload_size = ?, sha256 = ?,
			backing_volume_id = ?, owner_vm_id = ?, purpose = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?`,
			string(v.State), v.VirtualSize, v.ActualSize, v.UploadSize, v.SHA256, str(v.BackingVolumeID), str(v.OwnerVMID), v.Purpose,
			d.ts(v.Updated), v.ID, v.Version)
		if err != nil {
			return err
		}
		if n == 0 {
			return w.afterUpdate(ctx, op, obj, "volumes", v.ID, v.Version)
		}
		return nil
	})
	if err == nil {
		v.Version++
		*in = v
	}
	return err
}

func (q *queries) ids(ctx context.Context, op, obj, query string, args ...any) ([]string, error) {
	var out []string
	err := q.many(ctx, op, obj, func(r rowScanner) error {
		var s string
		if err := r.Scan(&s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	}, query, args...)
	return out, err
}

// VolumeUsers implements Queries.
func (q *queries) VolumeUsers(ctx context.Context, id string) (VolumeUse, error) {
	var u VolumeUse
	obj := describe("volume", "", id)
	err := q.read("get", func() error {
		var err error
		if u.VMs, err = q.ids(ctx, "get", obj, `SELECT v.name FROM vm_volumes x JOIN vms v ON v.id = x.vm_id WHERE x.volume_id = ? ORDER BY v.name`, id); err != nil {
			return err
		}
		if u.Images, err = q.ids(ctx, "get", obj, `SELECT name FROM images WHERE volume_id = ? ORDER BY name`, id); err != nil {
			return err
		}
		if u.Templates, err = q.ids(ctx, "get", obj, `SELECT t.name FROM template_volumes x JOIN templates t ON t.id = x.template_id WHERE x.volume_id = ? ORDER BY t.name`, id); err != nil {
			return err
		}
		u.Overlays, err = q.ids(ctx, "get", obj, `SELECT name FROM volumes WHERE backing_volume_id = ? ORDER BY name`, id)
		return err
	})
	return u, err
}

// DeleteVolume implements Queries.
func (q *queries) DeleteVolume(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("volume", "", id)
	return q.write(ctx, op, func(w *queries) error {
		u, err := w.VolumeUsers(ctx, id)
		if err != nil {
			return err
		}
		if !u.Empty() {
			return newErr(ErrInUse, op, obj, "volume", "is in use: "+u.String())
		}
		n, err := w.exec(ctx, op, obj, `DELETE FROM volumes WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

// String says who uses a volume.
func (u VolumeUse) String() string {
	var parts []string
	for _, x := range []struct {
		what  string
		names []string
	}{{"VMs", u.VMs}, {"images", u.Images}, {"templates", u.Templates}, {"overlays", u.Overlays}} {
		if len(x.names) > 0 {
			parts = append(parts, x.what+" "+strings.Join(x.names, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// SetVMVolumes implements Queries.
func (q *queries) SetVMVolumes(ctx context.Context, vmID string, volumeIDs []string) error {
	const op = "update"
	obj := describe("VM", "", vmID)
	return q.write(ctx, op, func(w *queries) error {
		if _, err := w.exec(ctx, op, obj, `DELETE FROM vm_volumes WHERE vm_id = ?`, vmID); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, id := range volumeIDs {
			if seen[id] {
				continue
			}
			seen[id] = true
			if _, err := w.exec(ctx, op, obj, `INSERT INTO vm_volumes (vm_id, volume_id) VALUES (?, ?)`, vmID, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListVMVolumes implements Queries.
func (q *queries) ListVMVolumes(ctx context.Context, vmID string) ([]string, error) {
	var out []string
	err := q.read("list", func() error {
		var err error
		out, err = q.ids(ctx, "list", describe("VM", "", vmID), `SELECT volume_id FROM vm_volumes WHERE vm_id = ? ORDER BY volume_id`, vmID)
		return err
	})
	return out, err
}

// ----- images

const imageCols = `id, name, arch, os, description, volume_id, version, created_at, updated_at`

func scanImage(im *Image) func(rowScanner) error {
	return func(r rowScanner) error {
		var a string
		err := r.Scan(&im.ID, &im.Name, &a, &im.OS, &im.Description, &im.VolumeID, &im.Version, tcol{&im.Created}, tcol{&im.Updated})
		im.Arch = arch.Arch(a)
		return err
	}
}

// CreateImage implements Queries.
func (q *queries) CreateImage(ctx context.Context, in *Image) error {
	const op = "create"
	im := *in
	var err error
	if im.ID, err = newID(op, "image", im.Name, im.ID); err != nil {
		return err
	}
	obj := describe("image", im.Name, "")
	if err := ValidName(im.Name); err != nil {
		return invalid(op, obj, "name", "%s", err)
	}
	if a, err := arch.Parse(string(im.Arch)); err != nil {
		return invalid(op, obj, "arch", "%s", err)
	} else {
		im.Arch = a
	}
	if len(im.OS) > 128 || len(im.Description) > 4096 {
		return invalid(op, obj, "os", "too long")
	}
	im.Version, im.Created = 1, now()
	im.Updated = im.Created
	d := q.s.d
	err = q.write(ctx, op, func(w *queries) error {
		_, err := w.exec(ctx, op, obj, `INSERT INTO images (`+imageCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			im.ID, im.Name, string(im.Arch), im.OS, im.Description, im.VolumeID, im.Version, d.ts(im.Created), d.ts(im.Updated))
		return err
	})
	if err == nil {
		*in = im
	}
	return err
}

func (q *queries) getImage(ctx context.Context, object, where string, arg any) (Image, error) {
	var im Image
	err := q.read("get", func() error {
		return q.one(ctx, "get", object, scanImage(&im), `SELECT `+imageCols+` FROM images WHERE `+where, arg)
	})
	return im, err
}

// GetImage implements Queries.
func (q *queries) GetImage(ctx context.Context, id string) (Image, error) {
	return q.getImage(ctx, describe("image", "", id), "id = ?", id)
}

// GetImageByName implements Queries.
func (q *queries) GetImageByName(ctx context.Context, name string) (Image, error) {
	return q.getImage(ctx, describe("image", name, ""), "name = ?", name)
}

// ListImages implements Queries.
func (q *queries) ListImages(ctx context.Context) ([]Image, error) {
	out := []Image{}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "images", func(r rowScanner) error {
			var im Image
			if err := scanImage(&im)(r); err != nil {
				return err
			}
			out = append(out, im)
			return nil
		}, `SELECT `+imageCols+` FROM images ORDER BY name`)
	})
	return out, err
}

// DeleteImage implements Queries.
func (q *queries) DeleteImage(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("image", "", id)
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `DELETE FROM images WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

// ----- templates

const templateCols = `id, name, cluster_id, arch, definition, description, version, created_at, updated_at`

func (q *queries) scanTemplate(ctx context.Context, t *Template) func(rowScanner) error {
	return func(r rowScanner) error {
		var a string
		err := r.Scan(&t.ID, &t.Name, &t.ClusterID, &a, jcol{&t.Definition}, &t.Description, &t.Version, tcol{&t.Created}, tcol{&t.Updated})
		t.Arch = arch.Arch(a)
		return err
	}
}

func (q *queries) templateVolumes(ctx context.Context, t *Template) error {
	ids, err := q.ids(ctx, "get", describe("template", t.Name, t.ID), `SELECT volume_id FROM template_volumes WHERE template_id = ? ORDER BY volume_id`, t.ID)
	if ids == nil {
		ids = []string{}
	}
	t.VolumeIDs = ids
	return err
}

// CreateTemplate implements Queries.
func (q *queries) CreateTemplate(ctx context.Context, in *Template) error {
	const op = "create"
	t := *in
	var err error
	if t.ID, err = newID(op, "template", t.Name, t.ID); err != nil {
		return err
	}
	obj := describe("template", t.Name, "")
	if err := ValidName(t.Name); err != nil {
		return invalid(op, obj, "name", "%s", err)
	}
	if err := validJSON(op, obj, "definition", t.Definition); err != nil {
		return err
	}
	t.Version, t.Created = 1, now()
	t.Updated = t.Created
	if t.VolumeIDs == nil {
		t.VolumeIDs = []string{}
	}
	d := q.s.d
	err = q.write(ctx, op, func(w *queries) error {
		if _, err := w.exec(ctx, op, obj, `INSERT INTO templates (`+templateCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.ClusterID, string(t.Arch), d.js(t.Definition), t.Description, t.Version, d.ts(t.Created), d.ts(t.Updated)); err != nil {
			return err
		}
		for _, v := range t.VolumeIDs {
			if _, err := w.exec(ctx, op, obj, `INSERT INTO template_volumes (template_id, volume_id) VALUES (?, ?)`, t.ID, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		*in = t
	}
	return err
}

func (q *queries) getTemplate(ctx context.Context, object, where string, arg any) (Template, error) {
	var t Template
	err := q.read("get", func() error {
		if err := q.one(ctx, "get", object, q.scanTemplate(ctx, &t), `SELECT `+templateCols+` FROM templates WHERE `+where, arg); err != nil {
			return err
		}
		return q.templateVolumes(ctx, &t)
	})
	return t, err
}

// GetTemplate implements Queries.
func (q *queries) GetTemplate(ctx context.Context, id string) (Template, error) {
	return q.getTemplate(ctx, describe("template", "", id), "id = ?", id)
}

// GetTemplateByName implements Queries.
func (q *queries) GetTemplateByName(ctx context.Context, name string) (Template, error) {
	return q.getTemplate(ctx, describe("template", name, ""), "name = ?", name)
}

// ListTemplates implements Queries.
func (q *queries) ListTemplates(ctx context.Context) ([]Template, error) {
	out := []Template{}
	err := q.read("list", func() error {
		if err := q.many(ctx, "list", "templates", func(r rowScanner) error {
			var t Template
			if err := q.scanTemplate(ctx, &t)(r); err != nil {
				return err
			}
			out = append(out, t)
			return nil
		}, `SELECT `+templateCols+` FROM templates ORDER BY name`); err != nil {
			return err
		}
		for i := range out {
			if err := q.templateVolumes(ctx, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// DeleteTemplate implements Queries.
func (q *queries) DeleteTemplate(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("template", "", id)
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `DELETE FROM templates WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

// ----- snapshots

const snapshotCols = `id, vm_id, name, description, memory, vm_state, host_id, internal_name, volumes, created_at`

func scanSnapshot(s *Snapshot) func(rowScanner) error {
	return func(r rowScanner) error {
		return r.Scan(&s.ID, &s.VMID, &s.Name, &s.Description, &s.Memory, &s.VMState, nstr{&s.HostID}, &s.InternalName,
			jlist{&s.VolumeIDs}, tcol{&s.Created})
	}
}

// CreateSnapshot implements Queries.
func (q *queries) CreateSnapshot(ctx context.Context, in *Snapshot) error {
	const op = "create"
	s := *in
	var err error
	if s.ID, err = newID(op, "snapshot", s.Name, s.ID); err != nil {
		return err
	}
	obj := describe("snapshot", s.Name, "")
	if err := ValidName(s.Name); err != nil {
		return invalid(op, obj, "name", "%s", err)
	}
	if s.InternalName == "" || len(s.Description) > 1024 {
		return invalid(op, obj, "internalName", "missing, or a description over 1024 characters")
	}
	if s.VolumeIDs == nil {
		s.VolumeIDs = []string{}
	}
	s.Created = now()
	vols, _ := json.Marshal(s.VolumeIDs)
	d := q.s.d
	err = q.write(ctx, op, func(w *queries) error {
		_, err := w.exec(ctx, op, obj, `INSERT INTO snapshots (`+snapshotCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.VMID, s.Name, s.Description, s.Memory, s.VMState, str(s.HostID), s.InternalName, string(vols), d.ts(s.Created))
		return err
	})
	if err == nil {
		*in = s
	}
	return err
}

// ListSnapshots implements Queries.
func (q *queries) ListSnapshots(ctx context.Context, vmID string) ([]Snapshot, error) {
	out := []Snapshot{}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "snapshots", func(r rowScanner) error {
			var s Snapshot
			if err := scanSnapshot(&s)(r); err != nil {
				return err
			}
			out = append(out, s)
			return nil
		}, `SELECT `+snapshotCols+` FROM snapshots WHERE vm_id = ? ORDER BY created_at, name`, vmID)
	})
	return out, err
}

// GetSnapshot implements Queries.
func (q *queries) GetSnapshot(ctx context.Context, vmID, name string) (Snapshot, error) {
	var s Snapshot
	err := q.read("get", func() error {
		return q.one(ctx, "get", describe("snapshot", name, ""), scanSnapshot(&s), `SELECT `+snapshotCols+` FROM snapshots WHERE vm_id = ? AND name = ?`, vmID, name)
	})
	return s, err
}

// DeleteSnapshot implements Queries.
func (q *queries) DeleteSnapshot(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("snapshot", "", id)
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `DELETE FROM snapshots WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}
