package hostinfo

import (
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"polyvirt/internal/arch"
)

// KernelArchPath is the kernel's "uname -m" under the root (Linux 6.1 and
// later).
const KernelArchPath = "proc/sys/kernel/arch"

// elfProbePaths are executables whose ELF header tells a POWER root's
// endianness.
var elfProbePaths = []string{"bin/sh", "usr/bin/sh", "sbin/init"}

// archInputs are the facts detectArch weighs.
type archInputs struct {
	option  arch.Arch
	cpuArch arch.Arch // from the cpuinfo format; Unknown when unreadable
	cpu     CPU
	dt      DeviceTree
	sysinfo bool // an s390x sysinfo was read
}

// detectArch finds the real architecture. In order:
//
//  1. Options.Arch ("option");
//  2. proc/sys/kernel/arch, the kernel's own uname -m ("kernel");
//  3. the cpuinfo format ("cpuinfo"; see ParseCPUInfo);
//  4. a POWER device tree: compatible "ibm,powernv" or "qemu,pseries", or
//     a model written "IBM,…" ("device-tree");
//  5. an s390x /proc/sysinfo ("sysinfo");
//  6. nothing: Unknown ("none").
//
// ppc64 or ppc64le: nothing in cpuinfo or the device tree tells the
// endianness of the running kernel. The ELF header of the root's bin/sh (or
// usr/bin/sh, sbin/init), when it is a 64-bit POWER executable, decides.
// Otherwise a POWER7 or older processor means ppc64 (little-endian Linux
// needs POWER8), and anything else is ppc64le: every current PowerNV and
// pSeries distribution is little-endian.
func detectArch(fsys fs.FS, p *problems, in archInputs) (arch.Arch, string) {
	if in.option != arch.Unknown {
		return in.option, "option"
	}
	if v, ok := readAttr(fsys, p, "arch", KernelArchPath); ok && v != "" {
		if a, err := arch.Parse(v); err == nil {
			return a, "kernel"
		}
		p.add("arch", KernelArchPath, "unknown architecture "+clipString(v))
	}
	if in.cpuArch != arch.Unknown {
		a := in.cpuArch
		if a.Family() == arch.FamilyPPC {
			if e := elfPPCArch(fsys); e != arch.Unknown {
				a = e
			}
		}
		return a, "cpuinfo"
	}
	dt := in.dt
	if dt.Found && (slices.Contains(dt.Compatible, "ibm,powernv") || slices.Contains(dt.Compatible, "qemu,pseries") ||
		strings.HasPrefix(dt.Model, "IBM,")) {
		if e := elfPPCArch(fsys); e != arch.Unknown {
			return e, "device-tree"
		}
		return arch.PPC64LE, "device-tree"
	}
	if in.sysinfo {
		return arch.S390X, "sysinfo"
	}
	p.add("arch", CPUInfoPath, "no file of the root says the architecture (kernel arch, cpuinfo format, device tree, sysinfo)")
	return arch.Unknown, "none"
}

// elfPPCArch reads the ELF header of the root's shell: ppc64le or ppc64 for
// a 64-bit POWER executable, Unknown otherwise (no such file, another
// machine, not ELF).
func elfPPCArch(fsys fs.FS) arch.Arch {
	for _, name := range elfProbePaths {
		h, err := readHead(fsys, name, 20)
		if err != nil || len(h) < 20 || string(h[:4]) != "\x7fELF" || h[4] != 2 {
			continue
		}
		var machine uint16
		switch h[5] {
		case 1: // little endian
			machine = uint16(h[18]) | uint16(h[19])<<8
		case 2: // big endian
			machine = uint16(h[18])<<8 | uint16(h[19])
		default:
			continue
		}
		const emPPC64 = 21
		if machine != emPPC64 {
			return arch.Unknown
		}
		if h[5] == 1 {
			return arch.PPC64LE
		}
		return arch.PPC64
	}
	return arch.Unknown
}

// readHead reads the first n bytes of a regular file.
func readHead(fsys fs.FS, name string, n int) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fs.ErrInvalid
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	return buf[:m], nil
}

// DeriveThreadsPerSubcore returns what KVM_CAP_PPC_SMT on /dev/kvm would
// answer on the host the data describes, for libvirt's nodeinfo:
//
//   - 0 unless a is ppc64/ppc64le and the platform is PowerNV (in a pSeries
//     LPAR or guest there is no HV KVM, and the ioctl answers 0);
//   - 1 on POWER9 and later (ISA 3.0: KVM answers 1);
//   - on POWER7 and POWER8, the hardware threads per core divided by the
//     subcores per core (sys/devices/system/cpu/subcores_per_core, 1 when
//     absent). threadsPerCore comes from the device tree
//     (ibm,ppc-interrupt-server#s); 0 means unknown and the generation's
//     value is used (4 on POWER7, 8 on POWER8);
//   - 0 for an unknown processor.
//
// The presence of dev/kvm is not required: snapshots seldom capture device
// nodes (libvirt's own test data has none, and libvirt's test mock answers 8
// for every PPC64 host). A live host without kvm_hv would answer 0; the
// caller that knows it passes Options.ThreadsPerSubcore < 0.
func DeriveThreadsPerSubcore(a arch.Arch, cpu CPU, threadsPerCore, subcoresPerCore int) int {
	if (a != arch.PPC64 && a != arch.PPC64LE) || !strings.EqualFold(cpu.Platform, "PowerNV") {
		return 0
	}
	g := PowerGeneration(cpu.PVR, cpu.Model)
	switch {
	case g >= 9:
		return 1
	case g == 7 || g == 8:
		if threadsPerCore <= 0 {
			threadsPerCore = 4
			if g == 8 {
				threadsPerCore = 8
			}
		}
		if subcoresPerCore <= 0 {
			subcoresPerCore = 1
		}
		if threadsPerCore%subcoresPerCore != 0 {
			return 0
		}
		return threadsPerCore / subcoresPerCore
	}
	return 0
}

// DetectArch is the architecture of the host whose root is fsys, as Read
// finds it, with its source ("kernel", "cpuinfo", ...). Nothing under the
// root telling it is an error.
func DetectArch(fsys fs.FS) (arch.Arch, string, error) {
	h, err := Read(fsys, Options{})
	if err != nil {
		return arch.Unknown, "", err
	}
	if h.Arch == arch.Unknown {
		return arch.Unknown, h.ArchSource, fmt.Errorf("hostinfo: nothing under the root tells the architecture (%s, %s, %s, %s)",
			KernelArchPath, CPUInfoPath, DeviceTreePath, SysinfoPath)
	}
	return h.Arch, h.ArchSource, nil
}
