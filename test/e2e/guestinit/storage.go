package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// storageMode (polyvirt.mode=storage) checks what polyvirt's storage gave
// the guest: it loads the kernel modules the initramfs carries (in the
// order of /modules/order: CD-ROM, SCSI or SATA, ISO 9660, virtio-blk),
// mounts the cloud-init seed CD-ROM and prints its instance-id and the
// user-data lines that name polyvirt, then works with a marker at the
// start of the first virtio disk: it prints what the disk holds; on an
// empty disk it writes MARKER-A, waits for "go" on the console, writes
// MARKER-B. Then it powers the machine off.
func storageMode() {
	loadOrderedModules()
	seed()
	markers()
}

// The lines the test reads on the console.
const (
	linePrefix = "POLYVIRT-"
)

func say(format string, args ...any) {
	fmt.Printf(linePrefix+format+"\n", args...)
}

// loadOrderedModules loads the modules /modules/order lists, in its order.
func loadOrderedModules() {
	order, err := os.ReadFile("/modules/order")
	if err != nil {
		return
	}
	for _, name := range strings.Fields(string(order)) {
		b, err := os.ReadFile(filepath.Join("/modules", name))
		if err != nil {
			say("MODULE-MISSING: %s", name)
			continue
		}
		if err := unix.InitModule(b, ""); err != nil && err != unix.EEXIST {
			say("MODULE-FAILED: %s: %v", name, err)
		}
	}
}

// waitFor waits until a glob matches, up to d.
func waitFor(glob string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		m, _ := filepath.Glob(glob)
		if len(m) > 0 || time.Now().After(deadline) {
			sort.Strings(m)
			return m
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func seed() {
	devs := waitFor("/sys/block/sr*", 90*time.Second)
	if len(devs) == 0 {
		say("NO-SEED: no CD-ROM appeared")
		return
	}
	dev := "/dev/" + filepath.Base(devs[0])
	_ = os.MkdirAll("/seed", 0o755)
	var err error
	for i := 0; i < 50; i++ {
		if err = syscall.Mount(dev, "/seed", "iso9660", syscall.MS_RDONLY, ""); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		say("SEED-MOUNT-FAILED: %s: %v", dev, err)
		return
	}
	entries, _ := os.ReadDir("/seed")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	say("SEED-FILES: %s", strings.Join(names, " "))
	if b, err := os.ReadFile("/seed/meta-data"); err == nil {
		var md struct {
			InstanceID string `json:"instance-id"`
			Hostname   string `json:"local-hostname"`
		}
		if json.Unmarshal(b, &md) == nil {
			say("INSTANCE-ID: %s", md.InstanceID)
			say("HOSTNAME: %s", md.Hostname)
		} else {
			say("META-DATA-UNREADABLE: %q", b)
		}
	}
	if b, err := os.ReadFile("/seed/user-data"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "polyvirt") {
				say("USER-DATA: %s", strings.TrimSpace(l))
			}
		}
	}
	_ = syscall.Unmount("/seed", 0)
}

func markers() {
	disks := waitFor("/sys/block/vd*", 60*time.Second)
	if len(disks) == 0 {
		say("NO-DISK")
		return
	}
	dev := "/dev/" + filepath.Base(disks[0])
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		say("DISK-FAILED: %v", err)
		return
	}
	defer f.Close()
	buf := make([]byte, 512)
	if _, err := f.ReadAt(buf, 0); err != nil {
		say("DISK-FAILED: %v", err)
		return
	}
	held := string(bytes.TrimRight(buf[:64], "\x00"))
	say("DISK-HOLDS: [%s]", held)
	if held != "" {
		return
	}
	write := func(m string) {
		copy(buf, make([]byte, 512))
		copy(buf, m)
		if _, err := f.WriteAt(buf, 0); err != nil {
			say("DISK-FAILED: %v", err)
			return
		}
		if err := f.Sync(); err != nil {
			say("DISK-FAILED: %v", err)
			return
		}
		say("WROTE: %s", m)
	}
	write("MARKER-A")
	say("WAITING-FOR-GO")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if strings.TrimSpace(in.Text()) == "go" {
			break
		}
	}
	write("MARKER-B")
}
