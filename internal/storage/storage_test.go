package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/hostexec"
	"polyvirt/internal/hostpath"
)

// testHost is a host rooted in a temporary directory whose policy allows
// disk images in /images, with a pool p1 at /images/p1 (initialized).
func testHost(t testing.TB) (*Host, Pool) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		if os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" {
			t.Fatal("qemu-img is missing (scripts/test.sh installs qemu-utils)")
		}
		t.Skip("qemu-img is missing; run scripts/test.sh to install it")
	}
	root := t.TempDir()
	for _, d := range []string{"images/p1", "images/p2", "etc", "agent"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &Host{Root: root, Policy: hostpath.Policy{Disk: []string{"/images"}, CDROM: []string{"/images"}},
		Exclude: []string{"/images/agent-data"}, Runner: &hostexec.Exec{}}
	p := Pool{ID: "11111111-1111-1111-1111-111111111111", Name: "p1", Path: "/images/p1", Kind: Shared}
	if _, err := h.InitPool(p); err != nil {
		t.Fatal(err)
	}
	return h, p
}

// entries lists a pool directory's files (hidden ones too).
func entries(t *testing.T, h *Host, p Pool) []string {
	t.Helper()
	es, err := os.ReadDir(h.onHost(p.Path))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if api.CodeOf(err) != code {
		t.Fatalf("error %v; want code %s", err, code)
	}
}

func TestPoolStatus(t *testing.T) {
	h, p := testHost(t)
	st := h.CheckPool(p)
	if !st.OK || st.CapacityBytes == 0 || st.FreeBytes == 0 || st.FreeBytes > st.CapacityBytes {
		t.Fatalf("initialized pool: %+v; want OK with its capacity", st)
	}
	other := Pool{ID: "22222222-2222-2222-2222-222222222222", Name: "p2", Path: "/images/p2", Kind: Local}
	for _, tc := range []struct {
		name string
		pool Pool
		code string
	}{
		{"no marker (an empty mount point)", other, api.CodePoolMarkerMissing},
		{"no directory", Pool{ID: other.ID, Name: "p3", Path: "/images/p3", Kind: Local}, api.CodePoolMissing},
		{"outside the policy", Pool{ID: other.ID, Name: "p4", Path: "/etc", Kind: Local}, api.CodePoolPathNotAllowed},
		{"the policy's parent", Pool{ID: other.ID, Name: "p5", Path: "/", Kind: Local}, api.CodeVolumeRequestInvalid},
		{"another pool's marker", Pool{ID: other.ID, Name: "p1-again", Path: p.Path, Kind: Shared}, api.CodePoolMarkerMismatch},
		{"relative path", Pool{ID: other.ID, Name: "p6", Path: "images/p2", Kind: Local}, api.CodeVolumeRequestInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := h.CheckPool(tc.pool)
			if st.OK || st.Code != tc.code || st.Message == "" {
				t.Errorf("status %+v; want code %s with a reason", st, tc.code)
			}
		})
	}
	// A link to a directory outside the policy is not a pool.
	if err := os.Symlink(filepath.Join(h.Root, "etc"), filepath.Join(h.Root, "images/escape")); err != nil {
		t.Fatal(err)
	}
	if st := h.CheckPool(Pool{ID: other.ID, Name: "esc", Path: "/images/escape", Kind: Local}); st.Code != api.CodePoolPathNotAllowed {
		t.Errorf("a link out of the policy: %+v; want %s", st, api.CodePoolPathNotAllowed)
	}
	// InitPool refuses another pool's directory and makes a new one.
	if _, err := h.InitPool(Pool{ID: other.ID, Name: "p1-again", Path: p.Path, Kind: Shared}); api.CodeOf(err) != api.CodePoolMarkerMismatch {
		t.Errorf("init over another pool: %v; want %s", err, api.CodePoolMarkerMismatch)
	}
	if st, err := h.InitPool(other); err != nil || !st.OK {
		t.Errorf("init p2: %+v %v", st, err)
	}
	if err := os.Chmod(h.onHost(other.Path), 0o555); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if st := h.CheckPool(other); st.Code != api.CodePoolNotWritable {
			t.Errorf("read-only directory: %+v; want %s", st, api.CodePoolNotWritable)
		}
	}
}

