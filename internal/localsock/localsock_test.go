package localsock

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestPolicyAllows(t *testing.T) {
	proc := fstest.MapFS{
		"42/status": {Data: []byte("Name:\tpolyvirt\nUid:\t1000\t1000\t1000\t1000\nGroups:\t24 27 990 \nVmPeak:\t1 kB\n")},
		"43/status": {Data: []byte("Name:\tx\nGroups:\n")},
		"44/status": {Data: []byte("Name:\tx\nGroups:\tnope\n")},
	}
	cases := []struct {
		name string
		pol  Policy
		cred Cred
		ok   bool
	}{
		{"root", Policy{UIDs: []uint32{0, 500}, GID: -1}, Cred{PID: 1, UID: 0}, true},
		{"the engine's user", Policy{UIDs: []uint32{0, 500}, GID: -1}, Cred{PID: 1, UID: 500, GID: 500}, true},
		{"another user, no group", Policy{UIDs: []uint32{0, 500}, GID: -1}, Cred{PID: 42, UID: 1000, GID: 990}, false},
		{"primary group", Policy{UIDs: []uint32{0}, GID: 990, Proc: proc}, Cred{PID: 7, UID: 1000, GID: 990}, true},
		{"supplementary group", Policy{UIDs: []uint32{0}, GID: 990, Proc: proc}, Cred{PID: 42, UID: 1000, GID: 1000}, true},
		{"not in the group", Policy{UIDs: []uint32{0}, GID: 991, Proc: proc}, Cred{PID: 42, UID: 1000, GID: 1000}, false},
		{"no groups", Policy{UIDs: []uint32{0}, GID: 990, Proc: proc}, Cred{PID: 43, UID: 1000, GID: 1000}, false},
		{"unreadable groups", Policy{UIDs: []uint32{0}, GID: 990, Proc: proc}, Cred{PID: 44, UID: 1000, GID: 1000}, false},
		{"gone process", Policy{UIDs: []uint32{0}, GID: 990, Proc: proc}, Cred{PID: 99, UID: 1000, GID: 1000}, false},
		{"empty policy refuses root", Policy{GID: -1}, Cred{PID: 1, UID: 0}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.pol.Allows(c.cred)
			if (err == nil) != c.ok {
				t.Fatalf("Allows(%+v) = %v, want allowed %v", c.cred, err, c.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "uid") {
				t.Errorf("the refusal %q does not name the uid", err)
			}
		})
	}
}

func TestParseGroups(t *testing.T) {
	cases := []struct {
		in   string
		want []uint32
		err  string
	}{
		{"Name:\ta\nGroups:\t1 2 3\n", []uint32{1, 2, 3}, ""},
		{"Groups:\n", nil, ""},
		{"Name:\ta\n", nil, "no Groups: line"},
		{"Groups:\t1 x\n", nil, `"x" is not a group id`},
		{"Groups:\t4294967296\n", nil, "not a group id"},
	}
	for _, c := range cases {
		got, err := ParseGroups(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseGroups(%q) = %v, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseGroups(%q): %v", c.in, err)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("ParseGroups(%q) (-want +got):\n%s", c.in, diff)
		}
	}
}

func FuzzParseGroups(f *testing.F) {
	f.Add("Name:\ta\nGroups:\t1 2 3\n")
	f.Add("Groups:\t-1\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGroups(s)
		if err != nil && g != nil {
			t.Fatalf("ParseGroups(%q) gave groups %v with an error %v", s, g, err)
		}
	})
}

func TestListenModesAndPeer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "engine.sock")
	ln, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket 0600", fi.Mode())
	}
	got := make(chan Cred, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		defer c.Close()
		cr, err := Peer(c)
		if err != nil {
			t.Error(err)
		}
		got <- cr
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cr := <-got
	if want := (Cred{PID: int32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}); cr != want {
		t.Errorf("Peer = %+v, want %+v", cr, want)
	}
	// An engine that answers keeps its socket.
	if _, err := Listen(path, -1); err == nil || !strings.Contains(err.Error(), "another engine answers") {
		t.Errorf("Listen over a live socket: %v", err)
	}
	ln.Close()

	// With a group: 0660 and that group.
	gpath := filepath.Join(dir, "g.sock")
	gl, err := Listen(gpath, os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	fi, err = os.Stat(gpath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("group socket mode %v, want 0660", fi.Mode().Perm())
	}
}

func TestListenRefusals(t *testing.T) {
	dir := t.TempDir()
	// A stale socket (its listener gone, the file kept) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	nl, err := Listen(stale, -1)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	nl.Close()

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, err string }{
		{"relative.sock", "want an absolute path"},
		{"/" + strings.Repeat("x", MaxPathLen), "more than the 107"},
		{file, "not a socket"},
	}
	for _, c := range cases {
		if l, err := Listen(c.path, -1); err == nil || !strings.Contains(err.Error(), c.err) {
			if l != nil {
				l.Close()
			}
			t.Errorf("Listen(%.40q) = %v, want an error with %q", c.path, err, c.err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("the file in the way was changed: %q %v", b, err)
	}
}

func TestServerAllowed(t *testing.T) {
	cases := []struct {
		name                string
		srv, self, dirOwner uint32
		mode                os.FileMode
		err                 string
	}{
		{"root", 0, 1000, 0, 0o755, ""},
		{"myself", 1000, 1000, 0, 0o755, ""},
		{"the owner of a directory only it writes", 998, 1000, 998, 0o750, ""},
		{"the owner of a directory others write", 998, 1000, 998, 0o775, "others may write"},
		{"someone else", 1001, 1000, 0, 0o1777, "neither root"},
	}
	for _, c := range cases {
		err := ServerAllowed(c.srv, c.self, c.dirOwner, c.mode, "/run/polyvirt")
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %v; want %q", c.name, err, c.err)
		}
	}
}

func TestCheckServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// This process serves it: its own user.
	if err := CheckServer(c, path); err != nil {
		t.Errorf("CheckServer of this process's own socket: %v", err)
	}
}
