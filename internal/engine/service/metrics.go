package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/pki"
	"polyvirt/internal/store"
)

// Metrics is what the engine's metrics read when they are scraped (how
// many hosts and VMs, per cluster, architecture and status), the agents
// to scrape (Prometheus's HTTP service discovery) and the scrape
// certificates that let a scraper read the agents' metrics.
type Metrics struct{ e *engine }

// Inventory counts the hosts and the VMs.
type Inventory struct {
	Hosts []HostCount
	VMs   []VMCount
	// Leader tells whether this engine leads the monitoring.
	Leader bool
}

// HostCount is how many hosts of a cluster, of an architecture, have a
// status.
type HostCount struct {
	Cluster string
	// Arch is arch.Unknown for the hosts not enrolled or not read yet.
	Arch   arch.Arch
	Status string
	N      int
}

// VMCount is how many VMs of a cluster, of an architecture, are in a
// state.
type VMCount struct {
	Cluster string
	Arch    arch.Arch
	State   string
	N       int
}

// Inventory counts the hosts (from the list the API serves, at most about
// a second old) and the VMs (a brief list; each VM's architecture from
// its definition, kept per version).
func (s *Metrics) Inventory(ctx context.Context) (Inventory, error) {
	e := s.e
	inv := Inventory{Leader: e.leader.Load()}
	snap, err := e.hosts.get(ctx, e)
	if err != nil {
		return inv, coded(err)
	}
	type hkey struct {
		cluster string
		arch    arch.Arch
		status  string
	}
	hosts := map[hkey]int{}
	for _, h := range snap.views {
		hosts[hkey{h.Cluster, h.Arch, h.Status}]++
	}
	for k, n := range hosts {
		inv.Hosts = append(inv.Hosts, HostCount{Cluster: k.cluster, Arch: k.arch, Status: k.status, N: n})
	}
	vms, err := e.st.ListVMs(ctx, store.VMFilter{Brief: true})
	if err != nil {
		return inv, coded(err)
	}
	if err := e.vms.knowArches(ctx, vms); err != nil {
		return inv, coded(err)
	}
	names, err := e.clusterNames(ctx)
	if err != nil {
		return inv, coded(err)
	}
	type vkey struct {
		cluster string
		arch    arch.Arch
		state   string
	}
	counts := map[vkey]int{}
	for _, v := range vms {
		a := arch.Unknown
		if x, ok := e.vms.sizes.Load(v.ID); ok && x.(sizeEntry).version == v.Version {
			a = x.(sizeEntry).sizes.Arch
		}
		counts[vkey{names[v.ClusterID], a, string(v.State)}]++
	}
	for k, n := range counts {
		inv.VMs = append(inv.VMs, VMCount{Cluster: k.cluster, Arch: k.arch, State: k.state, N: n})
	}
	return inv, nil
}

// knowArches makes sure the sizes (the architecture among them) of every
// VM of a brief list are kept for their versions: a few missing ones are
// read one by one, many with one full list.
func (s *vmService) knowArches(ctx context.Context, vms []store.VM) error {
	var missing []string
	for _, v := range vms {
		if x, ok := s.sizes.Load(v.ID); !ok || x.(sizeEntry).version != v.Version {
			missing = append(missing, v.ID)
		}
	}
	remember := func(v store.VM) {
		if sz, err := sizesOf(v.Definition); err == nil {
			s.sizes.Store(v.ID, sizeEntry{version: v.Version, sizes: sz})
		}
	}
	if len(missing) > 32 {
		full, err := s.e.st.ListVMs(ctx, store.VMFilter{})
		if err != nil {
			return err
		}
		for _, v := range full {
			remember(v)
		}
		return nil
	}
	for _, id := range missing {
		v, err := s.e.st.GetVM(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		remember(v)
	}
	return nil
}

// Targets lists the enrolled hosts' agents for Prometheus's HTTP service
// discovery: one group per host, its address, and the labels host,
// cluster and arch (unknown until the host's report was read).
func (s *Metrics) Targets(ctx context.Context) (engineapi.ScrapeTargets, error) {
	snap, err := s.e.hosts.get(ctx, s.e)
	if err != nil {
		return nil, coded(err)
	}
	out := engineapi.ScrapeTargets{}
	for _, h := range snap.views {
		if !h.Enrolled || h.Address == "" {
			continue
		}
		a := h.Arch.String()
		if h.Arch == arch.Unknown {
			a = "unknown"
		}
		out = append(out, engineapi.ScrapeTargetGroup{Targets: []string{h.Address},
			Labels: map[string]string{"host": h.Name, "cluster": h.Cluster, "arch": a}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Labels["host"] < out[j].Labels["host"] })
	return out, nil
}

// scrapeNamePattern is what a scrape certificate's name may be.
var scrapeNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// IssueScrapeCertificate issues a scrape certificate: a client
// certificate of the engine CA, marked so that the agents let it read
// their metrics and nothing else. With a certificate request, only its
// public key is taken; without, the engine makes the key and answers it
// once. The audit log records it.
func (s *Metrics) IssueScrapeCertificate(ctx context.Context, req engineapi.ScrapeCertificateRequest) (engineapi.ScrapeCertificate, error) {
	out, err := s.e.issueScrapeCertificate(ctx, req)
	return out, coded(err)
}

func (e *engine) issueScrapeCertificate(ctx context.Context, req engineapi.ScrapeCertificateRequest) (engineapi.ScrapeCertificate, error) {
	var out engineapi.ScrapeCertificate
	if !scrapeNamePattern.MatchString(req.Name) {
		return out, invalidField("name", "name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (such as prometheus)", req.Name)
	}
	var certPEM, keyPEM []byte
	if req.CSR != "" {
		if err := checkCSR(req.CSR); err != nil {
			return out, &api.Error{Code: api.CodeCSRInvalid, Field: "csr", Message: err.Error()}
		}
		c, err := e.ca.SignCSR([]byte(req.CSR), req.Name, nil, pki.Scrape, certValidity)
		if err != nil {
			return out, &api.Error{Code: api.CodeCSRInvalid, Field: "csr", Message: err.Error()}
		}
		certPEM = c
	} else {
		is, err := e.ca.Issue(req.Name, nil, pki.Scrape, certValidity)
		if err != nil {
			return out, err
		}
		certPEM, keyPEM = is.CertPEM, is.KeyPEM
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return out, err
	}
	out = engineapi.ScrapeCertificate{Name: req.Name, Certificate: string(certPEM), Key: string(keyPEM), CA: string(e.ca.CertPEM),
		Serial: hex.EncodeToString(cert.SerialNumber.Bytes()), Fingerprint: pki.Fingerprint(cert), Expires: cert.NotAfter.UTC()}
	ev := store.Event{Action: "metrics.scrape-certificate", ObjectKind: "engine", ObjectName: e.cfg.Name,
		Message: fmt.Sprintf("A scrape certificate %s (serial %s, valid until %s) was issued by %s: it reads the agents' metrics.",
			req.Name, out.Serial, out.Expires.Format(time.DateOnly), userName(ctx))}
	if err := e.appendEvent(ctx, e.st, ev); err != nil {
		return engineapi.ScrapeCertificate{}, err
	}
	return out, nil
}
