package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
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

// readmeFirmware is the README's "POWER firmware in the lab" walkthrough.
func readmeFirmware(t *testing.T) []readmeCommand {
	return readmeCommands(t, "## POWER firmware in the lab")
}

// readmeStorage is the README's "Storage in the lab" walkthrough.
func readmeStorage(t *testing.T) []readmeCommand { return readmeCommands(t, "## Storage in the lab") }

// storageWalkthroughPrograms are the programs the README's storage
// walkthrough may run besides polyvirt: what a user has on the machine
// that polyvirt's setup script prepared.
var storageWalkthroughPrograms = []string{"polyvirt", "mkdir", "qemu-img"}

// TestREADMEStorageParses: the README's storage walkthrough is commands
// the end-to-end test can run, and its pool directory is the one the
// test removes afterwards.
func TestREADMEStorageParses(t *testing.T) {
	cmds := readmeStorage(t)
	if len(cmds) < 8 {
		t.Fatalf("%d commands", len(cmds))
	}
	for _, c := range cmds {
		if !slices.Contains(storageWalkthroughPrograms, c.Args[0]) {
			t.Errorf("README.md:%d: %q runs %s, not one of %v", c.Line, c.Text, c.Args[0], storageWalkthroughPrograms)
		}
		if c.Args[0] == "mkdir" && !slices.Contains(c.Args, readmePoolDir) {
			t.Errorf("README.md:%d: %q makes another directory than %s", c.Line, c.Text, readmePoolDir)
		}
	}
}

// readmePoolDir is the directory of the README storage walkthrough's pool.
const readmePoolDir = "/var/lib/polyvirt/images/lab-shared"

// TestREADMEFirmwareParses: the README's firmware walkthrough is commands
// of polyvirt the end-to-end test can run.
func TestREADMEFirmwareParses(t *testing.T) {
	cmds := readmeFirmware(t)
	if len(cmds) < 5 {
		t.Fatalf("%d commands", len(cmds))
	}
	for _, c := range cmds {
		if c.Args[0] != "polyvirt" {
			t.Errorf("README.md:%d: %q is not a polyvirt command", c.Line, c.Text)
		}
	}
}

