package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"polyvirt/internal/arch"
)

const clusterCols = `id, name, description, arch, cpu_type, emulated_machine_candidates,
	emulated_machine, migration_policy, shutdown_timeout_s, migration_max_outgoing, migration_max_incoming,
	migration_encrypted, version, created_at, updated_at`

func scanCluster(c *Cluster) func(rowScanner) error {
	return func(r rowScanner) error {
		var a string
		err := r.Scan(&c.ID, &c.Name, &c.Description, nstr{&a}, nstr{&c.CPUType},
			jlist{&c.EmulatedMachineCandidates}, nstr{&c.EmulatedMachine}, &c.MigrationPolicy, &c.ShutdownTimeoutSeconds,
			&c.MigrationMaxOutgoing, &c.MigrationMaxIncoming, &c.MigrationEncrypted,
			&c.Version, tcol{&c.Created}, tcol{&c.Updated})
		c.Arch = arch.Arch(a)
		return err
	}
}

func checkCluster(op string, c *Cluster) error {
	obj := describe("cluster", c.Name, c.ID)
	if err := ValidName(c.Name); err != nil {
		return invalid(op, obj, "name", "%s", err)
	}
	if c.Arch != arch.Unknown {
		a, err := arch.Parse(string(c.Arch))
		if err != nil {
			return invalid(op, obj, "arch", "%s", err)
		}
		c.Arch = a
	}
	if len(c.Description) > 4096 {
		return invalid(op, obj, "description", "longer than 4096 characters")
	}
	for i, m := range c.EmulatedMachineCandidates {
		if m == "" || len(m) > 128 {
			return invalid(op, obj, "emulatedMachineCandidates", "entry %d is empty or too long", i)
		}
	}
	if c.EmulatedMachineCandidates == nil {
		c.EmulatedMachineCandidates = []string{}
	}
	if c.ShutdownTimeoutSeconds == 0 {
		c.ShutdownTimeoutSeconds = DefaultShutdownTimeoutSeconds
	}
	if c.ShutdownTimeoutSeconds < 1 || c.ShutdownTimeoutSeconds > MaxShutdownTimeoutSeconds {
		return invalid(op, obj, "shutdownTimeoutSeconds", "%d seconds: want 1 to %d", c.ShutdownTimeoutSeconds, MaxShutdownTimeoutSeconds)
	}
	for _, l := range []struct {
		field string
		n     *int
	}{{"migrationMaxOutgoing", &c.MigrationMaxOutgoing}, {"migrationMaxIncoming", &c.MigrationMaxIncoming}} {
		if *l.n == 0 {
			*l.n = DefaultMigrationsPerHost
		}
		if *l.n < 1 || *l.n > MaxMigrationsPerHost {
			return invalid(op, obj, l.field, "%d migrations: want 1 to %d", *l.n, MaxMigrationsPerHost)
		}
	}
	return nil
}

// CreateCluster implements Queries.
func (q *queries) CreateCluster(ctx context.Context, in *Cluster) error {
	const op = "create"
	c := *in
	if c.ID == "" {
		c.ID = uuid.NewString()
	} else if err := validID(c.ID); err != nil {
		return invalid(op, describe("cluster", c.Name, ""), "id", "%s", err)
	}
	if err := checkCluster(op, &c); err != nil {
		return err
	}
	c.Version, c.Created = 1, now()
	c.Updated = c.Created
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		_, err := w.exec(ctx, op, describe("cluster", c.Name, ""),
			`INSERT INTO clusters (`+clusterCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, c.Description, str(string(c.Arch)), str(c.CPUType), list(c.EmulatedMachineCandidates),
			str(c.EmulatedMachine), c.MigrationPolicy, c.ShutdownTimeoutSeconds, c.MigrationMaxOutgoing, c.MigrationMaxIncoming,
			c.MigrationEncrypted, c.Version, d.ts(c.Created), d.ts(c.Updated))
		return err
	})
	if err == nil {
		*in = c
	}
	return err
}

func (q *queries) getCluster(ctx context.Context, object, where string, arg any) (Cluster, error) {
	var c Cluster
	err := q.read("get", func() error {
		return q.one(ctx, "get", object, scanCluster(&c), `SELECT `+clusterCols+` FROM clusters WHERE `+where, arg)
	})
	return c, err
}

// GetCluster implements Queries.
func (q *queries) GetCluster(ctx context.Context, id string) (Cluster, error) {
	return q.getCluster(ctx, describe("cluster", "", id), "id = ?", id)
}

