package strictdoc

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestJSON(t *testing.T) {
	all := Checks{FormatCharacters: true, FoldCase: true}
	cases := []struct {
		name   string
		doc    string
		checks Checks
		want   *Problem
	}{
		{"clean", `{"name":"a","disks":[{"source":"/a"},{"source":"/b"}],"metadata":{"k":"v"}}`, all, nil},
		{"top-level duplicate", `{"name":"a","name":"b"}`, Checks{}, &Problem{Kind: DuplicateKey, Path: "name", Key: "name"}},
		{"nested duplicate", `{"disks":[{"source":"/a"},{"source":"/b","source":"/etc/shadow"}]}`, Checks{},
			&Problem{Kind: DuplicateKey, Path: "disks[1].source", Key: "source"}},
		{"duplicate map key", `{"metadata":{"odd key":"1","odd key":"2"}}`, Checks{},
			&Problem{Kind: DuplicateKey, Path: `metadata["odd key"]`, Key: "odd key"}},
		{"same key in two objects is fine", `{"a":{"k":1},"b":{"k":2}}`, all, nil},
		{"case differs, exact", `{"name":"a","Name":"b"}`, Checks{}, nil},
		{"case differs, folded", `{"name":"a","Name":"b"}`, Checks{FoldCase: true}, &Problem{Kind: DuplicateKey, Path: "Name", Key: "Name"}},
		{"case differs in a nested object", `{"metadata":{"owner":"a","Owner":"b"}}`, Checks{FoldCase: true}, nil},
		{"Kelvin sign folds to k", "{\"k\":1,\"\u212a\":2}", Checks{FoldCase: true}, &Problem{Kind: DuplicateKey, Path: "[\"\u212a\"]", Key: "\u212a"}},
		{"escaped duplicate", `{"name":"a","n\u0061me":"b"}`, Checks{}, &Problem{Kind: DuplicateKey, Path: "name", Key: "name"}},
		{"bidi override in a value", "{\"description\":\"abc\u202edef\"}", all, &Problem{Kind: FormatCharacter, Path: "description", Rune: 0x202E}},
		{"escaped bidi isolate", `{"reason":"x\u2066y"}`, all, &Problem{Kind: FormatCharacter, Path: "reason", Rune: 0x2066}},
		{"zero width space in a key", "{\"a\u200bb\":1}", all, &Problem{Kind: FormatCharacter, Path: `["a\u200bb"]`, Rune: 0x200B}},
		{"format character in a list", "{\"l\":[\"ok\",\"\ufeff\"]}", all, &Problem{Kind: FormatCharacter, Path: "l[1]", Rune: 0xFEFF}},
		{"format characters not asked for", "{\"d\":\"\u202e\"}", Checks{}, nil},
		{"plain non-ASCII", `{"owner":"Zoë Łukasiewicz 山田 🚀"}`, all, nil},
		{"not JSON", `{"name":`, all, nil},
		{"not JSON after a duplicate", `{"a":1,"a":2,`, Checks{}, &Problem{Kind: DuplicateKey, Path: "a", Key: "a"}},
		{"scalar document", `"\u202e"`, all, &Problem{Kind: FormatCharacter, Path: "", Rune: 0x202E}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, JSON([]byte(c.doc), c.checks)); diff != "" {
				t.Errorf("JSON(%s) (-want +got):\n%s", c.doc, diff)
			}
		})
	}
}

func TestYAML(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want *Problem
	}{
		{"clean", "name: a\ndisks:\n  - source: /a\n  - source: /b\n", nil},
		{"top-level duplicate", "name: a\nmemory: {sizeMiB: 512}\nname: b\n", &Problem{Kind: DuplicateKey, Path: "name", Key: "name"}},
		{"nested duplicate", "name: a\ndisks:\n  - source: /a\n    source: /etc/shadow\n", &Problem{Kind: DuplicateKey, Path: "disks[0].source", Key: "source"}},
		{"flow mapping", "kernel: {path: /k, path: /etc/shadow}\n", &Problem{Kind: DuplicateKey, Path: "kernel.path", Key: "path"}},
		{"booleans become the same key", "metadata:\n  yes: a\n  true: b\n", &Problem{Kind: DuplicateKey, Path: "metadata.true", Key: "true"}},
		{"quoted and plain", "name: a\n\"name\": b\n", &Problem{Kind: DuplicateKey, Path: "name", Key: "name"}},
		{"JSON is YAML", `{"name":"a","name":"b"}`, &Problem{Kind: DuplicateKey, Path: "name", Key: "name"}},
		{"a list document", "- a\n- a\n", nil},
		{"not YAML", "name: [a\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, YAML([]byte(c.doc))); diff != "" {
				t.Errorf("YAML(%q) (-want +got):\n%s", c.doc, diff)
			}
		})
	}
}

