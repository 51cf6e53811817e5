package pki

import (
	"crypto/x509"
	"slices"
)

// ScrapeUnit is the organizational unit of the scrape certificates
// (Usage Scrape): their holder may read an agent's metrics, nothing else.
const ScrapeUnit = "polyvirt-metrics-scrape"

// IsScrape tells whether a client certificate is a scrape certificate:
// one that may read metrics only.
func IsScrape(cert *x509.Certificate) bool {
	return cert != nil && slices.Contains(cert.Subject.OrganizationalUnit, ScrapeUnit)
}
