package agent

import (
	"context"
	"fmt"
	"net"

	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/libvirttls"
)

// serveLibvirtFront serves libvirt's TLS port (migration.address) in the
// place of a libvirtd that does not listen itself (migration.front): other
// hosts' libvirtd send VMs here through it.
func (a *Agent) serveLibvirtFront(ctx context.Context) error {
	m := a.cfg.Migration
	if !m.Front {
		return nil
	}
	socket, ok := libvirtconn.SocketPath(a.cfg.LibvirtURI)
	if !ok {
		return fmt.Errorf("migration.front: libvirt_uri %q is not a local socket", a.cfg.LibvirtURI)
	}
	files := a.libvirtFiles()
	if !files.Exists() {
		a.log.Warn("migration.front is set, but this host has no libvirt certificate yet (join the engine): no VM can come here", "dir", files.Dir)
		return nil
	}
	fr, err := libvirttls.NewFront(files, socket, a.log)
	if err != nil {
		return fmt.Errorf("migration.front: %w", err)
	}
	ln, err := net.Listen("tcp", m.Address)
	if err != nil {
		return fmt.Errorf("migration.front: %w", err)
	}
	a.log.Info("serving libvirt's TLS port for other hosts", "address", m.Address, "socket", socket)
	go func() {
		if err := fr.Serve(ctx, ln); err != nil {
			a.log.Warn("libvirt TLS front stopped", "err", err)
		}
	}()
	return nil
}
