package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/initramfs"
)

// debianPPCKernel is Debian's ppc64el installer kernel
// (debian-installer-12-netboot-ppc64el).
const debianPPCKernel = "/usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/vmlinux"

// TestCapsOnRealPPC64LEKernel cross-compiles polyvirt for linux/ppc64le,
// boots it as part of an initramfs on Debian's ppc64el kernel under
// qemu-system-ppc64 -M pseries (POWER8 and POWER9 CPUs, TCG), runs
// `polyvirt caps -o json` there and checks what it read from a real POWER
// /proc and device tree.
func TestCapsOnRealPPC64LEKernel(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	qemu, err := exec.LookPath("qemu-system-ppc64")
	if err != nil {
		missing(t, "qemu-system-ppc64")
	}
	if _, err := os.Stat(debianPPCKernel); err != nil {
		missing(t, debianPPCKernel)
	}
	dir := t.TempDir()
	polyvirt := goBuild(t, "ppc64le", "./cmd/polyvirt", filepath.Join(dir, "polyvirt"))
	init := goBuild(t, "ppc64le", "./test/e2e/guestinit", filepath.Join(dir, "init"))
	initrd := filepath.Join(dir, "initramfs.cpio")
	writeInitramfs(t, initrd, map[string]string{"init": init, "polyvirt": polyvirt})

	for _, tc := range []struct {
		cpu   string
		smp   int
		model string
	}{
		{"POWER8", 2, "POWER8"},
		{"POWER9", 3, "POWER9"},
	} {
		t.Run(tc.cpu, func(t *testing.T) {
			t.Parallel()
			out := bootPseries(t, qemu, tc.cpu, tc.smp, initrd)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("%s guest printed:\n%s", tc.cpu, out)
				}
			})
			var r hostreport.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("the guest printed no JSON report: %v\n%s", err, out)
			}
			if r.Arch != "ppc64le" || r.EffectiveArch != "ppc64le" {
				t.Errorf("arch %q effective %q; want ppc64le", r.Arch, r.EffectiveArch)
			}
			if r.CPU.Platform != "pSeries" {
				t.Errorf("platform %q; want pSeries", r.CPU.Platform)
			}
			if !strings.HasPrefix(r.CPU.Model, tc.model) {
				t.Errorf("cpu model %q; want the %s QEMU presents", r.CPU.Model, tc.model)
			}
			if r.CPU.Vendor != "IBM" {
				t.Errorf("vendor %q; want IBM", r.CPU.Vendor)
			}
			if len(r.CPU.OnlineCPUs) != tc.smp || r.CPU.TotalCPUs != tc.smp {
				t.Errorf("online CPUs %v, total %d; want %d (-smp)", r.CPU.OnlineCPUs, r.CPU.TotalCPUs, tc.smp)
			}
			if r.Hardware.ProductName != "IBM pSeries (emulated by qemu)" || r.Hardware.Family != "pSeries" {
				t.Errorf("identity %+v; want the pseries device tree's", r.Hardware)
			}
			if r.Hardware.Source != "device-tree" {
				t.Errorf("identity source %q; want device-tree", r.Hardware.Source)
			}
			if !containsString(r.CPU.Flags, "powernv") {
				t.Errorf("flags %v lack the powernv vendor marker", r.CPU.Flags)
			}
			if r.MemoryMiB < 900 || r.MemoryMiB > 1024 {
				t.Errorf("memory %d MiB; want about 1024 (-m 1024)", r.MemoryMiB)
			}
		})
	}
}

func writeInitramfs(t *testing.T, path string, files map[string]string) {
	t.Helper()
	entries := map[string]initramfs.File{}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		entries[name] = initramfs.File{Data: b, Mode: 0o755}
	}
	var buf bytes.Buffer
	if err := initramfs.Write(&buf, entries); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bootPseries boots the initramfs on a pseries machine and returns what the
// guest printed between the markers.
func bootPseries(t *testing.T, qemu, cpu string, smp int, initrd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-M", "pseries", "-cpu", cpu, "-smp", strconv.Itoa(smp),
		"-m", "1024", "-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot",
		"-kernel", debianPPCKernel, "-initrd", initrd, "-append", "console=hvc0 quiet")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s guest ran %s", cpu, time.Since(start).Round(time.Second))
	text, ok := between(out.String(), "=====POLYVIRT-BEGIN=====", "=====POLYVIRT-END=====")
	if !ok {
		t.Fatalf("qemu (%v) printed no polyvirt output:\n%s", err, tail(out.String(), 4000))
	}
	return text
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
