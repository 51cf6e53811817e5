package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/engineapi"
)

// TestEngineRolloutThroughCLI is issue 15's rollout end to end: a real
// engine, two real agents on the S822L POWER8 profile whose system firmware
// is simulated (update_flash -v/-f/-c with a simulated reboot), no VM on
// them; `polyvirt cluster firmware update` starts the rollout, the engine
// is killed -9 while the first host is on its way and started again: the
// rollout resumes and updates both hosts one after the other, each flashed
// once, committed on the new level, Up again; status and the audit log say
// so.
func TestEngineRolloutThroughCLI(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	eng := initEngine(t, "engine-ro", nil)
	eng.start()
	c := newCLI(t)
	c.run(eng.token+"\n", "login", "--engine", eng.url, "--ca-file", eng.caFile)
	c.run("", "cluster", "create", "power", "--arch", "ppc64le")
	joinAgent(t, c, eng, "ro-a", "power", "--profile", "s822l-power8e")
	joinAgent(t, c, eng, "ro-b", "power", "--profile", "s822l-power8e")
	for _, h := range []string{"ro-a", "ro-b"} {
		waitHost(t, eng.api, h, 90*time.Second, hostStatus("Up"))
	}
	image := filepath.Join(moduleRoot(t), "examples", "firmware", "01SV810_133_081.img")
	out := c.run("", "cluster", "firmware", "update", "power", "--image", image, "--detach", "--reason", "e2e")
	for _, want := range []string{"Rollout ro-", "running", "ro-a", "ro-b", "SV810_081", "SV810_133"} {
		if !strings.Contains(out, want) {
			t.Errorf("update --detach lacks %q:\n%s", want, out)
		}
	}
	status := func() engineapi.Rollout {
		var r engineapi.Rollout
		c.json(&r, "cluster", "firmware", "status", "power", "-o", "json")
		return r
	}
	// The engine killed while ro-a is on its way (past its flash).
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := status()
		if p := r.Hosts[0].Phase; p == engineapi.RolloutHostRebooting || p == engineapi.RolloutHostChecking || p == engineapi.RolloutHostSoaking {
			t.Logf("engine killed with ro-a %s", p)
			break
		}
		if r.State != engineapi.RolloutRunning || time.Now().After(deadline) {
			t.Fatalf("ro-a never got past its flash: %+v", r)
		}
		time.Sleep(300 * time.Millisecond)
	}
	eng.kill9()
	eng.start()
	var r engineapi.Rollout
	deadline = time.Now().Add(6 * time.Minute)
	for {
		r = status()
		if r.State != engineapi.RolloutRunning || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if r.State != engineapi.RolloutSucceeded {
		t.Fatalf("rollout %s: %s %s\n%s", r.State, r.Code, r.Message, c.run("", "cluster", "firmware", "status", "power"))
	}
	for _, h := range r.Hosts {
		if h.Phase != engineapi.RolloutHostDone || h.FromLevel != "SV810_081" || h.ToLevel != "SV810_133" || h.Level != "SV810_133" {
			t.Errorf("host %+v", h)
		}
	}
	if a, b := r.Hosts[0], r.Hosts[1]; b.Started.Before(a.Finished) {
		t.Errorf("ro-b started at %s, before ro-a finished at %s", b.Started, a.Finished)
	}
	for _, name := range []string{"ro-a", "ro-b"} {
		var f engineapi.HostFirmware
		c.json(&f, "host", "firmware", "show", name, "-o", "json")
		if f.Operation == nil || f.Operation.State != "committed" || f.Inventory == nil || f.Inventory.System == nil ||
			f.Inventory.System.Temporary.Code() != "SV810_133" || f.Inventory.System.Permanent.Code() != "SV810_133" {
			t.Errorf("%s firmware: %+v", name, f)
			continue
		}
		flashes := 0
		for _, st := range f.Operation.Steps {
			if st.Step == "flash" && st.Result == "ok" {
				flashes++
			}
		}
		if flashes != 1 {
			t.Errorf("%s flashed %d times", name, flashes)
		}
		waitHost(t, eng.api, name, 60*time.Second, hostStatus("Up"))
	}
	out = c.run("", "cluster", "firmware", "status", "power")
	for _, want := range []string{"succeeded", "ro-a", "ro-b", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	ev := c.run("", "events", "--cluster", "power", "--limit", "200", "-o", "json")
	for _, want := range []string{"rollout.start", "rollout.flashing", "rollout.done", "rollout.end", "ro-a done SV810_081 → SV810_133"} {
		if !strings.Contains(ev, want) {
			t.Errorf("the audit log lacks %q", want)
		}
	}
	if e := c.fail("", "cluster", "firmware", "pause", "power"); !strings.Contains(e, "ROLLOUT_WRONG_STATE") {
		t.Errorf("pause of an ended rollout: %s", e)
	}
}