// GetClusterByName implements Queries.
func (q *queries) GetClusterByName(ctx context.Context, name string) (Cluster, error) {
	return q.getCluster(ctx, describe("cluster", name, ""), "name = ?", name)
}

// ListClusters implements Queries.
func (q *queries) ListClusters(ctx context.Context) ([]Cluster, error) {
	out := []Cluster{}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "clusters", func(r rowScanner) error {
			var c Cluster
			if err := scanCluster(&c)(r); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		}, `SELECT `+clusterCols+` FROM clusters ORDER BY name`)
	})
	return out, err
}

// clusterUsers counts the hosts and VMs of a cluster.
func (q *queries) clusterUsers(ctx context.Context, op, obj, id string) (hosts, vms int64, err error) {
	if hosts, err = q.count(ctx, op, obj, `SELECT COUNT(*) FROM hosts WHERE cluster_id = ?`, id); err != nil {
		return 0, 0, err
	}
	vms, err = q.count(ctx, op, obj, `SELECT COUNT(*) FROM vms WHERE cluster_id = ?`, id)
	return hosts, vms, err
}

// UpdateCluster implements Queries.
func (q *queries) UpdateCluster(ctx context.Context, in *Cluster) error {
	const op = "update"
	c := *in
	if err := checkCluster(op, &c); err != nil {
		return err
	}
	obj := describe("cluster", c.Name, c.ID)
	c.Updated = now()
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		// Lock the row: hosts and VMs joining meanwhile wait for us (their
		// foreign key needs it), so the count below stays true.
		var cur Cluster
		if err := w.one(ctx, op, obj, func(r rowScanner) error {
			var a string
			err := r.Scan(nstr{&a}, &cur.Version)
			cur.Arch = arch.Arch(a)
			return err
		}, `SELECT arch, version FROM clusters WHERE id = ?`+d.forUpdate, c.ID); err != nil {
			return err
		}
		if cur.Version != c.Version {
			return staleVersion(op, obj, c.Version)
		}
		if cur.Arch != arch.Unknown && cur.Arch != c.Arch {
			hosts, vms, err := w.clusterUsers(ctx, op, obj, c.ID)
			if err != nil {
				return err
			}
			if hosts+vms > 0 {
				return newErr(ErrInUse, op, obj, "arch",
					fmt.Sprintf("cannot change the architecture from %s to %q while the cluster has %d hosts and %d VMs",
						cur.Arch, c.Arch, hosts, vms))
			}
		}
		n, err := w.exec(ctx, op, obj,
			`UPDATE clusters SET name = ?, description = ?, arch = ?, cpu_type = ?, emulated_machine_candidates = ?,
			 emulated_machine = ?, migration_policy = ?, shutdown_timeout_s = ?, migration_max_outgoing = ?,
			 migration_max_incoming = ?, migration_encrypted = ?, version = version + 1, updated_at = ?
			 WHERE id = ? AND version = ?`,
			c.Name, c.Description, str(string(c.Arch)), str(c.CPUType), list(c.EmulatedMachineCandidates),
			str(c.EmulatedMachine), c.MigrationPolicy, c.ShutdownTimeoutSeconds, c.MigrationMaxOutgoing, c.MigrationMaxIncoming,
			c.MigrationEncrypted, d.ts(c.Updated), c.ID, c.Version)
		if err != nil {
			return err
		}
		if n == 0 {
			return w.afterUpdate(ctx, op, obj, "clusters", c.ID, c.Version)
		}
		return nil
	})
	if err == nil {
		c.Version++
		*in = c
	}
	return err
}

// DeleteCluster implements Queries.
func (q *queries) DeleteCluster(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("cluster", "", id)
	return q.write(ctx, op, func(w *queries) error {
		var name string
		if err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&name) },
			`SELECT name FROM clusters WHERE id = ?`+q.s.d.forUpdate, id); err != nil {
			return err
		}
		obj = describe("cluster", name, "")
		hosts, vms, err := w.clusterUsers(ctx, op, obj, id)
		if err != nil {
			return err
		}
		if hosts+vms > 0 {
			return newErr(ErrInUse, op, obj, "",
				fmt.Sprintf("the cluster still has %d hosts and %d VMs: move or remove them first", hosts, vms))
		}
		n, err := w.exec(ctx, op, obj, `DELETE FROM clusters WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}
