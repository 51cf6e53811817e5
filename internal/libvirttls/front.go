package libvirttls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"polyvirt/internal/pki"
)

// Front serves libvirt's TLS port in the place of a libvirtd that does
// not listen itself — one shared with others, whose configuration is not
// polyvirt's to change (the lab's machine): it accepts a TLS connection
// only from another host's libvirt certificate (signed by the CA, with
// the libvirt unit), answers libvirt's TLS confirmation, and then passes
// the bytes to the daemon's local socket, as the daemon does with its own
// TLS connections. Nothing else reaches the socket through it.
type Front struct {
	cfg    *tls.Config
	socket string
	log    *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// NewFront makes a front for the libvirtd at the unix socket, serving
// with f's certificate.
func NewFront(f Files, socket string, log *slog.Logger) (*Front, error) {
	ca, err := os.ReadFile(f.CACert())
	if err != nil {
		return nil, err
	}
	cert, err := os.ReadFile(f.ServerCert())
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(f.ServerKey())
	if err != nil {
		return nil, err
	}
	cfg, err := pki.ServerTLS(cert, key, ca)
	if err != nil {
		return nil, err
	}
	// libvirt's client reads its one-byte confirmation right after the
	// handshake: a TLS 1.3 session ticket arriving first makes it fail.
	cfg.SessionTicketsDisabled = true
	cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) == 0 || len(chains[0]) == 0 || !pki.IsLibvirtPeer(chains[0][0]) {
			return errors.New("only a host's libvirt certificate may connect")
		}
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Front{cfg: cfg, socket: socket, log: log, conns: map[net.Conn]struct{}{}}, nil
}

// Serve accepts connections on ln until ctx ends; then it closes ln and
// every connection.
func (fr *Front) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		fr.mu.Lock()
		for c := range fr.conns {
			c.Close()
		}
		fr.mu.Unlock()
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		go fr.serve(c)
	}
}

func (fr *Front) track(c net.Conn, on bool) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if on {
		fr.conns[c] = struct{}{}
	} else {
		delete(fr.conns, c)
	}
}

// serve is one connection: the handshake (within 15 s), the confirmation,
// then bytes both ways until either side closes.
func (fr *Front) serve(raw net.Conn) {
	fr.track(raw, true)
	defer fr.track(raw, false)
	defer raw.Close()
	tc := tls.Server(raw, fr.cfg)
	_ = raw.SetDeadline(time.Now().Add(15 * time.Second))
	if err := tc.Handshake(); err != nil {
		fr.log.Warn("libvirt TLS front: handshake refused", "from", raw.RemoteAddr(), "err", err)
		return
	}
	peer := tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	up, err := net.DialTimeout("unix", fr.socket, 10*time.Second)
	if err != nil {
		fr.log.Warn("libvirt TLS front: the daemon does not answer", "socket", fr.socket, "err", err)
		return
	}
	defer up.Close()
	// libvirt's confirmation: the certificate was accepted.
	if _, err := tc.Write([]byte{1}); err != nil {
		return
	}
	_ = raw.SetDeadline(time.Time{})
	fr.log.Info("libvirt TLS front: peer connected", "peer", peer, "from", raw.RemoteAddr())
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, tc)
		if u, ok := up.(*net.UnixConn); ok {
			_ = u.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(tc, up)
		_ = tc.CloseWrite()
		done <- struct{}{}
	}()
	// One side ended: the connection is over (a libvirt connection is not
	// half-closed), end the other.
	<-done
	up.Close()
	raw.Close()
	<-done
}

// Addr formats a listen address for a libvirt URI (IPv6 in brackets).
func Addr(host string, port int) string { return net.JoinHostPort(host, fmt.Sprint(port)) }
