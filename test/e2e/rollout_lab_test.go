package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"polyvirt/internal/agent"
	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/engine"
	"polyvirt/internal/firmware/simfw"
	"polyvirt/internal/lab"
	"polyvirt/internal/libvirtns"
)

// rolloutWait bounds one rollout of the lab's POWER hosts: each host's
// evacuation is a live migration or two of a 512 MiB guest under TCG on
// a shared machine (a few minutes each when the machine is loaded).
const rolloutWait = 30 * time.Minute

// rolloutBootWait bounds the boot of the test's two POWER guests, started
// one after the other on a machine shared by several test runs (their
// kernels under TCG took more than counterWait at a load average of 40).
const rolloutBootWait = 8 * time.Minute

// consoleFollowMargin is what a console's largest gap between two counter
// lines may exceed the largest downtime the engine reported for its VM's
// migrations by. The console attached through the engine is one stream
// from the source host's agent, then one from the destination's: the
// engine's console bridge follows the VM once the engine recorded the
// migration's outcome, which it does after the destination reports the
// arrival (read every 100 ms) and libvirt's measured downtime (waited for
// up to 5 s, migrate.go's downtimeWait), and then opens the serial console
// on the destination's agent (a TLS connection, libvirt's console
// stream). The guest runs on the destination meanwhile, but the lines it
// prints before the bridge reads them are lost (QEMU drops a pty's output
// that nobody reads): the console sees a gap of the downtime plus that
// reconnection — 3 to 4 s over the downtime on this 2-core machine at a
// load of 17. 5 s for the downtime wait and 10 s for the rest. A guest
// that stopped for longer is caught (one that booted again too: its boot
// lines are counted apart).
const consoleFollowMargin = 15 * time.Second

// timedConsole is `polyvirt vm console` attached for the whole test, each
// counter line timed on its arrival.
type timedConsole struct {
	*attachedConsole
	vm string

	mu    sync.Mutex
	part  []byte
	lines []timedLine
}

// timedLine is a counter line and when the console printed it.
type timedLine struct {
	n  int
	at time.Time
}

// Write splits what the console prints into lines, timing each counter
// line, and keeps everything in the attached console's buffer.
func (c *timedConsole) Write(p []byte) (int, error) {
	now := time.Now()
	c.mu.Lock()
	c.part = append(c.part, p...)
	for {
		i := strings.IndexByte(string(c.part), '\n')
		if i < 0 {
			break
		}
		if m := counterLine.FindSubmatch(c.part[:i]); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			c.lines = append(c.lines, timedLine{n: n, at: now})
		}
		c.part = c.part[i+1:]
	}
	c.mu.Unlock()
	return c.out.Write(p)
}

// largestGap is the longest time between two consecutive counter lines,
// and when it ended.
func (c *timedConsole) largestGap() (time.Duration, timedLine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var gap time.Duration
	var at timedLine
	for i := 1; i < len(c.lines); i++ {
		if d := c.lines[i].at.Sub(c.lines[i-1].at); d > gap {
			gap, at = d, c.lines[i]
		}
	}
	return gap, at
}

// attachTimedConsole runs vm console NAME on a terminal of the test's own
// (as attachConsole does), its counter lines timed.
func attachTimedConsole(t *testing.T, env []string, name string) *timedConsole {
	t.Helper()
	_, slave := openPTY(t)
	cmd := exec.Command(polyvirtBin(t), "vm", "console", name)
	cmd.Env = append(os.Environ(), env...)
	g := &attachedConsole{t: t, cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1)}
	c := &timedConsole{attachedConsole: g, vm: name}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, c, c
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-g.done
	})
	return c
}

// migrationDone is one completed migration as the engine's event says it.
var migrationDone = regexp.MustCompile(`Migration completed \(VM: (\S+), Source: (\S+), Destination: (\S+), Duration: (\S+), Downtime: (\d+) ms\)`)

