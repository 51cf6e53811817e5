// Command guestinit is the /init of the small initramfs the end-to-end
// tests boot under qemu-system-ppc64 (and other architectures). It mounts
// /proc, /sys and /dev, then, as the kernel command line says:
//
//   - polyvirt.run=CMD,ARG,... (the default: polyvirt caps -o json
//     --libvirt none): runs the command, prints its output between
//     markers on the console, and powers the machine off;
//   - polyvirt.counter=1: prints a boot line once ("polyvirt-boot" and a
//     random id), then "polyvirt-counter N" every 100 ms, for ever — a
//     guest whose counter goes on without a second boot line ran through
//     whatever happened to it (a live migration);
//   - polyvirt.modules=A.ko,B.ko: with the counter, loads these kernel
//     modules of the initramfs's /modules first (in rounds, so that their
//     order does not matter);
//   - polyvirt.disk=/dev/sda: with the counter, prints "polyvirt-disk" and
//     the first line of that disk, read past the guest's cache (O_DIRECT),
//     every second.
//   - polyvirt.mode=storage: checks the guest's storage instead
//     (storage.go).
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
	params := map[string]string{}
	if cmdline, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, f := range strings.Fields(string(cmdline)) {
			if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "polyvirt.") {
				params[strings.TrimPrefix(k, "polyvirt.")] = v
			}
		}
	}
	if v, ok := params["run"]; ok {
		args = append([]string{"/polyvirt"}, strings.Split(v, ",")...)
	}
	if params["counter"] != "" {
		counter(params)
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

// counter prints the boot line, then the counter (and the disk's first
// line) for ever. A write error (no console) must not end init: the
// kernel would panic.
func counter(params map[string]string) {
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	fmt.Printf("polyvirt-boot %s\n", hex.EncodeToString(id))
	if m := params["modules"]; m != "" {
		loadModules(strings.Split(m, ","))
	}
	disk := params["disk"]
	var lastDisk time.Time
	tick := time.NewTicker(100 * time.Millisecond)
	for n := 0; ; n++ {
		fmt.Printf("polyvirt-counter %d\n", n)
		if disk != "" && time.Since(lastDisk) >= time.Second {
			lastDisk = time.Now()
			line, err := firstLine(disk)
			if err != nil {
				fmt.Printf("polyvirt-disk-error %v\n", err)
			} else {
				fmt.Printf("polyvirt-disk %s\n", line)
			}
		}
		<-tick.C
	}
}

// loadModules loads kernel modules of /modules, in rounds until no more
// loads (a module needs the ones it depends on loaded first).
func loadModules(names []string) {
	left := names
	for round := 0; round < len(names) && len(left) > 0; round++ {
		var again []string
		for _, n := range left {
			f, err := os.Open(filepath.Join("/modules", n))
			if err != nil {
				fmt.Printf("guestinit: module %s: %v\n", n, err)
				continue
			}
			err = unix.FinitModule(int(f.Fd()), "", 0)
			f.Close()
			if err != nil && !errors.Is(err, unix.EEXIST) {
				again = append(again, n)
			}
		}
		left = again
	}
	if len(left) > 0 {
		fmt.Printf("guestinit: modules not loaded: %s\n", strings.Join(left, ", "))
	}
}

// firstLine reads the first line of a block device past the page cache.
func firstLine(dev string) (string, error) {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	raw := make([]byte, 8192)
	off := (4096 - int(uintptr(unsafe.Pointer(&raw[0]))&4095)) & 4095
	buf := raw[off : off+4096]
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(buf[:n], []byte("\n"))
	return string(bytes.TrimRight(line, "\x00")), nil
}
