package virtcaps

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
	"polyvirt/internal/libvirtconn"
)

// fakeConn answers from fixed documents and records the domcapabilities
// calls and how many ran at once.
type fakeConn struct {
	caps     string
	capsErr  error
	domcaps  map[string]string // by arch
	delay    time.Duration
	block    chan struct{} // when set, domcapabilities waits for it or ctx
	mu       sync.Mutex
	calls    []string
	inFlight atomic.Int32
	maxSeen  atomic.Int32
}

func (f *fakeConn) Capabilities(ctx context.Context) (string, error) {
	return f.caps, f.capsErr
}

func (f *fakeConn) DomainCapabilities(ctx context.Context, emulator, a, machine, virtType string) (string, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("%s %s %q %s", a, emulator, machine, virtType))
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	time.Sleep(f.delay)
	doc, ok := f.domcaps[a]
	if !ok {
		return "", errors.New("virConnectGetDomainCapabilities: unsupported configuration: KVM is not supported on this host")
	}
	return doc, nil
}

func (f *fakeConn) Versions(ctx context.Context) (string, string, error) {
	return "9.0.0", "7.2.22", nil
}

func (f *fakeConn) Close() error { return nil }

var _ libvirtconn.Conn = (*fakeConn)(nil)

func TestGatherFake(t *testing.T) {
	f := &fakeConn{
		caps: rhelCaps,
		domcaps: map[string]string{
			"ppc64le": strings.Replace(smallDomCaps, "<arch>ppc64</arch>", "<arch>ppc64le</arch>", 1),
		},
	}
	live, err := Gather(context.Background(), f, GatherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if live.LibvirtVersion != "9.0.0" || live.QEMUVersion != "7.2.22" || live.VersionError != "" {
		t.Errorf("versions: %q %q %q", live.LibvirtVersion, live.QEMUVersion, live.VersionError)
	}
	if live.CapabilitiesXML != rhelCaps || live.Capabilities == nil {
		t.Error("capabilities not kept")
	}
	type entry struct {
		Arch                 arch.Arch
		Emulator, DomainType string
		HostModel            string
		Err                  string
	}
	var got []entry
	for _, e := range live.DomainCaps {
		got = append(got, entry{e.Arch, e.Emulator, e.DomainType, e.Caps.HostModelName(), e.Err})
	}
	want := []entry{
		{arch.PPC64LE, "/usr/libexec/qemu-kvm", "kvm", "POWER9", ""},
		{arch.X86_64, "/usr/bin/qemu-kvm", "kvm", "", "domcapabilities for x86_64 (kvm, /usr/bin/qemu-kvm): virConnectGetDomainCapabilities: unsupported configuration: KVM is not supported on this host"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if live.DomainCapsFor(arch.PPC64LE) == nil || live.DomainCapsFor(arch.X86_64) != nil {
		t.Error("DomainCapsFor")
	}
	if live.DomainCaps[1].XML != "" || live.DomainCaps[1].Caps != nil {
		t.Error("a failed entry keeps no document")
	}
}

func TestGatherConcurrencyBound(t *testing.T) {
	// Ten guest arches, each domcapabilities taking 20 ms.
	var b strings.Builder
	b.WriteString("<capabilities>")
	doms := map[string]string{}
	for i := 0; i < 10; i++ {
		a := fmt.Sprintf("arch%d", i)
		fmt.Fprintf(&b, "<guest><os_type>hvm</os_type><arch name='%s'><emulator>/e/%s</emulator><domain type='qemu'/></arch></guest>", a, a)
		doms[a] = fmt.Sprintf("<domainCapabilities><arch>%s</arch></domainCapabilities>", a)
	}
	b.WriteString("</capabilities>")
	for _, n := range []int{1, 3, 0} {
		f := &fakeConn{caps: b.String(), domcaps: doms, delay: 20 * time.Millisecond}
		start := time.Now()
		live, err := Gather(context.Background(), f, GatherOptions{Concurrency: n})
		if err != nil {
			t.Fatal(err)
		}
		limit := int32(n)
		if n == 0 {
			limit = DefaultConcurrency
		}
		if got := f.maxSeen.Load(); got > limit || (got < limit && limit > 1) {
			t.Errorf("concurrency %d: %d calls at once", n, got)
		}
		if len(live.DomainCaps) != 10 {
			t.Fatalf("%d entries", len(live.DomainCaps))
		}
		for i, e := range live.DomainCaps {
			if want := arch.Arch(fmt.Sprintf("arch%d", i)); e.Arch != want || e.Caps == nil || e.Caps.Arch != want || e.DomainType != "qemu" {
				t.Errorf("entry %d: %+v", i, e)
			}
		}
		t.Logf("concurrency %d: %v", n, time.Since(start))
	}
}

func TestGatherOptions(t *testing.T) {
	f := &fakeConn{caps: rhelCaps, domcaps: map[string]string{"x86_64": "<domainCapabilities><arch>x86_64</arch></domainCapabilities>"}}
	live, err := Gather(context.Background(), f, GatherOptions{Arches: []arch.Arch{arch.X86_64, arch.S390X}})
	if err != nil {
		t.Fatal(err)
	}
	if len(live.DomainCaps) != 2 || live.DomainCaps[0].Caps == nil || !strings.Contains(live.DomainCaps[1].Err, `no guest of architecture "s390x"`) {
		t.Errorf("entries: %+v", live.DomainCaps)
	}
	if len(f.calls) != 1 || f.calls[0] != `x86_64 /usr/bin/qemu-kvm "" kvm` {
		t.Errorf("calls: %q", f.calls)
	}
	// A host whose KVM is unusable asks for TCG where the arch offers it.
	f = &fakeConn{caps: debianTCGCapsWithKVM, domcaps: map[string]string{"x86_64": "<domainCapabilities><arch>x86_64</arch></domainCapabilities>", "ppc64": "<domainCapabilities><arch>ppc64</arch></domainCapabilities>"}}
	if _, err := Gather(context.Background(), f, GatherOptions{Arches: []arch.Arch{arch.X86_64, arch.PPC64}, DomainType: "qemu", Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(f.calls)
	if diff := cmp.Diff([]string{`ppc64 /usr/bin/qemu-system-ppc64 "" qemu`, `x86_64 /usr/bin/qemu-system-x86_64 "" qemu`}, f.calls); diff != "" {
		t.Errorf("DomainType qemu calls (-want +got):\n%s", diff)
	}
	live, err = Gather(context.Background(), &fakeConn{caps: rhelCaps}, GatherOptions{SkipDomainCaps: true})
	if err != nil || live.DomainCaps != nil {
		t.Errorf("SkipDomainCaps: %+v, %v", live, err)
	}
}

// debianTCGCapsWithKVM is a host offering x86_64 under kvm and qemu and
// ppc64 under qemu only.
const debianTCGCapsWithKVM = `<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
<guest><os_type>hvm</os_type><arch name='x86_64'><emulator>/usr/bin/qemu-system-x86_64</emulator><domain type='qemu'/><domain type='kvm'/></arch></guest>
<guest><os_type>hvm</os_type><arch name='ppc64'><emulator>/usr/bin/qemu-system-ppc64</emulator><domain type='qemu'/></arch></guest>
</capabilities>`

func TestGatherErrors(t *testing.T) {
	down := fmt.Errorf("%w at qemu:///system: dial unix /var/run/libvirt/libvirt-sock: connect: no such file or directory", libvirtconn.ErrUnavailable)
	_, err := Gather(context.Background(), &fakeConn{capsErr: down}, GatherOptions{})
	if !errors.Is(err, libvirtconn.ErrUnavailable) || !strings.HasPrefix(err.Error(), "libvirt capabilities: ") {
		t.Errorf("capabilities failure: %v", err)
	}
	_, err = Gather(context.Background(), &fakeConn{caps: "<capabilities>"}, GatherOptions{})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Errorf("broken capabilities: %v", err)
	}
	if _, err := Gather(context.Background(), nil, GatherOptions{}); err == nil {
		t.Error("nil conn accepted")
	}

	// A context that ends while calls hang ends Gather with its error.
	f := &fakeConn{caps: rhelCaps, block: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Gather(ctx, f, GatherOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung calls: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Gather took %v after its deadline", d)
	}
}

func TestFromDocumentsInline(t *testing.T) {
	live, err := FromDocuments(nil, nil)
	if err != nil || live.Capabilities != nil || live.DomainCaps != nil {
		t.Errorf("no documents: %+v, %v", live, err)
	}
	_, err = FromDocuments([]byte("<capabilities><host>"), nil)
	var de *DocumentError
	if !errors.As(err, &de) || de.Index != -1 || !strings.HasPrefix(err.Error(), "libvirt capabilities XML") {
		t.Errorf("broken capabilities: %v", err)
	}
	_, err = FromDocuments([]byte{}, nil)
	if err == nil || !strings.Contains(err.Error(), "document is empty") {
		t.Errorf("empty (not nil) capabilities: %v", err)
	}
}
