// Package strictdoc finds what JSON and YAML decoders let through without
// a word: a key given twice in one object (encoding/json and YAML keep the
// last one, so that what a reviewer reads is not what runs), and in text
// a person reads, Unicode format characters (the bidi overrides U+202A to
// U+202E and isolates U+2066 to U+2069, zero-width characters, and every
// other character of category Cf) that make a string look other than it
// is.
//
// Problems are reported with the path of the field at fault, written the
// way the VM definition's errors write it: "disks[1].source",
// `metadata["odd key"]`.
package strictdoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v2"
)

// Kind is the kind of a problem.
type Kind int

// The kinds of problems.
const (
	// DuplicateKey: an object has a key twice (or, with FoldCase, two keys
	// that differ only in case).
	DuplicateKey Kind = iota + 1
	// FormatCharacter: a key or a string value holds a Unicode format
	// character.
	FormatCharacter
)

// Problem is the first problem found in a document.
type Problem struct {
	Kind Kind
	// Path is the field at fault ("" for the document itself).
	Path string
	// Key is the repeated key (DuplicateKey).
	Key string
	// Rune is the format character (FormatCharacter).
	Rune rune
}

// Error describes the problem for people.
func (p *Problem) Error() string {
	switch p.Kind {
	case DuplicateKey:
		return fmt.Sprintf("the key %q is given twice in the same object; give it once", p.Key)
	case FormatCharacter:
		return fmt.Sprintf("the value holds the invisible format character %s, which changes how text is shown; remove it", Describe(p.Rune))
	}
	return "unknown problem"
}

// Checks says what JSON looks for.
type Checks struct {
	// FormatCharacters also refuses format characters in keys and string
	// values.
	FormatCharacters bool
	// FoldCase takes keys of the document's top object that differ only
	// in case as the same key: encoding/json fills a struct's fields that
	// way (deeper objects of the engine's requests are maps or documents
	// of their own, whose keys are case-sensitive).
	FoldCase bool
}

// maxDepth bounds the nesting JSON follows (encoding/json's own limit is
// 10,000; documents here are far flatter).
const maxDepth = 1000

// JSON walks a JSON document and returns its first problem, or nil. A
// document that is not valid JSON gives nil: the decoder that reads it
// next says what is wrong with it.
func JSON(data []byte, c Checks) *Problem {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := walker{dec: dec, checks: c}
	p, err := w.value("", 0)
	if err != nil {
		return nil
	}
	return p
}

type walker struct {
	dec    *json.Decoder
	checks Checks
}

// errStop ends the walk of a document that is not JSON.
var errStop = errors.New("not JSON")

// value reads one value at path.
func (w *walker) value(path string, depth int) (*Problem, error) {
	if depth > maxDepth {
		return nil, errStop
	}
	tok, err := w.dec.Token()
	if err != nil {
		return nil, errStop
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return w.object(path, depth)
		case '[':
			for i := 0; w.dec.More(); i++ {
				if p, err := w.value(fmt.Sprintf("%s[%d]", path, i), depth+1); p != nil || err != nil {
					return p, err
				}
			}
			if _, err := w.dec.Token(); err != nil {
				return nil, errStop
			}
		default:
			return nil, errStop
		}
	case string:
		if w.checks.FormatCharacters {
			if r, ok := FormatChar(t); ok {
				return &Problem{Kind: FormatCharacter, Path: path, Rune: r}, nil
			}
		}
	}
	return nil, nil
}

// object reads the members of an object whose '{' was read.
func (w *walker) object(path string, depth int) (*Problem, error) {
	seen := map[string]bool{}
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return nil, errStop
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errStop
		}
		sub := Join(path, k)
		if w.checks.FormatCharacters {
			if r, ok := FormatChar(k); ok {
				return &Problem{Kind: FormatCharacter, Path: sub, Rune: r}, nil
			}
		}
		id := k
		if w.checks.FoldCase && depth == 0 {
			id = foldKey(k)
		}
		if seen[id] {
			return &Problem{Kind: DuplicateKey, Path: sub, Key: k}, nil
		}
		seen[id] = true
		if p, err := w.value(sub, depth+1); p != nil || err != nil {
			return p, err
		}
	}
	if _, err := w.dec.Token(); err != nil {
		return nil, errStop
	}
	return nil, nil
}

