package hostinfo

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"polyvirt/internal/arch"
	"polyvirt/internal/cpuset"
)

// Fuzz tests: every parser, seeded from the corpus when ../shared/corpus is
// present and from the fixtures otherwise. Run one with, e.g.,
//
//	go test ./internal/hostinfo/ -run '^$' -fuzz '^FuzzParseCPUInfo$' -fuzztime 10s

// corpusSeeds returns the contents of the corpus files matching the globs
// (relative to the corpus), and of the tarball members ending with the given
// suffixes; nothing when the corpus is absent.
func corpusSeeds(tb testing.TB, globs []string, tarSuffixes ...string) [][]byte {
	dir := corpusDir(tb)
	if dir == "" {
		return nil
	}
	var out [][]byte
	for _, g := range globs {
		files, _ := filepath.Glob(filepath.Join(dir, g))
		for _, f := range files {
			if data, err := os.ReadFile(f); err == nil {
				out = append(out, data)
			}
		}
	}
	if len(tarSuffixes) > 0 {
		tars, _ := filepath.Glob(filepath.Join(dir, "lscpu", "*.tar.gz"))
		for _, f := range tars {
			out = append(out, tarMembers(f, tarSuffixes)...)
		}
	}
	return out
}

// tarMembers returns the members of a .tar.gz whose names end with one of
// the suffixes.
func tarMembers(archive string, suffixes []string) [][]byte {
	f, err := os.Open(archive)
	if err != nil {
		return nil
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil
	}
	var out [][]byte
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return out
		}
		for _, s := range suffixes {
			if hdr.Typeflag == tar.TypeReg && strings.HasSuffix(hdr.Name, s) {
				if data, err := io.ReadAll(io.LimitReader(tr, 1<<20)); err == nil {
					out = append(out, data)
				}
			}
		}
	}
}

// fixtureFile returns one file of every fixture that has it.
func fixtureFiles(name string) [][]byte {
	var out [][]byte
	for _, m := range []fstest.MapFS{fixturePowerNVP8(), fixturePowerNVP9(), fixturePseriesGuest(),
		fixtureX86DMI(), fixtureX86NoDMI(), fixtureAArch64(), fixtureS390()} {
		if f, ok := m[name]; ok {
			out = append(out, f.Data)
		}
	}
	return out
}

func FuzzParseCPUInfo(f *testing.F) {
	for _, s := range fixtureFiles(CPUInfoPath) {
		f.Add(s)
	}
	for _, s := range corpusSeeds(f, []string{"libvirt-hostcpu/*.cpuinfo", "libvirt-sysinfo/*cpuinfo.data"}, "/proc/cpuinfo") {
		f.Add(s)
	}
	f.Add([]byte("processor 4294967295: version = FF, machine = 2817\nvendor_id : IBM/S390\n"))
	f.Add([]byte("processor : -1\ncpu : POWER9\nclock : 1MHz\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cpu, a, err := ParseCPUInfo(data)
		if err != nil {
			if a != arch.Unknown || len(cpu.Types) != 0 {
				t.Fatalf("error %v with values %s %+v", err, a, cpu)
			}
			return
		}
		if !a.Known() {
			t.Fatalf("unknown arch %q without an error", a)
		}
		if len(cpu.Types) == 0 {
			t.Fatal("no CPU type")
		}
		for _, ty := range cpu.Types {
			for i, c := range ty.CPUs {
				if c < 0 || c > cpuset.MaxCPU || (i > 0 && ty.CPUs[i-1] >= c) {
					t.Fatalf("type CPUs %v not a sorted set in range", ty.CPUs)
				}
			}
		}
		if cpu.PVR != "" && len(cpu.PVR) != 8 {
			t.Fatalf("PVR %q", cpu.PVR)
		}
	})
}

