package vmspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"polyvirt/internal/api"
	"polyvirt/internal/strictdoc"
)

// MaxDefinitionBytes bounds the size of one definition file.
const MaxDefinitionBytes = 1 << 20

// Decode reads a definition in YAML or JSON (JSON is YAML too; a document
// that starts with '{' is read as JSON directly). Decoding is strict: a
// key given twice in one object is refused (DEFINITION_DUPLICATE_KEY; the
// last one would silently win), and unknown fields (matched
// case-sensitively) and values of the wrong type are reported with their
// field path, all of them at once. The error is always of type Errors.
func Decode(data []byte) (*VM, error) {
	if len(data) > MaxDefinitionBytes {
		return nil, api.Errors{{Code: api.CodeDefinitionTooLarge, Message: fmt.Sprintf(
			"the definition is %d bytes; keep it under %d", len(data), MaxDefinitionBytes)}}
	}
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if len(trimmed) == 0 {
		return nil, api.Errors{{Code: api.CodeDefinitionEmpty, Message: "the definition is empty; give at least a name"}}
	}
	js := trimmed
	if trimmed[0] != '{' {
		var err error
		js, err = yaml.YAMLToJSON(trimmed)
		if err != nil {
			return nil, api.Errors{{Code: api.CodeDefinitionSyntax, Message: "not valid YAML: " + cleanYAMLError(err)}}
		}
		if p := strictdoc.YAML(trimmed); p != nil {
			return nil, api.Errors{{Code: api.CodeDefinitionDuplicateKey, Field: p.Path, Message: p.Error()}}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, api.Errors{{Code: api.CodeDefinitionSyntax, Message: "not valid JSON: " + describeJSONError(js, err)}}
	}
	if dec.More() {
		return nil, api.Errors{{Code: api.CodeDefinitionSyntax, Message: "more than one document; give one VM per file"}}
	}
	if trimmed[0] == '{' { // YAML was checked above
		if p := strictdoc.JSON(js, strictdoc.Checks{}); p != nil {
			return nil, api.Errors{{Code: api.CodeDefinitionDuplicateKey, Field: p.Path, Message: p.Error()}}
		}
	}
	if tree == nil {
		return nil, api.Errors{{Code: api.CodeDefinitionEmpty, Message: "the definition is empty; give at least a name"}}
	}
	var errs api.Errors
	checkShape(tree, reflect.TypeOf(VM{}), "", &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	vm := new(VM)
	strict := json.NewDecoder(bytes.NewReader(js))
	strict.DisallowUnknownFields()
	if err := strict.Decode(vm); err != nil {
		// checkShape should have caught it; report what encoding/json says.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, api.Errors{{Code: api.CodeDefinitionWrongType, Field: te.Field, Message: fmt.Sprintf("expected %s, got %s", te.Type, te.Value)}}
		}
		return nil, api.Errors{{Code: api.CodeDefinitionSyntax, Message: err.Error()}}
	}
	return vm, nil
}

// DecodeFile reads and decodes a definition file ("-" reads standard
// input).
func DecodeFile(path string) (*VM, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = readLimited(os.Stdin)
	} else {
		var f *os.File
		f, err = os.Open(path)
		if err == nil {
			data, err = readLimited(f)
			f.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

func readLimited(f *os.File) ([]byte, error) {
	return io.ReadAll(io.LimitReader(f, MaxDefinitionBytes+1))
}

// checkShape walks the decoded JSON tree beside the Go type and reports
// every unknown field and every value of the wrong type with its path.
func checkShape(v any, t reflect.Type, path string, errs *api.Errors) {
	if v == nil { // null: the field stays empty
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			wrongType(path, "an object (key: value pairs)", v, errs)
			return
		}
		fields := structFields(t)
		for _, k := range sortedKeys(obj) {
			sub := join(path, k)
			f, ok := fields[k]
			if !ok {
				msg := fmt.Sprintf("unknown field %q", k)
				if hint := closest(k, fields); hint != "" {
					msg += fmt.Sprintf("; did you mean %q?", hint)
				} else {
					msg += "; known fields: " + strings.Join(sortedKeysOf(fields), ", ")
				}
				*errs = append(*errs, &api.Error{Code: api.CodeDefinitionUnknownField, Field: sub, Message: msg})
				continue
			}
			checkShape(obj[k], f, sub, errs)
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			wrongType(path, "a list", v, errs)
			return
		}
		for i, x := range list {
			checkShape(x, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			wrongType(path, "an object (key: value pairs)", v, errs)
			return
		}
		for _, k := range sortedKeys(obj) {
			checkShape(obj[k], t.Elem(), mapPath(path, k), errs)
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			hint := "a string"
			if _, isBool := v.(bool); isBool {
				hint = "a string (quote it: YAML reads yes/no/on/off as booleans)"
			}
			wrongType(path, hint, v, errs)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			wrongType(path, "true or false", v, errs)
		}
	case reflect.Int, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			wrongType(path, "a whole number", v, errs)
			return
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			if _, ferr := strconv.ParseFloat(n.String(), 64); ferr == nil && !strings.ContainsAny(n.String(), ".eE") {
				*errs = append(*errs, &api.Error{Code: api.CodeDefinitionWrongType, Field: path, Message: fmt.Sprintf("the number %s is too large", n)})
				return
			}
			*errs = append(*errs, &api.Error{Code: api.CodeDefinitionWrongType, Field: path, Message: fmt.Sprintf("expected a whole number written with digits only, got %s", n)})
			return
		}
		if t.Kind() == reflect.Int && (i > 1<<31-1 || i < -(1<<31)) {
			*errs = append(*errs, &api.Error{Code: api.CodeDefinitionWrongType, Field: path, Message: fmt.Sprintf("the number %s is too large", n)})
		}
	default:
		*errs = append(*errs, &api.Error{Code: api.CodeDefinitionWrongType, Field: path, Message: "unsupported field type " + t.String()})
	}
}

func wrongType(path, want string, got any, errs *api.Errors) {
	*errs = append(*errs, &api.Error{Code: api.CodeDefinitionWrongType, Field: path,
		Message: fmt.Sprintf("expected %s, got %s", want, describe(got))})
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return "the string " + strconv.Quote(x)
	case bool:
		return "the boolean " + strconv.FormatBool(x)
	case json.Number:
		return "the number " + x.String()
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// structFields maps the JSON names of a definition type's fields to their
// types.
func structFields(t reflect.Type) map[string]reflect.Type { return fieldCache[t] }

// fieldCache is filled at init for the definition's types, so that
// concurrent decoding only reads it.
var fieldCache = func() map[reflect.Type]map[string]reflect.Type {
	c := map[reflect.Type]map[string]reflect.Type{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		if _, ok := c[t]; ok {
			return
		}
		m := make(map[string]reflect.Type, t.NumField())
		c[t] = m
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			m[name] = f.Type
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(VM{}))
	return c
}()

func closest(k string, fields map[string]reflect.Type) string {
	for name := range fields {
		if strings.EqualFold(name, k) || strings.EqualFold(strings.ReplaceAll(name, "_", ""), strings.ReplaceAll(strings.ReplaceAll(k, "_", ""), "-", "")) {
			return name
		}
	}
	return ""
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeysOf(m map[string]reflect.Type) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func join(path, k string) string {
	if !isIdent(k) {
		return mapPath(path, k)
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// mapPath names a map entry: metadata.owner, or metadata["odd key"].
func mapPath(path, k string) string {
	if isIdent(k) {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	return path + "[" + strconv.Quote(k) + "]"
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

// describeJSONError adds the line and column to a JSON syntax error.
func describeJSONError(js []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset <= int64(len(js)) {
		line := 1 + bytes.Count(js[:se.Offset], []byte("\n"))
		col := se.Offset - int64(bytes.LastIndexByte(js[:se.Offset], '\n'))
		return fmt.Sprintf("%v (line %d, column %d)", se, line, col)
	}
	return err.Error()
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	return strings.TrimPrefix(s, "yaml: ")
}
