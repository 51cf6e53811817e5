// Package cloudinit makes the NoCloud seed a VM reads its first-boot
// configuration from: an ISO 9660 image labelled "cidata" (Rock Ridge and
// Joliet names) holding user-data, meta-data and network-config, built in
// Go with github.com/diskfs/go-diskfs. The inputs are checked first, each
// refusal a code naming the field: user-data in a format cloud-init reads
// (a #cloud-config YAML mapping, a script, an include list, a MIME
// multi-part), a hostname of DNS labels, SSH public keys in authorized_keys
// form, a network configuration of version 1 or 2.
//
// The ISO writer: github.com/kdomanski/iso9660 v0.4.0 writes plain ISO 9660
// names only (no Rock Ridge, no Joliet): "user-data" would be "user_data",
// which cloud-init does not read;
// go-diskfs writes both extensions and a volume label, and reads images
// back (ReadISO, for the tests).
package cloudinit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	diskfile "github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"golang.org/x/crypto/ssh"
	yaml "sigs.k8s.io/yaml"

	"polyvirt/internal/api"
)

// Label is the volume label NoCloud looks for.
const Label = "cidata"

// The file names of a NoCloud seed.
const (
	UserDataFile      = "user-data"
	MetaDataFile      = "meta-data"
	NetworkConfigFile = "network-config"
)

// Limits of the inputs.
const (
	MaxUserData      = 256 << 10
	MaxNetworkConfig = 64 << 10
	MaxSSHKeys       = 32
	maxSSHKey        = 16 << 10
)

// Seed is what a VM is given at its first boot.
type Seed struct {
	// InstanceID names the instance (the VM's id): cloud-init runs its
	// first-boot modules once per instance id.
	InstanceID string
	// Hostname is the VM's host name (local-hostname).
	Hostname string
	// UserData is the user's configuration, as cloud-init reads it.
	UserData []byte
	// NetworkConfig is a network configuration (version 1 or 2); empty
	// gives DefaultNetworkConfig.
	NetworkConfig []byte
	// SSHKeys are public keys for the default user (public-keys of
	// meta-data).
	SSHKeys []string
}

// DefaultNetworkConfig asks for DHCP on every Ethernet interface (eth0 of
// a spapr-vlan NIC on POWER, enp0s… of a virtio one).
const DefaultNetworkConfig = `version: 2
ethernets:
  all:
    match:
      name: "e*"
    dhcp4: true
`

// userDataHeaders are the first lines of the user-data formats cloud-init
// reads (gzip is not taken: it would hide what the seed holds).
var userDataHeaders = []string{"#cloud-config", "#!", "#include", "#cloud-boothook", "#part-handler", "#cloud-config-archive", "#cloud-config-jsonp"}

// Check checks every input and returns every refusal at once, as
// api.Errors with the fields userData, hostname, sshKeys[i],
// networkConfig, instanceId (nil when the seed can be made).
func (s Seed) Check() error {
	var errs api.Errors
	add := errs.Add
	if s.InstanceID == "" || len(s.InstanceID) > 128 || strings.IndexFunc(s.InstanceID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r))
	}) >= 0 {
		add(api.CodeCloudInitInstanceID, "instanceId", "%q: 1 to 128 letters, digits, '.', '_' or '-'", clip(s.InstanceID))
	}
	if err := CheckHostname(s.Hostname); err != nil {
		add(api.CodeCloudInitHostname, "hostname", "%v", err)
	}
	if err := CheckUserData(s.UserData); err != nil {
		add(api.CodeCloudInitUserData, "userData", "%v", err)
	}
	if len(s.NetworkConfig) > 0 {
		if err := CheckNetworkConfig(s.NetworkConfig); err != nil {
			add(api.CodeCloudInitNetworkConfig, "networkConfig", "%v", err)
		}
	}
	if len(s.SSHKeys) > MaxSSHKeys {
		add(api.CodeCloudInitSSHKey, "sshKeys", "%d keys; at most %d", len(s.SSHKeys), MaxSSHKeys)
	} else {
		for i, k := range s.SSHKeys {
			if err := CheckSSHKey(k); err != nil {
				add(api.CodeCloudInitSSHKey, fmt.Sprintf("sshKeys[%d]", i), "%v", err)
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// CheckHostname checks a host name: DNS labels of 1 to 63 letters, digits
// and '-' (not at either end), separated by dots, at most 253 characters.
func CheckHostname(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%q: 1 to 253 characters", clip(h))
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q: each dot-separated label has 1 to 63 characters and neither starts nor ends with '-'", clip(h))
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q: %q is not allowed in a host name (letters, digits, '-', '.')", clip(h), r)
			}
		}
	}
	return nil
}

// CheckUserData checks user-data: UTF-8 text of at most MaxUserData bytes
// in a format cloud-init reads; #cloud-config must be a YAML mapping (or
// empty).
func CheckUserData(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("empty: give a #cloud-config document, a script (#!) or another format cloud-init reads")
	}
	if len(b) > MaxUserData {
		return fmt.Errorf("%d bytes; at most %d", len(b), MaxUserData)
	}
	if !utf8.Valid(b) {
		return fmt.Errorf("not UTF-8 text")
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return fmt.Errorf("holds a NUL byte")
	}
	first, _, _ := strings.Cut(string(b), "\n")
	first = strings.TrimRight(first, "\r \t")
	if strings.HasPrefix(strings.ToLower(first), "content-type: multipart/") {
		return nil
	}
	header := ""
	for _, h := range userDataHeaders {
		if strings.HasPrefix(first, h) && (h == "#!" || len(first) == len(h) || first[len(h)] == ' ') && len(h) > len(header) {
			header = h
		}
	}
	switch header {
	case "":
		return fmt.Errorf("its first line %q is not a format cloud-init reads: start it with #cloud-config (or #!, #include, Content-Type: multipart/mixed)", clip(first))
	case "#cloud-config":
		var doc any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("#cloud-config is not YAML: %v", err)
		}
		if doc == nil {
			return nil
		}
		if _, ok := doc.(map[string]any); !ok {
			return fmt.Errorf("#cloud-config must be a YAML mapping (keys such as users, packages, runcmd), not a %T", doc)
		}
	}
	return nil
}

