package store

import (
	"strings"
	"testing"
)

func TestSplitPassword(t *testing.T) {
	tests := []struct {
		in, clean, password string
	}{
		{"postgres://polyvirt:s3cret@db:5432/polyvirt?sslmode=disable", "postgres://polyvirt@db:5432/polyvirt?sslmode=disable", "s3cret"},
		{"postgresql://u:p%40ss%2Fw@db/x", "postgresql://u@db/x", "p@ss/w"},
		{"postgres://u:p@ss@db/x", "postgres://u@db/x", "p@ss"},
		{"postgres://u@db/x?sslmode=require&password=qw%26e&application_name=a", "postgres://u@db/x?sslmode=require&application_name=a", "qw&e"},
		{"postgres://u@db/x?password=only", "postgres://u@db/x", "only"},
		{"postgres://u:@db/x", "postgres://u@db/x", ""},
		{"postgres://u@db/x", "postgres://u@db/x", ""},
		{"postgres://db", "postgres://db", ""},
		{"postgres://u:pw@db", "postgres://u@db", "pw"},
		{"/var/lib/polyvirt/engine/polyvirt.db", "/var/lib/polyvirt/engine/polyvirt.db", ""},
		{"sqlite:/tmp/x.db", "sqlite:/tmp/x.db", ""},
	}
	for _, tc := range tests {
		clean, pw := SplitPassword(tc.in)
		if clean != tc.clean || pw != tc.password {
			t.Errorf("SplitPassword(%q) = %q, %q; want %q, %q", tc.in, clean, pw, tc.clean, tc.password)
		}
		if HasPassword(tc.in) != (tc.password != "") {
			t.Errorf("HasPassword(%q) = %v", tc.in, HasPassword(tc.in))
		}
		if r := redact(tc.in); tc.password != "" && strings.Contains(r, tc.password) {
			t.Errorf("redact(%q) = %q shows the password", tc.in, r)
		}
	}
}

// FuzzSplitPassword: any text; splitting the clean URL again finds no
// password, the clean URL is never longer, and nothing panics.
func FuzzSplitPassword(f *testing.F) {
	for _, s := range []string{"postgres://u:pw@h/db?password=x", "postgres://@/?&=", "a://:@", "postgres://u:p%zz@h", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		clean, pw := SplitPassword(in)
		if again, pw2 := SplitPassword(clean); pw2 != "" {
			t.Errorf("SplitPassword(%q) = %q, %q: a password is left (%q in %q)", in, clean, pw, pw2, again)
		}
		if len(clean) > len(in) {
			t.Errorf("SplitPassword(%q) = %q: longer", in, clean)
		}
	})
}
