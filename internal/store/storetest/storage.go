package storetest

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
	"polyvirt/internal/store"
)

// testStorage: pools (shared, local to a host of their cluster), what
// hosts say of them, volumes and who uses them (VMs, images, templates,
// overlays: each blocks the volume's deletion), snapshots, and what the
// deletion of a VM, a host or a cluster does to them.
func testStorage(t *testing.T, s store.Store) {
	c := mkCluster(t, s, "power")
	other := mkCluster(t, s, "x86")
	h := mkHost(t, s, "p8", c.ID)
	h2 := mkHost(t, s, "p8b", c.ID)
	shared := store.Pool{Name: "nfs1", ClusterID: c.ID, Kind: store.PoolShared, Path: "/var/lib/polyvirt/images/nfs1"}
	must(t, "create shared pool", s.CreatePool(ctx, &shared))
	local := store.Pool{Name: "local1", ClusterID: c.ID, Kind: store.PoolLocal, HostID: h.ID, Path: "/var/lib/polyvirt/images/local"}
	must(t, "create local pool", s.CreatePool(ctx, &local))
	for _, bad := range []store.Pool{
		{Name: "x", ClusterID: c.ID, Kind: store.PoolLocal, Path: "/a"},
		{Name: "x", ClusterID: c.ID, Kind: store.PoolShared, HostID: h.ID, Path: "/a"},
		{Name: "x", ClusterID: c.ID, Kind: "nfs", Path: "/a"},
		{Name: "x", ClusterID: c.ID, Kind: store.PoolShared, Path: "a"},
		{Name: "x", ClusterID: other.ID, Kind: store.PoolLocal, HostID: h.ID, Path: "/a"},
	} {
		wantErr(t, "bad pool "+string(bad.Kind), s.CreatePool(ctx, &bad), store.ErrInvalid, "")
	}
	dup := store.Pool{Name: "nfs1", ClusterID: c.ID, Kind: store.PoolShared, Path: "/b"}
	wantErr(t, "duplicate pool", s.CreatePool(ctx, &dup), store.ErrConflict, "name")
	got, err := s.GetPoolByName(ctx, "local1")
	must(t, "get pool", err)
	if diff := cmp.Diff(local, got); diff != "" {
		t.Errorf("pool (-want +got):\n%s", diff)
	}
	ps, err := s.ListPools(ctx, c.ID)
	must(t, "list pools", err)
	if len(ps) != 2 || ps[0].Name != "local1" {
		t.Errorf("pools %+v", ps)
	}

	must(t, "host pools", s.SetHostPools(ctx, h.ID, []store.HostPool{{PoolID: shared.ID, OK: true, CapacityBytes: 100, FreeBytes: 40},
		{PoolID: local.ID, OK: true, CapacityBytes: 10, FreeBytes: 5}}))
	must(t, "host pools of b", s.SetHostPools(ctx, h2.ID, []store.HostPool{{PoolID: shared.ID, OK: false, Code: "POOL_MARKER_MISSING", Message: "not mounted"}}))
	hp, err := s.ListHostPools(ctx, "", shared.ID)
	must(t, "list host pools", err)
	if len(hp) != 2 || hp[0].Checked.IsZero() {
		t.Fatalf("host pools %+v", hp)
	}
	byHost := map[string]store.HostPool{hp[0].HostID: hp[0], hp[1].HostID: hp[1]}
	if !byHost[h.ID].OK || byHost[h.ID].FreeBytes != 40 || byHost[h2.ID].OK || byHost[h2.ID].Code != "POOL_MARKER_MISSING" {
		t.Errorf("host pools %+v", hp)
	}
	// A new report replaces the old one.
	must(t, "host pools of b again", s.SetHostPools(ctx, h2.ID, []store.HostPool{{PoolID: shared.ID, OK: true}}))
	if hp, _ := s.ListHostPools(ctx, h2.ID, ""); len(hp) != 1 || !hp[0].OK {
		t.Errorf("after a new report: %+v", hp)
	}

	base := store.Volume{PoolID: shared.ID, Name: "debian.qcow2", Format: "qcow2", State: store.VolumeUploading, UploadSize: 1 << 20, SHA256: "ab"}
	must(t, "create volume", s.CreateVolume(ctx, &base))
	wantErr(t, "duplicate volume", s.CreateVolume(ctx, &store.Volume{PoolID: shared.ID, Name: "debian.qcow2", Format: "raw", State: store.VolumeReady}), store.ErrConflict, "")
	wantErr(t, "bad format", s.CreateVolume(ctx, &store.Volume{PoolID: shared.ID, Name: "x", Format: "vmdk", State: store.VolumeReady}), store.ErrInvalid, "format")
	base.State, base.VirtualSize = store.VolumeReady, 8<<30
	must(t, "update volume", s.UpdateVolume(ctx, &base))
	stale := base
	stale.Version--
	wantErr(t, "stale volume", s.UpdateVolume(ctx, &stale), store.ErrConflict, "version")
	vm := store.VM{Name: "web1", ClusterID: c.ID, State: store.VMDown, Definition: json.RawMessage(`{"name":"web1"}`)}
	must(t, "create vm", s.CreateVM(ctx, &vm))
	ov := store.Volume{PoolID: shared.ID, Name: "web1-root.qcow2", Format: "qcow2", State: store.VolumeReady, BackingVolumeID: base.ID, OwnerVMID: vm.ID, Purpose: "disk"}
	must(t, "create overlay", s.CreateVolume(ctx, &ov))
	im := store.Image{Name: "debian12", Arch: "ppc64el", OS: "debian12", VolumeID: base.ID}
	must(t, "create image", s.CreateImage(ctx, &im))
	if im.Arch != arch.PPC64LE {
		t.Errorf("image arch %q; want the canonical ppc64le", im.Arch)
	}
	wantErr(t, "a second image of the volume", s.CreateImage(ctx, &store.Image{Name: "again", Arch: arch.PPC64LE, VolumeID: base.ID}), store.ErrConflict, "")
	must(t, "vm volumes", s.SetVMVolumes(ctx, vm.ID, []string{ov.ID, ov.ID}))
	if ids, err := s.ListVMVolumes(ctx, vm.ID); err != nil || !cmp.Equal(ids, []string{ov.ID}) {
		t.Errorf("vm volumes %v %v", ids, err)
	}
	tp := store.Template{Name: "tpl", ClusterID: c.ID, Arch: arch.PPC64LE, Definition: json.RawMessage(`{"name":"tpl"}`), VolumeIDs: []string{base.ID}}
	must(t, "create template", s.CreateTemplate(ctx, &tp))
	gt, err := s.GetTemplateByName(ctx, "tpl")
	must(t, "get template", err)
	if diff := cmp.Diff(tp, gt, jsonEqual); diff != "" {
		t.Errorf("template (-want +got):\n%s", diff)
	}
	u, err := s.VolumeUsers(ctx, base.ID)
	must(t, "users", err)
	if diff := cmp.Diff(store.VolumeUse{Images: []string{"debian12"}, Templates: []string{"tpl"}, Overlays: []string{"web1-root.qcow2"}}, u); diff != "" {
		t.Errorf("users of the base (-want +got):\n%s", diff)
	}
	wantErr(t, "delete a used volume", s.DeleteVolume(ctx, base.ID), store.ErrInUse, "volume")
	wantErr(t, "delete the VM's volume", s.DeleteVolume(ctx, ov.ID), store.ErrInUse, "volume")
	wantErr(t, "delete a pool with volumes", s.DeletePool(ctx, shared.ID), store.ErrInUse, "volumes")

	snap := store.Snapshot{VMID: vm.ID, Name: "before-upgrade", InternalName: "pv-1", VolumeIDs: []string{ov.ID}, VMState: "Up"}
	must(t, "create snapshot", s.CreateSnapshot(ctx, &snap))
	wantErr(t, "duplicate snapshot", s.CreateSnapshot(ctx, &store.Snapshot{VMID: vm.ID, Name: "before-upgrade", InternalName: "pv-2"}), store.ErrConflict, "")
	gs, err := s.GetSnapshot(ctx, vm.ID, "before-upgrade")
	must(t, "get snapshot", err)
	if diff := cmp.Diff(snap, gs); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}

	// The VM goes: its volume links and snapshots with it; the volume it
	// owned stays, no longer owned.
	must(t, "delete vm", s.DeleteVM(ctx, vm.ID))
	if ss, err := s.ListSnapshots(ctx, vm.ID); err != nil || len(ss) != 0 {
		t.Errorf("snapshots of a deleted VM: %v %v", ss, err)
	}
	ov, err = s.GetVolume(ctx, ov.ID)
	must(t, "get overlay", err)
	if ov.OwnerVMID != "" {
		t.Errorf("the overlay's owner is still %s", ov.OwnerVMID)
	}
	must(t, "delete the overlay", s.DeleteVolume(ctx, ov.ID))
	must(t, "delete template", s.DeleteTemplate(ctx, tp.ID))
	must(t, "delete image", s.DeleteImage(ctx, im.ID))
	must(t, "delete base", s.DeleteVolume(ctx, base.ID))
	wantErr(t, "delete again", s.DeleteVolume(ctx, base.ID), store.ErrNotFound, "")
	// A host with a local pool, a cluster with pools, stay.
	wantErr(t, "delete the local pool's host", s.DeleteHost(ctx, h.ID), store.ErrInUse, "")
	wantErr(t, "delete a cluster with pools", s.DeleteCluster(ctx, c.ID), store.ErrInUse, "")
	must(t, "delete shared pool", s.DeletePool(ctx, shared.ID))
	if hp, _ := s.ListHostPools(ctx, "", shared.ID); len(hp) != 0 {
		t.Errorf("host pools of a deleted pool: %+v", hp)
	}
}
