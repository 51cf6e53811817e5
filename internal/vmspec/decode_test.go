package vmspec

import (
	"errors"
	"polyvirt/internal/api"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// violation is what a test expects: a code at a field.
type violation struct{ Code, Field string }

func violations(err error) []violation {
	var es api.Errors
	if !errors.As(err, &es) {
		if err == nil {
			return nil
		}
		return []violation{{"NOT_ERRORS", err.Error()}}
	}
	out := make([]violation, len(es))
	for i, e := range es {
		out[i] = violation{e.Code, e.Field}
	}
	return out
}

func TestDecodeRefusesBadInput(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []violation
	}{
		{"unknown top-level field", "name: a\nbogus: 1\n", []violation{{api.CodeDefinitionUnknownField, "bogus"}}},
		{"unknown nested field", "name: a\ndisks:\n  - source: /a\n  - sise: 3\n", []violation{{api.CodeDefinitionUnknownField, "disks[1].sise"}}},
		{"field in the wrong case", `{"Name": "a"}`, []violation{{api.CodeDefinitionUnknownField, "Name"}}},
		{"snake case", "name: a\nmemory: {size_mib: 3}\n", []violation{{api.CodeDefinitionUnknownField, "memory.size_mib"}}},
		{"string for a number", "name: a\nmemory: {sizeMiB: big}\n", []violation{{api.CodeDefinitionWrongType, "memory.sizeMiB"}}},
		{"fraction for a number", "name: a\nmemory: {sizeMiB: 1.5}\n", []violation{{api.CodeDefinitionWrongType, "memory.sizeMiB"}}},
		{"number too large", `{"name":"a","memory":{"sizeMiB":123456789012345678901234567890}}`, []violation{{api.CodeDefinitionWrongType, "memory.sizeMiB"}}},
		{"int overflow", "name: a\ncpu: {cores: 99999999999}\n", []violation{{api.CodeDefinitionWrongType, "cpu.cores"}}},
		{"boolean for a string", "name: yes\n", []violation{{api.CodeDefinitionWrongType, "name"}}},
		{"list for an object", "name: a\ncpu: [1, 2]\n", []violation{{api.CodeDefinitionWrongType, "cpu"}}},
		{"object for a list", "name: a\ndisks: {source: /a}\n", []violation{{api.CodeDefinitionWrongType, "disks"}}},
		{"string for a bool", "name: a\ndisks: [{source: /a, readOnly: maybe}]\n", []violation{{api.CodeDefinitionWrongType, "disks[0].readOnly"}}},
		{"number for metadata value", "name: a\nmetadata: {owner: 3}\n", []violation{{api.CodeDefinitionWrongType, "metadata.owner"}}},
		{"odd metadata key in path", "name: a\nmetadata: {\"a b\": [1]}\n", []violation{{api.CodeDefinitionWrongType, `metadata["a b"]`}}},
		{"several at once", "name: a\nfoo: 1\ncpu: {cores: x, bar: 2}\n", []violation{
			{api.CodeDefinitionUnknownField, "cpu.bar"}, {api.CodeDefinitionWrongType, "cpu.cores"}, {api.CodeDefinitionUnknownField, "foo"}}},
		{"YAML syntax", "name: [a\n", []violation{{api.CodeDefinitionSyntax, ""}}},
		{"JSON syntax", `{"name": "a",}`, []violation{{api.CodeDefinitionSyntax, ""}}},
		{"two JSON documents", `{"name":"a"} {"name":"b"}`, []violation{{api.CodeDefinitionSyntax, ""}}},
		{"a list document", "- name: a\n", []violation{{api.CodeDefinitionWrongType, ""}}},
		{"a scalar document", "hello\n", []violation{{api.CodeDefinitionWrongType, ""}}},
		{"empty", "  \n", []violation{{api.CodeDefinitionEmpty, ""}}},
		{"null", "null\n", []violation{{api.CodeDefinitionEmpty, ""}}},
		{"YAML key twice", "name: a\nmemory: {sizeMiB: 512}\nname: b\n", []violation{{api.CodeDefinitionDuplicateKey, "name"}}},
		{"YAML nested key twice", "name: a\ndisks:\n  - source: /var/lib/polyvirt/images/a.img\n    source: /etc/shadow\n", []violation{{api.CodeDefinitionDuplicateKey, "disks[0].source"}}},
		{"YAML metadata key twice", "name: a\nmetadata:\n  owner: alice\n  owner: mallory\n", []violation{{api.CodeDefinitionDuplicateKey, "metadata.owner"}}},
		{"JSON key twice", `{"name":"a","kernel":{"path":"/boot/k","path":"/etc/shadow"}}`, []violation{{api.CodeDefinitionDuplicateKey, "kernel.path"}}},
		{"JSON key twice, escaped", `{"name":"a","n\u0061me":"b"}`, []violation{{api.CodeDefinitionDuplicateKey, "name"}}},
		{"too large", "name: a\n#" + strings.Repeat("x", MaxDefinitionBytes), []violation{{api.CodeDefinitionTooLarge, ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vm, err := Decode([]byte(c.in))
			if vm != nil {
				t.Errorf("got a definition %+v", vm)
			}
			if diff := cmp.Diff(c.want, violations(err)); diff != "" {
				t.Errorf("(-want +got):\n%s\nerror: %v", diff, err)
			}
			var es api.Errors
			if errors.As(err, &es) {
				for _, e := range es {
					if e.Message == "" || strings.ContainsAny(e.Message, "\n") && e.Code != api.CodeDefinitionSyntax {
						t.Errorf("message of %s: %q", e.Code, e.Message)
					}
				}
			}
		})
	}
}

func TestDecodeHints(t *testing.T) {
	_, err := Decode([]byte(`{"name":"a","Memory":{}}`))
	if err == nil || !strings.Contains(err.Error(), `did you mean "memory"?`) {
		t.Errorf("no hint for a field in the wrong case: %v", err)
	}
	_, err = Decode([]byte("name: on\n"))
	if err == nil || !strings.Contains(err.Error(), "quote it") {
		t.Errorf("no hint about YAML booleans: %v", err)
	}
	_, err = Decode([]byte("{\n\"name\": \"a\",\n}"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("no line in a JSON syntax error: %v", err)
	}
}

func TestYAMLAndJSONDecodeAlike(t *testing.T) {
	yml := `
name: same
arch: ppc64le
cpu: {cores: 2, model: POWER9}
memory: {sizeMiB: 2048}
disks:
  - {source: /img/a.qcow2, bootOrder: 1}
  - {device: cdrom}
nics: [{model: spapr-vlan, mac: "52:54:00:00:00:01"}]
display: {type: vnc}
metadata: {owner: alice}
`
	js := `{"name":"same","arch":"ppc64le","cpu":{"cores":2,"model":"POWER9"},"memory":{"sizeMiB":2048},
"disks":[{"source":"/img/a.qcow2","bootOrder":1},{"device":"cdrom"}],
"nics":[{"model":"spapr-vlan","mac":"52:54:00:00:00:01"}],"display":{"type":"vnc"},"metadata":{"owner":"alice"}}`
	a, err := Decode([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("YAML and JSON differ (-yaml +json):\n%s", diff)
	}
	want := &VM{Name: "same", Arch: "ppc64le", CPU: &CPU{Cores: 2, Model: "POWER9"}, Memory: &Memory{SizeMiB: 2048},
		Disks:    []Disk{{Source: "/img/a.qcow2", BootOrder: 1}, {Device: "cdrom"}},
		NICs:     []NIC{{Model: "spapr-vlan", MAC: "52:54:00:00:00:01"}},
		Display:  &Display{Type: "vnc"},
		Metadata: map[string]string{"owner": "alice"}}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecodeNullsAndExponents(t *testing.T) {
	vm, err := Decode([]byte(`{"name":"a","cpu":null,"memory":{"sizeMiB":1024}}`))
	if err != nil {
		t.Fatal(err)
	}
	if vm.CPU != nil || vm.Memory.SizeMiB != 1024 {
		t.Errorf("got %+v %+v", vm.CPU, vm.Memory)
	}
	_, err = Decode([]byte(`{"name":"a","memory":{"sizeMiB":1e3}}`))
	if diff := cmp.Diff([]violation{{api.CodeDefinitionWrongType, "memory.sizeMiB"}}, violations(err)); diff != "" {
		t.Errorf("an exponent must be refused (-want +got):\n%s", diff)
	}
}
