package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/vmspec"
)

// guestConsole follows a VM's serial console through the engine.
type guestConsole struct {
	t    *testing.T
	ws   *websocket.Conn
	mu   sync.Mutex
	text strings.Builder
	done chan struct{}
}

func openConsole(t *testing.T, api *client.Client, vm string) *guestConsole {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ws, err := api.Console(ctx, vm, false)
	if err != nil {
		cancel()
		t.Fatalf("console of %s: %v", vm, err)
	}
	g := &guestConsole{t: t, ws: ws, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			g.mu.Lock()
			g.text.Write(b)
			g.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); ws.CloseNow(); <-g.done })
	return g
}

func (g *guestConsole) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.text.String()
}

// wait waits until the console has printed want.
func (g *guestConsole) wait(want string, within time.Duration) string {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if s := g.String(); strings.Contains(s, want) {
			return s
		}
		select {
		case <-g.done:
			if s := g.String(); strings.Contains(s, want) {
				return s
			}
			g.t.Fatalf("the console closed before %q:\n%s", want, consoleTail(g.String()))
		case <-time.After(200 * time.Millisecond):
		}
	}
	g.t.Fatalf("the console did not print %q within %s:\n%s", want, within, consoleTail(g.String()))
	return ""
}

func (g *guestConsole) send(s string) {
	g.t.Helper()
	if err := g.ws.Write(context.Background(), websocket.MessageBinary, []byte(s)); err != nil {
		g.t.Fatalf("typing on the console: %v", err)
	}
}

func consoleTail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// line returns the value after prefix on the console ("POLYVIRT-INSTANCE-ID: ").
func line(s, prefix string) string {
	m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `([^\r\n]*)`).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// TestCloudInitGuests boots a ppc64le guest (Debian's ppc64el installer
