package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

const vmCols = `id, name, cluster_id, host_id, pinned_host_id, last_host_id, definition, state, ha,
	state_changed_at, pending, version, created_at, updated_at, migration_policy, migrating_to_host_id, migration`

// vmBriefCols are vmCols with NULL for the definition and the migration.
const vmBriefCols = `id, name, cluster_id, host_id, pinned_host_id, last_host_id, NULL, state, ha,
	state_changed_at, pending, version, created_at, updated_at, migration_policy, migrating_to_host_id, NULL`

func scanVM(v *VM) func(rowScanner) error {
	return func(r rowScanner) error {
		var state string
		var pending json.RawMessage
		err := r.Scan(&v.ID, &v.Name, &v.ClusterID, nstr{&v.HostID}, nstr{&v.PinnedHostID}, nstr{&v.LastHostID},
			jcol{&v.Definition}, &state, &v.HA, tcol{&v.StateChanged}, jcol{&pending}, &v.Version, tcol{&v.Created}, tcol{&v.Updated},
			&v.MigrationPolicy, nstr{&v.MigratingToHostID}, jcol{&v.Migration})
		if err != nil {
			return err
		}
		v.State = VMState(state)
		v.Pending = nil
		if len(pending) > 0 && string(pending) != "null" {
			var p VMPending
			if err := json.Unmarshal(pending, &p); err != nil {
				return fmt.Errorf("VM %s: its pending action: %v", v.Name, err)
			}
			v.Pending = &p
		}
		return nil
	}
}

func checkVM(op string, v *VM) error {
	obj := describe("VM", v.Name, v.ID)
	if err := ValidName(v.Name); err != nil {
		return invalid(op, obj, "name", "%s", err)
	}
	if v.ClusterID == "" {
		return invalid(op, obj, "clusterId", "is empty: a VM belongs to a cluster")
	}
	if v.State == "" {
		v.State = VMDown
	}
	if !v.State.Valid() {
		return invalid(op, obj, "state", "unknown VM state %q (known: %v)", v.State, vmStates)
	}
	if len(v.Definition) == 0 {
		v.Definition = []byte("{}")
	}
	if v.Pending != nil && v.Pending.Action == "" {
		return invalid(op, obj, "pending", "a pending action needs its action")
	}
	if len(v.Migration) > 0 {
		if err := validJSON(op, obj, "migration", v.Migration); err != nil {
			return err
		}
	}
	return validJSON(op, obj, "definition", v.Definition)
}

// pendingJSON is a VM's pending action as stored (NULL when none).
func pendingJSON(p *VMPending) any {
	if p == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil { // cannot happen for this struct
		return nil
	}
	return string(b)
}

// checkVMRefs checks that the cluster and hosts a VM names exist.
func (q *queries) checkVMRefs(ctx context.Context, op, obj string, v *VM) error {
	if ok, err := q.exists(ctx, op, obj, `SELECT 1 FROM clusters WHERE id = ?`, v.ClusterID); err != nil {
		return err
	} else if !ok {
		return newErr(ErrNotFound, op, obj, "clusterId", fmt.Sprintf("cluster %s does not exist", v.ClusterID))
	}
	for _, ref := range []struct{ field, id string }{{"hostId", v.HostID}, {"pinnedHostId", v.PinnedHostID}, {"lastHostId", v.LastHostID},
		{"migratingToHostId", v.MigratingToHostID}} {
		if ref.id == "" {
			continue
		}
		if ok, err := q.exists(ctx, op, obj, `SELECT 1 FROM hosts WHERE id = ?`, ref.id); err != nil {
			return err
		} else if !ok {
			return newErr(ErrNotFound, op, obj, ref.field, fmt.Sprintf("host %s does not exist", ref.id))
		}
	}
	return nil
}

