package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// storageLab is an engine with two x86_64 hosts on this machine's
// libvirtd whose agents allow disk images in the test's directory, a
// shared pool "nfs" there — which the second host does not see: its agent
// runs in a mount namespace where an empty directory is mounted over the
// pool's (its storage is "not mounted" there).
type storageLab struct {
	t                *testing.T
	dir, images, nfs string
	sock             string // the engine's local socket
	eng              *engineProc
	c                *cli
	a, b             *agentProc
	hostA, hostB     string
	prefixA, prefixB string
}

func newStorageLab(t *testing.T) *storageLab {
	t.Helper()
	requireLibvirt(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		missing(t, "unshare (util-linux)")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		missing(t, "qemu-img (qemu-utils)")
	}
	sfx := randomSuffix()
	l := &storageLab{t: t, dir: t.TempDir()}
	l.images = filepath.Join(l.dir, "images")
	l.nfs = filepath.Join(l.images, "nfs")
	empty := filepath.Join(l.dir, "empty")
	for _, d := range []string{l.nfs, empty} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(l.dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("host_paths:\n  disk: [%s]\n  cdrom: [%s]\n", l.images, l.images)), 0o644); err != nil {
		t.Fatal(err)
	}
	l.eng = initEngine(t, "engine-storage", nil)
	// Its local socket too, for the uploads of a CLI on its machine.
	l.sock = filepath.Join(l.dir, "engine.sock")
	l.eng.extra = []string{"--socket", l.sock}
	l.eng.start()
	l.c = newCLI(t)
	l.c.run(l.eng.token+"\n", "login", "--engine", l.eng.url, "--ca-file", l.eng.caFile)
	l.c.run("", "cluster", "create", "x86", "--arch", "x86_64")
	l.hostA, l.hostB = "sa-"+sfx, "sb-"+sfx
	l.prefixA, l.prefixB = "e2e-"+l.hostA+"-", "e2e-"+l.hostB+"-"
	removeDomainsAtCleanup(t, l.prefixA)
	removeDomainsAtCleanup(t, l.prefixB)
	l.a = joinAgent(t, l.c, l.eng, l.hostA, "x86", "--config", cfg)
	l.b = joinAgentWrapped(t, l.c, l.eng, l.hostB, "x86",
		[]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$1" "$2" && shift 2 && exec "$@"`, "sh", empty, l.nfs},
		"--config", cfg)
	waitHost(t, l.eng.api, l.hostA, 90*time.Second, hostStatus("Up"))
	waitHost(t, l.eng.api, l.hostB, 90*time.Second, hostStatus("Up"))
	return l
}

// poolFiles lists the pool's directory as this machine sees it.
func (l *storageLab) poolFiles() []string {
	es, err := os.ReadDir(l.nfs)
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// interruptingReader reads its data through ReadAt, failing once (a
// client cut off) after cut bytes; it counts the bytes read per pass.
type interruptingReader struct {
	f       *os.File
	cut     int64
	cutDone atomic.Bool
	read    atomic.Int64
}

func (r *interruptingReader) ReadAt(p []byte, off int64) (int, error) {
	if !r.cutDone.Load() && off+int64(len(p)) > r.cut {
		if off >= r.cut {
			r.cutDone.Store(true)
			return 0, errors.New("forced interruption: the client's connection is cut")
		}
		p = p[:r.cut-off]
	}
	n, err := r.f.ReadAt(p, off)
	r.read.Add(int64(n))
	return n, err
}

// bigImage writes a file of n pseudo-random bytes and returns its SHA-256.
func bigImage(t *testing.T, path string, n int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'p', 'o', 'l', 'y', 'v', 'i', 'r', 't'})
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for left := n; left > 0; left -= int64(len(buf)) {
		b := buf[:min(int64(len(buf)), left)]
		rng.Read(b)
		h.Write(b)
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, b)
	}
}

