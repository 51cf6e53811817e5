package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Rollout is a rolling firmware update of a cluster's hosts: the store
// keeps its state and its document (what the engine's rollout worker
// needs to resume it) and knows only that a rollout that has not Ended is
// the one active rollout of its cluster.
type Rollout struct {
	ID        string `json:"id"`
	ClusterID string `json:"clusterId"`
	// State is the engine's name of the rollout's state.
	State string `json:"state"`
	// Ended tells that the rollout is over (succeeded, failed, aborted):
	// another may start on its cluster.
	Ended bool `json:"ended"`
	// Doc is the engine's document of the rollout (JSON).
	Doc     json.RawMessage `json:"doc"`
	Version int64           `json:"version"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
}

const rolloutCols = `id, cluster_id, state, active, doc, version, created_at, updated_at`

func scanRollout(o *Rollout) func(rowScanner) error {
	return func(r rowScanner) error {
		var active bool
		var doc json.RawMessage
		if err := r.Scan(&o.ID, &o.ClusterID, &o.State, &active, jcol{&doc}, &o.Version, tcol{&o.Created}, tcol{&o.Updated}); err != nil {
			return err
		}
		o.Ended = !active
		o.Doc = append(json.RawMessage(nil), doc...)
		return nil
	}
}

func checkRollout(op string, o *Rollout) error {
	obj := describe("rollout", "", o.ID)
	if o.ClusterID == "" {
		return invalid(op, obj, "clusterId", "is empty")
	}
	if o.State == "" || len(o.State) > 40 {
		return invalid(op, obj, "state", "must be 1 to 40 characters")
	}
	if len(o.Doc) == 0 || !json.Valid(o.Doc) {
		return invalid(op, obj, "doc", "is not a JSON document")
	}
	return nil
}

// CreateRollout implements Queries.
func (q *queries) CreateRollout(ctx context.Context, in *Rollout) error {
	const op = "create"
	o := *in
	if o.ID == "" {
		o.ID = uuid.NewString()
	} else if err := validID(o.ID); err != nil {
		return invalid(op, "rollout", "id", "%s", err)
	}
	if err := checkRollout(op, &o); err != nil {
		return err
	}
	obj := describe("rollout", "", o.ID)
	o.Version, o.Created = 1, now()
	o.Updated = o.Created
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		if ok, err := w.exists(ctx, op, obj, `SELECT 1 FROM clusters WHERE id = ?`+d.forUpdate, o.ClusterID); err != nil {
			return err
		} else if !ok {
			return newErr(ErrNotFound, op, obj, "clusterId", fmt.Sprintf("cluster %s does not exist", o.ClusterID))
		}
		if !o.Ended {
			var other, state string
			err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&other, &state) },
				`SELECT id, state FROM rollouts WHERE cluster_id = ? AND active = ?`, o.ClusterID, true)
			if err == nil {
				return newErr(ErrConflict, op, obj, "clusterId",
					fmt.Sprintf("cluster %s already has rollout %s in state %s", o.ClusterID, other, state))
			}
			if !isNotFound(err) {
				return err
			}
		}
		_, err := w.exec(ctx, op, obj, `INSERT INTO rollouts (id, cluster_id, state, active, doc, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.ClusterID, o.State, !o.Ended, string(o.Doc), o.Version, d.ts(o.Created), d.ts(o.Updated))
		return err
	})
	if err == nil {
		*in = o
	}
	return err
}

// GetRollout implements Queries.
func (q *queries) GetRollout(ctx context.Context, id string) (Rollout, error) {
	var o Rollout
	err := q.read("get", func() error {
		return q.one(ctx, "get", describe("rollout", "", id), scanRollout(&o),
			`SELECT `+rolloutCols+` FROM rollouts WHERE id = ?`, id)
	})
	return o, err
}

// ListRollouts implements Queries.
func (q *queries) ListRollouts(ctx context.Context, f RolloutFilter) ([]Rollout, error) {
	out := []Rollout{}
	query, args := `SELECT `+rolloutCols+` FROM rollouts WHERE 1 = 1`, []any{}
	if f.ClusterID != "" {
		query, args = query+` AND cluster_id = ?`, append(args, f.ClusterID)
	}
	if f.Active {
		query, args = query+` AND active = ?`, append(args, true)
	}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "rollouts", func(r rowScanner) error {
			var o Rollout
			if err := scanRollout(&o)(r); err != nil {
				return err
			}
			out = append(out, o)
			return nil
		}, query+` ORDER BY created_at DESC, id DESC`, args...)
	})
	return out, err
}

// UpdateRollout implements Queries.
func (q *queries) UpdateRollout(ctx context.Context, in *Rollout) error {
	const op = "update"
	o := *in
	if err := checkRollout(op, &o); err != nil {
		return err
	}
	obj := describe("rollout", "", o.ID)
	o.Updated = now()
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		var active bool
		var cluster string
		var version int64
		if err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&active, &cluster, &version) },
			`SELECT active, cluster_id, version FROM rollouts WHERE id = ?`+d.forUpdate, o.ID); err != nil {
			return err
		}
		if version != o.Version {
			return staleVersion(op, obj, o.Version)
		}
		if cluster != o.ClusterID {
			return invalid(op, obj, "clusterId", "a rollout cannot move to another cluster")
		}
		if !active && !o.Ended {
			return invalid(op, obj, "state", "the rollout ended: it cannot become %s; start a new one", o.State)
		}
		n, err := w.exec(ctx, op, obj, `UPDATE rollouts SET state = ?, active = ?, doc = ?, version = version + 1,
			updated_at = ? WHERE id = ? AND version = ?`,
			o.State, !o.Ended, string(o.Doc), d.ts(o.Updated), o.ID, o.Version)
		if err != nil {
			return err
		}
		if n == 0 {
			return w.afterUpdate(ctx, op, obj, "rollouts", o.ID, o.Version)
		}
		return nil
	})
	if err == nil {
		o.Version++
		*in = o
	}
	return err
}
