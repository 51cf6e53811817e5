package main

import "polyvirt/internal/arch"

// archFlag is a command-line flag holding an architecture: a known name or
// alias becomes the canonical name; anything else is kept as typed for the
// code that uses it to refuse in its own words, as an architecture in a
// document is (arch.Arch.UnmarshalText).
type archFlag struct{ p *arch.Arch }

// String is the architecture's name.
func (f archFlag) String() string {
	if f.p == nil {
		return ""
	}
	return f.p.String()
}

// Set reads a name.
func (f archFlag) Set(s string) error { return f.p.UnmarshalText([]byte(s)) }

// Type names the value in the help text, as a string flag's.
func (f archFlag) Type() string { return "string" }
