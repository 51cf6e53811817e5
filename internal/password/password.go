// Package password hashes and checks the passwords users sign in to the
// web UI with: argon2id (golang.org/x/crypto/argon2, RFC 9106) with a
// random salt, stored in the PHC string format
// ($argon2id$v=19$m=19456,t=2,p=1$SALT$HASH) so that a hash keeps its own
// parameters when the defaults change.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's costs.
type Params struct {
	// MemoryKiB is the memory one hash takes, in KiB.
	MemoryKiB uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the parallelism.
	Threads uint8
}

// Default are the costs of new hashes: OWASP's argon2id configuration
// (19 MiB, 2 passes, 1 thread), about 30 ms on one core.
var Default = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

// The bounds of a hash's parameters: a stored hash outside them is refused
// rather than computed (a forged hash must not take the engine's memory).
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
	saltLen      = 16
	keyLen       = 32
)

// The bounds of a password.
const (
	// MinLength is the fewest characters a password has.
	MinLength = 10
	// MaxBytes is the longest password, in bytes.
	MaxBytes = 1024
)

// Check says why a password cannot be used, or nil.
func Check(pw string) error {
	switch {
	case !utf8.ValidString(pw):
		return errors.New("the password is not valid UTF-8")
	case len(pw) > MaxBytes:
		return fmt.Errorf("the password is longer than %d bytes", MaxBytes)
	case utf8.RuneCountInString(pw) < MinLength:
		return fmt.Errorf("the password has fewer than %d characters", MinLength)
	case strings.TrimSpace(pw) != pw:
		return errors.New("the password begins or ends with white space")
	}
	return nil
}

// Hash returns the PHC string of pw with the Default costs and a new salt.
func Hash(pw string) (string, error) {
	return HashWith(pw, Default)
}

// HashWith returns the PHC string of pw with the given costs.
func HashWith(pw string, p Params) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

func (p Params) check() error {
	switch {
	case p.MemoryKiB < 8*uint32(max(p.Threads, 1)) || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB: want %d to %d", p.MemoryKiB, 8*max(p.Threads, 1), maxMemoryKiB)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time %d: want 1 to %d", p.Time, maxTime)
	case p.Threads < 1:
		return errors.New("argon2id threads 0: want at least 1")
	}
	return nil
}

// Verify tells whether pw is the password of the PHC string encoded, in a
// time that does not depend on where they differ. A malformed hash is an
// error naming what is wrong.
func Verify(pw, encoded string) (bool, error) {
	p, salt, key, err := Parse(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// Parse reads a PHC string of argon2id: its costs, salt and key.
func Parse(encoded string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, errors.New("password hash: want $argon2id$v=19$m=M,t=T,p=P$SALT$KEY")
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("password hash: algorithm %q: want argon2id", clip(parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("password hash: version %q: want v=%d", clip(parts[2]), argon2.Version)
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || seen[k] {
			return p, nil, nil, fmt.Errorf("password hash: parameter %q: want m=, t= and p= with numbers, once each", clip(kv))
		}
		seen[k] = true
		switch k {
		case "m":
			p.MemoryKiB = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return p, nil, nil, fmt.Errorf("password hash: threads %d: want at most 255", n)
			}
			p.Threads = uint8(n)
		default:
			return p, nil, nil, fmt.Errorf("password hash: unknown parameter %q", clip(k))
		}
	}
	if len(seen) != 3 {
		return p, nil, nil, errors.New("password hash: want the parameters m, t and p")
	}
	if err := p.check(); err != nil {
		return p, nil, nil, fmt.Errorf("password hash: %v", err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, errors.New("password hash: the salt is not 8 to 64 bytes of unpadded base64")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errors.New("password hash: the key is not 16 to 64 bytes of unpadded base64")
	}
	return p, salt, key, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
