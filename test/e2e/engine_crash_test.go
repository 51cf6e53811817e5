package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/test/ownlibvirtd"
)

// slowStartHook makes the start of a domain slow while the file "slow"
// is in the hooks directory: libvirt runs it, and waits for it, before it
// starts QEMU ("prepare begin"); it notes that the start began.
const slowStartHook = `#!/bin/sh
dir=$(dirname "$0")
if [ "$2" = prepare ] && [ "$3" = begin ] && [ -e "$dir/slow" ]; then
	touch "$dir/entered-$1"
	sleep 8
fi
exit 0
`

// TestEngineKilledMidStart kills the engine (-9) while a VM's start is in
// flight on its host (a libvirt hook makes it take seconds), and starts
// the engine again: the CLI said that the engine went away and that the
// start may have happened (not "EOF"); the engine records what it finds
// when it is back — the VM Up on its host, and the start by the user who
// asked for it, once.
func TestEngineKilledMidStart(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	l := newEngineOnOwnLibvirtdWith(t, "crash", ownlibvirtd.Options{QEMUHook: slowStartHook})
	name := "slow-" + randomSuffix()[:6]
	l.c.run("", "vm", "create", name, "--cluster", "x86", "--memory", "256")
	if err := os.WriteFile(filepath.Join(l.d.HooksDir(), "slow"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	start := exec.Command(polyvirtBin(t), "vm", "start", name)
	start.Env = append(os.Environ(), l.c.env...)
	var out, errOut bytes.Buffer
	start.Stdout, start.Stderr = &out, &errOut
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- start.Wait() }()
	t.Cleanup(func() {
		if start.ProcessState == nil {
			start.Process.Kill()
			<-done
		}
	})
	// The engine ordered the start and libvirt runs the hook: the engine
	// dies now.
	deadline := time.Now().Add(60 * time.Second)
	for {
		entered, _ := filepath.Glob(filepath.Join(l.d.HooksDir(), "entered-*"+name))
		if len(entered) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the start did not reach libvirt's hook within 60s (vm start: %s%s)", out.String(), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := l.c.vm(name); v.State != "WaitForLaunch" {
		t.Errorf("the VM during its start: %s; want WaitForLaunch", v.State)
	}
	l.eng.kill9()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("vm start succeeded although the engine was killed: %s", out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vm start did not end within 30s of the engine's death")
	}
	msg := errOut.String()
	for _, want := range []string{"the engine at " + l.eng.url + " went away before it answered",
		"the start of VM " + name + " may have happened; `polyvirt vm show " + name + "` tells"} {
		if !strings.Contains(msg, want) {
			t.Errorf("vm start's message %q does not say %q", msg, want)
		}
	}
	if strings.HasSuffix(strings.TrimSpace(msg), "EOF") {
		t.Errorf("vm start's message ends in EOF: %q", msg)
	}
	t.Logf("vm start, the engine killed under it: %s", strings.TrimSpace(msg))

	// The engine comes back and finds the VM started.
	l.eng.start()
	v := l.c.waitVM(name, 90*time.Second, func(v engineapi.VM) bool { return v.State == "Up" })
	if v.Host != l.host {
		t.Errorf("the VM runs on %q; want %s", v.Host, l.host)
	}
	time.Sleep(5 * time.Second) // two resyncs (--vm-resync 2s): still recorded once
	ctx := context.Background()
	page, err := l.eng.api.Events(ctx, client.EventFilter{Object: v.ID})
	if err != nil {
		t.Fatal(err)
	}
	var starts []engineapi.Event
	for _, ev := range page.Events {
		if ev.Action == "vm.start" {
			starts = append(starts, ev)
		}
	}
	if len(starts) != 1 {
		t.Fatalf("start events: %+v; want one", page.Events)
	}
	ev := starts[0]
	if ev.Message != "VM "+name+" was started by admin (Host: "+l.host+")." || ev.User != "admin" ||
		!strings.Contains(ev.Reason, "did not record its outcome") || !strings.Contains(ev.Reason, "host "+l.host+" reports the VM ") {
		t.Errorf("the start event: %+v", ev)
	}
	t.Logf("recorded after the engine came back: %s (%s)", ev.Message, ev.Reason)
	if out := l.c.run("", "vm", "show", name); !strings.Contains(out, "Up") {
		t.Errorf("vm show: %s", out)
	}
	l.c.run("", "vm", "destroy", name)
}
