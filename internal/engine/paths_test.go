package engine

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/client"
	"polyvirt/internal/vmspec"
)

// TestVMHostPaths: a definition reaching host files no host of its
// cluster allows is refused (PATH_NOT_ALLOWED, naming the field), for an
// admin as for a vm-manager; a cluster whose hosts report their policy
// is checked against it, and a VM starts only on a host whose policy
// allows its paths.
func TestVMHostPaths(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	vmm, err := l.te.admin.CreateUser(ctx, "operator", "vm-manager")
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"admin": l.te.token, "vm-manager": vmm.Token}
	kernel := "/usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/vmlinux"
	refused := []struct {
		name, yaml, field string
	}{
		{"/etc/shadow as a disk", "disks: [{source: /etc/shadow}]", "disks[0].source"},
		{"the host's disk", "disks: [{source: /dev/vda}]", "disks[0].source"},
		{"the host's disk as a file", "disks: [{source: /dev/vda, type: file}]", "disks[0].source"},
		{"a CD-ROM of /etc/shadow", "disks: [{device: cdrom, source: /etc/shadow}]", "disks[0].source"},
		{"/etc/shadow as the kernel", "kernel: {path: /etc/shadow}", "kernel.path"},
		{"a private key as the initrd", "kernel: {path: " + kernel + ", initrd: /root/.ssh/id_rsa}", "kernel.initrd"},
		{"a file console of the definition", "console: {type: file, path: /etc/passwd}", "console.path"},
		{"a console log of the definition", "console: {log: /etc/cron.d/evil}", "console.log"},
		{"an RNG fed by a file", "rng: {model: virtio, backend: /etc/shadow}", "rng.backend"},
	}
	for who, token := range users {
		c := l.te.client(t, token)
		for _, tc := range refused {
			t.Run(who+": "+tc.name, func(t *testing.T) {
				_, err := c.CreateVM(ctx, engineapi.VMRequest{Cluster: "power", Definition: defJSON(t, "name: evil\n"+tc.yaml+"\n")})
				ce := clientErr(err)
				if ce.Status != 422 || ce.Code != "PATH_NOT_ALLOWED" || ce.Field != tc.field {
					t.Errorf("%d %s (%s) %s; want 422 PATH_NOT_ALLOWED at %s", ce.Status, ce.Code, ce.Field, ce.Message, tc.field)
				}
			})
		}
	}
	if vms, err := l.te.admin.VMs(ctx, client.VMFilter{}); err != nil || len(vms) != 0 {
		t.Errorf("refused definitions left VMs: %v %v", vms, err)
	}
	// A file console is fine: its host names the file.
	l.create(t, "filecon", "power", "name: filecon\nconsole: {type: file}\n", false, "")

	// A cluster whose hosts report their policies: xa allows /srv/images
	// and a block device, xb the defaults.
	if _, err := l.te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: "mixed", Arch: "x86_64"}); err != nil {
		t.Fatal(err)
	}
	newFakeAgentWith(t, l.te, "xa", "mixed", "x86-2s-intel", func(r *hostreport.Report) {
		r.HostPaths = &hostreport.HostPaths{Disk: []string{"/srv/images"}, CDROM: []string{}, Kernel: []string{}, Initrd: []string{}, BlockDevices: []string{"/dev/vdb"}}
	})
	newFakeAgentWith(t, l.te, "xb", "mixed", "x86-2s-intel", func(r *hostreport.Report) {
		r.HostPaths = &hostreport.HostPaths{Disk: []string{"/var/lib/polyvirt/images"}, CDROM: []string{}, Kernel: []string{}, Initrd: []string{}, BlockDevices: []string{}}
	})
	for _, h := range []string{"xa", "xb"} {
		waitHost(t, l.te.admin, h, 10*time.Second, status("Up"))
	}
	l.create(t, "srv", "mixed", "name: srv\ndisks: [{source: /srv/images/a.img}]\n", false, "")
	l.create(t, "blk", "mixed", "name: blk\ndisks: [{source: /dev/vdb}]\n", false, "")
	l.create(t, "var", "mixed", "name: var\ndisks: [{source: /var/lib/polyvirt/images/a.img}]\n", false, "")
	_, err = l.te.admin.CreateVM(ctx, engineapi.VMRequest{Cluster: "mixed", Definition: defJSON(t, "name: opt\ndisks: [{source: /opt/a.img}]\n")})
	if ce := clientErr(err); ce.Code != "PATH_NOT_ALLOWED" || !strings.Contains(ce.Message, "(/srv/images or /var/lib/polyvirt/images)") {
		t.Errorf("a disk no host of the cluster allows: %+v", ce)
	}
	// Each starts on the host that allows it.
	for vm, host := range map[string]string{"srv": "xa", "blk": "xa", "var": "xb"} {
		r, err := l.te.admin.VMAction(ctx, vm, "start", "")
		if err != nil || r.Host != host {
			t.Errorf("start %s: on %q (%v); want %s", vm, r.Host, err, host)
		}
	}
	// Pinned to a host that does not allow its disk: no host fits, and
	// the pinned host says why.
	if _, err := l.te.admin.UpdateVM(ctx, "var", engineapi.VMUpdate{Host: ptr("xa")}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.te.admin.VMAction(ctx, "var", "destroy", ""); err != nil {
		t.Fatal(err)
	}
	_, err = l.te.admin.VMAction(ctx, "var", "start", "")
	ce := clientErr(err)
	var reasons []string
	for _, d := range ce.Details {
		reasons = append(reasons, d.Field+" "+d.Code)
	}
	if diff := cmp.Diff([]string{"host:xa " + api.CodePathNotAllowed, "host:xb " + api.CodeHostNotPinned}, reasons); ce.Code != api.CodeSchedulingFilteredOut || diff != "" {
		t.Errorf("start pinned to a host that does not allow the disk: %s (-want +got):\n%s", ce.Code, diff)
	}
}

