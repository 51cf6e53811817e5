package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEngineCommandsRegistered: the engine-side commands are on the root,
// and `join` is under `agent` (newRoot, tree.go).
func TestEngineCommandsRegistered(t *testing.T) {
	root := newRoot()
	tests := []struct {
		path []string
		want string
	}{
		{[]string{"agent", "join"}, "join"},
		{[]string{"engine", "init"}, "init"},
		{[]string{"engine", "run"}, "run"},
		{[]string{"engine", "cert"}, "cert"},
		{[]string{"login"}, "login"},
		{[]string{"user", "add"}, "add"},
		{[]string{"user", "passwd"}, "passwd"},
		{[]string{"cluster", "create"}, "create"},
		{[]string{"host", "add"}, "add"},
		{[]string{"host", "join-token"}, "join-token"},
		{[]string{"events"}, "events"},
	}
	for _, tc := range tests {
		c, rest, err := root.Find(tc.path)
		if err != nil || len(rest) != 0 || c.Name() != tc.want {
			t.Errorf("polyvirt %v: found %q (rest %v, err %v)", tc.path, c.Name(), rest, err)
		}
	}
}

func TestHostCountText(t *testing.T) {
	tests := []struct {
		in   map[string]int
		want string
	}{
		{nil, "0"},
		{map[string]int{"Up": 2}, "2 (2 Up)"},
		{map[string]int{"Up": 2, "NonOperational": 1}, "3 (1 NonOperational, 2 Up)"},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, hostCountText(tc.in)); diff != "" {
			t.Errorf("hostCountText(%v) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// TestEngineHelpHidesTheDatabasePassword: POLYVIRT_DB is read when the
// command runs, never shown as a flag's default by --help.
func TestEngineHelpHidesTheDatabasePassword(t *testing.T) {
	t.Setenv(envDB, "postgres://polyvirt:hunter2-secret@db/polyvirt")
	for _, args := range [][]string{{"engine", "run", "--help"}, {"engine", "init", "--help"}, {"engine", "--help"}} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("polyvirt %v: %v", args, err)
		}
		if strings.Contains(out.String(), "hunter2-secret") || !strings.Contains(out.String(), "--db") {
			t.Errorf("polyvirt %v shows the password (or no --db):\n%s", args, out.String())
		}
	}
}
