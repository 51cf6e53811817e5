// Package localsock is the engine's local API socket: a unix socket on the
// engine's own machine over which a CLI there speaks HTTP without TLS (the
// kernel carries the bytes; nothing crosses a network). Who may connect is
// decided twice: by the socket file's owner and mode (0600, or 0660 with a
// group), and on every connection by the peer's credentials from the
// kernel (SO_PEERCRED): root, the engine's own user, or a member of the
// socket's group. The socket replaces the transport only: the API still
// wants its bearer token on every request.
package localsock

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MaxPathLen is the longest socket path the kernel takes (sun_path less
// its terminating NUL).
const MaxPathLen = 107

// Cred is a connected peer's identity as the kernel recorded it when the
// peer connected.
type Cred struct {
	PID int32
	UID uint32
	GID uint32
}

// Policy says which peers may use the socket.
type Policy struct {
	// UIDs may connect whatever their groups (root and the engine's own
	// user, in the engine).
	UIDs []uint32
	// GID, when not negative, admits the members of that group: as their
	// primary group or one of their supplementary groups (read from the
	// peer's /proc/PID/status under Proc).
	GID int
	// Proc is the /proc file system the supplementary groups are read
	// from (os.DirFS("/proc") on a host).
	Proc fs.FS
}

// Allows tells whether the peer c may use the socket, and if not why.
func (p Policy) Allows(c Cred) error {
	for _, u := range p.UIDs {
		if c.UID == u {
			return nil
		}
	}
	if p.GID >= 0 {
		if c.GID == uint32(p.GID) {
			return nil
		}
		if p.Proc != nil && c.PID > 0 {
			b, err := fs.ReadFile(p.Proc, strconv.Itoa(int(c.PID))+"/status")
			if err == nil {
				groups, err := ParseGroups(string(b))
				if err == nil {
					for _, g := range groups {
						if g == uint32(p.GID) {
							return nil
						}
					}
				}
			}
		}
		return fmt.Errorf("uid %d (pid %d) is neither root, the engine's user, nor a member of group %d", c.UID, c.PID, p.GID)
	}
	return fmt.Errorf("uid %d (pid %d) is neither root nor the engine's user", c.UID, c.PID)
}

// ParseGroups reads the supplementary groups from the text of a
// /proc/PID/status file (its "Groups:" line).
func ParseGroups(status string) ([]uint32, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var out []uint32
		for _, f := range strings.Fields(rest) {
			g, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("Groups: %q is not a group id", f)
			}
			out = append(out, uint32(g))
		}
		return out, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("no Groups: line")
}

// Listen makes the socket at path, owned by the process's user and, when
// gid is not negative, by that group, with mode 0660 (0600 without a
// group); its directory is made (0755) if missing. A socket left there by
// an engine that is gone is replaced; one that still answers, or a file
// that is not a socket, is an error. Peers that connect between the
// socket's creation and its chmod are still checked by their credentials
// (Peer and Policy), which do not depend on the file's mode.
func Listen(path string, gid int) (*net.UnixListener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket %q: want an absolute path", path)
	}
	if len(path) > MaxPathLen {
		return nil, fmt.Errorf("socket %q: %d bytes, more than the %d a unix socket's path may have", path, len(path), MaxPathLen)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("socket %s: a file that is not a socket is there (%s); remove it or give another path", path, fi.Mode().Type())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another engine answers on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket %s: removing the stale socket: %w", path, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: giving it to group %d: %w", path, gid, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return ln, nil
}

// CheckServer tells whether the process that serves the socket at path,
// seen through the connection c to it, may be trusted as the engine: a
// client sends it its token, so it must not be another user's process
// that took the path. It is trusted when it runs as root, as the client's
// own user, or as the owner of the socket's directory when no one else
// may write in that directory.
func CheckServer(c net.Conn, path string) error {
	srv, err := Peer(c)
	if err != nil {
		return fmt.Errorf("socket %s: the server's credentials: %w", path, err)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	owner, ok := ownerOf(fi)
	if !ok {
		return fmt.Errorf("socket %s: the owner of %s is unknown", path, dir)
	}
	return ServerAllowed(srv.UID, uint32(os.Geteuid()), owner, fi.Mode(), dir)
}

// ServerAllowed is CheckServer's rule: a server of uid srv is trusted by a
// client of uid self when it is root or self, or dirOwner where the
// socket's directory (of mode dirMode) is writable by its owner alone.
func ServerAllowed(srv, self, dirOwner uint32, dirMode fs.FileMode, dir string) error {
	switch {
	case srv == 0 || srv == self:
		return nil
	case srv == dirOwner && dirMode.Perm()&0o022 == 0:
		return nil
	case srv == dirOwner:
		return fmt.Errorf("the engine's socket is served by uid %d, which owns %s, but others may write in that directory (%v): anyone could have put the socket there", srv, dir, dirMode.Perm())
	}
	return fmt.Errorf("the engine's socket is served by uid %d: neither root, you (uid %d), nor the owner of %s (uid %d); not sending it the token", srv, self, dir, dirOwner)
}
