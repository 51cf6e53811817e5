package virtcaps

import (
	"context"
	"fmt"
	"sync"

	"polyvirt/internal/arch"
	"polyvirt/internal/libvirtconn"
)

// Live is what libvirt says about a host: the capabilities document, the
// versions, and one domcapabilities document per guest architecture. Gather
// fills it from a daemon; FromDocuments from captured files.
type Live struct {
	// LibvirtVersion and QEMUVersion are "major.minor.release"; empty when
	// unknown (captured documents carry no versions).
	LibvirtVersion string
	QEMUVersion    string
	// VersionError is why the versions could not be read, or "".
	VersionError string
	// CapabilitiesXML is the raw capabilities document and Capabilities
	// its parsed form; nil when no capabilities document was given.
	CapabilitiesXML string
	Capabilities    *Capabilities
	// DomainCaps has one entry per guest architecture asked (Gather: in
	// the order of Capabilities.GuestArches) or per document given
	// (FromDocuments: in the order given).
	DomainCaps []ArchDomainCaps
}

// ArchDomainCaps is the domcapabilities answer for one guest architecture.
type ArchDomainCaps struct {
	// Arch is the guest architecture (for a captured document, the
	// document's own <arch>).
	Arch arch.Arch
	// Emulator and DomainType are what was asked (for a captured
	// document, its <path> and <domain>). The machine is left to libvirt's
	// default; the one it chose is Caps.Machine.
	Emulator   string
	DomainType string
	// XML is the raw document, Caps its parsed form; both are empty when
	// the call or the parse failed, and Err says why.
	XML  string
	Caps *DomainCaps
	Err  string
}

// DomainCapsFor returns the first successfully parsed domcapabilities for
// guest architecture a, or nil.
func (l *Live) DomainCapsFor(a arch.Arch) *DomainCaps {
	if l == nil {
		return nil
	}
	for i := range l.DomainCaps {
		if l.DomainCaps[i].Arch == a && l.DomainCaps[i].Caps != nil {
			return l.DomainCaps[i].Caps
		}
	}
	return nil
}

// DefaultConcurrency bounds the domcapabilities calls Gather has in flight
// at once. libvirtd serves at most 5 requests of one client at a time
// (max_client_requests); one more slot is left for the version calls.
const DefaultConcurrency = 4

// GatherOptions tunes Gather.
type GatherOptions struct {
	// Arches limits the domcapabilities calls to these guest
	// architectures; nil asks one per guest architecture libvirt offers.
	// An arch libvirt does not offer gets an entry with Err set.
	Arches []arch.Arch
	// Concurrency bounds the parallel domcapabilities calls; 0 or less
	// means DefaultConcurrency.
	Concurrency int
	// SkipDomainCaps asks only for capabilities and versions.
	SkipDomainCaps bool
	// DomainType, when set ("qemu" on a host whose KVM is unusable), is
	// asked for every arch that offers it instead of the preferred type.
	DomainType string
}

// Gather asks the daemon behind conn for its capabilities and versions,
// then, concurrently, for one domcapabilities per guest architecture: with
// that arch's emulator and its preferred domain type (kvm when the
// capabilities list a kvm domain for the arch, else qemu), machine left to
// libvirt. A failing or unparsable capabilities document is an error; a
// failing domcapabilities call is recorded in its entry's Err, and failing
// version calls in VersionError. When ctx ends first, Gather returns
// ctx's error.
func Gather(ctx context.Context, conn libvirtconn.Conn, opts GatherOptions) (*Live, error) {
	if conn == nil {
		return nil, fmt.Errorf("libvirt: no connection")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	live := &Live{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		lib, hv, err := conn.Versions(ctx)
		if err != nil {
			live.VersionError = err.Error()
			return
		}
		live.LibvirtVersion, live.QEMUVersion = lib, hv
	}()
	defer wg.Wait() // never leave the version goroutine behind

	xmlDoc, err := conn.Capabilities(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("libvirt capabilities: %w", err)
	}
	caps, err := ParseCapabilities([]byte(xmlDoc))
	if err != nil {
		cancel()
		return nil, err
	}
	live.CapabilitiesXML, live.Capabilities = xmlDoc, caps

	if !opts.SkipDomainCaps {
		arches := opts.Arches
		if arches == nil {
			arches = caps.GuestArches()
		}
		live.DomainCaps = make([]ArchDomainCaps, len(arches))
		n := opts.Concurrency
		if n <= 0 {
			n = DefaultConcurrency
		}
		sem := make(chan struct{}, n)
		for i, a := range arches {
			e := &live.DomainCaps[i]
			e.Arch = a
			e.DomainType = caps.PreferredDomainType(a)
			if opts.DomainType != "" && caps.HasDomainType(a, opts.DomainType) {
				e.DomainType = opts.DomainType
			}
			e.Emulator = caps.Emulator(a, e.DomainType)
			if e.DomainType == "" {
				e.Err = fmt.Sprintf("libvirt offers no guest of architecture %q", a)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					e.Err = ctx.Err().Error()
					return
				}
				defer func() { <-sem }()
				doc, err := conn.DomainCapabilities(ctx, e.Emulator, e.Arch.String(), "", e.DomainType)
				if err != nil {
					e.Err = fmt.Sprintf("domcapabilities for %s (%s, %s): %v", e.Arch, e.DomainType, e.Emulator, err)
					return
				}
				dc, err := ParseDomainCapabilities([]byte(doc))
				if err != nil {
					e.Err = fmt.Sprintf("domcapabilities for %s (%s, %s): %v", e.Arch, e.DomainType, e.Emulator, err)
					return
				}
				e.XML, e.Caps = doc, dc
			}()
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return live, nil
}

// DocumentError is the error of FromDocuments for one document: Index is
// the position of the document in the domcapabilities list (0-based), or -1
// for the capabilities document, so a caller can name the file.
type DocumentError struct {
	Index int
	Err   error
}

// Error prints the parse error, prefixed with the position of a
// domcapabilities document.
func (e *DocumentError) Error() string {
	if e.Index < 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("domcapabilities document #%d: %v", e.Index+1, e.Err)
}

// Unwrap returns the parse error.
func (e *DocumentError) Unwrap() error { return e.Err }

// FromDocuments builds a Live from captured documents (`--libvirt-caps FILE`,
// `--libvirt-domcaps FILE`...): capsXML is the capabilities document (nil
// when none was given), domcapsXML the domcapabilities documents, each
// keyed by its own <arch>, in the order given. Several documents for one
// arch are kept; DomainCapsFor returns the first. Any unparsable document is
// a *DocumentError. Versions stay empty.
func FromDocuments(capsXML []byte, domcapsXML [][]byte) (*Live, error) {
	live := &Live{}
	if capsXML != nil {
		caps, err := ParseCapabilities(capsXML)
		if err != nil {
			return nil, &DocumentError{Index: -1, Err: err}
		}
		live.CapabilitiesXML, live.Capabilities = string(capsXML), caps
	}
	for i, data := range domcapsXML {
		dc, err := ParseDomainCapabilities(data)
		if err != nil {
			return nil, &DocumentError{Index: i, Err: err}
		}
		live.DomainCaps = append(live.DomainCaps, ArchDomainCaps{
			Arch:       dc.Arch,
			Emulator:   dc.Emulator,
			DomainType: dc.Domain,
			XML:        string(data),
			Caps:       dc,
		})
	}
	return live, nil
}
