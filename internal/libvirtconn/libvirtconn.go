// Package libvirtconn is polyvirt's one thin interface over libvirt: the
// calls the rest of the code makes, answered by a pure-Go RPC client
// (github.com/digitalocean/go-libvirt) on a real daemon, or by a fake in unit
// tests. Nothing else imports go-libvirt.
package libvirtconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// DefaultURI is the system QEMU driver on the local unix socket
// (/var/run/libvirt/libvirt-sock).
const DefaultURI = "qemu:///system"

// Conn is the libvirt connection as polyvirt uses it.
type Conn interface {
	// Capabilities returns the `virsh capabilities` document.
	Capabilities(ctx context.Context) (string, error)
	// DomainCapabilities returns `virsh domcapabilities` for an emulator,
	// architecture, machine and domain type ("kvm" or "qemu"); empty
	// strings let libvirt choose.
	DomainCapabilities(ctx context.Context, emulator, arch, machine, virtType string) (string, error)
	// Versions returns the libvirt library version and the hypervisor
	// (QEMU) version, each as "major.minor.release".
	Versions(ctx context.Context) (libvirtVersion, hypervisorVersion string, err error)
	// Close ends the connection.
	Close() error
}

// ErrUnavailable wraps every failure to reach the daemon, so callers can
// tell "no libvirt here" from a failing call.
var ErrUnavailable = errors.New("libvirt is not available")

// Dial connects to the libvirt daemon at uri (qemu:///system,
// qemu+unix:///system?socket=PATH, ...) within timeout.
func Dial(uri string, timeout time.Duration) (Conn, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %v", uri, err)
	}
	type result struct {
		l   *golibvirt.Libvirt
		err error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := golibvirt.ConnectToURI(u)
		ch <- result{l, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("%w at %s: %v", ErrUnavailable, uri, r.err)
		}
		return &rpcConn{l: r.l}, nil
	case <-time.After(timeout):
		go func() {
			if r := <-ch; r.l != nil {
				_ = r.l.Disconnect()
			}
		}()
		return nil, fmt.Errorf("%w at %s: no answer within %s", ErrUnavailable, uri, timeout)
	}
}

type rpcConn struct {
	l *golibvirt.Libvirt
}

// call runs f, giving up when ctx ends (the RPC itself cannot be cancelled,
// so its result is then dropped).
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func opt(s string) golibvirt.OptString {
	if s == "" {
		return nil
	}
	return golibvirt.OptString{s}
}

func (c *rpcConn) Capabilities(ctx context.Context) (string, error) {
	return call(ctx, c.l.ConnectGetCapabilities)
}

func (c *rpcConn) DomainCapabilities(ctx context.Context, emulator, arch, machine, virtType string) (string, error) {
	return call(ctx, func() (string, error) {
		return c.l.ConnectGetDomainCapabilities(opt(emulator), opt(arch), opt(machine), opt(virtType), 0)
	})
}

func (c *rpcConn) Versions(ctx context.Context) (string, string, error) {
	type pair struct{ lib, hv uint64 }
	p, err := call(ctx, func() (pair, error) {
		lib, err := c.l.ConnectGetLibVersion()
		if err != nil {
			return pair{}, err
		}
		hv, err := c.l.ConnectGetVersion()
		return pair{lib, hv}, err
	})
	if err != nil {
		return "", "", err
	}
	return FormatVersion(p.lib), FormatVersion(p.hv), nil
}

func (c *rpcConn) Close() error { return c.l.Disconnect() }

// FormatVersion prints libvirt's packed version number (major*1e6 +
// minor*1e3 + release) as "major.minor.release".
func FormatVersion(v uint64) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}
