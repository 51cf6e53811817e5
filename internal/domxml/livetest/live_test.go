package livetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/api"
	"polyvirt/internal/archspec"
	"polyvirt/internal/domxml"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/vmspec"
)

// The Debian 12 ppc64el installer kernel (debian-installer-12-netboot-ppc64el).
const (
	debianDir    = "/usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/"
	debianKernel = debianDir + "vmlinux"
	debianInitrd = debianDir + "initrd.gz"
	debianPkg    = "debian-installer-12-netboot-ppc64el"
)

// power8VNC is the POWER8 pseries VM of the tests: VNC on 127.0.0.1 with
// vga; the tablet, keyboard, qemu-xhci and spapr-vty console come from the
// ppc64le defaults.
func power8VNC(name, consoleLog string) *vmspec.VM {
	return &vmspec.VM{
		Name:    name,
		Arch:    "ppc64le",
		Machine: "pseries",
		CPU:     &vmspec.CPU{Model: "POWER8"},
		Memory:  &vmspec.Memory{SizeMiB: 512},
		Display: &vmspec.Display{Type: "vnc", Video: "vga", Listen: "127.0.0.1"},
		Console: &vmspec.Console{Type: "file", Path: consoleLog},
	}
}

func needPPC(t *testing.T) {
	t.Helper()
	s, _ := archspec.Lookup("ppc64le")
	if !haveEmulator(s.Emulator) {
		unavailable(t, "%s is absent (Debian package qemu-system-ppc)", s.Emulator)
	}
}

