package hostpath

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"polyvirt/internal/api"
)

// Mode says when a check runs.
type Mode int

// The modes.
const (
	// AtCreate: a file may not exist yet (an image copied in later);
	// where it would be, after the links that exist are followed, must be
	// allowed, and a file that exists must be what its use needs.
	AtCreate Mode = iota
	// AtStart: right before libvirt opens the files, every one must exist
	// too.
	AtStart
)

// maxBackingChain bounds the qcow2 backing files followed from one image.
const maxBackingChain = 8

// Checker checks host paths against a host's policy, on its files.
type Checker struct {
	// Policy is the host's policy.
	Policy Policy
	// Root is the host's root directory ("/"; a directory tree in tests).
	Root string
	// ConsoleFile is the one file a VM's console may write to (its file
	// console's file, its pty console's log): the agent's own for the VM.
	// Empty: a console may write to no file.
	ConsoleFile string
	// Exclude are directories no VM file may be in, even below an allowed
	// one: the agent's own (its keys, its console files).
	Exclude []string
}

// Check checks every reference and returns one PATH_NOT_ALLOWED (or
// PATH_NOT_FOUND, at start) violation per refused one, naming its field:
//
//   - console files and logs must be ConsoleFile;
//   - a disk, CD-ROM, kernel or initrd image, once every link on its way
//     is followed, must be below a directory the policy allows for its use
//     (that directory's links followed too), never through /proc; when it
//     exists it must be a regular file with one name (a hard link is
//     another name of a file that may be anywhere), and a qcow2 image may
//     name no external data file and only backing files that pass the same
//     check (plain paths, the backing format recorded);
//   - a block device must lead to the same device as one the policy
//     lists, and be a block device;
//   - the RNG's backend must lead to one of RNGDevices;
//   - anything else (Other) is refused.
func (c Checker) Check(refs []Ref, mode Mode) api.Errors {
	var errs api.Errors
	for _, r := range refs {
		if e := c.check(r, mode, 0); e != nil {
			errs = append(errs, e)
		}
	}
	return errs
}

func notAllowed(r Ref, format string, args ...any) *api.Error {
	return &api.Error{Code: api.CodePathNotAllowed, Field: r.Field, Message: fmt.Sprintf(format, args...)}
}

