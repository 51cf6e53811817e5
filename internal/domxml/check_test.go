package domxml

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

// wellFormed reports whether doc is one well-formed XML element whose
// elements all come from libvirt's vocabulary or polyvirt's metadata, and
// whether it survives a round trip through libvirtxml unchanged.
func wellFormed(doc string) error {
	dec := xml.NewDecoder(strings.NewReader(doc))
	depth, roots := 0, 0
	inMeta := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			if depth == 1 && el.Name.Local == "metadata" {
				inMeta = true
			}
			if inMeta && depth == 2 && el.Name.Space != MetadataNamespace {
				return errors.New("foreign element in metadata: " + el.Name.Space + " " + el.Name.Local)
			}
			if !inMeta && el.Name.Space != "" {
				return errors.New("namespaced element outside metadata: " + el.Name.Local)
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 1 {
				inMeta = false
			}
		case xml.ProcInst, xml.Directive:
			return errors.New("processing instruction or directive in the domain")
		}
	}
	if roots != 1 || depth != 0 {
		return errors.New("not exactly one root element")
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(doc); err != nil {
		return err
	}
	again, err := dom.Marshal()
	if err != nil {
		return err
	}
	if again != doc {
		return errors.New("libvirtxml round trip changed the document:\n" + again)
	}
	return nil
}

func checkWellFormed(t *testing.T, doc string) {
	t.Helper()
	if err := wellFormed(strings.TrimSuffix(doc, "\n")); err != nil {
		t.Errorf("%v\n%s", err, doc)
	}
}
