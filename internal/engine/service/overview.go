package service

import (
	"context"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// Overview is the web UI's overview in one small answer: each cluster with
// its hosts counted by status and its VMs by state, the fleet's totals, and
// the hosts that are neither Up nor in Maintenance with their reasons. A
// cluster of at most engineapi.OverviewHostLines hosts lists them too; a
// bigger one's are read when the UI opens it (GET /hosts?cluster=). The
// hosts come from the list kept in memory (as GET /hosts).
func (s *Clusters) Overview(ctx context.Context) (engineapi.Overview, error) {
	e := s.e
	cs, err := e.st.ListClusters(ctx)
	if err != nil {
		return engineapi.Overview{}, coded(err)
	}
	snap, err := e.hosts.get(ctx, e)
	if err != nil {
		return engineapi.Overview{}, coded(err)
	}
	vms, err := e.st.ListVMs(ctx, store.VMFilter{})
	if err != nil {
		return engineapi.Overview{}, coded(err)
	}
	out := engineapi.Overview{Clusters: make([]engineapi.OverviewCluster, 0, len(cs)), Attention: []engineapi.HostLine{},
		Hosts: len(snap.views), VMs: len(vms)}
	byID := make(map[string]int, len(cs))
	for i, c := range cs {
		byID[c.ID] = i
		n := snap.counts[c.ID]
		if n == nil {
			n = map[string]int{}
		}
		out.Clusters = append(out.Clusters, engineapi.OverviewCluster{ID: c.ID, Name: c.Name, Arch: string(c.Arch), CPUType: c.CPUType,
			EmulatedMachine: c.EmulatedMachine, Hosts: n, VMs: map[string]int{}})
	}
	for _, h := range snap.views {
		line := engineapi.HostLine{Name: h.Name, Cluster: h.Cluster, Status: h.Status, StatusCode: h.StatusCode, StatusMessage: h.StatusMessage,
			Arch: string(h.Arch), CPUType: h.CPUType}
		switch store.HostStatus(h.Status) {
		case store.HostUp:
			out.HostsUp++
		case store.HostMaintenance:
		default:
			out.AttentionTotal++
			if len(out.Attention) < engineapi.OverviewAttentionMax {
				out.Attention = append(out.Attention, line)
			}
		}
		if i, ok := byID[h.ClusterID]; ok && len(snap.counts[h.ClusterID]) > 0 && total(snap.counts[h.ClusterID]) <= engineapi.OverviewHostLines {
			out.Clusters[i].HostLines = append(out.Clusters[i].HostLines, line)
		}
	}
	for _, v := range vms {
		if v.State == store.VMUp {
			out.VMsRunning++
		}
		if i, ok := byID[v.ClusterID]; ok {
			out.Clusters[i].VMs[string(v.State)]++
		}
	}
	return out, nil
}

// total sums counts.
func total(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
