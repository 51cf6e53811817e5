package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/api"
)

// TestProbe: the probe guest of a fake POWER8 host is a transient pseries
// domain with SLOF and nothing to boot (no disk, no kernel), 256 MiB and
// one vCPU; it is seen running, then destroyed (nothing of it is left).
// A guest libvirt does not start, or one that does not run, fails with
// PROBE_GUEST_FAILED and libvirt's reason; the domain is gone either way.
func TestProbe(t *testing.T) {
	defer func(d time.Duration) { ProbeRun = d }(ProbeRun)
	ProbeRun = 20 * time.Millisecond
	f := newFakeConn()
	a := newTestAgent(t, f)
	var created string
	res, err := a.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Arch != "ppc64le" || !strings.HasPrefix(res.Machine, "pseries") || res.Firmware != "slof" || res.MemoryMiB != 256 ||
		!strings.Contains(res.Domain, ProbeName) || res.RanMs < ProbeRun.Milliseconds() {
		t.Errorf("probe %+v", res)
	}
	f.mu.Lock()
	left := len(f.doms)
	f.mu.Unlock()
	if left != 0 {
		t.Errorf("%d domains left after the probe", left)
	}

	// What it started: a pseries guest, no disk, no kernel, TCG on this
	// x86_64 machine (fake KVM).
	f.fail["destroy"] = errors.New("keep it")
	if _, err := a.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	delete(f.fail, "destroy")
	f.mu.Lock()
	for _, x := range f.doms {
		created = x.xml
	}
	f.doms = map[string]*fakeDomain{}
	f.mu.Unlock()
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(created); err != nil {
		t.Fatal(err)
	}
	if dom.Type != "qemu" || dom.OS == nil || dom.OS.Type == nil || !strings.HasPrefix(dom.OS.Type.Machine, "pseries") || dom.OS.Type.Arch != "ppc64le" ||
		dom.OS.Kernel != "" || dom.Devices == nil || len(dom.Devices.Disks) != 0 || len(dom.Devices.Interfaces) != 0 {
		t.Errorf("the probe's domain:\n%s", created)
	}

	for _, tt := range []struct{ fail, want string }{
		{"create", "libvirt did not start the probe guest"},
		{"create-crashes", "not running"},
	} {
		f.fail[tt.fail] = errors.New("internal error: qemu unexpectedly closed the monitor")
		_, err := a.Probe(context.Background())
		delete(f.fail, tt.fail)
		ae := asAPIError(err)
		if ae == nil || ae.Code != api.CodeProbeGuestFailed || !strings.Contains(ae.Message, tt.want) {
			t.Errorf("%s: %v; want %s saying %q", tt.fail, err, api.CodeProbeGuestFailed, tt.want)
		}
		f.mu.Lock()
		left := len(f.doms)
		f.mu.Unlock()
		if left != 0 {
			t.Errorf("%s: %d domains left", tt.fail, left)
		}
	}
}
