// Package libvirtconn is polyvirt's one thin interface over libvirt: the
// calls the rest of the code makes, answered by a pure-Go RPC client
// (github.com/digitalocean/go-libvirt) on a real daemon, or by a fake in unit
// tests. Nothing else imports go-libvirt.
package libvirtconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
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

// ErrTimeout wraps a call libvirt did not answer within its time (the
// context's deadline, or MaxCallTime): the daemon may still be working on
// it (a QEMU that does not answer its monitor keeps a call waiting).
var ErrTimeout = errors.New("libvirt did not answer in time")

// MaxCallTime bounds every call whose context has no earlier deadline.
const MaxCallTime = 2 * time.Minute

// closeTimeout bounds the polite part of Close (REMOTE_PROC_CONNECT_CLOSE);
// after it the socket is closed under the client.
const closeTimeout = 5 * time.Second

// Dial connects to the libvirt daemon at uri (qemu:///system,
// qemu+unix:///system?socket=PATH, ...) within timeout.
func Dial(uri string, timeout time.Duration) (Conn, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %v", uri, err)
	}
	type result struct {
		c   *rpcConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := connect(u)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("%w at %s: %v", ErrUnavailable, uri, r.err)
		}
		r.c.uri = uri
		return r.c, nil
	case <-time.After(timeout):
		go func() {
			if r := <-ch; r.c != nil {
				_ = r.c.Close()
			}
		}()
		return nil, fmt.Errorf("%w at %s: no answer within %s", ErrUnavailable, uri, timeout)
	}
}

// connect opens one connection. A local (unix socket) connection keeps its
// socket, so that Close can end it even when the daemon does not answer.
func connect(u *url.URL) (*rpcConn, error) {
	life, endLife := context.WithCancel(context.Background())
	c := &rpcConn{life: life, endLife: endLife}
	scheme := strings.SplitN(u.Scheme, "+", 2)
	local := u.Host == "" && (len(scheme) == 1 || scheme[1] == "unix")
	if !local {
		l, err := golibvirt.ConnectToURI(u)
		if err != nil {
			endLife()
			return nil, err
		}
		c.l = l
		return c, nil
	}
	var opts []dialers.LocalOption
	if s := u.Query().Get("socket"); s != "" {
		opts = append(opts, dialers.WithSocket(s))
	}
	c.raw = &keptDialer{inner: dialers.NewLocal(opts...)}
	c.l = golibvirt.NewWithDialer(c.raw)
	if err := c.l.ConnectToURI(golibvirt.RemoteURI(u)); err != nil {
		endLife()
		return nil, err
	}
	return c, nil
}

// keptDialer dials through another dialer and keeps the connection.
type keptDialer struct {
	inner interface{ Dial() (net.Conn, error) }
	mu    sync.Mutex
	conn  net.Conn
}

func (k *keptDialer) Dial() (net.Conn, error) {
	c, err := k.inner.Dial()
	k.mu.Lock()
	k.conn = c
	k.mu.Unlock()
	return c, err
}

func (k *keptDialer) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn != nil {
		_ = k.conn.Close()
	}
}

// rpcConn is one connection to a daemon.
//
// Domain event callbacks live exactly as long as the connection: they are
// registered once (Events) and never deregistered by the client; the daemon
// drops them itself when the connection closes. libvirtd 9.0 crashes when a
// client deregisters a callback while its connection closes (the close
// path, remoteClientFreePrivateCallbacks, walks and frees the callback list
// without the lock the deregister holds: "could not find event callback N
// for deletion", "unexpected domain event deregister failure", then a
// double free), and go-libvirt's event streams deregister in the background
// when their context ends — so that context (life) ends only after the
// connection is closed, when nothing more can reach the daemon.
//
// The same close path runs twice at once, and crashes libvirtd 9.0 the same
// way, when the connection closes while the daemon still works on a call of
// it: the daemon's worker finds the client closing when it replies and
// closes it too. Close therefore first waits for the calls under way
// (calls, up to closeTimeout) and lets no new one start.
type rpcConn struct {
	l   *golibvirt.Libvirt
	raw *keptDialer
	// uri is the URI dialed: screenshots open a private connection to the
	// same socket (screenshot.go).
	uri string

	life    context.Context
	endLife context.CancelFunc

	evMu       sync.Mutex
	subscribed bool

	calls inflight

	closeOnce sync.Once
	closeErr  error
}

