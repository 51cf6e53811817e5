package client

import (
	"context"

	"polyvirt/internal/api/engineapi"
)

// ScrapeCertificate asks the engine for a scrape certificate named name
// (with csr, a PEM certificate request, only its key is used and no key is
// answered).
func (c *Client) ScrapeCertificate(ctx context.Context, name, csr string) (engineapi.ScrapeCertificate, error) {
	var out engineapi.ScrapeCertificate
	err := c.Do(ctx, "POST", "/metrics/scrape-certificates", nil, engineapi.ScrapeCertificateRequest{Name: name, CSR: csr}, &out)
	return out, err
}

// ScrapeTargets lists the agents to scrape (Prometheus's HTTP service
// discovery format).
func (c *Client) ScrapeTargets(ctx context.Context) (engineapi.ScrapeTargets, error) {
	var out engineapi.ScrapeTargets
	err := c.Do(ctx, "GET", "/metrics/targets", nil, nil, &out)
	return out, err
}
