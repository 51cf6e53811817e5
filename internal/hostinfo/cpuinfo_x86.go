package hostinfo

import (
	"slices"

	"polyvirt/internal/arch"
)

// parseX86 reads an x86 cpuinfo: every processor block repeats vendor_id,
// "cpu family", model, "model name", stepping, "cpu MHz" and flags. The CPU
// values are those of the first processor block (as VDSM reads them); the
// types are lscpu's (distinct vendor, model, model name and stepping).
// x86_64 unless the flags line lacks "lm".
func parseX86(blocks []cpuBlock) (CPU, arch.Arch) {
	procs, _ := cpuBlocks(blocks)
	first := cpuBlock(nil)
	if len(procs) > 0 {
		first = procs[0]
	} else {
		first = blocks[0]
	}
	cpu := CPU{
		Model:      first.value("model name"),
		Vendor:     first.value("vendor_id"),
		MHz:        first.value("cpu MHz"),
		Revision:   first.value("stepping"),
		Family:     first.value("cpu family"),
		ModelID:    first.value("model"),
		Flags:      fields(first.value("flags")),
		Processors: len(procs),
	}
	var tb typeBuilder
	for _, b := range procs {
		n, ok := processorNumber(b.value("processor"))
		key := b.value("vendor_id") + "\x00" + b.value("model") + "\x00" + b.value("model name") + "\x00" + b.value("stepping")
		tb.add(key, CPUType{Model: b.value("model name"), Vendor: b.value("vendor_id"), Revision: b.value("stepping"), Flags: fields(b.value("flags"))}, n, ok)
	}
	if len(procs) == 0 {
		tb.add("", CPUType{Model: cpu.Model, Vendor: cpu.Vendor, Revision: cpu.Revision, Flags: cpu.Flags}, 0, false)
	}
	cpu.Types = tb.result()
	// A flags line without "lm" is a 32-bit processor; no flags line at
	// all says nothing, and x86_64 is the likely host.
	a := arch.X86_64
	if _, ok := first.get("flags"); ok && !slices.Contains(cpu.Flags, "lm") {
		a = arch.I686
	}
	return cpu, a
}
