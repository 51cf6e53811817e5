package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/test/fakehost"
)

// TestEngineFirmwareThroughCLI is issue 7's workflow end to end: a real
// engine, a real agent on the S822L POWER8 profile whose lsmcode and
// update_flash are the fake host tools, driven by the polyvirt CLI: refused
// while a VM runs, refused outside maintenance, validate, flash, the
// simulated reboot (the agent killed and started again on the new level),
// the new level reported, commit; a second run ends in reject and the old
// level is back; every step is in the audit log; an x86_64 host answers
// NOT_SUPPORTED_ON_ARCH.
func TestEngineFirmwareThroughCLI(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	eng := initEngine(t, "engine-fw", nil)
	eng.start()
	c := newCLI(t)
	c.run(eng.token+"\n", "login", "--engine", eng.url, "--ca-file", eng.caFile)
	c.run("", "cluster", "create", "power", "--arch", "ppc64le")
	c.run("", "cluster", "create", "intel", "--arch", "x86_64")

	state := t.TempDir()
	host, err := fakehost.New(state, fakehost.Options{TypeModel: "8247-22L", Temporary: "SV810_081", Permanent: "SV810_081"})
	if err != nil {
		t.Fatal(err)
	}
	bin, err := fakehost.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfg, []byte("firmware:\n  path: "+bin+":/usr/bin:/bin\n  root: "+state+"\n  env: ["+strings.Join(host.Env(), ",")+"]\n"), 0o644)
	p8 := joinAgent(t, c, eng, "fw-power8", "power", "--profile", "s822l-power8e", "--config", cfg)
	x86 := joinAgent(t, c, eng, "fw-x86", "intel")
	waitHost(t, eng.api, "fw-power8", 60*time.Second, hostStatus("Up"))
	waitHost(t, eng.api, "fw-x86", 60*time.Second, hostStatus("Up"))
	_ = x86

	out := c.run("", "host", "firmware", "show", "fw-power8")
	for _, want := range []string{"Temporary side:", "SV810_081", "8247-22L"} {
		if !strings.Contains(out, want) {
			t.Errorf("firmware show lacks %q:\n%s", want, out)
		}
	}
	image := func(level string) string {
		rpm, err := fakehost.BuildRPM(fakehost.FirmwareRPM("01"+level+"_081", fakehost.Image(level, "8247-22L"), "gzip"))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "01"+level+"_081.rpm")
		os.WriteFile(f, rpm, 0o644)
		return f
	}
	// A VM runs on the host (started on its agent directly).
	var vm agentapi.VM
	if code := p8.do("POST", "/v1/vms", []byte(`{"name": "polyvirt-test-fwvm", "arch": "ppc64le", "memory": {"sizeMiB": 512}}`), &vm); code != 201 {
		t.Fatalf("VM on the agent: %d", code)
	}
	t.Cleanup(func() { p8.do("DELETE", "/v1/vms/"+vm.ID+"?force=true", nil, nil) })
	p8.do("POST", "/v1/vms/"+vm.ID+"/start", nil, nil)

	out = c.run("", "host", "firmware", "validate", "fw-power8", "--image", image("SV810_133"))
	if !strings.Contains(out, "validated: temporary SV810_081 → SV810_133") {
		t.Errorf("validate:\n%s", out)
	}
	if e := c.fail("", "host", "firmware", "flash", "fw-power8"); !strings.Contains(e, "HOST_NOT_IN_MAINTENANCE") {
		t.Errorf("flash outside maintenance: %s", e)
	}
	c.run("", "host", "maintenance", "fw-power8")
	if e := c.fail("", "host", "firmware", "flash", "fw-power8"); !strings.Contains(e, "HOST_HAS_RUNNING_VMS") {
		t.Errorf("flash with a VM running: %s", e)
	}
	p8.do("POST", "/v1/vms/"+vm.ID+"/destroy", nil, nil)

	// flash runs the CLI until the host is back; the reboot happens
	// meanwhile.
	flashAndReboot := func(args ...string) string {
		t.Helper()
		done := make(chan string, 1)
		go func() {
			o, e, code := runCLI(t, c.env, "", args...)
			if code != 0 {
				o += "\nexit " + e
			}
			done <- o
		}()
		deadline := time.Now().Add(60 * time.Second)
		for {
			l, err := host.Levels()
			if err == nil && l.RebootRequested {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("update_flash -f never ran")
			}
			time.Sleep(200 * time.Millisecond)
		}
		p8.kill9()
		time.Sleep(3 * time.Second) // the engine sees the host away
		if err := host.CompleteReboot(false); err != nil {
			t.Fatal(err)
		}
		p8.start()
		select {
		case o := <-done:
			return o
		case <-time.After(90 * time.Second):
			t.Fatal("the CLI did not see the host come back")
		}
		return ""
	}
	out = flashAndReboot("host", "firmware", "flash", "fw-power8")
	for _, want := range []string{"rebooting", "awaiting decision: booted SV810_133"} {
		if !strings.Contains(out, want) {
			t.Errorf("flash progress lacks %q:\n%s", want, out)
		}
	}
	// The host stayed in Maintenance through its reboot.
	if h := waitHost(t, eng.api, "fw-power8", 30*time.Second, hostStatus("Maintenance")); h.Status != "Maintenance" {
		t.Errorf("host after the reboot: %s", h.Status)
	}
	out = c.run("", "host", "firmware", "commit", "fw-power8")
	if !strings.Contains(out, "committed: temporary SV810_133, permanent SV810_133") {
		t.Errorf("commit:\n%s", out)
	}

	// Second run, rejected: the old level is back.
	out = flashAndReboot("host", "firmware", "update", "fw-power8", "--image", image("SV810_140"))
	if !strings.Contains(out, "awaiting decision: booted SV810_140") {
		t.Errorf("update:\n%s", out)
	}
	out = c.run("", "host", "firmware", "reject", "fw-power8")
	if !strings.Contains(out, "rejected: temporary SV810_133, permanent SV810_133") {
		t.Errorf("reject:\n%s", out)
	}
	var f engineapi.HostFirmware
	c.json(&f, "host", "firmware", "show", "fw-power8")
	if len(f.History) != 2 || f.History[0].State != "rejected" || f.History[1].State != "committed" ||
		f.History[1].FromLevel != "SV810_081" || f.History[1].ToLevel != "SV810_133" || f.History[1].RequestedBy != "admin" {
		t.Errorf("history: %+v", f.History)
	}
	// The audit log names who and the levels. The flash's start is always
	// there; its "ok" is not: update_flash -f reboots the host, and the
	// agent killed before it wrote down that the tool returned comes back
	// to "reboot ok" straight from "flash started" (as on a real host).
	events := c.run("", "events", "--host", "fw-power8", "--limit", "100")
	for _, want := range []string{"flash started by admin (SV810_081 → SV810_133)", "reboot ok by agent (SV810_081 → SV810_133)", "commit ok by admin", "reject ok by admin", "flash refused by admin"} {
		if !strings.Contains(events, want) {
			t.Errorf("events lack %q:\n%s", want, events)
		}
	}

	// x86_64: no such mechanism.
	if e := c.fail("", "host", "firmware", "validate", "fw-x86", "--image", image("SV810_150")); !strings.Contains(e, "NOT_SUPPORTED_ON_ARCH") {
		t.Errorf("x86_64 validate: %s", e)
	}
}
