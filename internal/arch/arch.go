// Package arch names the CPU architectures polyvirt knows: their canonical
// names, the aliases found in the wild (Debian, Go, kernel packages), and the
// family each belongs to. It answers naming questions only; what an
// architecture allows or needs is the business of package archspec.
package arch

import (
	"fmt"
	"sort"
	"strings"
)

// Arch is a canonical architecture name, as `uname -m` and libvirt spell it.
type Arch string

// The architectures polyvirt manages. Unknown is the zero value.
const (
	Unknown Arch = ""
	X86_64  Arch = "x86_64"
	I686    Arch = "i686"
	PPC64LE Arch = "ppc64le"
	PPC64   Arch = "ppc64"
	PPC     Arch = "ppc"
	AArch64 Arch = "aarch64"
	ARMv7L  Arch = "armv7l"
	S390X   Arch = "s390x"
)

// Family groups architectures that share a CPU lineage: oVirt's cluster
// architecture of every POWER host is the ppc family, whatever its endianness.
type Family string

// The families.
const (
	FamilyUnknown Family = ""
	FamilyX86     Family = "x86"
	FamilyPPC     Family = "ppc"
	FamilyARM     Family = "arm"
	FamilyS390    Family = "s390"
)

type info struct {
	family  Family
	aliases []string
	goarch  string
}

var table = map[Arch]info{
	X86_64:  {FamilyX86, []string{"amd64", "x86-64", "x64"}, "amd64"},
	I686:    {FamilyX86, []string{"i386", "i486", "i586", "x86", "386"}, "386"},
	PPC64LE: {FamilyPPC, []string{"ppc64el", "powerpc64le", "ppc64-le"}, "ppc64le"},
	PPC64:   {FamilyPPC, []string{"powerpc64", "ppc64be"}, "ppc64"},
	PPC:     {FamilyPPC, []string{"powerpc"}, ""},
	AArch64: {FamilyARM, []string{"arm64", "armv8", "armv8l"}, "arm64"},
	ARMv7L:  {FamilyARM, []string{"armhf", "arm", "armv7"}, "arm"},
	S390X:   {FamilyS390, []string{"s390", "zarch", "systemz"}, "s390x"},
}

var byAlias = func() map[string]Arch {
	m := make(map[string]Arch)
	for a, in := range table {
		m[string(a)] = a
		for _, al := range in.aliases {
			m[al] = a
		}
	}
	return m
}()

// Parse returns the canonical architecture for a name or any known alias,
// case-insensitively. An unknown name is an error that lists the known ones.
func Parse(name string) (Arch, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	if a, ok := byAlias[key]; ok {
		return a, nil
	}
	return Unknown, fmt.Errorf("unknown architecture %q (known: %s)", name, strings.Join(Names(), ", "))
}

// UnmarshalText reads an architecture from JSON, YAML or XML: a known name
// or alias becomes the canonical name (so a document may say ppc64el or
// amd64); anything else is kept as it is written, for the reader's
// validation to name it (Check). It never fails: whether an architecture
// is acceptable is the business of the code that uses it.
func (a *Arch) UnmarshalText(b []byte) error {
	if p, err := Parse(string(b)); err == nil {
		*a = p
	} else {
		*a = Arch(b)
	}
	return nil
}

// Check is nil for a canonical architecture, and for anything else the
// error Parse gives for its name ("" included).
func (a Arch) Check() error {
	if a.Known() {
		return nil
	}
	_, err := Parse(string(a))
	if err == nil {
		// An alias that escaped canonicalization: name the canonical one.
		return fmt.Errorf("architecture %q is not a canonical name (known: %s)", string(a), strings.Join(Names(), ", "))
	}
	return err
}

// MustParse is Parse for constants in code and tests; it panics on an unknown name.
func MustParse(name string) Arch {
	a, err := Parse(name)
	if err != nil {
		panic(err)
	}
	return a
}

// FromGOARCH maps a Go GOARCH value (runtime.GOARCH) to the canonical name.
func FromGOARCH(goarch string) Arch {
	for a, in := range table {
		if in.goarch == goarch && in.goarch != "" {
			return a
		}
	}
	return Unknown
}

// GOARCH is the Go GOARCH value that builds for a, or "" when Go has none.
func (a Arch) GOARCH() string { return table[a].goarch }

// Family is the CPU family of a.
func (a Arch) Family() Family { return table[a].family }

// Known reports whether a is one of the canonical architectures.
func (a Arch) Known() bool { _, ok := table[a]; return ok }

// SameFamily reports whether a and b belong to one known family.
func (a Arch) SameFamily(b Arch) bool {
	return a.Family() != FamilyUnknown && a.Family() == b.Family()
}

// String returns the canonical name.
func (a Arch) String() string { return string(a) }

// Join writes architectures separated by sep ("x86_64, i686").
func Join(as []Arch, sep string) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, sep)
}

// Names lists the canonical names, sorted.
func Names() []string {
	out := make([]string, 0, len(table))
	for a := range table {
		out = append(out, string(a))
	}
	sort.Strings(out)
	return out
}
