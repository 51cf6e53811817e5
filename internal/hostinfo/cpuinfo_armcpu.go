package hostinfo

import (
	"fmt"
	"strconv"
	"strings"

	"polyvirt/internal/arch"
)

// parseARM reads an ARM cpuinfo. Current aarch64 kernels print every key in
// each processor block; older ones (and 32-bit ARM) print some keys once, in
// a block without "processor" (Features, CPU implementer, …, Hardware):
// those apply to every processor that lacks them.
//
// Each processor's type is its implementer, part, model name and variant,
// as lscpu groups them; names come from lscpu's tables (ARMParts). CPU
// values are the first processor's: Model the part's name (else the
// "model name" or "Processor" line, else the raw part), Vendor the
// implementer's name, MHz the BogoMIPS (there is no clock in ARM cpuinfo;
// VDSM reports BogoMIPS), Revision "rVpR" from variant and revision.
func parseARM(blocks []cpuBlock) (CPU, arch.Arch) {
	procs, other := cpuBlocks(blocks)
	shared := make(map[string]string)
	for _, b := range other {
		for _, e := range b {
			if _, dup := shared[e.key]; !dup {
				shared[e.key] = e.value
			}
		}
	}
	global := func(key string) string { return shared[key] }
	val := func(b cpuBlock, key string) string {
		if v, ok := b.get(key); ok {
			return v
		}
		return global(key)
	}
	first := cpuBlock(nil)
	if len(procs) > 0 {
		first = procs[0]
	}
	impl, part := val(first, "CPU implementer"), val(first, "CPU part")
	vendor, name := ARMNames(impl, part)
	cpu := CPU{
		Model:       name,
		Vendor:      vendor,
		MHz:         val(first, "BogoMIPS"),
		Revision:    armRevision(val(first, "CPU variant"), val(first, "CPU revision")),
		ModelID:     part,
		Implementer: impl,
		Flags:       fields(val(first, "Features")),
		Processors:  len(procs),
	}
	if cpu.Model == "" {
		cpu.Model = firstNonEmpty(val(first, "model name"), val(first, "Processor"), part)
	}
	var tb typeBuilder
	for _, b := range procs {
		n, ok := processorNumber(b.value("processor"))
		im, pa, mn, va := val(b, "CPU implementer"), val(b, "CPU part"), val(b, "model name"), val(b, "CPU variant")
		v, nm := ARMNames(im, pa)
		if nm == "" {
			nm = mn
		}
		tb.add(im+"\x00"+pa+"\x00"+mn+"\x00"+va,
			CPUType{Model: nm, Vendor: v, Revision: armRevision(va, val(b, "CPU revision")), Flags: fields(val(b, "Features"))}, n, ok)
	}
	if len(procs) == 0 {
		nm := name
		if nm == "" {
			nm = global("model name")
		}
		tb.add("", CPUType{Model: nm, Vendor: vendor, Revision: cpu.Revision, Flags: cpu.Flags}, 0, false)
	}
	cpu.Types = tb.result()
	return cpu, armArch(val(first, "CPU architecture"), cpu.Flags)
}

// armArch tells aarch64 from 32-bit ARM: an aarch64 kernel prints "CPU
// architecture: 8" (old ones "AArch64"); a 32-bit kernel prints 7 or less
// even on an ARMv8 core. Without the key, the aarch64 Features "asimd" or
// "fp" decide.
func armArch(v string, flags []string) arch.Arch {
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "AArch64") {
		return arch.AArch64
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n >= 8 {
			return arch.AArch64
		}
		return arch.ARMv7L
	}
	for _, f := range flags {
		if f == "asimd" {
			return arch.AArch64
		}
	}
	if len(flags) > 0 {
		return arch.ARMv7L
	}
	return arch.AArch64
}

// armRevision prints lscpu's stepping "r<variant>p<revision>" ("0x1", "1"
// → "r1p1"); "" when either is missing or not a number.
func armRevision(variant, revision string) string {
	v, err1 := strconv.ParseInt(strings.TrimSpace(variant), 0, 32)
	r, err2 := strconv.ParseInt(strings.TrimSpace(revision), 10, 32)
	if err1 != nil || err2 != nil || v < 0 || r < 0 {
		return ""
	}
	return fmt.Sprintf("r%dp%d", v, r)
}

// ARMNames names an implementer and part as lscpu does ("0x41", "0xd46" →
// "ARM", "Cortex-A510"). An unknown implementer keeps its raw value as the
// vendor; an unknown part gives "". Both must be written "0x…", as the
// kernel prints them. Unlike lscpu, part 0x000 is named too (lscpu skips a
// zero part, so it leaves APM's X-Gene, part 0x000, unnamed).
func ARMNames(implementer, part string) (vendor, model string) {
	implementer, part = strings.TrimSpace(implementer), strings.TrimSpace(part)
	vendor = implementer
	impl, ok := armID(implementer)
	if !ok {
		return vendor, ""
	}
	im, ok := armImplementers[impl]
	if !ok {
		return vendor, ""
	}
	vendor = im.name
	p, ok := armID(part)
	if !ok {
		return vendor, ""
	}
	return vendor, im.parts[p]
}

func armID(s string) (int, bool) {
	if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
		return 0, false
	}
	v, err := strconv.ParseInt(s[2:], 16, 32)
	if err != nil || v < 0 {
		return 0, false
	}
	return int(v), true
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
