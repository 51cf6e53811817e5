package libvirttls

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/pki"
)

// testPKI is a CA with a host's libvirt certificate and an engine-style
// client certificate.
type testPKI struct {
	ca      *pki.CA
	libvirt *pki.Issued
	client  *pki.Issued
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	lv, err := ca.Issue("power8-a", []string{"127.0.0.1", "localhost"}, pki.LibvirtPeer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ca.Issue("polyvirt-engine", nil, pki.Client, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{ca, lv, cl}
}

func TestWrite(t *testing.T) {
	p := newTestPKI(t)
	dir := filepath.Join(t.TempDir(), "libvirt-pki")
	if _, err := Write(dir, p.ca.CertPEM, p.client.CertPEM, p.client.KeyPEM); err == nil ||
		!strings.Contains(err.Error(), `the certificate of "polyvirt-engine" is not a libvirt certificate`) {
		t.Errorf("an engine certificate: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("a refused certificate left %s", dir)
	}
	f, err := Write(dir, p.ca.CertPEM, p.libvirt.CertPEM, p.libvirt.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Exists() || f.PKIPath() != dir {
		t.Errorf("files: %+v", f)
	}
	want := map[string]os.FileMode{
		"cacert.pem": 0o644, "servercert.pem": 0o644, "serverkey.pem": 0o600, "clientcert.pem": 0o644, "clientkey.pem": 0o600,
		"qemu/ca-cert.pem": 0o644, "qemu/server-cert.pem": 0o644, "qemu/server-key.pem": 0o600,
		"qemu/client-cert.pem": 0o644, "qemu/client-key.pem": 0o600,
	}
	for name, mode := range want {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	key, _ := os.ReadFile(filepath.Join(dir, "qemu", "client-key.pem"))
	if string(key) != string(p.libvirt.KeyPEM) {
		t.Error("QEMU's client key is not the host's key")
	}
}

func TestConfigure(t *testing.T) {
	f := Files{Dir: "/var/lib/polyvirt/agent/libvirt-pki"}
	settings := DaemonSettings(f, Listen{Addr: "192.0.2.7", Port: 16520})
	block := `# BEGIN polyvirt: libvirt TLS (written by polyvirt; changes inside are replaced)
listen_tls = 1
listen_tcp = 0
tls_port = "16520"
listen_addr = "192.0.2.7"
key_file = "/var/lib/polyvirt/agent/libvirt-pki/serverkey.pem"
cert_file = "/var/lib/polyvirt/agent/libvirt-pki/servercert.pem"
ca_file = "/var/lib/polyvirt/agent/libvirt-pki/cacert.pem"
tls_no_verify_certificate = 0
tls_allowed_dn_list = [ "*OU=polyvirt-libvirt,*" ]
# END polyvirt
`
	cases := []struct {
		name, before, after string
		changed             bool
		err                 string
	}{
		{"no file", "", block, true, ""},
		{"comments kept", "# libvirtd.conf\n#listen_tls = 0\nmax_clients = 5000\n\n", "# libvirtd.conf\n#listen_tls = 0\nmax_clients = 5000\n\n" + block, true, ""},
		{"an earlier block replaced", "max_clients = 5000\n\n# BEGIN polyvirt: libvirt TLS (written by polyvirt; changes inside are replaced)\nlisten_tls = 0\n# END polyvirt\nmax_workers = 20\n",
			"max_clients = 5000\n\nmax_workers = 20\n\n" + block, true, ""},
		{"the same again", "max_clients = 5000\n\n" + block, "max_clients = 5000\n\n" + block, false, ""},
		{"a setting of its own", "max_clients = 5000\nlisten_tcp = 1\n", "max_clients = 5000\nlisten_tcp = 1\n", false,
			"libvirtd.conf:2 sets listen_tcp, which polyvirt sets for libvirt's TLS: remove (or comment out) that line"},
		{"a block without end", "# BEGIN polyvirt: libvirt TLS (written by polyvirt; changes inside are replaced)\nlisten_tls = 1\n",
			"# BEGIN polyvirt: libvirt TLS (written by polyvirt; changes inside are replaced)\nlisten_tls = 1\n", false, "the polyvirt block has no end line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "libvirtd.conf")
			if c.before != "" {
				if err := os.WriteFile(path, []byte(c.before), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			changed, err := Configure(path, settings)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if changed != c.changed {
				t.Errorf("changed %v, want %v", changed, c.changed)
			}
			got, _ := os.ReadFile(path)
			if diff := cmp.Diff(c.after, string(got)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
			if c.before != "" {
				if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
					t.Errorf("mode %v, want the file's own 0640", st.Mode().Perm())
				}
			}
		})
	}
	if got := QEMUSettings(f); len(got) != 2 || got[0].String() != `migrate_tls_x509_cert_dir = "/var/lib/polyvirt/agent/libvirt-pki/qemu"` ||
		got[1].String() != "migrate_tls_x509_verify = 1" {
		t.Errorf("QEMU settings: %v", got)
	}
}

// echoSocket is a unix socket server that answers every byte with the
// same byte plus one (a stand-in for a daemon's socket).
func echoSocket(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				for {
					if _, err := c.Read(b); err != nil {
						return
					}
					b[0]++
					if _, err := c.Write(b); err != nil {
						return
					}
				}
			}()
		}
	}()
	return path
}

func TestFront(t *testing.T) {
	p := newTestPKI(t)
	f, err := Write(t.TempDir(), p.ca.CertPEM, p.libvirt.CertPEM, p.libvirt.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := NewFront(f, echoSocket(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- fr.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	other, _ := pki.NewCA("another CA")
	stranger, _ := other.Issue("power8-x", []string{"127.0.0.1"}, pki.LibvirtPeer, time.Hour)
	cases := []struct {
		name   string
		client *pki.Issued
		ok     bool
	}{
		{"another host's libvirt certificate", p.libvirt, true},
		{"the engine's client certificate (not libvirt's)", p.client, false},
		{"a libvirt certificate of another CA", stranger, false},
		{"no certificate", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var certPEM, keyPEM []byte
			if c.client != nil {
				certPEM, keyPEM = c.client.CertPEM, c.client.KeyPEM
			}
			cfg, err := pki.ClientTLS(certPEM, keyPEM, p.ca.CertPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.ServerName = "127.0.0.1"
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			tc := tls.Client(conn, cfg)
			buf := make([]byte, 1)
			_, err = io.ReadFull(tc, buf)
			if !c.ok {
				if err == nil {
					t.Fatalf("read %v: the front let it in", buf)
				}
				return
			}
			if err != nil || buf[0] != 1 {
				t.Fatalf("the confirmation: %v %v", buf, err)
			}
			for _, b := range []byte{7, 41} {
				if _, err := tc.Write([]byte{b}); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(tc, buf); err != nil || buf[0] != b+1 {
					t.Fatalf("through the front: sent %d, got %v %v", b, buf, err)
				}
			}
		})
	}
}
