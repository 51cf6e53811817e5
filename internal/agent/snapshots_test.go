package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// queryBlock is QEMU 7.2's query-block answer for a VM with a qcow2 disk
// and a SATA CD-ROM, through libvirt 9.0 (abridged to the fields read).
const queryBlock = `{"return":[{"io-status":"ok","device":"","locked":false,"removable":false,"inserted":{"iops_rd":0,"detect_zeroes":"off","image":{"virtual-size":67108864,"filename":"/var/lib/polyvirt/images/p1/d.qcow2","format":"qcow2"},"iops_wr":0,"ro":false,"node-name":"libvirt-2-format","backing_file_depth":0,"drv":"qcow2","iops":0,"bps_wr":0,"write_threshold":0,"encrypted":false,"bps":0,"bps_rd":0,"cache":{"no-flush":false,"direct":false,"writeback":true},"file":"/var/lib/polyvirt/images/p1/d.qcow2"},"qdev":"/machine/peripheral/virtio-disk0/virtio-backend","type":"unknown"},{"io-status":"ok","device":"","locked":false,"removable":true,"inserted":{"ro":true,"node-name":"libvirt-1-format","drv":"raw","file":"/var/lib/polyvirt/images/p1/seed.iso"},"qdev":"sata0-0-0","tray_open":false,"type":"unknown"},{"device":"","removable":true,"qdev":"sata0-0-1","tray_open":false,"type":"unknown"}],"id":"libvirt-414"}`

func TestParseQueryBlock(t *testing.T) {
	got, err := ParseQueryBlock([]byte(queryBlock))
	if err != nil {
		t.Fatal(err)
	}
	want := []BlockNode{
		{Node: "libvirt-2-format", Driver: "qcow2", File: "/var/lib/polyvirt/images/p1/d.qcow2"},
		{Node: "libvirt-1-format", Driver: "raw", File: "/var/lib/polyvirt/images/p1/seed.iso", ReadOnly: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{``, `{"error":{"class":"GenericError","desc":"no"}}`, `{"return":[{"inserted":{"drv":"qcow2"}}]}`, `[`} {
		if _, err := ParseQueryBlock([]byte(bad)); err == nil {
			t.Errorf("ParseQueryBlock(%q) accepted", bad)
		}
	}
}

func TestParseQMPReply(t *testing.T) {
	if err := ParseQMPReply([]byte(`{"return":{},"id":"libvirt-1"}`)); err != nil {
		t.Error(err)
	}
	err := ParseQMPReply([]byte(`{"error":{"class":"GenericError","desc":"Snapshot with name 's1' already exists"}}`))
	if err == nil || err.Error() != "GenericError: Snapshot with name 's1' already exists" {
		t.Errorf("error reply: %v", err)
	}
	for _, bad := range []string{``, `{}`, `null`, `{"return":`} {
		if ParseQMPReply([]byte(bad)) == nil {
			t.Errorf("ParseQMPReply(%q) accepted", bad)
		}
	}
}

func FuzzParseQueryBlock(f *testing.F) {
	f.Add([]byte(queryBlock))
	f.Add([]byte(`{"return":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		nodes, err := ParseQueryBlock(b)
		if err != nil {
			return
		}
		for _, n := range nodes {
			if n.Node == "" || n.Driver == "" {
				t.Fatalf("accepted %+v", n)
			}
		}
	})
}

func FuzzParseQMPReply(f *testing.F) {
	f.Add([]byte(`{"return":{}}`))
	f.Add([]byte(`{"error":{"class":"x","desc":"y"}}`))
	f.Fuzz(func(t *testing.T, b []byte) { _ = ParseQMPReply(b) })
}
