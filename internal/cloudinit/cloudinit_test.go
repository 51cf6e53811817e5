package cloudinit

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
)

const edKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl op@example"

func goodSeed() Seed {
	return Seed{InstanceID: "0b6f7e3a-52a1-4c5e-9d3e-1f1e0c2b7a10", Hostname: "web1",
		UserData: []byte("#cloud-config\npackages: [nginx]\nruncmd:\n  - echo polyvirt-user-data-line\n"), SSHKeys: []string{edKey}}
}

func TestSeedISO(t *testing.T) {
	s := goodSeed()
	iso, err := s.ISO()
	if err != nil {
		t.Fatal(err)
	}
	label, files, err := ReadISO(iso)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(label, Label) {
		t.Errorf("label %q; want %q", label, Label)
	}
	want := map[string]string{
		UserDataFile: string(s.UserData),
		MetaDataFile: "{\n  \"instance-id\": \"0b6f7e3a-52a1-4c5e-9d3e-1f1e0c2b7a10\",\n  \"local-hostname\": \"web1\",\n" +
			"  \"public-keys\": [\n    \"" + edKey + "\"\n  ]\n}\n",
		NetworkConfigFile: DefaultNetworkConfig,
	}
	got := map[string]string{}
	for n, b := range files {
		got[n] = string(b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seed files (-want +got):\n%s", diff)
	}
}

// TestSeedISOWithBlkid reads the image's label and type with util-linux's
// blkid, as cloud-init finds its seed.
func TestSeedISOWithBlkid(t *testing.T) {
	iso, err := goodSeed().ISO()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(p, iso, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blkid", "-o", "export", p).CombinedOutput()
	if err != nil {
		t.Fatalf("blkid: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\nLABEL=cidata\n") || !strings.Contains(string(out), "\nTYPE=iso9660\n") {
		t.Errorf("blkid says %q; want an iso9660 file system labelled cidata", out)
	}
}

func TestSeedCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seed  func(*Seed)
		codes []string
	}{
		{"good", func(*Seed) {}, nil},
		{"a script", func(s *Seed) { s.UserData = []byte("#!/bin/sh\necho hi\n") }, nil},
		{"multipart", func(s *Seed) { s.UserData = []byte("Content-Type: multipart/mixed; boundary=x\n\n--x--\n") }, nil},
		{"empty cloud-config", func(s *Seed) { s.UserData = []byte("#cloud-config\n") }, nil},
		{"no header", func(s *Seed) { s.UserData = []byte("packages: [nginx]\n") }, []string{api.CodeCloudInitUserData}},
		{"not YAML", func(s *Seed) { s.UserData = []byte("#cloud-config\nruncmd: [\n") }, []string{api.CodeCloudInitUserData}},
		{"a YAML list", func(s *Seed) { s.UserData = []byte("#cloud-config\n- a\n- b\n") }, []string{api.CodeCloudInitUserData}},
		{"binary", func(s *Seed) { s.UserData = []byte("#!/bin/sh\n\xff\xfe") }, []string{api.CodeCloudInitUserData}},
		{"too large", func(s *Seed) { s.UserData = []byte("#!/bin/sh\n" + strings.Repeat("x", MaxUserData)) }, []string{api.CodeCloudInitUserData}},
		{"bad hostname", func(s *Seed) { s.Hostname = "web_1" }, []string{api.CodeCloudInitHostname}},
		{"hostname with a dash at the end", func(s *Seed) { s.Hostname = "web-" }, []string{api.CodeCloudInitHostname}},
		{"fqdn", func(s *Seed) { s.Hostname = "web1.example.com" }, nil},
		{"not a key", func(s *Seed) { s.SSHKeys = []string{"hello"} }, []string{api.CodeCloudInitSSHKey}},
		{"two keys in one", func(s *Seed) { s.SSHKeys = []string{edKey + "\n" + edKey} }, []string{api.CodeCloudInitSSHKey}},
		{"a key with options", func(s *Seed) { s.SSHKeys = []string{`command="rm -rf /" ` + edKey} }, []string{api.CodeCloudInitSSHKey}},
		{"network v1", func(s *Seed) { s.NetworkConfig = []byte("version: 1\nconfig: []\n") }, nil},
		{"network wrapped", func(s *Seed) { s.NetworkConfig = []byte("network:\n  version: 2\n") }, nil},
		{"network v3", func(s *Seed) { s.NetworkConfig = []byte("version: 3\n") }, []string{api.CodeCloudInitNetworkConfig}},
		{"bad instance id", func(s *Seed) { s.InstanceID = "a b" }, []string{api.CodeCloudInitInstanceID}},
		{"everything wrong", func(s *Seed) { s.InstanceID, s.Hostname, s.UserData, s.SSHKeys = "", "", nil, []string{"x"} },
			[]string{api.CodeCloudInitInstanceID, api.CodeCloudInitHostname, api.CodeCloudInitUserData, api.CodeCloudInitSSHKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := goodSeed()
			tc.seed(&s)
			var got []string
			var es api.Errors
			if err := s.Check(); errors.As(err, &es) {
				for _, e := range es {
					got = append(got, e.Code)
					if e.Field == "" || e.Message == "" {
						t.Errorf("refusal without field or reason: %+v", e)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.codes, got); diff != "" {
				t.Errorf("codes (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzCheckUserData(f *testing.F) {
	for _, s := range []string{"#cloud-config\na: 1\n", "#!/bin/sh\n", "#cloud-config\n- x", "x", "#include\nhttp://x\n", "#cloud-config\n&a [*a]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { _ = CheckUserData(b) })
}

func FuzzCheckNetworkConfig(f *testing.F) {
	f.Add([]byte(DefaultNetworkConfig))
	f.Add([]byte("network: {version: 1}"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = CheckNetworkConfig(b) })
}

func FuzzCheckHostname(f *testing.F) {
	for _, s := range []string{"web1", "a.b.c", "-x", "x..y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckHostname(s) == nil && (strings.ContainsAny(s, " _/\x00") || s == "" || len(s) > 253) {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzCheckSSHKey(f *testing.F) {
	f.Add(edKey)
	f.Add("ssh-rsa AAAA")
	f.Add(`from="x" ` + edKey)
	f.Fuzz(func(t *testing.T, s string) {
		if CheckSSHKey(s) == nil && strings.ContainsAny(s, "\n\r\x00") {
			t.Fatalf("accepted a key over several lines: %q", s)
		}
	})
}
