package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

const firmwareCols = `id, host_id, state, from_level, to_level, image_name, image_sha256, requested_by,
	steps, error, version, created_at, updated_at`

func scanFirmware(o *FirmwareOperation) func(rowScanner) error {
	return func(r rowScanner) error {
		var state string
		var steps json.RawMessage
		err := r.Scan(&o.ID, &o.HostID, &state, &o.FromLevel, &o.ToLevel, &o.ImageName, &o.ImageSHA256,
			&o.RequestedBy, jcol{&steps}, &o.Error, &o.Version, tcol{&o.Created}, tcol{&o.Updated})
		if err != nil {
			return err
		}
		o.State = FirmwareState(state)
		o.Steps = []FirmwareStep{}
		if len(steps) > 0 {
			if err := json.Unmarshal(steps, &o.Steps); err != nil {
				return fmt.Errorf("firmware operation %s: steps: %w", o.ID, err)
			}
		}
		return nil
	}
}

func checkFirmware(op string, o *FirmwareOperation) (string, error) {
	obj := describe("firmware operation", "", o.ID)
	if o.HostID == "" {
		return "", invalid(op, obj, "hostId", "is empty")
	}
	if !o.State.Valid() {
		return "", invalid(op, obj, "state", "unknown firmware state %q", o.State)
	}
	for i := range o.Steps {
		if !o.Steps[i].State.Valid() {
			return "", invalid(op, obj, "steps", "step %d has unknown state %q", i, o.Steps[i].State)
		}
		o.Steps[i].Time = o.Steps[i].Time.UTC().Truncate(time.Microsecond)
	}
	if o.Steps == nil {
		o.Steps = []FirmwareStep{}
	}
	steps, err := json.Marshal(o.Steps)
	if err != nil {
		return "", invalid(op, obj, "steps", "%s", err)
	}
	return string(steps), nil
}

// CreateFirmwareOperation implements Queries.
func (q *queries) CreateFirmwareOperation(ctx context.Context, in *FirmwareOperation) error {
	const op = "create"
	o := *in
	if o.ID == "" {
		o.ID = uuid.NewString()
	} else if err := validID(o.ID); err != nil {
		return invalid(op, "firmware operation", "id", "%s", err)
	}
	o.Steps = append([]FirmwareStep(nil), o.Steps...)
	steps, err := checkFirmware(op, &o)
	if err != nil {
		return err
	}
	obj := describe("firmware operation", "", o.ID)
	o.Version, o.Created = 1, now()
	o.Updated = o.Created
	d := q.s.d
	err = q.write(ctx, op, func(w *queries) error {
		if ok, err := w.exists(ctx, op, obj, `SELECT 1 FROM hosts WHERE id = ?`+d.forUpdate, o.HostID); err != nil {
			return err
		} else if !ok {
			return newErr(ErrNotFound, op, obj, "hostId", fmt.Sprintf("host %s does not exist", o.HostID))
		}
		if !o.State.Terminal() {
			var other string
			var state string
			err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&other, &state) },
				`SELECT id, state FROM firmware_operations WHERE host_id = ? AND active = ?`, o.HostID, true)
			if err == nil {
				return newErr(ErrConflict, op, obj, "hostId",
					fmt.Sprintf("host %s already has firmware operation %s in state %s", o.HostID, other, state))
			}
			if !isNotFound(err) {
				return err
			}
		}
		_, err := w.exec(ctx, op, obj, `INSERT INTO firmware_operations (id, host_id, state, active, from_level,
			to_level, image_name, image_sha256, requested_by, steps, error, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.HostID, string(o.State), !o.State.Terminal(), o.FromLevel, o.ToLevel, o.ImageName, o.ImageSHA256,
			o.RequestedBy, steps, o.Error, o.Version, d.ts(o.Created), d.ts(o.Updated))
		return err
	})
	if err == nil {
		*in = o
	}
	return err
}

// GetFirmwareOperation implements Queries.
func (q *queries) GetFirmwareOperation(ctx context.Context, id string) (FirmwareOperation, error) {
	var o FirmwareOperation
	err := q.read("get", func() error {
		return q.one(ctx, "get", describe("firmware operation", "", id), scanFirmware(&o),
			`SELECT `+firmwareCols+` FROM firmware_operations WHERE id = ?`, id)
	})
	return o, err
}

// GetActiveFirmwareOperation implements Queries.
func (q *queries) GetActiveFirmwareOperation(ctx context.Context, hostID string) (FirmwareOperation, error) {
	var o FirmwareOperation
	err := q.read("get", func() error {
		return q.one(ctx, "get", "active firmware operation of host "+hostID, scanFirmware(&o),
			`SELECT `+firmwareCols+` FROM firmware_operations WHERE host_id = ? AND active = ?`, hostID, true)
	})
	return o, err
}

// ListFirmwareOperations implements Queries.
func (q *queries) ListFirmwareOperations(ctx context.Context, hostID string) ([]FirmwareOperation, error) {
	out := []FirmwareOperation{}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "firmware operations", func(r rowScanner) error {
			var o FirmwareOperation
			if err := scanFirmware(&o)(r); err != nil {
				return err
			}
			out = append(out, o)
			return nil
		}, `SELECT `+firmwareCols+` FROM firmware_operations WHERE host_id = ? ORDER BY created_at DESC, id DESC`, hostID)
	})
	return out, err
}

// UpdateFirmwareOperation implements Queries.
func (q *queries) UpdateFirmwareOperation(ctx context.Context, in *FirmwareOperation) error {
	const op = "update"
	o := *in
	o.Steps = append([]FirmwareStep(nil), o.Steps...)
	steps, err := checkFirmware(op, &o)
	if err != nil {
		return err
	}
	obj := describe("firmware operation", "", o.ID)
	o.Updated = now()
	d := q.s.d
	err = q.write(ctx, op, func(w *queries) error {
		var state, host string
		var version int64
		if err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&state, &host, &version) },
			`SELECT state, host_id, version FROM firmware_operations WHERE id = ?`+d.forUpdate, o.ID); err != nil {
			return err
		}
		if version != o.Version {
			return staleVersion(op, obj, o.Version)
		}
		if host != o.HostID {
			return invalid(op, obj, "hostId", "an operation cannot move to another host")
		}
		if cur := FirmwareState(state); cur.Terminal() && cur != o.State {
			return invalid(op, obj, "state", "the operation ended (%s): it cannot become %s; start a new one", cur, o.State)
		}
		n, err := w.exec(ctx, op, obj, `UPDATE firmware_operations SET state = ?, active = ?, from_level = ?,
			to_level = ?, image_name = ?, image_sha256 = ?, requested_by = ?, steps = ?, error = ?,
			version = version + 1, updated_at = ? WHERE id = ? AND version = ?`,
			string(o.State), !o.State.Terminal(), o.FromLevel, o.ToLevel, o.ImageName, o.ImageSHA256,
			o.RequestedBy, steps, o.Error, d.ts(o.Updated), o.ID, o.Version)
		if err != nil {
			return err
		}
		if n == 0 {
			return w.afterUpdate(ctx, op, obj, "firmware_operations", o.ID, o.Version)
		}
		return nil
	})
	if err == nil {
		o.Version++
		*in = o
	}
	return err
}
