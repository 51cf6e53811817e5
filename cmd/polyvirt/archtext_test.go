package main

import (
	"testing"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
)

// TestArchText: a host shows its own architecture and, where it differs,
// its cluster's; a cluster's architecture says which hosts' family it is,
// in the output itself (issue 13); a TCG host says why.
func TestArchText(t *testing.T) {
	for _, tc := range []struct {
		what, got, want string
	}{
		{"POWER host", hostArchText(arch.PPC64LE), "ppc64le (cluster architecture ppc64)"},
		{"x86_64 host", hostArchText(arch.X86_64), "x86_64"},
		{"POWER cluster", clusterArchText(arch.PPC64), "ppc64 (family of ppc64, ppc64le hosts)"},
		{"x86_64 cluster", clusterArchText(arch.X86_64), "x86_64"},
		{"cluster without hosts yet", clusterArchText(arch.Unknown), ""},
		{"TCG host", virtText(engineapi.Host{Virtualization: "tcg", VirtualizationReason: "/dev/kvm is absent"}), "tcg (/dev/kvm is absent)"},
		{"KVM host", virtText(engineapi.Host{Virtualization: "kvm"}), "kvm"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.what, tc.got, tc.want)
		}
	}
}
