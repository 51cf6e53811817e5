package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/pki"
)

// RecordFile is the lab's record in its directory: the engine's address
// and the hosts, kept between runs.
const RecordFile = "up.json"

// DefaultListen is the engine's address on a lab's first run.
const DefaultListen = "127.0.0.1:8443"

// DefaultDomainPrefix starts the libvirt domain names of a lab's VMs
// (followed by the host's name and a dash).
const DefaultDomainPrefix = "lab-"

// Host is one local host of the lab: its agent's name, cluster, address
// and how it presents itself.
type Host struct {
	// Name is the host's name in the engine (and its agent's host id).
	Name string `json:"name"`
	// Cluster is the host's cluster; ClusterArch and CPUType make it when
	// it does not exist yet.
	Cluster     string    `json:"cluster"`
	ClusterArch arch.Arch `json:"clusterArch,omitempty"`
	CPUType     string    `json:"cpuType,omitempty"`
	// Profile is the built-in host profile the agent presents (fake KVM);
	// "" is this machine.
	Profile string `json:"profile,omitempty"`
	// Address is HOST:PORT the agent listens on.
	Address string `json:"address"`
	// DomainPrefix starts the libvirt domain names of the host's VMs.
	DomainPrefix string `json:"domainPrefix"`
}

// record is what a lab keeps between runs (RecordFile).
type record struct {
	EngineURL string `json:"engineUrl"`
	Listen    string `json:"listen"`
	Hosts     []Host `json:"hosts"`
}

// maxRecordSize bounds the record file.
const maxRecordSize = 1 << 20

// loadRecord reads a lab's record; a directory without one gives an
// empty record (a first run).
func loadRecord(dir string) (*record, error) {
	path := filepath.Join(dir, RecordFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &record{}, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := parseRecord(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v (remove the lab's directory %s to start a new lab)", path, err, dir)
	}
	return r, nil
}

// parseRecord decodes and checks a record.
func parseRecord(b []byte) (*record, error) {
	if len(b) > maxRecordSize {
		return nil, fmt.Errorf("%d bytes: larger than %d", len(b), maxRecordSize)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for i, h := range r.Hosts {
		field := fmt.Sprintf("hosts[%d]", i)
		switch {
		case strings.TrimSpace(h.Name) == "":
			return nil, fmt.Errorf("%s.name: empty", field)
		case names[h.Name]:
			return nil, fmt.Errorf("%s.name: %q appears twice", field, h.Name)
		case strings.TrimSpace(h.Cluster) == "":
			return nil, fmt.Errorf("%s.cluster: empty", field)
		case strings.ContainsAny(h.Name, "/\\\x00") || h.Name == "." || h.Name == "..":
			return nil, fmt.Errorf("%s.name: %q cannot name a directory", field, h.Name)
		}
		if _, _, err := net.SplitHostPort(h.Address); err != nil {
			return nil, fmt.Errorf("%s.address: %q: %v", field, h.Address, err)
		}
		names[h.Name] = true
	}
	return &r, nil
}

func saveRecord(dir string, r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(dir, RecordFile), append(b, '\n'), 0o600)
}

// planHosts chooses the lab's hosts on its first run: this machine's
// architecture (native) and a fake-KVM POWER8 (the S822L profile), each
// agent on a free port.
func planHosts(native arch.Arch, namePrefix, domainPrefix string) ([]Host, error) {
	ca, err := archspec.ClusterArch(native)
	if err != nil {
		return nil, fmt.Errorf("this machine's architecture %s: %v", native, err)
	}
	hosts := []Host{
		{Name: namePrefix + native.String() + "-a", Cluster: namePrefix + ca.String(), ClusterArch: ca},
		{Name: namePrefix + "power8-a", Cluster: namePrefix + "power", CPUType: "IBM POWER8", Profile: "s822l-power8e"},
	}
	for i := range hosts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		hosts[i].Address = ln.Addr().String()
		ln.Close()
		hosts[i].DomainPrefix = domainPrefix + hosts[i].Name + "-"
	}
	return hosts, nil
}

// engineURLFor is the URL of an engine listening on addr: 127.0.0.1 (a
// name of its certificate) when it listens on every address.
func engineURLFor(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "https://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}
