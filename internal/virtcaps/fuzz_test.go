package virtcaps

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// seedFromCorpus adds every libvirt XML file of the corpus, when present.
func seedFromCorpus(f *testing.F) {
	dir := corpusDir(f)
	if dir == "" {
		return
	}
	for _, rel := range corpusXMLFiles(f, dir) {
		if data, err := os.ReadFile(filepath.Join(dir, rel)); err == nil {
			f.Add(data)
		}
	}
}

var inlineSeeds = []string{
	rhelCaps,
	smallDomCaps,
	`<capabilities/>`,
	`<domainCapabilities/>`,
	`<?xml version="1.0"?><!DOCTYPE capabilities [<!ENTITY x SYSTEM "file:///etc/passwd">]><capabilities>&x;</capabilities>`,
	`<capabilities><host><topology><cells><cell id='1'><memory unit='TiB'>3</memory><cpus><cpu id='-1' socket_id='x'/></cpus></cell></cells></topology></host></capabilities>`,
	`<capabilities><guest><arch name='ppc64'><wordsize>64</wordsize><machine canonical='pseries-9.0'>pseries</machine><domain type='kvm'><machine>pseries</machine></domain></arch></guest></capabilities>`,
	`<domainCapabilities><cpu><mode name='custom' supported='yes'><model usable='yes'>POWER9</model></mode></cpu><vcpu max='99999999999999999999'/></domainCapabilities>`,
	"<capabilities>\n<host>\n</guest>",
	"\xef\xbb\xbf<capabilities/>",
}

func FuzzParseCapabilities(f *testing.F) {
	seedFromCorpus(f)
	for _, s := range inlineSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCapabilities(data)
		if err != nil {
			var pe *ParseError
			if c != nil || !errors.As(err, &pe) || pe.Doc != docCaps {
				t.Fatalf("error %v (%T) with result %v", err, err, c)
			}
			return
		}
		if c == nil {
			t.Fatal("nil result without error")
		}
		for _, a := range c.GuestArches() {
			for _, dt := range append(c.DomainTypes(a), "kvm", "") {
				_ = c.Emulator(a, dt)
				ms := c.EmulatedMachines(a, dt)
				names := c.MachineNames(a, dt)
				if len(names) < countNonEmptyNames(ms) {
					t.Fatalf("MachineNames(%s,%s) lost names: %v from %v", a, dt, names, ms)
				}
			}
			_ = c.PreferredDomainType(a)
		}
	})
}

// countNonEmptyNames is the number of distinct non-empty machine names
// (without canonicals): a lower bound of len(MachineNames).
func countNonEmptyNames(ms []Machine) int {
	seen := map[string]bool{}
	for _, m := range ms {
		if m.Name != "" {
			seen[m.Name] = true
		}
	}
	return len(seen)
}

func FuzzParseDomainCapabilities(f *testing.F) {
	seedFromCorpus(f)
	for _, s := range inlineSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDomainCapabilities(data)
		if err != nil {
			var pe *ParseError
			if d != nil || !errors.As(err, &pe) || pe.Doc != docDomCaps {
				t.Fatalf("error %v (%T) with result %v", err, err, d)
			}
			return
		}
		if d == nil {
			t.Fatal("nil result without error")
		}
		if d.MaxVCPUs < 0 {
			t.Fatalf("negative MaxVCPUs %d", d.MaxVCPUs)
		}
		u := d.UsableCustomModels()
		if len(u) > len(d.CPU.Custom.Models) {
			t.Fatal("more usable models than models")
		}
		_ = d.HostModelName()
		_ = d.CustomModelNames()
	})
}
