package password

import (
	"strings"
	"testing"
)

// fast keeps the tests quick; the format is the same.
var fast = Params{MemoryKiB: 64, Time: 1, Threads: 1}

func TestHashVerify(t *testing.T) {
	h, err := HashWith("correct horse battery", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q: not the PHC string of argon2id", h)
	}
	h2, _ := HashWith("correct horse battery", fast)
	if h == h2 {
		t.Errorf("two hashes of one password are equal (%q): the salt is not random", h)
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"", false},
		{"correct horse battery ", false},
	} {
		got, err := Verify(tc.pw, h)
		if err != nil || got != tc.want {
			t.Errorf("Verify(%q) = %v, %v; want %v", tc.pw, got, err, tc.want)
		}
	}
}

func TestDefaultHash(t *testing.T) {
	h, err := Hash("a password of some length")
	if err != nil {
		t.Fatal(err)
	}
	p, _, key, err := Parse(h)
	if err != nil || p != Default || len(key) != keyLen {
		t.Errorf("Parse(%q) = %+v, %d-byte key, %v; want %+v", h, p, len(key), err, Default)
	}
	if ok, err := Verify("a password of some length", h); !ok || err != nil {
		t.Errorf("Verify = %v, %v", ok, err)
	}
}

func TestParseRefuses(t *testing.T) {
	good, _ := HashWith("x", fast)
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	for _, tc := range []struct{ in, want string }{
		{"", "want $argon2id$"},
		{"plain", "want $argon2id$"},
		{"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key, `algorithm "argon2i"`},
		{"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key, `version "v=16"`},
		{"$argon2id$v=19$m=64,t=1$" + salt + "$" + key, "want the parameters m, t and p"},
		{"$argon2id$v=19$m=64,t=1,p=1,p=1$" + salt + "$" + key, `parameter "p=1"`},
		{"$argon2id$v=19$m=64,t=1,x=1$" + salt + "$" + key, `unknown parameter "x"`},
		{"$argon2id$v=19$m=99999999,t=1,p=1$" + salt + "$" + key, "memory 99999999 KiB"},
		{"$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key, "time 1000"},
		{"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key, "threads 0"},
		{"$argon2id$v=19$m=64,t=1,p=300$" + salt + "$" + key, "threads 300"},
		{"$argon2id$v=19$m=64,t=1,p=1$!!$" + key, "the salt"},
		{"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA", "the key"},
	} {
		_, _, _, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v; want an error with %q", tc.in, err, tc.want)
		}
		if ok, err := Verify("x", tc.in); ok || err == nil {
			t.Errorf("Verify(x, %q) = %v, %v; want false and an error", tc.in, ok, err)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct{ pw, want string }{
		{"long enough password", ""},
		{"ĉĉĉĉĉĉĉĉĉĉ", ""},
		{"short", "fewer than 10 characters"},
		{" padded password ", "white space"},
		{strings.Repeat("x", MaxBytes+1), "longer than 1024 bytes"},
		{"\xff\xfe invalid utf8", "not valid UTF-8"},
	} {
		err := Check(tc.pw)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Check(%q) = %v; want %q", tc.pw, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	good, _ := HashWith("x", fast)
	f.Add(good)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := Parse(s)
		if err != nil {
			return
		}
		if p.check() != nil || len(salt) < 8 || len(key) < 16 {
			t.Fatalf("Parse(%q) accepted %+v, salt %d, key %d", s, p, len(salt), len(key))
		}
	})
}
