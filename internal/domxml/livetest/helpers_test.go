package livetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"polyvirt/internal/arch"
	"polyvirt/internal/domxml"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/vmspec"
)

func requireLibvirt() bool { return os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" }

// unavailable skips the test, or fails it when libvirt is required.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if requireLibvirt() {
		t.Fatalf("%s (POLYVIRT_REQUIRE_LIBVIRT=1)", msg)
	}
	t.Skip(msg + " (set POLYVIRT_REQUIRE_LIBVIRT=1 to make this a failure)")
}

func uri() string {
	if u := os.Getenv("POLYVIRT_LIBVIRT_URI"); u != "" {
		return u
	}
	return libvirtconn.DefaultURI
}

// dial connects to libvirt, one connection per test.
func dial(t *testing.T) libvirtconn.DomainConn {
	t.Helper()
	conn, err := libvirtconn.DialDomains(uri(), 5*time.Second)
	if err != nil {
		unavailable(t, "libvirt is unreachable: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// needFile skips (or fails) when a file the test needs is absent.
func needFile(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		unavailable(t, "%s is absent (Debian package %s)", path, pkg)
	}
}

// uniqueName is a domain name no other run uses.
func uniqueName(what string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "polyvirt-test-" + what + "-" + hex.EncodeToString(b)
}

func hostArch() arch.Arch { return arch.FromGOARCH(runtime.GOARCH) }

// render validates a definition and renders it for TCG on this host.
func render(vm *vmspec.VM) (string, error) {
	v, err := vmspec.Validate(vm, vmspec.Options{})
	if err != nil {
		return "", err
	}
	return domxml.Render(v, domxml.Options{FakeKVM: true, HostArch: hostArch()})
}

// deploy is the path a VM takes to libvirt: validation and rendering
// first, libvirt only for a valid definition.
func deploy(ctx context.Context, conn libvirtconn.Domains, vm *vmspec.VM) (libvirtconn.Domain, error) {
	doc, err := render(vm)
	if err != nil {
		return libvirtconn.Domain{}, err
	}
	d, err := conn.DefineDomain(ctx, doc)
	if err != nil {
		return libvirtconn.Domain{}, fmt.Errorf("define: %w", err)
	}
	if err := conn.StartDomain(ctx, d); err != nil {
		return d, fmt.Errorf("start: %w", err)
	}
	return d, nil
}

// track makes sure the named domain is gone when the test ends: destroyed
// if running, undefined with everything libvirt keeps for it, and then
// really absent.
func track(t *testing.T, conn libvirtconn.DomainConn, name string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.LookupDomain(ctx, name); !errors.Is(err, libvirtconn.ErrNoDomain) {
			t.Errorf("domain %s left behind (lookup: %v)", name, err)
		}
	})
	t.Cleanup(func() { removeDomain(t, conn, name) })
}

func removeDomain(t *testing.T, conn libvirtconn.DomainConn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := conn.LookupDomain(ctx, name)
	if errors.Is(err, libvirtconn.ErrNoDomain) {
		return
	}
	if err != nil {
		t.Errorf("cleanup: lookup %s: %v", name, err)
		return
	}
	if st, err := conn.DomainState(ctx, d); err == nil && st != libvirtconn.StateShutoff {
		if err := conn.DestroyDomain(ctx, d); err != nil {
			t.Errorf("cleanup: destroy %s: %v", name, err)
		}
	}
	if err := conn.UndefineDomain(ctx, d, libvirtconn.UndefineAll); err != nil {
		t.Errorf("cleanup: undefine %s: %v", name, err)
	}
}

// waitFor polls the file until it holds want, or the time is up.
func waitFor(t *testing.T, path, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if data, err := os.ReadFile(path); err == nil && bytes.Contains(data, []byte(want)) {
			return time.Since(start)
		}
		time.Sleep(500 * time.Millisecond)
	}
	data, _ := os.ReadFile(path)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	t.Fatalf("%q did not appear in %s within %s; its end:\n%s", want, path, limit, data)
	return 0
}

