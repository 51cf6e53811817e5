package lab

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
)

func TestPlanHosts(t *testing.T) {
	for _, tc := range []struct{ native, ca arch.Arch }{{arch.X86_64, arch.X86_64}, {arch.PPC64LE, arch.PPC64}, {arch.AArch64, arch.AArch64}} {
		hosts, err := planHosts(tc.native, "t-", "lab-", true)
		if err != nil {
			t.Fatal(err)
		}
		native, ca := tc.native, tc.ca
		type host struct {
			Name, Cluster, ClusterArch, CPUType, Profile, DomainPrefix string
			OwnDaemon                                                  bool
		}
		var got []host
		for _, h := range hosts {
			for _, a := range []string{h.Address, h.Migration} {
				if _, _, err := net.SplitHostPort(a); err != nil {
					t.Errorf("address %q", a)
				}
			}
			if h.Address == h.Migration {
				t.Errorf("%s: one port for the agent and libvirt's TLS", h.Name)
			}
			got = append(got, host{h.Name, h.Cluster, h.ClusterArch.String(), h.CPUType, h.Profile, h.DomainPrefix, h.OwnDaemon})
		}
		want := []host{
			{"t-" + native.String() + "-a", "t-" + ca.String(), ca.String(), "", "", "lab-t-" + native.String() + "-a-", false},
			{"t-power8-a", "t-power", "", "IBM POWER8", "s822l-power8e", "lab-t-power8-a-", false},
			{"t-power8-b", "t-power", "", "IBM POWER8", "s822l-power8e", "lab-t-power8-b-", true},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", native, diff)
		}
	}
	if _, err := planHosts(arch.I686, "", "lab-", true); err == nil {
		t.Errorf("a plan for i686, an architecture without rules")
	}
	other, err := planHosts(arch.X86_64, "", "rd7-", false)
	if err != nil {
		t.Fatal(err)
	}
	if other[1].Name != "power8-a" || other[1].Cluster != "power" || other[1].DomainPrefix != "rd7-power8-a-" || len(other) != 2 {
		t.Errorf("no name prefix, domain prefix rd7-, no daemon of its own: %+v", other)
	}
}

// TestRecordUpgrade: a lab made before migrations gets its hosts' libvirt
// TLS ports and power8-b, named and prefixed as its power8-a.
func TestRecordUpgrade(t *testing.T) {
	old := &record{Hosts: []Host{
		{Name: "t-x86_64-a", Cluster: "t-x86_64", Address: "127.0.0.1:7001", DomainPrefix: "lab-t-x86_64-a-"},
		{Name: "t-power8-a", Cluster: "t-power", CPUType: "IBM POWER8", Profile: "s822l-power8e", Address: "127.0.0.1:7002", DomainPrefix: "lab-t-power8-a-"},
	}}
	changed, err := old.upgrade(true)
	if err != nil || !changed {
		t.Fatalf("upgrade: %v %v", changed, err)
	}
	if len(old.Hosts) != 3 {
		t.Fatalf("hosts: %+v", old.Hosts)
	}
	b := old.Hosts[2]
	if b.Name != "t-power8-b" || b.Cluster != "t-power" || !b.OwnDaemon || b.DomainPrefix != "lab-t-power8-b-" || b.Profile != "s822l-power8e" {
		t.Errorf("power8-b: %+v", b)
	}
	for _, h := range old.Hosts {
		if h.Migration == "" {
			t.Errorf("%s has no libvirt TLS port", h.Name)
		}
	}
	if changed, err := old.upgrade(true); err != nil || changed {
		t.Errorf("a second upgrade changed %v (%v)", changed, err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	hosts, err := planHosts(arch.X86_64, "t-", DefaultDomainPrefix, true)
	if err != nil {
		t.Fatal(err)
	}
	rec := &record{EngineURL: "https://127.0.0.1:1", Listen: "127.0.0.1:0", Hosts: hosts}
	if err := saveRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, RecordFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v %v", RecordFile, fi, err)
	}
	back, err := loadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, back, cmp.AllowUnexported(record{})); diff != "" {
		t.Errorf("(-saved +loaded):\n%s", diff)
	}
	fresh, err := loadRecord(filepath.Join(dir, "none"))
	if err != nil || len(fresh.Hosts) != 0 || fresh.EngineURL != "" {
		t.Errorf("no lab yet: %+v %v", fresh, err)
	}
}

