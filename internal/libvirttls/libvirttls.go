// Package libvirttls sets up libvirt's own TLS on a host, with the
// certificate the engine's CA gave the host when its agent joined (a
// pki.LibvirtPeer certificate): the files libvirtd and QEMU read, the
// settings of libvirtd.conf and qemu.conf that make libvirtd listen for TLS
// only from other hosts' libvirt certificates, and a TLS front that serves
// libvirt's TLS port for a libvirtd that cannot listen itself (one shared
// with others, as on the lab's machine).
//
// The libvirt daemons of two hosts talk over this TLS when a VM migrates
// (peer to peer: the source's daemon connects to the destination's with
// the source host's certificate). Plain TCP is never configured.
package libvirttls

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"polyvirt/internal/pki"
)

// Files is a directory of libvirt's TLS files: libvirt's names for the CA,
// the server and the client side (the same certificate serves both), and
// in qemu/ QEMU's names for an encrypted migration stream. The directory
// is a client's pkipath as it is.
type Files struct {
	Dir string
}

// The file names libvirt and QEMU read.
const (
	CACertFile     = "cacert.pem"
	ServerCertFile = "servercert.pem"
	ServerKeyFile  = "serverkey.pem"
	ClientCertFile = "clientcert.pem"
	ClientKeyFile  = "clientkey.pem"
	QEMUSubdir     = "qemu"
)

// CACert, ServerCert and ServerKey are the files libvirtd serves with.
func (f Files) CACert() string     { return filepath.Join(f.Dir, CACertFile) }
func (f Files) ServerCert() string { return filepath.Join(f.Dir, ServerCertFile) }
func (f Files) ServerKey() string  { return filepath.Join(f.Dir, ServerKeyFile) }

// PKIPath is the directory a libvirt client (the source's libvirtd) reads
// its certificate from: the pkipath of its destination URIs.
func (f Files) PKIPath() string { return f.Dir }

// QEMUDir is QEMU's x509 directory for encrypted migration streams.
func (f Files) QEMUDir() string { return filepath.Join(f.Dir, QEMUSubdir) }

