package caps

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/cpuset"
)

// WriteText prints r as a readable table for people.
func WriteText(w io.Writer, r *hostreport.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, orUnavailable(v)) }
	section := func(name string) { fmt.Fprintf(tw, "\n%s\t\n", strings.ToUpper(name)) }

	archText := r.Arch.String()
	if r.EffectiveArch != r.Arch {
		archText += " (effective " + r.EffectiveArch.String() + ")"
	}
	row("Architecture", archText)
	row("Fake KVM", yesNo(r.FakeKVM))
	virt := r.Virt.Virtualization
	if virt == "tcg" && r.Virt.KVMReason != "" {
		virt += " (" + r.Virt.KVMReason + ")"
	}
	row("Virtualization", virt)
	if r.Profile != "" {
		row("Profile", r.Profile)
	}
	row("Source", r.Source)

	section("hardware")
	row("Manufacturer", r.Hardware.Manufacturer)
	row("Product", r.Hardware.ProductName)
	row("Version", r.Hardware.Version)
	row("Type-model", r.Hardware.Model)
	row("Serial", r.Hardware.SerialNumber)
	row("UUID", r.Hardware.UUID)
	row("Family", r.Hardware.Family)
	row("Identity from", r.Hardware.Source)
	for _, f := range r.Firmware {
		v := f.Version
		if f.Date != "" {
			v += " (" + f.Date + ")"
		}
		row("Firmware "+f.Component, v)
	}

	section("cpu")
	row("Model", r.CPU.Model)
	if r.CPU.FakeIdentity != "" {
		row("Fake identity", r.CPU.FakeIdentity)
	}
	row("Vendor", r.CPU.Vendor)
	row("MHz", mhzText(r.CPU.MHz))
	row("Revision", r.CPU.Revision)
	if r.CPU.PVR != "" {
		row("PVR", r.CPU.PVR)
	}
	if r.CPU.Platform != "" {
		row("Platform", r.CPU.Platform)
	}
	if r.CPU.Machine != "" {
		row("Machine", r.CPU.Machine)
	}
	if r.CPU.TopologySource == "" {
		// Neither sysfs nor libvirt's cells said it: no figures to print.
		row("Topology", Unavailable+" (no sys/devices/system/cpu online list and no libvirt NUMA cells)")
	} else {
		if r.CPU.TopologySource != "sysfs" {
			row("Topology from", r.CPU.TopologySource+" NUMA cells")
		}
		row("CPU(s)", strconv.Itoa(r.CPU.TotalCPUs))
		row("On-line CPU(s) list", cpuset.Set(r.CPU.OnlineCPUs).String())
		row("Thread(s) per core", strconv.Itoa(r.CPU.ThreadsPerCore))
		row("Core(s) per socket", strconv.Itoa(r.CPU.CoresPerSocket))
		row("Socket(s)", strconv.Itoa(r.CPU.Sockets))
	}
	for _, t := range r.CPU.Types {
		row("  type "+t.Model, fmt.Sprintf("cpus %s, %d thread(s)/core, %d core(s)/socket, %d socket(s)", t.CPUs, t.ThreadsPerCore, t.CoresPerSocket, t.Sockets))
	}
	if n := r.CPU.NodeInfo; n.CPUs == 0 {
		row("libvirt nodeinfo", Unavailable)
	} else {
		row("libvirt nodeinfo", fmt.Sprintf("CPUs %d/%d, MHz %d, nodes %d, sockets/node %d, cores/socket %d, threads/core %d",
			n.CPUs, n.TotalCPUs, n.MHz, n.Nodes, n.Sockets, n.Cores, n.Threads))
	}
	row("Models", strings.Join(r.CPU.Models, " "))
	row("Flags", wrap(strings.Join(r.CPU.Flags, " "), 100))

	section("memory and numa")
	row("Memory", fmt.Sprintf("%d MiB", r.MemoryMiB))
	if r.Pages.BaseKiB > 0 {
		row("Pages", fmt.Sprintf("base %d KiB, huge %d KiB", r.Pages.BaseKiB, r.Pages.HugePageKiB))
	}
	for _, node := range r.NUMA {
		row(fmt.Sprintf("Node %d", node.ID), fmt.Sprintf("cpus %s, %d MiB", cpuset.Set(node.CPUs).String(), node.MemoryMiB))
	}

	section("virtualization")
	kvm := yesNo(r.Virt.KVM)
	if r.Virt.KVMReason != "" {
		kvm += " (" + r.Virt.KVMReason + ")"
	}
	row("KVM", kvm)
	row("Domain type", r.Virt.DomainType)
	if !r.Virt.Libvirt {
		row("libvirt", "not asked or not available: "+r.Virt.LibvirtError)
	} else {
		row("libvirt", r.Virt.LibvirtVersion)
		row("QEMU", r.Virt.QEMUVersion)
		row("Emulated machines", wrap(strings.Join(r.Virt.EmulatedMachines, " "), 100))
		row("CPU models", strings.Join(r.Virt.CPUModels, " "))
		row("Graphics", strings.Join(r.Virt.Graphics, " "))
		row("Video", strings.Join(r.Virt.Video, " "))
		row("Disk buses", strings.Join(r.Virt.DiskBuses, " "))
		for _, g := range r.Virt.Guests {
			v := fmt.Sprintf("[%s] %d machines", strings.Join(g.DomainTypes, ","), len(g.Machines))
			if g.Error != "" {
				v += "; domcapabilities: " + g.Error
			}
			row("Guest "+g.Arch.String(), v)
		}
	}
	if len(r.Unavailable) > 0 {
		section("unavailable")
		for _, p := range r.Unavailable {
			where := p.Field
			if p.Path != "" {
				where += " (" + p.Path + ")"
			}
			row(where, p.Reason)
		}
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// wrap breaks a long space-separated value into lines of at most width
// characters, continued under the value column.
func wrap(s string, width int) string {
	if len(s) <= width {
		return s
	}
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if line+1+len(word) > width {
				b.WriteString("\n\t")
				line = 0
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}
