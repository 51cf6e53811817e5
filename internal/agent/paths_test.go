package agent

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"polyvirt/internal/hostpath"
	"polyvirt/internal/libvirtconn"
)

// pathsAgent is a test agent whose host is a directory tree: an images
// directory with an image, a link in and a link out, and a decoy
// /etc/shadow.
func pathsAgent(t *testing.T, f *fakeConn) (*Agent, string) {
	t.Helper()
	a := newTestAgent(t, f)
	root := t.TempDir()
	a.root = root
	for p, data := range map[string]string{
		"/var/lib/polyvirt/images/a.img": "image",
		"/etc/shadow":                    "root:$6$secret:::\n",
		"/usr/lib/debian-installer/images/12/ppc64el/vmlinux": "kernel",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The RNG's device (1:9 is /dev/urandom's; the tests run as root).
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(root, "dev/urandom"), syscall.S_IFCHR|0o666, 1<<8|9); err != nil {
		t.Fatalf("mknod (the tests run as root): %v", err)
	}
	for link, target := range map[string]string{"in.img": "a.img", "out.img": "/etc/shadow"} {
		if err := os.Symlink(target, filepath.Join(root, "/var/lib/polyvirt/images", link)); err != nil {
			t.Fatal(err)
		}
	}
	return a, root
}

func ppcWith(extra string) string {
	return `{"name": "p", "arch": "ppc64le", "memory": {"sizeMiB": 512}, "display": {"type": "vnc"}` + extra + `}`
}

// TestCreateRefusesHostPaths: a definition reaching a host file the
// host does not allow for its use is refused with PATH_NOT_ALLOWED naming
// its field, and nothing is defined.
func TestCreateRefusesHostPaths(t *testing.T) {
	cases := []struct {
		name, extra, field string
	}{
		{"/etc/shadow as a disk", `, "disks": [{"source": "/etc/shadow"}]`, "disks[0].source"},
		{"the host's disk", `, "disks": [{"source": "/dev/vda"}]`, "disks[0].source"},
		{"the host's disk as a file", `, "disks": [{"source": "/dev/vda", "type": "file"}]`, "disks[0].source"},
		{"a link out of the images directory", `, "disks": [{"source": "/var/lib/polyvirt/images/out.img"}]`, "disks[0].source"},
		{"a CD-ROM of /etc/shadow", `, "disks": [{"device": "cdrom", "source": "/etc/shadow"}]`, "disks[0].source"},
		{"/etc/shadow as the kernel", `, "kernel": {"path": "/etc/shadow"}`, "kernel.path"},
		{"a private key as the initrd", `, "kernel": {"path": "/usr/lib/debian-installer/images/12/ppc64el/vmlinux", "initrd": "/root/.ssh/id_rsa"}`, "kernel.initrd"},
		{"a file console of the definition", `, "console": {"type": "file", "path": "/etc/passwd"}`, "console.path"},
		{"a console log of the definition", `, "console": {"type": "pty", "log": "/etc/cron.d/evil"}`, "console.log"},
		{"an RNG fed by a file", `, "rng": {"model": "virtio", "backend": "/etc/shadow"}`, "rng.backend"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeConn()
			a, root := pathsAgent(t, f)
			_, err := a.CreateVM(context.Background(), []byte(ppcWith(c.extra)))
			e := asAPIError(err)
			if e.Status != http.StatusUnprocessableEntity || e.Code != "PATH_NOT_ALLOWED" || len(e.Details) != 1 || e.Details[0].Field != c.field {
				t.Errorf("%d %s %v; want 422 PATH_NOT_ALLOWED at %s", e.Status, e.Code, e.Details, c.field)
			}
			if f.defines.Load() != 0 {
				t.Error("a domain was defined")
			}
			if b, _ := os.ReadFile(filepath.Join(root, "/etc/shadow")); string(b) != "root:$6$secret:::\n" {
				t.Errorf("the decoy changed: %q", b)
			}
		})
	}
}