func TestFormatChar(t *testing.T) {
	for _, r := range []rune{0x00AD, 0x061C, 0x200B, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
		0x2066, 0x2067, 0x2068, 0x2069, 0xFEFF, 0xE0001} {
		if got, ok := FormatChar("a" + string(r) + "b"); !ok || got != r {
			t.Errorf("FormatChar(%U) = %U, %v", r, got, ok)
		}
	}
	for _, s := range []string{"", "plain", "é ß 山 🚀", "\xff\xfe", "tab\there", "\u00ac"} {
		if r, ok := FormatChar(s); ok {
			t.Errorf("FormatChar(%q) = %U; want none", s, r)
		}
	}
	if got := Describe(0x202E); got != "U+202E (RIGHT-TO-LEFT OVERRIDE)" {
		t.Errorf("Describe: %s", got)
	}
	if got := Describe(0x110BD); got != "U+110BD" {
		t.Errorf("Describe: %s", got)
	}
}

func TestProblemMessages(t *testing.T) {
	d := (&Problem{Kind: DuplicateKey, Path: "name", Key: "name"}).Error()
	f := (&Problem{Kind: FormatCharacter, Path: "x", Rune: 0x2067}).Error()
	if !strings.Contains(d, `"name" is given twice`) || !strings.Contains(f, "U+2067 (RIGHT-TO-LEFT ISOLATE)") {
		t.Errorf("messages: %q, %q", d, f)
	}
}

// FuzzJSON: any bytes give a problem or none without panicking; a
// problem's path is where the document says; a document encoding/json
// reads as an object with no duplicate (folded) key has none reported.
func FuzzJSON(f *testing.F) {
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`{"a":[{"b":"\u202e"}]}`))
	f.Add([]byte(`[[[[{"k":{"k":{"k":1,"K":2}}}]]]]`))
	f.Add([]byte(`{"x":`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := JSON(data, Checks{FormatCharacters: true, FoldCase: true})
		if p == nil {
			return
		}
		if p.Kind != DuplicateKey && p.Kind != FormatCharacter {
			t.Fatalf("unknown kind %d", p.Kind)
		}
		if p.Error() == "" {
			t.Fatal("empty message")
		}
		if p.Kind == FormatCharacter {
			if _, ok := FormatChar(string(p.Rune)); !ok {
				t.Fatalf("reported %U is not a format character", p.Rune)
			}
		}
		// A valid document with a duplicate loses a key when read into a
		// map: the report is real.
		var m map[string]any
		if p.Kind == DuplicateKey && p.Path == p.Key && json.Unmarshal(data, &m) == nil {
			if _, ok := m[p.Key]; !ok && foldKey(p.Key) == p.Key {
				t.Fatalf("duplicate %q reported but the decoded object has no such key: %s", p.Key, data)
			}
		}
	})
}

// FuzzYAML: any bytes give a problem or none without panicking; a
// reported duplicate names its key at the end of its path; a document the
// strict YAML reader refuses for a repeated key is reported.
func FuzzYAML(f *testing.F) {
	f.Add([]byte("a: 1\na: 2\n"))
	f.Add([]byte("a: {b: [{c: 1, c: 2}]}\n"))
	f.Add([]byte("a: &x {b: 1}\nc: *x\n"))
	f.Add([]byte("- a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := YAML(data)
		if p != nil && (p.Kind != DuplicateKey || !strings.HasSuffix(p.Path, Join("", p.Key))) {
			t.Fatalf("bad problem %+v", p)
		}
		_, strictErr := yaml.YAMLToJSONStrict(data)
		_, looseErr := yaml.YAMLToJSON(data)
		if p == nil && looseErr == nil && strictErr != nil && strings.Contains(strictErr.Error(), "already set in map") &&
			strings.HasPrefix(strings.TrimSpace(string(data)), "{") == false && isMapping(data) {
			t.Fatalf("the strict reader refuses a repeated key that YAML did not report: %v\n%q", strictErr, data)
		}
	})
}

// isMapping tells whether a YAML document's top is a mapping.
func isMapping(data []byte) bool {
	var m map[string]any
	return yaml.Unmarshal(data, &m) == nil && m != nil
}
