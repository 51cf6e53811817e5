package agent

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// destinationXML rewrites a domain's migratable XML (live or persistent)
// for its destination: its owner element (the destination host owns it on
// arrival; the UUID keeps its origin) and its console log, a file of the
// destination agent's. Nothing else changes: libvirt refuses a
// destination XML that describes another guest, or another name (the
// migration's destination name renames it).
func destinationXML(x string, owner Owner, consoleLog string) (string, error) {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return "", fmt.Errorf("domain XML: %w", err)
	}
	if dom.Metadata == nil {
		dom.Metadata = &libvirtxml.DomainMetadata{}
	}
	rest, err := withoutOwner(dom.Metadata.XML)
	if err != nil {
		return "", fmt.Errorf("domain metadata: %w", err)
	}
	dom.Metadata.XML = rest
	if err := markOwner(&dom, owner); err != nil {
		return "", err
	}
	if consoleLog != "" && dom.Devices != nil {
		for i := range dom.Devices.Consoles {
			if l := dom.Devices.Consoles[i].Log; l != nil {
				l.File = consoleLog
			}
		}
		for i := range dom.Devices.Serials {
			if l := dom.Devices.Serials[i].Log; l != nil {
				l.File = consoleLog
			}
		}
	}
	return dom.Marshal()
}

// withoutOwner removes the agent's owner elements from the inner XML of a
// domain's <metadata>, keeping every other element as it is written.
func withoutOwner(inner string) (string, error) {
	d := xml.NewDecoder(strings.NewReader(inner))
	depth, start := 0, -1
	var out strings.Builder
	last := 0
	for {
		off := int(d.InputOffset())
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Space == OwnerNamespace && t.Name.Local == "owner" {
				start = off
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && start >= 0 {
				out.WriteString(inner[last:start])
				last, start = int(d.InputOffset()), -1
			}
		}
	}
	out.WriteString(inner[last:])
	return out.String(), nil
}
