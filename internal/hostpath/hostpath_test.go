package hostpath

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/vmspec"
)

// qcow2Image makes the first bytes of a qcow2 image: a version 3 header,
// the header extensions (backing format, external data file) and the
// backing file's name.
func qcow2Image(backing, backingFormat, dataFile string) []byte {
	b := make([]byte, 104)
	be := binary.BigEndian
	copy(b, qcow2Magic)
	be.PutUint32(b[4:], 3)
	be.PutUint32(b[20:], 16) // 64 KiB clusters
	be.PutUint64(b[24:], 1<<30)
	be.PutUint32(b[96:], 4)
	be.PutUint32(b[100:], 104)
	ext := func(typ uint32, data string) {
		h := make([]byte, 8)
		be.PutUint32(h, typ)
		be.PutUint32(h[4:], uint32(len(data)))
		b = append(b, h...)
		b = append(b, data...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
	}
	if backingFormat != "" {
		ext(extBackingFormat, backingFormat)
	}
	if dataFile != "" {
		be.PutUint64(b[72:], 1<<2)
		ext(extDataFile, dataFile)
	}
	b = append(b, make([]byte, 8)...) // end of the extensions
	if backing != "" {
		be.PutUint64(b[8:], uint64(len(b)))
		be.PutUint32(b[16:], uint32(len(backing)))
		b = append(b, backing...)
	}
	return b
}

// tree makes a host file tree under a temporary root: the places of the
// default policy, images of every kind, links in and out, a decoy
// /etc/shadow.
func tree(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	file := func(p string, data []byte) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	img := "/var/lib/polyvirt/images/"
	file("/etc/shadow", []byte("root:$6$secret:19000:0:99999:7:::\n"))
	file(img+"a.img", make([]byte, 4096))
	file(img+"disk.qcow2", qcow2Image("", "", ""))
	file(img+"overlay.qcow2", qcow2Image("disk.qcow2", "qcow2", ""))
	file(img+"overlay2.qcow2", qcow2Image(img+"overlay.qcow2", "qcow2", ""))
	file(img+"raw-backed.qcow2", qcow2Image("a.img", "raw", ""))
	file(img+"evil-backing.qcow2", qcow2Image("/etc/shadow", "raw", ""))
	file(img+"climbing-backing.qcow2", qcow2Image("../../../../etc/shadow", "raw", ""))
	file(img+"json-backing.qcow2", qcow2Image(`json:{"driver":"file","filename":"/etc/shadow"}`, "raw", ""))
	file(img+"nbd-backing.qcow2", qcow2Image("nbd://127.0.0.1:10809/x", "raw", ""))
	file(img+"unformatted-backing.qcow2", qcow2Image("a.img", "", ""))
	file(img+"datafile.qcow2", qcow2Image("", "", "/etc/shadow"))
	file(img+"not-qcow2.qcow2", []byte("plain bytes, no magic at all"))
	file(img+"sub/deep.img", []byte("x"))
	link(img+"link-in", "a.img")
	link(img+"link-out", "/etc/shadow")
	link(img+"link-up", "../../../../etc/shadow")
	link(img+"link-proc", "/proc/self/root/etc/shadow")
	link(img+"link-dangling-out", "/etc/cron.d/polyvirt")
	link(img+"loop1", "loop2")
	link(img+"loop2", "loop1")
	link(img+"dir-link", "/etc")
	link(img+"link-out-backing.qcow2", "evil-backing.qcow2")
	if err := os.Link(filepath.Join(root, "/etc/shadow"), filepath.Join(root, img+"hard")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, img+"fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	file("/usr/lib/debian-installer/images/12/ppc64el/vmlinux", []byte("kernel"))
	file("/usr/lib/debian-installer/images/12/ppc64el/initrd.gz", []byte("initrd"))
	file("/boot/vmlinuz", []byte("host kernel"))
	// /data is a link to where the images of the custom policy are.
	file("/srv/store/x.img", []byte("x"))
	link("/data", "/srv/store")
	link("/dev/disk/by-id/virtio-data", "../../vdb")
	file("/dev/vdb", []byte("not a device"))
	return root
}

const consoleFile = "/var/lib/polyvirt/agent/consoles/4b1d.log"

type verdict struct{ Code, Field string }

func verdicts(errs api.Errors) []verdict {
	var out []verdict
	for _, e := range errs {
		out = append(out, verdict{e.Code, e.Field})
	}
	return out
}

func TestCheck(t *testing.T) {
	root := tree(t)
	img := "/var/lib/polyvirt/images/"
	custom := Policy{Disk: []string{"/data"}, BlockDevices: []string{"/dev/disk/by-id/virtio-data"}}
	const f = "disks[0].source"
	disk := func(p string) Ref { return Ref{Field: f, Path: p, Use: Disk} }
	qcow := func(p string) Ref { return Ref{Field: f, Path: p, Use: Disk, Format: "qcow2"} }
	no := []verdict{{api.CodePathNotAllowed, f}}
	cases := []struct {
		name   string
		policy Policy
		ref    Ref
		mode   Mode
		want   []verdict
		// says is a piece of the message.
		says string
	}{
		{"image in the images directory", Default(), disk(img + "a.img"), AtStart, nil, ""},
		{"image in a subdirectory", Default(), disk(img + "sub/deep.img"), AtStart, nil, ""},
		{"/etc/shadow", Default(), disk("/etc/shadow"), AtStart, no, "outside the places this host allows for disk images (/var/lib/polyvirt/images)"},
		{"/etc/shadow at create", Default(), disk("/etc/shadow"), AtCreate, no, "host_paths.disk"},
		{"the images directory itself", Default(), disk("/var/lib/polyvirt/images"), AtStart, no, ""},
		{"a link that stays in", Default(), disk(img + "link-in"), AtStart, nil, ""},
		{"a link out", Default(), disk(img + "link-out"), AtStart, no, `which leads to "/etc/shadow"`},
		{"a link climbing out", Default(), disk(img + "link-up"), AtStart, no, `which leads to "/etc/shadow"`},
		{"a link through /proc", Default(), disk(img + "link-proc"), AtStart, no, "/proc"},
		{"a dangling link out, at create", Default(), disk(img + "link-dangling-out"), AtCreate, no, "/etc/cron.d/polyvirt"},
		{"a directory link out", Default(), disk(img + "dir-link/shadow"), AtStart, no, `which leads to "/etc/shadow"`},
		{"a loop of links", Default(), disk(img + "loop1"), AtStart, no, "symbolic links"},
		{"a hard link", Default(), disk(img + "hard"), AtStart, no, "2 hard links"},
		{"a named pipe", Default(), disk(img + "fifo"), AtStart, no, "a named pipe"},
		{"a directory", Default(), disk(img + "sub"), AtStart, no, "a directory"},
		{"a missing image at create", Default(), disk(img + "later.img"), AtCreate, nil, ""},
		{"a missing image at start", Default(), disk(img + "later.img"), AtStart, []verdict{{api.CodePathNotFound, f}}, "does not exist"},
		{"a relative path", Default(), disk("images/a.img"), AtStart, no, "clean absolute"},
		{"a path with ..", Default(), disk(img + "../../../../etc/shadow"), AtStart, no, "clean absolute"},
		{"an empty path", Default(), disk(""), AtStart, no, "clean absolute"},
		{"qcow2 image", Default(), qcow(img + "disk.qcow2"), AtStart, nil, ""},
		{"qcow2 overlay on an image beside it", Default(), qcow(img + "overlay.qcow2"), AtStart, nil, ""},
		{"qcow2 chain of two", Default(), qcow(img + "overlay2.qcow2"), AtStart, nil, ""},
		{"qcow2 on a raw image", Default(), qcow(img + "raw-backed.qcow2"), AtStart, nil, ""},
		{"qcow2 backed by /etc/shadow", Default(), qcow(img + "evil-backing.qcow2"), AtStart, no, `backed by "/etc/shadow"`},
		{"qcow2 backed by a climbing name", Default(), qcow(img + "climbing-backing.qcow2"), AtStart, no, "outside"},
		{"qcow2 backed through JSON", Default(), qcow(img + "json-backing.qcow2"), AtStart, no, "protocol or JSON"},
		{"qcow2 backed through NBD", Default(), qcow(img + "nbd-backing.qcow2"), AtStart, no, "protocol or JSON"},
		{"qcow2 backing without a format", Default(), qcow(img + "unformatted-backing.qcow2"), AtStart, no, "without its format"},
		{"qcow2 with an external data file", Default(), qcow(img + "datafile.qcow2"), AtStart, no, "another file"},
		{"qcow2 that is not", Default(), qcow(img + "not-qcow2.qcow2"), AtStart, no, "not a qcow2 image"},
		{"a link to a bad qcow2, at create", Default(), qcow(img + "link-out-backing.qcow2"), AtCreate, no, `backed by "/etc/shadow"`},
		{"a raw image that looks bad is raw", Default(), disk(img + "evil-backing.qcow2"), AtStart, nil, ""},
		{"CD-ROM in the installer directory", Default(), Ref{Field: f, Path: "/usr/lib/debian-installer/images/12/ppc64el/initrd.gz", Use: CDROM}, AtStart, nil, ""},
		{"disk in the installer directory", Default(), disk("/usr/lib/debian-installer/images/12/ppc64el/initrd.gz"), AtStart, no, "/var/lib/polyvirt/images"},
		{"kernel in the installer directory", Default(), Ref{Field: "kernel.path", Path: "/usr/lib/debian-installer/images/12/ppc64el/vmlinux", Use: Kernel}, AtStart, nil, ""},
		{"the host's own kernel", Default(), Ref{Field: "kernel.path", Path: "/boot/vmlinuz", Use: Kernel}, AtStart,
			[]verdict{{api.CodePathNotAllowed, "kernel.path"}}, "kernels (/var/lib/polyvirt/images or /usr/lib/debian-installer/images)"},
		{"initrd from /root", Default(), Ref{Field: "kernel.initrd", Path: "/root/.ssh/id_rsa", Use: Initrd}, AtCreate,
			[]verdict{{api.CodePathNotAllowed, "kernel.initrd"}}, "initial ramdisks"},
		{"a directory that is a link", custom, disk("/data/x.img"), AtStart, nil, ""},
		{"where a directory link leads", custom, disk("/srv/store/x.img"), AtStart, nil, ""},
		{"the images directory under a custom policy", custom, disk(img + "a.img"), AtStart, no, "(/data)"},
		{"a block device not listed", Default(), Ref{Field: f, Path: "/dev/vda", Use: Block}, AtCreate, no, "block devices (nowhere)"},
		{"a block device listed by another name", custom, Ref{Field: f, Path: "/dev/vdb", Use: Block}, AtStart, no, "not a block device"},
		{"a block device not there at create", custom, Ref{Field: f, Path: "/dev/disk/by-id/virtio-data", Use: Block}, AtCreate, no, "not a block device"},
		{"the RNG's device", Default(), Ref{Field: "rng.backend", Path: "/dev/urandom", Use: RNG}, AtCreate, nil, ""},
		{"an RNG fed by a file", Default(), Ref{Field: "rng.backend", Path: "/etc/shadow", Use: RNG}, AtCreate,
			[]verdict{{api.CodePathNotAllowed, "rng.backend"}}, "/dev/urandom, /dev/random or /dev/hwrng"},
		{"the agent's console file", Default(), Ref{Field: "console.log", Path: consoleFile, Use: Console}, AtStart, nil, ""},
		{"a console file of the definition", Default(), Ref{Field: "console.path", Path: "/etc/passwd", Use: Console}, AtStart,
			[]verdict{{api.CodePathNotAllowed, "console.path"}}, "names for it"},
		{"a console log in the images directory", Default(), Ref{Field: "console.log", Path: img + "a.img", Use: Console}, AtStart,
			[]verdict{{api.CodePathNotAllowed, "console.log"}}, ""},
		{"a shared directory", Default(), Ref{Field: "filesystems[0]", Use: Other}, AtStart, []verdict{{api.CodePathNotAllowed, "filesystems[0]"}}, "host resources"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := Checker{Policy: c.policy, Root: root, ConsoleFile: consoleFile}.Check([]Ref{c.ref}, c.mode)
			if diff := cmp.Diff(c.want, verdicts(errs)); diff != "" {
				t.Errorf("(-want +got):\n%s\n%v", diff, errs)
			}
			if c.says != "" && (len(errs) == 0 || !strings.Contains(errs[0].Message, c.says)) {
				t.Errorf("message %v does not say %q", errs, c.says)
			}
		})
	}
}

// TestCheckOnThisHost: the RNG devices and a character device listed as a
// block device, on the real file system.
// TestCheckExcludesAndRoot: the agent's own directory stays out of reach
// even below an allowed directory, and an allowed directory that leads to
// / allows nothing.
func TestCheckExcludesAndRoot(t *testing.T) {
	root := tree(t)
	agentDir := filepath.Join(root, "/var/lib/polyvirt/agent")
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(agentDir, "agent-key.pem"), []byte("KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "/srv/everything")); err != nil {
		t.Fatal(err)
	}
	c := Checker{Policy: Policy{Disk: []string{"/var/lib/polyvirt", "/srv/everything"}}, Root: root, Exclude: []string{"/var/lib/polyvirt/agent"}}
	for p, want := range map[string]string{
		"/var/lib/polyvirt/agent/agent-key.pem": "the agent's own directory",
		"/var/lib/polyvirt/images/a.img":        "",
		"/srv/everything/etc/shadow":            "outside the places",
	} {
		errs := c.Check([]Ref{{Field: "disks[0].source", Path: p, Use: Disk}}, AtStart)
		switch {
		case want == "" && len(errs) > 0:
			t.Errorf("%s: %v", p, errs)
		case want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Message, want)):
			t.Errorf("%s: %v; want %q", p, errs, want)
		}
	}
}

