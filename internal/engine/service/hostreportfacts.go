package service

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/store"
)

// reportFacts are the facts of a host's document that its capabilities
// report gives and the store keeps no column for: how it runs guests
// (kvm, tcg and why), the profile it presents, its CPU vendor, its
// firmware levels. They are read once per report (its hash) and kept in
// memory.
type reportFacts struct {
	hash                 string
	cpuVendor            string
	virtualization       string
	virtualizationReason string
	fakeKVM              bool
	profile              string
	fakeIdentity         string
	firmware             []engineapi.HostFirmwareLevel
}

// reportFactsOf reads the facts of a report (JSON); a report that cannot
// be read gives none.
func reportFactsOf(doc []byte, hash string) reportFacts {
	f := reportFacts{hash: hash}
	var r hostreport.Report
	if len(doc) == 0 || json.Unmarshal(doc, &r) != nil {
		return f
	}
	f.cpuVendor, f.virtualization, f.virtualizationReason = r.CPU.Vendor, r.Virt.Virtualization, r.Virt.KVMReason
	if f.virtualization == "" {
		// A report of an agent that predates the field: its KVM flag.
		f.virtualization = map[bool]string{true: "kvm", false: "tcg"}[r.Virt.KVM]
	}
	if f.virtualization == "kvm" {
		f.virtualizationReason = ""
	}
	f.fakeKVM, f.profile, f.fakeIdentity = r.FakeKVM, r.Profile, r.CPU.FakeIdentity
	for _, fw := range r.Firmware {
		f.firmware = append(f.firmware, engineapi.HostFirmwareLevel{Component: fw.Component, Version: fw.Version, Vendor: fw.Vendor, Date: fw.Date})
	}
	return f
}

// reportFactsCache holds the reportFacts of each host, by host id.
type reportFactsCache struct{ m sync.Map }

// of returns a host's facts when they are known for its current report,
// reading them from h.Capabilities when it is loaded.
func (c *reportFactsCache) of(h store.Host) (reportFacts, bool) {
	if h.CapabilitiesHash == "" {
		return reportFacts{}, true
	}
	if v, ok := c.m.Load(h.ID); ok && v.(reportFacts).hash == h.CapabilitiesHash {
		return v.(reportFacts), true
	}
	if len(h.Capabilities) == 0 {
		return reportFacts{}, false
	}
	f := reportFactsOf(h.Capabilities, h.CapabilitiesHash)
	c.m.Store(h.ID, f)
	return f, true
}

// load reads the reports of the hosts whose facts are not known (a brief
// list holds no report): those hosts' only, MaxHostIDs to a query. A
// fleet enrolling is admitted some tens of hosts at a time: each list
// after an admission reads those hosts' reports, not the thousands known
// already (reading every report each time, the engine allocated some 8 GB
// for them while 10,000 hosts enrolled).
func (c *reportFactsCache) load(ctx context.Context, st store.Store, hosts []store.Host) {
	var missing []string
	for _, h := range hosts {
		if _, ok := c.of(h); !ok {
			missing = append(missing, h.ID)
		}
	}
	if len(missing) == 1 {
		if h, err := st.GetHost(ctx, missing[0]); err == nil {
			c.of(h)
		}
		return
	}
	for ids := range slices.Chunk(missing, store.MaxHostIDs) {
		some, err := st.ListHosts(ctx, store.HostFilter{IDs: ids, WithCapabilities: true, NoStats: true})
		if err != nil {
			return
		}
		for _, h := range some {
			c.of(h)
		}
	}
}

// withReportFacts adds a host's report facts to its document.
func (c *reportFactsCache) withReportFacts(v *engineapi.Host, h store.Host) {
	f, ok := c.of(h)
	if !ok {
		return
	}
	v.CPUVendor, v.Virtualization, v.VirtualizationReason = f.cpuVendor, f.virtualization, f.virtualizationReason
	v.FakeKVM, v.Profile, v.FakeIdentity = f.fakeKVM, f.profile, f.fakeIdentity
	v.Firmware = f.firmware
}