func FuzzLibvirtMHz(f *testing.F) {
	for _, s := range fixtureFiles(CPUInfoPath) {
		f.Add(s, uint8(0))
	}
	for _, s := range corpusSeeds(f, []string{"libvirt-hostcpu/*.cpuinfo"}) {
		f.Add(s, uint8(1))
	}
	f.Add([]byte("cpu MHz : 4294967296.5\n"), uint8(0))
	f.Add([]byte("clock:\n"), uint8(1))
	arches := []arch.Arch{arch.X86_64, arch.PPC64LE, arch.S390X, arch.AArch64, arch.Unknown}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		mhz, _ := LibvirtMHz(data, arches[int(which)%len(arches)])
		if mhz < 0 || mhz > 1<<32-1 {
			t.Fatalf("MHz %d", mhz)
		}
	})
}

func FuzzParseSysinfo(f *testing.F) {
	for _, s := range fixtureFiles(SysinfoPath) {
		f.Add(s)
	}
	for _, s := range corpusSeeds(f, []string{"libvirt-sysinfo/*sysinfo.data"}, "/proc/sysinfo") {
		f.Add(s)
	}
	f.Add([]byte("CPU Topology SW: 0 0 99999999999999999999 1 1 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		si, err := ParseSysinfo(data)
		if err != nil {
			return
		}
		if si.TopologySW != nil && len(si.TopologySW) != 6 {
			t.Fatalf("topology %v", si.TopologySW)
		}
		for _, n := range si.TopologySW {
			if n < 0 {
				t.Fatalf("negative topology %v", si.TopologySW)
			}
		}
		_ = SysinfoIdentity(si)
	})
}

func FuzzParseDTStrings(f *testing.F) {
	f.Add([]byte("ibm,powernv\x00ibm,firenze\x00"))
	f.Add([]byte("IBM"))
	f.Add([]byte{0, 0, 0, 8})
	if dir := corpusDir(f); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "device-tree", "*", "*"))
		for _, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		strs, err := ParseDTStrings(data)
		if err != nil {
			return
		}
		for _, s := range strs {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\x01\x1f\x7f") {
				t.Fatalf("string %q from %q", s, data)
			}
		}
		if len(strs) > 0 {
			again, err := ParseDTStrings([]byte(strings.Join(strs, "\x00") + "\x00"))
			if err != nil || strings.Join(again, "|") != strings.Join(strs, "|") {
				t.Fatalf("re-encoding %q gives %q, %v", strs, again, err)
			}
		}
	})
}

func FuzzParseDmidecode(f *testing.F) {
	f.Add([]byte("System Information\n\tManufacturer: LENOVO\n\tUUID: x\n"))
	for _, s := range corpusSeeds(f, []string{"libvirt-sysinfo/*sysinfo.data"}) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, fw, err := ParseDmidecode(data)
		if err != nil {
			return
		}
		if id.Source != "dmi" || id.Manufacturer == notSpecified || len(fw) > 1 {
			t.Fatalf("%+v %+v", id, fw)
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	for _, s := range fixtureFiles(MeminfoPath) {
		f.Add(s)
	}
	f.Add([]byte("Node 0 MemTotal:       67098848 kB\n"))
	f.Add([]byte("MemTotal: 18446744073709551616 kB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range ParseMeminfo(data) {
			if k == "" {
				t.Fatal("empty key")
			}
		}
	})
}

func FuzzParsePVR(f *testing.F) {
	f.Add("2.1 (pvr 004b 0201)", "POWER8E (raw), altivec supported")
	f.Add("pvr", "POWER")
	f.Add("(pvr zzzz 0201)", "POWER999999999999999999")
	f.Add("İİİİ pvr 004b 0201", "ǅ")
	f.Fuzz(func(t *testing.T, revision, model string) {
		pvr := ParsePVR(revision)
		if pvr != "" && (len(pvr) != 8 || strings.ToLower(pvr) != pvr) {
			t.Fatalf("PVR %q", pvr)
		}
		if g := PowerGeneration(pvr, model); g < 0 || g > 999 {
			t.Fatalf("generation %d", g)
		}
	})
}

