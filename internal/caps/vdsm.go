package caps

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpuset"
	"polyvirt/internal/virtcaps"
)

// VDSM is the report in VDSM's getCapabilities + getHardwareInfo vocabulary
// and value formats (numbers as strings, flags as one comma list, NUMA
// nodes keyed by their id as a string), so that oVirt tooling can read it.
type VDSM struct {
	CPUModel         string                  `json:"cpuModel"`
	CPUSpeed         string                  `json:"cpuSpeed"`
	CPUFlags         string                  `json:"cpuFlags"`
	CPUSockets       string                  `json:"cpuSockets"`
	CPUCores         string                  `json:"cpuCores"`
	CPUThreads       string                  `json:"cpuThreads"`
	OnlineCPUs       string                  `json:"onlineCpus"`
	CPUTopology      []VDSMCPU               `json:"cpuTopology"`
	EmulatedMachines []string                `json:"emulatedMachines"`
	KVMEnabled       string                  `json:"kvmEnabled"`
	NUMANodes        map[string]VDSMNUMANode `json:"numaNodes"`
	NUMANodeDistance map[string][]int        `json:"numaNodeDistance"`
	MemSize          string                  `json:"memSize"`
	VMTypes          []string                `json:"vmTypes"`
	// Packages2 holds the libvirt and QEMU versions as VDSM's packages2.
	Packages2 map[string]VDSMPackage `json:"packages2"`
	Arch      string                 `json:"arch"`

	SystemManufacturer string `json:"systemManufacturer"`
	SystemProductName  string `json:"systemProductName"`
	SystemVersion      string `json:"systemVersion"`
	SystemSerialNumber string `json:"systemSerialNumber"`
	SystemUUID         string `json:"systemUUID"`
	SystemFamily       string `json:"systemFamily"`

	// Notes say where this vocabulary differs from polyvirt's JSON report
	// on this host (not a VDSM field).
	Notes []string `json:"notes,omitempty"`
}

// VDSMPackage is one entry of packages2.
type VDSMPackage struct {
	Version string `json:"version"`
	Release string `json:"release"`
}

// VDSMNUMANode is one entry of numaNodes.
type VDSMNUMANode struct {
	CPUs        []int  `json:"cpus"`
	TotalMemory string `json:"totalMemory"`
}

// VDSMCPU is one entry of cpuTopology.
type VDSMCPU struct {
	CPUID      int `json:"cpu_id"`
	NUMACellID int `json:"numa_cell_id"`
	SocketID   int `json:"socket_id"`
	DieID      int `json:"die_id"`
	CoreID     int `json:"core_id"`
}

