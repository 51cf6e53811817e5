// Package enroll is the enrollment (join) protocol between an engine and a
// host agent: the one-time join token, and the request and answer of the
// engine's unauthenticated POST /api/v1/join. It depends on the standard
// library only, so that the agent can use it without the engine.
//
// A join token is "pvj1.<secret>.<ca-hash>":
//
//   - secret: 32 random bytes, unpadded URL-safe base64 (43 characters);
//     the engine stores only its SHA-256 (Token.Hash);
//   - ca-hash: the hex SHA-256 of the engine CA certificate (DER), like
//     kubeadm's discovery hash: the agent checks the engine's TLS chain
//     against it before it sends anything, so a token cannot be replayed to
//     an impostor, and it learns the CA to trust without another channel.
//
// The agent sends the token and a certificate request (its key never
// leaves it); the engine checks the token (known, not expired, not used:
// it is consumed atomically), signs the request for the host's name and
// address, and answers with the certificate and the engine CA.
package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// TokenPrefix starts every join token: the format's version.
const TokenPrefix = "pvj1"

// secretBytes is the length of a token's secret before encoding.
const secretBytes = 32

// Token is a parsed join token.
type Token struct {
	// Secret is the random part (URL-safe base64).
	Secret string
	// CAHash is the hex SHA-256 of the engine CA certificate's DER.
	CAHash string
}

// NewToken makes a token for the engine whose CA certificate is ca.
func NewToken(ca *x509.Certificate) (Token, error) {
	if ca == nil {
		return Token{}, errors.New("join token: no CA certificate")
	}
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Token{}, fmt.Errorf("join token: %w", err)
	}
	return Token{Secret: base64.RawURLEncoding.EncodeToString(b[:]), CAHash: CAHash(ca)}, nil
}

// String is the token as given to the agent.
func (t Token) String() string { return TokenPrefix + "." + t.Secret + "." + t.CAHash }

// Hash is what the engine stores and looks the token up by: the hex
// SHA-256 of the secret (the same function as store.HashToken).
func (t Token) Hash() string {
	sum := sha256.Sum256([]byte(t.Secret))
	return hex.EncodeToString(sum[:])
}

// CAHash is the hex SHA-256 of a certificate's DER (pki.Fingerprint).
func CAHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ParseToken reads a join token, surrounding space ignored. The error says
// which part is wrong and never repeats the secret.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, errors.New("join token is empty")
	}
	if len(s) > 256 {
		return Token{}, fmt.Errorf("join token is %d characters long: not a polyvirt join token", len(s))
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != TokenPrefix {
		return Token{}, fmt.Errorf("join token: want %s.<secret>.<ca-hash> (three parts separated by dots)", TokenPrefix)
	}
	secret, hash := parts[1], parts[2]
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) != secretBytes {
		return Token{}, errors.New("join token: the secret is not 32 bytes of URL-safe base64 (was the token cut or changed?)")
	}
	if len(hash) != 2*sha256.Size {
		return Token{}, fmt.Errorf("join token: the CA hash has %d characters, want %d hex digits", len(hash), 2*sha256.Size)
	}
	if _, err := hex.DecodeString(hash); err != nil || strings.ToLower(hash) != hash {
		return Token{}, errors.New("join token: the CA hash is not lower-case hex")
	}
	return Token{Secret: secret, CAHash: hash}, nil
}

// JoinRequest is the body of POST /api/v1/join.
type JoinRequest struct {
	// Token is the join token ("pvj1....").
	Token string `json:"token"`
	// CSR is the agent's PEM certificate request. The engine takes only the
	// public key from it: the names come from the host record.
	CSR string `json:"csr"`
	// LibvirtCSR is the PEM certificate request of the host's libvirt key
	// (libvirt's own TLS between hosts, for migrations); optional.
	LibvirtCSR string `json:"libvirtCsr,omitempty"`
}

// JoinResponse answers a successful join.
type JoinResponse struct {
	// HostID and HostName identify the host in the engine; HostName is the
	// agent's host id (--host-id).
	HostID   string `json:"hostId"`
	HostName string `json:"hostName"`
	// Address is the HOST:PORT the engine calls the agent at (--listen).
	Address string `json:"address"`
	// Cluster names the host's cluster.
	Cluster string `json:"cluster"`
	// CACert is the engine CA (PEM): the only CA whose client certificates
	// the agent accepts from now on.
	CACert string `json:"caCert"`
	// Cert is the agent's certificate (PEM), signed by the engine CA for
	// HostName and the address's host, for server and client use.
	Cert string `json:"cert"`
	// CertFingerprint is the certificate's SHA-256 (hex), as the engine
	// recorded it.
	CertFingerprint string `json:"certFingerprint"`
	// LibvirtCert is the host's libvirt certificate (PEM), signed by the
	// engine CA for the same names, for server and client use with the
	// libvirt unit (pki.LibvirtPeer), when the request had a LibvirtCSR:
	// libvirtd serves other hosts with it and presents it to them.
	LibvirtCert string `json:"libvirtCert,omitempty"`
}
