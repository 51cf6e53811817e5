package agent

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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

// TestFirstCollectionWaitsForTheMachines: the agent's first report (no
// previous one to keep) is not taken from a libvirt that answers without
// the host's guests or emulated machines (a busy daemon whose probe of
// QEMU timed out): it is collected again, with back-off, until libvirt
// lists them, for a bounded time; a libvirt that never lists any is
// reported as it is once the bound passed, and one that does not answer is
// reported at once.
func TestFirstCollectionWaitsForTheMachines(t *testing.T) {
	withMachines := hostreport.Virt{Libvirt: true, Guests: []hostreport.Guest{{Arch: "ppc64le", Machines: []string{"pseries-7.2"}}},
		EmulatedMachines: []string{"pseries-7.2"}}
	probing := hostreport.Virt{Libvirt: true}
	down := hostreport.Virt{LibvirtError: "connection refused"}
	cases := []struct {
		name string
		// answers are libvirt's answers, one per collection (the last
		// repeats).
		answers []hostreport.Virt
		bound   time.Duration
		// want is the report's answer, collections how many were made
		// (at least, when retried until the bound: how many fit in it
		// depends on the machine's load).
		want        hostreport.Virt
		collections int
		atLeast     bool
	}{
		{"machines at once", []hostreport.Virt{withMachines}, time.Minute, withMachines, 1, false},
		{"machines at the third collection", []hostreport.Virt{probing, probing, withMachines}, time.Minute, withMachines, 3, false},
		{"guests without machines, then machines", []hostreport.Virt{{Libvirt: true, Guests: []hostreport.Guest{{Arch: "ppc64le"}}}, withMachines}, time.Minute, withMachines, 2, false},
		{"never any machine", []hostreport.Virt{probing}, 1200 * time.Millisecond, probing, 2, true},
		{"libvirt down", []hostreport.Virt{down}, time.Minute, down, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newTestAgent(t, newFakeConn())
			a.capsRes = nil // the agent's first collection
			a.firstCollectFor = c.bound
			var calls atomic.Int32
			a.collectCaps = func(context.Context, caps.Options) (*caps.Result, error) {
				n := int(calls.Add(1))
				v := c.answers[min(n, len(c.answers))-1]
				return &caps.Result{Report: &hostreport.Report{Virt: v}}, nil
			}
			r, err := a.Capabilities(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, r.Virt); diff != "" {
				t.Errorf("the first report's libvirt (-want +got):\n%s", diff)
			}
			if got := int(calls.Load()); got != c.collections && !(c.atLeast && got > c.collections) {
				t.Errorf("%d collections, want %d (at least: %v)", got, c.collections, c.atLeast)
			}
		})
	}
}

// TestFirstCollectionEndsWithItsContext: an agent stopped while its first
// collection waits for libvirt's machines returns what libvirt said.
func TestFirstCollectionEndsWithItsContext(t *testing.T) {
	a := newTestAgent(t, newFakeConn())
	a.capsRes = nil
	a.firstCollectFor = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	a.collectCaps = func(context.Context, caps.Options) (*caps.Result, error) {
		if calls.Add(1) == 2 {
			cancel()
		}
		return &caps.Result{Report: &hostreport.Report{Virt: hostreport.Virt{Libvirt: true}}}, nil
	}
	r, err := a.Capabilities(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !libvirtStillProbing(r) {
		t.Errorf("report %+v, want libvirt's answer without machines", r.Virt)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("%d collections, want 2", got)
	}
}

// TestCollectionForAGoneReaderIsNotKept: a collection whose reader gave up
// meanwhile (an engine's request cancelled: libvirt's calls failed with its
// context) is not kept — the reader gets the previous report, and the next
// reader collects again and keeps what it gets.
func TestCollectionForAGoneReaderIsNotKept(t *testing.T) {
	withMachines := hostreport.Virt{Libvirt: true, Guests: []hostreport.Guest{{Arch: "ppc64le", Machines: []string{"pseries-7.2"}}},
		EmulatedMachines: []string{"pseries-7.2"}}
	cancelledLibvirt := hostreport.Virt{LibvirtError: "libvirt is not available: context canceled"}
	again := hostreport.Virt{Libvirt: true, Guests: []hostreport.Guest{{Arch: "ppc64le", Machines: []string{"pseries-8.0"}}},
		EmulatedMachines: []string{"pseries-8.0"}}
	a := newTestAgent(t, newFakeConn())
	a.capsRes, a.capsSeen = &caps.Result{Report: &hostreport.Report{Virt: withMachines}}, "before the host changed"
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	a.collectCaps = func(context.Context, caps.Options) (*caps.Result, error) {
		if calls.Add(1) == 1 {
			cancel()
			return &caps.Result{Report: &hostreport.Report{Virt: cancelledLibvirt}}, nil
		}
		return &caps.Result{Report: &hostreport.Report{Virt: again}}, nil
	}
	r, err := a.Capabilities(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(withMachines, r.Virt); diff != "" {
		t.Errorf("the gone reader's report (-want the previous +got):\n%s", diff)
	}
	if a.capsSeen != "before the host changed" {
		t.Errorf("the collection for a gone reader was kept (seen %q)", a.capsSeen)
	}
	r, err = a.Capabilities(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(again, r.Virt); diff != "" {
		t.Errorf("the next reader's report (-want +got):\n%s", diff)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("%d collections, want 2", got)
	}
	if r, _ := a.Capabilities(context.Background(), false); calls.Load() != 2 || !cmp.Equal(again, r.Virt) {
		t.Errorf("the next reader's collection was not kept (%d collections)", calls.Load())
	}
}
