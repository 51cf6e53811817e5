package caps

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
	"polyvirt/internal/profiles"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func collect(t *testing.T, opts Options) *Result {
	t.Helper()
	res, err := Collect(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestProfilesGolden renders every built-in profile in the three formats.
func TestProfilesGolden(t *testing.T) {
	for _, name := range profiles.Names() {
		t.Run(name, func(t *testing.T) {
			res := collect(t, Options{Profile: name})
			golden(t, name+".json", mustJSON(t, res.Report))
			golden(t, name+".vdsm.json", mustJSON(t, ToVDSM(res)))
			var text bytes.Buffer
			if err := WriteText(&text, res.Report); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".txt", text.Bytes())
		})
	}
}

// TestPowerProfilesReadAsPOWER checks the facts the engine relies on.
func TestPowerProfilesReadAsPOWER(t *testing.T) {
	cases := []struct {
		profile string
		flags   []string
		online  int
		model   string
	}{
		{"s822l-power8e", []string{"powernv", "model_POWER8"}, 20, "POWER8E (raw), altivec supported"},
		{"ac922-power9", []string{"powernv", "model_POWER9", "model_POWER8"}, 32, "POWER9, altivec supported"},
	}
	for _, c := range cases {
		r := collect(t, Options{Profile: c.profile}).Report
		if diff := cmp.Diff(c.flags, r.CPU.Flags); diff != "" {
			t.Errorf("%s flags (-want +got):\n%s", c.profile, diff)
		}
		if r.Arch != "ppc64le" || r.EffectiveArch != "ppc64le" || !r.FakeKVM || r.Profile != c.profile {
			t.Errorf("%s: arch %s/%s fake %v profile %q", c.profile, r.Arch, r.EffectiveArch, r.FakeKVM, r.Profile)
		}
		if len(r.CPU.OnlineCPUs) != c.online || r.CPU.ThreadsPerCore != 1 || r.CPU.Vendor != "IBM" || r.CPU.Model != c.model {
			t.Errorf("%s: cpu %+v", c.profile, r.CPU)
		}
		if r.CPU.Platform != "PowerNV" || r.Hardware.Source != "device-tree" || r.Hardware.Manufacturer != "IBM" {
			t.Errorf("%s: platform %q identity %+v", c.profile, r.CPU.Platform, r.Hardware)
		}
		if !contains(r.Virt.EmulatedMachines, "pseries") || r.Virt.DomainType != "qemu" || r.Virt.KVM {
			t.Errorf("%s: virt %+v", c.profile, r.Virt)
		}
	}
}

// TestFakeArch reports an x86_64 host as a fake-KVM POWER host, with
// VDSM's fake CPU values.
func TestFakeArch(t *testing.T) {
	r := collect(t, Options{Profile: "x86-2s-intel", FakeArch: arch.PPC64LE}).Report
	if r.Arch != "x86_64" || r.EffectiveArch != "ppc64le" || !r.FakeKVM {
		t.Fatalf("arch %s effective %s fake %v", r.Arch, r.EffectiveArch, r.FakeKVM)
	}
	if r.CPU.Model != "POWER 8 (fake)" {
		t.Errorf("model %q", r.CPU.Model)
	}
	if diff := cmp.Diff([]string{"powernv", "model_POWER8"}, r.CPU.Flags); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	// The x86 profile's libvirt offers no POWER guests: nothing to emulate.
	if len(r.Virt.EmulatedMachines) != 0 {
		t.Errorf("machines %v", r.Virt.EmulatedMachines)
	}
	v := ToVDSM(&Result{Report: r})
	if v.KVMEnabled != "true" || v.CPUModel != "POWER 8 (fake)" || v.CPUFlags != "powernv,model_POWER8" {
		t.Errorf("vdsm: kvmEnabled %s model %q flags %q", v.KVMEnabled, v.CPUModel, v.CPUFlags)
	}
}

// TestVDSMTopologyFromCells follows VDSM: sockets are distinct socket ids,
// cores distinct sibling lists, threads the online CPUs of the cells.
func TestVDSMTopologyFromCells(t *testing.T) {
	res := collect(t, Options{Profile: "s822l-power8e"})
	v := ToVDSM(res)
	got := []string{v.CPUSockets, v.CPUCores, v.CPUThreads, v.CPUSpeed, v.CPUModel}
	want := []string{"4", "20", "20", "3690.000000", "POWER8E (raw), altivec supported"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sockets/cores/threads/speed/model (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(v.OnlineCPUs, "0,8,16,24,32,40") || len(v.NUMANodes) != 4 || v.NUMANodes["16"].TotalMemory != "65536" {
		t.Errorf("onlineCpus %q numa %v", v.OnlineCPUs, v.NUMANodes)
	}
	if diff := cmp.Diff([]int{10, 20, 40, 40}, v.NUMANodeDistance["0"]); diff != "" {
		t.Errorf("distances of node 0 (-want +got):\n%s", diff)
	}
	// Without the capabilities document: the host's own reading.
	v = ToVDSM(&Result{Report: res.Report, Host: res.Host})
	if v.CPUSockets != "4" || v.CPUCores != "20" || v.CPUThreads != "20" {
		t.Errorf("without cells: %s/%s/%s", v.CPUSockets, v.CPUCores, v.CPUThreads)
	}
}

func TestLibvirtNone(t *testing.T) {
	r := collect(t, Options{Profile: "ac922-power9", LibvirtURI: LibvirtNone}).Report
	if r.Virt.Libvirt || r.Virt.LibvirtError == "" || len(r.Virt.Guests) != 0 {
		t.Errorf("virt %+v", r.Virt)
	}
	// The CPU models need domcapabilities: only the vendor marker remains.
	if diff := cmp.Diff([]string{"powernv"}, r.CPU.Flags); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
}

func TestBadOptions(t *testing.T) {
	for _, opts := range []Options{
		{Profile: "nope"},
		{Profile: "s822l", Root: "/"},
		{Root: "/does/not/exist"},
		{Root: "/etc/hostname"},
		{Root: t.TempDir(), CapsFile: "/does/not/exist.xml"},
	} {
		if _, err := Collect(context.Background(), opts); err == nil {
			t.Errorf("Collect(%+v) succeeded; want an error", opts)
		}
	}
}

// TestCapturedDocumentErrorsNameTheFile: a broken captured document is an
// error naming its file.
func TestCapturedDocumentErrorsNameTheFile(t *testing.T) {
	dir := cpuinfoOnlyRoot(t)
	bad := filepath.Join(dir, "domcaps.xml")
	if err := os.WriteFile(bad, []byte("<domainCapabilities><arch>ppc64"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Collect(context.Background(), Options{Root: dir, DomCapsFiles: []string{bad}})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("error %v does not name %s", err, bad)
	}
}

// cpuinfoOnlyRoot is a root holding nothing but a pSeries guest's cpuinfo.
func cpuinfoOnlyRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	cpuinfo := "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\nclock\t\t: 1000.000000MHz\nrevision\t: 2.2 (pvr 004e 1202)\n\ntimebase\t: 512000000\nplatform\t: pSeries\nmodel\t\t: IBM pSeries (emulated by qemu)\nmachine\t\t: CHRP IBM pSeries (emulated by qemu)\nMMU\t\t: Radix\n"
	if err := os.WriteFile(filepath.Join(dir, "proc", "cpuinfo"), []byte(cpuinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSparseRoot: a root with little in it still gives a report, with the
// unreadable parts listed; an empty root is an error.
func TestSparseRoot(t *testing.T) {
	if _, err := Collect(context.Background(), Options{Root: t.TempDir()}); err == nil {
		t.Error("an empty root gave a report; want an error saying nothing is readable")
	}
	r := collect(t, Options{Root: cpuinfoOnlyRoot(t)}).Report
	if r.Arch != "ppc64le" || r.CPU.Platform != "pSeries" || len(r.Unavailable) == 0 {
		t.Errorf("arch %q unavailable %v", r.Arch, r.Unavailable)
	}
	if r.Virt.Libvirt {
		t.Error("a captured root must not ask the live daemon")
	}
	var text bytes.Buffer
	if err := WriteText(&text, r); err != nil || !strings.Contains(text.String(), Unavailable) {
		t.Errorf("text output: %v\n%s", err, text.String())
	}
}
