package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"polyvirt/test/domclean"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/libvirtconn"
)

// requirePPCKernel fails or skips when Debian's ppc64el installer kernel
// is not installed.
func requirePPCKernel(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(debianPPCKernel); err != nil {
		missing(t, "Debian's ppc64el installer kernel ("+debianPPCKernel+", package debian-installer-12-netboot-ppc64el)")
	}
}

// requireAMD64Kernel fails (or skips) when Debian's amd64 installer kernel
// is missing.
func requireAMD64Kernel(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(debianAMD64Kernel); err != nil {
		missing(t, "Debian's amd64 installer kernel ("+debianAMD64Kernel+", package debian-installer-12-netboot-amd64)")
	}
}

// removeDomainsAtCleanup destroys and undefines, when the test ends (even
// when it fails), every libvirt domain whose name starts with prefix.
func removeDomainsAtCleanup(t *testing.T, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		n, err := domclean.Remove(libvirtURI(), prefix)
		if err != nil {
			t.Errorf("removing the domains %s*: %v", prefix, err)
		} else if n > 0 {
			t.Logf("removed %d leftover domains %s*", n, prefix)
		}
	})
}

// domainState is a domain's state; false when it does not exist.
func domainState(t *testing.T, name string) (libvirtconn.DomainState, bool) {
	t.Helper()
	c, err := libvirtconn.DialDomains(libvirtURI(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := c.LookupDomain(ctx, name)
	if errors.Is(err, libvirtconn.ErrNoDomain) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.DomainState(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	return st, true
}

// domainRunning tells whether a domain exists and runs.
func domainRunning(t *testing.T, name string) bool {
	t.Helper()
	st, ok := domainState(t, name)
	return ok && st == libvirtconn.StateRunning
}

// domainExists tells whether a domain exists.
func domainExists(t *testing.T, name string) bool {
	t.Helper()
	_, ok := domainState(t, name)
	return ok
}

// destroyDomain powers a domain off behind everyone's back.
func destroyDomain(t *testing.T, name string) {
	t.Helper()
	c, err := libvirtconn.DialDomains(libvirtURI(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := c.LookupDomain(ctx, name)
	if err != nil {
		t.Fatalf("domain %s: %v", name, err)
	}
	if err := c.DestroyDomain(ctx, d); err != nil {
		t.Fatalf("destroy %s: %v", name, err)
	}
}

// vmOf reads a VM through the CLI (-o json).
func (c *cli) vm(name string) engineapi.VM {
	c.t.Helper()
	var v engineapi.VM
	c.json(&v, "vm", "show", name)
	return v
}

// waitVMCLI waits until a VM, read through the CLI, satisfies ok.
func (c *cli) waitVM(name string, within time.Duration, ok func(engineapi.VM) bool) engineapi.VM {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var v engineapi.VM
	for time.Now().Before(deadline) {
		out, _, code := runCLI(c.t, c.env, "", "vm", "show", name, "-o", "json")
		if code == 0 && json.Unmarshal([]byte(out), &v) == nil && ok(v) {
			return v
		}
		time.Sleep(300 * time.Millisecond)
	}
	c.t.Fatalf("VM %s: not as expected within %s: %s on %q", name, within, v.State, v.Host)
	return v
}

// openPTY opens a pseudo-terminal pair: the test writes to master what a
// user types on the terminal whose device is slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("/dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Drain what the terminal echoes, so that writes never block.
	go io.Copy(io.Discard, m)
	return m, s
}

// canonical tells whether a terminal is in canonical (cooked) mode.
func canonical(t *testing.T, f *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ICANON != 0
}
