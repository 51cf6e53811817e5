package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AgentInfo is an agent's identity, for polyvirt_agent_info.
type AgentInfo struct {
	HostID, Arch, Version string
	// FakeKVM tells whether the agent runs its guests in fake-KVM mode.
	FakeKVM bool
}

// AgentSample is an agent's last statistics round: its host and its VMs,
// as the agent sampled them (once per interval: the host's /proc, and
// libvirt's bulk statistics of all its running VMs in one call).
type AgentSample struct {
	// Time is when the round was taken; Took how long it took.
	Time time.Time
	Took time.Duration
	// HostOK tells whether the host could be read (Host is then set).
	HostOK bool
	Host   HostSample
	VMs    []VMSample
}

// HostSample is a host's figures.
type HostSample struct {
	CPUs int
	// BusySeconds and TotalSeconds are the CPU time of all CPUs since
	// boot: busy, and in all (busy and idle).
	BusySeconds, TotalSeconds float64
	// UsageRatio is the busy share of the last interval (0-1).
	UsageRatio                      float64
	MemTotal, MemFree, MemAvailable uint64 // bytes
	Load1, Load5, Load15            float64
	VMsRunning, VCPUsUsed           int
	MemoryUsed                      uint64 // bytes: the running VMs' memory
}

// VMSample is one VM's figures. Figures tells whether libvirt's bulk
// statistics had this VM's figures in this round (a VM that is down, or
// whose QEMU does not answer, has its state only).
type VMSample struct {
	ID, Name string
	// State is the agent's state name (running, paused, shutoff, ...).
	State   string
	Figures bool
	VCPUs   int
	// CPUSeconds is the CPU time the VM used since its QEMU started.
	CPUSeconds float64
	// Memory is the balloon's current size, MaxMemory its maximum; the
	// others what the balloon driver and QEMU report (zero: not reported).
	Memory, MaxMemory, RSS, Available, Usable, Unused uint64 // bytes
	SwapIn, SwapOut                                   uint64 // bytes (counters)
	Disks                                             []DiskSample
	NICs                                              []NICSample
}

// DiskSample is one disk's counters.
type DiskSample struct {
	Name                                     string
	ReadBytes, WriteBytes, ReadOps, WriteOps uint64
}

// NICSample is one interface's counters.
type NICSample struct {
	Name                             string
	RxBytes, TxBytes, RxPkts, TxPkts uint64
}

// Agent is an agent's metrics.
type Agent struct {
	reg *prometheus.Registry
}

// NewAgent makes an agent's metrics: last returns its last statistics
// round (false before the first), connected whether libvirt answers now.
func NewAgent(info AgentInfo, last func() (AgentSample, bool), connected func() bool) *Agent {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "agent", Name: "info",
			Help: "The agent answering: its host id, architecture, version and whether its guests run in fake-KVM mode (always 1).",
			ConstLabels: prometheus.Labels{"host_id": info.HostID, "arch": info.Arch, "version": info.Version,
				"fake_kvm": map[bool]string{true: "true", false: "false"}[info.FakeKVM]}},
			func() float64 { return 1 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "agent", Name: "libvirt_connected",
			Help: "1 when the agent reaches libvirt now, else 0."},
			func() float64 { return boolValue(connected()) }),
		&agentCollector{last: last},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return &Agent{reg: reg}
}

// Handler serves the metrics in Prometheus's text format (the caller
// authenticates the scraper).
func (m *Agent) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 30 * time.Second})
}

// Registry is the agent's registry (tests gather it).
func (m *Agent) Registry() *prometheus.Registry { return m.reg }