// TestUpLabHostFacts runs `polyvirt up` as a process and checks that its
// hosts tell the truth (issue 13): the host that is this machine reports
// this machine's CPU vendor, runs its guests under TCG with the reason when
// KVM cannot (the document, host list, host show, caps) and is admitted
// with a CPU type of its own vendor; the fake POWER8 offers only the
// pseries machines, as caps --profile does; and the README's firmware
// walkthrough runs as it is written — the whole workflow of
// ../shared/reference/power-firmware.md on power8-a's simulated firmware:
// upload, validate, flash, the simulated reboot with the new level on the
// temporary side, commit — each command's output checked, with an audit
// event for each step and the committed level in the host's document; a
// failed validation names its tool once and is cleared.
func TestUpLabHostFacts(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	dir := t.TempDir()
	domPrefix := "hf" + randomSuffix()[:5] + "-"
	removeDomainsAtCleanup(t, domPrefix)
	cfg := filepath.Join(dir, "cli.json")
	env := []string{client.EnvConfig + "=" + cfg, client.EnvEngine + "=", client.EnvTokenFile + "=", client.EnvCAFile + "="}
	// The README's names (power8-a, x86_64-a) in an engine of this test.
	up := &upProc{t: t, env: env, args: []string{"up", "--data-dir", filepath.Join(dir, "lab"), "--listen", "127.0.0.1:0",
		"--domain-prefix", domPrefix, "--stats-interval", "500ms"}}
	// power8-b's libvirtd of the lab's own and its domains outlive
	// polyvirt up: stopped after it, as polyvirt up --down does.
	t.Cleanup(func() { downLab(t, filepath.Join(dir, "lab")) })
	up.start()
	t.Cleanup(func() { up.stop() })
	c := &cli{t: t, env: env}
	const powerHost = "power8-a"

	var hosts []engineapi.Host
	c.json(&hosts, "host", "list")
	var native engineapi.Host
	// The lab: power8-a and power8-b (fake POWER8 hosts) and this machine.
	for _, h := range hosts {
		if h.Name != powerHost && h.Name != "power8-b" {
			native = h
		}
	}
	if len(hosts) != 3 || native.Status != "Up" {
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
	// The lab's power8-a runs its guests on this machine's libvirtd and
	// QEMU: its machines are those, as caps --profile says with that
	// daemon (without one, it says those of the profile's own QEMU).
	var prof hostreport.Report
	c.json(&prof, "caps", "--profile", "s822l-power8e", "--libvirt", libvirtURI())
	if !slices.Equal(slices.Sorted(slices.Values(prof.Virt.EmulatedMachines)), slices.Sorted(slices.Values(p8.EmulatedMachines))) {
		t.Errorf("caps --profile lists %v, the host %v", prof.Virt.EmulatedMachines, p8.EmulatedMachines)
	}

	// A flash outside maintenance is refused (the engine's check).
	root := moduleRoot(t)
	if e := c.fail("", "host", "firmware", "update", powerHost, "--image", filepath.Join(root, "examples", "firmware", "01SV810_133_081.img")); !strings.Contains(e, "HOST_NOT_IN_MAINTENANCE") {
		t.Errorf("a flash outside maintenance: %s", e)
	}
	// The refused flash left the image validated: cancel it.
	if out := c.run("", "host", "firmware", "cancel", powerHost); !strings.Contains(out, "cancelled") {
		t.Errorf("cancel: %s", out)
	}

	// The README's firmware walkthrough, as it is written, in a directory
	// with the repository's examples/.
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "examples"), filepath.Join(work, "examples")); err != nil {
		t.Fatal(err)
	}
	w := &walkthrough{t: t, c: c, env: env, dir: work, domPrefix: domPrefix, deleted: map[string]bool{}}
	wants := map[string][]string{
		"host firmware show": {"Supported:", "true", "Simulated:", "Temporary side:", "Permanent side:", "SV810_081", "Type-model:", "8247-22L"},
		"host firmware update": {"uploaded (level SV810_133)", "validated: temporary SV810_081 → SV810_133, permanent SV810_081 → SV810_081",
			"rebooting", "awaiting decision: booted SV810_133 (temporary SV810_133, permanent SV810_081)", "Host " + powerHost + " runs SV810_133"},
		"host firmware commit": {"committed: temporary SV810_133, permanent SV810_133"},
		"events --host":        {"upload ok", "validate ok", "flash ok", "reboot ok", "commit ok"},
	}
	var steps []string
	for _, cmd := range readmeFirmware(t) {
		t0 := time.Now()
		out, _, problems := w.run(cmd.Args)
		key := strings.Join(cmd.Args[1:min(len(cmd.Args), 4)], " ")
		if strings.HasPrefix(key, "events --host") {
			key = "events --host"
		}
		for _, want := range wants[key] {
			if !strings.Contains(out, want) {
				problems = append(problems, fmt.Sprintf("the output lacks %q:\n%s", want, out))
			}
		}
		if len(problems) > 0 {
			t.Errorf("README.md:%d %s: %s", cmd.Line, cmd.Text, strings.Join(problems, "; "))
		}
		steps = append(steps, fmt.Sprintf("README.md:%d  %s  (%.1fs)", cmd.Line, cmd.Text, time.Since(t0).Seconds()))
	}
	t.Logf("the README's firmware walkthrough:\n%s", strings.Join(steps, "\n"))

	var fw engineapi.HostFirmware
	c.json(&fw, "host", "firmware", "show", powerHost)
	if s := fw.Inventory.System; s == nil || s.Temporary.Name != "SV810_133" || s.Permanent.Name != "SV810_133" || s.Booted.Name != "SV810_133" ||
		fw.Operation == nil || fw.Operation.State != agentapi.FirmwareStateCommitted {
		t.Fatalf("after the commit: %+v %+v", fw.Inventory.System, fw.Operation)
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
	// The host's document follows (its capabilities report lists the
	// banks; the agent collects it again and the engine reads it at each
	// firmware step).
	t0 := time.Now()
	deadline := t0.Add(90 * time.Second)
	for {
		c.json(&p8, "host", "show", powerHost)
		levels := map[string]string{}
		for _, f := range p8.Firmware {
			levels[f.Component] = f.Version
		}
		if levels["system-temporary"] == "SV810_133" && levels["system-permanent"] == "SV810_133" {
			t.Logf("the host's document listed the committed level %.1fs after the walkthrough", time.Since(t0).Seconds())
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
	out := c.run("", "host", "firmware", "clear", powerHost)
	var cleared engineapi.HostFirmware
	c.json(&cleared, "host", "firmware", "show", powerHost)
	if !strings.Contains(out, "cleared") || cleared.Operation != nil || len(cleared.History) < 2 || cleared.History[0].State != "failed" {
		t.Errorf("clear: %s; operation %+v, history %+v", out, cleared.Operation, cleared.History)
	}
	readmeStorageWalkthrough(t, w, c)

	// The README's activate brought the host back Up.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		c.json(&p8, "host", "show", powerHost)
		if p8.Status == "Up" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s is %s after the README's activate", powerHost, p8.Status)
			break
		}
	}
}