// TestRequestBodiesSayWhatTheySeem: a key twice (or twice in another case
// at the top), and a Unicode format character in any string, are refused
// with the field named.
func TestRequestBodiesSayWhatTheySeem(t *testing.T) {
	l := newPowerLab(t)
	cases := []struct {
		name, method, path, body string
		code, field              string
	}{
		{"cluster name twice", "POST", "/api/v1/clusters", `{"name":"a","name":"b"}`, api.CodeDuplicateKey, "name"},
		{"cluster name twice, another case", "POST", "/api/v1/clusters", `{"name":"a","Name":"b"}`, api.CodeDuplicateKey, "Name"},
		{"user role twice", "POST", "/api/v1/users", `{"name":"eve","role":"readonly","role":"admin"}`, api.CodeDuplicateKey, "role"},
		{"a key twice in a definition", "POST", "/api/v1/vms",
			`{"cluster":"power","definition":{"name":"d","disks":[{"source":"/var/lib/polyvirt/images/a.img","source":"/etc/shadow"}]}}`, api.CodeDuplicateKey, "definition.disks[0].source"},
		{"a metadata key twice", "POST", "/api/v1/vms",
			`{"cluster":"power","definition":{"name":"d","metadata":{"owner":"alice","owner":"mallory"}}}`, api.CodeDuplicateKey, "definition.metadata.owner"},
		{"a bidi override in a description", "POST", "/api/v1/clusters", "{\"name\":\"c\",\"description\":\"prod \u202eno\"}", api.CodeFormatChars, "description"},
		{"an escaped bidi isolate in a description", "POST", "/api/v1/clusters", `{"name":"c","description":"a\u2066b"}`, api.CodeFormatChars, "description"},
		{"a bidi override in metadata", "POST", "/api/v1/vms",
			"{\"cluster\":\"power\",\"definition\":{\"name\":\"d\",\"metadata\":{\"owner\":\"alice\u202e\"}}}", api.CodeFormatChars, "definition.metadata.owner"},
		{"a bidi override in a path", "POST", "/api/v1/vms",
			`{"cluster":"power","definition":{"name":"d","disks":[{"source":"/var/lib/polyvirt/images/\u202egpj.img"}]}}`, api.CodeFormatChars, "definition.disks[0].source"},
		{"a zero width space in a reason", "POST", "/api/v1/hosts/p8a/maintenance", `{"reason":"planned\u200b"}`, api.CodeFormatChars, "reason"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, eb, _ := l.te.raw(t, tc.method, tc.path, l.te.token, []byte(tc.body))
			if st != 400 || eb.Error.Code != tc.code || eb.Error.Field != tc.field {
				t.Errorf("%d %s (%s) %s; want 400 %s at %s", st, eb.Error.Code, eb.Error.Field, eb.Error.Message, tc.code, tc.field)
			}
		})
	}
	st, eb, _ := l.te.raw(t, "POST", "/api/v1/hosts/p8a/firmware/image?name=01SV860\u202egpj.rpm", l.te.token, []byte("x"))
	if st != 400 || eb.Error.Code != api.CodeFormatChars || eb.Error.Field != "name" {
		t.Errorf("a firmware image name with a bidi override: %d %+v", st, eb)
	}
	// Nothing was made.
	cs, _ := l.te.admin.Clusters(context.Background())
	vms, _ := l.te.admin.VMs(context.Background(), client.VMFilter{})
	h, _ := l.te.admin.Host(context.Background(), "p8a", false)
	if len(cs) != 4 || len(vms) != 0 || h.Status != "Up" {
		t.Errorf("refused bodies changed something: %d clusters, %d VMs, p8a %s", len(cs), len(vms), h.Status)
	}
}

