package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine"
	"polyvirt/internal/lab"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/libvirtns"
)

// bootLine is the test init's boot line, with the boot's random id.
var bootLine = regexp.MustCompile(`polyvirt-boot (\S+)`)

// faultBandwidth (MiB/s) holds the migration whose destination's
// libvirtd dies to a first pass of a few seconds (the guest's memory is
// mostly zero pages, sent as flags), so that the fault lands in it. The
// other faults need no hold: the test reads libvirt's job every 20 ms and
// strikes as soon as memory moves. Emulated guests that migrated slowly
// (a minute at 2 MiB/s, or seconds at 32 MiB/s) came out of the migration
// with corrupt memory now and then on this machine's QEMU 7.2, with or
// without a fault (their kernel crashed on arrival): the migrations that
// must arrive are not held.
const faultBandwidth = "32"

// faultWait bounds the end of a migration hit by a fault: libvirt goes
// on (or gives up) at the held bandwidth, a killed process starts again
// within seconds, the restarted engine adopts the migration after its
// AdoptAfter.
const faultWait = 8 * time.Minute

// counterGoesOn attaches a console to the VM (through the engine, for a
// while) and waits until its counter went 10 past after; it fails when
// the console shows a boot of another id than boot (the guest started
// again). It returns the counter.
func counterGoesOn(t *testing.T, env []string, vm, boot string, after int, when string) int {
	t.Helper()
	deadline := time.Now().Add(counterWait)
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(polyvirtBin(t), "vm", "console", vm)
		cmd.Env = append(os.Environ(), env...)
		_, slave := openPTY(t)
		out := &lockedBuffer{}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		n, ended := -1, false
		for !ended {
			select {
			case <-done:
				ended = true
			case <-time.After(200 * time.Millisecond):
			}
			s := out.String()
			crash := guestKernelCrash(s)
			if crash == "" && strings.Contains(s, "BUG: ") {
				// Here a kernel's BUG (a soft lockup too) fails the test.
				crash = "BUG: "
			}
			if crash != "" {
				cmd.Process.Kill()
				<-done
				t.Fatalf("%s: the guest crashed (%q):\n%s", when, crash, tailString(s, 3000))
			}
			for _, m := range bootLine.FindAllStringSubmatch(s, -1) {
				if m[1] != boot {
					cmd.Process.Kill()
					<-done
					t.Fatalf("%s: the guest booted again (boot %s, first %s):\n%s", when, m[1], boot, tailString(s, 2000))
				}
			}
			if m := counterLine.FindAllStringSubmatch(s, -1); len(m) > 0 {
				n, _ = strconv.Atoi(m[len(m)-1][1])
			}
			if n > after+10 {
				cmd.Process.Kill()
				<-done
				return n
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				<-done
				t.Fatalf("%s: the counter did not go past %d within %s (last %d):\n%s", when, after, counterWait, n, tailString(s, 2000))
			}
		}
		// The console ended (the engine went away meanwhile): again.
		t.Logf("%s: vm console ended (attempt %d): %s", when, attempt, tailString(out.String(), 300))
		time.Sleep(time.Second)
	}
}

// migrationCodes counts the VM's migration events by code.
func migrationCodes(c *cli, vm string) map[string]int {
	var page engineapi.EventPage
	c.json(&page, "events", "--action", "vm.migrate", "--limit", "200")
	codes := map[string]int{}
	for _, e := range page.Events {
		if e.ObjectName == vm {
			codes[e.Code]++
		}
	}
	return codes
}