// foldKey is the key as encoding/json matches it to a field: Unicode
// simple case folding (strings.EqualFold's rule).
func foldKey(k string) string {
	var b strings.Builder
	for _, r := range k {
		// The smallest rune of r's fold orbit stands for all of them.
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}

// YAML finds the first key given twice in one mapping of a YAML document
// whose top is a mapping, or returns nil. Keys are compared as the JSON
// they become (yes and true are both "true"). A document that is not
// valid YAML, or not a mapping, gives nil: the decoder that reads it next
// says what is wrong with it.
func YAML(data []byte) *Problem {
	// A MapSlice keeps every key in order, and makes the mappings nested
	// in it MapSlices too.
	var doc yaml.MapSlice
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil
	}
	return yamlValue(doc, "", 0)
}

func yamlValue(v any, path string, depth int) *Problem {
	if depth > maxDepth {
		return nil
	}
	switch x := v.(type) {
	case yaml.MapSlice:
		seen := map[string]bool{}
		for _, it := range x {
			k := yamlKey(it.Key)
			sub := Join(path, k)
			if seen[k] {
				return &Problem{Kind: DuplicateKey, Path: sub, Key: k}
			}
			seen[k] = true
			if p := yamlValue(it.Value, sub, depth+1); p != nil {
				return p
			}
		}
	case []any:
		for i, e := range x {
			if p := yamlValue(e, fmt.Sprintf("%s[%d]", path, i), depth+1); p != nil {
				return p
			}
		}
	}
	return nil
}

// yamlKey writes a YAML key as the JSON object key it becomes.
func yamlKey(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case nil:
		return "null"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(k)
}

// FormatChar returns the first Unicode format character (category Cf) of
// s. A byte that is not UTF-8 is not one (other checks refuse it).
func FormatChar(s string) (rune, bool) {
	for _, r := range s {
		// The first format character is U+00AD; U+FFFD (a byte that is
		// not UTF-8) is not one.
		if r >= 0xAD && r != utf8.RuneError && unicode.Is(unicode.Cf, r) {
			return r, true
		}
	}
	return 0, false
}

// names of the format characters people meet most.
var names = map[rune]string{
	0x00AD: "SOFT HYPHEN",
	0x061C: "ARABIC LETTER MARK",
	0x200B: "ZERO WIDTH SPACE",
	0x200C: "ZERO WIDTH NON-JOINER",
	0x200D: "ZERO WIDTH JOINER",
	0x200E: "LEFT-TO-RIGHT MARK",
	0x200F: "RIGHT-TO-LEFT MARK",
	0x202A: "LEFT-TO-RIGHT EMBEDDING",
	0x202B: "RIGHT-TO-LEFT EMBEDDING",
	0x202C: "POP DIRECTIONAL FORMATTING",
	0x202D: "LEFT-TO-RIGHT OVERRIDE",
	0x202E: "RIGHT-TO-LEFT OVERRIDE",
	0x2060: "WORD JOINER",
	0x2066: "LEFT-TO-RIGHT ISOLATE",
	0x2067: "RIGHT-TO-LEFT ISOLATE",
	0x2068: "FIRST STRONG ISOLATE",
	0x2069: "POP DIRECTIONAL ISOLATE",
	0xFEFF: "ZERO WIDTH NO-BREAK SPACE",
}

// Describe names a character: "U+202E (RIGHT-TO-LEFT OVERRIDE)".
func Describe(r rune) string {
	if n, ok := names[r]; ok {
		return fmt.Sprintf("%U (%s)", r, n)
	}
	return fmt.Sprintf("%U", r)
}

// Join adds an object key to a path: "a.b" for a key that is an
// identifier, `a["odd key"]` for another.
func Join(path, k string) string {
	if !isIdent(k) {
		return path + "[" + strconv.Quote(k) + "]"
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

func isIdent(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i, r := range k {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case (r >= '0' && r <= '9') || r == '-':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
