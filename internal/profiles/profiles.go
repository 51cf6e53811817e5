// Package profiles holds polyvirt's built-in host profiles: complete,
// self-consistent hosts (an IBM Power System S822L POWER8E PowerNV host with
// SMT off, an IBM AC922 POWER9 host, a 2-socket Intel x86_64 server) for
// fake-KVM mode, demos and tests.
//
// A profile is a filesystem root, not a shortcut: its /proc, /sys and
// /proc/device-tree files are generated from the machine description and
// read by the same hostinfo readers as a real host, and its libvirt
// capabilities and domcapabilities documents are read by the same virtcaps
// parsers as a live daemon's answers.
package profiles

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"polyvirt/internal/arch"
)

// Profile is one built-in host.
type Profile struct {
	// Name is the profile's canonical name ("s822l-power8e").
	Name string
	// Aliases are other accepted names ("power8", "s822l").
	Aliases []string
	// Title describes the machine.
	Title string
	// Arch is the architecture its data says.
	Arch arch.Arch
	// Root is the host's filesystem: proc/, sys/, dev/.
	Root fs.FS
	// Capabilities is libvirt's capabilities document of the host.
	Capabilities []byte
	// DomainCapabilities maps each guest arch to its domcapabilities
	// document.
	DomainCapabilities map[arch.Arch][]byte
	// LibvirtVersion and QEMUVersion are the versions the host runs.
	LibvirtVersion, QEMUVersion string
	// LsmcodeA, for an FSP-based POWER machine, is its system firmware as
	// `lsmcode -A` prints it: the levels of the temporary and permanent
	// banks and the one it booted. A fake-KVM host presenting the profile
	// simulates that firmware (package firmware/simfw); "" for a machine
	// whose system firmware is not updated with update_flash (OpenPOWER
	// machines, through their BMC) or has no such firmware.
	LsmcodeA string
}

var (
	buildOnce sync.Once
	built     map[string]*Profile
	buildErr  error
)

func all() (map[string]*Profile, error) {
	buildOnce.Do(func() {
		built = map[string]*Profile{}
		for _, m := range machines {
			p, err := m.build()
			if err != nil {
				buildErr = fmt.Errorf("profile %s: %w", m.name, err)
				return
			}
			built[p.Name] = p
		}
	})
	return built, buildErr
}

// Get returns the profile with the given name or alias.
func Get(name string) (*Profile, error) {
	ps, err := all()
	if err != nil {
		return nil, err
	}
	key := strings.ToLower(strings.TrimSpace(name))
	for _, p := range ps {
		if p.Name == key {
			return p, nil
		}
		for _, a := range p.Aliases {
			if a == key {
				return p, nil
			}
		}
	}
	return nil, fmt.Errorf("unknown host profile %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Names lists the canonical profile names, sorted.
func Names() []string {
	out := make([]string, 0, len(machines))
	for _, m := range machines {
		out = append(out, m.name)
	}
	sort.Strings(out)
	return out
}

// All returns every profile, sorted by name.
func All() ([]*Profile, error) {
	ps, err := all()
	if err != nil {
		return nil, err
	}
	out := make([]*Profile, 0, len(ps))
	for _, n := range Names() {
		out = append(out, ps[n])
	}
	return out, nil
}
