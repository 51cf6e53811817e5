package hostinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"polyvirt/internal/arch"
	"polyvirt/internal/cpuset"
)

// CPUInfoPath is where the root holds /proc/cpuinfo.
const CPUInfoPath = "proc/cpuinfo"

// ReadCPUInfo reads and parses proc/cpuinfo under fsys (at most
// MaxCPUInfoBytes). The error names the file.
func ReadCPUInfo(fsys fs.FS) (CPU, arch.Arch, error) {
	data, err := readFile(fsys, CPUInfoPath, MaxCPUInfoBytes)
	if err != nil {
		return CPU{}, arch.Unknown, fmt.Errorf("%s: %s", CPUInfoPath, reason(err))
	}
	cpu, a, err := ParseCPUInfo(data)
	if err != nil {
		return cpu, a, fmt.Errorf("%s: %w", CPUInfoPath, err)
	}
	return cpu, a, nil
}

// ParseCPUInfo parses /proc/cpuinfo text of any architecture it knows. The
// format is recognised from the data, not from the machine running this code:
//
//   - s390x: a "vendor_id : IBM/S390" header or "processor N: version = …"
//     lines;
//   - ARM: "CPU implementer", "CPU part" or "CPU architecture" keys (aarch64
//     when the architecture is 8 or more or "AArch64", else armv7l);
//   - x86: "vendor_id" or "cpu family" keys (x86_64 when the flags hold
//     "lm", else i686);
//   - POWER: a "cpu" key with "clock", "revision", "timebase" or "platform"
//     (ppc64 for a POWER7 or older processor, which cannot run little-endian
//     Linux; ppc64le otherwise — Read refines this with what the root says).
//
// The returned architecture is what the format implies. An error means the
// data is not a cpuinfo of a known format (empty, binary, unrecognised); the
// CPU is then empty.
func ParseCPUInfo(data []byte) (CPU, arch.Arch, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return CPU{}, arch.Unknown, errors.New("binary data (NUL bytes), not cpuinfo text")
	}
	blocks := splitCPUInfo(string(data))
	if len(blocks) == 0 {
		return CPU{}, arch.Unknown, errors.New("empty: no \"key : value\" lines")
	}
	switch detectCPUInfoFormat(blocks) {
	case formatS390:
		cpu := parseS390(blocks)
		return cpu, arch.S390X, nil
	case formatARM:
		cpu, a := parseARM(blocks)
		return cpu, a, nil
	case formatX86:
		cpu, a := parseX86(blocks)
		return cpu, a, nil
	case formatPower:
		cpu, a := parsePower(blocks)
		return cpu, a, nil
	}
	return CPU{}, arch.Unknown, errors.New("unrecognised format: no x86, POWER, ARM or s390 keys")
}

// kv is one "key : value" line of cpuinfo, both sides trimmed.
type kv struct {
	key, value string
}

// cpuBlock is one blank-line-separated block of cpuinfo.
type cpuBlock []kv

// get returns the first value of key in the block.
func (b cpuBlock) get(key string) (string, bool) {
	for _, e := range b {
		if e.key == key {
			return e.value, true
		}
	}
	return "", false
}

// value returns the first value of key, or "".
func (b cpuBlock) value(key string) string {
	v, _ := b.get(key)
	return v
}

// splitCPUInfo cuts the text into blocks of key/value lines. Lines without
// a colon are ignored; blank lines end a block. Keys and values are
// substrings of s (no copies).
func splitCPUInfo(s string) []cpuBlock {
	var blocks []cpuBlock
	var cur cpuBlock
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				blocks = append(blocks, cur)
				cur = nil
			}
			continue
		}
		i := strings.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		key := strings.TrimSpace(line[:i])
		if key == "" {
			continue
		}
		cur = append(cur, kv{key, strings.TrimSpace(line[i+1:])})
	}
	if len(cur) > 0 {
		blocks = append(blocks, cur)
	}
	return blocks
}

type cpuInfoFormat int

const (
	formatUnknown cpuInfoFormat = iota
	formatS390
	formatARM
	formatX86
	formatPower
)

func detectCPUInfoFormat(blocks []cpuBlock) cpuInfoFormat {
	var x86, power, powerKey bool
	for _, b := range blocks {
		for _, e := range b {
			switch e.key {
			case "vendor_id":
				if strings.HasPrefix(e.value, "IBM/S390") {
					return formatS390
				}
				x86 = true
			case "# processors", "bogomips per cpu":
				return formatS390
			case "CPU implementer", "CPU part", "CPU architecture":
				return formatARM
			case "cpu family":
				x86 = true
			case "cpu":
				power = true
			case "clock", "revision", "timebase", "platform":
				powerKey = true
			default:
				if _, ok := s390ProcessorLine(e); ok {
					return formatS390
				}
			}
		}
	}
	switch {
	case x86:
		return formatX86
	case power && powerKey:
		return formatPower
	}
	return formatUnknown
}

// processorNumber reads the value of a "processor" (or "cpu number") key.
func processorNumber(v string) (int, bool) {
	return numberedName("cpu"+v, "cpu", cpuset.MaxCPU)
}

// cpuBlocks splits blocks into those of one processor (with a "processor"
// key) and the others (header or trailer).
func cpuBlocks(blocks []cpuBlock) (cpus, other []cpuBlock) {
	for _, b := range blocks {
		if _, ok := b.get("processor"); ok {
			cpus = append(cpus, b)
		} else {
			other = append(other, b)
		}
	}
	return cpus, other
}

// typeBuilder groups processors into lscpu's CPU types. The key of a type
// is its vendor, model, model name and stepping as cpuinfo prints them
// (for ARM: implementer, part, model name and variant), joined by NULs;
// lscpu orders the types by these fields, which sorting the keys does.
type typeBuilder struct {
	keys  []string
	types []CPUType
	index map[string]int
}

func (tb *typeBuilder) add(key string, t CPUType, cpu int, hasCPU bool) {
	if i, ok := tb.index[key]; ok {
		if hasCPU {
			tb.types[i].CPUs = append(tb.types[i].CPUs, cpu)
		}
		return
	}
	if tb.index == nil {
		tb.index = make(map[string]int)
	}
	tb.index[key] = len(tb.types)
	if hasCPU {
		t.CPUs = cpuset.Set{cpu}
	} else {
		t.CPUs = cpuset.Set{}
	}
	tb.keys = append(tb.keys, key)
	tb.types = append(tb.types, t)
}

func (tb *typeBuilder) result() []CPUType {
	idx := make([]int, len(tb.types))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return tb.keys[idx[a]] < tb.keys[idx[b]] })
	out := make([]CPUType, len(idx))
	for i, j := range idx {
		out[i] = tb.types[j]
		out[i].CPUs = cpuset.Of(out[i].CPUs...)
	}
	return out
}

// fields splits a flags line on white space; nil when empty.
func fields(s string) []string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	return f
}
