package service

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/migpolicy"
	"polyvirt/internal/store"
)

// migrationPolicies are the known migration policies (migpolicy); the
// first is the default.
var migrationPolicies = migpolicy.Names()

func clusterView(c store.Cluster, counts map[string]int) engineapi.Cluster {
	if counts == nil {
		counts = map[string]int{}
	}
	v := engineapi.Cluster{ID: c.ID, Name: c.Name, Description: c.Description, Arch: c.Arch, CPUType: c.CPUType,
		EmulatedMachineCandidates: c.EmulatedMachineCandidates, EmulatedMachine: c.EmulatedMachine,
		MigrationPolicy: c.MigrationPolicy, ShutdownTimeoutSeconds: c.ShutdownTimeoutSeconds,
		MigrationMaxOutgoing: c.MigrationMaxOutgoing, MigrationMaxIncoming: c.MigrationMaxIncoming, MigrationEncrypted: c.MigrationEncrypted,
		Hosts: counts, Version: c.Version, Created: c.Created, Updated: c.Updated}
	if t, ok := cpucatalog.Lookup(c.CPUType); ok {
		v.CPULevel = t.Level
	}
	if v.EmulatedMachineCandidates == nil {
		v.EmulatedMachineCandidates = []string{}
	}
	return v
}

// hostCounts counts the hosts of every cluster by status.
func (e *engine) hostCounts(ctx context.Context) (map[string]map[string]int, error) {
	counts, err := e.st.CountHosts(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]int, len(counts))
	for c, m := range counts {
		o := make(map[string]int, len(m))
		for s, n := range m {
			o[string(s)] = n
		}
		out[c] = o
	}
	return out, nil
}

// Clusters are the engine's clusters: hosts of one architecture and CPU
// type, their emulated machine, their migration policy.
type Clusters struct{ e *engine }

// List lists the clusters, with their hosts counted by status.
func (s *Clusters) List(ctx context.Context) ([]engineapi.Cluster, error) {
	e := s.e
	cs, err := e.st.ListClusters(ctx)
	if err != nil {
		return nil, coded(err)
	}
	snap, err := e.hosts.get(ctx, e)
	if err != nil {
		return nil, coded(err)
	}
	out := make([]engineapi.Cluster, 0, len(cs))
	for _, c := range cs {
		out = append(out, clusterView(c, snap.counts[c.ID]))
	}
	return out, nil
}

// Get shows a cluster (name or ID).
func (s *Clusters) Get(ctx context.Context, ref string) (engineapi.Cluster, error) {
	c, err := s.e.findCluster(ctx, ref)
	if err != nil {
		return engineapi.Cluster{}, coded(err)
	}
	return s.e.clusterOut(ctx, c)
}

// clusterOut is the answer about a cluster.
func (e *engine) clusterOut(ctx context.Context, c store.Cluster) (engineapi.Cluster, error) {
	counts, err := e.hostCounts(ctx)
	if err != nil {
		return engineapi.Cluster{}, coded(err)
	}
	return clusterView(c, counts[c.ID]), nil
}

// CPUTypes are the cluster CPU types of an architecture (every one's when
// a is arch.Unknown).
func (s *Clusters) CPUTypes(a arch.Arch) []engineapi.CPUType {
	types := cpucatalog.All()
	if a != arch.Unknown {
		types = cpucatalog.Types(a)
	}
	return cpucatalog.APITypes(types)
}

// clusterArch turns a requested architecture into a cluster architecture
// (ppc64le, ppc64el, ppc64 → ppc64).
func clusterArch(a arch.Arch) (arch.Arch, error) {
	if err := a.Check(); err != nil {
		return arch.Unknown, invalidField("arch", "%v", err)
	}
	ca, err := archspec.ClusterArch(a)
	if err != nil {
		return arch.Unknown, invalidField("arch", "architecture %s: %v", a, err)
	}
	if len(cpucatalog.Types(ca)) == 0 {
		return arch.Unknown, invalidField("arch", "architecture %s has no cluster CPU types (there are for %s)", ca, arch.Join(cpucatalog.Arches(), ", "))
	}
	return ca, nil
}

