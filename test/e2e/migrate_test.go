package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine"
	"polyvirt/internal/hostpath"
	"polyvirt/internal/lab"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/libvirtns"
)

// migrationWait bounds one migration of a 512 MiB POWER guest under TCG
// on a shared machine (seconds when the machine is idle).
const migrationWait = 5 * time.Minute

// counterWait bounds the wait for the guest's counter to go on (its
// kernel boots in about 20 s under TCG when the machine is idle).
const counterWait = 4 * time.Minute

// counterLine is a line of the test init's counter.
var counterLine = regexp.MustCompile(`polyvirt-counter (\d+)`)

// attachedConsole is `polyvirt vm console` attached on a terminal for the
// whole test, through the engine.
type attachedConsole struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// attachConsole runs vm console NAME on a terminal of the test's own; it
// stays attached until the test ends.
func attachConsole(t *testing.T, env []string, name string) *attachedConsole {
	t.Helper()
	_, slave := openPTY(t)
	cmd := exec.Command(polyvirtBin(t), "vm", "console", name)
	cmd.Env = append(os.Environ(), env...)
	g := &attachedConsole{t: t, cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, g.out, g.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-g.done
	})
	return g
}

// last is the guest's last counter value on the console (-1: none yet),
// and how many times the guest booted.
func (g *attachedConsole) last() (int, int) {
	s := g.out.String()
	m := counterLine.FindAllStringSubmatch(s, -1)
	n := -1
	if len(m) > 0 {
		n, _ = strconv.Atoi(m[len(m)-1][1])
	}
	return n, strings.Count(s, "polyvirt-boot ")
}

