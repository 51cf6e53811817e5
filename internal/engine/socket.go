package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/httpx"
	"polyvirt/internal/localsock"
)

// Socket is the configured local API socket's path ("" for none).
func (e *Engine) Socket() string { return e.settings.Socket }

// ServeSocket serves the API on the local socket (Settings.Socket) until
// ctx ends: the same routes as Serve's HTTPS, as plain HTTP over a unix
// socket, for a CLI on the engine's machine — an upload from there then
// crosses no TLS on its way to the engine. The socket only replaces the
// transport: every request still authenticates with its token, as over
// HTTPS. Only root, the engine's user and the members of SocketGroup may
// connect (the file's mode, and each connection's peer credentials, which
// are refused with 403 LOCAL_PEER_DENIED otherwise). Without a socket
// configured it returns at once.
func (e *Engine) ServeSocket(ctx context.Context) error {
	if e.settings.Socket == "" {
		return nil
	}
	gid, err := lookupGroup(e.settings.SocketGroup)
	if err != nil {
		return err
	}
	ln, err := localsock.Listen(e.settings.Socket, gid)
	if err != nil {
		return err
	}
	pol := localsock.Policy{UIDs: []uint32{0, uint32(os.Geteuid())}, GID: gid, Proc: os.DirFS("/proc")}
	return e.serveLocal(ctx, ln, pol)
}

// lookupGroup is the id of a group given by name or number (-1 for "").
func lookupGroup(g string) (int, error) {
	if g == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return -1, fmt.Errorf("socket group %q: %w", g, err)
	}
	return strconv.Atoi(gr.Gid)
}

// peerKey is the context key of a local connection's peer check.
type peerKey struct{}

// peerCheck is the outcome of a local connection's peer check.
type peerCheck struct {
	cred localsock.Cred
	err  error
}

// serveLocal serves the API on a unix listener whose peers pol admits.
func (e *Engine) serveLocal(ctx context.Context, ln net.Listener, pol localsock.Policy) error {
	h := e.Handler()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pc, _ := r.Context().Value(peerKey{}).(peerCheck)
			if pc.err != nil {
				refuseLocalPeer(w, pc)
				return
			}
			// The peer as the audit names a request's origin (a sign-in's,
			// a join's): the kernel's uid and pid, not an address.
			r.RemoteAddr = fmt.Sprintf("local socket uid=%d pid=%d", pc.cred.UID, pc.cred.PID)
			h.ServeHTTP(w, r)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			cred, err := localsock.Peer(c)
			if err == nil {
				err = pol.Allows(cred)
			}
			if err != nil {
				e.log.Warn("local API socket: peer refused", "pid", cred.PID, "uid", cred.UID, "gid", cred.GID, "err", err)
			}
			return context.WithValue(ctx, peerKey{}, peerCheck{cred: cred, err: err})
		},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	e.log.Info("engine listening on its local socket", "path", ln.Addr().String())
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// refuseLocalPeer answers a peer the socket's policy does not admit, and
// closes its connection.
func refuseLocalPeer(w http.ResponseWriter, pc peerCheck) {
	w.Header().Set("Connection", "close")
	httpx.WriteError(w, api.NewError(http.StatusForbidden, api.CodeLocalPeerDenied,
		"the engine's local socket admits root, the engine's user and the socket's group only: %v", pc.err))
}