// decodeImage reads a libvirt screenshot: PNG, or PPM (P6).
func decodeImage(data []byte, mime string) (image.Image, error) {
	if bytes.HasPrefix(data, []byte("\x89PNG")) {
		return png.Decode(bytes.NewReader(data))
	}
	if bytes.HasPrefix(data, []byte("P6")) {
		return decodePPM(data)
	}
	return nil, fmt.Errorf("screenshot of type %q is neither PNG nor PPM", mime)
}

func decodePPM(data []byte) (image.Image, error) {
	var fields []int
	i := 2
	for len(fields) < 3 {
		for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t') {
			i++
		}
		if i < len(data) && data[i] == '#' {
			for i < len(data) && data[i] != '\n' {
				i++
			}
			continue
		}
		j := i
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(string(data[i:j]))
		if err != nil || j == i {
			return nil, fmt.Errorf("PPM header: %v", err)
		}
		fields = append(fields, n)
		i = j
	}
	w, h, max := fields[0], fields[1], fields[2]
	i++ // the single whitespace after the header
	if max != 255 || w <= 0 || h <= 0 || len(data)-i < w*h*3 {
		return nil, fmt.Errorf("PPM %dx%d max %d with %d bytes of pixels", w, h, max, len(data)-i)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for p := 0; p < w*h; p++ {
		img.Set(p%w, p/w, color.RGBA{data[i+3*p], data[i+3*p+1], data[i+3*p+2], 255})
	}
	return img, nil
}

// screenFacts are what the tests assert about a screenshot: how many
// colours, and how many pixel rows hold something other than the
// background (QEMU's "Guest has not initialized the display" placeholder
// lights about a dozen rows; SLOF's and SeaBIOS's screens many more).
type screenFacts struct {
	w, h, colours, litRows int
}

func inspect(img image.Image) screenFacts {
	b := img.Bounds()
	bg := img.At(b.Min.X, b.Min.Y)
	seen := map[color.Color]bool{}
	f := screenFacts{w: b.Dx(), h: b.Dy()}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		lit := false
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			if len(seen) < 64 {
				seen[c] = true
			}
			if c != bg {
				lit = true
			}
		}
		if lit {
			f.litRows++
		}
	}
	f.colours = len(seen)
	return f
}

// screenshotUntil takes screenshots until one shows a real screen (not
// blank, not QEMU's placeholder), and returns it.
func screenshotUntil(t *testing.T, ctx context.Context, conn libvirtconn.DomainConn, d libvirtconn.Domain, limit time.Duration) (screenFacts, string) {
	t.Helper()
	start := time.Now()
	var last screenFacts
	for {
		data, mime, err := conn.Screenshot(ctx, d, 0)
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		img, err := decodeImage(data, mime)
		if err != nil {
			t.Fatal(err)
		}
		last = inspect(img)
		if last.colours >= 2 && last.litRows >= 40 {
			return last, mime
		}
		if time.Since(start) > limit {
			t.Fatalf("no real screen within %s: last screenshot %dx%d, %d colours, %d lit rows", limit, last.w, last.h, last.colours, last.litRows)
		}
		time.Sleep(time.Second)
	}
}

// recorder counts the domain calls that reach libvirt.
type recorder struct {
	libvirtconn.DomainConn
	defines, starts atomic.Int32
}

func (r *recorder) DefineDomain(ctx context.Context, xml string) (libvirtconn.Domain, error) {
	r.defines.Add(1)
	return r.DomainConn.DefineDomain(ctx, xml)
}

func (r *recorder) StartDomain(ctx context.Context, d libvirtconn.Domain) error {
	r.starts.Add(1)
	return r.DomainConn.StartDomain(ctx, d)
}

// haveEmulator reports whether the QEMU binary of a domain is installed.
func haveEmulator(path string) bool {
	_, err := exec.LookPath(path)
	return err == nil && strings.HasPrefix(path, "/")
}
