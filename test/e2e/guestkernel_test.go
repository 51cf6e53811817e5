package e2e

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"polyvirt/internal/initramfs"
)

// The guests of the storage tests boot Debian's installer kernels with the
// test's init as PID 1. Their drivers for CD-ROMs, ISO 9660 and virtio
// disks are modules the installer's own initrd does not carry: they come
// from the kernel packages of the same ABI (linux-image-6.1.0-N-amd64 and
// -powerpc64le), which scripts/lib.sh (ensure_guest_kernels) downloads
// and unpacks under guestKernelsDir.

// debianAMD64Kernel is Debian's amd64 installer kernel
// (debian-installer-12-netboot-amd64).
const debianAMD64Kernel = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux"

// guestKernelsDir holds the unpacked kernel packages, one directory per
// Debian architecture (POLYVIRT_GUEST_KERNELS overrides it).
func guestKernelsDir() string {
	if d := os.Getenv("POLYVIRT_GUEST_KERNELS"); d != "" {
		return d
	}
	return "/var/cache/polyvirt/guest-kernels"
}

// guestModules returns the kernel modules named (and those they depend
// on), in an order they load in, for the kernel of a Debian architecture
// whose image is kernel.
func guestModules(t *testing.T, debArch, kernel string, names ...string) (order []string, files map[string][]byte) {
	t.Helper()
	base := filepath.Join(guestKernelsDir(), debArch, "lib", "modules")
	vers, _ := os.ReadDir(base)
	if len(vers) != 1 {
		missing(t, "the "+debArch+" kernel modules in "+base+" (scripts/lib.sh ensure_guest_kernels)")
	}
	ver := vers[0].Name()
	img, err := os.ReadFile(kernel)
	if err != nil {
		missing(t, kernel)
	}
	if !bytes.Contains(img, []byte(ver)) {
		t.Fatalf("the modules in %s are for %s, not the installer kernel %s: run scripts/test.sh again (ensure_guest_kernels)", base, ver, kernel)
	}
	paths := map[string]string{}
	filepath.WalkDir(filepath.Join(base, ver), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ko") {
			paths[modName(filepath.Base(p))] = p
		}
		return nil
	})
	files = map[string][]byte{}
	seen := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		name = modName(name)
		if seen[name] {
			return
		}
		seen[name] = true
		p, ok := paths[name]
		if !ok {
			return // built into the kernel
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, dep := range moduleDepends(t, p, b) {
			visit(dep)
		}
		order = append(order, name+".ko")
		files[name+".ko"] = b
	}
	for _, n := range names {
		visit(n)
	}
	return order, files
}

func modName(s string) string { return strings.ReplaceAll(strings.TrimSuffix(s, ".ko"), "-", "_") }

// moduleDepends reads a module's depends= from its .modinfo section.
func moduleDepends(t *testing.T, path string, b []byte) []string {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s := f.Section(".modinfo")
	if s == nil {
		t.Fatalf("%s: no .modinfo", path)
	}
	data, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok && len(v) > 0 {
			return strings.Split(string(v), ",")
		}
	}
	return nil
}

// storageInitramfs writes an initramfs with the test's init (for goarch)
// and the modules of a Debian architecture's kernel it needs to reach its
// seed CD-ROM and its virtio disk; it returns the modules in the order
// they load in.
func storageInitramfs(t *testing.T, goarch, debArch, kernel, out string, modules ...string) []string {
	t.Helper()
	order, mods := guestModules(t, debArch, kernel, modules...)
	init := goBuild(t, goarch, "./test/e2e/guestinit", filepath.Join(t.TempDir(), "init"))
	ib, err := os.ReadFile(init)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]initramfs.File{"init": {Data: ib, Mode: 0o755},
		"modules/order": {Data: []byte(strings.Join(order, "\n") + "\n"), Mode: 0o644}}
	for n, b := range mods {
		files["modules/"+n] = initramfs.File{Data: b, Mode: 0o644}
	}
	var buf bytes.Buffer
	if err := initramfs.Write(&buf, files); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return order
}
