package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/enroll"
	"polyvirt/internal/libvirttls"
	"polyvirt/internal/pki"
)

// EnrollmentFile is the record of an agent's enrollment in its data
// directory (which engine, as which host).
const EnrollmentFile = "enrollment.json"

// Enrollment is an agent's enrollment by an engine: the engine's answer
// and the private key the certificate belongs to.
type Enrollment struct {
	enroll.JoinResponse
	// Engine is the engine's URL.
	Engine string `json:"engine"`
	// CAFingerprint is the engine CA's SHA-256 (the token's hash).
	CAFingerprint string `json:"caFingerprint"`
	// Joined is when the engine answered.
	Joined time.Time `json:"joined"`
	// KeyPEM is the agent's private key (never sent, never in the record).
	KeyPEM []byte `json:"-"`
	// LibvirtKeyPEM is the host's libvirt key (never sent, never in the
	// record); its certificate is LibvirtCert.
	LibvirtKeyPEM []byte `json:"-"`
}

// Enroll runs the agent's side of the join protocol (package enroll) in
// memory: it makes a key pair and a certificate request, connects to the
// engine over HTTPS and checks, before sending anything, that the engine's
// certificate chains to the CA whose hash is in the token (and names the
// engine's host), posts the token and the request to /api/v1/join, and
// checks the answer: the CA is the token's, the certificate is for this
// key and signed by that CA. The engine consumes the token; a refused
// token (forged, expired, used) is an error that says which.
func Enroll(ctx context.Context, engineURL, token string, timeout time.Duration) (*Enrollment, error) {
	tok, err := enroll.ParseToken(token)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(engineURL), "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("--engine %q: want https://HOST:PORT", engineURL)
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	csrPEM, keyPEM, err := pki.NewCSR("polyvirt-agent")
	if err != nil {
		return nil, err
	}
	libvirtCSR, libvirtKey, err := pki.NewCSR("polyvirt-libvirt")
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is checked against the token's CA hash below.
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { return verifyEngine(cs, tok.CAHash, host) },
	}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}}
	defer client.CloseIdleConnections()
	body, _ := json.Marshal(enroll.JoinRequest{Token: tok.String(), CSR: string(csrPEM), LibvirtCSR: string(libvirtCSR)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+u.Host+"/api/v1/join", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("join %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("join %s: reading the answer: %w", u.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the engine refused the join: %w", api.FromAnswer(resp.StatusCode, b))
	}
	var jr enroll.JoinResponse
	if err := json.Unmarshal(b, &jr); err != nil {
		return nil, fmt.Errorf("join %s: the answer is not a join response: %v", u.Host, err)
	}
	if err := checkEnrollment(jr, tok.CAHash, keyPEM); err != nil {
		return nil, fmt.Errorf("join %s: %w", u.Host, err)
	}
	if err := checkLibvirtCert(jr, libvirtKey); err != nil {
		return nil, fmt.Errorf("join %s: %w", u.Host, err)
	}
	return &Enrollment{JoinResponse: jr, Engine: "https://" + u.Host, CAFingerprint: tok.CAHash,
		Joined: time.Now().UTC(), KeyPEM: keyPEM, LibvirtKeyPEM: libvirtKey}, nil
}