func TestParseRecordRefuses(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", `{"hosts": [`, "unexpected end of JSON input"},
		{"wrong type", `{"hosts": {}}`, "cannot unmarshal object"},
		{"no name", `{"hosts": [{"cluster": "c", "address": "127.0.0.1:1"}]}`, "hosts[0].name: empty"},
		{"twice", `{"hosts": [{"name": "a", "cluster": "c", "address": "127.0.0.1:1"}, {"name": "a", "cluster": "c", "address": "127.0.0.1:2"}]}`,
			`hosts[1].name: "a" appears twice`},
		{"no cluster", `{"hosts": [{"name": "a", "address": "127.0.0.1:1"}]}`, "hosts[0].cluster: empty"},
		{"path in the name", `{"hosts": [{"name": "../a", "cluster": "c", "address": "127.0.0.1:1"}]}`, `hosts[0].name: "../a" cannot name a directory`},
		{"bad address", `{"hosts": [{"name": "a", "cluster": "c", "address": "nowhere"}]}`, `hosts[0].address: "nowhere"`},
		{"too big", `{"engineUrl": "` + strings.Repeat("x", maxRecordSize) + `"}`, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRecord([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, RecordFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadRecord(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, RecordFile)) {
		t.Errorf("a broken record's error names the file: %v", err)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"engineUrl":"https://127.0.0.1:8443","listen":"127.0.0.1:8443","hosts":[{"name":"x86_64-a","cluster":"x86_64","address":"127.0.0.1:40001","domainPrefix":"lab-x86_64-a-"}]}`))
	f.Add([]byte(`{"hosts":[{"name":"","cluster":""}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, h := range r.Hosts {
			if h.Name == "" || h.Cluster == "" || seen[h.Name] || strings.ContainsAny(h.Name, "/\\\x00") {
				t.Fatalf("accepted a bad host %+v", h)
			}
			seen[h.Name] = true
		}
	})
}

func TestEngineURLFor(t *testing.T) {
	for addr, want := range map[string]string{"127.0.0.1:8443": "https://127.0.0.1:8443", "[::]:8443": "https://127.0.0.1:8443",
		"0.0.0.0:9": "https://127.0.0.1:9", "[::1]:7": "https://[::1]:7"} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := engineURLFor(a); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}

func TestSecondNative(t *testing.T) {
	hosts, err := planHosts(arch.X86_64, "t-", "lab-", true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secondNative(hosts[0], "t-", arch.X86_64, "lab-")
	if err != nil {
		t.Fatal(err)
	}
	want := Host{Name: "t-x86_64-b", Cluster: hosts[0].Cluster, ClusterArch: hosts[0].ClusterArch, OwnDaemon: true,
		DomainPrefix: "lab-t-x86_64-b-", Address: b.Address, Migration: b.Migration}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("x86_64-b (-want +got):\n%s", diff)
	}
	if b.Address == "" || b.Migration == "" || b.Address == b.Migration {
		t.Errorf("ports: agent %q, libvirt %q", b.Address, b.Migration)
	}
}

// TestFreePortBelowEphemeralRange checks that a lab's recorded ports are
// below the range Linux gives to other processes' connections, and free.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, rangeText string
		low             int
	}{
		{"Linux's default", "32768\t60999\n", 32768},
		{"a moved range", "40000 50000\n", 40000},
		{"no such file: the default", "", 32768},
		{"garbage: the default", "x y\n", 32768},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "missing")
			if tc.rangeText != "" {
				file = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
				if err := os.WriteFile(file, []byte(tc.rangeText), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for range 20 {
				addr, err := freePort(file)
				if err != nil {
					t.Fatal(err)
				}
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					t.Fatal(err)
				}
				n, _ := strconv.Atoi(port)
				if host != "127.0.0.1" || n < 1024 || n >= tc.low {
					t.Fatalf("freePort = %s, want 127.0.0.1 with a port in [1024, %d)", addr, tc.low)
				}
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatalf("the port freePort gave is not free: %v", err)
				}
				ln.Close()
			}
		})
	}
}

// TestEngineSocket: the lab's engine socket is in its engine directory,
// and none when that path is longer than a unix socket's.
func TestEngineSocket(t *testing.T) {
	for dir, want := range map[string]string{
		"/var/lib/polyvirt/lab":        "unix:///var/lib/polyvirt/lab/engine/engine.sock",
		"/" + strings.Repeat("d", 100): "",
	} {
		if got := (&Lab{dir: dir}).EngineSocket(); got != want {
			t.Errorf("lab in %.30s…: socket %q, want %q", dir, got, want)
		}
	}
}
