package vmspec

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"

	"polyvirt/internal/api"
	"polyvirt/internal/strictdoc"
)

// String limits, in bytes.
const (
	maxString     = 1024
	maxPath       = 4096
	maxLongString = 4096
	maxText       = 16384
	maxMetadata   = 64
)

// checkStrings walks every string of the definition: none may hold bytes
// that are not UTF-8, characters XML cannot carry, control characters
// (newlines and tabs are allowed in metadata values only) or Unicode
// format characters (bidi overrides, zero-width characters: text that
// reads other than it is), and each has a length limit. Path fields (tag
// vm:"path") are reported as PATH_INVALID.
func checkStrings(v reflect.Value, path, kind string, errs *api.Errors) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			checkStrings(v.Elem(), path, kind, errs)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			checkStrings(v.Field(i), join(path, name), f.Tag.Get("vm"), errs)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			checkStrings(v.Index(i), fmt.Sprintf("%s[%d]", path, i), kind, errs)
		}
	case reflect.Map:
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		for _, k := range keys {
			checkString(k, mapPath(path, k)+" (key)", "", errs)
			checkString(v.MapIndex(reflect.ValueOf(k)).String(), mapPath(path, k), kind, errs)
		}
	case reflect.String:
		checkString(v.String(), path, kind, errs)
	}
}

func checkString(s, field, kind string, errs *api.Errors) {
	limit := maxString
	switch kind {
	case "path":
		limit = maxPath
	case "long":
		limit = maxLongString
	case "text":
		limit = maxText
	}
	if len(s) > limit {
		errs.Add(api.CodeTooLong, field, "the value is %d bytes long; keep it under %d", len(s), limit)
		return
	}
	if bad, what := badRune(s, kind == "text"); bad {
		code := api.CodeControlChars
		if kind == "path" {
			code = api.CodePathInvalid
		}
		errs.Add(code, field, "the value holds %s; remove it", what)
		return
	}
	if r, ok := strictdoc.FormatChar(s); ok {
		code := api.CodeFormatChars
		if kind == "path" {
			code = api.CodePathInvalid
		}
		errs.Add(code, field, "the value holds the invisible format character %s, which changes how the text is shown; remove it", strictdoc.Describe(r))
	}
}

// badRune finds the first character that may not appear: invalid UTF-8,
// a character XML 1.0 cannot carry, or a control character.
func badRune(s string, text bool) (bool, string) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return true, fmt.Sprintf("a byte that is not UTF-8 at offset %d", i)
		}
		i += size
		switch {
		case r == '\n' && !text:
			return true, "a newline"
		case r == '\t' && !text:
			return true, "a tab"
		case r == '\n' || r == '\t':
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			return true, fmt.Sprintf("the control character %U", r)
		case r == 0xFFFE || r == 0xFFFF:
			return true, fmt.Sprintf("the non-character %U", r)
		}
	}
	return false, ""
}
