package enroll

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/pki"
)

func TestTokenRoundTrip(t *testing.T) {
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewToken(ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAHash != pki.Fingerprint(ca.Cert) {
		t.Errorf("CA hash %s, want the CA fingerprint %s", tok.CAHash, pki.Fingerprint(ca.Cert))
	}
	got, err := ParseToken("  " + tok.String() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tok, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	sum := sha256.Sum256([]byte(tok.Secret))
	if tok.Hash() != hex.EncodeToString(sum[:]) {
		t.Errorf("Hash is not the SHA-256 of the secret")
	}
	other, _ := NewToken(ca.Cert)
	if other.Secret == tok.Secret || other.Hash() == tok.Hash() {
		t.Errorf("two tokens share a secret")
	}
}

func TestParseTokenRefusals(t *testing.T) {
	secret := strings.Repeat("A", 43)
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"spaces", "   ", "empty"},
		{"two parts", "pvj1." + secret, "three parts"},
		{"four parts", "pvj1." + secret + "." + hash + ".x", "three parts"},
		{"other prefix", "pvj2." + secret + "." + hash, "three parts"},
		{"short secret", "pvj1." + secret[:40] + "." + hash, "secret"},
		{"secret not base64", "pvj1." + strings.Repeat("*", 43) + "." + hash, "secret"},
		{"short hash", "pvj1." + secret + "." + hash[:60], "CA hash has 60"},
		{"hash not hex", "pvj1." + secret + "." + strings.Repeat("zz", 32), "hex"},
		{"upper-case hash", "pvj1." + secret + "." + strings.ToUpper(hash), "lower-case"},
		{"huge", strings.Repeat("x", 300), "not a polyvirt join token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseToken(%.20q) = %v; want an error containing %q", tc.in, err, tc.want)
			}
			if len(tc.in) > 10 && strings.Contains(err.Error(), secret) {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("pvj1." + strings.Repeat("A", 43) + "." + strings.Repeat("ab", 32))
	f.Add("pvj1..")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("a parsed token does not parse back: %q → %+v → %v", s, tok, err)
		}
	})
}
