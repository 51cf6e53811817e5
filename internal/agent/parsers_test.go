package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"libvirt.org/go/libvirtxml"
	"sigs.k8s.io/yaml"

	"polyvirt/internal/arch"
	"polyvirt/internal/hostinfo"
)

func FuzzDecodePPM(f *testing.F) {
	f.Add([]byte("P6\n2 1\n255\n\xff\x00\x00\x00\x00\xff"))
	f.Add([]byte("P6 # comment\n1 1 255 abc"))
	f.Add([]byte("P6\n99999 99999\n255\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := decodePPM(b)
		if err == nil && img.Bounds().Dx()*img.Bounds().Dy() > maxPixels {
			t.Fatalf("decoded %v past the pixel limit", img.Bounds())
		}
	})
}

func TestDecodePPMErrors(t *testing.T) {
	for _, in := range []string{"", "P3\n1 1 255\n1 2 3", "P6\n1 1\n65535\nxxxxxx", "P6\n0 1 255\n", "P6\n2 2\n255\nabc", "P6\n1234567890 1 255 "} {
		if _, err := decodePPM([]byte(in)); err == nil {
			t.Errorf("decodePPM(%q) succeeded", in)
		}
	}
}

func FuzzOwner(f *testing.F) {
	dom := &libvirtxml.Domain{Name: "x", UUID: "11111111-2222-4333-8444-555555555555"}
	_ = markOwner(dom, Owner{VM: dom.UUID, Host: "h", Arch: "ppc64le", Definition: `{"name":"x</definition><evil/>"}`})
	x, _ := dom.Marshal()
	f.Add(x)
	f.Add(`<domain><metadata><owner xmlns="urn:polyvirt:agent:1" vm="a" host="b"/></metadata></domain>`)
	f.Add(`<domain>`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ownerOf(s)
	})
}

