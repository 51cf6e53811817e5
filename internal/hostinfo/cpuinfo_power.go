package hostinfo

import (
	"strconv"
	"strings"

	"polyvirt/internal/arch"
)

// parsePower reads a POWER cpuinfo: processor blocks with "cpu", "clock"
// and "revision", then a trailer block (timebase, platform, model, machine,
// firmware, MMU). The trailer is read only from blocks without a
// "processor" key (and, for a file whose trailer is not separated by a blank
// line, from the last processor block), and its "model" (the machine
// type-model) only ever goes to TypeModel: no per-CPU field is taken from it.
// The vendor is IBM: POWER cpuinfo never says so.
func parsePower(blocks []cpuBlock) (CPU, arch.Arch) {
	procs, other := cpuBlocks(blocks)
	first := cpuBlock(nil)
	if len(procs) > 0 {
		first = procs[0]
	}
	shared := make(map[string]string)
	for _, b := range other {
		for _, e := range b {
			if _, dup := shared[e.key]; !dup {
				shared[e.key] = e.value
			}
		}
	}
	trailer := func(key string) string {
		if v, ok := shared[key]; ok {
			return v
		}
		if len(procs) > 0 {
			return procs[len(procs)-1].value(key)
		}
		return ""
	}
	cpu := CPU{
		Model:             first.value("cpu"),
		Vendor:            "IBM",
		MHz:               powerClock(first.value("clock")),
		Revision:          first.value("revision"),
		Platform:          trailer("platform"),
		Machine:           trailer("machine"),
		TypeModel:         trailer("model"),
		FirmwareInterface: trailer("firmware"),
		MMU:               trailer("MMU"),
		Timebase:          trailer("timebase"),
		Processors:        len(procs),
	}
	if len(procs) == 0 {
		// A cpuinfo cut before its first blank line: the values are in the
		// single block.
		cpu.Model = trailer("cpu")
		cpu.MHz = powerClock(trailer("clock"))
		cpu.Revision = trailer("revision")
	}
	cpu.PVR = ParsePVR(cpu.Revision)
	var tb typeBuilder
	for _, b := range procs {
		n, ok := processorNumber(b.value("processor"))
		tb.add(b.value("cpu"), CPUType{Model: b.value("cpu"), Vendor: "IBM", Revision: b.value("revision")}, n, ok)
	}
	if len(procs) == 0 {
		tb.add("", CPUType{Model: cpu.Model, Vendor: "IBM", Revision: cpu.Revision}, 0, false)
	}
	cpu.Types = tb.result()
	a := arch.PPC64LE
	if g := PowerGeneration(cpu.PVR, cpu.Model); g > 0 && g < 8 {
		a = arch.PPC64
	}
	return cpu, a
}

// powerClock drops the unit of a POWER "clock" value: "3690.000000MHz" →
// "3690.000000".
func powerClock(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 3 && strings.EqualFold(v[len(v)-3:], "mhz") {
		v = strings.TrimSpace(v[:len(v)-3])
	}
	return v
}

// ParsePVR returns the processor version register of a POWER cpuinfo
// "revision" as 8 lower-case hex digits: "2.1 (pvr 004b 0201)" → "004b0201".
// It returns "" when the revision names no PVR.
func ParsePVR(revision string) string {
	i := indexFold(revision, "pvr")
	if i < 0 {
		return ""
	}
	f := strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(revision[i+3:]))
	if len(f) < 2 || !isHex(f[0], 4) || !isHex(f[1], 4) {
		return ""
	}
	return strings.ToLower(f[0] + f[1])
}

// indexFold is strings.Index ignoring ASCII case, with byte offsets into s
// itself (strings.ToLower may change the length of non-ASCII text).
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if hexDigit(s[i]) < 0 {
			return false
		}
	}
	return true
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// powerVersions maps the version half of the PVR to the POWER generation.
// The PPC970 family counts as 4 (it is a POWER4 derivative).
var powerVersions = map[uint64]int{
	0x0035: 4, 0x0038: 4, // POWER4, POWER4+
	0x0039: 4, 0x003c: 4, 0x0044: 4, 0x0045: 4, // PPC970, 970FX, 970MP, 970GX
	0x003a: 5, 0x003b: 5, // POWER5, POWER5+
	0x003e: 6,            // POWER6
	0x003f: 7, 0x004a: 7, // POWER7, POWER7+
	0x004b: 8, 0x004c: 8, 0x004d: 8, // POWER8E, POWER8NVL, POWER8
	0x004e: 9, 0x004f: 9, // POWER9, POWER9P
	0x0080: 10, // POWER10
	0x0082: 11, // POWER11
}

// PowerGeneration returns the POWER generation (7 for POWER7, 8 for POWER8E,
// …) from the PVR ("004b0201") or, failing that, from the cpuinfo "cpu"
// name ("POWER9 (architected), altivec supported"); 0 when neither says.
func PowerGeneration(pvr, model string) int {
	if len(pvr) == 8 {
		if v, err := strconv.ParseUint(pvr[:4], 16, 32); err == nil {
			if g, ok := powerVersions[v]; ok {
				return g
			}
		}
	}
	m := strings.ToUpper(strings.TrimSpace(model))
	if strings.HasPrefix(m, "POWER") {
		d := m[len("POWER"):]
		n := 0
		for n < len(d) && n < 3 && d[n] >= '0' && d[n] <= '9' {
			n++
		}
		if g, err := strconv.Atoi(d[:n]); err == nil {
			return g
		}
	}
	if strings.HasPrefix(m, "PPC970") {
		return 4
	}
	return 0
}