// readmeStorageWalkthrough runs the README's storage walkthrough as it is
// written in the lab of TestUpLabHostFacts: a shared pool of the POWER
// cluster (its directory made by the README's mkdir, removed when the test
// ends), an image uploaded to it, a POWER VM made from it with cloud-init
// and started, a snapshot, a template and a VM from the template. Each
// command must succeed; the VMs, the image, the snapshot and the template
// are then checked through the CLI.
func readmeStorageWalkthrough(t *testing.T, w *walkthrough, c *cli) {
	cmds := readmeStorage(t)
	if _, err := os.Stat(readmePoolDir); err == nil {
		t.Fatalf("%s exists before the README's storage walkthrough (a run that did not clean up?): remove it", readmePoolDir)
	}
	t.Cleanup(func() {
		for _, vm := range []string{"web3", "web2"} {
			runCLI(t, w.env, "", "vm", "delete", "--force", vm)
		}
		if err := os.RemoveAll(readmePoolDir); err != nil {
			t.Errorf("removing the README's pool directory: %v", err)
		}
	})
	var steps []string
	for _, cmd := range cmds {
		t0 := time.Now()
		if problems := w.step(cmd); len(problems) > 0 {
			t.Errorf("README.md:%d %s: %s", cmd.Line, cmd.Text, strings.Join(problems, "; "))
		}
		steps = append(steps, fmt.Sprintf("README.md:%d  %s  (%.1fs)", cmd.Line, cmd.Text, time.Since(t0).Seconds()))
	}
	t.Logf("the README's storage walkthrough:\n%s", strings.Join(steps, "\n"))

	var img engineapi.Image
	c.json(&img, "image", "show", "debian-12")
	if img.Arch != "ppc64le" || img.Pool != "lab-shared" || img.Format != "qcow2" {
		t.Errorf("the image: %+v", img)
	}
	var snaps []engineapi.Snapshot
	c.json(&snaps, "vm", "snapshot", "list", "web2")
	if len(snaps) != 1 || snaps[0].Name != "before-upgrade" {
		t.Errorf("web2's snapshots: %+v", snaps)
	}
	var tpl engineapi.Template
	c.json(&tpl, "template", "show", "web")
	web3 := c.vm("web3")
	if web3.Cluster != "power" || web3.State != "Down" || tpl.Name != "web" {
		t.Errorf("the VM from the template: %s in %s; template %+v", web3.State, web3.Cluster, tpl)
	}
	if web2 := c.vm("web2"); web2.State != "Down" {
		t.Errorf("web2 is %s after vm stop --force", web2.State)
	}
}