func checkCandidates(l []string) error {
	if len(l) > 32 {
		return invalidField("emulatedMachineCandidates", "%d entries: at most 32", len(l))
	}
	for i, m := range l {
		if strings.TrimSpace(m) == "" || len(m) > 64 || strings.ContainsAny(m, " \t\r\n,") {
			return invalidField("emulatedMachineCandidates", "entry %d %q: want a machine name or a pattern such as pseries-*", i, m)
		}
	}
	return nil
}

func defaultCandidates(a arch.Arch) []string {
	if a == arch.Unknown {
		return []string{}
	}
	spec, err := archspec.For(a)
	if err != nil {
		return []string{}
	}
	return slices.Clone(spec.Machine.ClusterCandidates)
}

// Create creates a cluster: an architecture and a CPU type may be given,
// or left for its first host to set.
func (s *Clusters) Create(ctx context.Context, req engineapi.ClusterRequest) (engineapi.Cluster, error) {
	c, err := s.e.createCluster(ctx, req)
	if err != nil {
		return engineapi.Cluster{}, coded(err)
	}
	return clusterView(c, nil), nil
}

func (e *engine) createCluster(ctx context.Context, req engineapi.ClusterRequest) (store.Cluster, error) {
	if err := store.ValidName(req.Name); err != nil {
		return store.Cluster{}, invalidField("name", "%v", err)
	}
	c := store.Cluster{Name: req.Name, Description: req.Description, MigrationPolicy: req.MigrationPolicy,
		ShutdownTimeoutSeconds: req.ShutdownTimeoutSeconds, MigrationMaxOutgoing: req.MigrationMaxOutgoing,
		MigrationMaxIncoming: req.MigrationMaxIncoming, MigrationEncrypted: req.MigrationEncrypted}
	if err := checkShutdownTimeout(req.ShutdownTimeoutSeconds, true); err != nil {
		return store.Cluster{}, err
	}
	for _, l := range []struct {
		field string
		n     int
	}{{"migrationMaxOutgoing", req.MigrationMaxOutgoing}, {"migrationMaxIncoming", req.MigrationMaxIncoming}} {
		if err := checkMigrationsPerHost(l.field, l.n, true); err != nil {
			return store.Cluster{}, err
		}
	}
	if req.Arch != "" {
		a, err := clusterArch(req.Arch)
		if err != nil {
			return store.Cluster{}, err
		}
		c.Arch = a
	}
	if req.CPUType != "" {
		t, err := cpucatalog.Find(c.Arch, req.CPUType)
		if err != nil {
			return store.Cluster{}, invalidField("cpuType", "%v", err)
		}
		c.CPUType, c.Arch = t.Name, t.Arch
	}
	if req.EmulatedMachineCandidates != nil {
		if err := checkCandidates(req.EmulatedMachineCandidates); err != nil {
			return store.Cluster{}, err
		}
		c.EmulatedMachineCandidates = req.EmulatedMachineCandidates
	} else {
		c.EmulatedMachineCandidates = defaultCandidates(c.Arch)
	}
	if c.MigrationPolicy == "" {
		c.MigrationPolicy = migrationPolicies[0]
	}
	if !slices.Contains(migrationPolicies, c.MigrationPolicy) {
		return store.Cluster{}, invalidField("migrationPolicy", "migration policy %q: want one of %s", c.MigrationPolicy, strings.Join(migrationPolicies, ", "))
	}
	err := e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateCluster(ctx, &c); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "cluster.add", ObjectKind: "cluster", ObjectID: c.ID, ObjectName: c.Name,
			Message: fmt.Sprintf("Cluster %s was added by %s.", c.Name, userName(ctx)), Reason: clusterSummary(c)})
	})
	if err != nil {
		return store.Cluster{}, err
	}
	return c, nil
}

// checkShutdownTimeout checks a shutdown time-out in seconds (0 means the
// default when zero is allowed).
func checkShutdownTimeout(s int, zero bool) error {
	if (s == 0 && zero) || (s >= 1 && s <= store.MaxShutdownTimeoutSeconds) {
		return nil
	}
	return invalidField("shutdownTimeoutSeconds", "%d seconds: want 1 to %d", s, store.MaxShutdownTimeoutSeconds)
}