// migrationFigures are a VM's completed migrations from the events: the
// downtimes and durations the engine reported.
func migrationFigures(c *cli, vm string) (downtimes []time.Duration, durations []time.Duration) {
	var page engineapi.EventPage
	c.json(&page, "events", "--action", "vm.migrate", "--limit", "200")
	for _, e := range page.Events {
		if e.Code != api.CodeVMMigrationDone || e.ObjectName != vm {
			continue
		}
		m := migrationDone.FindStringSubmatch(e.Message)
		if m == nil {
			c.t.Errorf("a migration's event does not say its figures: %s", e.Message)
			continue
		}
		ms, _ := strconv.Atoi(m[5])
		d, _ := time.ParseDuration(m[4])
		downtimes, durations = append(downtimes, time.Duration(ms)*time.Millisecond), append(durations, d)
	}
	return downtimes, durations
}

// waitRollout follows a cluster's rollout until it ended; seen is called
// with each status read. A status the CLI cannot get fails the test.
func waitRollout(t *testing.T, c *cli, cluster string, seen func(engineapi.Rollout)) engineapi.Rollout {
	t.Helper()
	return followRollout(t, c, cluster, seen, false)
}

// followRollout is waitRollout; with acrossRestart (the engine is killed
// and started again meanwhile) a status the CLI cannot get while the
// engine is away is asked again instead.
func followRollout(t *testing.T, c *cli, cluster string, seen func(engineapi.Rollout), acrossRestart bool) engineapi.Rollout {
	t.Helper()
	deadline := time.Now().Add(rolloutWait)
	for {
		var r engineapi.Rollout
		out, errOut, code := runCLI(t, c.env, "", "cluster", "firmware", "status", cluster, "-o", "json")
		err := json.Unmarshal([]byte(out), &r)
		switch {
		case (code != 0 || err != nil) && !acrossRestart:
			t.Fatalf("polyvirt cluster firmware status %s: exit %d (%v)\n%s%s", cluster, code, err, out, errOut)
		case code == 0 && err == nil:
			if seen != nil {
				seen(r)
			}
			switch r.State {
			case engineapi.RolloutSucceeded, engineapi.RolloutFailed, engineapi.RolloutAborted:
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not end within %s (last answer: exit %d):\n%s%s", rolloutWait, code, out, errOut)
		}
		time.Sleep(2 * time.Second)
	}
}

// rolloutTimes logs, per host, how a rollout's time went: the evacuation
// (its VMs' live migrations), the simulated reboot (flashed → back), and
// the rest (the engine's decisions and orders, the health checks, the
// commit, the activation and the monitoring's admission): the figures of
// docs/benchmarks.md.
func rolloutTimes(t *testing.T, c *cli, cluster, id string) {
	t.Helper()
	var page engineapi.EventPage
	c.json(&page, "events", "--cluster", cluster, "--limit", "500")
	at := map[string]map[string]time.Time{}
	hostRE := regexp.MustCompile(`host (\S+)`)
	for _, e := range page.Events {
		if e.CorrelationID != id || !strings.HasPrefix(e.Action, "rollout.") {
			continue
		}
		m := hostRE.FindStringSubmatch(e.Message)
		if m == nil {
			continue
		}
		h := m[1]
		if at[h] == nil {
			at[h] = map[string]time.Time{}
		}
		at[h][strings.TrimPrefix(e.Action, "rollout.")] = e.Time
	}
	names := make([]string, 0, len(at))
	for h := range at {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		p := at[h]
		if p["evacuating"].IsZero() || p["done"].IsZero() {
			continue
		}
		total := p["done"].Sub(p["evacuating"])
		evac := p["flashing"].Sub(p["evacuating"])
		reboot := p["checking"].Sub(p["rebooting"])
		t.Logf("rollout %s, host %s: %s in all: evacuation %s, flash and simulated reboot %s, the rest (engine, checks, commit, activation) %s",
			id, h, total.Round(time.Millisecond), evac.Round(time.Millisecond), reboot.Round(time.Millisecond), (total - evac - reboot).Round(time.Millisecond))
	}
}

// TestRolloutLab is issue 15's rollout in the lab: three fake-KVM POWER8
// hosts of one cluster (power8-a on this machine's libvirtd, power8-b and
// power8-c each on a libvirtd of the lab's own), their firmware simulated
// (both banks at SV810_081), and two POWER guests (the test init's
// counter on hvc0, 512 MiB, TCG) running on power8-a and power8-b, each
// with its console attached through the engine for the whole test.
//
//   - A rollout of SV810_133 to the whole cluster: every host evacuated
//     (its VMs live-migrated away), flashed, rebooted, checked, committed
//     and activated, one after the other; every host ends on SV810_133 on
//     both sides; the VMs end Up with one boot each, and each console's
//     largest gap between two counter lines stays within the largest
//     downtime the engine reported for that VM's migrations plus
//     consoleFollowMargin.
//   - A rollout of SV810_140 to power8-b, power8-a, power8-c with a fault
//     on power8-b (simfw.BootFailsFile: its reboot comes back on the
//     permanent side): power8-b's update is rejected back to SV810_133,
//     the rollout stops (FIRMWARE_LEVEL_NOT_NEW), power8-b stays in
//     Maintenance with the reason; power8-a and power8-c are untouched
//     (Up, on SV810_133, never flashed; their uploaded image cancelled).
//   - With power8-b still in Maintenance, a rollout of SV810_140 to
//     power8-a and power8-c with --max-unavailable 2: the second host
//     waits while the first is out, since the VMs would have no host, and
//     the status and the events say why; once the first is back the second
//     goes on, and both end on SV810_140.
//   - A rollout of SV810_150 to power8-a and power8-c, the engine (a
//     process of the lab's) killed -9 once the first host is past its
//     evacuation: the restarted engine resumes it from its database, it
//     succeeds, each host flashed once, the VMs Up.
func TestRolloutLab(t *testing.T) {
	requireMigratingQEMU(t)
	requirePPCKernel(t)
	if why := libvirtns.Require(); why != "" {
		missing(t, "libvirt daemons of the lab's own for power8-b and power8-c: "+why)
	}
	prefix := "r" + randomSuffix()[:5] + "-"
	removeDomainsAtCleanup(t, "lab-"+prefix)
	l, env := startLab(t, lab.Options{Dir: filepath.Join(t.TempDir(), "lab"), Listen: "127.0.0.1:0", NamePrefix: prefix, HADelay: time.Hour,
		Monitor: engine.MonitorConfig{StatsInterval: time.Second, Failures: 3}, ThirdPower: true, EngineProcess: true})
	c := &cli{t: t, env: env}
	var a, b, cc lab.Host
	for _, h := range l.Hosts() {
		switch h.Name {
		case prefix + "power8-a":
			a = h
		case prefix + "power8-b":
			b = h
		case prefix + "power8-c":
			cc = h
		}
	}
	if a.Name == "" || b.Name == "" || cc.Name == "" || !b.OwnDaemon || !cc.OwnDaemon || a.Cluster != b.Cluster || a.Cluster != cc.Cluster {
		t.Fatalf("the lab has no power8-a, power8-b and power8-c (on libvirt daemons of its own) in one cluster: %+v", l.Hosts())
	}
	cluster := a.Cluster
	initrd := counterInitrd(t, "ppc64le")
	var cons []*timedConsole
	for _, on := range []lab.Host{a, b} {
		vm := prefix + "cnt-" + strings.TrimPrefix(on.Name, prefix)
		out := c.run("", "vm", "create", vm, "--cluster", cluster, "--memory", "512", "--cpus", "1", "--host", on.Name, "--kernel", debianPPCKernel,
			"--initrd", initrd, "--cmdline", "console=hvc0 quiet polyvirt.counter=1", "--start")
		if !strings.Contains(out, "on "+on.Name+"… starting… running") {
			t.Fatalf("vm create --start: not on %s:\n%s", on.Name, out)
		}
		c.run("", "vm", "update", vm, "--unpin")
		t.Cleanup(func() { runCLI(t, env, "", "vm", "delete", "--force", vm) })
		cons = append(cons, attachTimedConsole(t, env, vm))
	}
	counts := make([]int, len(cons))
	for i, con := range cons {
		counts[i] = con.waitPast(-1, rolloutBootWait, con.vm+"'s boot")
	}
	// Then their first 20 s of counting (200 lines) before the first
	// migration: the first rollout's first evacuation, at once after the
	// boot, moved a guest a few seconds into its life, the time a guest is
	// the most likely to arrive with its memory corrupted (QEMU 7.2, TCG,
	// before the lab needed 9.0: docs/operations.md); one was seen crashed
	// so (others later).
	for i, con := range cons {
		counts[i] = con.waitPast(counts[i]+190, time.Minute, con.vm+"'s first 20 s")
	}
	// The VMs run on; each console's counter never stopped for longer than
	// a migration's downtime (and the console's reconnection).
	checkVMs := func(when string) {
		t.Helper()
		for i, con := range cons {
			con.stillAttached(when)
			counts[i] = con.waitPast(counts[i], counterWait, con.vm+" "+when)
			if v := c.vm(con.vm); v.State != "Up" {
				t.Errorf("%s: VM %s is %s", when, con.vm, v.State)
			}
			downs, durs := migrationFigures(c, con.vm)
			gap, end := con.largestGap()
			var most time.Duration
			for _, d := range downs {
				most = max(most, d)
			}
			t.Logf("%s: VM %s migrated %d times (downtimes %v, durations %v); its console's largest gap %s, ended by counter %d at %s",
				when, con.vm, len(downs), downs, durs, gap.Round(time.Millisecond), end.n, end.at.Format("15:04:05.000"))
			if gap > most+consoleFollowMargin {
				t.Errorf("%s: VM %s's console printed no counter line for %s (until counter %d at %s): longer than its largest migration downtime %s and the console's reconnection (%s)",
					when, con.vm, gap.Round(time.Millisecond), end.n, end.at.Format("15:04:05.000"), most, consoleFollowMargin)
			}
		}
	}
	hostFirmware := func(name string) engineapi.HostFirmware {
		var f engineapi.HostFirmware
		c.json(&f, "host", "firmware", "show", name)
		return f
	}
	levels := func(f engineapi.HostFirmware) (string, string) {
		if f.Inventory == nil || f.Inventory.System == nil {
			return "", ""
		}
		return f.Inventory.System.Temporary.Code(), f.Inventory.System.Permanent.Code()
	}
	flashes := func(f engineapi.HostFirmware) int {
		n := 0
		if f.Operation != nil {
			for _, st := range f.Operation.Steps {
				if st.Step == "flash" && st.Result == "ok" {
					n++
				}
			}
		}
		return n
	}
	hostStatusOf := func(name string) engineapi.Host {
		var h engineapi.Host
		c.json(&h, "host", "show", name)
		return h
	}
	img133 := filepath.Join(moduleRoot(t), "examples", "firmware", "01SV810_133_081.img")
	img140 := filepath.Join(moduleRoot(t), "examples", "firmware", "01SV810_140_133.img")

	// 1. The whole cluster to SV810_133, the VMs running on.
	out := c.run("", "cluster", "firmware", "update", cluster, "--image", img133, "--detach", "--reason", "e2e rolling update")
	t.Logf("cluster firmware update:\n%s", out)
	r := waitRollout(t, c, cluster, nil)
	t.Logf("rollout %s:\n%s", r.ID, c.run("", "cluster", "firmware", "status", cluster))
	if r.State != engineapi.RolloutSucceeded {
		t.Fatalf("the first rollout %s: %s %s", r.State, r.Code, r.Message)
	}
	if len(r.Hosts) != 3 {
		t.Errorf("the rollout updated %d hosts, want power8-a, -b and -c", len(r.Hosts))
	}
	for _, h := range r.Hosts {
		if h.Phase != engineapi.RolloutHostDone || h.FromLevel != "SV810_081" || h.Level != "SV810_133" {
			t.Errorf("rollout host %s: %s %s → %s (level %s)", h.Host, h.Phase, h.FromLevel, h.ToLevel, h.Level)
		}
	}
	for _, h := range []lab.Host{a, b, cc} {
		f := hostFirmware(h.Name)
		if tl, pl := levels(f); tl != "SV810_133" || pl != "SV810_133" || f.Operation == nil || f.Operation.State != "committed" || flashes(f) != 1 {
			t.Errorf("host %s after the rollout: temporary %s, permanent %s, operation %+v (flashed %d times); want SV810_133 committed, flashed once",
				h.Name, tl, pl, f.Operation, flashes(f))
		}
		if hs := hostStatusOf(h.Name); hs.Status != "Up" {
			t.Errorf("host %s is %s after the rollout", h.Name, hs.Status)
		}
	}
	checkVMs("after the rollout to SV810_133")
	rolloutTimes(t, c, cluster, r.ID)

	// 2. power8-b's new image does not boot: rejected, the rollout stops.
	fault := filepath.Join(l.AgentDir(b.Name), agent.SimulatedFirmwareDir, simfw.BootFailsFile)
	if err := os.WriteFile(fault, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.run("", "cluster", "firmware", "update", cluster, "--image", img140, "--hosts", b.Name+","+a.Name+","+cc.Name, "--detach")
	r = waitRollout(t, c, cluster, nil)
	status := c.run("", "cluster", "firmware", "status", cluster)
	t.Logf("rollout %s:\n%s", r.ID, status)
	if r.State != engineapi.RolloutFailed || r.Code != api.CodeFirmwareLevelNotNew || !strings.Contains(r.Message, b.Name) {
		t.Fatalf("the rollout with power8-b's failing image: %s %s %s", r.State, r.Code, r.Message)
	}
	for _, want := range []string{"failed", b.Name, api.CodeFirmwareLevelNotNew} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if hb := r.Hosts[0]; hb.Host != b.Name || hb.Phase != engineapi.RolloutHostFailed || !hb.Rejected || hb.Level != "SV810_133" {
		t.Errorf("power8-b in the rollout: %+v; want failed, rejected back to SV810_133", hb)
	}
	hs := hostStatusOf(b.Name)
	if hs.Status != "Maintenance" || hs.StatusCode != api.CodeFirmwareLevelNotNew || !strings.Contains(hs.StatusMessage, r.ID) || !strings.Contains(hs.StatusMessage, "rejected") {
		t.Errorf("power8-b after the failure: %s (%s: %s); want Maintenance with the reason", hs.Status, hs.StatusCode, hs.StatusMessage)
	}
	if f := hostFirmware(b.Name); f.Operation == nil || f.Operation.State != "rejected" {
		t.Errorf("power8-b's operation: %+v; want rejected", f.Operation)
	} else if tl, pl := levels(f); tl != "SV810_133" || pl != "SV810_133" {
		t.Errorf("power8-b after the reject: temporary %s, permanent %s; want SV810_133", tl, pl)
	}
	for i, h := range []lab.Host{a, cc} {
		f := hostFirmware(h.Name)
		tl, pl := levels(f)
		if tl != "SV810_133" || pl != "SV810_133" || flashes(f) != 0 {
			t.Errorf("%s, which the failed rollout did not start: temporary %s, permanent %s, flashed %d times; want untouched on SV810_133", h.Name, tl, pl, flashes(f))
		}
		if hs := hostStatusOf(h.Name); hs.Status != "Up" {
			t.Errorf("%s is %s after the failed rollout, not Up", h.Name, hs.Status)
		}
		if rh := r.Hosts[i+1]; rh.Phase != engineapi.RolloutHostSkipped {
			t.Errorf("%s in the failed rollout: %s, want skipped", h.Name, rh.Phase)
		}
	}
	ev := c.run("", "events", "--cluster", cluster, "--limit", "300", "-o", "json")
	for _, want := range []string{"rollout.rejecting", "rollout.failed", "rollout.end", "update_flash -r", "rejected: back on SV810_133"} {
		if !strings.Contains(ev, want) {
			t.Errorf("the audit log lacks %q", want)
		}
	}
	checkVMs("after the failed rollout")

	// 3. --max-unavailable 2 while power8-b is in Maintenance: the second
	// host waits until the first is back (its VMs would have no host).
	c.run("", "cluster", "firmware", "update", cluster, "--image", img140, "--hosts", a.Name+","+cc.Name, "--max-unavailable", "2", "--detach")
	var waited string
	r = waitRollout(t, c, cluster, func(r engineapi.Rollout) {
		if strings.Contains(r.Waiting, "no room to evacuate host "+cc.Name) && waited == "" {
			waited = r.Waiting
			t.Logf("the rollout waits: %s (%s is %s)", r.Waiting, a.Name, r.Hosts[0].Phase)
			if r.Hosts[1].Phase != engineapi.RolloutHostPending || r.Hosts[0].Phase == engineapi.RolloutHostPending {
				t.Errorf("while it waits: %s %s, %s %s", r.Hosts[0].Host, r.Hosts[0].Phase, r.Hosts[1].Host, r.Hosts[1].Phase)
			}
		}
	})
	t.Logf("rollout %s:\n%s", r.ID, c.run("", "cluster", "firmware", "status", cluster))
	if waited == "" || !strings.Contains(waited, "would have no host") {
		t.Errorf("the rollout never said that %s waits for room: %q", cc.Name, waited)
	}
	if r.State != engineapi.RolloutSucceeded {
		t.Fatalf("the third rollout %s: %s %s", r.State, r.Code, r.Message)
	}
	if ra, rc := r.Hosts[0], r.Hosts[1]; rc.Started.Before(ra.Finished) {
		t.Errorf("%s started at %s, before %s was back at %s", rc.Host, rc.Started, ra.Host, ra.Finished)
	}
	var page engineapi.EventPage
	c.json(&page, "events", "--cluster", cluster, "--action", "rollout.wait", "--limit", "20")
	found := false
	for _, e := range page.Events {
		found = found || (e.CorrelationID == r.ID && strings.Contains(e.Message, "no room to evacuate host "+cc.Name))
	}
	if !found {
		t.Errorf("no rollout.wait event says why %s waited", cc.Name)
	}
	for _, h := range []lab.Host{a, cc} {
		f := hostFirmware(h.Name)
		if tl, pl := levels(f); tl != "SV810_140" || pl != "SV810_140" || f.Operation == nil || f.Operation.State != "committed" {
			t.Errorf("host %s after the third rollout: temporary %s, permanent %s; want SV810_140 committed", h.Name, tl, pl)
		}
	}
	if f := hostFirmware(b.Name); func() bool { tl, _ := levels(f); return tl != "SV810_133" }() {
		t.Errorf("power8-b, left out, changed: %+v", f.Inventory)
	}
	checkVMs("after the third rollout")
	rolloutTimes(t, c, cluster, r.ID)
	for _, con := range cons {
		if _, boots := con.last(); boots != 1 {
			t.Errorf("VM %s booted %d times", con.vm, boots)
		}
	}

	// 4. The engine killed (-9) in the middle of a rollout of power8-a and
	// power8-c, the VMs running: the restarted engine resumes it, each
	// host is flashed once, none is skipped. (The consoles attached
	// through the engine end with it: the VMs' state is checked instead.)
	img150 := filepath.Join(t.TempDir(), "01SV810_150_140.img")
	if err := os.WriteFile(img150, []byte("POLYVIRT-SIMULATED-FIRMWARE\nlevel=SV810_150\nmachines=8247-21L 8247-22L\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.run("", "cluster", "firmware", "update", cluster, "--image", img150, "--hosts", a.Name+","+cc.Name, "--detach")
	killed := ""
	r = followRollout(t, c, cluster, func(r engineapi.Rollout) {
		if killed != "" || len(r.Hosts) != 2 {
			return
		}
		// Once the first host is past its evacuation (flashed, or later).
		switch r.Hosts[0].Phase {
		case engineapi.RolloutHostPending, engineapi.RolloutHostEvacuating:
			return
		}
		killed = string(r.Hosts[0].Phase)
		t.Logf("killing the engine while %s is %s", r.Hosts[0].Host, killed)
		killPID(t, "the engine", l.EnginePID)
	}, true)
	t.Logf("rollout %s after the engine's restart:\n%s", r.ID, c.run("", "cluster", "firmware", "status", cluster))
	if killed == "" {
		t.Errorf("the rollout ended before the engine could be killed in its middle")
	}
	if r.State != engineapi.RolloutSucceeded {
		t.Fatalf("the rollout across the engine's restart: %s %s %s", r.State, r.Code, r.Message)
	}
	for _, h := range []lab.Host{a, cc} {
		f := hostFirmware(h.Name)
		if tl, pl := levels(f); tl != "SV810_150" || pl != "SV810_150" || f.Operation == nil || f.Operation.State != "committed" || flashes(f) != 1 {
			t.Errorf("host %s after the rollout across the engine's restart: temporary %s, permanent %s, operation %+v (flashed %d times); want SV810_150 committed, flashed once",
				h.Name, tl, pl, f.Operation, flashes(f))
		}
		if hs := hostStatusOf(h.Name); hs.Status != "Up" {
			t.Errorf("host %s is %s after the rollout across the engine's restart", h.Name, hs.Status)
		}
	}
	for _, con := range cons {
		if v := c.vm(con.vm); v.State != "Up" || v.Host == b.Name {
			t.Errorf("after the rollout across the engine's restart: VM %s is %s on %s", con.vm, v.State, v.Host)
		}
	}
}
