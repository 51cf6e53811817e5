package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/firmware"
	"polyvirt/internal/firmware/simfw"
	"polyvirt/internal/libvirtconn"
)

// TestProfileHostStatisticsAreTheProfiles: an agent presenting a profile
// reads its statistics and what its capabilities depend on through the
// profile's root (issue 12, item 8): the S822L's 20 online threads and
// 256 GiB, not this machine's.
func TestProfileHostStatisticsAreTheProfiles(t *testing.T) {
	cfg := Config{HostID: "unit-power8", DataDir: t.TempDir(), Profile: "s822l-power8e", LibvirtURI: "qemu+unix:///system?socket=/nonexistent"}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeConn()
	a.conn.dial = func(string, time.Duration) (libvirtconn.AgentConn, error) { return f, nil }
	a.stats.sample(context.Background(), a)
	st, err := a.stats.current()
	if err != nil {
		t.Fatal(err)
	}
	if st.Host.CPUs != 20 || st.Host.MemTotalMiB != 256*1024 || st.Host.Load1 != 0 {
		t.Errorf("host statistics %+v, want the profile's 20 CPUs and 262144 MiB", st.Host)
	}
	fp := a.capsFingerprint()
	if !strings.HasPrefix(fp, "0,8,16,24,32,40,48,56,64,72,80,88,96,104,112,120,128,136,144,152|268435456|") {
		t.Errorf("fingerprint %q: not the profile's online CPUs and memory", fp)
	}
}

