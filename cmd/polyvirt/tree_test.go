package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// walk calls f for every command of the tree, parents first.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, s := range c.Commands() {
		walk(s, f)
	}
}

// treeText is the command tree as text: each command's path and usage,
// then its flags with their value names.
func treeText(root *cobra.Command) string {
	var b strings.Builder
	walk(root, func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		fmt.Fprintf(&b, "%s  [%s]\n", c.CommandPath(), c.Use)
		var flags []string
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			name, _ := pflag.UnquoteUsage(f)
			s := "--" + f.Name
			if f.Shorthand != "" {
				s = "-" + f.Shorthand + ", " + s
			}
			if name != "" {
				s += " " + name
			}
			if f.Hidden {
				s += " (hidden)"
			}
			flags = append(flags, s)
		})
		sort.Strings(flags)
		for _, f := range flags {
			fmt.Fprintf(&b, "    %s\n", f)
		}
	})
	return b.String()
}

// TestCommandTree: the tree newRoot builds, command by command with
// their flags, is testdata/commands.txt (go test -update rewrites it): a
// command lost or moved shows here.
func TestCommandTree(t *testing.T) {
	got := treeText(newRoot())
	path := filepath.Join("testdata", "commands.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("the command tree differs from %s (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
	// Two trees built one after the other are the same: nothing depends
	// on what an earlier build left behind.
	if again := treeText(newRoot()); again != got {
		t.Errorf("a second newRoot builds another tree")
	}
}

// valueName is what --help may show as a flag's value: one word.
var valueName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)

// TestFlagsReadable: every flag shows one word as its value's name in
// --help (never a back-quoted phrase of its usage), and -o/--output is the
// output format everywhere.
func TestFlagsReadable(t *testing.T) {
	walk(newRoot(), func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			name, usage := pflag.UnquoteUsage(f)
			where := c.CommandPath() + " --" + f.Name
			if name != "" && !valueName.MatchString(name) {
				t.Errorf("%s: value name %q in --help", where, name)
			}
			if strings.TrimSpace(usage) == "" {
				t.Errorf("%s: no usage text", where)
			}
			if (f.Shorthand == "o") != (f.Name == "output") {
				t.Errorf("%s: -o and --output go together (shorthand %q)", where, f.Shorthand)
			}
			if f.Name == "output" && !strings.HasPrefix(usage, "output format: ") {
				t.Errorf("%s: %q is not an output format", where, usage)
			}
		})
	})
}

// TestArgumentsNeverCommands: an argument a command does not take is named
// as such, never as an unknown command.
func TestArgumentsNeverCommands(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"caps", "extra"}, `polyvirt caps takes no arguments, but got an argument: "extra"`},
		{[]string{"vm", "list", "a.yaml", "b.yaml"}, `polyvirt vm list takes no arguments, but got 2 arguments: "a.yaml" "b.yaml"`},
		{[]string{"domxml", "-f", "../../examples/ppc64le-disk.yaml", "../../examples/x86_64-server.yaml"},
			`polyvirt domxml renders one definition, given with -f FILE; "../../examples/x86_64-server.yaml" is one argument too many`},
		{[]string{"up", "now"}, `polyvirt up takes no arguments, but got an argument: "now"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, errOut, code := runVMCommand(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "unknown command") {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
		})
	}
}