func TestCheckOnThisHost(t *testing.T) {
	c := Checker{Policy: Policy{BlockDevices: []string{"/dev/null"}}, Root: "/"}
	if errs := c.Check([]Ref{{Field: "rng.backend", Path: "/dev/urandom", Use: RNG}}, AtStart); len(errs) > 0 {
		t.Errorf("/dev/urandom: %v", errs)
	}
	errs := c.Check([]Ref{{Field: "disks[0].source", Path: "/dev/null", Use: Block}}, AtStart)
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "a character device") {
		t.Errorf("/dev/null as a block device: %v", errs)
	}
}

// TestBlockDevice: a block device the policy lists, by one of its link
// names, and by its own.
func TestBlockDevice(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev/disk/by-id"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A block device node (major 7, loop0's numbers): the tests run as root.
	if err := syscall.Mknod(filepath.Join(root, "dev/vdb"), syscall.S_IFBLK|0o600, 7<<8); err != nil {
		t.Fatalf("mknod (the tests run as root): %v", err)
	}
	if err := os.Symlink("../../vdb", filepath.Join(root, "dev/disk/by-id/virtio-data")); err != nil {
		t.Fatal(err)
	}
	c := Checker{Policy: Policy{BlockDevices: []string{"/dev/disk/by-id/virtio-data"}}, Root: root}
	for _, p := range []string{"/dev/vdb", "/dev/disk/by-id/virtio-data"} {
		if errs := c.Check([]Ref{{Field: "disks[0].source", Path: p, Use: Block}}, AtStart); len(errs) > 0 {
			t.Errorf("%s: %v", p, errs)
		}
	}
	// As a file disk it is refused: a disk image is a regular file.
	c.Policy.Disk = []string{"/dev"}
	if errs := c.Check([]Ref{{Field: "disks[0].source", Path: "/dev/vdb", Use: Disk}}, AtStart); len(errs) != 1 || !strings.Contains(errs[0].Message, "a block device") {
		t.Errorf("a block device as a file disk: %v", errs)
	}
}

