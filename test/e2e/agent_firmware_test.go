package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/test/fakehost"
)

// TestAgentFirmwareWorkflow drives the POWER firmware update through a real
// agent process (S822L profile) whose lsmcode and update_flash are the fake
// host tools: refused while a VM runs and outside maintenance, validate,
// flash, a simulated reboot (the agent restarted after it), the new level,
// commit; a second run ends in reject with the old level back. An x86_64
// agent answers NOT_SUPPORTED_ON_ARCH.
func TestAgentFirmwareWorkflow(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
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
	ca := newTestCA(t)
	sfx := randomSuffix()
	p := startAgent(t, ca, "e2e-fw-"+sfx, "--profile", "s822l-power8e", "--config", cfg)

	status := func() agentapi.FirmwareStatus {
		var st agentapi.FirmwareStatus
		if code := p.do("GET", "/v1/firmware", nil, &st); code != 200 {
			t.Fatalf("GET /v1/firmware: %d", code)
		}
		return st
	}
	st := status()
	if !st.Supported || st.Inventory.System == nil || st.Inventory.System.Temporary.Name != "SV810_081" || st.Inventory.TypeModel != "8247-22L" {
		t.Fatalf("inventory: %+v", st)
	}
	// The capabilities show the system firmware levels too.
	var caps struct {
		Firmware []struct{ Component, Version string }
	}
	p.do("GET", "/v1/capabilities", nil, &caps)
	found := false
	for _, f := range caps.Firmware {
		found = found || (f.Component == "system-temporary" && f.Version == "SV810_081")
	}
	if !found {
		t.Errorf("capabilities firmware %+v lack the temporary side", caps.Firmware)
	}

	// A running VM on the host.
	var vm agentapi.VM
	if code := p.do("POST", "/v1/vms", []byte(`{"name": "polyvirt-test-fw-`+sfx+`", "arch": "ppc64le", "memory": {"sizeMiB": 512}}`), &vm); code != 201 {
		t.Fatalf("create VM: %d", code)
	}
	t.Cleanup(func() { p.do("DELETE", "/v1/vms/"+vm.ID+"?force=true", nil, nil) })
	p.do("POST", "/v1/vms/"+vm.ID+"/start", nil, nil)

	run := func(level string) {
		t.Helper()
		rpm, err := fakehost.BuildRPM(fakehost.FirmwareRPM("01"+level+"_081", fakehost.Image(level, "8247-22L"), "xz"))
		if err != nil {
			t.Fatal(err)
		}
		var op agentapi.FirmwareOperation
		if code := p.do("POST", "/v1/firmware/image?name=01"+level+"_081.rpm", rpm, &op); code != 200 || op.State != agentapi.FirmwareStateUploaded {
			t.Fatalf("upload: %d %+v", code, op)
		}
		code := p.do("POST", "/v1/firmware/validate", nil, &op)
		if code == 202 {
			// The validation outlived the request's wait (a loaded
			// machine): it goes on; its end is awaited.
			for deadline := time.Now().Add(2 * time.Minute); op.State == agentapi.FirmwareStateValidating && time.Now().Before(deadline); {
				time.Sleep(200 * time.Millisecond)
				if st := status(); st.Operation != nil {
					op = *st.Operation
				}
			}
		}
		if (code != 200 && code != 202) || op.State != agentapi.FirmwareStateValidated || op.Projection == nil || op.Projection.NewT != level {
			t.Fatalf("validate: %d %+v", code, op)
		}
	}
	expectRefusal := func(step, body, code string) {
		t.Helper()
		var e api.ErrorBody
		if st := p.do("POST", "/v1/firmware/"+step, []byte(body), &e); st != 409 || e.Error.Code != code {
			t.Errorf("%s %s: %d %+v; want 409 %s", step, body, st, e, code)
		}
	}
	flashAndReboot := func() {
		t.Helper()
		var op agentapi.FirmwareOperation
		if code := p.do("POST", "/v1/firmware/flash", []byte(`{"maintenance": true}`), &op); code != 200 && code != 202 {
			t.Fatalf("flash: %d %+v", code, op)
		}
		deadline := time.Now().Add(30 * time.Second)
		for status().Operation.State != agentapi.FirmwareStateRebooting && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if s := status().Operation.State; s != agentapi.FirmwareStateRebooting {
			t.Fatalf("after flash: %s", s)
		}
		// No VM starts while the flash holds the host.
		var e api.ErrorBody
		if code := p.do("POST", "/v1/vms/"+vm.ID+"/start", nil, &e); code != 409 || e.Error.Code != "HOST_LOCKED_BY_FIRMWARE_UPDATE" {
			t.Errorf("VM start during the update: %d %+v", code, e)
		}
		// The host reboots: the staged image is applied, the agent comes
		// back up after it.
		p.kill9()
		if err := host.CompleteReboot(false); err != nil {
			t.Fatal(err)
		}
		p.start()
	}

	run("SV810_133")
	expectRefusal("flash", `{"maintenance": false}`, "HOST_NOT_IN_MAINTENANCE")
	expectRefusal("flash", `{"maintenance": true}`, "HOST_HAS_RUNNING_VMS")
	expectRefusal("commit", ``, "FIRMWARE_WRONG_STATE")
	p.do("POST", "/v1/vms/"+vm.ID+"/destroy", nil, nil)
	flashAndReboot()
	st = status()
	if st.Operation.State != agentapi.FirmwareStateAwaitingDecision || st.Operation.Booted == nil || st.Operation.Booted.Booted.Name != "SV810_133" {
		t.Fatalf("after the reboot: %+v", st.Operation)
	}
	var op agentapi.FirmwareOperation
	if code := p.do("POST", "/v1/firmware/commit", nil, &op); code != 200 || op.State != agentapi.FirmwareStateCommitted {
		t.Fatalf("commit: %d %+v", code, op)
	}
	if l, _ := host.Levels(); l.Temporary != "SV810_133" || l.Permanent != "SV810_133" {
		t.Errorf("after commit the banks are %+v", l)
	}

	// Second run: rejected, the old level is back.
	run("SV810_140")
	flashAndReboot()
	if s := status().Operation; s.State != agentapi.FirmwareStateAwaitingDecision || s.Booted.Booted.Name != "SV810_140" {
		t.Fatalf("second run after the reboot: %+v", s)
	}
	if code := p.do("POST", "/v1/firmware/reject", nil, &op); code != 200 || op.State != agentapi.FirmwareStateRejected {
		t.Fatalf("reject: %d %+v", code, op)
	}
	if l, _ := host.Levels(); l.Temporary != "SV810_133" || l.Permanent != "SV810_133" {
		t.Errorf("after reject the banks are %+v", l)
	}
	if n := len(op.Steps); n == 0 || op.Steps[n-1].Who == "" {
		t.Errorf("the step log names nobody: %+v", op.Steps)
	}

	// An x86_64 host has no such mechanism.
	x86 := startAgent(t, ca, "e2e-fw-x86-"+sfx)
	var e api.ErrorBody
	if code := x86.do("POST", "/v1/firmware/validate", nil, &e); code != 422 || e.Error.Code != "NOT_SUPPORTED_ON_ARCH" {
		t.Errorf("x86_64 validate: %d %+v", code, e)
	}
	var xs agentapi.FirmwareStatus
	x86.do("GET", "/v1/firmware", nil, &xs)
	if xs.Supported {
		t.Errorf("x86_64 firmware supported: %+v", xs)
	}
}