// call runs f (libvirt's procedure op) on c, giving up when ctx ends or after
// MaxCallTime (the RPC itself cannot be cancelled: its result is then
// dropped, and the daemon may still be working on it). A call not answered
// in time fails with ErrTimeout, naming the procedure and the time.
func call[T any](ctx context.Context, c *rpcConn, op string, f func() (T, error)) (T, error) {
	if !c.calls.begin() {
		var zero T
		return zero, fmt.Errorf("%w: %s on a closed connection", ErrUnavailable, op)
	}
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, MaxCallTime)
		defer cancel()
	}
	start := time.Now()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer c.calls.end()
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		if errors.Is(r.err, golibvirt.ErrInterrupted) {
			r.err = fmt.Errorf("%w: the connection was lost during %s", ErrUnavailable, op)
		}
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, &TimeoutError{Op: op, After: time.Since(start).Round(time.Second)}
		}
		return zero, fmt.Errorf("%s abandoned: %w", op, ctx.Err())
	}
}

// TimeoutError is a call libvirt did not answer in time; it wraps
// ErrTimeout.
type TimeoutError struct {
	// Op is libvirt's procedure (DomainShutdown, QEMUDomainMonitorCommand
	// query-status, ...) and After how long it was waited for.
	Op    string
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("libvirt did not answer %s within %s", e.Op, e.After)
}

// Unwrap makes errors.Is(err, ErrTimeout) hold.
func (e *TimeoutError) Unwrap() error { return ErrTimeout }

func opt(s string) golibvirt.OptString {
	if s == "" {
		return nil
	}
	return golibvirt.OptString{s}
}

func (c *rpcConn) Capabilities(ctx context.Context) (string, error) {
	return call(ctx, c, "ConnectGetCapabilities", c.l.ConnectGetCapabilities)
}

func (c *rpcConn) DomainCapabilities(ctx context.Context, emulator, arch, machine, virtType string) (string, error) {
	return call(ctx, c, "ConnectGetDomainCapabilities", func() (string, error) {
		return c.l.ConnectGetDomainCapabilities(opt(emulator), opt(arch), opt(machine), opt(virtType), 0)
	})
}

func (c *rpcConn) Versions(ctx context.Context) (string, string, error) {
	type pair struct{ lib, hv uint64 }
	p, err := call(ctx, c, "ConnectGetLibVersion", func() (pair, error) {
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

// Close ends the connection: it refuses new calls and waits up to
// closeTimeout for the ones under way (see rpcConn), then closes politely
// (REMOTE_PROC_CONNECT_CLOSE) when the daemon answers within closeTimeout,
// else by closing the socket. Only then does the life of the connection's
// event stream end.
func (c *rpcConn) Close() error {
	c.closeOnce.Do(func() {
		left := c.calls.drain(closeTimeout)
		done := make(chan error, 1)
		go func() { done <- c.l.Disconnect() }()
		select {
		case c.closeErr = <-done:
		case <-time.After(closeTimeout):
			if c.raw != nil {
				c.raw.close()
			}
			select {
			case <-done:
			case <-time.After(closeTimeout):
			}
			c.closeErr = fmt.Errorf("%w: the daemon did not answer the close within %s; the socket was closed", ErrTimeout, closeTimeout)
		}
		if left > 0 && c.closeErr == nil {
			c.closeErr = fmt.Errorf("%w: the connection was closed with %d call(s) still under way after %s", ErrTimeout, left, closeTimeout)
		}
		c.endLife()
	})
	return c.closeErr
}

// FormatVersion prints libvirt's packed version number (major*1e6 +
// minor*1e3 + release) as "major.minor.release".
func FormatVersion(v uint64) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}
