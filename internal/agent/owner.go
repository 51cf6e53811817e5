package agent

import (
	"crypto/sha1"
	"encoding/xml"
	"errors"
	"fmt"

	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/arch"
	"polyvirt/internal/libvirtconn"
)

// OwnerNamespace is the XML namespace of the agent's element in a domain's
// <metadata>.
const OwnerNamespace = "urn:polyvirt:agent:1"

// Owner is the agent's mark on a domain it manages: the VM id, the owning
// host, the architecture and the definition the VM was created from (JSON).
// Every other domain on the libvirtd is left alone.
type Owner struct {
	XMLName xml.Name  `xml:"urn:polyvirt:agent:1 owner"`
	VM      string    `xml:"vm,attr"`
	Name    string    `xml:"name,attr,omitempty"`
	Host    string    `xml:"host,attr"`
	Arch    arch.Arch `xml:"arch,attr"`
	FakeKVM bool      `xml:"fakeKvm,attr,omitempty"`
	// UUIDFrom says how the domain's UUID was made, for a domain that
	// migrated here (its UUID cannot change on the way): "vm" for the VM
	// id itself, else the id of the host whose agent derived it. Empty:
	// this agent's own rule (domainUUID).
	UUIDFrom   string `xml:"uuidFrom,attr,omitempty"`
	Definition string `xml:"definition"`
}

// uuidFromVM is UUIDFrom for a domain whose UUID is its VM's id.
const uuidFromVM = "vm"

// domainUUID is the libvirt UUID of a VM's domain on this host: the VM id
// itself, or with a domain prefix a UUID derived from the VM id and the host
// id (name-based, SHA-1, RFC 9562 version 5 layout).
func (a *Agent) domainUUID(vmID string) string {
	if a.cfg.DomainPrefix == "" {
		return vmID
	}
	return derivedUUID(a.cfg.HostID, vmID)
}

// uuidFrom is UUIDFrom for the domains this agent defines.
func (a *Agent) uuidFrom() string {
	if a.cfg.DomainPrefix == "" {
		return uuidFromVM
	}
	return a.cfg.HostID
}

// expectedUUID is the UUID a domain with owner element o must have: the
// one its UUIDFrom says, or this agent's own rule.
func (a *Agent) expectedUUID(o Owner) string {
	switch o.UUIDFrom {
	case "":
		return a.domainUUID(o.VM)
	case uuidFromVM:
		return o.VM
	}
	return derivedUUID(o.UUIDFrom, o.VM)
}

// derivedUUID is the UUID of VM vmID's domain derived for host hostID.
func derivedUUID(hostID, vmID string) string {
	sum := sha1.Sum([]byte("polyvirt/" + hostID + "/" + vmID))
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return libvirtconn.FormatUUID(u)
}

// domainName is the libvirt name of a VM's domain on this host.
func (a *Agent) domainName(vmName string) string { return a.cfg.DomainPrefix + vmName }

// markOwner appends the owner element to the domain's metadata. encoding/xml
// escapes every value, so nothing in the definition can inject elements.
func markOwner(dom *libvirtxml.Domain, o Owner) error {
	b, err := xml.Marshal(o)
	if err != nil {
		return fmt.Errorf("owner metadata: %w", err)
	}
	if dom.Metadata == nil {
		dom.Metadata = &libvirtxml.DomainMetadata{}
	}
	dom.Metadata.XML += string(b)
	return nil
}

// errNotOwned says a domain carries no owner element.
var errNotOwned = errors.New("not managed by polyvirt")

// ownerOf reads the owner element of a domain's XML.
func ownerOf(domainXML string) (Owner, error) {
	var dom struct {
		Metadata struct {
			Owners []Owner `xml:"urn:polyvirt:agent:1 owner"`
		} `xml:"metadata"`
	}
	if err := xml.Unmarshal([]byte(domainXML), &dom); err != nil {
		return Owner{}, fmt.Errorf("domain XML: %w", err)
	}
	if len(dom.Metadata.Owners) == 0 {
		return Owner{}, errNotOwned
	}
	return dom.Metadata.Owners[0], nil
}
