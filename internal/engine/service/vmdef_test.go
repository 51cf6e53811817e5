package service

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/store"
	"polyvirt/internal/vmspec"
)

// TestCheckHostPathDisks: a disk naming a host path (not a volume) is
// refused for every caller but an administrator and the engine itself,
// unless the VM has it already; volume disks and empty CD-ROMs never are.
func TestCheckHostPathDisks(t *testing.T) {
	def := &vmspec.VM{Name: "a", Disks: []vmspec.Disk{
		{Pool: "p1", Volume: "root.qcow2", Source: "/pools/p1/root.qcow2"},
		{Device: "cdrom"},
		{Source: "/var/lib/polyvirt/images/old.img"},
		{Device: "cdrom", Source: "/var/lib/polyvirt/images/new.iso"},
	}}
	stored, err := json.Marshal(&vmspec.VM{Name: "a", Disks: []vmspec.Disk{{Source: "/var/lib/polyvirt/images/old.img"}, {Pool: "p1", Volume: "x", Source: "/pools/p1/x"}}})
	if err != nil {
		t.Fatal(err)
	}
	kept := hostPathDisks(stored)
	if diff := cmp.Diff(map[string]bool{"/var/lib/polyvirt/images/old.img": true}, kept); diff != "" {
		t.Fatalf("hostPathDisks (-want +got):\n%s", diff)
	}
	both := []string{"disks[2].source", "disks[3].source"}
	for _, tc := range []struct {
		name string
		user *store.User
		kept map[string]bool
		want []string
	}{
		{"the engine", nil, nil, nil},
		{"an administrator", &store.User{Name: "root", Role: store.RoleAdmin}, nil, nil},
		{"a vm-manager", &store.User{Name: "op", Role: store.RoleVMManager}, nil, both},
		{"a readonly user", &store.User{Name: "ro", Role: store.RoleReadOnly}, nil, both},
		{"a vm-manager keeping the VM's path", &store.User{Name: "op", Role: store.RoleVMManager}, kept, []string{"disks[3].source"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.user != nil {
				ctx = WithCaller(ctx, tc.user)
			}
			err := checkHostPathDisks(ctx, def, tc.kept)
			var got []string
			if err != nil {
				ae := asAPIError(err)
				if api.StatusOf(ae) != 403 {
					t.Errorf("status %d, want 403", api.StatusOf(ae))
				}
				for _, d := range ae.Details {
					if d.Code != api.CodeDiskHostPathAdminOnly {
						t.Errorf("%s: code %s", d.Field, d.Code)
					}
					got = append(got, d.Field)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("refused disks (-want +got):\n%s", diff)
			}
		})
	}
}
