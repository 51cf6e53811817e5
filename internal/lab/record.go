package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/pki"
	"polyvirt/internal/portrange"
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
	// Migration is HOST:PORT where the other hosts' libvirtd reach this
	// host's libvirtd over TLS (its agent's migration.address): the
	// libvirtd of the lab's own listens there itself; for this machine's
	// libvirtd, which polyvirt does not configure, the agent serves it
	// (migration.front).
	Migration string `json:"migration,omitempty"`
	// OwnDaemon runs the host on a libvirtd of the lab's own (package
	// libvirtns: its own mount namespace, directory DIR/daemons/NAME),
	// not on this machine's.
	OwnDaemon bool `json:"ownDaemon,omitempty"`
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
		if h.Migration != "" {
			if _, _, err := net.SplitHostPort(h.Migration); err != nil {
				return nil, fmt.Errorf("%s.migration: %q: %v", field, h.Migration, err)
			}
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
// architecture (native) and a fake-KVM POWER8 (the S822L profile) on this
// machine's libvirtd, and with ownDaemons a second fake-KVM POWER8,
// power8-b, on a libvirtd of the lab's own (the POWER VMs migrate between
// the two); each agent and each host's libvirt TLS endpoint on a free
// port.
func planHosts(native arch.Arch, namePrefix, domainPrefix string, ownDaemons bool) ([]Host, error) {
	ca, err := archspec.ClusterArch(native)
	if err != nil {
		return nil, fmt.Errorf("this machine's architecture %s: %v", native, err)
	}
	hosts := []Host{
		{Name: namePrefix + native.String() + "-a", Cluster: namePrefix + ca.String(), ClusterArch: ca},
		{Name: namePrefix + "power8-a", Cluster: namePrefix + "power", CPUType: "IBM POWER8", Profile: "s822l-power8e"},
	}
	if ownDaemons {
		hosts = append(hosts, secondPower(namePrefix))
	}
	for i := range hosts {
		if err := hosts[i].complete(domainPrefix); err != nil {
			return nil, err
		}
	}
	return hosts, nil
}

// secondNative is ARCH-b beside first (ARCH-a), in its cluster, on a
// libvirtd of the lab's own (Options.SecondNative).
func secondNative(first Host, namePrefix string, native arch.Arch, domainPrefix string) (Host, error) {
	b := Host{Name: namePrefix + native.String() + "-b", Cluster: first.Cluster, ClusterArch: first.ClusterArch, OwnDaemon: true}
	return b, b.complete(domainPrefix)
}

// secondPower is power8-b, on the lab's own libvirtd.
func secondPower(namePrefix string) Host {
	return Host{Name: namePrefix + "power8-b", Cluster: namePrefix + "power", CPUType: "IBM POWER8", Profile: "s822l-power8e", OwnDaemon: true}
}

// thirdPower is power8-c, on another libvirtd of the lab's own
// (Options.ThirdPower).
func thirdPower(namePrefix string) Host {
	c := secondPower(namePrefix)
	c.Name = namePrefix + "power8-c"
	return c
}

// complete gives a host what it lacks: its agent's port, its libvirt TLS
// port, its domain prefix.
func (h *Host) complete(domainPrefix string) error {
	for _, p := range []*string{&h.Address, &h.Migration} {
		if *p != "" {
			continue
		}
		addr, err := freePort(portrange.EphemeralFile)
		if err != nil {
			return err
		}
		*p = addr
	}
	if h.DomainPrefix == "" {
		h.DomainPrefix = domainPrefix + h.Name + "-"
	}
	return nil
}

// upgrade brings the record of a lab made by an older polyvirt up to
// date: the hosts get their libvirt TLS port, and a lab whose POWER host is
// power8-a alone gets power8-b (ownDaemons). It tells whether anything
// changed.
func (r *record) upgrade(ownDaemons bool) (bool, error) {
	changed := false
	hasOwn := false
	var power *Host
	for i := range r.Hosts {
		h := &r.Hosts[i]
		hasOwn = hasOwn || h.OwnDaemon
		if strings.HasSuffix(h.Name, "power8-a") && power == nil {
			power = h
		}
		if h.Migration == "" {
			if err := h.complete(""); err != nil {
				return changed, err
			}
			changed = true
		}
	}
	if ownDaemons && !hasOwn && power != nil {
		b := secondPower(strings.TrimSuffix(power.Name, "power8-a"))
		b.Cluster = power.Cluster
		prefix := strings.TrimSuffix(power.DomainPrefix, power.Name+"-")
		if err := b.complete(prefix); err != nil {
			return changed, err
		}
		r.Hosts = append(r.Hosts, b)
		changed = true
	}
	return changed, nil
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

// freePort is a loopback address whose port is free now and below the
// ephemeral range that rangeFile gives (Linux's default 32768–60999): a
// lab's ports are recorded once and bound much later, every time the lab
// starts, and a port of the ephemeral range would be taken meanwhile by
// any process's outgoing connection or listener on port 0. It falls back
// to a port the system chooses when none below the range is free.
func freePort(rangeFile string) (string, error) {
	low := portrange.DefaultLow
	if n, _, err := portrange.Read(rangeFile); err == nil && n > 2048 {
		low = n
	}
	floor := max(low-12000, 1024)
	for range 64 {
		port := floor + rand.IntN(low-floor)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