// ToVDSM renders a collected report in VDSM's vocabulary, with VDSM's
// readings where they differ from the JSON report's (each said in Notes):
//
//   - cpuSpeed is the clock as cpuinfo prints it ("3690.000000");
//   - where archspec says so (POWER), systemSerialNumber is the machine's
//     type-model (the cpuinfo model line, "8247-22L") and systemUUID the
//     device tree's system-id; the JSON report keeps the real serial in
//     hardware.serialNumber and the type-model in hardware.model;
//   - where archspec says so (aarch64), cpuModel is the raw "CPU part"
//     ("0x000"), not the name lscpu gives it;
//   - when libvirt's capabilities document was read, the CPU topology and
//     NUMA nodes come from its NUMA cells (a CPU counts only when libvirt
//     printed its socket_id, core_id and siblings; sockets are distinct
//     socket ids, cores distinct sibling lists, threads the online CPUs).
func ToVDSM(res *Result) *VDSM {
	r := res.Report
	if r == nil {
		r = &hostreport.Report{}
	}
	h := res.Host
	var caps *virtcaps.Capabilities
	if res.HostLibvirt != nil {
		caps = res.HostLibvirt.Capabilities
	}
	v := &VDSM{
		CPUModel:           orUnavailable(r.CPU.Model),
		CPUSpeed:           mhzText(r.CPU.MHz),
		CPUFlags:           strings.Join(r.CPU.Flags, ","),
		EmulatedMachines:   r.Virt.EmulatedMachines,
		KVMEnabled:         strconv.FormatBool(r.Virt.KVM || r.FakeKVM),
		MemSize:            strconv.FormatUint(r.MemoryMiB, 10),
		Packages2:          map[string]VDSMPackage{},
		VMTypes:            []string{"kvm"},
		Arch:               r.EffectiveArch.String(),
		SystemManufacturer: r.Hardware.Manufacturer,
		SystemProductName:  r.Hardware.ProductName,
		SystemVersion:      r.Hardware.Version,
		SystemSerialNumber: r.Hardware.SerialNumber,
		SystemUUID:         r.Hardware.UUID,
		SystemFamily:       r.Hardware.Family,
		NUMANodes:          map[string]VDSMNUMANode{},
		NUMANodeDistance:   map[string][]int{},
		CPUTopology:        []VDSMCPU{},
	}
	if h != nil && h.CPU.MHz != "" {
		v.CPUSpeed = h.CPU.MHz
	}
	if spec, err := archspec.For(r.Arch); err == nil && r.CPU.FakeIdentity == "" {
		if spec.Host.VDSMSerial == "type-model" {
			tm := r.Hardware.Model
			if h != nil && h.CPU.TypeModel != "" {
				tm = h.CPU.TypeModel
			}
			v.SystemSerialNumber = orUnavailable(tm)
			v.Notes = append(v.Notes, fmt.Sprintf("systemSerialNumber is the machine type-model (/proc/cpuinfo model), as VDSM reports it on %s; the serial number (device tree system-id) is systemUUID here and hardware.serialNumber (%s) in the JSON report",
				r.Arch, orUnavailable(r.Hardware.SerialNumber)))
		}
		if spec.Host.VDSMCPUModel == "model-id" && h != nil && h.CPU.ModelID != "" {
			v.CPUModel = h.CPU.ModelID
			v.Notes = append(v.Notes, fmt.Sprintf("cpuModel is the raw CPU part, as VDSM reports it on %s; the JSON report's cpu.model is its name (%s)",
				r.Arch, orUnavailable(r.CPU.Model)))
		}
	}
	if r.Virt.LibvirtVersion != "" {
		v.Packages2["libvirt"] = VDSMPackage{Version: r.Virt.LibvirtVersion, Release: ""}
	}
	if r.Virt.QEMUVersion != "" {
		v.Packages2["qemu-kvm"] = VDSMPackage{Version: r.Virt.QEMUVersion, Release: ""}
	}
	if v.EmulatedMachines == nil {
		v.EmulatedMachines = []string{}
	}
	if caps != nil && len(caps.Cells) > 0 {
		vdsmFromCells(v, caps.Cells)
		return v
	}
	// No cells: the host's own topology.
	if r.CPU.TopologySource == "" {
		v.CPUSockets, v.CPUCores, v.CPUThreads, v.OnlineCPUs = Unavailable, Unavailable, Unavailable, Unavailable
	} else {
		v.CPUSockets = strconv.Itoa(r.CPU.Sockets)
		v.CPUCores = strconv.Itoa(r.CPU.Sockets * r.CPU.CoresPerSocket)
		v.CPUThreads = strconv.Itoa(len(r.CPU.OnlineCPUs))
		v.OnlineCPUs = cpuset.Set(r.CPU.OnlineCPUs).Commas()
	}
	for _, n := range r.NUMA {
		key := strconv.Itoa(n.ID)
		v.NUMANodes[key] = VDSMNUMANode{CPUs: nonNilInts(n.CPUs), TotalMemory: strconv.FormatUint(n.MemoryMiB, 10)}
		if len(n.Distances) > 0 {
			v.NUMANodeDistance[key] = n.Distances
		}
	}
	return v
}

// mhzText prints a clock for VDSM when cpuinfo's own text is not at hand.
func mhzText(mhz float64) string {
	if mhz == 0 {
		return Unavailable
	}
	return strconv.FormatFloat(mhz, 'f', -1, 64)
}

func vdsmFromCells(v *VDSM, cells []virtcaps.Cell) {
	sockets := map[int]bool{}
	siblings := map[string]bool{}
	var online []int
	for _, c := range cells {
		key := strconv.Itoa(c.ID)
		node := VDSMNUMANode{CPUs: []int{}, TotalMemory: strconv.FormatUint(c.MemoryKiB/1024, 10)}
		for _, cpu := range c.CPUs {
			node.CPUs = append(node.CPUs, cpu.ID)
			if cpu.SocketID == nil || cpu.CoreID == nil || cpu.Siblings == "" {
				continue
			}
			sockets[*cpu.SocketID] = true
			siblings[cpu.Siblings] = true
			online = append(online, cpu.ID)
			die := 0
			if cpu.DieID != nil {
				die = *cpu.DieID
			}
			v.CPUTopology = append(v.CPUTopology, VDSMCPU{CPUID: cpu.ID, NUMACellID: c.ID, SocketID: *cpu.SocketID, DieID: die, CoreID: *cpu.CoreID})
		}
		v.NUMANodes[key] = node
		if len(c.Distances) > 0 {
			ids := make([]int, 0, len(c.Distances))
			for id := range c.Distances {
				ids = append(ids, id)
			}
			sort.Ints(ids)
			row := make([]int, len(ids))
			for i, id := range ids {
				row[i] = c.Distances[id]
			}
			v.NUMANodeDistance[key] = row
		}
	}
	sort.Ints(online)
	v.CPUSockets = strconv.Itoa(len(sockets))
	v.CPUCores = strconv.Itoa(len(siblings))
	v.CPUThreads = strconv.Itoa(len(online))
	v.OnlineCPUs = cpuset.Set(online).Commas()
}

func orUnavailable(s string) string {
	if s == "" {
		return Unavailable
	}
	return s
}

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}
