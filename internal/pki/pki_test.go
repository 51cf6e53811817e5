package pki

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// handshake runs a TLS handshake between a server and a client config over
// loopback TCP (with deadlines) and returns the server's error.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		s := tls.Server(conn, server)
		err = s.Handshake()
		if err == nil {
			_, err = io.ReadFull(s, make([]byte, 1))
		}
		srvErr <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(conn, client)
	if c.Handshake() == nil {
		c.Write([]byte{1})
	}
	c.Close()
	return <-srvErr
}

func TestMutualTLS(t *testing.T) {
	ca, err := NewCA("polyvirt test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("agent", []string{"localhost", "127.0.0.1"}, Server, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Issue("engine", nil, Client, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Issue("intruder", nil, Client, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serverCfg, err := ServerTLS(srv.CertPEM, srv.KeyPEM, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		client *Issued
		ok     bool
	}{
		{"certificate from the CA", cli, true},
		{"no certificate", nil, false},
		{"certificate from another CA", foreign, false},
		// An agent's (server) certificate cannot call another agent.
		{"server certificate used as a client", srv, false},
	}
	for _, c := range cases {
		var certPEM, keyPEM []byte
		if c.client != nil {
			certPEM, keyPEM = c.client.CertPEM, c.client.KeyPEM
		}
		clientCfg, err := ClientTLS(certPEM, keyPEM, ca.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		clientCfg.ServerName = "localhost"
		srvErr := handshake(t, serverCfg, clientCfg)
		if (srvErr == nil) != c.ok {
			t.Errorf("%s: server error %v; want ok=%v", c.name, srvErr, c.ok)
		}
	}
}

func TestSignCSRTakesOnlyTheKey(t *testing.T) {
	ca, err := NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	csr, _, err := NewCSR("i-want-to-be-admin")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignCSR(csr, "host-7", []string{"10.0.0.7"}, Both, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "host-7" || len(cert.IPAddresses) != 1 {
		t.Errorf("subject %q ips %v; want the CA's choice", cert.Subject.CommonName, cert.IPAddresses)
	}
	if _, err := ca.SignCSR([]byte("garbage"), "x", nil, Client, time.Hour); err == nil {
		t.Error("garbage CSR accepted")
	}
	if len(Fingerprint(cert)) != 64 {
		t.Errorf("fingerprint %q", Fingerprint(cert))
	}
}

func TestSaveLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := ca.Save(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	again, err := LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(ca.Cert) {
		t.Error("loaded CA differs")
	}
	leaf, _ := ca.Issue("x", nil, Client, time.Hour)
	if err := WriteFile(filepath.Join(dir, "leaf.pem"), leaf.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(filepath.Join(dir, "leaf.pem"), keyFile); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("a leaf certificate loaded as CA: %v", err)
	}
}
