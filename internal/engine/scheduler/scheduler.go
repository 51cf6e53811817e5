// Package scheduler chooses the host a VM starts on. It is pure: it works
// on facts about one cluster's hosts and the VM (no database, no network),
// so that it is easy to test and to benchmark.
//
// A host is a candidate when it passes every filter, in this order (the
// oVirt engine's internal filters, reduced to what polyvirt knows):
//
//	Status            the host is Up
//	Cluster           the host is in the VM's cluster
//	Exclude           the host is not excluded (the host an HA VM died with)
//	PinToHost         the VM is pinned to no host, or to this one
//	Arch              the host runs the VM's architecture natively
//	CPU-Level         the host's CPU type is of the cluster's vendor group
//	                  and its level is at least the cluster's
//	Emulated-Machine  the host offers the VM's emulated machine
//	Host-Paths        the host's path policy allows the VM's host paths
//	                  (disk images, kernel, ...) as written (its agent
//	                  follows the links when it starts the VM)
//	Storage           the host has every storage pool the VM's volumes are
//	                  in (its agent found the pool's marker there)
//	Memory            the VM's memory fits in what the VMs already placed
//	                  there leave free (Policy: no overcommit by default)
//	CPU               the VM's vCPUs fit in the host's vCPU budget
//	                  (Policy: VCPUsPerCPU per online CPU)
//
// A migration's destination (Request.Migration) must also pass:
//
//	Migration-Source     it is not the host the VM runs on
//	VM-CPU-Level         its CPU level is at least the running VM's (a VM
//	                     in POWER8 compatibility mode may go to a POWER9
//	                     host; a POWER9-level VM never to a POWER8 host)
//	Page-Size            it offers the page size backing the VM's memory
//	Incoming-Migrations  it takes fewer migrations at once than its
//	                     cluster allows
//
// and the Emulated-Machine filter asks for the VM's exact machine
// (pseries-7.2), which the request then names.
//
// A host that fails a filter gets a Verdict with every failing filter's
// code and a sentence saying why ("The host power8-b did not satisfy
// internal filter Memory because its available memory is too low (512
// MiB) to run the VM (2048 MiB)."). Among the candidates the host with the
// lowest committed memory ratio after placing the VM wins (then the fewest
// running VMs, then the lowest vCPU ratio, then the name): VMs spread over
// the hosts in proportion to their memory.
package scheduler

import (
	"fmt"
	"slices"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/cpucatalog"
	"polyvirt/internal/hostpath"
)

// The filters, as named in the verdicts.
const (
	FilterStatus  = "Status"
	FilterCluster = "Cluster"
	FilterExclude = "Exclude"
	FilterPin     = "PinToHost"
	FilterArch    = "Arch"
	FilterCPU     = "CPU-Level"
	FilterMachine = "Emulated-Machine"
	FilterPaths   = "Host-Paths"
	FilterStorage = "Storage"
	FilterMemory  = "Memory"
	FilterVCPUs   = "CPU"

	FilterSource   = "Migration-Source"
	FilterVMCPU    = "VM-CPU-Level"
	FilterPageSize = "Page-Size"
	FilterIncoming = "Incoming-Migrations"
)

// Policy says how far VMs may commit a host's resources.
type Policy struct {
	// MemoryOvercommitPercent is the share of a host's memory (after
	// ReservedMemoryMiB) the memory of its VMs may add up to: 100 means no
	// overcommit.
	MemoryOvercommitPercent int `json:"memoryOvercommitPercent"`
	// ReservedMemoryMiB is kept for the host itself.
	ReservedMemoryMiB int64 `json:"reservedMemoryMiB"`
	// VCPUsPerCPU is how many vCPUs of its VMs a host runs per online
	// CPU.
	VCPUsPerCPU int `json:"vcpusPerCpu"`
}

// DefaultPolicy: memory is not overcommitted (256 MiB are kept for the
// host), vCPUs are, up to 4 per online CPU.
func DefaultPolicy() Policy {
	return Policy{MemoryOvercommitPercent: 100, ReservedMemoryMiB: 256, VCPUsPerCPU: 4}
}