// TestWhichFirmware: a profile host on a machine without a firmware
// mechanism of its own simulates the profile's firmware; a profile that
// carries none says so; a real POWER host, or a configuration naming the
// tools, never uses the simulation.
func TestWhichFirmware(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T, profile string, realArch arch.Arch, fc FirmwareConfig) *Agent {
		t.Helper()
		cfg := Config{HostID: "unit", DataDir: t.TempDir(), Profile: profile, Firmware: fc}
		a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		a.realArch = realArch
		if err := a.openFirmware(ctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	t.Run("S822L on x86_64: simulated", func(t *testing.T) {
		a := open(t, "s822l-power8e", arch.X86_64, FirmwareConfig{})
		st, err := a.FirmwareStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		inv := st.Inventory
		if !st.Supported || inv.System == nil || inv.System.Temporary.Name != "SV810_081" || inv.System.Permanent.Name != "SV810_081" ||
			inv.TypeModel != "8247-22L" || !strings.Contains(inv.Simulated, "s822l-power8e") {
			t.Errorf("status %+v", st)
		}
		if _, err := os.Stat(filepath.Join(a.cfg.DataDir, simulatedFirmwareDir, simfw.StateFileName)); err != nil {
			t.Errorf("the simulation is not kept in the data directory: %v", err)
		}
	})
	t.Run("AC922 on x86_64: none, said why", func(t *testing.T) {
		a := open(t, "ac922-power9", arch.X86_64, FirmwareConfig{})
		st, err := a.FirmwareStatus(ctx)
		if err != nil || st.Supported {
			t.Fatalf("status %+v %v", st, err)
		}
		_, _, err = a.FirmwareAction(ctx, "validate", "admin", false)
		if e := asAPIError(err); e.Code != api.CodeNotSupportedOnArch || !strings.Contains(e.Message, "simulates no system firmware") {
			t.Errorf("validate: %+v", e)
		}
	})
	t.Run("a real POWER host: its own tools", func(t *testing.T) {
		a := open(t, "s822l-power8e", arch.PPC64LE, FirmwareConfig{Path: t.TempDir()})
		st, err := a.FirmwareStatus(ctx)
		if err != nil || !st.Supported || st.Inventory.Simulated != "" || st.Inventory.System != nil {
			t.Errorf("status %+v %v", st, err)
		}
		b := open(t, "s822l-power8e", arch.PPC64LE, FirmwareConfig{})
		if b.fwSimulated != "" {
			t.Errorf("a real POWER host simulates its firmware: %s", b.fwSimulated)
		}
	})
}

// TestCapabilitiesFollowFirmware: the capabilities report a reader gets
// lists the firmware levels as they are now — after a flash (staged, not
// applied), after the simulated reboot (seen by the host's new boot id
// alone, before anyone asked for the operation's state), after the
// decision — because a report whose fingerprint changed is collected
// again on read (the engine reads it right after recording a step).
func TestCapabilitiesFollowFirmware(t *testing.T) {
	ctx := context.Background()
	const reboot = time.Minute
	cfg := Config{HostID: "unit", DataDir: t.TempDir(), Profile: "s822l-power8e", LibvirtURI: "qemu+unix:///system?socket=/nonexistent",
		Firmware: FirmwareConfig{SimulatedReboot: Duration{reboot}}}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var (
		clockMu sync.Mutex
		now     = time.Now()
	)
	a.simClock = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	a.realArch = arch.X86_64
	if err := a.openFirmware(ctx); err != nil {
		t.Fatal(err)
	}
	levels := func() map[string]string {
		t.Helper()
		doc, _, err := a.capabilitiesDocument(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Firmware []struct{ Component, Version string }
		}
		if err := json.Unmarshal(doc, &r); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, f := range r.Firmware {
			out[f.Component] = f.Version
		}
		return out
	}
	check := func(when, temporary, permanent, booted string) {
		t.Helper()
		want := map[string]string{"system-temporary": temporary, "system-permanent": permanent, "system-booted": booted}
		got := levels()
		for k := range got {
			if _, ok := want[k]; !ok {
				delete(got, k) // the OPAL level of the profile, unchanged
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: levels (-want +got):\n%s", when, diff)
		}
	}
	check("before", "SV810_081", "SV810_081", "SV810_081")
	if _, err := a.fw.Upload(ctx, bytes.NewReader(simfw.Image("SV810_133", "8247-22L")), "01SV810_133_081.img", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.fw.Validate(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.fw.Flash(ctx, "admin", firmware.Assert(firmware.Preconditions{Maintenance: true})); err != nil {
		t.Fatal(err)
	}
	check("after the flash, before the reboot", "SV810_081", "SV810_081", "SV810_081")
	clockMu.Lock()
	now = now.Add(reboot + time.Second)
	clockMu.Unlock()
	check("after the reboot, before the status", "SV810_133", "SV810_081", "SV810_133")
	if st, err := a.FirmwareStatus(ctx); err != nil || st.Operation == nil || st.Operation.State != agentapi.FirmwareStateAwaitingDecision {
		t.Fatalf("after the reboot: %+v %v", st, err)
	}
	check("after the reboot", "SV810_133", "SV810_081", "SV810_133")
	if _, err := a.fw.Commit(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	check("after the commit", "SV810_133", "SV810_133", "SV810_133")
}

// TestCapabilitiesKeptWhenRecollectionFails: a report whose host changed
// but cannot be collected again stays what readers get (the change is
// logged); a refresh that is asked for says why it failed.
func TestCapabilitiesKeptWhenRecollectionFails(t *testing.T) {
	ctx := context.Background()
	cfg := Config{HostID: "unit", DataDir: t.TempDir(), Profile: "s822l-power8e", LibvirtURI: "qemu+unix:///system?socket=/nonexistent"}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	first, err := a.Capabilities(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	// libvirt reconnected (the fingerprint changes), and what the report
	// is collected from is gone.
	a.conn.mu.Lock()
	a.conn.gen++
	a.conn.mu.Unlock()
	a.cfg.Profile = "no-such-profile"
	got, err := a.Capabilities(ctx, false)
	if err != nil || got != first {
		t.Errorf("after a failed collection: %p %v, want the previous report %p", got, err, first)
	}
	if _, err := a.Capabilities(ctx, true); err == nil || !strings.Contains(err.Error(), "no-such-profile") {
		t.Errorf("an asked refresh: %v, want the collection's error", err)
	}
	a.cfg.Profile = "s822l-power8e"
	if got, err := a.Capabilities(ctx, false); err != nil || got == first {
		t.Errorf("once it can be collected: %p %v, want a new report", got, err)
	}
}