func liveDomain(t *testing.T, ctx context.Context, conn libvirtconn.DomainConn, d libvirtconn.Domain) *libvirtxml.Domain {
	t.Helper()
	doc, err := conn.DomainXML(ctx, d, false)
	if err != nil {
		t.Fatalf("live XML: %v", err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(doc); err != nil {
		t.Fatalf("live XML: %v\n%s", err, doc)
	}
	return &dom
}

func TestLivePOWER8SLOFScreenshot(t *testing.T) {
	t.Parallel()
	needPPC(t)
	conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	name := uniqueName("slof")
	console := filepath.Join(t.TempDir(), "console.log")
	track(t, conn, name)
	start := time.Now()
	d, err := deploy(ctx, conn, power8VNC(name, console))
	if err != nil {
		t.Fatal(err)
	}
	// What libvirt really made of it.
	dom := liveDomain(t, ctx, conn, d)
	var inputs []string
	for _, in := range dom.Devices.Inputs {
		inputs = append(inputs, in.Type+"/"+in.Bus)
	}
	var usb, video, graphics, cpu string
	for _, c := range dom.Devices.Controllers {
		if c.Type == "usb" {
			usb = c.Model
		}
	}
	if len(dom.Devices.Videos) == 1 {
		video = dom.Devices.Videos[0].Model.Type
	}
	if len(dom.Devices.Graphics) == 1 && dom.Devices.Graphics[0].VNC != nil {
		graphics = "vnc"
	}
	if dom.CPU != nil && dom.CPU.Model != nil {
		cpu = dom.CPU.Model.Value
	}
	got := []string{dom.Type, strings.SplitN(dom.OS.Type.Machine, "-", 2)[0], cpu, graphics, video, usb, strings.Join(inputs, " ")}
	want := []string{"qemu", "pseries", "POWER8", "vnc", "vga", "qemu-xhci", "tablet/usb keyboard/usb"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("live domain (-want +got):\n%s", diff)
	}
	waited := waitFor(t, console, "Welcome to Open Firmware", 120*time.Second)
	facts, mime := screenshotUntil(t, ctx, conn, d, 30*time.Second)
	t.Logf("SLOF greeted after %s; screenshot %s %dx%d, %d colours, %d lit rows; %s in all",
		waited.Round(time.Second), mime, facts.w, facts.h, facts.colours, facts.litRows, time.Since(start).Round(time.Second))
	removeDomain(t, conn, name) // free the CPU for the other VMs at once
}

func TestLivePOWER8DebianKernel(t *testing.T) {
	t.Parallel()
	needPPC(t)
	needFile(t, debianKernel, debianPkg)
	needFile(t, debianInitrd, debianPkg)
	conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	name := uniqueName("kernel")
	console := filepath.Join(t.TempDir(), "console.log")
	vm := power8VNC(name, console)
	vm.Memory.SizeMiB = 768
	vm.Kernel = &vmspec.Kernel{Path: debianKernel, Initrd: debianInitrd} // cmdline: console=hvc0 by default
	track(t, conn, name)
	start := time.Now()
	d, err := deploy(ctx, conn, vm)
	if err != nil {
		t.Fatal(err)
	}
	dom := liveDomain(t, ctx, conn, d)
	if got := []string{dom.OS.Kernel, dom.OS.Initrd, dom.OS.Cmdline}; !cmp.Equal(got, []string{debianKernel, debianInitrd, "console=hvc0"}) {
		t.Errorf("live <os>: %v", got)
	}
	waited := waitFor(t, console, "Linux version", 150*time.Second)
	data, _ := os.ReadFile(console)
	line := string(data[strings.Index(string(data), "Linux version"):])
	if i := strings.IndexByte(line, '\n'); i > 0 {
		line = line[:i]
	}
	t.Logf("%q after %s (%s in all)", strings.TrimSpace(line), waited.Round(time.Second), time.Since(start).Round(time.Second))
	removeDomain(t, conn, name)
}

func TestLiveSPICERefusedBeforeLibvirt(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := uniqueName("spice")
	vm := power8VNC(name, filepath.Join(t.TempDir(), "console.log"))
	vm.Display.Type = "spice"
	rec := &recorder{DomainConn: conn}
	track(t, conn, name)
	_, err := deploy(ctx, rec, vm)
	var es api.Errors
	if !errors.As(err, &es) || !es.Has(api.CodeDisplayType) {
		t.Fatalf("want %s, got %v", api.CodeDisplayType, err)
	}
	if n := rec.defines.Load() + rec.starts.Load(); n != 0 {
		t.Errorf("libvirt was called %d times for a refused definition", n)
	}
	if _, err := conn.LookupDomain(ctx, name); !errors.Is(err, libvirtconn.ErrNoDomain) {
		t.Errorf("a domain %s exists: %v", name, err)
	}
	t.Logf("refused: %v", err)
}

func TestLiveX86Q35SeaBIOS(t *testing.T) {
	t.Parallel()
	s, _ := archspec.Lookup("x86_64")
	if !haveEmulator(s.Emulator) {
		unavailable(t, "%s is absent (Debian package qemu-system-x86)", s.Emulator)
	}
	conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := uniqueName("x86")
	vm := &vmspec.VM{
		Name: name, Arch: "x86_64", Machine: "q35",
		Memory:  &vmspec.Memory{SizeMiB: 256},
		Display: &vmspec.Display{Type: "vnc", Video: "vga"},
	}
	track(t, conn, name)
	start := time.Now()
	d, err := deploy(ctx, conn, vm)
	if err != nil {
		t.Fatal(err)
	}
	dom := liveDomain(t, ctx, conn, d)
	if dom.Type != "qemu" || !strings.HasPrefix(dom.OS.Type.Machine, "pc-q35") {
		t.Errorf("live domain: type %s machine %s", dom.Type, dom.OS.Type.Machine)
	}
	facts, mime := screenshotUntil(t, ctx, conn, d, 60*time.Second)
	t.Logf("SeaBIOS screen: %s %dx%d, %d colours, %d lit rows, after %s",
		mime, facts.w, facts.h, facts.colours, facts.litRows, time.Since(start).Round(time.Second))
	removeDomain(t, conn, name)
}

// TestLiveDefineGolden defines (with libvirt's own validation) every golden
// definition of package domxml and every example, rendered for TCG on this
// host, reads it back and undefines it.
func TestLiveDefineGolden(t *testing.T) {
	conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	files, _ := filepath.Glob("../testdata/*.yaml")
	examples, _ := filepath.Glob("../../../examples/*.yaml")
	files = append(files, examples...)
	if len(files) < 10 {
		t.Fatalf("only %d definitions found", len(files))
	}
	defined := 0
	for _, f := range files {
		vm, err := vmspec.DecodeFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vmspec.Validate(vm, vmspec.Options{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !haveEmulator(v.Spec().Emulator) {
			t.Logf("%s: not defined, %s is not installed here", f, v.Spec().Emulator)
			continue
		}
		dom, err := domxml.Build(v, domxml.Options{FakeKVM: true, HostArch: hostArch(), MemoryCapMiB: 512})
		if err != nil {
			t.Fatal(err)
		}
		dom.Name, dom.UUID = uniqueName("define"), ""
		if dom.SysInfo != nil {
			dom.SysInfo[0].SMBIOS.System.Entry = dom.SysInfo[0].SMBIOS.System.Entry[:2] // no UUID entry
		}
		doc, err := dom.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		track(t, conn, dom.Name)
		d, err := conn.DefineDomain(ctx, doc)
		if err != nil {
			t.Errorf("%s: libvirt refuses it: %v\n%s", f, err, doc)
			continue
		}
		if _, err := conn.DomainXML(ctx, d, true); err != nil {
			t.Errorf("%s: read back: %v", f, err)
		}
		if defined == 0 {
			// A screenshot of a domain that does not run is an error, at once.
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			if _, _, err := conn.Screenshot(sctx, d, 0); err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("screenshot of a stopped domain: %v", err)
			}
			scancel()
			if st, err := conn.DomainState(ctx, d); err != nil || st != libvirtconn.StateShutoff {
				t.Errorf("state of a defined domain: %v, %v", st, err)
			}
		}
		if err := conn.UndefineDomain(ctx, d, libvirtconn.UndefineAll); err != nil {
			t.Errorf("%s: undefine: %v", f, err)
		}
		defined++
	}
	t.Logf("libvirt defined %d of %d definitions", defined, len(files))
	if defined == 0 {
		t.Error("no definition could be defined")
	}
}
