package agent

import (
	"testing"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/caps"
)

// TestReportOfAProbingLibvirtIsNotKept: a report collected while libvirtd
// answered without any guest or machine (a daemon that just started, still probing
// QEMU) is collected again by the next reader; one with guests, or one
// whose libvirt did not answer at all (its error says why), is kept.
func TestReportOfAProbingLibvirtIsNotKept(t *testing.T) {
	cases := []struct {
		name string
		virt hostreport.Virt
		kept bool
	}{
		{"libvirt answered, no guest yet", hostreport.Virt{Libvirt: true}, false},
		{"libvirt answered, guests without the host's machines", hostreport.Virt{Libvirt: true, Guests: []hostreport.Guest{{Arch: "ppc64le"}}}, false},
		{"libvirt answered with guests", hostreport.Virt{Libvirt: true, Guests: []hostreport.Guest{{Arch: "ppc64le", Machines: []string{"pseries-7.2"}}}, EmulatedMachines: []string{"pseries-7.2"}}, true},
		{"libvirt did not answer", hostreport.Virt{LibvirtError: "connection refused"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &Agent{}
			a.capsRes, a.capsSeen = &caps.Result{Report: &hostreport.Report{Virt: c.virt}}, "fp"
			if got := a.cachedCaps("fp", false) != nil; got != c.kept {
				t.Errorf("served from the cache: %v, want %v", got, c.kept)
			}
		})
	}
}
