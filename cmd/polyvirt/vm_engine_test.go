package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
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

// TestVMErrorShowsEveryDetail: each detail of an engine refusal is
// printed once, under a headline of the CLI's own.
func TestVMErrorShowsEveryDetail(t *testing.T) {
	hosts := api.Errors{{Code: "NOT_ENOUGH_MEMORY", Field: "host:h1", Message: "The host h1 ..."}, {Code: "HOST_NOT_UP", Field: "host:h2", Message: "The host h2 ..."},
		{Code: "CPU_LEVEL_TOO_LOW", Field: "host:h2", Message: "The host h2 has a POWER8"}}
	violations := api.Errors{{Code: "A_CODE", Field: "display.type", Message: "SPICE is not available on ppc64le; use VNC"},
		{Code: "B_CODE", Field: "memory.sizeMiB", Message: "1000 MiB is not a multiple of 256 MiB"}}
	tests := []struct {
		name string
		err  *api.Error
		want string
	}{
		{"one detail repeating the error", &api.Error{Status: 422, Code: "X", Message: "m", Details: api.Errors{{Code: "X", Message: "m"}}}, "X: m"},
		{"no host: each host's reasons", &api.Error{Status: 409, Code: "SCHEDULING_ALL_HOSTS_FILTERED_OUT",
			Message: "Cannot run VM a: no host of cluster c satisfies the scheduling constraints (errors has each host's reasons).", Details: hosts},
			"SCHEDULING_ALL_HOSTS_FILTERED_OUT: no host can run the VM; the reasons of each of the 2 hosts:\n" +
				"  NOT_ENOUGH_MEMORY (host:h1): The host h1 ...\n  HOST_NOT_UP (host:h2): The host h2 ...\n  CPU_LEVEL_TOO_LOW (host:h2): The host h2 has a POWER8"},
		{"violations once", &api.Error{Status: 422, Code: "VM_DEFINITION_INVALID",
			Message: "display.type: SPICE is not available on ppc64le; use VNC; memory.sizeMiB: 1000 MiB is not a multiple of 256 MiB", Details: violations},
			"VM_DEFINITION_INVALID: the definition has 2 violations:\n" +
				"  A_CODE (display.type): SPICE is not available on ppc64le; use VNC\n  B_CODE (memory.sizeMiB): 1000 MiB is not a multiple of 256 MiB"},
		{"another code repeating its details", &api.Error{Status: 422, Code: "Y", Message: "two: The host h1 ... and more", Details: hosts[:2]},
			"Y: 2 problems:\n  NOT_ENOUGH_MEMORY (host:h1): The host h1 ...\n  HOST_NOT_UP (host:h2): The host h2 ..."},
		{"another code with its own message", &api.Error{Status: 409, Code: "Z", Message: "the VM is busy", Details: hosts[:1]},
			"Z: the VM is busy\n  NOT_ENOUGH_MEMORY (host:h1): The host h1 ..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := vmError(tc.err).Error()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			for _, d := range tc.err.Details {
				if n := strings.Count(got, d.Message); n != 1 {
					t.Errorf("%q printed %d times", d.Message, n)
				}
			}
		})
	}
	other := errors.New("plain")
	if vmError(other) != other {
		t.Errorf("another error was changed")
	}
}

// TestCreatedNotStarted: a VM whose start fails after vm create --start is
// said to exist, with what to do.
func TestCreatedNotStarted(t *testing.T) {
	err := createdNotStarted("web1", &api.Error{Status: 409, Code: "SCHEDULING_ALL_HOSTS_FILTERED_OUT", Message: "m",
		Details: api.Errors{{Code: "NOT_ENOUGH_MEMORY", Field: "host:h1", Message: "The host h1 ..."}}})
	want := "VM web1 was created, but it did not start: SCHEDULING_ALL_HOSTS_FILTERED_OUT: no host can run the VM; the reasons of each of the 1 hosts:\n" +
		"  NOT_ENOUGH_MEMORY (host:h1): The host h1 ...\n" +
		"Start it again with: polyvirt vm start web1\nor remove it with:    polyvirt vm delete web1"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	err = createdNotStarted("web1", errors.New("VM web1 is Down (polyvirt events --kind vm says why)"))
	if !strings.HasPrefix(err.Error(), "VM web1 was created, but it did not start: VM web1 is Down") || !strings.Contains(err.Error(), "polyvirt vm start web1") {
		t.Errorf("%v", err)
	}
}

// TestVMFlagsRefuseZero: --memory and --cpus of zero or less are errors
// (exit status 2), not the defaults.
func TestVMFlagsRefuseZero(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "0"}, "--memory 0: the memory is a positive number of MiB"},
		{[]string{"--memory", "-5"}, "--memory -5: the memory is a positive number of MiB"},
		{[]string{"--cpus", "0"}, "--cpus 0: a VM has at least 1 vCPU"},
		{[]string{"--cpus", "-1", "--memory", "512"}, "--cpus -1: a VM has at least 1 vCPU"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"vm", "create", "z", "--cluster", "c"}, tc.args...)
			_, errOut, code := runVMCommand(t, args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
		})
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