// kernel, POWER8 under TCG on a fake-KVM POWER host) and an x86_64 guest
// (Debian's amd64 installer kernel), each made from a library image of its
// architecture with --cloud-init: the test's init mounts the NoCloud seed
// CD-ROM (spapr-vscsi on POWER, SATA on q35) and prints its instance-id
// and a user-data line. On the x86_64 guest, snapshots: the init writes
// MARKER-A to its disk, a disk-only snapshot of the running VM is taken
// (and one with memory, deleted again), the init writes MARKER-B, and after
// a revert the disk holds MARKER-A. A template of that VM makes another VM
// whose disk holds MARKER-A too, with its own seed. An image of another
// architecture than the cluster's is refused.
func TestCloudInitGuests(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	requirePPCKernel(t)
	requireAMD64Kernel(t)
	ctx := context.Background()
	sfx := randomSuffix()
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	for _, d := range []string{"xpool", "ppool"} {
		if err := os.MkdirAll(filepath.Join(images, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The initramfs files first (they take the longest to make).
	initPPC, initX86 := filepath.Join(images, "initramfs-ppc64le"), filepath.Join(images, "initramfs-x86_64")
	storageInitramfs(t, "ppc64le", "ppc64el", debianPPCKernel, initPPC, "ibmvscsi", "sr_mod", "isofs", "virtio_pci", "virtio_blk")
	storageInitramfs(t, "amd64", "amd64", debianAMD64Kernel, initX86, "ahci", "sr_mod", "isofs", "virtio_pci", "virtio_blk")

	cfg := filepath.Join(dir, "agent.yaml")
	di := "/usr/lib/debian-installer/images"
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("host_paths:\n  disk: [%s]\n  cdrom: [%s]\n  kernel: [%s, %s]\n  initrd: [%s]\n",
		images, images, images, di, images)), 0o644); err != nil {
		t.Fatal(err)
	}
	eng := initEngine(t, "engine-guests", nil)
	eng.start()
	eapi := eng.api
	c := newCLI(t)
	c.run(eng.token+"\n", "login", "--engine", eng.url, "--ca-file", eng.caFile)
	c.run("", "cluster", "create", "x86", "--arch", "x86_64")
	c.run("", "cluster", "create", "power", "--cpu-type", "IBM POWER8")
	hx, hp := "gx-"+sfx, "gp-"+sfx
	removeDomainsAtCleanup(t, "e2e-"+hx+"-")
	removeDomainsAtCleanup(t, "e2e-"+hp+"-")
	joinAgent(t, c, eng, hx, "x86", "--config", cfg)
	joinAgent(t, c, eng, hp, "power", "--config", cfg, "--profile", "s822l-power8e")
	waitHost(t, eapi, hx, 90*time.Second, hostStatus("Up"))
	waitHost(t, eapi, hp, 90*time.Second, hostStatus("Up"))
	c.run("", "pool", "create", "xpool", "--cluster", "x86", "--path", filepath.Join(images, "xpool"))
	c.run("", "pool", "create", "ppool", "--cluster", "power", "--path", filepath.Join(images, "ppool"))

	// An image per architecture: a blank qcow2 disk.
	blank := filepath.Join(dir, "blank.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", blank, "64M")
	c.run("", "image", "upload", "blank-x86", blank, "--pool", "xpool", "--arch", "x86_64", "--os", "none", "-q")
	c.run("", "image", "upload", "blank-ppc", blank, "--pool", "ppool", "--arch", "ppc64el", "--os", "none", "-q")
	var ims []engineapi.Image
	c.json(&ims, "image", "list", "--arch", "ppc64le", "-o", "json")
	if len(ims) != 1 || ims[0].Name != "blank-ppc" || ims[0].Arch != "ppc64le" {
		t.Errorf("the ppc64le images: %+v", ims)
	}
	out := c.fail("", "vm", "create", "wrong", "--cluster", "power", "--image", "blank-x86", "--memory", "512")
	if !strings.Contains(out, "IMAGE_ARCHITECTURE_NOT_SUPPORTED_BY_CLUSTER") {
		t.Errorf("an x86_64 image in the POWER cluster: %s", out)
	}

	userData := filepath.Join(dir, "user-data.yaml")
	udLine := "polyvirt-user-data-line-" + sfx
	if err := os.WriteFile(userData, []byte("#cloud-config\nruncmd:\n  - echo "+udLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type guest struct {
		vm, cluster, image, kernel, initrd, console, memory, bus, controller string
		id                                                                   string
		con                                                                  *guestConsole
	}
	guests := []*guest{
		{vm: "cip", cluster: "power", image: "blank-ppc", kernel: debianPPCKernel, initrd: initPPC, console: "console=hvc0", memory: "512", bus: "scsi", controller: "spapr-vscsi"},
		{vm: "cix", cluster: "x86", image: "blank-x86", kernel: debianAMD64Kernel, initrd: initX86, console: x86Console, memory: "256", bus: "sata"},
	}
	for _, g := range guests {
		c.run("", "vm", "create", g.vm, "--cluster", g.cluster, "--image", g.image, "--cloud-init", userData,
			"--memory", g.memory, "--display", "none", "--kernel", g.kernel, "--initrd", g.initrd,
			"--cmdline", g.console+" polyvirt.mode=storage quiet")
		v := c.vm(g.vm)
		g.id = v.ID
		var def vmspec.VM
		if err := json.Unmarshal(v.Definition, &def); err != nil {
			t.Fatal(err)
		}
		if len(def.Disks) != 2 || def.Disks[0].Volume != g.vm+"-root.qcow2" || def.Disks[1].Device != "cdrom" ||
			def.Disks[1].Volume != g.vm+"-seed.iso" || def.Disks[1].Bus != g.bus || def.Disks[1].Controller != g.controller {
			t.Errorf("%s's disks: %+v; want the overlay, then the seed CD-ROM on %s %s", g.vm, def.Disks, g.bus, g.controller)
		}
		vol, err := eapi.Volume(ctx, map[string]string{"power": "ppool", "x86": "xpool"}[g.cluster], g.vm+"-root.qcow2")
		if err != nil || vol.Backing != g.image+".qcow2" || vol.OwnerVM != g.vm {
			t.Errorf("%s's disk: %+v %v; want an overlay on %s.qcow2 owned by the VM", g.vm, vol, err, g.image)
		}
		c.run("", "vm", "start", g.vm)
		g.con = openConsole(t, eapi, g.vm)
	}
	seedChecks := func(g *guest, within time.Duration) {
		t.Helper()
		s := g.con.wait("POLYVIRT-DISK-HOLDS:", within)
		if got := line(s, "POLYVIRT-INSTANCE-ID: "); got != g.id {
			t.Errorf("%s: the seed's instance-id is %q; want the VM's id %s\n%s", g.vm, got, g.id, consoleTail(s))
		}
		if got := line(s, "POLYVIRT-USER-DATA: "); got != "- echo "+udLine {
			t.Errorf("%s: the seed's user-data line is %q\n%s", g.vm, got, consoleTail(s))
		}
		if got := line(s, "POLYVIRT-HOSTNAME: "); got != g.vm {
			t.Errorf("%s: the seed's hostname is %q", g.vm, got)
		}
		if got := line(s, "POLYVIRT-DISK-HOLDS: "); got != "[]" {
			t.Errorf("%s: a new disk holds %q", g.vm, got)
		}
	}
	// x86_64 first (it boots sooner), while the POWER guest boots.
	seedChecks(guests[1], 4*time.Minute)
	snapshots(t, c, eapi, guests[1].con)
	seedChecks(guests[0], 8*time.Minute)
	guests[0].con.wait("POLYVIRT-WAITING-FOR-GO", time.Minute)
	guests[0].con.send("go\n")
	guests[0].con.wait("POLYVIRT-WROTE: MARKER-B", time.Minute)
	if t.Failed() {
		return
	}

	// A template of cix: its disk copied (MARKER-A), its seed left out.
	var tpl engineapi.Template
	c.json(&tpl, "template", "create", "tpl", "--from", "cix", "-o", "json")
	if tpl.Arch != "x86_64" || len(tpl.Volumes) != 1 || tpl.Volumes[0] != "xpool/tpl-disk0.qcow2" {
		t.Errorf("template %+v", tpl)
	}
	out = c.fail("", "vm", "create", "tppc", "--cluster", "power", "--template", "tpl")
	if !strings.Contains(out, "ACTION_TYPE_FAILED_VM_CLUSTER_DIFFERENT_ARCHITECTURES") {
		t.Errorf("an x86_64 template in the POWER cluster: %s", out)
	}
	c.run("", "vm", "create", "cix2", "--cluster", "x86", "--template", "tpl", "--cloud-init", userData, "--start")
	con := openConsole(t, eapi, "cix2")
	s := con.wait("POLYVIRT-DISK-HOLDS:", 4*time.Minute)
	if got := line(s, "POLYVIRT-DISK-HOLDS: "); got != "[MARKER-A]" {
		t.Errorf("cix2 (from the template) holds %q; want the template's MARKER-A", got)
	}
	if got, want := line(s, "POLYVIRT-INSTANCE-ID: "), c.vm("cix2").ID; got != want {
		t.Errorf("cix2's seed says instance-id %q; want %s", got, want)
	}

	// Deleting the VMs deletes their own volumes (overlays, seeds).
	c.waitVM("cix2", 2*time.Minute, func(v engineapi.VM) bool { return v.State == "Down" })
	for _, vm := range []string{"cip", "cix", "cix2"} {
		if err := eapi.DeleteVM(ctx, vm, true); err != nil {
			t.Errorf("delete %s: %v", vm, err)
		}
	}
	vols, err := eapi.Volumes(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, v := range vols {
		left = append(left, v.Pool+"/"+v.Name)
	}
	sort.Strings(left)
	want := []string{"ppool/blank-ppc.qcow2", "xpool/blank-x86.qcow2", "xpool/tpl-disk0.qcow2"}
	if !equalStrings(left, want) {
		t.Errorf("volumes after the VMs went: %v; want %v", left, want)
	}
	c.run("", "template", "delete", "tpl")
	c.run("", "image", "delete", "blank-x86")
}

// snapshots runs the snapshot scenario on the x86_64 guest, which waits
// for "go" with MARKER-A on its disk.
func snapshots(t *testing.T, c *cli, eapi *client.Client, con *guestConsole) {
	t.Helper()
	ctx := context.Background()
	con.wait("POLYVIRT-WAITING-FOR-GO", time.Minute)
	s1, err := eapi.CreateSnapshot(ctx, "cix", engineapi.SnapshotRequest{Name: "s1", Description: "MARKER-A written"})
	if err != nil {
		t.Errorf("disk-only snapshot of the running VM: %v", err)
		return
	}
	if s1.Memory || s1.VMState != "Up" || len(s1.Volumes) != 1 || s1.Volumes[0] != "cix-root.qcow2" {
		t.Errorf("snapshot s1 %+v", s1)
	}
	m1, err := eapi.CreateSnapshot(ctx, "cix", engineapi.SnapshotRequest{Name: "m1", Memory: true})
	if err != nil || !m1.Memory || m1.Host == "" {
		t.Errorf("snapshot with memory: %+v %v", m1, err)
	}
	if err := eapi.DeleteSnapshot(ctx, "cix", "m1"); err != nil {
		t.Errorf("delete the memory snapshot: %v", err)
	}
	con.send("go\n")
	con.wait("POLYVIRT-WROTE: MARKER-B", time.Minute)
	c.waitVM("cix", 2*time.Minute, func(v engineapi.VM) bool { return v.State == "Down" })
	_, err = eapi.RevertSnapshot(ctx, "cix", "s1")
	if err != nil {
		t.Errorf("revert: %v", err)
		return
	}
	var ss []engineapi.Snapshot
	c.json(&ss, "vm", "snapshot", "list", "cix", "-o", "json")
	if len(ss) != 1 || ss[0].Name != "s1" {
		t.Errorf("snapshots %+v; want s1 only", ss)
	}
	// The console is the VM's since it last started: open it again.
	c.run("", "vm", "start", "cix")
	con2 := openConsole(t, eapi, "cix")
	s := con2.wait("POLYVIRT-DISK-HOLDS:", 4*time.Minute)
	if got := line(s, "POLYVIRT-DISK-HOLDS: "); got != "[MARKER-A]" {
		t.Errorf("after the revert the disk holds %q; want [MARKER-A]", got)
	}
	// The init powers the machine off after saying what the disk holds.
	c.waitVM("cix", 2*time.Minute, func(v engineapi.VM) bool { return v.State == "Down" })
	c.run("", "vm", "snapshot", "delete", "cix", "s1")
	evs, err := eapi.Events(ctx, client.EventFilter{Kind: "vm"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ev := range evs.Events {
		if ev.ObjectName == "cix" && strings.HasPrefix(ev.Action, "vm.snapshot.") {
			seen[ev.Action]++
		}
	}
	if seen["vm.snapshot.create"] != 2 || seen["vm.snapshot.revert"] != 1 || seen["vm.snapshot.delete"] != 2 {
		t.Errorf("snapshot events %v; want 2 creations, 1 revert, 2 deletions", seen)
	}
}
