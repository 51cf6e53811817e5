package firmware

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/arch"
	"polyvirt/internal/hostexec"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestReadInventory(t *testing.T) {
	fspRoot := fstest.MapFS{
		"proc/device-tree/model":                        file("8247-22L\x00"),
		"proc/device-tree/system-id":                    file("1013B7A\x00"),
		"proc/device-tree/model-name":                   file("IBM Power System S822L\x00"),
		"proc/device-tree/vendor":                       file("IBM\x00"),
		"proc/device-tree/ibm,opal/firmware/version":    file("skiboot-5.1.13\x00"),
		"proc/device-tree/ibm,opal/firmware/mi-version": file("MI SV810_133 SV810_081 SV810_133\x00"),
	}
	openPower := fstest.MapFS{
		"proc/device-tree/model":                          file("8335-GTH\x00"),
		"proc/device-tree/system-id":                      file("13E8A4A\x00"),
		"proc/device-tree/model-name":                     file("IBM Power System AC922\x00"),
		"proc/device-tree/ibm,firmware-versions/name":     file("ibm,firmware-versions\x00"),
		"proc/device-tree/ibm,firmware-versions/phandle":  file("\x00\x00\x10\x01"),
		"proc/device-tree/ibm,firmware-versions/skiboot":  file("v6.0.19\x00"),
		"proc/device-tree/ibm,firmware-versions/hostboot": file("hw011820a.op920\x00"),
		"proc/device-tree/ibm,firmware-versions/version":  file("witherspoon-ibm-OP9-v2.0.14-2.21\x00"),
		"proc/device-tree/ibm,opal/firmware/version":      file("skiboot-v6.0.19\x00"),
	}
	x86 := fstest.MapFS{
		"sys/class/dmi/id/sys_vendor":     file("Dell Inc.\n"),
		"sys/class/dmi/id/product_name":   file("PowerEdge R640\n"),
		"sys/class/dmi/id/product_serial": file("Not Specified\n"),
		"sys/class/dmi/id/bios_vendor":    file("Dell Inc.\n"),
		"sys/class/dmi/id/bios_version":   file("2.12.2\n"),
		"sys/class/dmi/id/bios_date":      file("07/09/2021\n"),
		"proc/cpuinfo":                    file("processor\t: 0\nmodel\t\t: 85\n"),
	}
	cpuinfoOnly := fstest.MapFS{
		"proc/cpuinfo": file("processor\t: 0\ncpu\t\t: POWER8E (raw), altivec supported\n\ntimebase\t: 512000000\nplatform\t: PowerNV\nmodel\t\t: 8247-22L\nmachine\t\t: PowerNV 8247-22L\nfirmware\t: OPAL v3\n"),
	}
	lsmcodeA := "sys0!system:SV810_133 (t) SV810_081 (p) SV810_133 (t)service:\n"
	sys := &agentapi.SystemFirmware{Temporary: lv("SV810_133"), Permanent: lv("SV810_081"), Booted: lv("SV810_133"), BootedSide: agentapi.FirmwareSideTemporary}

	tests := []struct {
		name      string
		arch      arch.Arch
		root      fstest.MapFS
		lsmcode   hostexec.FakeFunc
		want      agentapi.FirmwareInventory
		wantCalls int
	}{
		{
			name: "FSP POWER8", arch: arch.PPC64LE, root: fspRoot, lsmcode: hostexec.Reply(lsmcodeA),
			want: agentapi.FirmwareInventory{Arch: arch.PPC64LE, Mechanism: "update_flash", TypeModel: "8247-22L", Serial: "1013B7A",
				ModelName: "IBM Power System S822L", Vendor: "IBM", System: sys,
				Components: []agentapi.FirmwareComponent{
					{Name: "opal", Version: "skiboot-5.1.13", Source: "device-tree"},
					{Name: "opal-mi", Version: "MI SV810_133 SV810_081 SV810_133", Source: "device-tree"},
				}},
			wantCalls: 1,
		},
		{
			name: "OpenPOWER POWER9, lsmcode prints no system firmware", arch: arch.PPC64LE, root: openPower,
			lsmcode: hostexec.Reply(""),
			want: agentapi.FirmwareInventory{Arch: arch.PPC64LE, Mechanism: "update_flash", TypeModel: "8335-GTH", Serial: "13E8A4A",
				ModelName: "IBM Power System AC922",
				Components: []agentapi.FirmwareComponent{
					{Name: "opal", Version: "skiboot-v6.0.19", Source: "device-tree"},
					{Name: "hostboot", Version: "hw011820a.op920", Source: "device-tree"},
					{Name: "skiboot", Version: "v6.0.19", Source: "device-tree"},
					{Name: "version", Version: "witherspoon-ibm-OP9-v2.0.14-2.21", Source: "device-tree"},
				},
				Problems: []string{`FIRMWARE_TOOL_OUTPUT_UNREADABLE: lsmcode -A: system firmware: empty output, want a line starting "sys0!system:"; lsmcode: system firmware: empty output, want a line starting "Version of System Firmware is"`}},
			wantCalls: 2,
		},
		{
			name: "lsmcode as a user", arch: arch.PPC64LE, root: fspRoot, lsmcode: hostexec.ReplyExit(255, "Must be run as root!\n", ""),
			want: agentapi.FirmwareInventory{Arch: arch.PPC64LE, Mechanism: "update_flash", TypeModel: "8247-22L", Serial: "1013B7A",
				ModelName: "IBM Power System S822L", Vendor: "IBM",
				Components: []agentapi.FirmwareComponent{
					{Name: "opal", Version: "skiboot-5.1.13", Source: "device-tree"},
					{Name: "opal-mi", Version: "MI SV810_133 SV810_081 SV810_133", Source: "device-tree"},
				},
				Problems: []string{"FIRMWARE_PERMISSION_DENIED: lsmcode -A: Must be run as root!"}},
			wantCalls: 1,
		},
		{
			name: "POWER without device tree: cpuinfo type-model", arch: arch.PPC64LE, root: cpuinfoOnly, lsmcode: hostexec.Reply(lsmcodeA),
			want:      agentapi.FirmwareInventory{Arch: arch.PPC64LE, Mechanism: "update_flash", TypeModel: "8247-22L", System: sys},
			wantCalls: 1,
		},
		{
			name: "x86_64: DMI BIOS, lsmcode never runs", arch: arch.X86_64, root: x86, lsmcode: hostexec.Reply(lsmcodeA),
			want: agentapi.FirmwareInventory{Arch: arch.X86_64, ModelName: "PowerEdge R640", Vendor: "Dell Inc.",
				Components: []agentapi.FirmwareComponent{{Name: "bios", Vendor: "Dell Inc.", Version: "2.12.2", Date: "07/09/2021", Source: "dmi"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := hostexec.NewFake()
			f.Handle("lsmcode", tt.lsmcode)
			got, err := ReadInventory(context.Background(), Source{Arch: tt.arch, Root: tt.root, Runner: f})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if n := len(f.Calls()); n != tt.wantCalls {
				t.Errorf("%d lsmcode calls, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestReadInventoryUnknownArch(t *testing.T) {
	_, err := ReadInventory(context.Background(), Source{Arch: arch.ARMv7L, Root: fstest.MapFS{}})
	if err == nil || codeOf(err) != api.CodeNotSupportedOnArch {
		t.Fatalf("err = %v, want NOT_SUPPORTED_ON_ARCH", err)
	}
}

// TestReadIdentityCorpus reads the device tree identity of real PowerNV
// machines from the shared corpus.
func TestReadIdentityCorpus(t *testing.T) {
	base := filepath.Join("..", "..", "..", "shared", "corpus", "device-tree")
	if _, err := os.Stat(base); err != nil {
		t.Skipf("shared corpus absent (%v): skipping the real-machine device trees", err)
	}
	tests := []struct {
		dir  string
		want Identity
	}{
		{"p8-840-spira", Identity{TypeModel: "8286-41A", Serial: "TU00163", ModelName: "IBM Power System S814", Vendor: "IBM", Source: "device-tree"}},
		{"p10-rainier", Identity{TypeModel: "9105-22A", Serial: "139F260", ModelName: "ibm,rainier-2s2u", Vendor: "IBM", Source: "device-tree"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			// The corpus holds the device tree's root properties; mount them
			// at proc/device-tree.
			root := fstest.MapFS{}
			ents, err := os.ReadDir(filepath.Join(base, tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				data, err := os.ReadFile(filepath.Join(base, tt.dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				root["proc/device-tree/"+e.Name()] = &fstest.MapFile{Data: data}
			}
			if diff := cmp.Diff(tt.want, ReadIdentity(root)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
