package hostinfo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Read limits. Every file is read through one of them; a file larger than
// its limit is not parsed and becomes a Problem ("larger than the N byte
// limit"), so a hostile root (a 100 MB cpuinfo, /dev/zero linked in place of
// a sysfs file) costs at most the limit in memory and time.
const (
	// MaxCPUInfoBytes bounds /proc/cpuinfo (an 8192-thread x86 host prints
	// about 12 MiB; the largest real POWER and s390x hosts print far less).
	MaxCPUInfoBytes = 16 << 20
	// MaxProcFileBytes bounds /proc/sysinfo, /proc/meminfo and a node's
	// meminfo.
	MaxProcFileBytes = 1 << 20
	// MaxAttrBytes bounds a sysfs attribute, a DMI field and a device-tree
	// property (the kernel prints at most a page of a sysfs attribute).
	MaxAttrBytes = 64 << 10
	// MaxDirEntries bounds the entries read from one directory
	// (sys/devices/system/cpu of the largest hosts holds a few thousand).
	MaxDirEntries = 1 << 16
)

// errTooLarge marks a file over its read limit.
var errTooLarge = errors.New("too large")

// readFile reads name from fsys, refusing anything but a regular file (a
// FIFO would block the open forever, a device could stream without end) and
// anything over limit bytes.
func readFile(fsys fs.FS, name string, limit int) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if fi.Mode().IsRegular() && fi.Size() > int64(limit) {
		// A file on disk says its size; /proc and /sys files say 0 and
		// are measured while read.
		return nil, fmt.Errorf("%w: %d bytes, larger than the %d byte limit", errTooLarge, fi.Size(), limit)
	}
	return readRegular(fsys, name, fi.Mode(), limit)
}

// readRegular is readFile for a file whose mode is already known (from a
// directory listing or a Stat).
func readRegular(fsys fs.FS, name string, mode fs.FileMode, limit int) ([]byte, error) {
	if !mode.IsRegular() {
		if mode.IsDir() {
			return nil, errors.New("is a directory")
		}
		return nil, fmt.Errorf("not a regular file (%s)", mode.Type())
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, fmt.Errorf("%w: larger than the %d byte limit", errTooLarge, limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// reason turns a read error into the few words of a Problem.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

// readDir lists dir, refusing more than MaxDirEntries entries. The entries
// are sorted by name.
func readDir(fsys fs.FS, dir string) ([]fs.DirEntry, error) {
	f, err := fsys.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd, ok := f.(fs.ReadDirFile)
	if !ok {
		return nil, errors.New("not a directory")
	}
	ents, err := rd.ReadDir(MaxDirEntries + 1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(ents) > MaxDirEntries {
		return nil, fmt.Errorf("more than %d entries", MaxDirEntries)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, nil
}

// exists reports whether name exists under fsys (following symlinks).
func exists(fsys fs.FS, name string) bool {
	_, err := fs.Stat(fsys, name)
	return err == nil
}

// numberedName parses names such as "cpu12" or "node3": the prefix, then a
// decimal number of at most max. ok is false for any other name ("cpufreq",
// "cpu01x", "cpu4294967295" when max is smaller).
func numberedName(name, prefix string, max int) (n int, ok bool) {
	if !strings.HasPrefix(name, prefix) || len(name) == len(prefix) {
		return 0, false
	}
	digits := name[len(prefix):]
	if len(digits) > 9 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.Atoi(digits)
	if err != nil || v > max {
		return 0, false
	}
	return v, true
}

// numberedOverflow reports whether name is prefix followed only by digits,
// whatever their value: a name numberedName refused for its size.
func numberedOverflow(name, prefix string) bool {
	if !strings.HasPrefix(name, prefix) || len(name) == len(prefix) {
		return false
	}
	for _, c := range name[len(prefix):] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// problems collects Problems of one Read.
type problems struct {
	list []Problem
}

func (p *problems) add(field, path, why string) {
	p.list = append(p.list, Problem{Field: field, Path: path, Reason: why})
}

// addErr records a read error, except a missing file when missingOK.
func (p *problems) addErr(field, path string, err error, missingOK bool) {
	if err == nil || (missingOK && errors.Is(err, fs.ErrNotExist)) {
		return
	}
	p.add(field, path, reason(err))
}

// trimValue trims the newline and blanks the kernel prints around a value.
func trimValue(b []byte) string {
	return strings.TrimSpace(string(b))
}