// TestStartRechecksHostPaths: a link that pointed into the images
// directory when the VM was created and out of it at start is refused at
// start, before libvirt starts anything; so is a domain whose console
// writes to a file of its own choosing (defined before the policy).
func TestStartRechecksHostPaths(t *testing.T) {
	f := newFakeConn()
	a, root := pathsAgent(t, f)
	link := filepath.Join(root, "/var/lib/polyvirt/images/current.img")
	if err := os.Symlink("a.img", link); err != nil {
		t.Fatal(err)
	}
	vm := create(t, a, ppcWith(`, "disks": [{"source": "/var/lib/polyvirt/images/current.img"}]`))
	if _, err := a.Act(context.Background(), vm.ID, "start"); err != nil {
		t.Fatalf("start with the link in: %v", err)
	}
	if _, err := a.Act(context.Background(), vm.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	os.Remove(link)
	if err := os.Symlink("/etc/shadow", link); err != nil {
		t.Fatal(err)
	}
	_, err := a.Act(context.Background(), vm.ID, "start")
	if e := asAPIError(err); e.Code != "PATH_NOT_ALLOWED" || len(e.Details) != 1 || e.Details[0].Field != "disks[0].source" {
		t.Errorf("start after the swap: %+v", e)
	}
	if n := f.starts.Load(); n != 1 {
		t.Errorf("%d starts; want 1 (the first)", n)
	}

	// A domain an older agent defined with the console file of its
	// definition.
	vm2 := create(t, a, `{"name": "old", "arch": "ppc64le", "memory": {"sizeMiB": 512}}`)
	d, _ := f.dom(libvirtconn.Domain{UUID: vm2.ID})
	f.mu.Lock()
	own := a.consoleLog(vm2.ID)
	if !strings.Contains(d.xml, own) {
		f.mu.Unlock()
		t.Fatalf("the console log is not the agent's %s:\n%s", own, d.xml)
	}
	d.xml = strings.ReplaceAll(d.xml, own, "/etc/passwd")
	f.mu.Unlock()
	_, err = a.Act(context.Background(), vm2.ID, "start")
	if e := asAPIError(err); e.Code != "PATH_NOT_ALLOWED" || len(e.Details) != 1 || e.Details[0].Field != "console.log" {
		t.Errorf("start of a domain logging to /etc/passwd: %+v", e)
	}
	if n := f.starts.Load(); n != 1 {
		t.Errorf("%d starts; want 1", n)
	}
}

// TestFileConsoleIsTheAgents: a file console writes to the agent's own
// file, and the capabilities report carries the host's policy.
func TestFileConsoleIsTheAgents(t *testing.T) {
	f := newFakeConn()
	a, _ := pathsAgent(t, f)
	vm := create(t, a, ppcWith(`, "console": {"type": "file"}`))
	x, _ := f.DomainXML(context.Background(), libvirtconn.Domain{UUID: vm.ID}, true)
	if !strings.Contains(x, "<source path=\""+a.consoleLog(vm.ID)+"\"") {
		t.Errorf("the file console does not write to %s:\n%s", a.consoleLog(vm.ID), x)
	}
	r, err := a.Capabilities(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if r.HostPaths == nil || strings.Join(r.HostPaths.Disk, ",") != hostpath.ImagesDir || len(r.HostPaths.BlockDevices) != 0 {
		t.Errorf("the report's host paths: %+v", r.HostPaths)
	}
	if err := a.checkStartPaths(context.Background(), f, mustEntry(t, a, vm.ID)); err != nil {
		t.Errorf("start check of the agent's own console file: %v", err)
	}
}

func mustEntry(t *testing.T, a *Agent, id string) *vmEntry {
	t.Helper()
	e, err := a.entry(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestHostPathsConfig: the configuration's lists replace the defaults one
// by one; a bad entry is refused with its key.
func TestHostPathsConfig(t *testing.T) {
	c, err := Config{HostID: "h", DataDir: t.TempDir(), HostPaths: HostPaths{Disk: []string{"/srv/images"}, BlockDevices: []string{"/dev/vdb"}}}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	p := c.HostPaths.Policy()
	d := hostpath.Default()
	if strings.Join(p.Disk, ",") != "/srv/images" || strings.Join(p.BlockDevices, ",") != "/dev/vdb" ||
		strings.Join(p.CDROM, ",") != strings.Join(d.CDROM, ",") || strings.Join(p.Kernel, ",") != strings.Join(d.Kernel, ",") {
		t.Errorf("policy: %+v", p)
	}
	none, err := Config{HostID: "h", HostPaths: HostPaths{Kernel: []string{}}}.WithDefaults()
	if err != nil || len(none.HostPaths.Policy().Kernel) != 0 {
		t.Errorf("an empty list: %+v %v", none.HostPaths, err)
	}
	for _, bad := range []HostPaths{{Disk: []string{"/"}}, {CDROM: []string{"iso"}}, {BlockDevices: []string{"/srv/x"}}} {
		if _, err := (Config{HostID: "h", HostPaths: bad}).WithDefaults(); err == nil || !strings.HasPrefix(err.Error(), "host_paths.") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
