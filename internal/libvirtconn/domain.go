package libvirtconn

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// Domains is the domain lifecycle as polyvirt uses it: define from XML,
// start, read back, stop, remove, and look at the screen. Every call takes
// a context; a handle is a plain value that stays valid while the domain
// exists (libvirt finds it by UUID).
type Domains interface {
	// DefineDomain makes a persistent domain from XML; libvirt checks the
	// XML against its schema first.
	DefineDomain(ctx context.Context, xml string) (Domain, error)
	// CreateDomain starts a transient domain from XML (libvirt checks it
	// against its schema first): it runs at once, and is gone once it
	// stops (destroyed) — nothing of it stays defined.
	CreateDomain(ctx context.Context, xml string) (Domain, error)
	// LookupDomain finds a domain by name; ErrNoDomain when there is none.
	LookupDomain(ctx context.Context, name string) (Domain, error)
	// LookupDomainByUUID finds a domain by UUID (8-4-4-4-12 text);
	// ErrNoDomain when there is none.
	LookupDomainByUUID(ctx context.Context, uuid string) (Domain, error)
	// ListDomains lists every domain, running or defined.
	ListDomains(ctx context.Context) ([]Domain, error)
	// StartDomain boots a defined domain.
	StartDomain(ctx context.Context, d Domain) error
	// DestroyDomain stops a running domain at once (power off).
	DestroyDomain(ctx context.Context, d Domain) error
	// UndefineDomain removes a domain's definition; flags say what goes
	// with it (NVRAM, managed save, snapshot and checkpoint metadata, TPM).
	UndefineDomain(ctx context.Context, d Domain, flags UndefineFlags) error
	// DomainXML returns the domain's XML: the live one of a running domain,
	// or with inactive the persistent definition.
	DomainXML(ctx context.Context, d Domain, inactive bool) (string, error)
	// DomainState returns the domain's state.
	DomainState(ctx context.Context, d Domain) (DomainState, error)
	// Screenshot takes a picture of a running domain's display (screen 0
	// is the first head) and returns the image and its MIME type
	// (image/png from QEMU 7.1 on, else image/x-portable-pixmap). It needs
	// a local libvirt socket (see screenshot.go).
	Screenshot(ctx context.Context, d Domain, screen uint32) ([]byte, string, error)
}

// DomainConn is a connection that also manages domains: what the agent
// and the live tests use. Conn stays the read-only capabilities interface
// so that its fakes need not grow.
type DomainConn interface {
	Conn
	Domains
}

// DialDomains is Dial for a connection that manages domains.
func DialDomains(uri string, timeout time.Duration) (DomainConn, error) {
	c, err := Dial(uri, timeout)
	if err != nil {
		return nil, err
	}
	rc, ok := c.(*rpcConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("libvirt connection %T cannot manage domains", c)
	}
	return rc, nil
}

var _ DomainConn = (*rpcConn)(nil)

// Domain is a handle on one libvirt domain.
type Domain struct {
	// Name and UUID identify the domain; ID is its id while it runs
	// (-1 otherwise).
	Name string
	UUID string
	ID   int32
}

// DomainState is libvirt's domain state.
type DomainState int32

// The states (libvirt's virDomainState).
const (
	StateNone        DomainState = 0
	StateRunning     DomainState = 1
	StateBlocked     DomainState = 2
	StatePaused      DomainState = 3
	StateShutdown    DomainState = 4
	StateShutoff     DomainState = 5
	StateCrashed     DomainState = 6
	StatePMSuspended DomainState = 7
)

var stateNames = []string{"no state", "running", "blocked", "paused", "shutting down", "shut off", "crashed", "suspended (PM)"}

// String names the state as virsh does.
func (s DomainState) String() string {
	if int(s) >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state %d", int32(s))
}

// UndefineFlags say what else goes when a domain is undefined.
type UndefineFlags uint32

// The flags (libvirt's virDomainUndefineFlagsValues).
const (
	UndefineManagedSave         UndefineFlags = UndefineFlags(golibvirt.DomainUndefineManagedSave)
	UndefineSnapshotsMetadata   UndefineFlags = UndefineFlags(golibvirt.DomainUndefineSnapshotsMetadata)
	UndefineNVRAM               UndefineFlags = UndefineFlags(golibvirt.DomainUndefineNvram)
	UndefineCheckpointsMetadata UndefineFlags = UndefineFlags(golibvirt.DomainUndefineCheckpointsMetadata)
	UndefineTPM                 UndefineFlags = UndefineFlags(golibvirt.DomainUndefineTpm)
	// UndefineAll removes everything libvirt keeps for the domain.
	UndefineAll = UndefineManagedSave | UndefineSnapshotsMetadata | UndefineNVRAM | UndefineCheckpointsMetadata | UndefineTPM
)

// ErrNoDomain is returned (wrapped) when a domain does not exist.
var ErrNoDomain = errors.New("no such domain")

// FormatUUID writes a 16-byte UUID as 8-4-4-4-12 hex text.
func FormatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ParseUUID reads a UUID written with or without dashes.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return u, fmt.Errorf("UUID %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("UUID %q: %v", s, err)
	}
	return u, nil
}

