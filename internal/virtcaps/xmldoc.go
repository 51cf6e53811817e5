package virtcaps

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxDocumentSize is the largest XML document the parsers accept. Real
// documents are far smaller (a capabilities document of a 160-CPU host is
// about 30 KiB, an x86_64 domcapabilities document about 70 KiB).
const MaxDocumentSize = 16 << 20

// ParseError is the error of the parsers: the kind of document ("libvirt
// capabilities" or "libvirt domcapabilities"), the line of the problem when
// it is known (0 otherwise) and the reason.
type ParseError struct {
	Doc    string
	Line   int
	Reason string
}

// Error prints "KIND XML: line N: reason" (the line when known).
func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s XML: line %d: %s", e.Doc, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s XML: %s", e.Doc, e.Reason)
}

const (
	docCaps    = "libvirt capabilities"
	docDomCaps = "libvirt domcapabilities"
)

// guardedTokens passes the raw tokens of a strict decoder through,
// refusing every directive (<!DOCTYPE ...>, <!ENTITY ...>): libvirt never
// writes one, and a document that declares entities is not one we read.
// The decoder built on it checks nesting and translates name spaces.
type guardedTokens struct {
	d *xml.Decoder
}

var errDirective = errors.New("directive")

// Token returns the next raw token, or errDirective for a directive.
func (g *guardedTokens) Token() (xml.Token, error) {
	t, err := g.d.RawToken()
	if err != nil {
		return t, err
	}
	if _, ok := t.(xml.Directive); ok {
		return nil, errDirective
	}
	return t, nil
}

// decodeDocument decodes data, whose root element must be root, into v.
// It refuses oversized input, directives (DOCTYPE, ENTITY), a wrong root
// element, content after the root element, and malformed XML, with a
// *ParseError naming doc. It never panics on any input.
func decodeDocument(doc, root string, data []byte, v any) error {
	fail := func(line int, format string, args ...any) error {
		return &ParseError{Doc: doc, Line: line, Reason: fmt.Sprintf(format, args...)}
	}
	if len(data) > MaxDocumentSize {
		return fail(0, "document is %d bytes, more than the limit of %d bytes", len(data), MaxDocumentSize)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(0, "document is empty")
	}
	raw := xml.NewDecoder(bytes.NewReader(data))
	raw.Strict = true
	g := &guardedTokens{d: raw}
	d := xml.NewTokenDecoder(g)
	line := func() int { l, _ := raw.InputPos(); return l }
	explain := func(err error) error {
		var se *xml.SyntaxError
		var ne *strconv.NumError
		switch {
		case errors.Is(err, errDirective):
			return fail(line(), "DOCTYPE/ENTITY declarations are not accepted (libvirt never writes them; the document may try to use an external entity)")
		case errors.As(err, &se):
			// the line of the raw decoder: the outer one reads no bytes
			return fail(line(), "malformed XML: %s", se.Msg)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return fail(line(), "truncated document: unexpected end of input")
		case errors.As(err, &ne):
			return fail(line(), "value %q is not a valid number", truncate(ne.Num, 40))
		default:
			return fail(line(), "%s", strings.TrimPrefix(err.Error(), "xml: "))
		}
	}
	// Prolog: the XML declaration, comments, white space, then the root.
	for {
		t, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fail(line(), "no root element <%s>", root)
			}
			return explain(err)
		}
		switch t := t.(type) {
		case xml.StartElement:
			if t.Name.Local != root || t.Name.Space != "" {
				return fail(line(), "root element is <%s>, want <%s>", qname(t.Name), root)
			}
			if err := d.DecodeElement(v, &t); err != nil {
				return explain(err)
			}
			return trailer(d, fail, explain, line)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return fail(line(), "text %q before the root element", truncate(string(bytes.TrimSpace(t)), 40))
			}
		case xml.ProcInst, xml.Comment:
			// the <?xml ...?> declaration and comments are fine
		default:
			return fail(line(), "unexpected %T before the root element", t)
		}
	}
}

// trailer checks that only white space, comments and processing
// instructions follow the root element.
func trailer(d *xml.Decoder, fail func(int, string, ...any) error, explain func(error) error, line func() int) error {
	for {
		t, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return explain(err)
		}
		switch t := t.(type) {
		case xml.StartElement:
			return fail(line(), "second root element <%s> after the document element", qname(t.Name))
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return fail(line(), "text %q after the root element", truncate(string(bytes.TrimSpace(t)), 40))
			}
		}
	}
}

// recoverParse turns a panic inside a parser into a *ParseError. Neither
// encoding/xml nor the mappings are known to panic on any input; this is
// the last guard that keeps a bug from taking an agent down.
func recoverParse(doc string, err *error) {
	if r := recover(); r != nil {
		*err = &ParseError{Doc: doc, Reason: fmt.Sprintf("internal error: %v", r)}
	}
}

func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
