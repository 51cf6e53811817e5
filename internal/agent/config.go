// Package agent is polyvirt's host agent (VDSM's role): it runs on every
// hypervisor, reports the host's capabilities and statistics, creates and
// runs VMs through libvirt, streams their state changes, screens and
// serial consoles, and recovers its VMs after its own restart. It owns
// nothing durable but what libvirt owns: every VM it manages carries its
// id, its owner host and its definition in the domain's <metadata>.
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"polyvirt/internal/arch"
	"polyvirt/internal/hostpath"
)

// FakeKVM says when the agent runs guests in fake-KVM mode.
type FakeKVM string

// The modes.
const (
	// FakeAuto turns fake KVM on when /dev/kvm cannot run guests here or
	// the effective architecture (fake_arch, or the profile's) is not the
	// real one.
	FakeAuto FakeKVM = "auto"
	FakeOn   FakeKVM = "on"
	FakeOff  FakeKVM = "off"
)

// Config is the agent's configuration (YAML; see dist/agent.yaml).
type Config struct {
	// HostID names this host; it marks the domains the agent owns, so two
	// agents on one libvirtd keep apart. Default: the hostname.
	HostID string `json:"host_id"`
	// DomainPrefix, when set, is put before every libvirt domain name, and
	// the domain UUIDs are derived from the VM id and the host id instead of
	// being the VM id: several agents on one libvirtd (a lab) can then each
	// run the same VM (an HA restart elsewhere) without name or UUID
	// clashes. Leave it empty on a real host.
	DomainPrefix string `json:"domain_prefix"`
	// Listen is the HTTPS address of the API (default 127.0.0.1:7443).
	Listen string `json:"listen"`
	// MetricsListen, when set, is a second HTTPS address that serves GET
	// /metrics only, with the same mutual TLS (the metrics are on the
	// API's address anyway).
	MetricsListen string `json:"metrics_listen"`
	// DataDir holds the agent's files: certificates, console logs
	// (default /var/lib/polyvirt/agent).
	DataDir string `json:"data_dir"`
	// LibvirtURI is the libvirt daemon (default qemu:///system).
	LibvirtURI string `json:"libvirt_uri"`
	// TLS names the PEM files: the CA whose client certificates are
	// accepted, and this agent's server certificate and key. Relative
	// paths are under DataDir (defaults ca.pem, agent.pem, agent-key.pem).
	TLS TLSFiles `json:"tls"`
	// FakeKVM is auto (default), on or off.
	FakeKVM FakeKVM `json:"fake_kvm"`
	// FakeArch is the effective architecture of a fake-KVM host.
	FakeArch arch.Arch `json:"fake_arch"`
	// FakeMemoryMiB, when set, caps every VM's memory in fake-KVM mode.
	FakeMemoryMiB uint64 `json:"fake_memory_mib"`
	// Profile names a built-in host profile this host presents itself as
	// (fake KVM: its hardware, the local libvirtd's emulation).
	Profile string `json:"profile"`
	// MaxBodyBytes limits a request body (default 1 MiB).
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// RequestTimeout bounds reading a request body and answering a plain
	// request (default 30 s); streams (events, console) are not bounded.
	RequestTimeout Duration `json:"request_timeout"`
	// StatsInterval is how often host and VM statistics are sampled, and
	// each running VM's QEMU asked whether it answers (default 5 s).
	StatsInterval Duration `json:"stats_interval"`
	// QEMUTimeout is how long a VM's QEMU has to answer a call to its
	// monitor (query-status, a shutdown request, a screenshot) before the
	// VM is NotResponding (default 10 s).
	QEMUTimeout Duration `json:"qemu_timeout"`
	// Firmware says where the system firmware tools are (POWER hosts).
	Firmware FirmwareConfig `json:"firmware"`
	// MaxFirmwareBytes limits an uploaded firmware image (default 1 GiB).
	MaxFirmwareBytes int64 `json:"max_firmware_bytes"`
	// HostPaths says where the files of this host's VMs may be; a list
	// left out keeps its default (hostpath.Default).
	HostPaths HostPaths `json:"host_paths"`
	// Migration says how VMs come to this host and leave it.
	Migration MigrationConfig `json:"migration"`
}

// MigrationConfig is how this host's libvirtd takes VMs from other hosts:
// over libvirt's own TLS, with the libvirt certificate the engine's CA gave
// the host when its agent joined (polyvirt agent libvirt-tls configures
// libvirtd with it).
type MigrationConfig struct {
	// Address is HOST:PORT where the other hosts' libvirtd reach this
	// host's libvirtd over TLS ("": this host takes no VMs; `polyvirt
	// agent libvirt-tls` sets it). It is never a plain TCP port.
	Address string `json:"address"`
	// Front makes the agent itself serve Address for a libvirtd that does
	// not listen (one shared with others, whose configuration is not
	// polyvirt's: the lab's machine). It accepts other hosts' libvirt
	// certificates only and passes their connections to the daemon's
	// local socket.
	Front bool `json:"front"`
	// StreamAddress is the address QEMU's migration stream comes to
	// (default: the host part of Address).
	StreamAddress string `json:"stream_address"`
	// PKIDir holds libvirt's TLS files (default DATA_DIR/libvirt-pki,
	// written by the join).
	PKIDir string `json:"pki_dir"`
	// MaxOutgoing is how many VMs leave this host at once (default 2);
	// the engine keeps to its cluster's limits too.
	MaxOutgoing int `json:"max_outgoing"`
}

