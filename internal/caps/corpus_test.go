package caps

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/testcorpus"
)

// The tests of this file read real machines' data from the shared corpus
// (../shared/corpus, see its INDEX.md) and check the rules of
// ../shared/reference/host-capabilities.md that VDSM's and libvirt's own
// readings follow. A root is put together in a temporary directory the way
// a captured host is laid out (proc/, sys/devices/system/).

// corpusFile copies a corpus file to root/rel.
func corpusFile(t *testing.T, from, root, rel string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// s822lRoot is libvirt's S822L dataset (linux-ppc64-subcores1: an IBM
// Power System S822L 8247-22L, POWER8E PowerNV, 160 threads with SMT off,
// online 0,8,…,152) as a root: its cpuinfo and its sys/devices/system.
func s822lRoot(t *testing.T) string {
	t.Helper()
	dir := testcorpus.Need(t, "libvirt-hostcpu")
	root := t.TempDir()
	unpacked := t.TempDir()
	testcorpus.Untar(t, filepath.Join(dir, "linux-subcores1.sysfs.tar.gz"), unpacked)
	if err := os.MkdirAll(filepath.Join(root, "sys", "devices"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(unpacked, "linux-subcores1"), filepath.Join(root, "sys", "devices", "system")); err != nil {
		t.Fatal(err)
	}
	corpusFile(t, filepath.Join(dir, "linux-ppc64-subcores1.cpuinfo"), root, "proc/cpuinfo")
	return root
}

// reportJSON is the report as `caps -o json` prints it.
func reportJSON(t *testing.T, r *hostreport.Report) string {
	t.Helper()
	return string(mustJSON(t, r))
}

// textOf is the text output with its column padding squeezed to one
// space.
func textOf(t *testing.T, r *hostreport.Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(` {2,}`).ReplaceAllString(b.String(), " ")
}

// TestCorpusS822L reads the S822L: VDSM's systemSerialNumber is the
// cpuinfo model (the type-model), the clock is a JSON number while VDSM's
// cpuSpeed stays as cpuinfo prints it, and the topology is sysfs's.
func TestCorpusS822L(t *testing.T) {
	root := s822lRoot(t)
	res := collect(t, Options{Root: root, LibvirtURI: LibvirtNone})
	r := res.Report
	online := "0,8,16,24,32,40,48,56,64,72,80,88,96,104,112,120,128,136,144,152"
	if r.Hardware.Model != "8247-22L" || r.CPU.MHz != 3690 || r.CPU.TopologySource != "sysfs" || r.CPU.OnlineCPUList != online {
		t.Errorf("model %q, mhz %v, topology from %q, online %q", r.Hardware.Model, r.CPU.MHz, r.CPU.TopologySource, r.CPU.OnlineCPUList)
	}
	if js := reportJSON(t, r); !strings.Contains(js, `"mhz": 3690,`) {
		t.Errorf("cpu.mhz is not the JSON number 3690:\n%s", js[:min(len(js), 2000)])
	}
	v := ToVDSM(res)
	got := map[string]string{"systemSerialNumber": v.SystemSerialNumber, "cpuSpeed": v.CPUSpeed, "cpuModel": v.CPUModel,
		"onlineCpus": v.OnlineCPUs, "cpuThreads": v.CPUThreads}
	want := map[string]string{"systemSerialNumber": "8247-22L", "cpuSpeed": "3690.000000", "cpuModel": "POWER8E (raw), altivec supported",
		"onlineCpus": online, "cpuThreads": "20"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("vdsm (-want +got):\n%s", diff)
	}
	if len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "systemSerialNumber is the machine type-model") {
		t.Errorf("notes %q", v.Notes)
	}
}

// TestCorpusS822LOnlineUnreadable: with its online list absurd, the S822L
// still reports its 20 online threads, from the CPUs' own online files;
// without those either, the online CPUs are unavailable — never the 160
// present ones (issue 11).
func TestCorpusS822LOnlineUnreadable(t *testing.T) {
	root := s822lRoot(t)
	cpuDir := filepath.Join(root, "sys", "devices", "system", "cpu")
	if err := os.WriteFile(filepath.Join(cpuDir, "online"), []byte("0-4294967295\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := collect(t, Options{Root: root, LibvirtURI: LibvirtNone}).Report
	if len(r.CPU.OnlineCPUs) != 20 || r.CPU.OnlineCPUList != "0,8,16,24,32,40,48,56,64,72,80,88,96,104,112,120,128,136,144,152" {
		t.Errorf("online %q (%d CPUs), want the 20 threads the per-CPU files say", r.CPU.OnlineCPUList, len(r.CPU.OnlineCPUs))
	}
	if !hasUnavailable(r, "topology", "sys/devices/system/cpu/online") {
		t.Errorf("the absurd list is not reported: %+v", r.Unavailable)
	}

	files, _ := filepath.Glob(filepath.Join(cpuDir, "cpu*", "online"))
	if len(files) < 100 {
		t.Fatalf("%d per-CPU online files in the dataset", len(files))
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	r = collect(t, Options{Root: root, LibvirtURI: LibvirtNone}).Report
	if len(r.CPU.OnlineCPUs) != 0 || r.CPU.TopologySource != "" || r.CPU.NodeInfo.CPUs != 0 {
		t.Errorf("online %q (%d), topology from %q, nodeinfo %+v: want unavailable", r.CPU.OnlineCPUList, len(r.CPU.OnlineCPUs), r.CPU.TopologySource, r.CPU.NodeInfo)
	}
	text := textOf(t, r)
	if !strings.Contains(text, "Topology unavailable") || strings.Contains(text, "On-line CPU(s) list") {
		t.Errorf("text output:\n%s", text)
	}
	if v := ToVDSM(collect(t, Options{Root: root, LibvirtURI: LibvirtNone})); v.OnlineCPUs != Unavailable || v.CPUThreads != Unavailable {
		t.Errorf("vdsm onlineCpus %q cpuThreads %q", v.OnlineCPUs, v.CPUThreads)
	}
}

func hasUnavailable(r *hostreport.Report, field, path string) bool {
	for _, p := range r.Unavailable {
		if p.Field == field && p.Path == path {
			return true
		}
	}
	return false
}

// TestCorpusPOWERDeviceTree: a PowerNV S814 read from its device tree.
// The JSON report keeps the real serial (system-id) in
// hardware.serialNumber and the type-model in hardware.model; VDSM's
// systemSerialNumber is the type-model and systemUUID the system-id.
func TestCorpusPOWERDeviceTree(t *testing.T) {
	dir := testcorpus.Need(t, "device-tree/p8-840-spira")
	root := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		corpusFile(t, filepath.Join(dir, e.Name()), root, "proc/device-tree/"+e.Name())
	}
	res := collect(t, Options{Root: root, LibvirtURI: LibvirtNone})
	r := res.Report
	if r.Hardware.SerialNumber != "TU00163" || r.Hardware.Model != "8286-41A" || r.Hardware.UUID != "TU00163" {
		t.Errorf("hardware %+v", r.Hardware)
	}
	v := ToVDSM(res)
	if v.SystemSerialNumber != "8286-41A" || v.SystemUUID != "TU00163" || v.SystemProductName != "IBM Power System S814" {
		t.Errorf("vdsm serial %q uuid %q product %q", v.SystemSerialNumber, v.SystemUUID, v.SystemProductName)
	}
}

// aarch64CellsRoot is a captured aarch64 root without /sys: an HP Moonshot
// (APM X-Gene, CPU part 0x000) cpuinfo, with libvirt's capabilities of an
// aarch64 KVM host (two NUMA cells, 160 CPUs) as the captured document.
func aarch64CellsRoot(t *testing.T) (root, capsFile string) {
	t.Helper()
	sysinfo := testcorpus.Need(t, "libvirt-sysinfo")
	capsDir := testcorpus.Need(t, "libvirt-caps")
	root = t.TempDir()
	corpusFile(t, filepath.Join(sysinfo, "aarch64-moonshotcpuinfo.data"), root, "proc/cpuinfo")
	return root, filepath.Join(capsDir, "virt-manager-kvm-aarch64.xml")
}

// TestCorpusTopologyFromCells: a root of cpuinfo and captured capabilities
// without /sys takes its sockets, cores, threads, online CPUs and NUMA
// nodes from libvirt's NUMA cells, in the JSON report as in the vdsm one;
// on aarch64 VDSM's cpuModel is the raw CPU part while the JSON and text
// outputs name it.
func TestCorpusTopologyFromCells(t *testing.T) {
	root, capsFile := aarch64CellsRoot(t)
	res := collect(t, Options{Root: root, CapsFile: capsFile})
	r := res.Report
	c := r.CPU
	got := []any{c.TopologySource, c.TotalCPUs, len(c.OnlineCPUs), c.OnlineCPUList, c.Sockets, c.CoresPerSocket, c.ThreadsPerCore, c.Model, c.MHz}
	want := []any{"libvirt", 160, 160, "0-159", 2, 80, 1, "X-Gene", 100.0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("source, total, online, list, sockets, cores/socket, threads/core, model, mhz (-want +got):\n%s", diff)
	}
	if len(r.NUMA) != 2 || r.NUMA[0].ID != 0 || len(r.NUMA[0].CPUs) != 80 || r.NUMA[0].MemoryMiB != 263763320/1024 ||
		!cmp.Equal(r.NUMA[0].Distances, []int{10, 20}) || len(r.NUMA[1].CPUs) != 80 {
		t.Errorf("numa %+v", r.NUMA)
	}
	if hasUnavailable(r, "topology", "sys/devices/system/cpu") {
		t.Errorf("the topology read from the cells is still reported unavailable: %+v", r.Unavailable)
	}
	v := ToVDSM(res)
	vgot := []string{v.CPUModel, v.CPUSockets, v.CPUCores, v.CPUThreads, v.CPUSpeed, v.Arch}
	if diff := cmp.Diff([]string{"0x000", "2", "160", "160", "100.00", "aarch64"}, vgot); diff != "" {
		t.Errorf("vdsm cpuModel, sockets, cores, threads, speed, arch (-want +got):\n%s", diff)
	}
	if len(v.NUMANodes) != 2 || len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "X-Gene") {
		t.Errorf("vdsm numa %d nodes, notes %q", len(v.NUMANodes), v.Notes)
	}
	text := textOf(t, r)
	for _, want := range []string{"Topology from libvirt NUMA cells", "On-line CPU(s) list 0-159", "Model X-Gene"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	var back hostreport.Report
	if err := json.Unmarshal(mustJSON(t, r), &back); err != nil || back.CPU.TopologySource != "libvirt" {
		t.Errorf("the JSON report does not read back: %v", err)
	}
}

// TestCorpusTopologyUnavailable: cpuinfo alone says nothing of the
// topology; the text output says so instead of printing an empty list.
func TestCorpusTopologyUnavailable(t *testing.T) {
	root, _ := aarch64CellsRoot(t)
	res := collect(t, Options{Root: root, LibvirtURI: LibvirtNone})
	r := res.Report
	if r.CPU.TopologySource != "" || r.CPU.TotalCPUs != 0 || len(r.CPU.OnlineCPUs) != 0 || len(r.NUMA) != 0 {
		t.Errorf("cpu %+v numa %+v", r.CPU, r.NUMA)
	}
	text := textOf(t, r)
	if !strings.Contains(text, "Topology unavailable (no sys/devices/system/cpu online list and no libvirt NUMA cells)") ||
		strings.Contains(text, "On-line CPU(s) list") || strings.Contains(text, "Socket(s)") {
		t.Errorf("text output:\n%s", text)
	}
	if v := ToVDSM(res); v.CPUSockets != Unavailable || v.OnlineCPUs != Unavailable {
		t.Errorf("vdsm sockets %q online %q", v.CPUSockets, v.OnlineCPUs)
	}
}

// TestCorpusAArch64LscpuDump: the big.LITTLE lscpu dump (Cortex-A510,
// A710, A715, X3): the JSON report names the first type as lscpu does,
// VDSM's cpuModel is the first processor's raw CPU part.
func TestCorpusAArch64LscpuDump(t *testing.T) {
	dir := testcorpus.Need(t, "lscpu")
	tmp := t.TempDir()
	testcorpus.Untar(t, filepath.Join(dir, "arm-A510-A710-A715-X3.tar.gz"), tmp)
	root := filepath.Join(tmp, "arm-A510-A710-A715-X3")
	res := collect(t, Options{Root: root, LibvirtURI: LibvirtNone})
	r := res.Report
	cpuinfo, err := os.ReadFile(filepath.Join(root, "proc", "cpuinfo"))
	if err != nil {
		t.Fatal(err)
	}
	part := ""
	for _, line := range strings.Split(string(cpuinfo), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "CPU part" {
			part = strings.TrimSpace(v)
			break
		}
	}
	if r.Arch != "aarch64" || r.CPU.Model != "Cortex-A510" || r.CPU.OnlineCPUList != "0-7" || len(r.CPU.Types) != 4 {
		t.Errorf("arch %s model %q online %q types %+v", r.Arch, r.CPU.Model, r.CPU.OnlineCPUList, r.CPU.Types)
	}
	if v := ToVDSM(res); part == "" || v.CPUModel != part {
		t.Errorf("vdsm cpuModel %q, want the raw CPU part %q", v.CPUModel, part)
	}
}

// TestCorpusMHzIsANumber: x86's "cpu MHz : 2100.073" is the JSON number
// 2100.073, and VDSM's cpuSpeed the text.
func TestCorpusMHzIsANumber(t *testing.T) {
	dir := testcorpus.Need(t, "libvirt-hostcpu")
	root := t.TempDir()
	corpusFile(t, filepath.Join(dir, "linux-x86_64-test3.cpuinfo"), root, "proc/cpuinfo")
	res := collect(t, Options{Root: root, LibvirtURI: LibvirtNone})
	if js := reportJSON(t, res.Report); !strings.Contains(js, `"mhz": 2100.073,`) {
		t.Errorf("cpu.mhz is not the number 2100.073: %v", res.Report.CPU.MHz)
	}
	if v := ToVDSM(res); v.CPUSpeed != "2100.073" {
		t.Errorf("vdsm cpuSpeed %q", v.CPUSpeed)
	}
}
