package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/client"
)

// cpuinfoVendor is the vendor_id of this machine's /proc/cpuinfo ("" on an
// architecture that prints none).
func cpuinfoVendor(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "vendor_id" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestUpLabHostFacts runs `polyvirt up` and checks that its hosts tell the
// truth (issue 13): the host that is this machine reports this machine's
// CPU vendor, runs its guests under TCG with the reason when KVM cannot
// (the document, host list, host show, caps) and is admitted with a CPU
// type of its own vendor; the fake POWER8 offers only the pseries
// machines, as caps --profile does; and the whole firmware workflow of
// ../shared/reference/power-firmware.md runs on it through the CLI —
// upload, validate, flash, the simulated reboot with the new level on the
// temporary side, commit — with an audit event for each step and the
// committed level in the host's document; a failed validation names its
// tool once and is cleared.
func TestUpLabHostFacts(t *testing.T) {
	requireLibvirt(t)
	dir := t.TempDir()
	prefix := "hf" + randomSuffix()[:5] + "-"
	removeDomainsAtCleanup(t, "lab-"+prefix)
	cfg := filepath.Join(dir, "cli.json")
	up := &upProc{t: t, env: []string{client.EnvConfig + "=" + cfg, client.EnvEngine + "=", client.EnvTokenFile + "=", client.EnvCAFile + "="},
		args: []string{"up", "--data-dir", filepath.Join(dir, "lab"), "--listen", "127.0.0.1:0", "--name-prefix", prefix,
			"--stats-interval", "500ms"}}
	up.start()
	t.Cleanup(up.stop)
	c := &cli{t: t, env: up.env}
	powerHost := prefix + "power8-a"

	var hosts []engineapi.Host
	c.json(&hosts, "host", "list")
	var native engineapi.Host
	for _, h := range hosts {
		if h.Name != powerHost {
			native = h
		}
	}
	if len(hosts) != 2 || native.Status != "Up" {
		t.Fatalf("hosts: %+v", hosts)
	}

	// This machine, as it is.
	c.json(&native, "host", "show", native.Name)
	vendor := cpuinfoVendor(t)
	_, kvmErr := os.Stat("/dev/kvm")
	t.Logf("%s: CPU %q of %q, %s (%s), CPU type %s", native.Name, native.CPUModel, native.CPUVendor, native.Virtualization, native.VirtualizationReason, native.CPUType)
	if vendor != "" && native.CPUVendor != vendor {
		t.Errorf("%s reports CPU vendor %q; /proc/cpuinfo says %q", native.Name, native.CPUVendor, vendor)
	}
	if strings.Contains(native.CPUModel, "(Fake)") || native.FakeIdentity != "" || native.Profile != "" {
		t.Errorf("%s reports a fake identity: model %q, %q, profile %q", native.Name, native.CPUModel, native.FakeIdentity, native.Profile)
	}
	if kvmErr != nil {
		if native.Virtualization != "tcg" || native.VirtualizationReason != "/dev/kvm is absent" {
			t.Errorf("%s without /dev/kvm: virtualization %q (%q)", native.Name, native.Virtualization, native.VirtualizationReason)
		}
		if line := "(TCG: /dev/kvm is absent)"; !strings.Contains(up.out.String(), line) {
			t.Errorf("polyvirt up does not mark %s %s:\n%s", native.Name, line, up.out.String())
		}
	} else if native.Virtualization == "" || (native.Virtualization == "tcg" && native.VirtualizationReason == "") {
		t.Errorf("%s: virtualization %q (%q)", native.Name, native.Virtualization, native.VirtualizationReason)
	}
	switch vendor {
	case "AuthenticAMD":
		if !strings.HasPrefix(native.CPUType, "AMD ") {
			t.Errorf("an AMD machine admitted as %q", native.CPUType)
		}
	case "GenuineIntel":
		if !strings.Contains(native.CPUType, "Intel ") {
			t.Errorf("an Intel machine admitted as %q", native.CPUType)
		}
	}
	if out := c.run("", "host", "list"); !strings.Contains(out, native.Virtualization) || (native.Virtualization == "tcg" && !strings.Contains(out, native.VirtualizationReason)) {
		t.Errorf("host list does not say how %s runs guests:\n%s", native.Name, out)
	}
	if out := c.run("", "host", "show", native.Name); !strings.Contains(out, "Virtualization:") || !strings.Contains(out, native.CPUVendor) {
		t.Errorf("host show %s:\n%s", native.Name, out)
	}
	var live hostreport.Report
	c.json(&live, "caps", "--libvirt", "none")
	if live.CPU.Vendor != native.CPUVendor || live.Virt.Virtualization == "" || (kvmErr != nil && live.Virt.Virtualization != "tcg") {
		t.Errorf("caps: vendor %q, virtualization %q (%q)", live.CPU.Vendor, live.Virt.Virtualization, live.Virt.KVMReason)
	}

	// The fake POWER8: pseries machines only, as caps --profile says.
	var p8 engineapi.Host
	c.json(&p8, "host", "show", powerHost, "--capabilities")
	var report hostreport.Report
	if err := json.Unmarshal(p8.Capabilities, &report); err != nil {
		t.Fatal(err)
	}
	if len(p8.EmulatedMachines) == 0 || p8.Profile != "s822l-power8e" || p8.Virtualization != "tcg" {
		t.Errorf("%s: %d machines, profile %q, virtualization %q", powerHost, len(p8.EmulatedMachines), p8.Profile, p8.Virtualization)
	}
	for _, m := range p8.EmulatedMachines {
		if !strings.HasPrefix(m, "pseries") {
			t.Errorf("%s offers %s", powerHost, m)
		}
	}
	for _, g := range report.Virt.Guests {
		for _, m := range g.Machines {
			if !strings.HasPrefix(m, "pseries") {
				t.Errorf("%s: guest %s offers %s", powerHost, g.Arch, m)
			}
		}
	}
	var prof hostreport.Report
	c.json(&prof, "caps", "--profile", "s822l-power8e")
	if !slices.Equal(slices.Sorted(slices.Values(prof.Virt.EmulatedMachines)), slices.Sorted(slices.Values(p8.EmulatedMachines))) {
		t.Errorf("caps --profile lists %v, the host %v", prof.Virt.EmulatedMachines, p8.EmulatedMachines)
	}

	// The firmware workflow, through the CLI.
	root := moduleRoot(t)
	out := c.run("", "host", "firmware", "show", powerHost)
	for _, want := range []string{"Supported:      true", "Simulated:", "Temporary side: SV810_081", "Permanent side: SV810_081", "Type-model:     8247-22L"} {
		if !strings.Contains(out, want) {
			t.Errorf("firmware show lacks %q:\n%s", want, out)
		}
	}
	if e := c.fail("", "host", "firmware", "update", powerHost, "--image", filepath.Join(root, "examples", "firmware", "01SV810_133_081.img")); !strings.Contains(e, "HOST_NOT_IN_MAINTENANCE") {
		t.Errorf("a flash outside maintenance: %s", e)
	}
	// The refused flash left the image validated: cancel it.
	if out := c.run("", "host", "firmware", "cancel", powerHost); !strings.Contains(out, "cancelled") {
		t.Errorf("cancel: %s", out)
	}
	c.run("", "host", "maintenance", powerHost)
	t0 := time.Now()
	out = c.run("", "host", "firmware", "update", powerHost, "--image", filepath.Join(root, "examples", "firmware", "01SV810_133_081.img"))
	for _, want := range []string{"uploaded (level SV810_133)", "validated: temporary SV810_081 → SV810_133, permanent SV810_081 → SV810_081",
		"rebooting", "awaiting decision: booted SV810_133 (temporary SV810_133, permanent SV810_081)", "Host " + powerHost + " runs SV810_133"} {
		if !strings.Contains(out, want) {
			t.Errorf("firmware update lacks %q:\n%s", want, out)
		}
	}
	t.Logf("upload, validate, flash and the simulated reboot took %.1fs", time.Since(t0).Seconds())
	out = c.run("", "host", "firmware", "commit", powerHost)
	if !strings.Contains(out, "committed: temporary SV810_133, permanent SV810_133") {
		t.Errorf("commit:\n%s", out)
	}
	var fw engineapi.HostFirmware
	c.json(&fw, "host", "firmware", "show", powerHost)
	if s := fw.Inventory.System; s == nil || s.Temporary.Name != "SV810_133" || s.Permanent.Name != "SV810_133" || s.Booted.Name != "SV810_133" ||
		fw.Operation == nil || fw.Operation.State != agentapi.FirmwareStateCommitted {
		t.Errorf("after the commit: %+v %+v", fw.Inventory.System, fw.Operation)
	}
	opID := fw.Operation.ID
	var page engineapi.EventPage
	c.json(&page, "events", "--host", powerHost)
	seen := map[string]bool{}
	for _, ev := range page.Events {
		if ev.CorrelationID == opID {
			seen[ev.Action] = true
		}
	}
	for _, a := range []string{"firmware.upload", "firmware.validate", "firmware.flash", "firmware.reboot", "firmware.commit"} {
		if !seen[a] {
			t.Errorf("no %s event of operation %s (events: %v)", a, opID, seen)
		}
	}
	// The host's document follows (its capabilities report lists the banks).
	deadline := time.Now().Add(90 * time.Second)
	for {
		c.json(&p8, "host", "show", powerHost)
		levels := map[string]string{}
		for _, f := range p8.Firmware {
			levels[f.Component] = f.Version
		}
		if levels["system-temporary"] == "SV810_133" && levels["system-permanent"] == "SV810_133" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the host's document still lists the firmware %v", levels)
			break
		}
		time.Sleep(2 * time.Second)
	}

	// A failed validation: its tool named once; cleared.
	other := filepath.Join(dir, "01SC860_100_081.img")
	if err := os.WriteFile(other, []byte("POLYVIRT-SIMULATED-FIRMWARE\nlevel=SV860_100\nmachines=8286-41A\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := c.fail("", "host", "firmware", "validate", powerHost, "--image", other)
	if !strings.Contains(e, "FIRMWARE_IMAGE_WRONG_MACHINE") || strings.Count(e, "update_flash") != 1 {
		t.Errorf("another machine's image: %s", e)
	}
	out = c.run("", "host", "firmware", "clear", powerHost)
	var cleared engineapi.HostFirmware
	c.json(&cleared, "host", "firmware", "show", powerHost)
	if !strings.Contains(out, "cleared") || cleared.Operation != nil || len(cleared.History) < 2 || cleared.History[0].State != "failed" {
		t.Errorf("clear: %s; operation %+v, history %+v", out, cleared.Operation, cleared.History)
	}
	c.run("", "host", "activate", powerHost)
}
