package virtcaps

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/arch"
	"polyvirt/internal/libvirtconn"
)

// liveURI is the daemon the live tests ask: POLYVIRT_LIBVIRT_URI, else
// qemu:///system.
func liveURI() string {
	if u := os.Getenv("POLYVIRT_LIBVIRT_URI"); u != "" {
		return u
	}
	return libvirtconn.DefaultURI
}

// dialLive connects to the live daemon. When it is unreachable the test
// fails if POLYVIRT_REQUIRE_LIBVIRT=1 (CI starts libvirtd before the tests)
// and is skipped otherwise.
func dialLive(tb testing.TB) libvirtconn.Conn {
	tb.Helper()
	conn, err := libvirtconn.Dial(liveURI(), 5*time.Second)
	if err != nil {
		if os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" {
			tb.Fatalf("POLYVIRT_REQUIRE_LIBVIRT=1 but libvirt is unreachable: %v", err)
		}
		tb.Skipf("libvirt unreachable (%v); set POLYVIRT_REQUIRE_LIBVIRT=1 to make this a failure", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestLiveGather(t *testing.T) {
	conn := dialLive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	live, err := Gather(ctx, conn, GatherOptions{})
	if err != nil {
		t.Fatalf("Gather(%s): %v", liveURI(), err)
	}
	t.Logf("Gather took %v: libvirt %s, QEMU %s, guest arches %v", time.Since(start), live.LibvirtVersion, live.QEMUVersion, live.Capabilities.GuestArches())
	if live.LibvirtVersion == "" || live.QEMUVersion == "" {
		t.Errorf("versions missing: %q %q (%s)", live.LibvirtVersion, live.QEMUVersion, live.VersionError)
	}
	c := live.Capabilities
	for _, a := range []arch.Arch{arch.PPC64, arch.PPC64LE} {
		names := c.MachineNames(a, "kvm")
		if !slices.Contains(names, "pseries") {
			t.Errorf("guest %s: no pseries machine in %v", a, names)
		}
	}
	if got := c.MachineNames(arch.X86_64, "kvm"); !slices.Contains(got, "q35") || !slices.Contains(got, "pc") {
		t.Errorf("guest x86_64: machines %v lack q35/pc", got)
	}
	if len(live.DomainCaps) != len(c.GuestArches()) {
		t.Errorf("%d domcapabilities for %d guest arches", len(live.DomainCaps), len(c.GuestArches()))
	}
	for _, e := range live.DomainCaps {
		if e.Err != "" {
			t.Logf("%s: %s", e.Arch, e.Err)
		}
	}

	ppc := live.DomainCapsFor(arch.PPC64)
	if ppc == nil {
		t.Fatal("no ppc64 domcapabilities")
	}
	if ppc.Arch != arch.PPC64 || ppc.Emulator != c.Emulator(arch.PPC64, ppc.Domain) {
		t.Errorf("ppc64 domcaps for arch %s, emulator %s", ppc.Arch, ppc.Emulator)
	}
	if !c.HasDomainType(arch.PPC64, "kvm") && ppc.Domain != "qemu" {
		t.Errorf("ppc64 without kvm domain asked as %q", ppc.Domain)
	}
	offered := append(ppc.CustomModelNames(), ppc.HostModelName())
	for _, m := range []string{"POWER8", "POWER9"} {
		if !slices.Contains(offered, m) {
			t.Errorf("ppc64 domcaps do not offer %s (custom %v, host-model %q)", m, ppc.CustomModelNames(), ppc.HostModelName())
		}
	}
	if !strings.HasPrefix(ppc.Machine, "pseries") {
		t.Errorf("ppc64 default machine %q", ppc.Machine)
	}

	x86 := live.DomainCapsFor(arch.X86_64)
	if x86 == nil {
		t.Fatal("no x86_64 domcapabilities")
	}
	if m := x86.Machine; !(slices.Contains(c.MachineNames(arch.X86_64, x86.Domain), m) && (strings.HasPrefix(m, "pc-q35-") || strings.HasPrefix(m, "pc-i440fx-"))) {
		t.Errorf("x86_64 domcaps machine %q is not a listed q35/pc machine", m)
	}
	if len(x86.DiskBuses) == 0 || len(x86.Video) == 0 || len(x86.Graphics) == 0 {
		t.Errorf("x86_64 enums empty: disk %v video %v graphics %v", x86.DiskBuses, x86.Video, x86.Graphics)
	}
}
