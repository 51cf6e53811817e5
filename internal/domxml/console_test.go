package domxml

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/vmspec"
)

// TestConsoleFile: the host's console file replaces what the definition
// names, for a file console's file and a pty console's log; without it
// the definition's own are used (offline rendering).
func TestConsoleFile(t *testing.T) {
	const own = "/var/lib/polyvirt/agent/consoles/4b1d.log"
	type files struct{ Source, Log string }
	cases := []struct {
		name string
		doc  string
		opts vmspec.Options
		file string
		want files
	}{
		{"file console, host file", "name: a\narch: x86_64\nconsole: {type: file}\n", vmspec.Options{HostConsole: true}, own, files{Source: own}},
		{"pty console, host log", "name: a\narch: ppc64le\n", vmspec.Options{HostConsole: true}, own, files{Log: own}},
		{"file console, offline", "name: a\narch: x86_64\nconsole: {type: file, path: /var/log/a.log}\n", vmspec.Options{}, "", files{Source: "/var/log/a.log"}},
		{"pty console, offline log", "name: a\narch: x86_64\nconsole: {log: /var/log/a.log}\n", vmspec.Options{}, "", files{Log: "/var/log/a.log"}},
		{"pty console, no log", "name: a\narch: ppc64le\n", vmspec.Options{}, "", files{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			def, err := vmspec.Decode([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			v, err := vmspec.Validate(def, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			dom, err := Build(v, Options{ConsoleFile: c.file})
			if err != nil {
				t.Fatal(err)
			}
			if len(dom.Devices.Consoles) != 1 {
				t.Fatalf("consoles: %+v", dom.Devices.Consoles)
			}
			// The serial device holds the files where there is one (its
			// console is an alias), else the console.
			got := consoleFiles(dom.Devices.Consoles[0].Source, dom.Devices.Consoles[0].Log)
			if len(dom.Devices.Serials) > 0 {
				got = consoleFiles(dom.Devices.Serials[0].Source, dom.Devices.Serials[0].Log)
			}
			if diff := cmp.Diff(c.want, files(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func consoleFiles(src *libvirtxml.DomainChardevSource, log *libvirtxml.DomainChardevLog) (out struct{ Source, Log string }) {
	if src != nil && src.File != nil {
		out.Source = src.File.Path
	}
	if log != nil {
		out.Log = log.File
	}
	return out
}