// CreateVM implements Queries.
func (q *queries) CreateVM(ctx context.Context, in *VM) error {
	const op = "create"
	v := *in
	if v.ID == "" {
		v.ID = uuid.NewString()
	} else if err := validID(v.ID); err != nil {
		return invalid(op, describe("VM", v.Name, ""), "id", "%s", err)
	}
	if err := checkVM(op, &v); err != nil {
		return err
	}
	obj := describe("VM", v.Name, "")
	v.Version, v.Created = 1, now()
	v.Updated, v.StateChanged = v.Created, v.Created
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		if err := w.checkVMRefs(ctx, op, obj, &v); err != nil {
			return err
		}
		_, err := w.exec(ctx, op, obj, `INSERT INTO vms (`+vmCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.Name, v.ClusterID, str(v.HostID), str(v.PinnedHostID), str(v.LastHostID), d.js(v.Definition),
			string(v.State), v.HA, d.ts(v.StateChanged), pendingJSON(v.Pending), v.Version, d.ts(v.Created), d.ts(v.Updated),
			v.MigrationPolicy, str(v.MigratingToHostID), d.js(v.Migration))
		return err
	})
	if err == nil {
		*in = v
	}
	return err
}

func (q *queries) getVM(ctx context.Context, object, where string, arg any) (VM, error) {
	var v VM
	err := q.read("get", func() error {
		return q.one(ctx, "get", object, scanVM(&v), `SELECT `+vmCols+` FROM vms WHERE `+where, arg)
	})
	return v, err
}

// GetVM implements Queries.
func (q *queries) GetVM(ctx context.Context, id string) (VM, error) {
	return q.getVM(ctx, describe("VM", "", id), "id = ?", id)
}

// GetVMByName implements Queries.
func (q *queries) GetVMByName(ctx context.Context, name string) (VM, error) {
	return q.getVM(ctx, describe("VM", name, ""), "name = ?", name)
}

// ListVMs implements Queries.
func (q *queries) ListVMs(ctx context.Context, f VMFilter) ([]VM, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"cluster_id", f.ClusterID}, {"host_id", f.HostID}, {"pinned_host_id", f.PinnedHostID}} {
		if c.v != "" {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if len(f.States) > 0 {
		where = append(where, "state IN ("+placeholders(len(f.States))+")")
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if f.HA != nil {
		where, args = append(where, "ha = ?"), append(args, *f.HA)
	}
	cols := vmCols
	if f.Brief {
		cols = vmBriefCols
	}
	query := `SELECT ` + cols + ` FROM vms`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY name"
	out := []VM{}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "VMs", func(r rowScanner) error {
			var v VM
			if err := scanVM(&v)(r); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		}, query, args...)
	})
	return out, err
}

// UpdateVM implements Queries.
func (q *queries) UpdateVM(ctx context.Context, in *VM) error {
	const op = "update"
	v := *in
	if err := checkVM(op, &v); err != nil {
		return err
	}
	obj := describe("VM", v.Name, v.ID)
	v.Updated = now()
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		var state string
		var version int64
		var changed = v.StateChanged
		if err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&state, &version, tcol{&changed}) },
			`SELECT state, version, state_changed_at FROM vms WHERE id = ?`+d.forUpdate, v.ID); err != nil {
			return err
		}
		if version != v.Version {
			return staleVersion(op, obj, v.Version)
		}
		if err := w.checkVMRefs(ctx, op, obj, &v); err != nil {
			return err
		}
		if VMState(state) != v.State {
			changed = v.Updated
		}
		v.StateChanged = changed
		n, err := w.exec(ctx, op, obj, `UPDATE vms SET name = ?, cluster_id = ?, host_id = ?, pinned_host_id = ?,
			last_host_id = ?, definition = ?, state = ?, ha = ?, state_changed_at = ?, pending = ?, version = version + 1,
			updated_at = ?, migration_policy = ?, migrating_to_host_id = ?, migration = ? WHERE id = ? AND version = ?`,
			v.Name, v.ClusterID, str(v.HostID), str(v.PinnedHostID), str(v.LastHostID), d.js(v.Definition),
			string(v.State), v.HA, d.ts(v.StateChanged), pendingJSON(v.Pending), d.ts(v.Updated), v.MigrationPolicy, str(v.MigratingToHostID),
			d.js(v.Migration), v.ID, v.Version)
		if err != nil {
			return err
		}
		if n == 0 {
			return w.afterUpdate(ctx, op, obj, "vms", v.ID, v.Version)
		}
		return nil
	})
	if err == nil {
		v.Version++
		*in = v
	}
	return err
}

// DeleteVM implements Queries.
func (q *queries) DeleteVM(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("VM", "", id)
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `DELETE FROM vms WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
