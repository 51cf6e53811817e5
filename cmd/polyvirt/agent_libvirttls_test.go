package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/libvirttls"
	"polyvirt/internal/pki"
)

// TestAgentLibvirtTLS: polyvirt agent libvirt-tls writes libvirt's TLS
// settings from the join's libvirt certificate, refuses without one, and
// says what is left to do.
func TestAgentLibvirtTLS(t *testing.T) {
	data, etc := t.TempDir(), t.TempDir()
	conf := filepath.Join(etc, "libvirtd.conf")
	if err := os.WriteFile(conf, []byte("# the host's own\nmax_clients = 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"agent", "libvirt-tls", "--data-dir", data, "--etc", etc}, args...))
		err := root.Execute()
		return out.String(), err
	}
	if _, err := run("--address", "192.0.2.7:16514"); err == nil || !strings.Contains(err.Error(), "has no libvirt certificate: join the engine first") {
		t.Errorf("without a certificate: %v", err)
	}
	ca, _ := pki.NewCA("test")
	is, _ := ca.Issue("power8-a", []string{"192.0.2.7"}, pki.LibvirtPeer, time.Hour)
	if _, err := libvirttls.Write(filepath.Join(data, "libvirt-pki"), ca.CertPEM, is.CertPEM, is.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := run("--address", "192.0.2.7"); err == nil || !strings.Contains(err.Error(), "want HOST:PORT") {
		t.Errorf("no port: %v", err)
	}
	out, err := run("--address", "192.0.2.7:16514")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{conf + ": libvirt's TLS configured", filepath.Join(etc, "qemu.conf") + ": libvirt's TLS configured",
		"libvirtd --listen", `migration: {address: "192.0.2.7:16514"}`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b, _ := os.ReadFile(conf)
	for _, want := range []string{"# the host's own\nmax_clients = 50\n", "listen_tls = 1\n", "listen_tcp = 0\n", `tls_port = "16514"`,
		`key_file = "` + filepath.Join(data, "libvirt-pki", "serverkey.pem") + `"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("libvirtd.conf lacks %q:\n%s", want, b)
		}
	}
	if out, _ := run("--address", "192.0.2.7:16514"); !strings.Contains(out, conf+": unchanged") {
		t.Errorf("a second run:\n%s", out)
	}
}