func FuzzARMNames(f *testing.F) {
	f.Add("0x41", "0xd46")
	f.Add("0x43", "0x0af")
	f.Add("0x", "0x-1")
	f.Fuzz(func(t *testing.T, impl, part string) {
		v, m := ARMNames(impl, part)
		if m != "" && v == strings.TrimSpace(impl) {
			t.Fatalf("named part %q of unnamed implementer %q", m, impl)
		}
	})
}

// FuzzReadSysfs feeds hostile sysfs contents to the whole Read: the lists,
// one CPU's topology and a node's cpulist.
func FuzzReadSysfs(f *testing.F) {
	f.Add("0-47", "0,8,16,24,32,40", "0", "32", "0", "0-23", []byte("3690.000000MHz"), "1")
	f.Add("0-4294967295", "", "x", "-1", "-1", "a-b", []byte(""), "0")
	f.Add("", "0-3:2", "0-65536", "99999999999", "18446744073709551616", "0,,1", []byte("fast"), "yes")
	f.Add("0-47", "0-65535", "0", "32", "0", "0-23", []byte("1MHz"), "")
	f.Fuzz(func(t *testing.T, present, online, siblings, coreID, pkg, nodeCPUs string, clock []byte, cpu8Online string) {
		m := fixturePowerNVP8()
		m[SysCPUPath+"/present"] = &fstest.MapFile{Data: []byte(present)}
		m[SysCPUPath+"/online"] = &fstest.MapFile{Data: []byte(online)}
		m[SysCPUPath+"/cpu8/online"] = &fstest.MapFile{Data: []byte(cpu8Online)}
		m[SysCPUPath+"/cpu0/topology/thread_siblings_list"] = &fstest.MapFile{Data: []byte(siblings)}
		m[SysCPUPath+"/cpu0/topology/core_id"] = &fstest.MapFile{Data: []byte(coreID)}
		m[SysCPUPath+"/cpu0/topology/physical_package_id"] = &fstest.MapFile{Data: []byte(pkg)}
		m[SysNodePath+"/node0/cpulist"] = &fstest.MapFile{Data: []byte(nodeCPUs)}
		m[CPUInfoPath] = &fstest.MapFile{Data: append([]byte("processor : 0\ncpu : POWER8\nclock : "), clock...)}
		h, err := Read(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ni := h.NodeInfo
		if ni.CPUs > 0 && ni.TotalCPUs != ni.Nodes*ni.Sockets*ni.Cores*ni.Threads {
			t.Fatalf("nodeinfo %+v: total is not the product", ni)
		}
		for _, c := range h.Topology.Offline {
			if h.Topology.Online.Contains(c) {
				t.Fatalf("CPU %d both online and offline", c)
			}
		}
		// The online CPUs are present ones (never more), or unavailable.
		if on := h.Topology.Online; on != nil && len(on)+len(h.Topology.Offline) != h.Topology.TotalCPUs {
			t.Fatalf("online %s and offline %s are not the %d present CPUs", on, h.Topology.Offline, h.Topology.TotalCPUs)
		}
	})
}

// FuzzReadDeviceTree feeds hostile root properties to the whole Read.
func FuzzReadDeviceTree(f *testing.F) {
	f.Add([]byte("IBM\x00"), []byte("8247-22L\x00"), []byte("IBM,0321\x00"), []byte("ibm,powernv\x00"))
	f.Add([]byte{0xff}, []byte{0, 0, 0, 1}, []byte(",,,\x00,"), []byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, vendor, model, systemID, compatible []byte) {
		m := fixturePowerNVP8()
		m[DeviceTreePath+"/vendor"] = &fstest.MapFile{Data: vendor}
		m[DeviceTreePath+"/model"] = &fstest.MapFile{Data: model}
		m[DeviceTreePath+"/system-id"] = &fstest.MapFile{Data: systemID}
		m[DeviceTreePath+"/compatible"] = &fstest.MapFile{Data: compatible}
		h, err := Read(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(h.Identity.UUID, ",\x00") {
			t.Fatalf("UUID %q", h.Identity.UUID)
		}
		if h.Identity.Source == "" {
			t.Fatal("no identity source")
		}
	})
}