// withDefaults fills the unset overcommit fields with DefaultPolicy's (a
// zero ReservedMemoryMiB reserves nothing).
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.MemoryOvercommitPercent <= 0 {
		p.MemoryOvercommitPercent = d.MemoryOvercommitPercent
	}
	if p.ReservedMemoryMiB < 0 {
		p.ReservedMemoryMiB = 0
	}
	if p.VCPUsPerCPU <= 0 {
		p.VCPUsPerCPU = d.VCPUsPerCPU
	}
	return p
}

// MemoryCapacityMiB is the memory of a host of totalMiB its VMs may use.
func (p Policy) MemoryCapacityMiB(totalMiB int64) int64 {
	p = p.withDefaults()
	c := (totalMiB - p.ReservedMemoryMiB) * int64(p.MemoryOvercommitPercent) / 100
	return max(c, 0)
}

// VCPUCapacity is the number of vCPUs a host with cpus online CPUs runs.
func (p Policy) VCPUCapacity(cpus int) int {
	p = p.withDefaults()
	return cpus * p.VCPUsPerCPU
}

// Host is what the scheduler knows of a host.
type Host struct {
	ID        string
	Name      string
	ClusterID string
	// Up tells whether the host's status is Up; Status is the status, for
	// the verdict.
	Up     bool
	Status string
	// Arch is the host's (effective) architecture (ppc64le).
	Arch arch.Arch
	// CPUType is the host's best cluster CPU type (zero when unknown).
	CPUType cpucatalog.Type
	// Machines are the emulated machines the host offers.
	Machines []string
	// MemoryMiB and CPUs are the host's memory and online CPUs (0: not
	// known yet).
	MemoryMiB int64
	CPUs      int
	// CommittedMemoryMiB, CommittedVCPUs and RunningVMs add up the VMs
	// placed on the host (running, starting, paused, or on a host that
	// does not answer).
	CommittedMemoryMiB int64
	CommittedVCPUs     int
	RunningVMs         int
	// Paths is the host's path policy (nil: not reported: its agent
	// checks at start).
	Paths *hostpath.Policy
	// PageSizesKiB are the page sizes the host backs guest memory with
	// (its base and huge page sizes; none: not known, not checked).
	PageSizesKiB []int
	// IncomingMigrations counts the migrations coming to the host now.
	IncomingMigrations int
	// Pools says which storage pools the host has: pool name → "" when it
	// has it, else why not. A pool absent here has not been checked on the
	// host.
	Pools map[string]string
}

// VM is what the scheduler needs of a VM.
type VM struct {
	ID        string
	Name      string
	ClusterID string
	Arch      arch.Arch
	Machine   string
	MemoryMiB int64
	VCPUs     int
	// PinnedHostID is the host the VM may only run on ("" for any).
	PinnedHostID string
	// Paths are the host paths the VM opens (its disks, kernel, ...).
	Paths []hostpath.Ref
	// Pools are the storage pools its volumes are in.
	Pools []string
}

// Cluster is what the scheduler needs of the VM's cluster.
type Cluster struct {
	ID   string
	Name string
	// CPUType is the cluster's CPU type (zero: not set yet, no CPU check).
	CPUType cpucatalog.Type
}

// excludeReason is why the request's Exclude hosts are not used.
func (r *Request) excludeReason() string {
	if r.ExcludeReason != "" {
		return r.ExcludeReason
	}
	return "the VM is being restarted away from it"
}

// Request is one scheduling question.
type Request struct {
	VM      VM
	Cluster Cluster
	// Exclude are hosts not to use (the host an HA VM died with, the hosts
	// a firmware rollout takes out of service).
	Exclude []string
	// ExcludeReason says why the Exclude hosts are not used, as the end of
	// a sentence ("the firmware rollout takes it out of service"); empty:
	// the HA restart's reason.
	ExcludeReason string
	// Migration, when set, asks for a running VM's migration destination.
	Migration *Migration
}