// Exists tells whether the files were written.
func (f Files) Exists() bool {
	for _, p := range []string{f.CACert(), f.ServerCert(), f.ServerKey(), filepath.Join(f.Dir, ClientKeyFile)} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Write lays out the files in dir from the CA certificate and the host's
// libvirt certificate and key (PEM), each written atomically; keys are
// 0600. The certificate must be a pki.LibvirtPeer one: libvirtd refuses a
// certificate whose key usage lacks key encipherment, and the peers'
// allowed list asks for its organizational unit.
func Write(dir string, caPEM, certPEM, keyPEM []byte) (Files, error) {
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return Files{}, fmt.Errorf("libvirt certificate: %w", err)
	}
	if !pki.IsLibvirtPeer(cert) {
		return Files{}, fmt.Errorf("the certificate of %q is not a libvirt certificate (organizational unit %s)", cert.Subject.CommonName, pki.LibvirtUnit)
	}
	if _, err := pki.CertPool(caPEM); err != nil {
		return Files{}, fmt.Errorf("CA certificate: %w", err)
	}
	f := Files{Dir: dir}
	q := f.QEMUDir()
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.CACert(), caPEM, 0o644},
		{f.ServerCert(), certPEM, 0o644},
		{f.ServerKey(), keyPEM, 0o600},
		{filepath.Join(dir, ClientCertFile), certPEM, 0o644},
		{filepath.Join(dir, ClientKeyFile), keyPEM, 0o600},
		{filepath.Join(q, "ca-cert.pem"), caPEM, 0o644},
		{filepath.Join(q, "server-cert.pem"), certPEM, 0o644},
		{filepath.Join(q, "server-key.pem"), keyPEM, 0o600},
		{filepath.Join(q, "client-cert.pem"), certPEM, 0o644},
		{filepath.Join(q, "client-key.pem"), keyPEM, 0o600},
	} {
		if err := pki.WriteFile(w.path, w.data, w.mode); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// AllowedPeers is libvirtd's tls_allowed_dn_list entry: a client
// certificate's distinguished name must name the libvirt unit (the
// engine's CA signs only host names as common names).
const AllowedPeers = "*OU=" + pki.LibvirtUnit + ",*"

// Setting is one key = value of a libvirt configuration file. Value is
// written as libvirt's syntax wants it: a string quoted, a number bare, a
// list of strings in brackets.
type Setting struct {
	Key   string
	Value any
}

func (s Setting) String() string {
	switch v := s.Value.(type) {
	case int:
		return fmt.Sprintf("%s = %d", s.Key, v)
	case []string:
		q := make([]string, len(v))
		for i, e := range v {
			q[i] = strconv.Quote(e)
		}
		return fmt.Sprintf("%s = [ %s ]", s.Key, strings.Join(q, ", "))
	}
	return fmt.Sprintf("%s = %s", s.Key, strconv.Quote(fmt.Sprint(s.Value)))
}

// Listen is where libvirtd listens for TLS.
type Listen struct {
	// Addr is the address ("" or 0.0.0.0: every address).
	Addr string
	// Port is the TLS port (0: libvirt's 16514).
	Port int
}

// DefaultPort is libvirt's TLS port.
const DefaultPort = 16514

// DaemonSettings are libvirtd.conf's settings for TLS with f: listen for
// TLS (never plain TCP), with f's certificate, accepting only other hosts'
// libvirt certificates.
func DaemonSettings(f Files, l Listen) []Setting {
	port := l.Port
	if port == 0 {
		port = DefaultPort
	}
	s := []Setting{
		{"listen_tls", 1},
		{"listen_tcp", 0},
		{"tls_port", strconv.Itoa(port)},
	}
	if l.Addr != "" {
		s = append(s, Setting{"listen_addr", l.Addr})
	}
	return append(s,
		Setting{"key_file", f.ServerKey()},
		Setting{"cert_file", f.ServerCert()},
		Setting{"ca_file", f.CACert()},
		Setting{"tls_no_verify_certificate", 0},
		Setting{"tls_allowed_dn_list", []string{AllowedPeers}},
	)
}

// QEMUSettings are qemu.conf's settings for encrypted migration streams:
// QEMU's x509 directory, with the peer's certificate checked.
func QEMUSettings(f Files) []Setting {
	return []Setting{
		{"migrate_tls_x509_cert_dir", f.QEMUDir()},
		{"migrate_tls_x509_verify", 1},
	}
}

// The markers of the block Configure manages.
const (
	blockBegin = "# BEGIN polyvirt: libvirt TLS (written by polyvirt; changes inside are replaced)"
	blockEnd   = "# END polyvirt"
)

// Configure writes settings into a libvirt configuration file as one block
// of its own (replacing the block of an earlier run; the rest of the file
// is kept as it is), atomically. A setting also made outside the block is
// an error naming its line: libvirt would read one of the two. It tells
// whether the file changed (libvirtd must then be restarted).
func Configure(path string, settings []Setting) (bool, error) {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	keys := map[string]bool{}
	for _, s := range settings {
		keys[s.Key] = true
	}
	var kept []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == blockBegin:
			in = true
			continue
		case in && strings.TrimSpace(line) == blockEnd:
			in = false
			continue
		case in:
			continue
		}
		if k, ok := settingKey(line); ok && keys[k] {
			return false, fmt.Errorf("%s:%d sets %s, which polyvirt sets for libvirt's TLS: remove (or comment out) that line and run again", path, n, k)
		}
		kept = append(kept, line)
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("%s: %v", path, err)
	}
	if in {
		return false, fmt.Errorf("%s: the polyvirt block has no end line %q", path, blockEnd)
	}
	for len(kept) > 0 && strings.TrimSpace(kept[len(kept)-1]) == "" {
		kept = kept[:len(kept)-1]
	}
	var b strings.Builder
	for _, l := range kept {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if len(kept) > 0 {
		b.WriteByte('\n')
	}
	b.WriteString(blockBegin + "\n")
	for _, s := range settings {
		b.WriteString(s.String() + "\n")
	}
	b.WriteString(blockEnd + "\n")
	if b.String() == string(old) {
		return false, nil
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	return true, pki.WriteFile(path, []byte(b.String()), mode)
}

// settingKey returns the key a line of a libvirt configuration file sets.
func settingKey(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") {
		return "", false
	}
	k, _, ok := strings.Cut(t, "=")
	if !ok {
		return "", false
	}
	return strings.TrimSpace(k), true
}
