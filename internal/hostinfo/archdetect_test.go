package hostinfo

import (
	"testing"
	"testing/fstest"

	"polyvirt/internal/arch"
)

func TestArchDetection(t *testing.T) {
	p8 := fixturePowerNVP8()
	cpuinfo := func(m fstest.MapFS) *fstest.MapFile { return m[CPUInfoPath] }
	cases := []struct {
		name   string
		fsys   fstest.MapFS
		opts   Options
		arch   arch.Arch
		source string
	}{
		{"POWER8 without endianness data", p8, Options{}, arch.PPC64LE, "cpuinfo"},
		{"option wins", p8, Options{Arch: arch.PPC64}, arch.PPC64, "option"},
		{"kernel uname", with(p8, KernelArchPath, []byte("ppc64\n")), Options{}, arch.PPC64, "kernel"},
		{"big-endian shell", with(p8, "bin/sh", elfHeader(2, 21)), Options{}, arch.PPC64, "cpuinfo"},
		{"little-endian shell", with(p8, "usr/bin/sh", elfHeader(1, 21)), Options{}, arch.PPC64LE, "cpuinfo"},
		{"x86 shell in a POWER snapshot is ignored", with(p8, "bin/sh", elfHeader(1, 62)), Options{}, arch.PPC64LE, "cpuinfo"},
		{"not ELF", with(p8, "bin/sh", []byte("#!/bin/busybox\n")), Options{}, arch.PPC64LE, "cpuinfo"},
		{"POWER7 is big endian", fstest.MapFS{CPUInfoPath: {Data: []byte(
			"processor\t: 0\ncpu\t\t: POWER7 (raw), altivec supported\nclock\t\t: 3550.000000MHz\nrevision\t: 2.1 (pvr 003f 0201)\n")}},
			Options{}, arch.PPC64, "cpuinfo"},
		{"device tree only", fstest.MapFS{DeviceTreePath + "/compatible": {Data: []byte(dtProp("ibm,powernv"))}}, Options{}, arch.PPC64LE, "device-tree"},
		{"LPAR device tree only", fstest.MapFS{DeviceTreePath + "/model": {Data: []byte(dtProp("IBM,9009-42A"))}}, Options{}, arch.PPC64LE, "device-tree"},
		{"sysinfo only", fstest.MapFS{SysinfoPath: fixtureS390()[SysinfoPath]}, Options{}, arch.S390X, "sysinfo"},
		{"x86 cpuinfo", fstest.MapFS{CPUInfoPath: cpuinfo(fixtureX86DMI())}, Options{}, arch.X86_64, "cpuinfo"},
		{"ARM cpuinfo", fstest.MapFS{CPUInfoPath: cpuinfo(fixtureAArch64())}, Options{}, arch.AArch64, "cpuinfo"},
		{"meminfo only", fstest.MapFS{MeminfoPath: {Data: []byte("MemTotal: 1 kB\n")}}, Options{}, arch.Unknown, "none"},
		{"unknown kernel arch falls through", with(p8, KernelArchPath, []byte("mips64\n")), Options{}, arch.PPC64LE, "cpuinfo"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := Read(c.fsys, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if h.Arch != c.arch || h.ArchSource != c.source {
				t.Errorf("arch %q from %q, want %q from %q (problems %v)", h.Arch, h.ArchSource, c.arch, c.source, h.Problems)
			}
		})
	}
}

// with returns a copy of m with one more file.
func with(m fstest.MapFS, name string, data []byte) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	out[name] = &fstest.MapFile{Data: data}
	return out
}

func TestDetectArch(t *testing.T) {
	cases := []struct {
		name   string
		fsys   fstest.MapFS
		arch   arch.Arch
		source string
		err    bool
	}{
		{"kernel uname", with(fixturePowerNVP8(), KernelArchPath, []byte("ppc64le\n")), arch.PPC64LE, "kernel", false},
		{"x86 cpuinfo", fixtureX86DMI(), arch.X86_64, "cpuinfo", false},
		{"nothing tells", fstest.MapFS{MeminfoPath: {Data: []byte("MemTotal: 1 kB\n")}}, arch.Unknown, "none", true},
		{"nothing at all", fstest.MapFS{}, arch.Unknown, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, source, err := DetectArch(c.fsys)
			if a != c.arch || source != c.source || (err != nil) != c.err {
				t.Errorf("DetectArch = %q from %q, %v; want %q from %q (error %v)", a, source, err, c.arch, c.source, c.err)
			}
		})
	}
}
