// Command guestinit is the /init of the small initramfs the end-to-end
// tests boot under qemu-system-ppc64 (and other architectures): it mounts
// /proc, /sys and /dev, runs the command given on the kernel command line
// after "polyvirt.run=" (commas separate the arguments), prints its output
// between markers on the console, and powers the machine off. With
// "polyvirt.mode=storage" it checks the guest's storage instead
// (storage.go).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// Markers around the command's output on the console.
const (
	begin = "=====POLYVIRT-BEGIN====="
	end   = "=====POLYVIRT-END====="
)

func main() {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := syscall.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			fmt.Printf("guestinit: mount %s: %v\n", m.dst, err)
		}
	}
	if cmdline, err := os.ReadFile("/proc/cmdline"); err == nil && slices.Contains(strings.Fields(string(cmdline)), "polyvirt.mode=storage") {
		storageMode()
		syscall.Sync()
		_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
		select {}
	}
	args := []string{"/polyvirt", "caps", "-o", "json", "--libvirt", "none"}
	if cmdline, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, f := range strings.Fields(string(cmdline)) {
			if v, ok := strings.CutPrefix(f, "polyvirt.run="); ok {
				args = append([]string{"/polyvirt"}, strings.Split(v, ",")...)
			}
		}
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	fmt.Println(begin)
	os.Stdout.Write(out)
	fmt.Println(end)
	if err != nil {
		fmt.Printf("guestinit: %s: %v\n", strings.Join(args, " "), err)
	}
	syscall.Sync()
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
