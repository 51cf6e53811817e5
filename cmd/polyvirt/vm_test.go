package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"polyvirt/internal/api"
	"polyvirt/internal/archspec"
	"polyvirt/internal/vmspec"
)

// runVMCommand executes polyvirt with args and returns stdout, stderr (with
// the error main prints) and the exit status main would use.
func runVMCommand(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if err.Error() != "" {
			fmt.Fprintln(&errOut, "polyvirt:", err) // as main does
		}
	}
	return out.String(), errOut.String(), code
}

func TestVMValidateCommand(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"valid example", []string{"vm", "validate", "-f", "../../examples/ppc64le-disk.yaml"}, 0, []string{`valid ppc64le VM "rhel9-ppc64le"`}},
		{"SPICE on POWER", []string{"vm", "validate", "-f", "../../examples/invalid/ppc64le-spice.yaml"}, 1,
			[]string{"ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS: display.type: SPICE is not available on ppc64le; use VNC"}},
		{"every violation printed", []string{"vm", "validate", "-f", "../../examples/invalid/ppc64le-x86-habits.yaml"}, 1,
			[]string{"MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC", "ACTION_TYPE_FAILED_ILLEGAL_FLOPPY_IS_NOT_SUPPORTED_BY_OS", "SOUND_DEVICE_REQUESTED_ON_NOT_SUPPORTED_ARCH"}},
		{"decoding errors", []string{"vm", "validate", "-f", "../../examples/invalid/x86_64-unknown-field.yaml"}, 1,
			[]string{"DEFINITION_UNKNOWN_FIELD: disks[0].size", "DEFINITION_WRONG_TYPE: memory.sizeMiB"}},
		{"--arch conflicts", []string{"vm", "validate", "-f", "../../examples/x86_64-server.yaml", "--arch", "ppc64le"}, 1, []string{"VM_ARCH_CONFLICT"}},
		{"against a POWER9 host", []string{"vm", "validate", "-f", "../../examples/x86_64-server.yaml", "--host-caps", "../../internal/vmspec/testdata/hostcaps-power9-kvm.json"}, 1,
			[]string{"HOST_CANNOT_RUN_VM_ARCH"}},
		{"no such file", []string{"vm", "validate", "-f", "/nonexistent.yaml"}, 2, nil},
		{"bad --arch", []string{"vm", "validate", "-f", "../../examples/ppc64le-disk.yaml", "--arch", "mips"}, 2, nil},
		{"bad host caps", []string{"vm", "validate", "-f", "../../examples/ppc64le-disk.yaml", "--host-caps", "../../examples/ppc64le-disk.yaml"}, 2, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, code := runVMCommand(t, c.args...)
			if code != c.code {
				t.Errorf("exit status %d, want %d\n%s", code, c.code, out)
			}
			for _, s := range c.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestVMValidateJSON(t *testing.T) {
	out, _, code := runVMCommand(t, "vm", "validate", "-o", "json", "-f", "../../examples/ppc64le-debian-installer.yaml")
	var res struct {
		Valid  bool
		Errors api.Errors
		VM     vmspec.VM
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("%v (exit %d)\n%s", err, code, out)
	}
	if !res.Valid || len(res.Errors) != 0 || res.VM.Display.Video != "vga" || res.VM.Console.Type != "pty" || len(res.VM.Inputs) != 2 {
		t.Errorf("got %+v", res)
	}
	out, _, code = runVMCommand(t, "vm", "validate", "-o", "json", "-f", "../../examples/invalid/ppc64le-spice.yaml")
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.Valid || !res.Errors.Has(api.CodeDisplayType) {
		t.Errorf("%v (exit %d) %+v", err, code, res)
	}
}

func TestDomxmlCommand(t *testing.T) {
	out, _, code := runVMCommand(t, "domxml", "-f", "../../examples/ppc64le-debian-installer.yaml", "--fake-kvm", "--host-arch", "x86_64", "--fake-memory-mib", "512")
	for _, s := range []string{`<domain type="qemu">`, `machine="pseries"`, `<model>POWER8</model>`, `<memory unit="MiB">512</memory>`, `<input type="keyboard" bus="usb">`} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %s:\n%s", s, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	out, _, _ = runVMCommand(t, "domxml", "-f", "../../examples/x86_64-server.yaml", "--fake-kvm", "--host-arch", "ppc64le")
	if !strings.Contains(out, `<type arch="ppc64le" machine="pseries">`) || strings.Contains(out, "spice") || strings.Contains(out, "<sound") {
		t.Errorf("x86_64 VM not rewritten for a POWER host:\n%s", out)
	}
	out, errOut, code := runVMCommand(t, "domxml", "-f", "../../examples/invalid/ppc64le-spice.yaml")
	if code != 1 || out != "" || !strings.Contains(errOut, api.CodeDisplayType) {
		t.Errorf("refused definition: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, _, code := runVMCommand(t, "domxml", "-f", "../../examples/ppc64le-disk.yaml", "--fake-memory-mib", "512"); code != 2 {
		t.Errorf("--fake-memory-mib without --fake-kvm: exit %d", code)
	}
}

func TestArchspecCommand(t *testing.T) {
	out, _, code := runVMCommand(t, "archspec", "ppc64el")
	for _, s := range []string{"vnc/vga, vnc/virtio", "serial/spapr-vty (guest hvc0)", "a multiple of 256 MiB", "max sPAPR VSCSI disks      7"} {
		if !strings.Contains(out, s) {
			t.Errorf("text lacks %q:\n%s", s, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	out, _, _ = runVMCommand(t, "archspec", "amd64", "-o", "json")
	var s archspec.Spec
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Arch != "x86_64" || !s.DisplayAllowed("spice", "qxl") {
		t.Errorf("json: %v %+v", err, s.Arch)
	}
	if _, _, code := runVMCommand(t, "archspec", "mips"); code != 2 {
		t.Errorf("unknown arch: exit %d", code)
	}
}

// TestVMValidateSeveralFiles: vm validate takes several files, with -f
// (repeatable), as arguments, or both (the shell's expansion of
// -f examples/invalid/*.yaml); each file's verdict, its violations under it.
func TestVMValidateSeveralFiles(t *testing.T) {
	invalid, err := filepath.Glob("../../examples/invalid/*.yaml")
	if err != nil || len(invalid) < 2 {
		t.Fatalf("examples/invalid: %v %v", invalid, err)
	}
	good := "../../examples/ppc64le-disk.yaml"
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"-f with the shell's expansion", append([]string{"vm", "validate", "-f"}, invalid...), 1,
			[]string{"../../examples/invalid/ppc64le-spice.yaml: 1 violation(s):\n  ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS: display.type: SPICE is not available on ppc64le; use VNC\n",
				"../../examples/invalid/x86_64-unknown-field.yaml: ", "  DEFINITION_UNKNOWN_FIELD: disks[0].size",
				fmt.Sprintf("%d of %d definitions have violations", len(invalid), len(invalid))}},
		{"-f twice", []string{"vm", "validate", "-f", good, "-f", "../../examples/invalid/ppc64le-spice.yaml"}, 1,
			[]string{good + `: valid ppc64le VM "rhel9-ppc64le"`, "1 of 2 definitions have violations"}},
		{"arguments, all valid", []string{"vm", "validate", good, "../../examples/x86_64-server.yaml"}, 0,
			[]string{good + `: valid ppc64le VM "rhel9-ppc64le"`, `../../examples/x86_64-server.yaml: valid x86_64 VM`}},
		{"one argument as -f", []string{"vm", "validate", "../../examples/invalid/ppc64le-spice.yaml"}, 1,
			[]string{"ACTION_TYPE_FAILED_ILLEGAL_VM_DISPLAY_TYPE_IS_NOT_SUPPORTED_BY_OS: display.type"}},
		{"a file missing among them", []string{"vm", "validate", good, "/nonexistent.yaml"}, 2,
			[]string{"/nonexistent.yaml: cannot be checked:", "1 of 2 files could not be checked, 0 have violations"}},
		{"no file", []string{"vm", "validate"}, 2, []string{"no definition to check: give its file with -f FILE, or files as arguments"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runVMCommand(t, tc.args...)
			all := out + errOut
			if code != tc.code {
				t.Errorf("exit status %d, want %d\n%s", code, tc.code, all)
			}
			for _, s := range tc.contains {
				if !strings.Contains(all, s) {
					t.Errorf("output lacks %q:\n%s", s, all)
				}
			}
			if strings.Contains(all, "unknown command") {
				t.Errorf("a file called a command:\n%s", all)
			}
		})
	}
	// Each violation once.
	out, _, _ := runVMCommand(t, "vm", "validate", "-f", "../../examples/invalid/ppc64le-x86-habits.yaml", "../../examples/invalid/ppc64le-spice.yaml")
	if n := strings.Count(out, "MEMORY_SIZE_NOT_MULTIPLE_OF_256_ON_PPC"); n != 1 {
		t.Errorf("a violation printed %d times:\n%s", n, out)
	}
	// -o json: one verdict per file.
	out, _, code := runVMCommand(t, "vm", "validate", "-o", "json", good, "../../examples/invalid/ppc64le-spice.yaml")
	var res []validation
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || len(res) != 2 || !res[0].Valid || res[0].VM == nil ||
		res[1].Valid || !res[1].Errors.Has(api.CodeDisplayType) || res[1].File != "../../examples/invalid/ppc64le-spice.yaml" {
		t.Errorf("%v (exit %d) %+v", err, code, res)
	}
}

// TestScreenshotOutputIsAFormat: -o is the output format for vm
// screenshot too; a file given to -o is told where it goes.
func TestScreenshotOutputIsAFormat(t *testing.T) {
	_, errOut, code := runVMCommand(t, "vm", "screenshot", "web1", "-o", "screen.png")
	want := `-o "screen.png": want table or json (-o is the output format everywhere; the PNG file goes after the VM's name: polyvirt vm screenshot web1 FILE.png)`
	if code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, want)
	}
}

// TestArchspecUnknown: an unknown architecture and one without rules are
// answered with the same list of architectures.
func TestArchspecUnknown(t *testing.T) {
	list := "polyvirt has rules for aarch64, ppc64, ppc64le, s390x, x86_64"
	for _, a := range []string{"mips", "armv7l", "i686"} {
		_, errOut, code := runVMCommand(t, "archspec", a)
		if code != 2 || !strings.Contains(errOut, list) || strings.Contains(errOut, "[") {
			t.Errorf("archspec %s: exit %d, %q", a, code, errOut)
		}
	}
	out, _, _ := runVMCommand(t, "archspec", "--help")
	if !strings.Contains(out, "aarch64, ppc64, ppc64le, s390x, x86_64, or an") {
		t.Errorf("--help lists another set:\n%s", out)
	}
}