func (c Checker) check(r Ref, mode Mode, depth int) *api.Error {
	switch r.Use {
	case Other:
		return notAllowed(r, "polyvirt gives VMs no %s of the host%s; remove it", r.Use.noun(), quoted(r.Path))
	case Console:
		if c.ConsoleFile != "" && r.Path == c.ConsoleFile {
			return nil
		}
		return notAllowed(r, "%q: a VM's console writes only to the file polyvirt names for it in the agent's directory; remove the path", r.Path)
	}
	if r.Path == "" || !path.IsAbs(r.Path) || path.Clean(r.Path) != r.Path || strings.ContainsRune(r.Path, 0) {
		return notAllowed(r, "%q is not a clean absolute path; give the file's path from /", r.Path)
	}
	res, err := Resolve(c.Root, r.Path)
	if err != nil {
		return notAllowed(r, "%q cannot be followed on this host (%v); give the file's own path", r.Path, err)
	}
	if res.ViaProc {
		return notAllowed(r, "%q goes through /proc, whose links name other files for QEMU; give the file's own path", r.Path)
	}
	switch r.Use {
	case RNG:
		if !slices.Contains(RNGDevices, res.Path) {
			return c.outside(r, res)
		}
		return c.device(r, res, mode, fs.ModeCharDevice)
	case Block:
		for _, d := range c.Policy.BlockDevices {
			if dr, err := Resolve(c.Root, d); err == nil && dr.Path == res.Path {
				return c.device(r, res, mode, fs.ModeDevice)
			}
		}
		return c.outside(r, res)
	case Disk, CDROM, Kernel, Initrd:
	default:
		return notAllowed(r, "unknown use %q", r.Use)
	}
	if !c.allowedFile(r.Use, res.Path) {
		return c.outside(r, res)
	}
	if d, ok := c.excluded(res.Path); ok {
		return notAllowed(r, "%q%s is in %s, the agent's own directory, which no VM may reach; put the file elsewhere", r.Path, leadsTo(r, res), d)
	}
	if !res.Exists {
		if mode == AtStart {
			return &api.Error{Code: api.CodePathNotFound, Field: r.Field,
				Message: fmt.Sprintf("%q does not exist on this host; copy the file there, or change the definition", r.Path)}
		}
		return nil
	}
	fi, err := os.Lstat(onHost(c.Root, res.Path))
	if err != nil {
		return notAllowed(r, "%q cannot be read on this host: %v", r.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return notAllowed(r, "%q%s is not a regular file (%s); give an image file", r.Path, leadsTo(r, res), fileKind(fi.Mode()))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && uint64(st.Nlink) > 1 {
		return notAllowed(r, "%q%s has %d hard links: another name of the same file may be outside the allowed places; give a file with one name (copy it)",
			r.Path, leadsTo(r, res), st.Nlink)
	}
	if r.Format == "qcow2" || (r.Format == "" && depth > 0) {
		return c.checkQCOW2(r, res, mode, depth)
	}
	return nil
}

// allowedFile tells whether a resolved path is below a directory of the
// use (the directory's own links followed; one that leads to / allows
// nothing).
func (c Checker) allowedFile(u Use, p string) bool {
	for _, d := range c.Policy.Dirs(u) {
		dr, err := Resolve(c.Root, d)
		if err != nil || dr.Path == "/" {
			continue
		}
		if Within(p, dr.Path) {
			return true
		}
	}
	return false
}

// excluded tells whether a resolved path is in (or is) an excluded
// directory, and which.
func (c Checker) excluded(p string) (string, bool) {
	for _, d := range c.Exclude {
		dr, err := Resolve(c.Root, d)
		if err != nil {
			return d, true // cannot tell: refuse
		}
		if p == dr.Path || Within(p, dr.Path) {
			return d, true
		}
	}
	return "", false
}

// device checks that a device that must exist at start is of its kind
// (fs.ModeCharDevice for a character device, fs.ModeDevice alone for a
// block device).
func (c Checker) device(r Ref, res Resolution, mode Mode, kind fs.FileMode) *api.Error {
	if !res.Exists {
		if mode == AtStart {
			return &api.Error{Code: api.CodePathNotFound, Field: r.Field,
				Message: fmt.Sprintf("%q does not exist on this host; use a device the host has", r.Path)}
		}
		return nil
	}
	fi, err := os.Lstat(onHost(c.Root, res.Path))
	if err != nil {
		return notAllowed(r, "%q cannot be read on this host: %v", r.Path, err)
	}
	m := fi.Mode()
	isChar := m&fs.ModeCharDevice != 0
	if m&fs.ModeDevice == 0 || isChar != (kind == fs.ModeCharDevice) {
		want := "a block device"
		if kind == fs.ModeCharDevice {
			want = "a character device"
		}
		return notAllowed(r, "%q%s is not %s (%s)", r.Path, leadsTo(r, res), want, fileKind(m))
	}
	return nil
}

// checkQCOW2 checks a qcow2 image's header: no external data file, and a
// backing file only when it passes the same check (followed from the
// image's directory, up to maxBackingChain deep).
func (c Checker) checkQCOW2(r Ref, res Resolution, mode Mode, depth int) *api.Error {
	f, err := os.Open(onHost(c.Root, res.Path))
	if err != nil {
		return notAllowed(r, "%q cannot be read on this host: %v", r.Path, err)
	}
	defer f.Close()
	head := make([]byte, 4)
	if n, _ := f.ReadAt(head, 0); n < 4 || !IsQCOW2(head) {
		if r.Format == "qcow2" {
			return notAllowed(r, "%q%s is not a qcow2 image; give format raw, or a qcow2 image", r.Path, leadsTo(r, res))
		}
		return nil // a raw backing file
	}
	h, err := ReadQCOW2Header(f)
	if err != nil {
		return notAllowed(r, "%q%s: its qcow2 header cannot be read (%v)", r.Path, leadsTo(r, res), err)
	}
	if h.ExternalData || h.DataFile != "" {
		return notAllowed(r, "%q keeps its data in another file (%q), which QEMU would open too; convert it to a self-contained image (qemu-img convert)", r.Path, h.DataFile)
	}
	if h.BackingFile == "" {
		return nil
	}
	if depth >= maxBackingChain {
		return notAllowed(r, "%q: its chain of backing files is longer than %d; flatten it (qemu-img convert)", r.Path, maxBackingChain)
	}
	if strings.ContainsAny(h.BackingFile, ":\x00") {
		return notAllowed(r, "%q names the backing file %q, a protocol or JSON description QEMU would follow anywhere; rebase it onto a plain file (qemu-img rebase)", r.Path, h.BackingFile)
	}
	if h.BackingFormat == "" {
		return notAllowed(r, "%q names the backing file %q without its format; record it (qemu-img rebase -F qcow2 or raw)", r.Path, h.BackingFile)
	}
	backing := h.BackingFile
	if !path.IsAbs(backing) {
		backing = path.Join(path.Dir(res.Path), backing)
	}
	br := Ref{Field: r.Field, Path: path.Clean(backing), Use: r.Use, Format: h.BackingFormat}
	if e := c.check(br, AtStart, depth+1); e != nil {
		e.Message = fmt.Sprintf("%q is backed by %q: %s", r.Path, h.BackingFile, e.Message)
		return e
	}
	return nil
}

// outside is the violation of a path that leads outside the places of its
// use.
func (c Checker) outside(r Ref, res Resolution) *api.Error {
	return notAllowed(r, "%q%s is outside the places this host allows for %s (%s); put the file there, or have the host's administrator allow its place (%s in the agent's configuration)",
		r.Path, leadsTo(r, res), r.Use.noun(), c.Policy.Places(r.Use), r.Use.configKey())
}

// leadsTo says where a path leads when links took it elsewhere.
func leadsTo(r Ref, res Resolution) string {
	if res.Path == r.Path {
		return ""
	}
	return fmt.Sprintf(" (which leads to %q)", res.Path)
}

func quoted(p string) string {
	if p == "" {
		return ""
	}
	return fmt.Sprintf(" (%q)", p)
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsRegular():
		return "a regular file"
	}
	return "a special file"
}

// CheckLexically checks references against policies without looking at
// any file (the engine's check, which does not see the hosts): each must
// be allowed as written by at least one of the policies. Console files are
// refused (the agent names them). The message lists the places of every
// policy.
func CheckLexically(refs []Ref, policies ...Policy) api.Errors {
	var errs api.Errors
	all := Merge(policies...)
	for _, r := range refs {
		ok := false
		for _, p := range policies {
			if p.AllowsLexically(r) {
				ok = true
				break
			}
		}
		if ok {
			continue
		}
		switch r.Use {
		case Console:
			errs = append(errs, notAllowed(r, "%q: a VM's console writes only to the file polyvirt names for it on its host; remove the path", r.Path))
		case Other:
			errs = append(errs, notAllowed(r, "polyvirt gives VMs no %s of the host; remove it", r.Use.noun()))
		default:
			errs = append(errs, notAllowed(r, "%q is outside the places the hosts allow for %s (%s); put the file there, or have the hosts' administrator allow its place (%s in the agent's configuration)",
				r.Path, r.Use.noun(), all.Places(r.Use), r.Use.configKey()))
		}
	}
	return errs
}
