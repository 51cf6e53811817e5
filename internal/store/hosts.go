package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"polyvirt/internal/arch"
)

// hostCols are the columns of a host; capabilities is replaced by NULL
// when not asked for, and the CPU flags and emulated machines too when
// brief.
func hostCols(withCaps bool, brief ...bool) string {
	return hostColumns(withCaps, len(brief) > 0 && brief[0], false)
}

// hostColumns are hostCols, and without the statistics document (stats
// NULL, their time kept) when noStats.
func hostColumns(withCaps, brief, noStats bool) string {
	caps, flags, machines, stats := "h.capabilities", "h.cpu_flags", "h.emulated_machines", "s.stats"
	if !withCaps {
		caps = "NULL"
	}
	if brief {
		caps, flags, machines = "NULL", "NULL", "NULL"
	}
	if noStats {
		stats = "NULL"
	}
	return `h.id, h.name, h.address, h.cluster_id, h.status, h.status_code, h.status_message, h.arch,
	h.cpu_model, ` + flags + `, h.cpu_type, h.cpu_level, ` + machines + `, ` + caps + `, h.capabilities_hash,
	h.cert_fingerprint, h.cert_serial, h.join_token_expires_at, h.join_token_used_at,
	` + stats + `, s.stats_at, s.last_seen_at, h.version, h.created_at, h.updated_at`
}

const hostFrom = ` FROM hosts h LEFT JOIN host_stats s ON s.host_id = h.id `

func scanHost(h *Host) func(rowScanner) error {
	return func(r rowScanner) error {
		var status, a string
		err := r.Scan(&h.ID, &h.Name, &h.Address, &h.ClusterID, &status, &h.StatusCode, &h.StatusMessage, &a,
			&h.CPUModel, jlist{&h.CPUFlags}, &h.CPUType, &h.CPULevel, jlist{&h.EmulatedMachines},
			jcol{&h.Capabilities}, &h.CapabilitiesHash, nstr{&h.CertFingerprint}, &h.CertSerial,
			tcol{&h.JoinTokenExpires}, tcol{&h.JoinTokenUsed},
			jcol{&h.Stats}, tcol{&h.StatsAt}, tcol{&h.LastSeen}, &h.Version, tcol{&h.Created}, tcol{&h.Updated})
		h.Status, h.Arch = HostStatus(status), arch.Arch(a)
		return err
	}
}

func checkHost(op string, h *Host) error {
	obj := describe("host", h.Name, h.ID)
	if err := ValidName(h.Name); err != nil {
		return invalid(op, obj, "name", "%s", err)
	}
	if strings.TrimSpace(h.Address) == "" || len(h.Address) > 255 || strings.ContainsAny(h.Address, " \t\r\n") {
		return invalid(op, obj, "address", "address %q: want HOST:PORT, at most 255 characters, no spaces", h.Address)
	}
	if h.ClusterID == "" {
		return invalid(op, obj, "clusterId", "is empty: a host belongs to a cluster")
	}
	if h.Status == "" {
		h.Status = HostInstalling
	}
	if !h.Status.Valid() {
		return invalid(op, obj, "status", "unknown host status %q (known: %v)", h.Status, hostStatuses)
	}
	if h.Arch != arch.Unknown {
		a, err := arch.Parse(string(h.Arch))
		if err != nil {
			return invalid(op, obj, "arch", "%s", err)
		}
		h.Arch = a
	}
	if h.CPULevel < 0 {
		return invalid(op, obj, "cpuLevel", "is negative")
	}
	if err := validJSON(op, obj, "capabilities", h.Capabilities); err != nil {
		return err
	}
	if h.CPUFlags == nil {
		h.CPUFlags = []string{}
	}
	if h.EmulatedMachines == nil {
		h.EmulatedMachines = []string{}
	}
	return nil
}