func clusterSummary(c store.Cluster) string {
	a, t := c.Arch.String(), c.CPUType
	if a == "" {
		a = "(set by its first host)"
	}
	if t == "" {
		t = "(set by its first host)"
	}
	return fmt.Sprintf("architecture %s, CPU type %s, emulated machine candidates %s", a, t, strings.Join(c.EmulatedMachineCandidates, ", "))
}

// Update changes a cluster: its name, description and migration policy;
// its architecture while it has no hosts or VMs; its CPU type when every Up
// host of it supports the new one; its emulated machine candidates.
func (s *Clusters) Update(ctx context.Context, ref string, upd engineapi.ClusterUpdate) (engineapi.Cluster, error) {
	c, err := s.e.updateCluster(ctx, ref, upd)
	if err != nil {
		return engineapi.Cluster{}, coded(err)
	}
	return s.e.clusterOut(ctx, c)
}

func (e *engine) updateCluster(ctx context.Context, ref string, upd engineapi.ClusterUpdate) (store.Cluster, error) {
	c, err := e.findCluster(ctx, ref)
	if err != nil {
		return store.Cluster{}, err
	}
	if upd.Version != nil && *upd.Version != c.Version {
		return store.Cluster{}, &api.Error{Code: api.CodeVersionConflict, Field: "version",
			Message: fmt.Sprintf("cluster %s is at version %d, not %d: read it again", c.Name, c.Version, *upd.Version)}
	}
	old := c
	var changes []string
	if upd.Name != nil && *upd.Name != c.Name {
		if err := store.ValidName(*upd.Name); err != nil {
			return store.Cluster{}, invalidField("name", "%v", err)
		}
		changes = append(changes, fmt.Sprintf("name %s → %s", c.Name, *upd.Name))
		c.Name = *upd.Name
	}
	if upd.Description != nil {
		c.Description = *upd.Description
	}
	if upd.ShutdownTimeoutSeconds != nil {
		if err := checkShutdownTimeout(*upd.ShutdownTimeoutSeconds, false); err != nil {
			return store.Cluster{}, err
		}
		c.ShutdownTimeoutSeconds = *upd.ShutdownTimeoutSeconds
	}
	for _, l := range []struct {
		field string
		n     *int
		dst   *int
	}{{"migrationMaxOutgoing", upd.MigrationMaxOutgoing, &c.MigrationMaxOutgoing}, {"migrationMaxIncoming", upd.MigrationMaxIncoming, &c.MigrationMaxIncoming}} {
		if l.n == nil {
			continue
		}
		if err := checkMigrationsPerHost(l.field, *l.n, false); err != nil {
			return store.Cluster{}, err
		}
		if *l.dst != *l.n {
			changes = append(changes, fmt.Sprintf("%s %d → %d", l.field, *l.dst, *l.n))
			*l.dst = *l.n
		}
	}
	if upd.MigrationEncrypted != nil && *upd.MigrationEncrypted != c.MigrationEncrypted {
		changes = append(changes, fmt.Sprintf("migrationEncrypted %v → %v", c.MigrationEncrypted, *upd.MigrationEncrypted))
		c.MigrationEncrypted = *upd.MigrationEncrypted
	}
	if upd.MigrationPolicy != nil {
		if !slices.Contains(migrationPolicies, *upd.MigrationPolicy) {
			return store.Cluster{}, invalidField("migrationPolicy", "migration policy %q: want one of %s", *upd.MigrationPolicy, strings.Join(migrationPolicies, ", "))
		}
		c.MigrationPolicy = *upd.MigrationPolicy
	}
	if upd.Arch != nil {
		a, err := clusterArch(*upd.Arch)
		if err != nil {
			return store.Cluster{}, err
		}
		if a != c.Arch {
			changes = append(changes, fmt.Sprintf("architecture %s → %s", orNone(c.Arch.String()), a))
			c.Arch = a
			// Another architecture: its own CPU types and machines.
			if t, ok := cpucatalog.Lookup(c.CPUType); !ok || t.Arch != a {
				c.CPUType = ""
			}
			c.EmulatedMachineCandidates = defaultCandidates(a)
			c.EmulatedMachine = ""
		}
	}
	if upd.CPUType != nil && *upd.CPUType != c.CPUType {
		if *upd.CPUType == "" {
			return store.Cluster{}, invalidField("cpuType", "a cluster's CPU type cannot be unset; choose another one (polyvirt cpu-types)")
		}
		t, err := cpucatalog.Find(c.Arch, *upd.CPUType)
		if err != nil {
			return store.Cluster{}, invalidField("cpuType", "%v", err)
		}
		if t.Name != c.CPUType {
			if err := e.checkCPUTypeFits(ctx, c, t); err != nil {
				return store.Cluster{}, err
			}
			changes = append(changes, fmt.Sprintf("CPU type %s → %s", orNone(c.CPUType), t.Name))
			c.CPUType, c.Arch = t.Name, t.Arch
		}
	}
	if upd.EmulatedMachineCandidates != nil {
		if err := checkCandidates(*upd.EmulatedMachineCandidates); err != nil {
			return store.Cluster{}, err
		}
		c.EmulatedMachineCandidates = *upd.EmulatedMachineCandidates
		if c.EmulatedMachine != "" && !slices.ContainsFunc(c.EmulatedMachineCandidates, func(p string) bool {
			return archspec.MachineMatches(p, c.EmulatedMachine)
		}) {
			c.EmulatedMachine = ""
		}
		changes = append(changes, "emulated machine candidates "+strings.Join(c.EmulatedMachineCandidates, ", "))
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpdateCluster(ctx, &c); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "cluster.update", ObjectKind: "cluster", ObjectID: c.ID, ObjectName: c.Name,
			Message: fmt.Sprintf("Configuration of Cluster %s was updated by %s.", old.Name, userName(ctx)), Reason: strings.Join(changes, "; ")})
	})
	if err != nil {
		return store.Cluster{}, err
	}
	e.hostChanged()
	return c, nil
}