// verifyEngine accepts the engine when a CA certificate of its chain has
// the token's hash, its certificate chains to that CA for server use, and
// names host.
func verifyEngine(cs tls.ConnectionState, caHash, host string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the engine sent no certificate")
	}
	var ca *x509.Certificate
	for _, c := range cs.PeerCertificates {
		if c.IsCA && enroll.CAHash(c) == caHash {
			ca = c
			break
		}
	}
	if ca == nil {
		return fmt.Errorf("the engine's certificate chain does not hold the CA of the join token (SHA-256 %.16s…): this is not the engine that issued the token", caHash)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("the engine's certificate is not signed by the join token's CA: %v", err)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("the engine's certificate is not valid for %q (it names %s): use one of those names in --engine, or give the engine that name (polyvirt engine cert)",
			host, strings.Join(append(append([]string{}, leaf.DNSNames...), ipStrings(leaf.IPAddresses)...), ", "))
	}
	return nil
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// checkLibvirtCert checks the libvirt certificate of the answer, when the
// engine sent one (an older engine does not): signed by the answer's CA,
// for this key, a libvirt peer's.
func checkLibvirtCert(jr enroll.JoinResponse, keyPEM []byte) error {
	if jr.LibvirtCert == "" {
		return nil
	}
	ca, err := pki.ParseCertificate([]byte(jr.CACert))
	if err != nil {
		return fmt.Errorf("the CA in the answer: %v", err)
	}
	cert, err := pki.ParseCertificate([]byte(jr.LibvirtCert))
	if err != nil {
		return fmt.Errorf("the libvirt certificate in the answer: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the libvirt certificate in the answer: %v", err)
	}
	if !pki.IsLibvirtPeer(cert) {
		return errors.New("the libvirt certificate in the answer is not a libvirt peer's")
	}
	if _, err := tls.X509KeyPair([]byte(jr.LibvirtCert), keyPEM); err != nil {
		return fmt.Errorf("the libvirt certificate in the answer is not for this host's libvirt key: %v", err)
	}
	return nil
}

// checkEnrollment checks the engine's answer: its CA is the token's, the
// certificate is signed by it, for this key, for server and client use.
func checkEnrollment(jr enroll.JoinResponse, caHash string, keyPEM []byte) error {
	ca, err := pki.ParseCertificate([]byte(jr.CACert))
	if err != nil {
		return fmt.Errorf("the CA in the answer: %v", err)
	}
	if enroll.CAHash(ca) != caHash {
		return errors.New("the CA in the answer is not the join token's")
	}
	cert, err := pki.ParseCertificate([]byte(jr.Cert))
	if err != nil {
		return fmt.Errorf("the certificate in the answer: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// A server certificate: the agent serves the engine with it (and
	// cannot use it as a client of another agent).
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("the certificate in the answer: %v", err)
	}
	pair, err := tls.X509KeyPair([]byte(jr.Cert), keyPEM)
	if err != nil {
		return fmt.Errorf("the certificate in the answer is not for this agent's key: %v", err)
	}
	if s, ok := pair.PrivateKey.(crypto.Signer); !ok || s == nil {
		return errors.New("the agent's key cannot sign")
	}
	if jr.HostName == "" || jr.Address == "" {
		return errors.New("the answer names no host")
	}
	return nil
}

// Save writes the enrollment into an agent data directory: ca.pem (the
// engine CA, from now on the only CA whose client certificates the agent
// accepts), agent.pem, agent-key.pem (0600) and enrollment.json. The
// directory is created (0700) when missing.
func (e *Enrollment) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	rec, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"agent-key.pem", e.KeyPEM, 0o600},
		{"agent.pem", []byte(e.Cert), 0o644},
		{"ca.pem", []byte(e.CACert), 0o644},
		{EnrollmentFile, append(rec, '\n'), 0o644},
	} {
		if err := pki.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	if e.LibvirtCert != "" {
		// libvirt's TLS files: what the host's libvirtd serves with (polyvirt
		// agent libvirt-tls points it at them) and presents to others.
		if _, err := libvirttls.Write(filepath.Join(dir, LibvirtPKIDir), []byte(e.CACert), []byte(e.LibvirtCert), e.LibvirtKeyPEM); err != nil {
			return fmt.Errorf("libvirt's TLS files: %w", err)
		}
	}
	return nil
}

// LibvirtPKIDir is the directory of libvirt's TLS files in an agent's data
// directory (migration.pki_dir's default).
const LibvirtPKIDir = "libvirt-pki"

// Join enrolls this agent with an engine (Enroll) and writes the result
// into dataDir (Save). Nothing is written when the engine refuses.
func Join(ctx context.Context, engineURL, token, dataDir string, timeout time.Duration) (*Enrollment, error) {
	if strings.TrimSpace(dataDir) == "" {
		return nil, errors.New("no data directory (--data-dir)")
	}
	e, err := Enroll(ctx, engineURL, token, timeout)
	if err != nil {
		return nil, err
	}
	if err := e.Save(dataDir); err != nil {
		return nil, fmt.Errorf("enrolled as host %s, but writing %s failed (issue a new token and join again): %w", e.HostName, dataDir, err)
	}
	return e, nil
}
