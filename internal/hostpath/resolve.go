package hostpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// maxLinks is how many symbolic links one resolution follows (Linux's
// MAXSYMLINKS).
const maxLinks = 40

// Resolution is where a path leads on a host.
type Resolution struct {
	// Path is the host path with every symbolic link followed, clean and
	// absolute (from the host's root).
	Path string
	// Exists tells whether the whole path exists. When it does not, Path
	// is what exists followed by the rest as written, ".." taken
	// lexically: where the file would be.
	Exists bool
	// ViaProc tells whether the resolution went through /proc, whose
	// links (/proc/self/root, /proc/self/fd/N) name other files for QEMU
	// than for the agent that checks them.
	ViaProc bool
}

// Resolve follows a path on the host whose root directory is root ("/" on
// a host; a directory tree in tests) the way the kernel does: component by
// component, each symbolic link replaced by its target (an absolute
// target from root), ".." going up from where the links led, never above
// root. It reads the file system only with lstat and readlink.
func Resolve(root, p string) (Resolution, error) {
	if !path.IsAbs(p) {
		return Resolution{}, fmt.Errorf("%q is not an absolute path", p)
	}
	if strings.ContainsRune(p, 0) {
		return Resolution{}, fmt.Errorf("the path holds a NUL byte")
	}
	var res Resolution
	rest := components(p)
	resolved := "/"
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, c)
		if next == "/proc" || strings.HasPrefix(next, "/proc/") {
			res.ViaProc = true
		}
		fi, err := os.Lstat(onHost(root, next))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				res.Path = path.Clean(next + "/" + strings.Join(rest, "/"))
				return res, nil
			}
			return Resolution{}, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			links++
			if links > maxLinks {
				return Resolution{}, fmt.Errorf("more than %d symbolic links on the way", maxLinks)
			}
			target, err := os.Readlink(onHost(root, next))
			if err != nil {
				return Resolution{}, err
			}
			if path.IsAbs(target) {
				resolved = "/"
			}
			rest = append(components(target), rest...)
			continue
		}
		if !fi.IsDir() && hasMore(rest) {
			// A file with more after it: the kernel says ENOTDIR.
			res.Path = path.Clean(next + "/" + strings.Join(rest, "/"))
			return res, nil
		}
		resolved = next
	}
	res.Path, res.Exists = resolved, true
	return res, nil
}

// components splits a path into its non-empty components.
func components(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// hasMore tells whether components name something below the current one
// (not only "." and "..", which the kernel would refuse after a file
// too).
func hasMore(rest []string) bool { return len(rest) > 0 }

// onHost is the path of a host path in this process's file system.
func onHost(root, p string) string {
	if root == "" || root == "/" {
		return p
	}
	return filepath.Join(root, p)
}
