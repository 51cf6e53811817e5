package domxml

import (
	"encoding/xml"
	"sort"

	"libvirt.org/go/libvirtxml"
)

// MetadataNamespace is the XML namespace of polyvirt's element in the
// domain's <metadata>.
const MetadataNamespace = "urn:polyvirt:vm:1"

// Metadata is polyvirt's element in <metadata>: the guest OS type and the
// definition's free-form entries. It is marshalled by encoding/xml, so keys
// and values are escaped and cannot inject elements.
type Metadata struct {
	XMLName xml.Name        `xml:"urn:polyvirt:vm:1 vm"`
	OSType  string          `xml:"osType,omitempty"`
	Entries []MetadataEntry `xml:"entry"`
}

// MetadataEntry is one key/value pair.
type MetadataEntry struct {
	Key   string `xml:"key,attr"`
	Value string `xml:",chardata"`
}

func configureMetadata(b *builder) {
	md := Metadata{OSType: b.vm.OSType}
	keys := make([]string, 0, len(b.vm.Metadata))
	for k := range b.vm.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		md.Entries = append(md.Entries, MetadataEntry{Key: k, Value: b.vm.Metadata[k]})
	}
	data, err := xml.Marshal(md)
	if err != nil {
		return // cannot happen with string fields; leave the metadata out
	}
	b.dom.Metadata = &libvirtxml.DomainMetadata{XML: string(data)}
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
