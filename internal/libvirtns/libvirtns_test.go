package libvirtns

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/libvirttls"
	"polyvirt/internal/pki"

	"libvirt.org/go/libvirtxml"
)

// require fails (POLYVIRT_REQUIRE_LIBVIRT=1) or skips when the machine
// cannot run a daemon.
func require(t *testing.T) {
	t.Helper()
	if why := Require(); why != "" {
		if os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" {
			t.Fatalf("a libvirt daemon of polyvirt's own cannot run: %s", why)
		}
		t.Skipf("a libvirt daemon of polyvirt's own cannot run: %s", why)
	}
}

// freePort is a free TCP port of the loopback.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDaemon starts a daemon that listens for TLS, reaches it through its
// socket and over TLS with another host's libvirt certificate (not with a
// certificate without the libvirt unit), finds it again by its pid files,
// restarts libvirtd after a kill -9, and stops everything.
func TestDaemon(t *testing.T) {
	require(t)
	dir, err := os.MkdirTemp("", "pv-ns-")
	if err != nil {
		t.Fatal(err)
	}
	// Removed after the daemon's stop (a Cleanup registered before it): a
	// defer ran first when the test failed, and the stop, its pid files
	// gone, left the daemon running.
	t.Cleanup(func() { os.RemoveAll(dir) })
	ca, _ := pki.NewCA("test CA")
	srv, _ := ca.Issue("power8-b", []string{"127.0.0.1"}, pki.LibvirtPeer, time.Hour)
	cli, _ := ca.Issue("power8-a", []string{"127.0.0.1"}, pki.LibvirtPeer, time.Hour)
	files, err := libvirttls.Write(filepath.Join(dir, "pki-b"), ca.CertPEM, srv.CertPEM, srv.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	client, err := libvirttls.Write(filepath.Join(dir, "pki-a"), ca.CertPEM, cli.CertPEM, cli.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	ctx := context.Background()
	vncPorts := 10000 + 100*randN(107)
	cfg := Config{Dir: filepath.Join(dir, "d"), TLS: &files, Listen: libvirttls.Listen{Addr: "127.0.0.1", Port: port}, VNCPorts: vncPorts}
	d, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = d.Stop(context.Background(), true)
		}
	})
	uuid := func(uri string) string {
		t.Helper()
		c, err := libvirtconn.Dial(uri, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		defer c.Close()
		x, err := c.Capabilities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(x, "<uuid>")
		u, _, _ := strings.Cut(rest, "</uuid>")
		return u
	}
	own := uuid(d.URI)
	if own == "" || own == uuid(libvirtconn.DefaultURI) {
		t.Errorf("the daemon's host UUID %q is not its own", own)
	}
	if got := uuid(libvirtconn.TLSURI(libvirttls.Addr("127.0.0.1", port), client.PKIPath())); got != own {
		t.Errorf("over TLS: %q, want %q", got, own)
	}
	// Its guests' displays take ports of its own block, not the machine's
	// daemon's (from 5900 on).
	if got := displayPort(t, d.URI); got < vncPorts || got > vncPorts+99 {
		t.Errorf("a guest's VNC display got port %d, not one of the daemon's %d-%d", got, vncPorts, vncPorts+99)
	}
	// The engine's kind of certificate does not open libvirt's port.
	eng, _ := ca.Issue("polyvirt-engine", nil, pki.Client, time.Hour)
	engDir := filepath.Join(dir, "pki-engine")
	for name, data := range map[string][]byte{"cacert.pem": ca.CertPEM, "clientcert.pem": eng.CertPEM, "clientkey.pem": eng.KeyPEM} {
		if err := pki.WriteFile(filepath.Join(engDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := libvirtconn.Dial(libvirtconn.TLSURI(libvirttls.Addr("127.0.0.1", port), engDir), 10*time.Second); err == nil {
		c.Close()
		t.Error("a client certificate without the libvirt unit was let in")
	}
	// Found again by its pid files.
	pid := d.LibvirtdPid()
	again, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.LibvirtdPid() != pid || pid == 0 {
		t.Errorf("a second Start started another libvirtd: %d, was %d", again.LibvirtdPid(), pid)
	}
	// kill -9, and back.
	if err := d.KillLibvirtd(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if d.LibvirtdPid() != 0 {
		t.Fatal("libvirtd runs after kill -9")
	}
	if err := d.StartLibvirtd(ctx); err != nil {
		t.Fatal(err)
	}
	if uuid(d.URI) != own {
		t.Error("the restarted daemon has another UUID")
	}
	holder := d.pid(holderPid)
	if err := d.Stop(ctx, true); err != nil {
		t.Fatal(err)
	}
	stopped = true
	for _, p := range []int{d.pid(libvirtdPid), d.pid(virtlogdPid), holder} {
		if err := syscall.Kill(p, 0); err == nil && isProgram(p, "libvirtd") || isProgram(p, "virtlogd") || isProgram(p, "sleep") {
			t.Errorf("process %d runs after Stop", p)
		}
	}
}

// displayPort starts a paused x86_64 guest with an automatic VNC port on
// the daemon at uri, reads the port libvirt gave it, and destroys it.
func displayPort(t *testing.T, uri string) int {
	t.Helper()
	ctx := context.Background()
	c, err := libvirtconn.DialDomains(uri, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// With ACPI, as polyvirt's x86_64 domains: without it libvirt 9.0
	// asks QEMU for -no-acpi, an option QEMU 10 no longer has.
	dom := libvirtxml.Domain{Type: "qemu", Name: "pv-ns-display-" + strconv.Itoa(os.Getpid()),
		Memory:   &libvirtxml.DomainMemory{Value: 64, Unit: "MiB"},
		OS:       &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Type: "hvm"}},
		Features: &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		Devices: &libvirtxml.DomainDeviceList{Graphics: []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{
			AutoPort: "yes", Listen: "127.0.0.1"}}}}}
	x, err := dom.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.CreateDomain(ctx, x)
	if err != nil {
		t.Fatalf("starting a guest on the daemon: %v", err)
	}
	defer func() {
		if err := c.DestroyDomain(ctx, d); err != nil {
			t.Errorf("destroying %s: %v", d.Name, err)
		}
	}()
	live, err := c.DomainXML(ctx, d, false)
	if err != nil {
		t.Fatal(err)
	}
	var got libvirtxml.Domain
	if err := got.Unmarshal(live); err != nil {
		t.Fatal(err)
	}
	if got.Devices == nil || len(got.Devices.Graphics) != 1 || got.Devices.Graphics[0].VNC == nil {
		t.Fatalf("the guest's live XML has no VNC display: %s", live)
	}
	return got.Devices.Graphics[0].VNC.Port
}

// Incoming migration ports are above the ephemeral range, where no
// outgoing connection takes them, and the whole block fits under 65536.
func TestMigrationBlockAboveEphemeralRange(t *testing.T) {
	dir := t.TempDir()
	n := 0
	write := func(s string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("range%d", n))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		file     string
		min, max int
	}{
		{write("32768\t60999\n"), 61000, 65535},
		{write("1024 50000\n"), 50001, 65535},
		{write("32768 65000\n"), 65001, 65535}, // room for 8 blocks above
		{write("32768 65200\n"), 61000, 65535}, // less: 61000 on, as with no file
		{filepath.Join(dir, "none"), 61000, 65535},
		{write("garbage\n"), 61000, 65535},
	} {
		for range 200 {
			first := migrationBlock(tc.file)
			if first < tc.min || first+63 > tc.max {
				t.Fatalf("%s: block %d-%d, want within %d-%d", tc.file, first, first+63, tc.min, tc.max)
			}
		}
	}
}