// TestHostPathDisksAdminOnly: with pools in place, a disk that names a
// host path (not a volume of a pool) is an administrator's exception. A
// vm-manager's definition with such disks (the repository's x86_64
// example) is refused with DISK_HOST_PATH_ADMIN_ONLY naming each disk and
// its path, 403, nothing created; the administrator creates the example
// as it is; the vm-manager may then change that VM keeping its host paths,
// but not give it another.
func TestHostPathDisksAdminOnly(t *testing.T) {
	l := newPowerLab(t)
	ctx := context.Background()
	vmm, err := l.te.admin.CreateUser(ctx, "operator", "vm-manager")
	if err != nil {
		t.Fatal(err)
	}
	op := l.te.client(t, vmm.Token)
	b, err := os.ReadFile("../../examples/x86_64-server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	disks := func(ce api.Error) []string {
		var out []string
		for _, d := range ce.Details {
			out = append(out, d.Code+" "+d.Field)
		}
		return out
	}

	_, err = op.CreateVM(ctx, engineapi.VMRequest{Cluster: "x86", Definition: defJSON(t, example)})
	ce := clientErr(err)
	want := []string{api.CodeDiskHostPathAdminOnly + " disks[0].source", api.CodeDiskHostPathAdminOnly + " disks[1].source"}
	if diff := cmp.Diff(want, disks(ce)); ce.Status != 403 || diff != "" {
		t.Errorf("a vm-manager's host-path disks: %d %s %s (-want +got):\n%s", ce.Status, ce.Code, ce.Message, diff)
	}
	if !containsAll(ce.Message, "/var/lib/polyvirt/images/web-1.qcow2", "/var/lib/polyvirt/images/debian-12-amd64-netinst.iso", "administrator", "operator") {
		t.Errorf("the refusal does not name the paths, the user and who may: %s", ce.Message)
	}
	// One disk: the answer is that disk's.
	_, err = op.CreateVM(ctx, engineapi.VMRequest{Cluster: "x86", Definition: defJSON(t, "name: one\ndisks: [{device: cdrom, source: /var/lib/polyvirt/images/x.iso}]\n")})
	if ce := clientErr(err); ce.Status != 403 || ce.Code != api.CodeDiskHostPathAdminOnly || ce.Field != "disks[0].source" || !strings.Contains(ce.Message, "/var/lib/polyvirt/images/x.iso") {
		t.Errorf("a vm-manager's host-path CD-ROM: %+v", ce)
	}
	// A path no host allows stays PATH_NOT_ALLOWED, for anyone.
	_, err = op.CreateVM(ctx, engineapi.VMRequest{Cluster: "x86", Definition: defJSON(t, "name: two\ndisks: [{source: /etc/shadow}]\n")})
	if ce := clientErr(err); ce.Code != api.CodePathNotAllowed || ce.Field != "disks[0].source" {
		t.Errorf("a vm-manager's disk outside the allowed directories: %+v", ce)
	}
	if vms, err := l.te.admin.VMs(ctx, client.VMFilter{}); err != nil || len(vms) != 0 {
		t.Fatalf("refused definitions left VMs: %v %v", vms, err)
	}

	// The administrator: the example as it is.
	v := l.create(t, "web-1", "x86", example, false, "")
	if def, err := vmspec.Decode(v.Definition); err != nil || len(def.Disks) != 2 || def.Disks[0].Source != "/var/lib/polyvirt/images/web-1.qcow2" {
		t.Fatalf("the administrator's VM from the example: %s %v", v.Definition, err)
	}
	// The vm-manager changes it, its host paths kept.
	bigger := strings.Replace(example, "sizeMiB: 2048", "sizeMiB: 4096", 1)
	if u, err := op.UpdateVM(ctx, "web-1", engineapi.VMUpdate{Definition: defJSON(t, bigger)}); err != nil || u.MemoryMiB != 4096 {
		t.Errorf("a vm-manager's change keeping the administrator's host paths: %+v %v", u, err)
	}
	// ... but gives it no other.
	more := strings.Replace(bigger, "nics:", "  - source: /var/lib/polyvirt/images/data.img\nnics:", 1)
	_, err = op.UpdateVM(ctx, "web-1", engineapi.VMUpdate{Definition: defJSON(t, more)})
	if ce := clientErr(err); ce.Status != 403 || ce.Code != api.CodeDiskHostPathAdminOnly || ce.Field != "disks[2].source" || !strings.Contains(ce.Message, "data.img") {
		t.Errorf("a vm-manager adding a host-path disk: %+v", ce)
	}
	if _, err := l.te.admin.UpdateVM(ctx, "web-1", engineapi.VMUpdate{Definition: defJSON(t, more)}); err != nil {
		t.Errorf("the administrator adding a host-path disk: %v", err)
	}
}