// HostPaths is the host path policy in the configuration: directories per
// use of a file (a file anywhere below one, after every link is
// followed), and the block devices VMs may use as disks.
type HostPaths struct {
	// Disk: disk and floppy images (default /var/lib/polyvirt/images).
	Disk []string `json:"disk"`
	// CDROM, Kernel, Initrd: CD-ROM images, kernels and initrds (default
	// /var/lib/polyvirt/images and /usr/lib/debian-installer/images).
	CDROM  []string `json:"cdrom"`
	Kernel []string `json:"kernel"`
	Initrd []string `json:"initrd"`
	// BlockDevices: the block devices, by path (default none).
	BlockDevices []string `json:"block_devices"`
}

// Policy is the policy of the configuration: each list given, the
// default's for the others.
func (h HostPaths) Policy() hostpath.Policy {
	p := hostpath.Default()
	for _, l := range []struct {
		dst *[]string
		src []string
	}{{&p.Disk, h.Disk}, {&p.CDROM, h.CDROM}, {&p.Kernel, h.Kernel}, {&p.Initrd, h.Initrd}, {&p.BlockDevices, h.BlockDevices}} {
		if l.src != nil {
			*l.dst = l.src
		}
	}
	return p
}

// TLSFiles are the agent's certificate files.
type TLSFiles struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// Duration is a time.Duration written as "30s" in the configuration.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "30s", "2m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			return fmt.Errorf("duration %q: want a positive duration such as 30s", s)
		}
		d.Duration = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil || n < 0 {
		return fmt.Errorf("duration %s: want a positive duration such as 30s", b)
	}
	d.Duration = time.Duration(n * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// LoadConfig reads a YAML configuration file; unknown keys are errors.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if len(b) > 1<<20 {
		return c, fmt.Errorf("%s: larger than 1 MiB", path)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

// WithDefaults fills the unset fields and checks the others.
func (c Config) WithDefaults() (Config, error) {
	if c.HostID == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("host_id is not set and the hostname is unknown: %v", err)
		}
		c.HostID = h
	}
	if !validHostID(c.HostID) {
		return c, fmt.Errorf("host_id %q: use 1-63 letters, digits, '.', '_' or '-'", c.HostID)
	}
	if c.DomainPrefix != "" && (len(c.DomainPrefix) > 32 || !validHostID(c.DomainPrefix)) {
		return c, fmt.Errorf("domain_prefix %q: use up to 32 letters, digits, '.', '_' or '-'", c.DomainPrefix)
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7443"
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/polyvirt/agent"
	}
	if c.LibvirtURI == "" {
		c.LibvirtURI = "qemu:///system"
	}
	if c.TLS.CA == "" {
		c.TLS.CA = "ca.pem"
	}
	if c.TLS.Cert == "" {
		c.TLS.Cert = "agent.pem"
	}
	if c.TLS.Key == "" {
		c.TLS.Key = "agent-key.pem"
	}
	for _, p := range []*string{&c.TLS.CA, &c.TLS.Cert, &c.TLS.Key} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(c.DataDir, *p)
		}
	}
	switch c.FakeKVM {
	case "":
		c.FakeKVM = FakeAuto
	case FakeAuto, FakeOn, FakeOff:
	default:
		return c, fmt.Errorf("fake_kvm %q: want auto, on or off", c.FakeKVM)
	}
	if c.FakeArch != arch.Unknown {
		if err := c.FakeArch.Check(); err != nil {
			return c, fmt.Errorf("fake_arch: %v", err)
		}
	}
	if c.FakeKVM == FakeOff && (c.FakeArch != arch.Unknown || c.Profile != "") {
		return c, errors.New("fake_kvm is off but fake_arch or profile is set: a host can only present another architecture in fake-KVM mode")
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxBodyBytes < 1024 {
		return c, fmt.Errorf("max_body_bytes %d: at least 1024", c.MaxBodyBytes)
	}
	if c.MaxFirmwareBytes == 0 {
		c.MaxFirmwareBytes = 1 << 30
	}
	if c.RequestTimeout.Duration == 0 {
		c.RequestTimeout.Duration = 30 * time.Second
	}
	if c.StatsInterval.Duration == 0 {
		c.StatsInterval.Duration = 5 * time.Second
	}
	if c.QEMUTimeout.Duration == 0 {
		c.QEMUTimeout.Duration = 10 * time.Second
	}
	if c.Migration.PKIDir == "" {
		c.Migration.PKIDir = LibvirtPKIDir
	}
	if !filepath.IsAbs(c.Migration.PKIDir) {
		c.Migration.PKIDir = filepath.Join(c.DataDir, c.Migration.PKIDir)
	}
	if c.Migration.MaxOutgoing == 0 {
		c.Migration.MaxOutgoing = 2
	}
	if c.Migration.MaxOutgoing < 0 {
		return c, fmt.Errorf("migration.max_outgoing %d: at least 1", c.Migration.MaxOutgoing)
	}
	if c.Migration.Address != "" {
		host, port, err := net.SplitHostPort(c.Migration.Address)
		if err != nil || host == "" || port == "" {
			return c, fmt.Errorf("migration.address %q: want HOST:PORT", c.Migration.Address)
		}
		if c.Migration.StreamAddress == "" {
			c.Migration.StreamAddress = host
		}
	} else if c.Migration.Front {
		return c, errors.New("migration.front is set but migration.address is not: the front listens there")
	}
	p := c.HostPaths.Policy()
	if err := p.Check(); err != nil {
		return c, fmt.Errorf("host_paths.%v", err)
	}
	c.HostPaths = HostPaths{Disk: p.Disk, CDROM: p.CDROM, Kernel: p.Kernel, Initrd: p.Initrd, BlockDevices: p.BlockDevices}
	return c, nil
}

func validHostID(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && strings.ContainsRune("._-", r))
		if !ok {
			return false
		}
	}
	return true
}