// TestSwappedLink: what the agent does at every start: a link checked
// when the VM was created and changed afterwards is refused at the next
// start.
func TestSwappedLink(t *testing.T) {
	root := tree(t)
	link := filepath.Join(root, "/var/lib/polyvirt/images/current.img")
	if err := os.Symlink("a.img", link); err != nil {
		t.Fatal(err)
	}
	c := Checker{Policy: Default(), Root: root}
	ref := []Ref{{Field: "disks[0].source", Path: "/var/lib/polyvirt/images/current.img", Use: Disk}}
	if errs := c.Check(ref, AtCreate); len(errs) > 0 {
		t.Fatalf("at create: %v", errs)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", link); err != nil {
		t.Fatal(err)
	}
	if errs := c.Check(ref, AtStart); len(errs) != 1 || errs[0].Code != api.CodePathNotAllowed {
		t.Errorf("after the swap: %v", errs)
	}
}

func TestResolve(t *testing.T) {
	root := tree(t)
	img := "/var/lib/polyvirt/images/"
	cases := []struct {
		in   string
		want Resolution
	}{
		{"/", Resolution{Path: "/", Exists: true}},
		{img + "a.img", Resolution{Path: img + "a.img", Exists: true}},
		{img + "link-in", Resolution{Path: img + "a.img", Exists: true}},
		{img + "link-out", Resolution{Path: "/etc/shadow", Exists: true}},
		{img + "link-up", Resolution{Path: "/etc/shadow", Exists: true}},
		{img + "dir-link/shadow", Resolution{Path: "/etc/shadow", Exists: true}},
		{img + "dir-link/../images", Resolution{Path: "/images"}},
		{img + "../../../../../../etc/shadow", Resolution{Path: "/etc/shadow", Exists: true}},
		{img + "missing/../../x", Resolution{Path: "/var/lib/polyvirt/x"}},
		{img + "a.img/x", Resolution{Path: img + "a.img/x"}},
		{img + "link-dangling-out", Resolution{Path: "/etc/cron.d/polyvirt"}},
		{img + "link-proc", Resolution{Path: "/proc/self/root/etc/shadow", ViaProc: true}},
		{"/data/x.img", Resolution{Path: "/srv/store/x.img", Exists: true}},
		{"//var///lib/./polyvirt/images/a.img", Resolution{Path: img + "a.img", Exists: true}},
	}
	for _, c := range cases {
		got, err := Resolve(root, c.in)
		if err != nil {
			t.Errorf("Resolve(%q): %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("Resolve(%q) (-want +got):\n%s", c.in, diff)
		}
	}
	for _, bad := range []string{"relative", img + "loop1", "/a\x00b"} {
		if got, err := Resolve(root, bad); err == nil {
			t.Errorf("Resolve(%q) = %+v; want an error", bad, got)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	if err := Default().Check(); err != nil {
		t.Errorf("default: %v", err)
	}
	cases := []struct {
		p    Policy
		want string
	}{
		{Policy{Disk: []string{"/"}}, `disk[0]: "/" would let VMs open every file`},
		{Policy{CDROM: []string{"/srv", "iso"}}, `cdrom[1]: "iso" is not an absolute path`},
		{Policy{Kernel: []string{"/srv/../etc"}}, `kernel[0]: "/srv/../etc" is not clean`},
		{Policy{Initrd: []string{""}}, "initrd[0]: empty path"},
		{Policy{BlockDevices: []string{"/srv/disk"}}, `block_devices[0]: "/srv/disk" is not under /dev`},
	}
	for _, c := range cases {
		if err := c.p.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want %q", c.p, err, c.want)
		}
	}
}

func TestCheckLexically(t *testing.T) {
	a := Policy{Disk: []string{"/srv/a"}}
	b := Policy{Disk: []string{"/srv/b"}, BlockDevices: []string{"/dev/vdb"}}
	refs := []Ref{
		{Field: "disks[0].source", Path: "/srv/a/x.img", Use: Disk},
		{Field: "disks[1].source", Path: "/srv/b/y.img", Use: Disk},
		{Field: "disks[2].source", Path: "/dev/vdb", Use: Block},
		{Field: "disks[3].source", Path: "/etc/shadow", Use: Disk},
		{Field: "disks[4].source", Path: "/dev/vda", Use: Block},
		{Field: "disks[5].source", Path: "/srv/a/../../etc/shadow", Use: Disk},
		{Field: "console.path", Path: "/etc/passwd", Use: Console},
		{Field: "rng.backend", Path: "/dev/random", Use: RNG},
	}
	errs := CheckLexically(refs, a, b)
	want := []verdict{{api.CodePathNotAllowed, "disks[3].source"}, {api.CodePathNotAllowed, "disks[4].source"},
		{api.CodePathNotAllowed, "disks[5].source"}, {api.CodePathNotAllowed, "console.path"}}
	if diff := cmp.Diff(want, verdicts(errs)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !strings.Contains(errs[0].Message, "(/srv/a or /srv/b)") {
		t.Errorf("message: %s", errs[0].Message)
	}
}

func TestFromDefinition(t *testing.T) {
	vm, err := vmspec.Decode([]byte(`
name: a
disks:
  - source: /var/lib/polyvirt/images/a.qcow2
  - {device: cdrom}
  - {device: cdrom, source: /var/lib/polyvirt/images/d.iso}
  - source: /dev/vdb
  - {source: /var/lib/polyvirt/images/f.img, device: floppy, format: raw}
kernel: {path: /k, initrd: /i}
rng: {model: virtio, backend: /dev/random}
console: {type: pty, log: /var/log/x}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Field: "disks[0].source", Path: "/var/lib/polyvirt/images/a.qcow2", Use: Disk, Format: "qcow2"},
		{Field: "disks[2].source", Path: "/var/lib/polyvirt/images/d.iso", Use: CDROM},
		{Field: "disks[3].source", Path: "/dev/vdb", Use: Block},
		{Field: "disks[4].source", Path: "/var/lib/polyvirt/images/f.img", Use: Disk, Format: "raw"},
		{Field: "kernel.path", Path: "/k", Use: Kernel},
		{Field: "kernel.initrd", Path: "/i", Use: Initrd},
		{Field: "console.log", Path: "/var/log/x", Use: Console},
		{Field: "rng.backend", Path: "/dev/random", Use: RNG},
	}
	if diff := cmp.Diff(want, FromDefinition(vm)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
