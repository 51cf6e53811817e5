package initramfs

import (
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCpioListsEntries checks the archive with the system's cpio when it is
// installed, and the header layout always.
func TestArchiveLayout(t *testing.T) {
	var buf bytes.Buffer
	err := Write(&buf, map[string]File{
		"init":           {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"etc/os-release": {Data: []byte("ID=test\n"), Mode: 0o644},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if !bytes.HasPrefix(b, []byte("070701")) {
		t.Fatalf("archive starts %q; want the newc magic", b[:6])
	}
	if len(b)%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", len(b))
	}
	var names []string
	for off := 0; off+110 <= len(b); {
		hdr := string(b[off : off+110])
		size := hex(t, hdr[54:62])
		nameLen := hex(t, hdr[94:102])
		name := string(b[off+110 : off+110+nameLen-1])
		names = append(names, name)
		off += align(110 + nameLen)
		off += align(size)
		if name == "TRAILER!!!" {
			break
		}
	}
	sort.Strings(names)
	want := []string{"TRAILER!!!", "etc", "etc/os-release", "init"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if path, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command(path, "-t")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cpio -t: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "etc/os-release") {
			t.Errorf("cpio -t does not list etc/os-release:\n%s", out)
		}
	}
}

func TestRefusesEscapingPaths(t *testing.T) {
	if err := Write(&bytes.Buffer{}, map[string]File{"../x": {}}); err == nil {
		t.Fatal("a path with .. was accepted")
	}
}

func hex(t *testing.T, s string) int {
	t.Helper()
	var n int
	for _, c := range s {
		n <<= 4
		switch {
		case c >= '0' && c <= '9':
			n |= int(c - '0')
		case c >= 'a' && c <= 'f':
			n |= int(c-'a') + 10
		default:
			t.Fatalf("bad hex %q", s)
		}
	}
	return n
}

func align(n int) int { return (n + 3) &^ 3 }