// CheckNetworkConfig checks a network configuration: a YAML mapping with
// version 1 or 2 (at its top, or under "network:").
func CheckNetworkConfig(b []byte) error {
	if len(b) > MaxNetworkConfig {
		return fmt.Errorf("%d bytes; at most %d", len(b), MaxNetworkConfig)
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return fmt.Errorf("not UTF-8 text")
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("not a YAML mapping: %v", err)
	}
	if n, ok := doc["network"].(map[string]any); ok && len(doc) == 1 {
		doc = n
	}
	switch v := doc["version"].(type) {
	case float64:
		if v == 1 || v == 2 {
			return nil
		}
	case int64:
		if v == 1 || v == 2 {
			return nil
		}
	}
	return fmt.Errorf("version: want 1 or 2 (cloud-init's network configuration formats)")
}

// CheckSSHKey checks one public key in authorized_keys form
// ("ssh-ed25519 AAAA… comment"), on one line.
func CheckSSHKey(k string) error {
	k = strings.TrimSpace(k)
	if k == "" || len(k) > maxSSHKey {
		return fmt.Errorf("a public key is one line of 1 to %d bytes", maxSSHKey)
	}
	if strings.ContainsAny(k, "\r\n\x00") {
		return fmt.Errorf("a public key is one line (give several keys as several entries)")
	}
	pk, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(k))
	if err != nil {
		return fmt.Errorf("not an SSH public key in authorized_keys form (ssh-ed25519 AAAA… comment): %v", err)
	}
	if len(opts) > 0 {
		return fmt.Errorf("a key with options (%s): give the key alone", strings.Join(opts, ","))
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return fmt.Errorf("more than one key")
	}
	if pk.Type() == ssh.KeyAlgoDSA {
		return fmt.Errorf("a DSA key: OpenSSH no longer accepts them; use ed25519 or RSA")
	}
	return nil
}

// metaData is the meta-data document.
type metaData struct {
	InstanceID    string   `json:"instance-id"`
	LocalHostname string   `json:"local-hostname"`
	PublicKeys    []string `json:"public-keys,omitempty"`
}

// Files are the seed's files.
func (s Seed) Files() (map[string][]byte, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	keys := make([]string, len(s.SSHKeys))
	for i, k := range s.SSHKeys {
		keys[i] = strings.TrimSpace(k)
	}
	// meta-data is read as YAML; written as JSON (a subset of YAML) no
	// long value is folded over lines.
	md, err := json.MarshalIndent(metaData{InstanceID: s.InstanceID, LocalHostname: s.Hostname, PublicKeys: keys}, "", "  ")
	if err != nil {
		return nil, err
	}
	md = append(md, '\n')
	nc := s.NetworkConfig
	if len(nc) == 0 {
		nc = []byte(DefaultNetworkConfig)
	}
	return map[string][]byte{UserDataFile: s.UserData, MetaDataFile: md, NetworkConfigFile: nc}, nil
}

// ISO makes the seed's ISO 9660 image.
func (s Seed) ISO() ([]byte, error) {
	files, err := s.Files()
	if err != nil {
		return nil, err
	}
	return MakeISO(Label, files)
}

// MakeISO writes files (names without directories) into an ISO 9660
// image with a volume label, Rock Ridge and Joliet names.
func MakeISO(label string, files map[string][]byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "polyvirt-iso-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, "seed.iso"), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	fsys, err := iso9660.Create(diskfile.New(out, false), 0, 0, 2048, work)
	if err != nil {
		return nil, fmt.Errorf("iso9660: %v", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		if n == "" || strings.ContainsAny(n, "/\x00") {
			return nil, fmt.Errorf("iso9660: file name %q", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := fsys.OpenFile("/"+n, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return nil, fmt.Errorf("iso9660: %s: %v", n, err)
		}
		if _, err := f.Write(files[n]); err != nil {
			f.Close()
			return nil, fmt.Errorf("iso9660: %s: %v", n, err)
		}
		f.Close()
	}
	if err := fsys.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: label}); err != nil {
		return nil, fmt.Errorf("iso9660: %v", err)
	}
	return os.ReadFile(out.Name())
}

// ReadISO reads the label and the root files of an ISO 9660 image (their
// Rock Ridge names).
func ReadISO(image []byte) (string, map[string][]byte, error) {
	dir, err := os.MkdirTemp("", "polyvirt-iso-")
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "seed.iso")
	if err := os.WriteFile(p, image, 0o600); err != nil {
		return "", nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	fsys, err := iso9660.Read(diskfile.New(f, true), int64(len(image)), 0, 2048)
	if err != nil {
		return "", nil, fmt.Errorf("iso9660: %v", err)
	}
	entries, err := fsys.ReadDir(".")
	if err != nil {
		return "", nil, fmt.Errorf("iso9660: %v", err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fsys.ReadFile(e.Name())
		if err != nil {
			return "", nil, fmt.Errorf("iso9660: %s: %v", e.Name(), err)
		}
		out[e.Name()] = b
	}
	return strings.TrimRight(fsys.Label(), " \x00"), out, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