// TestStoragePoolsVolumesUploads: a shared pool seen by one host of two
// (the other marked with the reason, and VMs using the pool not scheduled
// there), a 1 GiB upload cut off and resumed, uploads refused with their
// code and nothing left (checksum, corrupt qcow2, backing file outside the
// pool, truncated image), volumes used by a VM not deleted, and volume
// names that try to climb out of the pool (../, a link planted in it)
// refused with nothing defined in libvirt.
func TestStoragePoolsVolumesUploads(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	l := newStorageLab(t)
	ctx := context.Background()
	eapi := l.eng.api

	// A pool outside what the hosts allow is refused.
	out := l.c.fail("", "pool", "create", "etc", "--cluster", "x86", "--path", "/etc")
	if !strings.Contains(out, "POOL_PATH_NOT_ALLOWED") {
		t.Errorf("pool at /etc: %s", out)
	}
	var p engineapi.Pool
	l.c.json(&p, "pool", "create", "nfs", "--cluster", "x86", "--path", l.nfs, "-o", "json")
	hosts := map[string]engineapi.HostPool{}
	for _, h := range p.Hosts {
		hosts[h.Host] = h
	}
	if a := hosts[l.hostA]; !a.OK || a.CapacityBytes == 0 {
		t.Errorf("host %s: %+v; want the pool there", l.hostA, a)
	}
	if b := hosts[l.hostB]; b.OK || b.Code != api.CodePoolMarkerMissing || !strings.Contains(b.Message, "no pool marker") {
		t.Errorf("host %s: %+v; want it marked: POOL_MARKER_MISSING with the reason", l.hostB, b)
	}
	hb, err := eapi.Host(ctx, l.hostB, false)
	if err != nil || len(hb.Pools) != 1 || hb.Pools[0].Pool != "nfs" || hb.Pools[0].OK || hb.Pools[0].Code != api.CodePoolMarkerMissing {
		t.Errorf("host %s: pools %+v %v; want nfs marked POOL_MARKER_MISSING", l.hostB, hb.Pools, err)
	}
	if hb.Status != "Up" {
		t.Errorf("host %s is %s; a missing pool leaves it Up for its other VMs", l.hostB, hb.Status)
	}
	evs, err := eapi.Events(ctx, client.EventFilter{Host: l.hostB})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs.Events {
		found = found || (ev.Action == "host.storage" && ev.Code == "POOL_NOT_AVAILABLE_ON_HOST" && strings.Contains(ev.Reason, "POOL_MARKER_MISSING"))
	}
	if !found {
		t.Errorf("no host.storage event for %s: %+v", l.hostB, evs.Events)
	}

	// 1 GiB, cut off after 300 MiB, then resumed from where it stood.
	big := filepath.Join(l.dir, "big.raw")
	const size = 1 << 30
	sum := bigImage(t, big, size)
	f, err := os.Open(big)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &interruptingReader{f: f, cut: 300 << 20}
	var progress []int64
	t0 := time.Now()
	v, err := eapi.UploadVolume(ctx, "nfs", "big.raw", "raw", r, size, client.UploadOptions{SHA256: sum, Retries: 3,
		Progress: func(off, _ int64) { progress = append(progress, off) }})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if v.State != "ready" || v.VirtualSize != size || v.SHA256 != sum || v.Format != "raw" {
		t.Errorf("volume %+v", v)
	}
	t.Logf("1 GiB uploaded in %s with one interruption (%d bytes read in all)", time.Since(t0).Round(time.Millisecond), r.read.Load())
	if !r.cutDone.Load() {
		t.Error("the upload was never cut off")
	}
	if got := r.read.Load(); got > size+size/2 {
		t.Errorf("%d bytes were read for a %d-byte image: the upload restarted instead of resuming", got, size)
	}
	if len(progress) == 0 || progress[len(progress)-1] != size {
		t.Errorf("progress %v; want it to end at %d", progress, size)
	}
	if got := fileSHA(t, filepath.Join(l.nfs, "big.raw")); got != sum {
		t.Errorf("the volume's file has SHA-256 %s, not the image's %s", got, sum)
	}

	// Uploads refused with their code; nothing left of them.
	good := filepath.Join(l.dir, "good.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", good, "64M")
	if b, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 8M", good).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v %s", err, b)
	}
	goodData, _ := os.ReadFile(good)
	corrupt := bytes.Clone(goodData)
	copy(corrupt[40:48], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0})
	outside := filepath.Join(l.dir, "outside.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", "-u", outside, "64M")
	outsideData, _ := os.ReadFile(outside)
	before := l.poolFiles()
	for _, tc := range []struct {
		name, format string
		data         []byte
		sum          string
		code         string
	}{
		{"checksum mismatch", "qcow2", goodData, strings.Repeat("ab", 32), api.CodeVolumeChecksumMismatch},
		{"corrupt qcow2", "qcow2", corrupt, "", api.CodeVolumeCorrupt},
		{"backing file outside the pool", "qcow2", outsideData, "", api.CodeVolumeBackingOutsidePool},
		{"truncated image", "qcow2", goodData[:len(goodData)/3], "", api.CodeVolumeTruncated},
	} {
		_, err := eapi.UploadVolume(ctx, "nfs", "bad.qcow2", tc.format, bytes.NewReader(tc.data), int64(len(tc.data)),
			client.UploadOptions{SHA256: tc.sum, Retries: -1})
		if ce := asClientError(err); ce == nil || ce.Code != tc.code || ce.Status != 422 {
			t.Errorf("%s: %v; want 422 %s", tc.name, err, tc.code)
		}
		if got := l.poolFiles(); !equalStrings(got, before) {
			t.Errorf("%s: the pool holds %v; want %v (nothing left)", tc.name, got, before)
		}
		if _, err := eapi.Volume(ctx, "nfs", "bad.qcow2"); api.CodeOf(err) != "VOLUME_NOT_FOUND" {
			t.Errorf("%s: the volume's record: %v; want none", tc.name, err)
		}
	}
	// A good one goes through.
	if _, err := eapi.UploadVolume(ctx, "nfs", "good.qcow2", "qcow2", bytes.NewReader(goodData), int64(len(goodData)), client.UploadOptions{}); err != nil {
		t.Fatalf("good qcow2: %v", err)
	}

	// The CLI on the engine's machine over its local socket (no TLS; the
	// login's token still required): the same checks, the same refusals.
	if fi, err := os.Stat(l.sock); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("the engine's socket %s: %v %v; want a socket 0600", l.sock, fi, err)
	}
	local := *l.c
	local.env = append(append([]string(nil), l.c.env...), client.EnvEngine+"=unix://"+l.sock)
	goodFile := filepath.Join(l.dir, "good-copy.qcow2")
	if err := os.WriteFile(goodFile, goodData, 0o644); err != nil {
		t.Fatal(err)
	}
	beforeLocal := l.poolFiles()
	out = local.fail("", "volume", "upload", "nfs", "bad.qcow2", goodFile, "--format", "qcow2", "--sha256", strings.Repeat("ab", 32), "-q")
	if !strings.Contains(out, api.CodeVolumeChecksumMismatch) {
		t.Errorf("a checksum mismatch over the local socket: %s", out)
	}
	if got := l.poolFiles(); !equalStrings(got, beforeLocal) {
		t.Errorf("after a refusal over the local socket the pool holds %v; want %v", got, beforeLocal)
	}
	local.run("", "volume", "upload", "nfs", "local.qcow2", goodFile, "--format", "qcow2", "-q")
	var sv engineapi.Volume
	local.json(&sv, "volume", "show", "nfs", "local.qcow2")
	if sv.State != "ready" || sv.SHA256 != fileSHA(t, goodFile) || fileSHA(t, filepath.Join(l.nfs, "local.qcow2")) != sv.SHA256 {
		t.Errorf("the upload over the local socket: %+v", sv)
	}
	wrong := filepath.Join(l.dir, "wrong.token")
	if err := os.WriteFile(wrong, []byte("pvt1.not-a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badToken := local
	badToken.env = append(append([]string(nil), local.env...), client.EnvTokenFile+"="+wrong)
	if out := badToken.fail("", "volume", "list"); !strings.Contains(out, api.CodeUnauthenticated) {
		t.Errorf("the local socket with a wrong token: %s; want %s", out, api.CodeUnauthenticated)
	}

	// A volume a VM uses is not deleted; the VM runs only where the pool is.
	if _, err := eapi.CreateVolume(ctx, engineapi.VolumeRequest{Pool: "nfs", Name: "root.qcow2", Format: "qcow2", SizeBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	l.c.run("", "vm", "create", "v1", "--cluster", "x86", "--memory", "128", "--display", "none", "--volume", "nfs/root.qcow2", "--host", l.hostB)
	out = l.c.fail("", "volume", "delete", "nfs", "root.qcow2")
	if !strings.Contains(out, "VOLUME_IN_USE") || !strings.Contains(out, "v1") {
		t.Errorf("deleting a volume v1 uses: %s", out)
	}
	_, err = eapi.VMAction(ctx, "v1", "start", "")
	if ce := asClientError(err); ce == nil || ce.Code != "SCHEDULING_ALL_HOSTS_FILTERED_OUT" || !detailHas(ce, "POOL_NOT_AVAILABLE_ON_HOST", "host:"+l.hostB) {
		t.Errorf("v1 pinned to %s, which lacks the pool: %v; want POOL_NOT_AVAILABLE_ON_HOST for it", l.hostB, err)
	}
	l.c.run("", "vm", "update", "v1", "--unpin")
	res, err := eapi.VMAction(ctx, "v1", "start", "")
	if err != nil || res.Host != l.hostA {
		t.Fatalf("v1 unpinned: %+v %v; want it on %s", res, err, l.hostA)
	}
	if !domainRunning(t, l.prefixA+"v1") {
		t.Errorf("v1 does not run on %s", l.hostA)
	}
	if _, err := eapi.VMAction(ctx, "v1", "destroy", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := eapi.ResizeVolume(ctx, "nfs", "root.qcow2", 128<<20); err != nil {
		t.Errorf("resize of a Down VM's volume: %v", err)
	}
	if _, err := eapi.ResizeVolume(ctx, "nfs", "root.qcow2", 32<<20); api.CodeOf(err) != api.CodeVolumeShrink {
		t.Errorf("shrinking: %v; want %s", err, api.CodeVolumeShrink)
	}
	if cl, err := eapi.CloneVolume(ctx, "nfs", "root.qcow2", engineapi.VolumeClone{Name: "copy.qcow2"}); err != nil || cl.VirtualSize != 128<<20 {
		t.Errorf("clone: %+v %v", cl, err)
	}
	if err := eapi.DeleteVolume(ctx, "nfs", "copy.qcow2"); err != nil {
		t.Errorf("delete the copy: %v", err)
	}

	// Names that climb out of the pool.
	decoy := filepath.Join(l.images, "decoy.raw")
	secret := bytes.Repeat([]byte("secret"), 1000)
	if err := os.WriteFile(decoy, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = eapi.CreateVM(ctx, engineapi.VMRequest{Cluster: "x86", Definition: []byte(`{"name":"climb","memory":{"sizeMiB":128},"display":{"type":"none"},"disks":[{"pool":"nfs","volume":"../decoy.raw"}]}`)})
	if ce := asClientError(err); ce == nil || ce.Status != 422 || ce.Code != "DISK_VOLUME_NAME_INVALID" {
		t.Errorf("a volume named ../decoy.raw: %v; want 422 DISK_VOLUME_NAME_INVALID", err)
	}
	if _, err := eapi.CreateVolume(ctx, engineapi.VolumeRequest{Pool: "nfs", Name: "evil.raw", Format: "raw", SizeBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	l.c.run("", "vm", "create", "v2", "--cluster", "x86", "--memory", "128", "--display", "none", "--volume", "nfs/evil.raw")
	evil := filepath.Join(l.nfs, "evil.raw")
	if err := os.Remove(evil); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../decoy.raw", evil); err != nil {
		t.Fatal(err)
	}
	_, err = eapi.VMAction(ctx, "v2", "start", "")
	if ce := asClientError(err); ce == nil || ce.Status != 422 || ce.Code != api.CodeVolumeOutsidePool || !errorsName(ce, "disks[0].volume") {
		t.Errorf("starting v2 over a link planted in the pool: %v; want 422 VOLUME_OUTSIDE_POOL at disks[0].volume", err)
	}
	// Straight at the agent: the same, and a name with ../.
	for _, d := range []struct{ volume, source, code string }{
		{"evil.raw", filepath.Join(l.nfs, "evil.raw"), api.CodeVolumeOutsidePool},
		{"../decoy.raw", filepath.Join(l.nfs, "../decoy.raw"), "DISK_VOLUME_NAME_INVALID"},
	} {
		var e api.ErrorBody
		body := fmt.Sprintf(`{"name":"direct","arch":"x86_64","memory":{"sizeMiB":128},"display":{"type":"none"},"disks":[{"pool":"nfs","volume":%q,"source":%q}]}`, d.volume, d.source)
		if st := l.a.do("POST", "/v1/vms", []byte(body), &e); st != 422 || e.Error.Code != d.code {
			t.Errorf("agent, volume %s: %d %+v; want 422 %s", d.volume, st, e, d.code)
		}
	}
	if doms := append(domainsWithPrefix(t, l.prefixA), domainsWithPrefix(t, l.prefixB)...); !equalStrings(doms, []string{l.prefixA + "v1"}) {
		t.Errorf("libvirt domains %v; want only %sv1 (nothing of the refused VMs)", doms, l.prefixA)
	}
	if b, err := os.ReadFile(decoy); err != nil || !bytes.Equal(b, secret) {
		t.Errorf("the decoy changed: %v", err)
	}

	// Deleting the link removes the link only.
	for _, vm := range []string{"v1", "v2"} {
		if err := eapi.DeleteVM(ctx, vm, true); err != nil {
			t.Errorf("delete %s: %v", vm, err)
		}
	}
	if err := eapi.DeleteVolume(ctx, "nfs", "evil.raw"); err != nil {
		t.Errorf("delete the planted link: %v", err)
	}
	if b, err := os.ReadFile(decoy); err != nil || !bytes.Equal(b, secret) {
		t.Errorf("the decoy changed: %v", err)
	}
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// detailHas tells whether an error answer has a detail with this code and
// field.
func detailHas(ce *api.Error, code, field string) bool {
	for _, d := range ce.Details {
		if d.Code == code && d.Field == field {
			return true
		}
	}
	return false
}
