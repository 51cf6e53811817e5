package hostinfo

import (
	"os"
	"path/filepath"
	"testing"

	"polyvirt/internal/arch"
)

// Benchmarks. The Read of the 160-thread S822L snapshot (libvirt's
// linux-ppc64-subcores1: its cpuinfo as proc/cpuinfo, its sysfs as
// sys/devices/system) is the figure that matters: `polyvirt caps --root` on
// that snapshot must stay well under 10 ms for the whole process.
//
//	go test ./internal/hostinfo/ -run '^$' -bench . -benchmem

func benchCPUInfo(b *testing.B, data []byte) {
	b.Helper()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseCPUInfo(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCPUInfo(b *testing.B) {
	b.Run("fixture-power8", func(b *testing.B) { benchCPUInfo(b, fixturePowerNVP8()[CPUInfoPath].Data) })
	b.Run("fixture-x86_64", func(b *testing.B) { benchCPUInfo(b, fixtureX86DMI()[CPUInfoPath].Data) })
	b.Run("fixture-aarch64", func(b *testing.B) { benchCPUInfo(b, fixtureAArch64()[CPUInfoPath].Data) })
	b.Run("fixture-s390x", func(b *testing.B) { benchCPUInfo(b, fixtureS390()[CPUInfoPath].Data) })
	dir := corpusDir(b)
	if dir == "" {
		return
	}
	for _, name := range []string{"linux-ppc64-subcores1", "linux-x86_64-test3", "linux-s390x-with-frequency"} {
		data, err := os.ReadFile(filepath.Join(dir, "libvirt-hostcpu", name+".cpuinfo"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) { benchCPUInfo(b, data) })
	}
}

func BenchmarkLibvirtMHz(b *testing.B) {
	data := fixtureX86DMI()[CPUInfoPath].Data
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LibvirtMHz(data, arch.X86_64); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSysinfo(b *testing.B) {
	data := fixtureS390()[SysinfoPath].Data
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSysinfo(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDTStrings(b *testing.B) {
	data := []byte("ibm,powernv\x00ibm,firestone\x00")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDTStrings(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads whole roots: the fixtures in memory, and the
// 160-thread subcores1 snapshot from disk when the corpus is present.
func BenchmarkRead(b *testing.B) {
	run := func(b *testing.B, root func() any) {
		b.ReportAllocs()
		for b.Loop() {
			var h *Host
			var err error
			switch r := root().(type) {
			case string:
				h, err = Read(os.DirFS(r), Options{})
			default:
				b.Fatalf("root %T", r)
			}
			if err != nil {
				b.Fatal(err)
			}
			if h.Topology.TotalCPUs == 0 {
				b.Fatal("no CPUs read")
			}
		}
	}
	b.Run("fixture-power8-mapfs", func(b *testing.B) {
		fsys := fixturePowerNVP8()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Read(fsys, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	dir := corpusDir(b)
	if dir == "" {
		return
	}
	root := hostCPURoot(b, filepath.Join(dir, "libvirt-hostcpu"), "linux-ppc64-subcores1.cpuinfo", "linux-subcores1")
	b.Run("subcores1-160-threads", func(b *testing.B) {
		run(b, func() any { return root })
	})
}