func fromRPC(d golibvirt.Domain) Domain {
	return Domain{Name: d.Name, UUID: FormatUUID(d.UUID), ID: d.ID}
}

func (c *rpcConn) toRPC(d Domain) (golibvirt.Domain, error) {
	u, err := ParseUUID(d.UUID)
	if err != nil {
		return golibvirt.Domain{}, err
	}
	return golibvirt.Domain{Name: d.Name, UUID: u, ID: d.ID}, nil
}

// notFound wraps libvirt's "no domain" error in ErrNoDomain.
func notFound(what string, err error) error {
	if err != nil && golibvirt.IsNotFound(err) {
		return fmt.Errorf("%w: %s: %v", ErrNoDomain, what, err)
	}
	return err
}

func (c *rpcConn) DefineDomain(ctx context.Context, xml string) (Domain, error) {
	d, err := call(ctx, c, "DomainDefineXMLFlags", func() (golibvirt.Domain, error) {
		return c.l.DomainDefineXMLFlags(xml, golibvirt.DomainDefineValidate)
	})
	if err != nil {
		return Domain{}, err
	}
	return fromRPC(d), nil
}

func (c *rpcConn) CreateDomain(ctx context.Context, xml string) (Domain, error) {
	d, err := call(ctx, c, "DomainCreateXML", func() (golibvirt.Domain, error) {
		return c.l.DomainCreateXML(xml, golibvirt.DomainStartValidate)
	})
	if err != nil {
		return Domain{}, err
	}
	return fromRPC(d), nil
}

func (c *rpcConn) LookupDomain(ctx context.Context, name string) (Domain, error) {
	d, err := call(ctx, c, "DomainLookupByName", func() (golibvirt.Domain, error) { return c.l.DomainLookupByName(name) })
	if err != nil {
		return Domain{}, notFound(name, err)
	}
	return fromRPC(d), nil
}

func (c *rpcConn) LookupDomainByUUID(ctx context.Context, uuid string) (Domain, error) {
	u, err := ParseUUID(uuid)
	if err != nil {
		return Domain{}, err
	}
	d, err := call(ctx, c, "DomainLookupByUUID", func() (golibvirt.Domain, error) { return c.l.DomainLookupByUUID(golibvirt.UUID(u)) })
	if err != nil {
		return Domain{}, notFound(uuid, err)
	}
	return fromRPC(d), nil
}

func (c *rpcConn) ListDomains(ctx context.Context) ([]Domain, error) {
	ds, err := call(ctx, c, "ConnectListAllDomains", func() ([]golibvirt.Domain, error) {
		ds, _, err := c.l.ConnectListAllDomains(1, 0)
		return ds, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Domain, len(ds))
	for i, d := range ds {
		out[i] = fromRPC(d)
	}
	return out, nil
}

// withDomain runs f (libvirt's procedure op) on the RPC handle of d.
func (c *rpcConn) withDomain(ctx context.Context, op string, d Domain, f func(golibvirt.Domain) error) error {
	rd, err := c.toRPC(d)
	if err != nil {
		return err
	}
	_, err = call(ctx, c, op, func() (struct{}, error) { return struct{}{}, f(rd) })
	return notFound(d.Name, err)
}

func (c *rpcConn) StartDomain(ctx context.Context, d Domain) error {
	return c.withDomain(ctx, "DomainCreate", d, c.l.DomainCreate)
}

// DestroyDomain powers the domain off: libvirt kills its QEMU first (SIGTERM,
// then SIGKILL after 10 s, even when QEMU does not answer or is stopped)
// and only then takes the domain's job, so that a call stuck on the
// domain's monitor does not hold it back.
func (c *rpcConn) DestroyDomain(ctx context.Context, d Domain) error {
	return c.withDomain(ctx, "DomainDestroy", d, c.l.DomainDestroy)
}

func (c *rpcConn) UndefineDomain(ctx context.Context, d Domain, flags UndefineFlags) error {
	return c.withDomain(ctx, "DomainUndefineFlags", d, func(rd golibvirt.Domain) error {
		return c.l.DomainUndefineFlags(rd, golibvirt.DomainUndefineFlagsValues(flags))
	})
}

func (c *rpcConn) DomainXML(ctx context.Context, d Domain, inactive bool) (string, error) {
	var flags golibvirt.DomainXMLFlags
	if inactive {
		flags = golibvirt.DomainXMLInactive
	}
	var out string
	err := c.withDomain(ctx, "DomainGetXMLDesc", d, func(rd golibvirt.Domain) error {
		var err error
		out, err = c.l.DomainGetXMLDesc(rd, flags)
		return err
	})
	return out, err
}

func (c *rpcConn) DomainState(ctx context.Context, d Domain) (DomainState, error) {
	var st int32
	err := c.withDomain(ctx, "DomainGetState", d, func(rd golibvirt.Domain) error {
		var err error
		st, _, err = c.l.DomainGetState(rd, 0)
		return err
	})
	return DomainState(st), err
}

// maxScreenshot bounds the image a screenshot may return.
const maxScreenshot = 64 << 20

func (c *rpcConn) Screenshot(ctx context.Context, d Domain, screen uint32) ([]byte, string, error) {
	return screenshot(ctx, c.uri, d, screen, maxScreenshot)
}
