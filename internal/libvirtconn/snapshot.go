package libvirtconn

import (
	"context"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// Snapshots are the domain snapshot calls the agent uses for VM
// snapshots: libvirt's internal snapshots (a running domain's disks with
// its memory, QEMU's savevm), and QEMU's monitor for what libvirt 9.0 does
// not offer on a running domain (an internal disk-only snapshot of each
// qcow2 disk, atomically: blockdev-snapshot-internal-sync in a
// transaction). A connection made by Dial implements it; the agent asks
// for it with a type assertion so that its fakes need not grow.
type Snapshots interface {
	// CreateSnapshot takes an internal snapshot named name of a domain
	// (of a running one: disks and memory), described by description.
	CreateSnapshot(ctx context.Context, d Domain, name, description string) error
	// HasSnapshot tells whether libvirt knows a snapshot of the domain by
	// that name.
	HasSnapshot(ctx context.Context, d Domain, name string) (bool, error)
	// RevertSnapshot brings the domain back to a snapshot libvirt knows
	// (a running domain with memory: it runs on from the snapshot).
	RevertSnapshot(ctx context.Context, d Domain, name string) error
	// DeleteSnapshot deletes a snapshot libvirt knows, from the disks
	// too.
	DeleteSnapshot(ctx context.Context, d Domain, name string) error
	// MonitorCommand sends a QMP command to a running domain's QEMU and
	// returns its JSON answer (libvirt marks the domain "custom-monitor").
	MonitorCommand(ctx context.Context, d Domain, cmd string) (string, error)
}

var _ Snapshots = (*rpcConn)(nil)

func (c *rpcConn) CreateSnapshot(ctx context.Context, d Domain, name, description string) error {
	x, err := (&libvirtxml.DomainSnapshot{Name: name, Description: description}).Marshal()
	if err != nil {
		return err
	}
	return c.withDomain(ctx, "DomainSnapshotCreateXML", d, func(rd golibvirt.Domain) error {
		_, err := c.l.DomainSnapshotCreateXML(rd, x, uint32(golibvirt.DomainSnapshotCreateAtomic))
		return err
	})
}

func (c *rpcConn) snapshot(rd golibvirt.Domain, name string) (golibvirt.DomainSnapshot, error) {
	return c.l.DomainSnapshotLookupByName(rd, name, 0)
}

func (c *rpcConn) HasSnapshot(ctx context.Context, d Domain, name string) (bool, error) {
	found := false
	err := c.withDomain(ctx, "DomainSnapshotLookupByName", d, func(rd golibvirt.Domain) error {
		_, err := c.snapshot(rd, name)
		if err == nil {
			found = true
			return nil
		}
		if golibvirt.IsNotFound(err) || ErrorCode(err) == int(golibvirt.ErrNoDomainSnapshot) {
			return nil
		}
		return err
	})
	return found, err
}

func (c *rpcConn) RevertSnapshot(ctx context.Context, d Domain, name string) error {
	return c.withDomain(ctx, "DomainRevertToSnapshot", d, func(rd golibvirt.Domain) error {
		s, err := c.snapshot(rd, name)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", name, err)
		}
		return c.l.DomainRevertToSnapshot(s, 0)
	})
}

func (c *rpcConn) DeleteSnapshot(ctx context.Context, d Domain, name string) error {
	return c.withDomain(ctx, "DomainSnapshotDelete", d, func(rd golibvirt.Domain) error {
		s, err := c.snapshot(rd, name)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", name, err)
		}
		return c.l.DomainSnapshotDelete(s, 0)
	})
}

func (c *rpcConn) MonitorCommand(ctx context.Context, d Domain, cmd string) (string, error) {
	var out string
	err := c.withDomain(ctx, "QEMUDomainMonitorCommand", d, func(rd golibvirt.Domain) error {
		var err error
		out, err = c.l.QEMUDomainMonitorCommand(rd, cmd, 0)
		return err
	})
	return out, err
}
