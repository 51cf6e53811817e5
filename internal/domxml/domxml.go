// Package domxml turns a validated VM definition into libvirt domain XML,
// built with libvirt.org/go/libvirtxml structs (never string templates).
//
// The domain is made by a pipeline of small configurators, one per device
// class (os/firmware, platform, cpu, memory, disks, controllers, nics,
// graphics, video, inputs, console, sound, watchdog, rng, panic, balloon,
// metadata); each asks package archspec what the architecture allows or
// needs, none tests an architecture name. Fake-KVM mode (VDSM's faqemu) is
// no second builder: it transforms the definition (Retarget, when the host
// cannot run the VM's architecture) and the build settings (domain type
// qemu, the CPU TCG emulates, a memory cap) that the same pipeline reads.
package domxml

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

// Options steer the rendering.
type Options struct {
	// FakeKVM runs the VM under TCG (domain type qemu) on a host of
	// HostArch: a VM of an architecture that host can neither run nor
	// emulate is built Retarget-ed for the host's architecture, the CPU is
	// one TCG emulates. A host report that says the host is TCG-only
	// (vmspec.TCGOnly) turns it on too.
	FakeKVM bool
	// HostArch is the real architecture of the host in fake-KVM mode; empty
	// means the host report's architecture (one of the two is needed).
	HostArch arch.Arch
	// MemoryCapMiB, when not zero, caps the memory in fake-KVM mode.
	MemoryCapMiB uint64
	// ConsoleFile, when set, is the file the host names for the serial
	// console's output (the agent's own, one per VM): a file console's
	// file, a pty console's log. It replaces the definition's console.path
	// and console.log (which vmspec refuses with Options.HostConsole).
	ConsoleFile string
}

// Domain types: KVM, or QEMU's TCG emulation (fake KVM).
const (
	domainKVM = "kvm"
	domainTCG = "qemu"
)

// settings are what the configurators read besides the definition and its
// architecture's rules: how QEMU runs the VM.
type settings struct {
	// domainType is libvirt's domain type, domainKVM or domainTCG.
	domainType string
	// tcg gives the CPU mode and model TCG emulates (archspec TCGCPU).
	tcg bool
	// memoryCapMiB, when not zero, caps the memory at start (already on
	// the architecture's granule).
	memoryCapMiB uint64
	// libvirtAddresses leaves the SCSI disks' drive addresses to libvirt:
	// a VM retargeted from another architecture, whose disks moved onto
	// SCSI name no controller.
	libvirtAddresses bool
	// consoleFile is the host's file for the console (Options.ConsoleFile).
	consoleFile string
}

// step is one configurator of the pipeline.
type step struct {
	name string
	fn   func(*builder)
}

// pipeline is the order the configurators run in; libvirtxml writes the
// elements in the schema's order whatever this order is, but disks run
// before controllers so that the SCSI controllers they need are known.
var pipeline = []step{
	{"identity", configureIdentity},
	{"os", configureOS},
	{"platform", configurePlatform},
	{"cpu", configureCPU},
	{"memory", configureMemory},
	{"disks", configureDisks},
	{"controllers", configureControllers},
	{"nics", configureNICs},
	{"graphics", configureGraphics},
	{"video", configureVideo},
	{"inputs", configureInputs},
	{"console", configureConsole},
	{"sound", configureSound},
	{"watchdog", configureWatchdog},
	{"rng", configureRNG},
	{"panic", configurePanic},
	{"balloon", configureBalloon},
	{"metadata", configureMetadata},
}

// builder is the state the configurators share.
type builder struct {
	vm   *vmspec.VM
	spec *archspec.Spec
	set  settings
	dom  *libvirtxml.Domain
	// scsi lists the SCSI controller models the disks use, in order of
	// first use; a model's index is its controller index.
	scsi []string
}

// Build makes the libvirt domain of a validated definition.
func Build(v *vmspec.Valid, opts Options) (*libvirtxml.Domain, error) {
	if v == nil {
		return nil, fmt.Errorf("domxml: no definition")
	}
	b := &builder{
		vm:   v.VM(),
		spec: v.Spec(),
		set:  settings{domainType: domainKVM},
		dom:  &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{}},
	}
	if opts.FakeKVM || vmspec.TCGOnly(v.Host()) {
		ha := fakeHostArch(v, opts)
		if ha == arch.Unknown {
			return nil, errors.New("domxml: fake KVM needs the real host's architecture (Options.HostArch, or a host report)")
		}
		host, err := archspec.For(ha)
		if err != nil {
			return nil, fmt.Errorf("fake KVM: host: %v", err)
		}
		b.vm, b.spec, b.set = fakeKVM(b.vm, b.spec, host, opts.MemoryCapMiB)
	}
	b.set.consoleFile = opts.ConsoleFile
	for _, s := range pipeline {
		s.fn(b)
	}
	return b.dom, nil
}

// fakeHostArch is the real architecture of a fake-KVM host: the option's,
// else the host report's.
func fakeHostArch(v *vmspec.Valid, opts Options) arch.Arch {
	if opts.HostArch == arch.Unknown && v.Host() != nil {
		return v.Host().Arch
	}
	return opts.HostArch
}

// Render is Build followed by the XML text.
func Render(v *vmspec.Valid, opts Options) (string, error) {
	dom, err := Build(v, opts)
	if err != nil {
		return "", err
	}
	return Marshal(dom)
}

// Marshal writes a domain as libvirtxml's Domain.Marshal does (two-space
// indent), into a buffer sized for a typical domain.
func Marshal(dom *libvirtxml.Domain) (string, error) {
	var sb strings.Builder
	sb.Grow(8192)
	enc := xml.NewEncoder(&sb)
	enc.Indent("", "  ")
	if err := enc.Encode(dom); err != nil {
		return "", err
	}
	return sb.String(), nil
}

// Steps names the configurators in pipeline order (for documentation and
// tests).
func Steps() []string {
	out := make([]string, len(pipeline))
	for i, s := range pipeline {
		out[i] = s.name
	}
	return out
}
