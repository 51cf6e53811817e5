package hostinfo

import (
	"strings"

	"polyvirt/internal/cpuset"
)

// parseS390 reads an s390x cpuinfo: a header (vendor_id "IBM/S390",
// "# processors", "bogomips per cpu", "max thread id", features, cacheN, and
// one "processor N: version = FF,  identification = 000123,  machine = 2817"
// line per CPU), then, on newer kernels, one block per CPU ("cpu number",
// "cpu MHz dynamic", "cpu MHz static", and on the newest "version",
// "identification", "machine").
//
// Model, Machine and TypeModel are the machine type ("2817"), Revision the
// version, MHz the first "cpu MHz dynamic" (empty on kernels that print no
// frequency), Flags the features. lscpu names no model on s390x, so the
// single type's Model is "".
func parseS390(blocks []cpuBlock) CPU {
	cpu := CPU{}
	var cpus []int
	var machine, version string
	for _, b := range blocks {
		for _, e := range b {
			switch e.key {
			case "vendor_id":
				if cpu.Vendor == "" {
					cpu.Vendor = e.value
				}
			case "features":
				if cpu.Flags == nil {
					cpu.Flags = fields(e.value)
				}
			case "max thread id":
				if cpu.MaxThreadID == "" {
					cpu.MaxThreadID = e.value
				}
			case "cpu MHz dynamic":
				if cpu.MHz == "" {
					cpu.MHz = e.value
				}
			case "machine":
				if machine == "" {
					machine = e.value
				}
			case "version":
				if version == "" {
					version = e.value
				}
			case "cpu number":
				if n, ok := processorNumber(e.value); ok {
					cpus = append(cpus, n)
				}
			default:
				p, ok := s390ProcessorLine(e)
				if !ok {
					continue
				}
				cpu.Processors++
				if p.ok {
					cpus = append(cpus, p.number)
				}
				if machine == "" {
					machine = p.machine
				}
				if version == "" {
					version = p.version
				}
			}
		}
	}
	if cpu.Processors == 0 {
		cpu.Processors = len(cpuset.Of(cpus...))
	}
	cpu.Model, cpu.Machine, cpu.TypeModel, cpu.Revision = machine, machine, machine, version
	cpu.Types = []CPUType{{Vendor: cpu.Vendor, Revision: version, Flags: cpu.Flags, CPUs: cpuset.Of(cpus...)}}
	return cpu
}

// s390Processor is one "processor N: version = …, identification = …,
// machine = …" line.
type s390Processor struct {
	number                           int
	ok                               bool // number is valid
	version, identification, machine string
}

// s390ProcessorLine parses a "processor N" header line; ok is false for any
// other line.
func s390ProcessorLine(e kv) (s390Processor, bool) {
	rest, found := strings.CutPrefix(e.key, "processor")
	if !found || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return s390Processor{}, false
	}
	var p s390Processor
	p.number, p.ok = numberedName("cpu"+strings.TrimSpace(rest), "cpu", cpuset.MaxCPU)
	for _, part := range strings.Split(e.value, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "version":
			p.version = strings.TrimSpace(v)
		case "identification":
			p.identification = strings.TrimSpace(v)
		case "machine":
			p.machine = strings.TrimSpace(v)
		}
	}
	return p, true
}
