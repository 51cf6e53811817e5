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

// TestLostMachinesKeepThePreviousReport: a collection after a change of
// the host whose libvirt answers without guests or machines (probing QEMU
// again, or too busy to answer the probe) does not replace a report that
// had them; a report that never had them, or libvirt not answering at all,
// does not count.
func TestLostMachinesKeepThePreviousReport(t *testing.T) {
	withMachines := hostreport.Virt{Libvirt: true, Guests: []hostreport.Guest{{Arch: "x86_64", Machines: []string{"pc-q35-7.2"}}},
		EmulatedMachines: []string{"pc-q35-7.2"}}
	probing := hostreport.Virt{Libvirt: true}
	noGuestMachines := hostreport.Virt{Libvirt: true, Guests: []hostreport.Guest{{Arch: "x86_64"}}}
	down := hostreport.Virt{LibvirtError: "connection refused"}
	result := func(v hostreport.Virt) *caps.Result { return &caps.Result{Report: &hostreport.Report{Virt: v}} }
	cases := []struct {
		name      string
		prev, now *caps.Result
		want      bool
	}{
		{"machines, then none", result(withMachines), result(probing), true},
		{"machines, then guests without machines", result(withMachines), result(noGuestMachines), true},
		{"machines, then machines", result(withMachines), result(withMachines), false},
		{"the first collection", nil, result(probing), false},
		{"never had machines", result(probing), result(probing), false},
		{"libvirt was down, now probing", result(down), result(probing), false},
		{"machines, then libvirt down", result(withMachines), result(down), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := lostMachines(c.prev, c.now); got != c.want {
				t.Errorf("lostMachines = %v, want %v", got, c.want)
			}
		})
	}
}
