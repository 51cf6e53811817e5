package main

import (
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

func TestVMFlagsDefinition(t *testing.T) {
	tests := []struct {
		name  string
		flags vmFlags
		args  []string
		want  *vmspec.VM
		err   string
	}{
		{"flags only", vmFlags{memory: 512, cpus: 2, arch: "ppc64le", kernel: "/k", cmdline: "console=hvc0", disks: []string{"/a.qcow2"}, display: "none"},
			[]string{"web"}, &vmspec.VM{Name: "web", Arch: "ppc64le", Memory: &vmspec.Memory{SizeMiB: 512},
				CPU: &vmspec.CPU{Sockets: 1, Cores: 2, Threads: 1}, Kernel: &vmspec.Kernel{Path: "/k", Cmdline: "console=hvc0"},
				Disks: []vmspec.Disk{{Source: "/a.qcow2"}}, Display: &vmspec.Display{Type: "none"}}, ""},
		{"a file, its name overridden", vmFlags{file: "../../examples/ppc64le-debian-installer.yaml", name: "deb2", cpuModel: "POWER9"}, nil,
			nil, ""},
		{"no name", vmFlags{memory: 512}, nil, nil, "the VM needs a name"},
		{"two names", vmFlags{name: "a"}, []string{"b"}, nil, "the name is b or a?"},
		{"a refused file", vmFlags{file: "../../examples/invalid/x86_64-unknown-field.yaml"}, nil, nil, "DEFINITION_UNKNOWN_FIELD: disks[0].size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.flags.definition(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if got.Name != "deb2" || got.CPU.Model != "POWER9" || got.Kernel == nil || got.Arch != "ppc64le" {
					t.Errorf("from the file: %+v", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestVMErrorShowsEveryDetail(t *testing.T) {
	one := &api.Error{Status: 422, Code: "X", Message: "m", Details: api.Errors{{Code: "X", Message: "m"}}}
	if got := vmError(one).Error(); got != "X: m" {
		t.Errorf("one detail repeating the error: %q", got)
	}
	many := &api.Error{Status: 409, Code: "SCHEDULING_ALL_HOSTS_FILTERED_OUT", Message: "Cannot run VM a",
		Details: api.Errors{{Code: "NOT_ENOUGH_MEMORY", Field: "host:h1", Message: "The host h1 ..."}, {Code: "HOST_NOT_UP", Field: "host:h2", Message: "The host h2 ..."}}}
	want := "SCHEDULING_ALL_HOSTS_FILTERED_OUT: Cannot run VM a\n  NOT_ENOUGH_MEMORY (host:h1): The host h1 ...\n  HOST_NOT_UP (host:h2): The host h2 ..."
	if got := vmError(many).Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	other := errors.New("plain")
	if vmError(other) != other {
		t.Errorf("another error was changed")
	}
}

func TestUpWithoutLibvirt(t *testing.T) {
	_, _, code := runVMCommand(t, "up", "--libvirt", "qemu+unix:///system?socket=/nonexistent/libvirt-sock", "--data-dir", t.TempDir())
	if code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
	root := newRoot()
	root.SetArgs([]string{"up", "--libvirt", "qemu+unix:///system?socket=/nonexistent/libvirt-sock", "--data-dir", t.TempDir()})
	root.SetOut(&strings.Builder{})
	root.SetErr(&strings.Builder{})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "sudo ./scripts/up.sh") || !strings.Contains(err.Error(), "cannot reach it at qemu+unix:///system?socket=/nonexistent/libvirt-sock") {
		t.Errorf("error: %v", err)
	}
}

func TestLabPlan(t *testing.T) {
	var lb lab
	if err := lb.planHosts("t-"); err != nil {
		t.Fatal(err)
	}
	real := arch.FromGOARCH(runtime.GOARCH)
	ca, _ := archspec.ClusterArch(real)
	type host struct{ Name, Cluster, ClusterArch, CPUType, Profile, DomainPrefix string }
	var got []host
	for _, h := range lb.Hosts {
		if _, _, err := net.SplitHostPort(h.Address); err != nil {
			t.Errorf("address %q", h.Address)
		}
		got = append(got, host{h.Name, h.Cluster, h.ClusterArch.String(), h.CPUType, h.Profile, h.DomainPrefix})
	}
	want := []host{
		{"t-" + string(real) + "-a", "t-" + string(ca), string(ca), "", "", "lab-t-" + string(real) + "-a-"},
		{"t-power8-a", "t-power", "", "IBM POWER8", "s822l-power8e", "lab-t-power8-a-"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A second plan keeps the first.
	first := lb.Hosts[0].Address
	if err := lb.planHosts("other-"); err != nil || lb.Hosts[0].Address != first || lb.Hosts[0].Name != "t-"+string(real)+"-a" {
		t.Errorf("replanned: %+v %v", lb.Hosts, err)
	}
	dir := t.TempDir()
	lb.EngineURL = "https://127.0.0.1:1"
	if err := saveLab(dir, &lb); err != nil {
		t.Fatal(err)
	}
	back, err := loadLab(dir)
	if err != nil || back.EngineURL != lb.EngineURL || len(back.Hosts) != 2 {
		t.Errorf("loaded %+v %v", back, err)
	}
	if fresh, err := loadLab(filepath.Join(dir, "none")); err != nil || len(fresh.Hosts) != 0 {
		t.Errorf("no lab yet: %+v %v", fresh, err)
	}
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
