package lab

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSupervisorRestartsAndStops runs a stand-in agent (a shell script
// that exits on its first run and runs on the next): the supervisor starts
// it again, says so, passes the agent's arguments, and stop ends it.
func TestSupervisorRestartsAndStops(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"logs", "agents"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	runs := filepath.Join(dir, "runs")
	exe := filepath.Join(dir, "fake-polyvirt")
	script := "#!/bin/sh\necho \"$@\" >>" + runs + "\n[ \"$(wc -l <" + runs + ")\" -gt 1 ] || exit 7\nexec sleep 60\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var notes lockedWriter
	s := &supervisor{exe: exe, dir: dir, libvirt: "qemu:///system", stats: 2 * time.Second, note: &notes, delay: 50 * time.Millisecond}
	h := Host{Name: "h1", Cluster: "c", Address: "127.0.0.1:7443", DomainPrefix: "lab-h1-", Profile: "s822l-power8e"}
	if err := s.start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(runs)
		if strings.Count(string(b), "\n") >= 2 && s.pid("h1") != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent was not started again: runs %q, notes %q", b, notes.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(runs)
	first := strings.SplitN(string(b), "\n", 2)[0]
	want := "agent --host-id h1 --data-dir " + filepath.Join(dir, "agents", "h1") + " --listen 127.0.0.1:7443 --libvirt qemu:///system --domain-prefix lab-h1- --stats-interval 2s --profile s822l-power8e"
	if first != want {
		t.Errorf("agent arguments:\n got %s\nwant %s", first, want)
	}
	if n := notes.String(); !strings.Contains(n, "agent h1 exited (exit status 7); starting it again (log: "+filepath.Join(dir, "logs", "h1.log")+")") {
		t.Errorf("notes: %q", n)
	}
	pid := s.pid("h1")
	s.stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("agent %d still runs after stop", pid)
	}
	time.Sleep(100 * time.Millisecond)
	if b2, _ := os.ReadFile(runs); string(b2) != string(b) {
		t.Errorf("started again after stop: %q", b2)
	}
}