// waitPast waits until the counter went 10 beyond after (a second of the
// guest's life), with the console still attached; it returns the counter.
func (g *attachedConsole) waitPast(after int, within time.Duration, when string) int {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for {
		select {
		case err := <-g.done:
			g.t.Fatalf("%s: vm console ended (%v):\n%s", when, err, tailString(g.out.String(), 2000))
		default:
		}
		n, boots := g.last()
		if boots > 1 {
			g.t.Fatalf("%s: the guest booted again (%d boot lines): a reboot, not a live migration:\n%s", when, boots, tailString(g.out.String(), 2000))
		}
		if crash := guestKernelCrash(g.out.String()); crash != "" && n <= after+10 {
			// Its counter will not go on: no use waiting for it.
			g.t.Fatalf("%s: the guest's kernel crashed (%q on its console; QEMU before 9.0 corrupted the memory of guests migrated under TCG now and then, docs/operations.md):\n%s",
				when, crash, tailString(g.out.String(), 3000))
		}
		if n > after+10 {
			return n
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s: the counter did not go past %d within %s (last %d):\n%s", when, after, within, n, tailString(g.out.String(), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kernelCrashLines are what a guest's Linux prints on its console when it
// crashed ("BUG: soft lockup", which a starved guest prints and survives,
// is not one).
var kernelCrashLines = []string{"Kernel panic - not syncing", "Oops: ", "exited with irqs disabled"}

// guestKernelCrash is the first of kernelCrashLines a console shows, or "".
func guestKernelCrash(console string) string {
	for _, l := range kernelCrashLines {
		if strings.Contains(console, l) {
			return l
		}
	}
	return ""
}

// stillAttached checks that vm console is still attached, and that the
// guest did not boot again.
func (g *attachedConsole) stillAttached(when string) {
	g.t.Helper()
	select {
	case err := <-g.done:
		g.t.Fatalf("%s: vm console ended (%v):\n%s", when, err, tailString(g.out.String(), 2000))
	case <-time.After(time.Second):
	}
	if _, boots := g.last(); boots != 1 {
		g.t.Fatalf("%s: %d boot lines: the guest booted again:\n%s", when, boots, tailString(g.out.String(), 2000))
	}
}

// x86Console is the start of the x86_64 test guests' kernel command line:
// the serial console, and no_timer_check. Under TCG on a loaded machine
// (the end-to-end tests run two at a time, beside other packages) the
// kernel's boot-time check of the IO-APIC timer can miss its ticks and
// panic ("IO-APIC + timer doesn't work"); the check proves nothing of
// polyvirt's, and a guest under KVM skips it anyway.
const x86Console = "console=ttyS0 no_timer_check"

// counterInitrd builds the test init (for goarch) into an initramfs in a
// directory of polyvirt's images (the lab's agents allow initrds there),
// removed when the test ends.
func counterInitrd(t *testing.T, goarch string) string {
	t.Helper()
	dir := filepath.Join(hostpath.ImagesDir, "e2e-mig-"+randomSuffix()[:8])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	init := goBuild(t, goarch, "./test/e2e/guestinit", filepath.Join(t.TempDir(), "init"))
	initrd := filepath.Join(dir, "counter.cpio")
	writeInitramfs(t, initrd, map[string]string{"init": init})
	return initrd
}

// domainAt is a domain's state on the libvirt daemon at uri; false when
// the daemon has no such domain.
func domainAt(t *testing.T, uri, name string) (libvirtconn.DomainState, bool) {
	t.Helper()
	c, err := libvirtconn.DialDomains(uri, 10*time.Second)
	if err != nil {
		t.Fatalf("libvirt at %s: %v", uri, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := c.LookupDomain(ctx, name)
	if errors.Is(err, libvirtconn.ErrNoDomain) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.DomainState(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	return st, true
}

// migHost is one POWER host of the lab, with its libvirt daemon.
type migHost struct {
	lab.Host
	uri string
}

// runsOnlyOn checks that the VM's domain runs on one host and that the
// other has no trace of it.
func runsOnlyOn(t *testing.T, when, vm string, on, off migHost) {
	t.Helper()
	if st, ok := domainAt(t, on.uri, on.DomainPrefix+vm); !ok || st != libvirtconn.StateRunning {
		t.Errorf("%s: VM %s's domain on %s: %v (exists %v)", when, vm, on.Name, st, ok)
	}
	if st, ok := domainAt(t, off.uri, off.DomainPrefix+vm); ok {
		t.Errorf("%s: VM %s still has a domain on %s (%v)", when, vm, off.Name, st)
	}
}

// TestMigration migrates VMs between the hosts of a lab of polyvirt up's
// with a second x86_64 host.
//
// ppc64le: a ppc64le guest (Debian's ppc64el kernel with the
// test init, printing a counter on hvc0 every 100 ms) runs on power8-a of
// the lab (this machine's libvirtd) and live-migrates to power8-b (a
// libvirtd of the lab's own, over TLS with the engine's certificates)
// through the engine and the agents, its console attached through the
// engine all along: the console stays attached and the guest does not
// boot again, the CLI shows the progress and ends with the time and the
// measured downtime, the VM is listed on power8-b and its domain is gone
// from power8-a. A migration canceled in flight leaves it running where it
// was, the other daemon without a trace. Host maintenance of power8-b is
// refused while a VM pinned there cannot leave, naming it and why; with
// --stop-vms the pinned VM is shut down, the counting VM migrates back to
// power8-a, and power8-b is in Maintenance. The events say each step.
//
// The POWER guest's test init sleeps between two counter lines: its
// counter going on after each move says that its decrementer (its timer)
// moved with it — QEMU before 8.2 did not restart it after a migration
// under TCG ("target/ppc: Migrate DECR SPR"), and an emulated POWER guest
// idle when it moved then waited for ever; the lab needs QEMU 9.0
// (scripts/lib.sh, POLYVIRT_QEMU_MIN).
//
// local-disk: an x86_64 guest with a disk only its host has (in the lab's
// LocalDisksDir: x86_64-b's is its own) migrates x86_64-a → x86_64-b and
// back, the disk copied each way (libvirt's non-shared storage copy into
// an image the destination's agent made): the CLI says the disk is
// copied, the guest reads the disk's first line on its new host (the
// test init, past its cache), the file is on the destination only.
//
// x86_64: an x86_64 guest (Debian's amd64 kernel with the test init,
// printing its counter on ttyS0) migrates x86_64-a → x86_64-b with its
// console attached: the counter goes on without a second boot; then host
// maintenance of x86_64-b brings it back, the counter still going on, and
// x86_64-b is in Maintenance.
func TestMigration(t *testing.T) {
	requireMigratingQEMU(t)
	requirePPCKernel(t)
	requireAMD64Kernel(t)
	if why := libvirtns.Require(); why != "" {
		missing(t, "a libvirt daemon of the lab's own for power8-b: "+why)
	}
	prefix := "m" + randomSuffix()[:5] + "-"
	removeDomainsAtCleanup(t, "lab-"+prefix)
	// The lab's hosts, and a second x86_64 one on a libvirtd of its own.
	l, env := startLab(t, lab.Options{Dir: filepath.Join(t.TempDir(), "lab"), Listen: "127.0.0.1:0", NamePrefix: prefix, HADelay: time.Hour,
		Monitor: engine.MonitorConfig{StatsInterval: time.Second, Failures: 3}, SecondNative: true})
	pair := func(t *testing.T, first, second string) (migHost, migHost) {
		var a, b migHost
		for _, h := range l.Hosts() {
			switch h.Name {
			case prefix + first:
				a = migHost{Host: h, uri: libvirtURI()}
			case prefix + second:
				if d := l.Daemon(h.Name); d != nil {
					b = migHost{Host: h, uri: d.URI}
				}
			}
		}
		if a.Name == "" || b.Name == "" || !b.OwnDaemon || a.Cluster != b.Cluster {
			t.Fatalf("the lab has no %s and %s (on a libvirtd of its own) in one cluster: %+v", first, second, l.Hosts())
		}
		return a, b
	}
	t.Run("ppc64le", func(t *testing.T) {
		a, b := pair(t, "power8-a", "power8-b")
		migratePOWER(t, env, prefix, a, b)
	})
	t.Run("x86_64", func(t *testing.T) {
		a, b := pair(t, "x86_64-a", "x86_64-b")
		migrateX86(t, env, prefix, a, b)
	})
	t.Run("local-disk", func(t *testing.T) {
		a, b := pair(t, "x86_64-a", "x86_64-b")
		migrateLocalDisk(t, env, prefix, a, b, l.Daemon(b.Name))
	})
}

// migratePOWER is TestMigration's POWER part (see there).
func migratePOWER(t *testing.T, env []string, prefix string, a, b migHost) {
	initrd := counterInitrd(t, "ppc64le")
	c := &cli{t: t, env: env}
	cluster := a.Cluster

	vm := prefix + "cnt"
	out := c.run("", "vm", "create", vm, "--cluster", cluster, "--memory", "512", "--cpus", "1", "--kernel", debianPPCKernel,
		"--initrd", initrd, "--cmdline", "console=hvc0 quiet polyvirt.counter=1", "--start")
	if !strings.Contains(out, "on "+a.Name+"… starting… running") {
		t.Fatalf("vm create --start: not on %s:\n%s", a.Name, out)
	}
	con := attachConsole(t, env, vm)
	n := con.waitPast(-1, counterWait, "the boot")
	t.Logf("the guest counts: %d", n)

	// power8-a → power8-b, the console attached. The bandwidth is held
	// down so that the copy lasts several of the CLI's progress readings
	// (on an idle machine the guest's few touched pages move in 3 s, all
	// of it between two readings).
	out = c.run("", "vm", "migrate", vm, "--to", b.Name, "--max-bandwidth", "8")
	t.Logf("vm migrate:\n%s", out)
	m := regexp.MustCompile(`Migrated VM \S+ to (\S+) in ([0-9.]+m?s) \(downtime (\d+) ms`).FindStringSubmatch(out)
	if m == nil || m[1] != b.Name {
		t.Fatalf("vm migrate did not say it migrated to %s:\n%s", b.Name, out)
	}
	if dt, _ := strconv.Atoi(m[3]); dt <= 0 {
		t.Errorf("no downtime measured: %s", m[0])
	}
	for _, want := range []string{"Migrating VM " + vm + " from " + a.Name + " to " + b.Name + " (policy minimal-downtime)", "disks: none", "copying-memory", "pass "} {
		if !strings.Contains(out, want) {
			t.Errorf("vm migrate's progress lacks %q", want)
		}
	}
	con.stillAttached("after the migration to " + b.Name)
	n = con.waitPast(n, counterWait, "after the migration to "+b.Name)
	t.Logf("the guest counts on %s: %d", b.Name, n)
	if v := c.vm(vm); v.State != "Up" || v.Host != b.Name || v.Migration == nil || v.Migration.Phase != "completed" || v.Migration.DowntimeMs <= 0 {
		t.Errorf("the VM after the migration: %s on %s, migration %+v", v.State, v.Host, v.Migration)
	}
	listedOn := func(host string) []string {
		var vms []engineapi.VM
		c.json(&vms, "vm", "list", "--host", host)
		var names []string
		for _, v := range vms {
			names = append(names, v.Name)
		}
		return names
	}
	if on, off := listedOn(b.Name), listedOn(a.Name); len(on) != 1 || on[0] != vm || len(off) != 0 {
		t.Errorf("VMs listed on %s: %v, on %s: %v", b.Name, on, a.Name, off)
	}
	runsOnlyOn(t, "after the migration", vm, b, a)

	// Canceled in flight (1 MiB/s: it cannot end by itself meanwhile).
	out = c.run("", "vm", "migrate", vm, "--to", a.Name, "--max-bandwidth", "1", "--detach")
	if !strings.Contains(out, "Follow it with") {
		t.Errorf("vm migrate --detach:\n%s", out)
	}
	c.waitVM(vm, migrationWait, func(v engineapi.VM) bool {
		return v.Migration != nil && v.Migration.Phase == "copying-memory" && v.Migration.MemoryProcessed > 0
	})
	out = c.run("", "vm", "migrate", vm, "--cancel")
	if !strings.Contains(out, "canceled after") || !strings.Contains(out, "it runs on "+b.Name) {
		t.Errorf("vm migrate --cancel:\n%s", out)
	}
	if v := c.vm(vm); v.State != "Up" || v.Host != b.Name {
		t.Errorf("after the cancel: %s on %s", v.State, v.Host)
	}
	con.stillAttached("after the cancel")
	runsOnlyOn(t, "after the cancel", vm, b, a)

	// Maintenance of power8-b: a VM pinned there cannot leave.
	pin := prefix + "pin"
	out = c.run("", "vm", "create", pin, "--cluster", cluster, "--memory", "512", "--cpus", "1", "--host", b.Name, "--kernel", debianPPCKernel,
		"--initrd", initrd, "--cmdline", "console=hvc0 quiet polyvirt.counter=1", "--start")
	if !strings.Contains(out, "on "+b.Name+"… starting… running") {
		t.Fatalf("the pinned VM:\n%s", out)
	}
	errOut := c.fail("", "host", "maintenance", b.Name)
	if !strings.Contains(errOut, api.CodeMaintenanceVMsCannotMigrate) || !strings.Contains(errOut, pin+" (it is pinned to host "+b.Name) ||
		strings.Contains(errOut, vm+" (") {
		t.Errorf("host maintenance with a pinned VM:\n%s", errOut)
	}
	var hb engineapi.Host
	c.json(&hb, "host", "show", b.Name)
	if hb.Status != "Up" {
		t.Errorf("after the refusal, %s is %s", b.Name, hb.Status)
	}
	if v := c.vm(vm); v.State != "Up" || v.Host != b.Name {
		t.Errorf("after the refusal: %s on %s", v.State, v.Host)
	}

	// With --stop-vms: the pinned VM stops, the other migrates away.
	out = c.run("", "host", "maintenance", b.Name, "--stop-vms")
	t.Logf("host maintenance --stop-vms:\n%s", out)
	for _, want := range []string{"VM " + vm + " migrated: migrated to " + a.Name, "VM " + pin + " stopped", "Host " + b.Name + " is in Maintenance."} {
		if !strings.Contains(out, want) {
			t.Errorf("host maintenance --stop-vms lacks %q", want)
		}
	}
	c.json(&hb, "host", "show", b.Name)
	if hb.Status != "Maintenance" {
		t.Errorf("%s is %s, not Maintenance", b.Name, hb.Status)
	}
	if v := c.vm(vm); v.State != "Up" || v.Host != a.Name {
		t.Errorf("after the evacuation: %s on %s", v.State, v.Host)
	}
	if v := c.vm(pin); v.State != "Down" {
		t.Errorf("the pinned VM is %s", v.State)
	}
	if _, ok := domainAt(t, b.uri, b.DomainPrefix+pin); ok {
		if st, _ := domainAt(t, b.uri, b.DomainPrefix+pin); st == libvirtconn.StateRunning {
			t.Errorf("the pinned VM still runs on %s", b.Name)
		}
	}
	con.stillAttached("after the evacuation")
	n = con.waitPast(n, counterWait, "after the evacuation")
	t.Logf("the guest counts on %s again: %d", a.Name, n)
	runsOnlyOn(t, "after the evacuation", vm, a, b)
	if _, boots := con.last(); boots != 1 {
		t.Errorf("the guest booted %d times", boots)
	}

	// The events of each step.
	var page engineapi.EventPage
	c.json(&page, "events", "--action", "vm.migrate", "--limit", "20")
	codes := map[string]int{}
	for _, e := range page.Events {
		if e.ObjectName == vm {
			codes[e.Code]++
		}
	}
	want := map[string]int{api.CodeVMMigrationStart: 3, api.CodeVMMigrationDone: 2, api.CodeVMMigrationCanceled: 1}
	for code, k := range want {
		if codes[code] != k {
			t.Errorf("events %s: %d, want %d (%v)", code, codes[code], k, codes)
		}
	}
	c.run("", "host", "activate", b.Name)
	for _, name := range []string{vm, pin} {
		c.run("", "vm", "delete", "--force", name)
	}
}

// migrateX86 is TestMigration's x86_64 part (see there).
func migrateX86(t *testing.T, env []string, prefix string, a, b migHost) {
	initrd := counterInitrd(t, "amd64")
	c := &cli{t: t, env: env}
	vm := prefix + "amd"
	out := c.run("", "vm", "create", vm, "--cluster", a.Cluster, "--memory", "512", "--cpus", "1", "--host", a.Name, "--kernel", debianAMD64Kernel,
		"--initrd", initrd, "--cmdline", x86Console+" quiet polyvirt.counter=1", "--start")
	if !strings.Contains(out, "on "+a.Name+"… starting… running") {
		t.Fatalf("vm create --start: not on %s:\n%s", a.Name, out)
	}
	c.run("", "vm", "update", vm, "--unpin")
	t.Cleanup(func() { runCLI(t, env, "", "vm", "delete", "--force", vm) })
	con := attachConsole(t, env, vm)
	n := con.waitPast(-1, counterWait, "the boot")
	t.Logf("the guest counts: %d", n)

	out = c.run("", "vm", "migrate", vm, "--to", b.Name)
	t.Logf("vm migrate:\n%s", out)
	if !strings.Contains(out, "Migrated VM "+vm+" to "+b.Name+" in ") {
		t.Fatalf("vm migrate did not say it migrated to %s:\n%s", b.Name, out)
	}
	n = con.waitPast(n, counterWait, "after the migration to "+b.Name)
	t.Logf("the guest counts on %s: %d", b.Name, n)
	if v := c.vm(vm); v.State != "Up" || v.Host != b.Name {
		t.Errorf("after the migration: %s on %s", v.State, v.Host)
	}
	runsOnlyOn(t, "after the migration", vm, b, a)

	// The next part migrates to b too: b comes back even when this part
	// ends early (a guest found crashed, say).
	t.Cleanup(func() { runCLI(t, env, "", "host", "activate", b.Name) })
	out = c.run("", "host", "maintenance", b.Name)
	t.Logf("host maintenance:\n%s", out)
	if !strings.Contains(out, "VM "+vm+" migrated: migrated to "+a.Name) || !strings.Contains(out, "Host "+b.Name+" is in Maintenance.") {
		t.Errorf("host maintenance:\n%s", out)
	}
	n = con.waitPast(n, counterWait, "after the evacuation")
	t.Logf("the guest counts on %s again: %d", a.Name, n)
	var hb engineapi.Host
	c.json(&hb, "host", "show", b.Name)
	if hb.Status != "Maintenance" {
		t.Errorf("%s is %s, not Maintenance", b.Name, hb.Status)
	}
	if v := c.vm(vm); v.State != "Up" || v.Host != a.Name {
		t.Errorf("after the evacuation: %s on %s", v.State, v.Host)
	}
	runsOnlyOn(t, "after the evacuation", vm, a, b)
	if _, boots := con.last(); boots != 1 {
		t.Errorf("the guest booted %d times", boots)
	}
}

// migrateLocalDisk is TestMigration's local-disk part (see there).
func migrateLocalDisk(t *testing.T, env []string, prefix string, a, b migHost, d *libvirtns.Daemon) {
	if d == nil {
		t.Fatalf("%s has no libvirtd of the lab's own", b.Name)
	}
	dir := filepath.Join(hostpath.ImagesDir, "e2e-mig-"+randomSuffix()[:8])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	initrd := filepath.Join(dir, "disk.cpio")
	mods := storageInitramfs(t, "amd64", "amd64", debianAMD64Kernel, initrd, "virtio_pci", "virtio_blk")

	// The disk, on x86_64-a only: its first line says which it is.
	if err := os.MkdirAll(lab.LocalDisksDir, 0o755); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(lab.LocalDisksDir, prefix+"disk.img")
	content := "polyvirt-local-disk-" + randomSuffix()
	t.Cleanup(func() { os.Remove(disk); os.Remove(d.OwnPath(disk)) })
	f, err := os.OpenFile(disk, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(16 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	firstLineOf := func(path string) (string, error) {
		b, err := os.ReadFile(path)
		line, _, _ := strings.Cut(string(b), "\n")
		return line, err
	}

	c := &cli{t: t, env: env}
	vm := prefix + "disk"
	out := c.run("", "vm", "create", vm, "--cluster", a.Cluster, "--memory", "256", "--cpus", "1", "--host", a.Name, "--kernel", debianAMD64Kernel,
		"--initrd", initrd, "--disk", disk, "--cmdline", x86Console+" quiet polyvirt.counter=1 polyvirt.modules="+strings.Join(mods, ",")+" polyvirt.disk=/dev/vda")
	t.Cleanup(func() { runCLI(t, env, "", "vm", "delete", "--force", vm) })
	if !strings.Contains(out, "VM "+vm+" created") {
		t.Fatalf("vm create:\n%s", out)
	}
	startUnderLoad(t, c, vm, a.Name)
	c.run("", "vm", "update", vm, "--unpin")
	con := attachConsole(t, env, vm)
	n := con.waitPast(-1, counterWait, "the boot")
	diskLine := "polyvirt-disk " + content
	// readsDisk waits until the guest read its disk twice more than
	// before (once on its new host at least).
	readsDisk := func(before int, when string) int {
		t.Helper()
		deadline := time.Now().Add(counterWait)
		for {
			s := con.out.String()
			if k := strings.Count(s, diskLine); k >= before+2 {
				return k
			}
			if strings.Contains(s, "polyvirt-disk-error") || time.Now().After(deadline) {
				t.Fatalf("%s: the guest does not read %q from its disk:\n%s", when, diskLine, tailString(s, 2000))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	reads := readsDisk(-1, "the boot")

	for _, hop := range []struct{ from, to migHost }{{a, b}, {b, a}} {
		when := "after the migration to " + hop.to.Name
		out = c.run("", "vm", "migrate", vm, "--to", hop.to.Name)
		t.Logf("vm migrate:\n%s", out)
		for _, want := range []string{"disks: vda copied to " + hop.to.Name + " (only " + hop.from.Name + " has it)", "Migrated VM " + vm + " to " + hop.to.Name + " in "} {
			if !strings.Contains(out, want) {
				t.Errorf("vm migrate to %s lacks %q", hop.to.Name, want)
			}
		}
		n = con.waitPast(n, counterWait, when)
		reads = readsDisk(reads, when)
		if v := c.vm(vm); v.State != "Up" || v.Host != hop.to.Name || v.Migration == nil || len(v.Migration.CopiedDisks) != 1 {
			t.Errorf("%s: %s on %s, migration %+v", when, v.State, v.Host, v.Migration)
		}
		runsOnlyOn(t, when, vm, hop.to, hop.from)
		// Its console log is the destination agent's, not the source's.
		for _, active := range []bool{true, false} {
			if logs := consoleLogs(t, hop.to.uri, hop.to.DomainPrefix+vm, !active); len(logs) == 0 {
				t.Errorf("%s: the domain on %s logs its console nowhere", when, hop.to.Name)
			} else {
				for _, l := range logs {
					if !strings.Contains(l, "/agents/"+hop.to.Name+"/") {
						t.Errorf("%s: the domain on %s (active %v) logs its console to %s, not in its agent's directory", when, hop.to.Name, active, l)
					}
				}
			}
		}
		// The disk is the destination's only now.
		here, there := disk, d.OwnPath(disk)
		if hop.to.Name == b.Name {
			here, there = there, here
		}
		if line, err := firstLineOf(here); err != nil || line != content {
			t.Errorf("%s: the disk on %s (%s): %q, %v; want %q", when, hop.to.Name, here, line, err, content)
		}
		if _, err := os.Stat(there); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the disk is still on %s (%s): %v", when, hop.from.Name, there, err)
		}
	}
	con.stillAttached("after the migrations")
	c.run("", "vm", "delete", "--force", vm)
}

// consoleLogs are the log files of a domain's consoles and serial ports
// (in its persistent definition with inactive).
func consoleLogs(t *testing.T, uri, name string, inactive bool) []string {
	t.Helper()
	c, err := libvirtconn.DialDomains(uri, 10*time.Second)
	if err != nil {
		t.Fatalf("libvirt at %s: %v", uri, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := c.LookupDomain(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	x, err := c.DomainXML(ctx, d, inactive)
	if err != nil {
		t.Fatal(err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	var logs []string
	if dom.Devices != nil {
		for _, con := range dom.Devices.Consoles {
			if con.Log != nil {
				logs = append(logs, con.Log.File)
			}
		}
		for _, ser := range dom.Devices.Serials {
			if ser.Log != nil {
				logs = append(logs, ser.Log.File)
			}
		}
	}
	return logs
}

// TestGuestKernelCrash: the consoles of guests seen crashed after a
// migration are told from a guest that counts on.
func TestGuestKernelCrash(t *testing.T) {
	for _, c := range []struct{ console, want string }{
		{"polyvirt-counter 86\npolyvirt-counter 87\n[   11.082389] Oops: Kernel access of bad area, sig: 11 [#2]\n", "Oops: "},
		{"[    9.687058] Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: pSeries_lpar_hpte_insert+0x15c/0x180\n", "Kernel panic - not syncing"},
		{"[   29.398174] \n[   30.402972] note: init[74] exited with irqs disabled\n", "exited with irqs disabled"},
		{"polyvirt-boot 0011223344556677\npolyvirt-counter 1\npolyvirt-counter 2\n", ""},
		{"[   52.1] watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [init:1]\npolyvirt-counter 3\n", ""},
	} {
		if got := guestKernelCrash(c.console); got != c.want {
			t.Errorf("guestKernelCrash(%q) = %q, want %q", c.console, got, c.want)
		}
	}
}
