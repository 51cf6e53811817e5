package engineapi

import "time"

// ScrapeCertificateRequest asks the engine for a scrape certificate
// (POST /api/v1/metrics/scrape-certificates): a client certificate of the
// engine CA with which a metrics scraper (Prometheus) reads the agents'
// GET /metrics, and nothing else of theirs.
type ScrapeCertificateRequest struct {
	// Name is the certificate's common name (the scraper's name, such as
	// prometheus): 1-63 letters, digits, '.', '_' or '-'.
	Name string `json:"name"`
	// CSR, when given, is the scraper's PEM certificate request: only its
	// public key is used and no key is answered. Without it, the engine
	// makes the key and answers it (once: the engine keeps no copy).
	CSR string `json:"csr,omitempty"`
}

// ScrapeCertificate is an issued scrape certificate.
type ScrapeCertificate struct {
	Name string `json:"name"`
	// Certificate is the PEM certificate, CA the engine CA's (the agents'
	// certificates are signed by it), Key the PEM private key when the
	// engine made it.
	Certificate string    `json:"certificate"`
	Key         string    `json:"key,omitempty"`
	CA          string    `json:"ca"`
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"`
	Expires     time.Time `json:"expires"`
}

// ScrapeTargets are the agents to scrape, in the format of Prometheus's
// HTTP service discovery (GET /api/v1/metrics/targets): one group per
// enrolled host, its address and its labels (host, cluster, arch).
type ScrapeTargets []ScrapeTargetGroup

// ScrapeTargetGroup is one group of targets with their labels.
type ScrapeTargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}
