package main

import (
	"strings"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
)

// clusterArchText prints a cluster's architecture with the host
// architectures it stands for, where they differ: a cluster's architecture
// is the family's (every POWER host, ppc64le or ppc64, is in a ppc64
// cluster) while a host shows its own.
func clusterArchText(ca arch.Arch) string {
	if ca == arch.Unknown {
		return ""
	}
	hosts := archspec.ClusterHostArches(ca)
	if len(hosts) == 1 && hosts[0] == ca || len(hosts) == 0 {
		return ca.String()
	}
	names := make([]string, len(hosts))
	for i, a := range hosts {
		names[i] = a.String()
	}
	return ca.String() + " (family of " + strings.Join(names, ", ") + " hosts)"
}

// hostArchText prints a host's architecture and, where it differs, the
// architecture of the clusters it belongs in.
func hostArchText(a arch.Arch) string {
	ca, err := archspec.ClusterArch(a)
	if err != nil || ca == a {
		return a.String()
	}
	return a.String() + " (cluster architecture " + ca.String() + ")"
}

// virtText prints how a host runs its guests: "kvm", or "tcg (why)".
func virtText(h engineapi.Host) string {
	if h.Virtualization == "tcg" && h.VirtualizationReason != "" {
		return "tcg (" + h.VirtualizationReason + ")"
	}
	return h.Virtualization
}
