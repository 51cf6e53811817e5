package archspec

import (
	"slices"

	"polyvirt/internal/arch"
)

// The questions of clusters: a cluster has one cluster architecture (every
// POWER host, ppc64le or ppc64, is in a ppc64 cluster), and runs the guest
// architectures its hosts run natively.

// ClusterArch is the cluster architecture of a host or guest architecture
// a (ppc64le → ppc64). It fails for an architecture without rules.
func ClusterArch(a arch.Arch) (arch.Arch, error) {
	s, err := For(a)
	if err != nil {
		return arch.Unknown, err
	}
	return s.ClusterArch, nil
}

// ClusterHostArches are the host architectures whose cluster
// architecture is ca, sorted (ppc64 → ppc64, ppc64le): what a cluster's
// architecture means for its hosts, which report their own.
func ClusterHostArches(ca arch.Arch) []arch.Arch {
	var out []arch.Arch
	for a, s := range specs {
		if s.ClusterArch == ca {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// ClusterGuestArches are the guest architectures the hosts of a cluster of
// architecture ca run natively, sorted: every architecture whose cluster
// architecture is ca contributes its guests (a ppc64 cluster runs ppc64le
// and ppc64 VMs).
func ClusterGuestArches(ca arch.Arch) []arch.Arch {
	var out []arch.Arch
	for _, s := range specs {
		if s.ClusterArch != ca {
			continue
		}
		for _, g := range s.GuestArches {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	slices.Sort(out)
	return out
}

// ClusterRunsNatively reports whether the hosts of a cluster of
// architecture ca run VMs of architecture guest natively: whether such a
// VM may be in the cluster.
func ClusterRunsNatively(ca, guest arch.Arch) bool {
	return slices.Contains(ClusterGuestArches(ca), guest)
}

// ClusterVendor is a vendor group of a cluster architecture.
type ClusterVendor struct {
	Vendor
	// ClusterArch is the cluster architecture of the group's hosts.
	ClusterArch arch.Arch
}

// Vendors lists the vendor groups of every cluster architecture, by
// cluster architecture (sorted) and then in the order its rules list them
// (Intel before AMD).
func Vendors() []ClusterVendor {
	var out []ClusterVendor
	for _, a := range Arches() {
		s := specs[a]
		if s.ClusterArch != a {
			continue
		}
		for _, v := range s.Host.Vendors {
			out = append(out, ClusterVendor{Vendor: v, ClusterArch: a})
		}
	}
	return out
}