// TestOwnerRoundTrip: any definition text comes back as it was, and cannot
// add elements to the domain.
func TestOwnerRoundTrip(t *testing.T) {
	def := `{"name":"x</definition></owner><owner vm=\"evil\" host=\"h\">","note":"<&>"}`
	dom := &libvirtxml.Domain{Type: "kvm", Name: "x", UUID: "11111111-2222-4333-8444-555555555555"}
	if err := markOwner(dom, Owner{VM: dom.UUID, Host: "h1", Arch: "ppc64le", FakeKVM: true, Definition: def}); err != nil {
		t.Fatal(err)
	}
	x, err := dom.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	o, err := ownerOf(x)
	if err != nil || o.Definition != def || o.VM != dom.UUID || o.Host != "h1" || !o.FakeKVM {
		t.Fatalf("round trip: %+v, %v", o, err)
	}
	if strings.Count(x, "<owner ") != 1 {
		t.Errorf("the definition injected elements:\n%s", x)
	}
	if _, err := ownerOf(`<domain><name>y</name></domain>`); err != errNotOwned {
		t.Errorf("a domain without owner: %v", err)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("host_id: power8-01\nlisten: 0.0.0.0:7443\nfake_arch: ppc64el\nrequest_timeout: 3s\nstats_interval: 2\n"), 0o644)
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	c, err = c.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.FakeArch != "ppc64le" || c.RequestTimeout.Duration != 3*time.Second || c.StatsInterval.Duration != 2*time.Second ||
		c.TLS.CA != "/var/lib/polyvirt/agent/ca.pem" || c.FakeKVM != FakeAuto || c.MaxBodyBytes != 1<<20 {
		t.Errorf("config: %+v", c)
	}
	bad := map[string]string{
		"unknown key":   "hostid: x\n",
		"bad fake_kvm":  "fake_kvm: maybe\n",
		"bad arch":      "fake_arch: mips\n",
		"bad host id":   "host_id: 'a b'\n",
		"bad duration":  "request_timeout: soon\n",
		"off but faked": "fake_kvm: \"off\"\nprofile: s822l\n",
		"tiny body":     "max_body_bytes: 10\n",
	}
	for name, text := range bad {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		os.WriteFile(p, []byte(text), 0o644)
		c, err := LoadConfig(p)
		if err == nil {
			_, err = c.WithDefaults()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecideFake(t *testing.T) {
	noKVM := fstest.MapFS{
		"proc/cpuinfo": {Data: []byte("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: fpu sse2 lm hypervisor\n\n")},
		"dev/kvm":      {Data: nil},
	}
	withKVM := fstest.MapFS{
		"proc/cpuinfo": {Data: []byte("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: fpu sse2 lm vmx\n\n")},
		"dev/kvm":      {Data: nil},
	}
	cases := []struct {
		name string
		cfg  Config
		root fstest.MapFS
		want bool
	}{
		{"auto, KVM unusable", Config{FakeKVM: FakeAuto}, noKVM, true},
		{"auto, KVM usable", Config{FakeKVM: FakeAuto}, withKVM, false},
		{"auto, another arch", Config{FakeKVM: FakeAuto, FakeArch: "ppc64le"}, withKVM, true},
		{"auto, a profile", Config{FakeKVM: FakeAuto, Profile: "x86-2s-intel"}, withKVM, true},
		{"on", Config{FakeKVM: FakeOn}, withKVM, true},
		{"off", Config{FakeKVM: FakeOff}, noKVM, false},
	}
	for _, c := range cases {
		machine, err := hostinfo.Read(c.root, hostinfo.Options{})
		if err != nil || machine.Arch != arch.X86_64 {
			t.Fatalf("%s: reading the root: %v, arch %q", c.name, err, machine.Arch)
		}
		got, err := decideFake(c.cfg, machine)
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestTailFollowsANewLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	go tail(ctx, path, 0, nil, func(b []byte) error { got <- string(b); return nil })
	os.WriteFile(path, []byte("SLOF\n"), 0o600)
	if s := <-got; s != "SLOF\n" {
		t.Fatalf("first read %q", s)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("Linux version 6.1\n")
	f.Close()
	if s := <-got; s != "Linux version 6.1\n" {
		t.Fatalf("appended %q", s)
	}
	// A new boot replaces the log.
	os.Remove(path)
	os.WriteFile(path, []byte("boot 2\n"), 0o600)
	select {
	case s := <-got:
		if s != "boot 2\n" {
			t.Fatalf("after replace %q", s)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the replaced log was not followed")
	}
}

// FuzzConfig: any configuration text is accepted with its defaults filled
// in, or refused with an error; never a panic.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("host_id: power8-01\nlisten: 0.0.0.0:7443\nfake_arch: ppc64el\nrequest_timeout: 3s\n"))
	f.Add([]byte("fake_kvm: maybe\n"))
	f.Add([]byte("firmware:\n  path: /x\n  env: [A=b]\nmax_firmware_bytes: 12\n"))
	f.Add([]byte("stats_interval: -5\n"))
	f.Add([]byte("host_paths:\n  disk: [/srv/images]\n  block_devices: [/dev/vdb]\n  kernel: []\n"))
	f.Add([]byte("host_paths: {cdrom: [/]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		if err := yaml.UnmarshalStrict(data, &c); err != nil {
			return
		}
		c.HostID = "fuzz"
		d, err := c.WithDefaults()
		if err != nil {
			return
		}
		if d.MaxBodyBytes < 1024 || d.RequestTimeout.Duration <= 0 || d.StatsInterval.Duration <= 0 || d.QEMUTimeout.Duration <= 0 || d.Listen == "" {
			t.Fatalf("accepted configuration without its defaults: %+v", d)
		}
		if err := d.HostPaths.Policy().Check(); err != nil {
			t.Fatalf("accepted configuration with a bad host path policy: %v", err)
		}
	})
}

// FuzzPowerdownBook: any content of the shutdowns' book opens as a book or
// fails with an error naming the file; never a panic, and an opened book
// can be taken over (pending) and written back.
func FuzzPowerdownBook(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"vm-1":{"deadline":"2026-12-05T11:00:00Z","timeoutSeconds":60,"force":true}}`))
	f.Add([]byte(`{"vm-1":{"deadline":"yesterday"}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, powerdownFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := openPowerdownBook(dir)
		if err != nil {
			if !strings.Contains(err.Error(), powerdownFile) {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		ids := []string{}
		for id := range b.pending() {
			ids = append(ids, id)
		}
		if err := b.drop(ids); err != nil {
			t.Fatal(err)
		}
		if err := b.put("vm-new", &powerdown{}, powerdownRecord{TimeoutSeconds: 1}); err != nil {
			t.Fatal(err)
		}
	})
}
