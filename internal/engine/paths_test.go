package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/client"
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