// CreateHost implements Queries.
func (q *queries) CreateHost(ctx context.Context, in *Host) error {
	const op = "create"
	h := *in
	if h.ID == "" {
		h.ID = uuid.NewString()
	} else if err := validID(h.ID); err != nil {
		return invalid(op, describe("host", h.Name, ""), "id", "%s", err)
	}
	if err := checkHost(op, &h); err != nil {
		return err
	}
	obj := describe("host", h.Name, "")
	h.Version, h.Created = 1, now()
	h.Updated = h.Created
	// Monitoring data and the join token have their own methods.
	h.Stats, h.StatsAt, h.LastSeen = nil, time.Time{}, time.Time{}
	h.JoinTokenExpires, h.JoinTokenUsed = time.Time{}, time.Time{}
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		if ok, err := w.exists(ctx, op, obj, `SELECT 1 FROM clusters WHERE id = ?`, h.ClusterID); err != nil {
			return err
		} else if !ok {
			return newErr(ErrNotFound, op, obj, "clusterId", fmt.Sprintf("cluster %s does not exist", h.ClusterID))
		}
		if _, err := w.exec(ctx, op, obj, `INSERT INTO hosts (id, name, address, cluster_id, status, status_code,
			status_message, arch, cpu_model, cpu_flags, cpu_type, cpu_level, emulated_machines, capabilities,
			capabilities_hash, cert_fingerprint, cert_serial, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			h.ID, h.Name, h.Address, h.ClusterID, string(h.Status), h.StatusCode, h.StatusMessage, string(h.Arch),
			h.CPUModel, list(h.CPUFlags), h.CPUType, h.CPULevel, list(h.EmulatedMachines), d.js(h.Capabilities),
			h.CapabilitiesHash, str(h.CertFingerprint), h.CertSerial, h.Version, d.ts(h.Created), d.ts(h.Updated)); err != nil {
			return err
		}
		_, err := w.exec(ctx, op, obj, `INSERT INTO host_stats (host_id) VALUES (?)`, h.ID)
		return err
	})
	if err == nil {
		*in = h
	}
	return err
}

func (q *queries) getHost(ctx context.Context, object, where string, arg any) (Host, error) {
	var h Host
	err := q.read("get", func() error {
		return q.one(ctx, "get", object, scanHost(&h), `SELECT `+hostCols(true)+hostFrom+`WHERE `+where, arg)
	})
	return h, err
}

// GetHost implements Queries.
func (q *queries) GetHost(ctx context.Context, id string) (Host, error) {
	return q.getHost(ctx, describe("host", "", id), "h.id = ?", id)
}

// GetHostByName implements Queries.
func (q *queries) GetHostByName(ctx context.Context, name string) (Host, error) {
	return q.getHost(ctx, describe("host", name, ""), "h.name = ?", name)
}

// GetHostByCertFingerprint implements Queries.
func (q *queries) GetHostByCertFingerprint(ctx context.Context, fingerprint string) (Host, error) {
	if fingerprint == "" {
		return Host{}, notFound("get", "host with this certificate")
	}
	return q.getHost(ctx, "host with certificate "+fingerprint, "h.cert_fingerprint = ?", fingerprint)
}

// ListHosts implements Queries.
func (q *queries) ListHosts(ctx context.Context, f HostFilter) ([]Host, error) {
	var where []string
	var args []any
	if f.ClusterID != "" {
		where, args = append(where, "h.cluster_id = ?"), append(args, f.ClusterID)
	}
	if len(f.Statuses) > 0 {
		where = append(where, "h.status IN ("+placeholders(len(f.Statuses))+")")
		for _, s := range f.Statuses {
			args = append(args, string(s))
		}
	}
	if f.Address != "" {
		where, args = append(where, "LOWER(h.address) = LOWER(?)"), append(args, f.Address)
	}
	if f.Name != "" {
		where, args = append(where, "h.name = ?"), append(args, f.Name)
	}
	if f.After != "" {
		where, args = append(where, "h.name > ?"), append(args, f.After)
	}
	if f.IDs != nil {
		if len(f.IDs) > MaxHostIDs {
			return nil, invalid("list", "hosts", "ids", "%d host ids, at most %d at once", len(f.IDs), MaxHostIDs)
		}
		if len(f.IDs) == 0 {
			return []Host{}, nil
		}
		where = append(where, "h.id IN ("+placeholders(len(f.IDs))+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	query := `SELECT ` + hostColumns(f.WithCapabilities, f.Brief, f.NoStats) + hostFrom
	if len(where) > 0 {
		query += "WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY h.name"
	if f.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(f.Limit)
	}
	var out chunked[Host]
	err := q.read("list", func() error {
		return q.many(ctx, "list", "hosts", func(r rowScanner) error {
			return scanHost(out.next())(r)
		}, query, args...)
	})
	if err != nil {
		return []Host{}, err
	}
	return out.rows(), nil
}

// CountHosts implements Queries.
func (q *queries) CountHosts(ctx context.Context) (map[string]map[HostStatus]int, error) {
	out := map[string]map[HostStatus]int{}
	err := q.read("count", func() error {
		return q.many(ctx, "count", "hosts", func(r rowScanner) error {
			var cluster, status string
			var n int
			if err := r.Scan(&cluster, &status, &n); err != nil {
				return err
			}
			m := out[cluster]
			if m == nil {
				m = map[HostStatus]int{}
				out[cluster] = m
			}
			m[HostStatus(status)] = n
			return nil
		}, `SELECT cluster_id, status, COUNT(*) FROM hosts GROUP BY cluster_id, status`)
	})
	return out, err
}

// HostsRevision is a summary of the hosts table that changes with every
// host added (one more, and the latest change is its creation), changed
// (its version grows) or removed (one fewer): a reader that holds the
// hosts as of one revision need not read them again while it stays the
// same. Compare revisions with ==.
type HostsRevision struct {
	// Count is the number of hosts.
	Count int64
	// VersionSum is the sum of their versions.
	VersionSum int64
	// LastChange is the latest time a host was created or changed (zero
	// without hosts).
	LastChange time.Time
}

// HostsRevision implements Queries.
func (q *queries) HostsRevision(ctx context.Context) (HostsRevision, error) {
	var r HostsRevision
	err := q.read("revision", func() error {
		return q.one(ctx, "revision", "hosts", func(row rowScanner) error {
			return row.Scan(&r.Count, &r.VersionSum, tcol{&r.LastChange})
		}, `SELECT COUNT(*), CAST(COALESCE(SUM(version), 0) AS BIGINT), MAX(updated_at) FROM hosts`)
	})
	return r, err
}

// UpdateHost implements Queries.
func (q *queries) UpdateHost(ctx context.Context, in *Host) error {
	const op = "update"
	h := *in
	if err := checkHost(op, &h); err != nil {
		return err
	}
	obj := describe("host", h.Name, h.ID)
	h.Updated = now()
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		if ok, err := w.exists(ctx, op, obj, `SELECT 1 FROM clusters WHERE id = ?`, h.ClusterID); err != nil {
			return err
		} else if !ok {
			return newErr(ErrNotFound, op, obj, "clusterId", fmt.Sprintf("cluster %s does not exist", h.ClusterID))
		}
		n, err := w.exec(ctx, op, obj, `UPDATE hosts SET name = ?, address = ?, cluster_id = ?, status = ?,
			status_code = ?, status_message = ?, arch = ?, cpu_model = ?, cpu_flags = ?, cpu_type = ?, cpu_level = ?,
			emulated_machines = ?, capabilities = ?, capabilities_hash = ?, cert_fingerprint = ?, cert_serial = ?,
			version = version + 1, updated_at = ?
			WHERE id = ? AND version = ?`,
			h.Name, h.Address, h.ClusterID, string(h.Status), h.StatusCode, h.StatusMessage, string(h.Arch),
			h.CPUModel, list(h.CPUFlags), h.CPUType, h.CPULevel, list(h.EmulatedMachines), d.js(h.Capabilities),
			h.CapabilitiesHash, str(h.CertFingerprint), h.CertSerial, d.ts(h.Updated), h.ID, h.Version)
		if err != nil {
			return err
		}
		if n == 0 {
			return w.afterUpdate(ctx, op, obj, "hosts", h.ID, h.Version)
		}
		return nil
	})
	if err == nil {
		h.Version++
		*in = h
	}
	return err
}

// statsChunk bounds the rows of one multi-row stats UPDATE (3 parameters
// each, far below both backends' parameter limits).
const statsChunk = 250

// UpdateHostStats implements Queries.
func (q *queries) UpdateHostStats(ctx context.Context, stats []HostStats) (missing []string, err error) {
	const op = "update stats"
	if len(stats) == 0 {
		return nil, nil
	}
	at := now()
	// One report per host, the last one winning; order kept.
	last := make(map[string]int, len(stats))
	for i, s := range stats {
		if err := validJSON(op, describe("host", "", s.HostID), "stats", s.Stats); err != nil {
			return nil, err
		}
		last[s.HostID] = i
	}
	reports := make([]HostStats, 0, len(last))
	for i, s := range stats {
		if last[s.HostID] == i {
			if s.At.IsZero() {
				s.At = at
			}
			reports = append(reports, s)
		}
	}
	d := q.s.d
	if q.tx == nil && q.s.copyStats && len(reports) > statsChunk {
		if err := q.s.check(op); err != nil {
			return nil, err
		}
		for i := range reports {
			reports[i].At = storedTime(reports[i].At)
		}
		return copyHostStats(ctx, q.s.db, d, op, reports)
	}
	jsonType, timeType := "TEXT", "TEXT"
	if d.backend == Postgres {
		jsonType, timeType = "JSONB", "TIMESTAMPTZ"
	}
	row := "(?, CAST(? AS " + jsonType + "), CAST(? AS " + timeType + "))"
	err = q.write(ctx, op, func(w *queries) error {
		missing = nil
		for start := 0; start < len(reports); start += statsChunk {
			chunk := reports[start:min(start+statsChunk, len(reports))]
			args := make([]any, 0, 3*len(chunk))
			for _, s := range chunk {
				args = append(args, s.HostID, d.js(s.Stats), d.ts(s.At))
			}
			// VALUES columns are column1, column2, ... in both dialects.
			query := `UPDATE host_stats SET
				stats = COALESCE(v.column2, host_stats.stats),
				stats_at = CASE WHEN v.column2 IS NULL THEN host_stats.stats_at ELSE v.column3 END,
				last_seen_at = v.column3
				FROM (VALUES ` + strings.TrimSuffix(strings.Repeat(row+", ", len(chunk)), ", ") + `) AS v
				WHERE host_stats.host_id = v.column1
				RETURNING host_stats.host_id`
			done := make(map[string]bool, len(chunk))
			if err := w.many(ctx, op, "hosts", func(r rowScanner) error {
				var id string
				if err := r.Scan(&id); err != nil {
					return err
				}
				done[id] = true
				return nil
			}, query, args...); err != nil {
				return err
			}
			missing = appendNotDone(missing, chunk, done)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return missing, nil
}

// appendNotDone appends to missing, in order, the hosts of reports whose
// statistics row the update did not find (not in done).
func appendNotDone(missing []string, reports []HostStats, done map[string]bool) []string {
	for _, s := range reports {
		if !done[s.HostID] {
			missing = append(missing, s.HostID)
		}
	}
	return missing
}

// SetHostJoinToken implements Queries.
func (q *queries) SetHostJoinToken(ctx context.Context, hostID, hash string, expires time.Time) error {
	const op = "set join token"
	obj := describe("host", "", hostID)
	if hash == "" || len(hash) > 128 {
		return invalid(op, obj, "hash", "want the token's hash (HashToken), 1 to 128 characters")
	}
	if expires.IsZero() {
		return invalid(op, obj, "expires", "a join token must expire")
	}
	d := q.s.d
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `UPDATE hosts SET join_token_hash = ?, join_token_expires_at = ?,
			join_token_used_at = NULL, version = version + 1, updated_at = ? WHERE id = ?`,
			hash, d.ts(expires), d.ts(now()), hostID)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

// ConsumeJoinToken implements Queries.
func (q *queries) ConsumeJoinToken(ctx context.Context, hash string) (Host, error) {
	const op = "consume"
	const obj = "join token"
	var h Host
	if hash == "" {
		return h, notFound(op, obj)
	}
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		var id string
		var expires, used time.Time
		// FOR UPDATE: a second consumer waits here, then sees the token used.
		if err := w.one(ctx, op, obj, func(r rowScanner) error {
			return r.Scan(&id, tcol{&expires}, tcol{&used})
		}, `SELECT id, join_token_expires_at, join_token_used_at FROM hosts WHERE join_token_hash = ?`+d.forUpdate, hash); err != nil {
			return err
		}
		t := now()
		if !used.IsZero() {
			return newErr(ErrConflict, op, obj, "", "was already used at "+used.Format(time.RFC3339))
		}
		if !expires.After(t) {
			return newErr(ErrExpired, op, obj, "", "expired at "+expires.Format(time.RFC3339)+": issue a new one")
		}
		n, err := w.exec(ctx, op, obj, `UPDATE hosts SET join_token_used_at = ?, version = version + 1, updated_at = ?
			WHERE id = ? AND join_token_used_at IS NULL`, d.ts(t), d.ts(t), id)
		if err != nil {
			return err
		}
		if n == 0 {
			return newErr(ErrConflict, op, obj, "", "was already used")
		}
		return w.one(ctx, op, obj, scanHost(&h), `SELECT `+hostCols(true)+hostFrom+`WHERE h.id = ?`, id)
	})
	if err != nil {
		return Host{}, err
	}
	return h, nil
}

// DeleteHost implements Queries.
func (q *queries) DeleteHost(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("host", "", id)
	d := q.s.d
	return q.write(ctx, op, func(w *queries) error {
		var name string
		if err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&name) },
			`SELECT name FROM hosts WHERE id = ?`+d.forUpdate, id); err != nil {
			return err
		}
		obj = describe("host", name, "")
		vms, err := w.count(ctx, op, obj, `SELECT COUNT(*) FROM vms WHERE host_id = ? OR pinned_host_id = ?`, id, id)
		if err != nil {
			return err
		}
		if vms > 0 {
			return newErr(ErrInUse, op, obj, "", fmt.Sprintf("%d VMs run on the host or are pinned to it", vms))
		}
		var fw string
		if err := w.one(ctx, op, obj, func(r rowScanner) error { return r.Scan(&fw) },
			`SELECT id FROM firmware_operations WHERE host_id = ? AND active = ?`, id, true); err == nil {
			return newErr(ErrInUse, op, obj, "", "firmware operation "+fw+" is in progress")
		} else if !isNotFound(err) {
			return err
		}
		n, err := w.exec(ctx, op, obj, `DELETE FROM hosts WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