// agentCollector turns the last statistics round into metrics.
type agentCollector struct {
	last func() (AgentSample, bool)
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

var (
	vmLabels = []string{"vm", "vm_id"}

	sampleTimeDesc = desc("agent_stats_timestamp_seconds", "When the agent's last statistics round was taken (Unix time).")
	sampleTookDesc = desc("agent_stats_duration_seconds", "How long the agent's last statistics round took (the host's files, libvirt's states and bulk statistics, the QEMU probes).")

	hostCPUsDesc      = desc("host_cpus", "The host's online CPUs.")
	hostCPUDesc       = desc("host_cpu_seconds_total", "CPU time of all the host's CPUs since boot, by mode (busy, idle).", "mode")
	hostUsageDesc     = desc("host_cpu_usage_ratio", "Busy share of the host's CPUs over the agent's last interval (0-1).")
	hostMemTotalDesc  = desc("host_memory_total_bytes", "The host's memory (MemTotal).")
	hostMemFreeDesc   = desc("host_memory_free_bytes", "The host's free memory (MemFree).")
	hostMemAvailDesc  = desc("host_memory_available_bytes", "The host's available memory (MemAvailable).")
	hostLoadDesc      = desc("host_load", "The host's load average, by period (1m, 5m, 15m).", "period")
	hostVMsDesc       = desc("host_vms_running", "The VMs of this agent that run (running or paused).")
	hostVCPUsDesc     = desc("host_vcpus_used", "The vCPUs of this agent's running VMs.")
	hostVMMemDesc     = desc("host_vm_memory_bytes", "The memory of this agent's running VMs.")
	vmStateDesc       = desc("vm_state", "1 for the state a VM of this host is in (running, paused, shutoff, crashed, ...).", "vm", "vm_id", "state")
	vmVCPUsDesc       = desc("vm_vcpus", "A VM's vCPUs.", vmLabels...)
	vmCPUDesc         = desc("vm_cpu_seconds_total", "CPU time a VM used since its QEMU started.", vmLabels...)
	vmMemDesc         = desc("vm_memory_bytes", "A VM's current memory (its balloon's size).", vmLabels...)
	vmMaxMemDesc      = desc("vm_memory_max_bytes", "A VM's maximum memory.", vmLabels...)
	vmRSSDesc         = desc("vm_memory_rss_bytes", "Resident memory of a VM's QEMU process.", vmLabels...)
	vmBalAvailDesc    = desc("vm_balloon_available_bytes", "Memory the guest sees, as its balloon driver reports.", vmLabels...)
	vmBalUsableDesc   = desc("vm_balloon_usable_bytes", "Memory the guest could use without swapping, as its balloon driver reports.", vmLabels...)
	vmBalUnusedDesc   = desc("vm_balloon_unused_bytes", "Memory the guest leaves unused, as its balloon driver reports.", vmLabels...)
	vmSwapInDesc      = desc("vm_balloon_swap_in_bytes_total", "Memory the guest swapped in, as its balloon driver reports.", vmLabels...)
	vmSwapOutDesc     = desc("vm_balloon_swap_out_bytes_total", "Memory the guest swapped out, as its balloon driver reports.", vmLabels...)
	diskLabels        = []string{"vm", "vm_id", "disk"}
	vmDiskRBytesDesc  = desc("vm_disk_read_bytes_total", "Bytes a VM's disk read.", diskLabels...)
	vmDiskWBytesDesc  = desc("vm_disk_write_bytes_total", "Bytes a VM's disk wrote.", diskLabels...)
	vmDiskROpsDesc    = desc("vm_disk_read_requests_total", "Read requests of a VM's disk.", diskLabels...)
	vmDiskWOpsDesc    = desc("vm_disk_write_requests_total", "Write requests of a VM's disk.", diskLabels...)
	nicLabels         = []string{"vm", "vm_id", "interface"}
	vmNetRxBytesDesc  = desc("vm_network_receive_bytes_total", "Bytes a VM's network interface received.", nicLabels...)
	vmNetTxBytesDesc  = desc("vm_network_transmit_bytes_total", "Bytes a VM's network interface sent.", nicLabels...)
	vmNetRxPktsDesc   = desc("vm_network_receive_packets_total", "Packets a VM's network interface received.", nicLabels...)
	vmNetTxPktsDesc   = desc("vm_network_transmit_packets_total", "Packets a VM's network interface sent.", nicLabels...)
	agentDescriptions = []*prometheus.Desc{sampleTimeDesc, sampleTookDesc, hostCPUsDesc, hostCPUDesc, hostUsageDesc, hostMemTotalDesc,
		hostMemFreeDesc, hostMemAvailDesc, hostLoadDesc, hostVMsDesc, hostVCPUsDesc, hostVMMemDesc, vmStateDesc, vmVCPUsDesc, vmCPUDesc,
		vmMemDesc, vmMaxMemDesc, vmRSSDesc, vmBalAvailDesc, vmBalUsableDesc, vmBalUnusedDesc, vmSwapInDesc, vmSwapOutDesc,
		vmDiskRBytesDesc, vmDiskWBytesDesc, vmDiskROpsDesc, vmDiskWOpsDesc, vmNetRxBytesDesc, vmNetTxBytesDesc, vmNetRxPktsDesc, vmNetTxPktsDesc}
)

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range agentDescriptions {
		ch <- d
	}
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.last()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(sampleTimeDesc, float64(s.Time.UnixNano())/1e9)
	gauge(sampleTookDesc, s.Took.Seconds())
	if s.HostOK {
		h := s.Host
		gauge(hostCPUsDesc, float64(h.CPUs))
		counter(hostCPUDesc, h.BusySeconds, "busy")
		counter(hostCPUDesc, max(h.TotalSeconds-h.BusySeconds, 0), "idle")
		gauge(hostUsageDesc, h.UsageRatio)
		gauge(hostMemTotalDesc, float64(h.MemTotal))
		gauge(hostMemFreeDesc, float64(h.MemFree))
		gauge(hostMemAvailDesc, float64(h.MemAvailable))
		gauge(hostLoadDesc, h.Load1, "1m")
		gauge(hostLoadDesc, h.Load5, "5m")
		gauge(hostLoadDesc, h.Load15, "15m")
		gauge(hostVMsDesc, float64(h.VMsRunning))
		gauge(hostVCPUsDesc, float64(h.VCPUsUsed))
		gauge(hostVMMemDesc, float64(h.MemoryUsed))
	}
	for _, v := range s.VMs {
		gauge(vmStateDesc, 1, v.Name, v.ID, v.State)
		if v.VCPUs > 0 {
			gauge(vmVCPUsDesc, float64(v.VCPUs), v.Name, v.ID)
		}
		if !v.Figures {
			continue
		}
		counter(vmCPUDesc, v.CPUSeconds, v.Name, v.ID)
		gauge(vmMemDesc, float64(v.Memory), v.Name, v.ID)
		gauge(vmMaxMemDesc, float64(v.MaxMemory), v.Name, v.ID)
		for _, x := range []struct {
			d *prometheus.Desc
			v uint64
		}{{vmRSSDesc, v.RSS}, {vmBalAvailDesc, v.Available}, {vmBalUsableDesc, v.Usable}, {vmBalUnusedDesc, v.Unused}} {
			if x.v > 0 {
				gauge(x.d, float64(x.v), v.Name, v.ID)
			}
		}
		if v.Available > 0 {
			counter(vmSwapInDesc, float64(v.SwapIn), v.Name, v.ID)
			counter(vmSwapOutDesc, float64(v.SwapOut), v.Name, v.ID)
		}
		for _, d := range v.Disks {
			counter(vmDiskRBytesDesc, float64(d.ReadBytes), v.Name, v.ID, d.Name)
			counter(vmDiskWBytesDesc, float64(d.WriteBytes), v.Name, v.ID, d.Name)
			counter(vmDiskROpsDesc, float64(d.ReadOps), v.Name, v.ID, d.Name)
			counter(vmDiskWOpsDesc, float64(d.WriteOps), v.Name, v.ID, d.Name)
		}
		for _, n := range v.NICs {
			counter(vmNetRxBytesDesc, float64(n.RxBytes), v.Name, v.ID, n.Name)
			counter(vmNetTxBytesDesc, float64(n.TxBytes), v.Name, v.ID, n.Name)
			counter(vmNetRxPktsDesc, float64(n.RxPkts), v.Name, v.ID, n.Name)
			counter(vmNetTxPktsDesc, float64(n.TxPkts), v.Name, v.ID, n.Name)
		}
	}
}