// checkCPUTypeFits refuses a CPU type that an Up host of the cluster does
// not support (the reference refuses to raise the CPU level over its
// active hosts).
func (e *engine) checkCPUTypeFits(ctx context.Context, c store.Cluster, t cpucatalog.Type) error {
	up, err := e.st.ListHosts(ctx, store.HostFilter{ClusterID: c.ID, Statuses: []store.HostStatus{store.HostUp}})
	if err != nil {
		return err
	}
	var bad []string
	for _, h := range up {
		if miss := cpucatalog.Missing(t, h.CPUFlags); len(miss) > 0 {
			bad = append(bad, fmt.Sprintf("%s (missing %s)", h.Name, strings.Join(miss, ", ")))
		}
	}
	if len(bad) > 0 {
		return &api.Error{Code: api.CodeClusterCPUIllegal, Field: "cpuType",
			Message: fmt.Sprintf("Cannot change the CPU type of cluster %s to %s: these Up hosts do not support it: %s. Switch them to Maintenance or move them first.",
				c.Name, t.Name, strings.Join(bad, "; "))}
	}
	return nil
}

// checkMigrationsPerHost checks a cluster's limit of migrations per host
// (0 on create: the default).
func checkMigrationsPerHost(field string, n int, create bool) error {
	if n == 0 && create {
		return nil
	}
	if n < 1 || n > store.MaxMigrationsPerHost {
		return invalidField(field, "%d migrations at once: want 1 to %d", n, store.MaxMigrationsPerHost)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Delete removes a cluster without hosts or VMs.
func (s *Clusters) Delete(ctx context.Context, ref string) error {
	return coded(s.e.deleteCluster(ctx, ref))
}

func (e *engine) deleteCluster(ctx context.Context, ref string) error {
	c, err := e.findCluster(ctx, ref)
	if err != nil {
		return err
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteCluster(ctx, c.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "cluster.remove", ObjectKind: "cluster", ObjectID: c.ID, ObjectName: c.Name,
			Message: fmt.Sprintf("Cluster %s was removed by %s.", c.Name, userName(ctx))})
	})
	if err != nil {
		return err
	}
	return nil
}