// Migration is what a migration's destination must offer beyond a start's.
type Migration struct {
	// SourceHostID is the host the VM runs on.
	SourceHostID string
	// CPUType is the CPU level the running VM needs (the type of its named
	// CPU model, or of the host it started on when it uses the host's
	// CPU); zero: no more than the cluster's.
	CPUType cpucatalog.Type
	// PageKiB is the page size backing the VM's memory (0: any).
	PageKiB int
	// MaxIncoming is how many migrations a host takes at once (0: no
	// limit).
	MaxIncoming int
}

// Reason is one filter a host failed.
type Reason struct {
	Filter  string `json:"filter"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Verdict is the outcome for one host.
type Verdict struct {
	HostID   string `json:"hostId"`
	HostName string `json:"hostName"`
	// Fits tells whether the host passed every filter; Reasons says why
	// not.
	Fits    bool     `json:"fits"`
	Reasons []Reason `json:"reasons,omitempty"`
	// MemoryRatio is the host's committed memory ratio with the VM placed
	// (candidates only): the balancing score, lower is better.
	MemoryRatio float64 `json:"memoryRatio,omitempty"`
}

// Decision is a successful answer: the chosen host (an index into the
// fleet's hosts, its ID and name) and how many hosts were candidates.
type Decision struct {
	Index      int
	HostID     string
	HostName   string
	Candidates int
}

// NoHostError says that no host fits, with each host's verdict.
type NoHostError struct {
	VM       string
	Cluster  string
	Verdicts []Verdict
}

// Code is CodeNoHost, or CodeNoHosts when the cluster has no hosts.
func (e *NoHostError) Code() string {
	if len(e.Verdicts) == 0 {
		return api.CodeSchedulingNoHosts
	}
	return api.CodeSchedulingFilteredOut
}

func (e *NoHostError) Error() string {
	if len(e.Verdicts) == 0 {
		return fmt.Sprintf("Cannot run VM %s: cluster %s has no hosts.", e.VM, e.Cluster)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Cannot run VM %s. There is no host that satisfies current scheduling constraints:", e.VM)
	for _, v := range e.Verdicts {
		for _, r := range v.Reasons {
			b.WriteString(" ")
			b.WriteString(r.Message)
		}
	}
	return b.String()
}

// Fleet is a cluster's hosts prepared for many decisions: the hosts'
// machine lists become bit sets over the fleet's machines, their
// architectures' rules are looked up once, and Place records a VM on a
// host so that the next decision sees it.
type Fleet struct {
	hosts  []Host
	policy Policy
	// machineBit numbers every machine some host offers; machines[i] is
	// host i's set, one bit per machine.
	machineBit map[string]int
	machines   [][]uint64
	// specs are the hosts' architecture rules (nil: none known).
	specs []*archspec.Spec
}

// NewFleet prepares hosts (copied) under a policy.
func NewFleet(hosts []Host, p Policy) *Fleet {
	f := &Fleet{hosts: slices.Clone(hosts), policy: p.withDefaults(), machineBit: map[string]int{},
		machines: make([][]uint64, len(hosts)), specs: make([]*archspec.Spec, len(hosts))}
	specs := map[arch.Arch]*archspec.Spec{}
	for i, h := range f.hosts {
		for _, m := range h.Machines {
			if _, ok := f.machineBit[m]; !ok {
				f.machineBit[m] = len(f.machineBit)
			}
		}
		s, ok := specs[h.Arch]
		if !ok {
			s, _ = archspec.For(h.Arch)
			specs[h.Arch] = s
		}
		f.specs[i] = s
	}
	words := (len(f.machineBit) + 63) / 64
	for i, h := range f.hosts {
		set := make([]uint64, words)
		for _, m := range h.Machines {
			b := f.machineBit[m]
			set[b/64] |= 1 << (b % 64)
		}
		f.machines[i] = set
	}
	return f
}

// Hosts are the fleet's hosts with what Place added.
func (f *Fleet) Hosts() []Host { return f.hosts }

// Place records vm on host i (after a decision).
func (f *Fleet) Place(i int, vm VM) {
	h := &f.hosts[i]
	h.CommittedMemoryMiB += vm.MemoryMiB
	h.CommittedVCPUs += vm.VCPUs
	h.RunningVMs++
}

// Schedule is NewFleet(hosts, p).Schedule(req).
func Schedule(req Request, hosts []Host, p Policy) (Decision, error) {
	return NewFleet(hosts, p).Schedule(req)
}

// Schedule picks a host for the request, or returns a *NoHostError with
// every host's verdict.
func (f *Fleet) Schedule(req Request) (Decision, error) {
	q := f.prepare(req)
	best, n := -1, 0
	var bestRatio float64
	for i := range f.hosts {
		ok, ratio := f.fits(i, &q)
		if !ok {
			continue
		}
		n++
		if best < 0 || f.better(i, best, ratio, bestRatio, req.VM) {
			best, bestRatio = i, ratio
		}
	}
	if best < 0 {
		return Decision{}, &NoHostError{VM: req.VM.Name, Cluster: req.Cluster.Name, Verdicts: f.Explain(req)}
	}
	return Decision{Index: best, HostID: f.hosts[best].ID, HostName: f.hosts[best].Name, Candidates: n}, nil
}

// Explain judges every host for the request: whether it fits and, when
// not, every filter it fails and why.
func (f *Fleet) Explain(req Request) []Verdict {
	q := f.prepare(req)
	out := make([]Verdict, len(f.hosts))
	for i := range f.hosts {
		out[i] = f.judge(i, &q)
	}
	return out
}

// query is a request with what every host's check needs computed once.
type query struct {
	req Request
	// machine is the VM's machine's bit (-1: no host offers it, -2: the
	// VM names none).
	machine int
}

func (f *Fleet) prepare(req Request) query {
	q := query{req: req, machine: -2}
	if req.VM.Machine != "" {
		q.machine = -1
		if b, ok := f.machineBit[req.VM.Machine]; ok {
			q.machine = b
		}
	}
	return q
}

func (f *Fleet) hasMachine(i int, q *query) bool {
	switch q.machine {
	case -2:
		return true
	case -1:
		return false
	}
	return f.machines[i][q.machine/64]&(1<<(q.machine%64)) != 0
}

// fits is judge without the explanations: the hot path.
func (f *Fleet) fits(i int, q *query) (bool, float64) {
	h := &f.hosts[i]
	vm := &q.req.VM
	if !h.Up || h.ClusterID != vm.ClusterID || (vm.PinnedHostID != "" && vm.PinnedHostID != h.ID) {
		return false, 0
	}
	if s := f.specs[i]; s == nil || !s.RunsNatively(vm.Arch) {
		return false, 0
	}
	if ct := q.req.Cluster.CPUType; !ct.IsZero() && !cpucatalog.AtLeast(h.CPUType, ct) {
		return false, 0
	}
	if !f.hasMachine(i, q) || h.MemoryMiB <= 0 || h.CPUs <= 0 {
		return false, 0
	}
	if _, ok := deniedPath(h, vm); !ok {
		return false, 0
	}
	if _, _, ok := missingPool(h, vm); !ok {
		return false, 0
	}
	memCap := f.policy.MemoryCapacityMiB(h.MemoryMiB)
	if vm.MemoryMiB > memCap-h.CommittedMemoryMiB || vm.VCPUs > f.policy.VCPUCapacity(h.CPUs)-h.CommittedVCPUs {
		return false, 0
	}
	if slices.Contains(q.req.Exclude, h.ID) {
		return false, 0
	}
	if m := q.req.Migration; m != nil && migrationRefuses(h, m) {
		return false, 0
	}
	if memCap <= 0 {
		return true, 1
	}
	return true, float64(h.CommittedMemoryMiB+vm.MemoryMiB) / float64(memCap)
}

// migrationRefuses tells whether a host fails a migration filter.
func migrationRefuses(h *Host, m *Migration) bool {
	return h.ID == m.SourceHostID || !migrationCPUOK(h, m) || !pageOK(h, m.PageKiB) ||
		(m.MaxIncoming > 0 && h.IncomingMigrations >= m.MaxIncoming)
}

func migrationCPUOK(h *Host, m *Migration) bool {
	return m.CPUType.IsZero() || cpucatalog.AtLeast(h.CPUType, m.CPUType)
}

// pageOK tells whether a host backs memory with pages of the size.
func pageOK(h *Host, kib int) bool {
	return kib == 0 || len(h.PageSizesKiB) == 0 || slices.Contains(h.PageSizesKiB, kib)
}

// better tells whether candidate i beats candidate j.
func (f *Fleet) better(i, j int, ri, rj float64, vm VM) bool {
	if ri != rj {
		return ri < rj
	}
	a, b := &f.hosts[i], &f.hosts[j]
	if a.RunningVMs != b.RunningVMs {
		return a.RunningVMs < b.RunningVMs
	}
	ci, cj := f.vcpuRatio(a, vm), f.vcpuRatio(b, vm)
	if ci != cj {
		return ci < cj
	}
	return a.Name < b.Name
}

func (f *Fleet) vcpuRatio(h *Host, vm VM) float64 {
	c := f.policy.VCPUCapacity(h.CPUs)
	if c <= 0 {
		return 1
	}
	return float64(h.CommittedVCPUs+vm.VCPUs) / float64(c)
}

// judge runs every filter on host i and says why it fails each.
func (f *Fleet) judge(i int, q *query) Verdict {
	h := &f.hosts[i]
	req := q.req
	vm := req.VM
	v := Verdict{HostID: h.ID, HostName: h.Name}
	fail := func(filter, code, format string, args ...any) {
		v.Reasons = append(v.Reasons, Reason{Filter: filter, Code: code,
			Message: fmt.Sprintf("The host %s did not satisfy internal filter %s because %s.", h.Name, filter, fmt.Sprintf(format, args...))})
	}
	if !h.Up {
		fail(FilterStatus, api.CodeHostNotUp, "it is %s, not Up", orUnknown(h.Status))
	}
	if h.ClusterID != vm.ClusterID {
		fail(FilterCluster, api.CodeHostNotInVMCluster, "it is not in the VM's cluster %s", orUnknown(req.Cluster.Name))
	}
	if slices.Contains(req.Exclude, h.ID) {
		fail(FilterExclude, api.CodeHostExcluded, "%s", req.excludeReason())
	}
	if vm.PinnedHostID != "" && vm.PinnedHostID != h.ID {
		fail(FilterPin, api.CodeHostNotPinned, "the VM is pinned to another host")
	}
	if m := req.Migration; m != nil {
		if h.ID == m.SourceHostID {
			fail(FilterSource, api.CodeMigrationSourceHost, "the VM runs there")
		}
		if !migrationCPUOK(h, m) {
			if h.CPUType.IsZero() {
				fail(FilterVMCPU, api.CodeVMCPULevelAboveHost, "its CPU type is not known, and the VM runs at %s level %d", m.CPUType.Name, m.CPUType.Level)
			} else {
				fail(FilterVMCPU, api.CodeVMCPULevelAboveHost, "its CPU level %d (%s) is lower than the running VM's %d (%s)",
					h.CPUType.Level, h.CPUType.Name, m.CPUType.Level, m.CPUType.Name)
			}
		}
		if !pageOK(h, m.PageKiB) {
			fail(FilterPageSize, api.CodeHostPageSizeUnavailable, "it backs memory with pages of %s, not the VM's %s",
				kibList(h.PageSizesKiB), kibText(m.PageKiB))
		}
		if m.MaxIncoming > 0 && h.IncomingMigrations >= m.MaxIncoming {
			fail(FilterIncoming, api.CodeMigrationIncomingLimit, "it takes %d migrations already, the most its cluster allows at once", h.IncomingMigrations)
		}
	}
	if spec := f.specs[i]; spec == nil || !spec.RunsNatively(vm.Arch) {
		fail(FilterArch, api.CodeHostArch, "it has architecture %s and cannot run a %s VM", orUnknown(h.Arch.String()), vm.Arch)
	}
	if ct := req.Cluster.CPUType; !ct.IsZero() && !cpucatalog.AtLeast(h.CPUType, ct) {
		if h.CPUType.IsZero() {
			fail(FilterCPU, api.CodeLowCPULevel, "its CPU type is not known or not of the %s group, and the cluster requires %s", ct.Vendor, ct.Name)
		} else {
			fail(FilterCPU, api.CodeLowCPULevel, "its CPU level %d (%s) is lower than the cluster's %d (%s)", h.CPUType.Level, h.CPUType.Name, ct.Level, ct.Name)
		}
	}
	if !f.hasMachine(i, q) {
		fail(FilterMachine, api.CodeHostMachine, "it does not offer the VM's emulated machine %s", vm.Machine)
	}
	if r, ok := deniedPath(h, &vm); !ok {
		fail(FilterPaths, api.CodePathNotAllowed, "its path policy does not allow the VM's %s %q (allowed: %s)", r.Field, r.Path, h.Paths.Places(r.Use))
	}
	if pool, why, ok := missingPool(h, &vm); !ok {
		fail(FilterStorage, api.CodePoolNotOnHost, "it does not have the VM's storage pool %s (%s)", pool, why)
	}
	memCap := f.policy.MemoryCapacityMiB(h.MemoryMiB)
	vcpuCap := f.policy.VCPUCapacity(h.CPUs)
	switch {
	case h.MemoryMiB <= 0 || h.CPUs <= 0:
		fail(FilterMemory, api.CodeHostCapacityUnknown, "its memory and CPUs are not known yet (no capabilities report)")
	default:
		if free := memCap - h.CommittedMemoryMiB; vm.MemoryMiB > free {
			fail(FilterMemory, api.CodeNotEnoughMemory, "its available memory is too low (%d MiB) to run the VM (%d MiB)", max(free, 0), vm.MemoryMiB)
		}
		if free := vcpuCap - h.CommittedVCPUs; vm.VCPUs > free {
			fail(FilterVCPUs, api.CodeNotEnoughCPUs, "it does not have enough CPUs to run the VM (%d vCPUs; %d of its %d free: %d online CPUs × %d)",
				vm.VCPUs, max(free, 0), vcpuCap, h.CPUs, f.policy.VCPUsPerCPU)
		}
	}
	v.Fits = len(v.Reasons) == 0
	if v.Fits {
		v.MemoryRatio = 1
		if memCap > 0 {
			v.MemoryRatio = float64(h.CommittedMemoryMiB+vm.MemoryMiB) / float64(memCap)
		}
	}
	return v
}

// deniedPath returns the first of the VM's host paths the host's policy
// does not allow, and false; or true when it allows them all (or reports
// none).
func deniedPath(h *Host, vm *VM) (hostpath.Ref, bool) {
	if h.Paths == nil {
		return hostpath.Ref{}, true
	}
	for _, r := range vm.Paths {
		if !h.Paths.AllowsLexically(r) {
			return r, false
		}
	}
	return hostpath.Ref{}, true
}

// kibText writes a page size (64 KiB, 2 MiB, 16 MiB).
func kibText(k int) string {
	if k >= 1024 && k%1024 == 0 {
		return fmt.Sprintf("%d MiB", k/1024)
	}
	return fmt.Sprintf("%d KiB", k)
}

func kibList(ks []int) string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = kibText(k)
	}
	return strings.Join(out, " and ")
}

// missingPool returns the first of the VM's pools the host does not have,
// why, and false; or true when it has them all.
func missingPool(h *Host, vm *VM) (string, string, bool) {
	for _, p := range vm.Pools {
		why, checked := h.Pools[p]
		if !checked {
			return p, "not checked on this host yet", false
		}
		if why != "" {
			return p, why, false
		}
	}
	return "", "", true
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
