// Package domxml turns a validated VM definition into libvirt domain XML,
// built with libvirt.org/go/libvirtxml structs (never string templates).
//
// The domain is made by a pipeline of small configurators, one per device
// class (os/firmware, platform, cpu, memory, disks, controllers, nics,
// graphics, video, inputs, console, sound, watchdog, rng, panic, balloon,
// metadata); each asks package archspec what the architecture allows or
// needs, none tests an architecture name. Fake-KVM mode (VDSM's faqemu,
// done safely) is one last transformation, FakeKVM, that also works on a
// domain polyvirt did not build.
package domxml

import (
	"encoding/xml"
	"fmt"
	"runtime"
	"strings"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

// Options steer the rendering.
type Options struct {
	// FakeKVM runs the VM under TCG (domain type qemu) on a host of
	// HostArch, rewriting what TCG or that host cannot run (see FakeKVM).
	// A host report that says the host is TCG-only (vmspec.TCGOnly) turns
	// it on too.
	FakeKVM bool
	// HostArch is the real architecture of the host in fake-KVM mode; empty
	// means the host report's architecture, else the architecture this
	// program runs on.
	HostArch arch.Arch
	// MemoryCapMiB, when not zero, caps the memory in fake-KVM mode.
	MemoryCapMiB uint64
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
		dom:  &libvirtxml.Domain{Type: "kvm", Devices: &libvirtxml.DomainDeviceList{}},
	}
	for _, s := range pipeline {
		s.fn(b)
	}
	if opts.FakeKVM || vmspec.TCGOnly(v.Host()) {
		host := opts.HostArch
		if host == arch.Unknown && v.Host() != nil {
			host, _ = arch.Parse(v.Host().Arch)
		}
		if host == arch.Unknown {
			host = arch.FromGOARCH(runtime.GOARCH)
		}
		if err := FakeKVM(b.dom, Fake{HostArch: host, MemoryCapMiB: opts.MemoryCapMiB}); err != nil {
			return nil, err
		}
	}
	return b.dom, nil
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