// killPID kills a process of the lab (-9) and waits until the lab's
// supervisor started it again (pid() differs).
func killPID(t *testing.T, what string, pid func() int) {
	t.Helper()
	old := pid()
	if old == 0 {
		t.Fatalf("%s does not run", what)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s (%d): %v", what, old, err)
	}
	t.Logf("killed %s (pid %d)", what, old)
	deadline := time.Now().Add(time.Minute)
	for {
		if p := pid(); p != 0 && p != old {
			t.Logf("%s runs again (pid %d)", what, p)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not started again within a minute", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMigrationFaults hits live migrations in the middle of their memory
// copy, in a lab of polyvirt up's whose engine runs as a process: an
// x86_64 guest (Debian's amd64 kernel with the test init's counter) moves
// between x86_64-a (this machine's libvirtd) and x86_64-b (a libvirtd of
// the lab's own), its source's libvirt job watched so that each fault
// lands while memory is being copied (the faults are the same for every architecture: an emulated
// x86_64 guest is the cheapest that migrates):
//
//   - kill -9 of the source's agent (started again by the lab);
//   - kill -9 of the destination's agent;
//   - kill -9 of the destination's libvirtd, started again afterwards:
//     the migration fails and the VM runs on its source;
//   - kill -9 of the engine (started again): the restarted engine finds
//     the migration it did not see end and asks both agents where the VM
//     runs (a VM_MIGRATION_RECONCILED event).
//
// After each: the VM's domain runs on exactly one daemon and the other has
// none, the engine's VM is Up on that host with no migration in flight,
// the VM is listed there only, the last migration event names the outcome
// (completed: it runs on the destination; failed: on its source), and the
// guest's counter goes on without a second boot.
func TestMigrationFaults(t *testing.T) {
	requireMigratingQEMU(t)
	requireAMD64Kernel(t)
	if why := libvirtns.Require(); why != "" {
		missing(t, "a libvirt daemon of the lab's own for x86_64-b: "+why)
	}
	prefix := "mf" + randomSuffix()[:4] + "-"
	removeDomainsAtCleanup(t, "lab-"+prefix)
	l, env := startLab(t, lab.Options{Dir: filepath.Join(t.TempDir(), "lab"), Listen: "127.0.0.1:0", NamePrefix: prefix, HADelay: time.Hour,
		Monitor: engine.MonitorConfig{StatsInterval: time.Second, Failures: 3}, SecondNative: true, EngineProcess: true})
	var a, b migHost
	for _, h := range l.Hosts() {
		switch h.Name {
		case prefix + "x86_64-a":
			a = migHost{Host: h, uri: libvirtURI()}
		case prefix + "x86_64-b":
			if d := l.Daemon(h.Name); d != nil {
				b = migHost{Host: h, uri: d.URI}
			}
		}
	}
	if a.Name == "" || b.Name == "" || a.Cluster != b.Cluster {
		t.Fatalf("the lab has no x86_64-a and x86_64-b (on a libvirtd of its own) in one cluster: %+v", l.Hosts())
	}
	d := l.Daemon(b.Name)
	c := &cli{t: t, env: env}
	initrd := counterInitrd(t, "amd64")
	vm := prefix + "cnt"
	c.run("", "vm", "create", vm, "--cluster", a.Cluster, "--memory", "256", "--cpus", "1", "--host", a.Name, "--kernel", debianAMD64Kernel,
		"--initrd", initrd, "--cmdline", x86Console+" quiet polyvirt.counter=1")
	startUnderLoad(t, c, vm, a.Name)
	c.run("", "vm", "update", vm, "--unpin")
	con := attachConsole(t, env, vm)
	n := con.waitPast(-1, counterWait, "the boot")
	m := bootLine.FindStringSubmatch(con.out.String())
	if m == nil {
		t.Fatalf("no boot line:\n%s", tailString(con.out.String(), 2000))
	}
	boot := m[1]
	con.cmd.Process.Kill()
	t.Logf("the guest (boot %s) counts: %d", boot, n)

	hosts := map[string]migHost{a.Name: a, b.Name: b}
	other := func(h migHost) migHost {
		if h.Name == a.Name {
			return b
		}
		return a
	}
	// settled checks that the VM runs in exactly one place, the engine
	// saying which; it returns that host.
	settled := func(t *testing.T, when string) migHost {
		t.Helper()
		c := &cli{t: t, env: env}
		v := c.waitVM(vm, faultWait, func(v engineapi.VM) bool { return v.State != "MigratingFrom" })
		on, ok := hosts[v.Host]
		if v.State != "Up" || !ok {
			t.Fatalf("%s: VM %s is %s on %q; want Up on %s or %s", when, vm, v.State, v.Host, a.Name, b.Name)
		}
		if v.Migration != nil && !strings.Contains("completed failed canceled", v.Migration.Phase) {
			t.Errorf("%s: the VM's migration is still %s", when, v.Migration.Phase)
		}
		runsOnlyOn(t, when, vm, on, other(on))
		for _, h := range []migHost{a, b} {
			var vms []engineapi.VM
			c.json(&vms, "vm", "list", "--host", h.Name)
			listed := false
			for _, x := range vms {
				listed = listed || x.Name == vm
			}
			if listed != (h.Name == on.Name) {
				t.Errorf("%s: VM %s listed on %s: %v; it runs on %s", when, vm, h.Name, listed, on.Name)
			}
		}
		n = counterGoesOn(t, env, vm, boot, n, when)
		t.Logf("%s: the VM runs on %s only; the guest counts %d", when, on.Name, n)
		return on
	}
	// ensureOn moves the VM to h when it is elsewhere (a fault before
	// left it on its source).
	ensureOn := func(t *testing.T, h migHost) {
		t.Helper()
		c := &cli{t: t, env: env}
		if v := c.vm(vm); v.Host != h.Name {
			c.run("", "vm", "migrate", vm, "--to", h.Name)
			if on := settled(t, "moved back to "+h.Name); on.Name != h.Name {
				t.Fatalf("VM %s did not move to %s", vm, h.Name)
			}
		}
	}
	// hit starts a migration from → to at bw MiB/s, runs fault once the
	// memory is being copied, and checks the outcome; it returns where
	// the VM runs.
	hit := func(t *testing.T, from, to migHost, bw string, fault func(t *testing.T)) migHost {
		c := &cli{t: t, env: env}
		ensureOn(t, from)
		before := migrationCodes(c, vm)
		var job libvirtconn.JobStats
		for attempt := 1; ; attempt++ {
			args := []string{"vm", "migrate", vm, "--to", to.Name, "--detach"}
			if bw != "" {
				args = append(args, "--max-bandwidth", bw)
			}
			c.run("", args...)
			var ok bool
			if job, ok = waitCopying(t, c, vm, from.uri, from.DomainPrefix+vm); ok {
				break
			}
			// It failed before it copied anything (on this shared machine:
			// a display port another daemon's guest took): again.
			v := c.vm(vm)
			t.Logf("the migration failed before its copy (attempt %d): %+v", attempt, v.Migration)
			if attempt == 3 || v.State != "Up" || v.Host != from.Name {
				t.Fatalf("the migration does not start copying: %s on %s, %+v", v.State, v.Host, v.Migration)
			}
			before = migrationCodes(c, vm)
		}
		t.Logf("copying memory: %d of %d bytes (pass %d)", job.MemProcessed, job.MemTotal, job.MemIteration)
		fault(t)
		on := settled(t, "after the fault")
		after := migrationCodes(c, vm)
		want := api.CodeVMMigrationFailed
		if on.Name == to.Name {
			want = api.CodeVMMigrationDone
		}
		if after[want] != before[want]+1 || after[api.CodeVMMigrationStart] != before[api.CodeVMMigrationStart]+1 {
			t.Errorf("migration events before %v, after %v: want one more %s (it runs on %s)", before, after, want, on.Name)
		}
		if v := c.vm(vm); v.Migration == nil || v.Migration.Phase != map[bool]string{true: "completed", false: "failed"}[on.Name == to.Name] {
			t.Errorf("the VM's last migration: %+v; it runs on %s", v.Migration, on.Name)
		}
		return on
	}

	t.Run("source-agent", func(t *testing.T) {
		hit(t, a, b, "", func(t *testing.T) {
			killPID(t, "the agent of "+a.Name, func() int { return l.AgentPID(a.Name) })
		})
	})
	t.Run("destination-agent", func(t *testing.T) {
		hit(t, b, a, "", func(t *testing.T) {
			killPID(t, "the agent of "+a.Name, func() int { return l.AgentPID(a.Name) })
		})
	})
	t.Run("destination-libvirtd", func(t *testing.T) {
		on := hit(t, a, b, faultBandwidth, func(t *testing.T) {
			pid := d.LibvirtdPid()
			if err := d.KillLibvirtd(syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 of %s's libvirtd: %v", b.Name, err)
			}
			t.Logf("killed %s's libvirtd (pid %d)", b.Name, pid)
			// The source sees its peer go; the daemon comes back later.
			c := &cli{t: t, env: env}
			v := c.waitVM(vm, faultWait, func(v engineapi.VM) bool { return v.State != "MigratingFrom" })
			t.Logf("with %s's libvirtd dead: %s on %s (%+v)", b.Name, v.State, v.Host, v.Migration)
			// The engine sees the daemon gone before it comes back: else
			// the Up read after the restart could be the one from before
			// the outage, and the next migration find the host
			// NonOperational the moment after.
			waitHostStatus(t, env, b.Name, "NonOperational", 2*time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := d.StartLibvirtd(ctx); err != nil {
				t.Fatalf("%s's libvirtd does not start again: %v", b.Name, err)
			}
			// Its agent reconnects, and judges what the daemon kept.
			waitHostUp(t, env, b.Name, 2*time.Minute)
			waitNoDomain(t, b.uri, b.DomainPrefix+vm, 2*time.Minute)
		})
		if on.Name != a.Name {
			t.Errorf("the VM runs on %s after its destination's libvirtd died mid-copy; want its source %s", on.Name, a.Name)
		}
	})
	t.Run("engine", func(t *testing.T) {
		c := &cli{t: t, env: env}
		before := migrationCodes(c, vm)
		hit(t, a, b, "", func(t *testing.T) {
			killPID(t, "the engine", l.EnginePID)
		})
		if after := migrationCodes(c, vm); after[api.CodeVMMigrationReconciled] != before[api.CodeVMMigrationReconciled]+1 {
			t.Errorf("events before %v, after %v: the restarted engine did not say it reconciled the migration", before, after)
		}
	})
	c.run("", "vm", "delete", "--force", vm)
}

// startUnderLoad starts a VM, and starts it again when the CLI gave up
// waiting for the engine (on a loaded machine a start may take longer
// than the client's 30 s): the VM must end Up on host.
func startUnderLoad(t *testing.T, c *cli, vm, host string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		out, errOut, code := runCLI(t, c.env, "", "vm", "start", vm)
		if code != 0 {
			t.Logf("vm start (attempt %d): %s%s", attempt, out, errOut)
		}
		v := c.waitVM(vm, 5*time.Minute, func(v engineapi.VM) bool {
			return v.State == "Up" || v.State == "Down" || v.State == "Paused"
		})
		if v.State == "Up" {
			if v.Host != host {
				t.Fatalf("VM %s started on %s; want %s", vm, v.Host, host)
			}
			return
		}
		if attempt == 3 {
			t.Fatalf("VM %s does not start (%s): %s", vm, v.State, errOut)
		}
	}
}

// waitCopying waits until libvirt copies the memory of a domain it sends
// (its migration job has moved bytes), reading the job at the source's
// daemon itself: the fault must land in the copy, which lasts seconds.
// False: the engine says the migration ended first.
func waitCopying(t *testing.T, cl *cli, vm, uri, name string) (libvirtconn.JobStats, bool) {
	t.Helper()
	c, err := libvirtconn.DialDomains(uri, 10*time.Second)
	if err != nil {
		t.Fatalf("libvirt at %s: %v", uri, err)
	}
	defer c.Close()
	m, ok := c.(libvirtconn.Migrations)
	if !ok {
		t.Fatalf("libvirt connection %T reads no jobs", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), migrationWait)
	defer cancel()
	d, err := c.LookupDomain(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	for {
		job, err := m.DomainJob(ctx, d, false)
		if err == nil && job.Type.Active() && job.Operation == libvirtconn.JobMigrationOut && job.MemProcessed > 0 {
			return job, true
		}
		if time.Since(asked) > 2*time.Second {
			asked = time.Now()
			out, _, code := runCLI(t, cl.env, "", "vm", "show", vm, "-o", "json")
			var v engineapi.VM
			if code == 0 && json.Unmarshal([]byte(out), &v) == nil && v.State != "MigratingFrom" {
				return job, false
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("domain %s at %s: no migration copying its memory within %s (last %+v, %v)", name, uri, migrationWait, job, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitNoDomain waits until the libvirt daemon at uri has no domain of
// that name.
func waitNoDomain(t *testing.T, uri, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, ok := domainAt(t, uri, name)
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still has domain %s (%v) after %s", uri, name, st, within)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitHostUp waits until the engine says a host is Up.
func waitHostUp(t *testing.T, env []string, host string, within time.Duration) {
	t.Helper()
	waitHostStatus(t, env, host, "Up", within)
}

// waitHostStatus waits until the engine says the host has status.
func waitHostStatus(t *testing.T, env []string, host, status string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var h engineapi.Host
	for time.Now().Before(deadline) {
		out, _, code := runCLI(t, env, "", "host", "show", host, "-o", "json")
		if code == 0 && json.Unmarshal([]byte(out), &h) == nil && h.Status == status {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("host %s is %s, not %s, after %s", host, h.Status, status, within)
}

// TestMigrationRefusedCPULevel: a VM that runs at POWER9 level (host-model
// without a compatibility level, on a POWER9 host of a POWER8 cluster)
// cannot move to the cluster's POWER8 host: vm migrate --to that host, and
// vm migrate without a destination, are refused with the code and the
// host's reason (its CPU level below the running VM's), through the CLI,
// and the VM runs on where it was, no migration started.
func TestMigrationRefusedCPULevel(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	requirePPCKernel(t)
	eng := initEngine(t, "mig-cpu", nil)
	eng.start()
	c := newCLI(t)
	c.run(eng.token+"\n", "login", "--engine", eng.url, "--ca-file", eng.caFile)
	c.run("", "cluster", "create", "p8", "--cpu-type", "IBM POWER8")
	sfx := randomSuffix()[:6]
	p8, p9 := "p8-"+sfx, "p9-"+sfx
	removeDomainsAtCleanup(t, "e2e-"+p8+"-")
	removeDomainsAtCleanup(t, "e2e-"+p9+"-")
	joinAgent(t, c, eng, p8, "p8", "--profile", "s822l-power8e")
	joinAgent(t, c, eng, p9, "p8", "--profile", "ac922-power9")
	for _, h := range []string{p8, p9} {
		waitHost(t, eng.api, h, 2*time.Minute, hostStatus("Up"))
	}

	initrd := counterInitrd(t, "ppc64le")
	def := filepath.Join(t.TempDir(), "vm.yaml")
	if err := os.WriteFile(def, []byte("name: host-model\narch: ppc64le\ncpu:\n  mode: host-model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := "p9vm-" + sfx
	out := c.run("", "vm", "create", vm, "-f", def, "--name", vm, "--cluster", "p8", "--host", p9, "--memory", "256", "--kernel", debianPPCKernel,
		"--initrd", initrd, "--cmdline", "console=hvc0 quiet polyvirt.counter=1", "--start")
	if !strings.Contains(out, "on "+p9+"… starting… running") {
		t.Fatalf("vm create --start: not on %s:\n%s", p9, out)
	}
	t.Cleanup(func() { runCLI(t, c.env, "", "vm", "delete", "--force", vm) })
	c.run("", "vm", "update", vm, "--unpin")

	reason := regexp.MustCompile(regexp.QuoteMeta(api.CodeVMCPULevelAboveHost+" (host:"+p8+"): ") + `.*its CPU level \d+ \(IBM POWER8\) is lower than the running VM's \d+ \(IBM POWER9\)`)
	for _, args := range [][]string{{"--to", p8}, nil} {
		errOut := c.fail("", append([]string{"vm", "migrate", vm}, args...)...)
		t.Logf("vm migrate %v:\n%s", args, errOut)
		if !reason.MatchString(errOut) {
			t.Errorf("vm migrate %s %v: the refusal does not say why %s cannot take it:\n%s", vm, args, p8, errOut)
		}
		for _, want := range []string{api.CodeMigrationNoDestination + ": Cannot migrate VM " + vm} {
			if !strings.Contains(errOut, want) {
				t.Errorf("vm migrate %s %v: the refusal lacks %q:\n%s", vm, args, want, errOut)
			}
		}
	}
	if v := c.vm(vm); v.State != "Up" || v.Host != p9 || v.Migration != nil {
		t.Errorf("after the refusals: %s on %s, migration %+v", v.State, v.Host, v.Migration)
	}
	if codes := migrationCodes(c, vm); codes[api.CodeVMMigrationStart] != 0 {
		t.Errorf("migration events after the refusals: %v", codes)
	}
}
