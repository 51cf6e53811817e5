package domxml

import (
	"encoding/xml"
	"sort"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// MetadataNamespace is the XML namespace of polyvirt's element in the
// domain's <metadata>.
const MetadataNamespace = "urn:polyvirt:vm:1"

// Metadata is polyvirt's element in <metadata>: the guest OS type and the
// definition's free-form entries. It is written with every key and value
// escaped (encoding/xml's EscapeText), so none can inject elements; this
// type reads it back.
type Metadata struct {
	XMLName xml.Name `xml:"urn:polyvirt:vm:1 vm"`
	// OSType is the definition's guest OS type.
	OSType string `xml:"osType,omitempty"`
	// Entries are the definition's metadata, sorted by key.
	Entries []MetadataEntry `xml:"entry"`
}

// MetadataEntry is one key/value pair.
type MetadataEntry struct {
	// Key is the entry's name, Value its text.
	Key   string `xml:"key,attr"`
	Value string `xml:",chardata"`
}

func configureMetadata(b *builder) {
	var sb strings.Builder
	sb.Grow(96 + 64*len(b.vm.Metadata))
	sb.WriteString(`<vm xmlns="` + MetadataNamespace + `"><osType>`)
	escape(&sb, b.vm.OSType)
	sb.WriteString("</osType>")
	keys := make([]string, 0, len(b.vm.Metadata))
	for k := range b.vm.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sb.WriteString(`<entry key="`)
		escape(&sb, k)
		sb.WriteString(`">`)
		escape(&sb, b.vm.Metadata[k])
		sb.WriteString("</entry>")
	}
	sb.WriteString("</vm>")
	b.dom.Metadata = &libvirtxml.DomainMetadata{XML: sb.String()}
}

// escape writes s as XML text or attribute value: xml.EscapeText escapes
// the quotes, <, >, & and the newline and tab, and turns characters XML
// cannot carry into U+FFFD, so nothing in s can end the element.
func escape(sb *strings.Builder, s string) {
	_ = xml.EscapeText(sb, []byte(s))
}

// ParseMetadata reads polyvirt's element back from a domain's metadata
// (nil when there is none).
func ParseMetadata(dom *libvirtxml.Domain) (*Metadata, error) {
	if dom == nil || dom.Metadata == nil || dom.Metadata.XML == "" {
		return nil, nil
	}
	var wrap struct {
		VM []Metadata `xml:"urn:polyvirt:vm:1 vm"`
	}
	if err := xml.Unmarshal([]byte("<metadata>"+dom.Metadata.XML+"</metadata>"), &wrap); err != nil {
		return nil, err
	}
	if len(wrap.VM) == 0 {
		return nil, nil
	}
	return &wrap.VM[0], nil
}
