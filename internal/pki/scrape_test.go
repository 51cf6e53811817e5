package pki

import (
	"testing"
	"time"
)

// TestScrapeCertificates: a scrape certificate passes an agent's mutual
// TLS like a client certificate and is told apart by IsScrape; the other
// certificates are not scrape certificates, whatever their request asked.
func TestScrapeCertificates(t *testing.T) {
	ca, err := NewCA("polyvirt test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("agent", []string{"localhost", "127.0.0.1"}, Server, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serverCfg, err := ServerTLS(srv.CertPEM, srv.KeyPEM, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	scrape, err := ca.Issue("prometheus", nil, Scrape, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	csr, key, err := NewCSR("prometheus-2")
	if err != nil {
		t.Fatal(err)
	}
	signed, err := ca.SignCSR(csr, "prometheus-2", nil, Scrape, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue("polyvirt-engine", nil, Client, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		cert, key []byte
		scrape    bool
	}{
		{"issued scrape certificate", scrape.CertPEM, scrape.KeyPEM, true},
		{"scrape certificate from a CSR", signed, key, true},
		{"engine client certificate", client.CertPEM, client.KeyPEM, false},
	} {
		cert, err := ParseCertificate(c.cert)
		if err != nil {
			t.Fatal(err)
		}
		if IsScrape(cert) != c.scrape {
			t.Errorf("%s: IsScrape %v, want %v (OU %v)", c.name, !c.scrape, c.scrape, cert.Subject.OrganizationalUnit)
		}
		clientCfg, err := ClientTLS(c.cert, c.key, ca.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		clientCfg.ServerName = "localhost"
		if err := handshake(t, serverCfg, clientCfg); err != nil {
			t.Errorf("%s: mutual TLS refused: %v", c.name, err)
		}
	}
	if IsScrape(nil) {
		t.Error("IsScrape(nil) is true")
	}
}
