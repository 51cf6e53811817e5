// Package initramfs writes Linux initramfs archives (cpio "newc" format) in
// Go, so that tests can boot a real kernel with polyvirt inside it without
// external tools.
package initramfs

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// File is one entry of the archive. A Data-less entry with Dir set is a
// directory.
type File struct {
	Data []byte
	Mode uint32 // permission bits
	Dir  bool
}

// Write writes an archive holding files (paths without a leading slash);
// parent directories are created as needed.
func Write(w io.Writer, files map[string]File) error {
	all := map[string]File{}
	for p, f := range files {
		p = strings.TrimPrefix(p, "/")
		if p == "" || strings.Contains(p, "..") {
			return fmt.Errorf("initramfs: bad path %q", p)
		}
		all[p] = f
		for d := parent(p); d != ""; d = parent(d) {
			if _, ok := all[d]; !ok {
				all[d] = File{Dir: true, Mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	ino := uint32(1)
	for _, n := range names {
		f := all[n]
		mode := f.Mode & 0o7777
		if f.Dir {
			mode |= 0o040000
		} else {
			mode |= 0o100000
		}
		if err := entry(w, n, ino, mode, f.Data); err != nil {
			return err
		}
		ino++
	}
	return entry(w, "TRAILER!!!", 0, 0, nil)
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

func entry(w io.Writer, name string, ino, mode uint32, data []byte) error {
	nlink := uint32(1)
	if mode&0o040000 != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	if _, err := io.WriteString(w, hdr+name+"\x00"); err != nil {
		return err
	}
	if err := pad(w, len(hdr)+len(name)+1); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return pad(w, len(data))
}

func pad(w io.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}