func TestVolumeLifecycle(t *testing.T) {
	h, p := testHost(t)
	ctx := context.Background()
	base, err := h.Create(ctx, CreateRequest{Pool: p, Name: "base.qcow2", Format: "qcow2", SizeBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if base.VirtualSize != 64<<20 || base.Format != "qcow2" || base.Backing != "" {
		t.Errorf("base: %+v", base)
	}
	raw, err := h.Create(ctx, CreateRequest{Pool: p, Name: "data.raw", Format: "raw", SizeBytes: 1 << 20})
	if err != nil || raw.VirtualSize != 1<<20 || raw.Format != "raw" {
		t.Fatalf("raw: %+v %v", raw, err)
	}
	if _, err := h.Create(ctx, CreateRequest{Pool: p, Name: "data.raw", Format: "raw", SizeBytes: 1 << 20}); api.CodeOf(err) != api.CodeVolumeExists {
		t.Errorf("second create: %v; want %s", err, api.CodeVolumeExists)
	}
	ov, err := h.Create(ctx, CreateRequest{Pool: p, Name: "vm1-root.qcow2", Format: "qcow2", Backing: "base.qcow2", BackingFormat: "qcow2"})
	if err != nil {
		t.Fatal(err)
	}
	if ov.Backing != "base.qcow2" || ov.BackingFormat != "qcow2" || ov.VirtualSize != 64<<20 {
		t.Errorf("overlay: %+v; want backed by base.qcow2 with its size", ov)
	}
	// The overlay names its backing file relative to the pool.
	f, _ := os.Open(h.onHost(p.Path + "/vm1-root.qcow2"))
	hd, err := hostpath.ReadQCOW2Header(f)
	f.Close()
	if err != nil || hd.BackingFile != "base.qcow2" || hd.BackingFormat != "qcow2" {
		t.Errorf("overlay header %+v %v", hd, err)
	}
	grown, err := h.Resize(ctx, p, "vm1-root.qcow2", "qcow2", 128<<20)
	if err != nil || grown.VirtualSize != 128<<20 {
		t.Errorf("resize: %+v %v", grown, err)
	}
	_, err = h.Resize(ctx, p, "vm1-root.qcow2", "qcow2", 32<<20)
	wantCode(t, err, api.CodeVolumeShrink)
	cl, err := h.Clone(ctx, p, "vm1-root.qcow2", "qcow2", p, "vm1-copy.qcow2", "qcow2")
	if err != nil || cl.Backing != "" || cl.VirtualSize != 128<<20 {
		t.Errorf("clone: %+v %v; want a whole copy (no backing)", cl, err)
	}
	for _, n := range []string{"vm1-copy.qcow2", "vm1-root.qcow2", "data.raw"} {
		if err := h.Delete(p, n); err != nil {
			t.Errorf("delete %s: %v", n, err)
		}
	}
	wantCode(t, h.Delete(p, "data.raw"), api.CodeVolumeNotFound)
	if diff := cmp.Diff([]string{MarkerFile, "base.qcow2"}, entries(t, h, p)); diff != "" {
		t.Errorf("pool after deletes (-want +got):\n%s", diff)
	}
}

func TestVolumeCannotClimbOutOfItsPool(t *testing.T) {
	h, p := testHost(t)
	ctx := context.Background()
	secret := filepath.Join(h.Root, "etc/shadow")
	if err := os.WriteFile(secret, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../../etc/shadow", "../p2/x", ".polyvirt-pool", "a/b", ".."} {
		_, err := h.Info(ctx, p, name, "raw")
		wantCode(t, err, api.CodeVolumeNameInvalid)
		_, err = h.Create(ctx, CreateRequest{Pool: p, Name: name, Format: "raw", SizeBytes: 1})
		wantCode(t, err, api.CodeVolumeNameInvalid)
	}
	// A link planted in the pool is never followed.
	if err := os.Symlink("/etc/shadow", h.onHost(p.Path+"/evil.raw")); err != nil {
		t.Fatal(err)
	}
	_, err := h.Info(ctx, p, "evil.raw", "raw")
	wantCode(t, err, api.CodeVolumeOutsidePool)
	_, err = h.Clone(ctx, p, "evil.raw", "raw", p, "copy.raw", "raw")
	wantCode(t, err, api.CodeVolumeOutsidePool)
	if e := h.CheckDisk(DiskRef{Field: "disks[0]", Pool: "p1", Volume: "evil.raw", Source: p.Path + "/evil.raw", Format: "raw"}, true); e == nil || e.Code != api.CodeVolumeOutsidePool {
		t.Errorf("CheckDisk of a link: %v; want %s", e, api.CodeVolumeOutsidePool)
	}
	// Deleting it removes the link, not the file it points to.
	if err := h.Delete(p, "evil.raw"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "root:secret\n" {
		t.Errorf("the link's target changed: %q %v", b, err)
	}
	// A hard link is another name of a file that may be anywhere.
	if err := os.Link(secret, h.onHost(p.Path+"/hard.raw")); err != nil {
		t.Fatal(err)
	}
	_, err = h.Info(ctx, p, "hard.raw", "raw")
	wantCode(t, err, api.CodeVolumeOutsidePool)
}

func TestCheckDisk(t *testing.T) {
	h, p := testHost(t)
	ctx := context.Background()
	if _, err := h.Create(ctx, CreateRequest{Pool: p, Name: "root.qcow2", Format: "qcow2", SizeBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	ok := DiskRef{Field: "disks[0]", Pool: "p1", Volume: "root.qcow2", Source: p.Path + "/root.qcow2", Format: "qcow2"}
	if e := h.CheckDisk(ok, true); e != nil {
		t.Fatalf("a volume of the pool: %v", e)
	}
	missing := ok
	missing.Volume, missing.Source = "gone.qcow2", p.Path+"/gone.qcow2"
	if e := h.CheckDisk(missing, false); e != nil {
		t.Errorf("at create, a volume not made yet: %v", e)
	}
	if e := h.CheckDisk(missing, true); e == nil || e.Code != api.CodeVolumeNotFound {
		t.Errorf("at start, a missing volume: %v", e)
	}
	other := ok
	other.Pool = "p2"
	if e := h.CheckDisk(other, true); e == nil || e.Code != api.CodePoolNotAvailable {
		t.Errorf("the directory of another pool: %v", e)
	}
	notFile := ok
	notFile.Source = p.Path + "/other.qcow2"
	if e := h.CheckDisk(notFile, true); e == nil || e.Code != "DISK_SOURCE_CONFLICT" {
		t.Errorf("a source that is not the volume's file: %v", e)
	}
	// An overlay whose backing file is outside the pool.
	outside := filepath.Join(h.Root, "images/p2/base.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", outside, "1M")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "../p2/base.qcow2", "-F", "qcow2", h.onHost(p.Path+"/ov.qcow2"))
	bad := ok
	bad.Volume, bad.Source = "ov.qcow2", p.Path+"/ov.qcow2"
	if e := h.CheckDisk(bad, true); e == nil || e.Code != api.CodeVolumeBackingOutsidePool {
		t.Errorf("a backing file outside the pool: %v", e)
	}
	// Its marker removed (the storage unmounted), the pool is not there.
	if err := os.Remove(h.onHost(p.Path + "/" + MarkerFile)); err != nil {
		t.Fatal(err)
	}
	if e := h.CheckDisk(ok, true); e == nil || e.Code != api.CodePoolNotAvailable {
		t.Errorf("no marker: %v", e)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// failingReader gives n bytes of r, then fails (a client that went away).
type failingReader struct {
	r io.Reader
	n int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

func qcow2Image(t *testing.T, size string, write ...string) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "img.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", f, size)
	for _, w := range write {
		run(t, "qemu-io", "-f", "qcow2", "-c", w, f)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadResumedAfterAnInterruption(t *testing.T) {
	h, p := testHost(t)
	ctx := context.Background()
	data := qcow2Image(t, "16M", "write -P 0x5a 0 3M", "write -P 0xa5 5M 2M")
	req := UploadRequest{Pool: p, Name: "debian.qcow2", Format: "qcow2", SizeBytes: int64(len(data)), SHA256: sha(data), VirtualSize: 16 << 20}
	st, err := h.BeginUpload(req)
	if err != nil || st.Offset != 0 {
		t.Fatalf("begin: %+v %v", st, err)
	}
	// The client goes away after a third of the data.
	cut := int64(len(data) / 3)
	st, err = h.WriteUpload(ctx, p, req.Name, 0, &failingReader{r: bytes.NewReader(data), n: cut})
	if err == nil || st.Offset != cut || st.Done {
		t.Fatalf("interrupted: %+v %v; want offset %d and the reader's error", st, err, cut)
	}
	// Asking again gives the same upload where it stands.
	again, err := h.BeginUpload(req)
	if err != nil || again.Offset != cut {
		t.Fatalf("begin again: %+v %v", again, err)
	}
	if got, err := h.Upload(p, req.Name); err != nil || got.Offset != cut {
		t.Fatalf("status: %+v %v", got, err)
	}
	// Data from elsewhere than the offset is refused.
	_, err = h.WriteUpload(ctx, p, req.Name, 0, bytes.NewReader(data))
	wantCode(t, err, api.CodeUploadOffset)
	// A chunk, then the rest.
	st, err = h.WriteUpload(ctx, p, req.Name, cut, bytes.NewReader(data[cut:2*cut]))
	if err != nil || st.Offset != 2*cut || st.Done {
		t.Fatalf("second chunk: %+v %v", st, err)
	}
	st, err = h.WriteUpload(ctx, p, req.Name, 2*cut, bytes.NewReader(data[2*cut:]))
	if err != nil || !st.Done || st.Volume == nil {
		t.Fatalf("last chunk: %+v %v", st, err)
	}
	if st.Volume.SHA256 != req.SHA256 || st.Volume.VirtualSize != 16<<20 || st.Volume.Format != "qcow2" {
		t.Errorf("volume %+v", st.Volume)
	}
	got, err := os.ReadFile(h.onHost(p.Path + "/debian.qcow2"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the volume is not the data sent (%v)", err)
	}
	if diff := cmp.Diff([]string{MarkerFile, "debian.qcow2"}, entries(t, h, p)); diff != "" {
		t.Errorf("pool after the upload (-want +got):\n%s", diff)
	}
}

func TestUploadAfterAnAgentCrash(t *testing.T) {
	h, p := testHost(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("polyvirt"), 1<<17) // 1 MiB of raw data
	req := UploadRequest{Pool: p, Name: "blob.raw", Format: "raw", SizeBytes: int64(len(data)), SHA256: sha(data)}
	if _, err := h.BeginUpload(req); err != nil {
		t.Fatal(err)
	}
	// Data written past the last saved state (the agent died before
	// saving it) is cut back; the upload resumes from the state.
	part := h.onHost(p.Path + "/" + partName(req.Name))
	if err := os.WriteFile(part, data[:4096], 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := h.Upload(p, req.Name)
	if err != nil || st.Offset != 0 {
		t.Fatalf("after a crash: %+v %v; want offset 0", st, err)
	}
	st, err = h.WriteUpload(ctx, p, req.Name, 0, bytes.NewReader(data))
	if err != nil || !st.Done {
		t.Fatalf("upload: %+v %v", st, err)
	}
}

func TestUploadRefusals(t *testing.T) {
	h, p := testHost(t)
	ctx := context.Background()
	good := qcow2Image(t, "8M", "write -P 0x11 0 2M")
	// A qcow2 whose L1 table offset points nowhere.
	corrupt := bytes.Clone(good)
	copy(corrupt[40:48], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0})
	// A qcow2 cut short: its data clusters past the end.
	truncated := good[:len(good)/3]
	// A qcow2 backed by a file outside the pool.
	dir := t.TempDir()
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", filepath.Join(dir, "base.qcow2"), "8M")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", "-u", filepath.Join(dir, "abs.qcow2"), "8M")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "../p2/base.qcow2", "-F", "qcow2", "-u", filepath.Join(dir, "rel.qcow2"), "8M")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "nbd://10.0.0.1/x", "-F", "raw", "-u", filepath.Join(dir, "nbd.qcow2"), "8M")
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, format string
		data         []byte
		sum          string
		virtual      int64
		code         string
	}{
		{"checksum mismatch", "qcow2", good, sha([]byte("something else")), 0, api.CodeVolumeChecksumMismatch},
		{"corrupt qcow2", "qcow2", corrupt, "", 0, api.CodeVolumeCorrupt},
		{"truncated qcow2", "qcow2", truncated, "", 0, api.CodeVolumeTruncated},
		{"backing file outside (absolute)", "qcow2", read("abs.qcow2"), "", 0, api.CodeVolumeBackingOutsidePool},
		{"backing file outside (relative)", "qcow2", read("rel.qcow2"), "", 0, api.CodeVolumeBackingOutsidePool},
		{"backing file on the network", "qcow2", read("nbd.qcow2"), "", 0, api.CodeVolumeBackingOutsidePool},
		{"qcow2 declared raw", "raw", good, "", 0, api.CodeVolumeFormatMismatch},
		{"raw declared qcow2", "qcow2", bytes.Repeat([]byte{0}, 65536), "", 0, api.CodeVolumeFormatMismatch},
		{"truncated raw", "raw", bytes.Repeat([]byte{1}, 65536), "", 1 << 20, api.CodeVolumeSizeMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum := tc.sum
			if sum == "" {
				sum = sha(tc.data)
			}
			req := UploadRequest{Pool: p, Name: "bad.img", Format: tc.format, SizeBytes: int64(len(tc.data)), SHA256: sum, VirtualSize: tc.virtual}
			if _, err := h.BeginUpload(req); err != nil {
				t.Fatal(err)
			}
			st, err := h.WriteUpload(ctx, p, req.Name, 0, bytes.NewReader(tc.data))
			wantCode(t, err, tc.code)
			if st.Done {
				t.Error("a refused upload is done")
			}
			if diff := cmp.Diff([]string{MarkerFile}, entries(t, h, p)); diff != "" {
				t.Errorf("something is left in the pool (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("more than declared", func(t *testing.T) {
		req := UploadRequest{Pool: p, Name: "big.raw", Format: "raw", SizeBytes: 10, SHA256: sha(make([]byte, 10))}
		if _, err := h.BeginUpload(req); err != nil {
			t.Fatal(err)
		}
		_, err := h.WriteUpload(ctx, p, req.Name, 0, bytes.NewReader(make([]byte, 11)))
		wantCode(t, err, api.CodeUploadTooLarge)
		if diff := cmp.Diff([]string{MarkerFile}, entries(t, h, p)); diff != "" {
			t.Errorf("something is left in the pool (-want +got):\n%s", diff)
		}
	})
	t.Run("another upload of the name", func(t *testing.T) {
		req := UploadRequest{Pool: p, Name: "x.raw", Format: "raw", SizeBytes: 10, SHA256: sha(make([]byte, 10))}
		if _, err := h.BeginUpload(req); err != nil {
			t.Fatal(err)
		}
		req.SizeBytes = 11
		_, err := h.BeginUpload(req)
		wantCode(t, err, api.CodeUploadExists)
		if err := h.AbortUpload(p, "x.raw"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, h.AbortUpload(p, "x.raw"), api.CodeUploadNotFound)
		if diff := cmp.Diff([]string{MarkerFile}, entries(t, h, p)); diff != "" {
			t.Errorf("something is left in the pool (-want +got):\n%s", diff)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, req := range []UploadRequest{
			{Pool: p, Name: "a.raw", Format: "vmdk", SizeBytes: 1, SHA256: sha(nil)},
			{Pool: p, Name: "a.raw", Format: "raw", SizeBytes: 0, SHA256: sha(nil)},
			{Pool: p, Name: "a.raw", Format: "raw", SizeBytes: 1, SHA256: "abc"},
		} {
			_, err := h.BeginUpload(req)
			wantCode(t, err, api.CodeVolumeRequestInvalid)
		}
		_, err := h.BeginUpload(UploadRequest{Pool: p, Name: "../a.raw", Format: "raw", SizeBytes: 1, SHA256: sha(nil)})
		wantCode(t, err, api.CodeVolumeNameInvalid)
	})
}

func TestUploadOfABackedOverlayInThePool(t *testing.T) {
	h, p := testHost(t)
	ctx := context.Background()
	if _, err := h.Create(ctx, CreateRequest{Pool: p, Name: "base.qcow2", Format: "qcow2", SizeBytes: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "ov.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "-u", f, "8M")
	data, _ := os.ReadFile(f)
	req := UploadRequest{Pool: p, Name: "ov.qcow2", Format: "qcow2", SizeBytes: int64(len(data)), SHA256: sha(data)}
	if _, err := h.BeginUpload(req); err != nil {
		t.Fatal(err)
	}
	st, err := h.WriteUpload(ctx, p, req.Name, 0, bytes.NewReader(data))
	if err != nil || !st.Done || st.Volume.Backing != "base.qcow2" {
		t.Fatalf("an overlay on a volume of the pool: %+v %v", st.Volume, err)
	}
}

func TestSnapshotsAtRest(t *testing.T) {
	h, p := testHost(t)
	ctx := context.Background()
	if _, err := h.Create(ctx, CreateRequest{Pool: p, Name: "d.qcow2", Format: "qcow2", SizeBytes: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	file := h.onHost(p.Path + "/d.qcow2")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x41 0 512", file)
	if err := h.Snapshot(ctx, p, "d.qcow2", SnapshotCreate, "s1"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, h.Snapshot(ctx, p, "d.qcow2", SnapshotCreate, "s1"), api.CodeSnapshotExists)
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 512", file)
	if err := h.Snapshot(ctx, p, "d.qcow2", SnapshotRevert, "s1"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "read -P 0x41 0 512", file).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Pattern verification failed") {
		t.Errorf("after the revert the disk does not hold the first write: %v\n%s", err, out)
	}
	info, err := h.Info(ctx, p, "d.qcow2", "qcow2")
	if err != nil || len(info.Snapshots) != 1 || info.Snapshots[0].Name != "s1" {
		t.Errorf("snapshots %+v %v", info.Snapshots, err)
	}
	if err := h.Snapshot(ctx, p, "d.qcow2", SnapshotDelete, "s1"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, h.Snapshot(ctx, p, "d.qcow2", SnapshotRevert, "s1"), api.CodeSnapshotNotFound)
	wantCode(t, h.Snapshot(ctx, p, "d.qcow2", SnapshotCreate, "bad name"), api.CodeVolumeRequestInvalid)
}
