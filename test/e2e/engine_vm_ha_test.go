package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
)

// TestEngineVMHighAvailability runs an engine process and two fake-KVM
// POWER8 agent processes (two hosts of one POWER cluster) on the real
// libvirtd: an HA VM starts on one of them; that agent is killed -9 and
// its domain destroyed behind its back; the VM comes back on the other
// host. A VM too big for either host is refused with each host's reason.
// When the dead agent returns, the leftover definition of the VM there is
// removed; the engine restarted keeps the VM Up where it runs.
func TestEngineVMHighAvailability(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	sfx := randomSuffix()[:6]
	ha1, ha2 := "hapa-"+sfx, "hapb-"+sfx
	removeDomainsAtCleanup(t, "e2e-"+ha1+"-")
	removeDomainsAtCleanup(t, "e2e-"+ha2+"-")
	eng := initEngine(t, "engine-ha", nil)
	eng.extra = []string{"--ha-delay", "-1s", "--ha-interval", "300ms", "--vm-resync", "2s"}
	eng.start()
	c := newCLI(t)
	c.run(eng.token+"\n", "login", "--engine", eng.url, "--ca-file", eng.caFile)
	c.run("", "cluster", "create", "power", "--cpu-type", "IBM POWER8")
	agents := map[string]*agentProc{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range []string{ha1, ha2} {
		wg.Add(1)
		go func(n string) {
			defer wg.Done()
			p := joinAgent(t, c, eng, n, "power", "--profile", "s822l-power8e", "--fake-memory-mib", "256")
			mu.Lock()
			agents[n] = p
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range []string{ha1, ha2} {
		waitHost(t, eng.api, n, 60*time.Second, hostStatus("Up"))
	}

	// An HA VM: SLOF with no boot device is enough to be running.
	vm := "havm-" + sfx
	out := c.run("", "vm", "create", vm, "--cluster", "power", "--memory", "256", "--ha", "--start")
	if !strings.Contains(out, "scheduling… on hap") || !strings.Contains(out, "running") {
		t.Errorf("vm create --start:\n%s", out)
	}
	v := c.vm(vm)
	if v.State != "Up" || !v.HA || (v.Host != ha1 && v.Host != ha2) {
		t.Fatalf("the HA VM: %+v", v)
	}
	first, other := v.Host, ha1
	if first == ha1 {
		other = ha2
	}
	dom := "e2e-" + first + "-" + vm
	if !domainRunning(t, dom) {
		t.Fatalf("domain %s does not run", dom)
	}

	// Its host dies with it.
	t0 := time.Now()
	agents[first].kill9()
	destroyDomain(t, dom)
	v = c.waitVM(vm, 60*time.Second, func(v engineapi.VM) bool { return v.State == "Up" && v.Host == other })
	t.Logf("the HA VM runs on %s again %.1fs after the agent of %s was killed", other, time.Since(t0).Seconds(), first)
	if v.LastHost != first {
		t.Errorf("last host %q, want %s", v.LastHost, first)
	}
	if !domainRunning(t, "e2e-"+other+"-"+vm) {
		t.Errorf("the restarted domain does not run")
	}
	var page engineapi.EventPage
	c.json(&page, "events", "--kind", "vm", "--limit", "200")
	var msgs []string
	for _, ev := range page.Events {
		if ev.ObjectID == v.ID {
			msgs = append(msgs, ev.Message)
		}
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"VM " + vm + " was set to the Unknown status: host " + first + " does not answer.",
		"Highly available VM " + vm + " was restarted on host " + other + "."} {
		if !strings.Contains(all, want) {
			t.Errorf("events lack %q:\n%s", want, all)
		}
	}

	// No host fits: each host's reason.
	c.run("", "vm", "create", "huge-"+sfx, "--cluster", "power", "--memory", "1048576")
	errOut := c.fail("", "vm", "start", "huge-"+sfx)
	for _, want := range []string{"SCHEDULING_ALL_HOSTS_FILTERED_OUT",
		"HOST_NOT_UP (host:" + first + "): The host " + first + " did not satisfy internal filter Status because it is NonResponsive, not Up.",
		"NOT_ENOUGH_MEMORY (host:" + other + "): The host " + other + " did not satisfy internal filter Memory because its available memory is too low"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("vm start huge: lacks %q:\n%s", want, errOut)
		}
	}

	// The dead agent returns: the VM's leftover definition there goes.
	agents[first].start()
	waitHost(t, eng.api, first, 60*time.Second, hostStatus("Up"))
	deadline := time.Now().Add(30 * time.Second)
	for domainExists(t, dom) && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
	}
	if domainExists(t, dom) {
		t.Errorf("the leftover domain %s is still on the returned host", dom)
	}
	var onFirst []agentapi.VM
	if code := agents[first].do("GET", "/v1/vms", nil, &onFirst); code != 200 || len(onFirst) != 0 {
		t.Errorf("the returned host's VMs: %d %+v", code, onFirst)
	}

	// The engine restarted keeps the VM and its state.
	eng.stop()
	eng.start()
	if v := c.vm(vm); v.State != "Up" || v.Host != other {
		t.Errorf("after the engine's restart: %s on %s", v.State, v.Host)
	}
	time.Sleep(3 * time.Second) // a resync
	if v := c.vm(vm); v.State != "Up" || v.Host != other {
		t.Errorf("after the engine's restart and a resync: %s on %s", v.State, v.Host)
	}
	c.run("", "vm", "delete", "--force", vm)
	if domainExists(t, "e2e-"+other+"-"+vm) {
		t.Errorf("the deleted VM's domain is still there")
	}
}
