package service

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
	"polyvirt/internal/caps"
	"polyvirt/internal/store"
)

// profileFacts reads the facts of a built-in profile, as an agent with
// that profile reports them.
func profileFacts(t *testing.T, profile string) hostFacts {
	t.Helper()
	res, err := caps.Collect(context.Background(), caps.Options{Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	f, err := factsFromReport(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAdmit(t *testing.T) {
	p8 := profileFacts(t, "s822l-power8e")
	p9 := profileFacts(t, "ac922-power9")
	x86 := profileFacts(t, "x86-2s-intel")
	power := store.Cluster{Name: "power", Arch: arch.PPC64, EmulatedMachineCandidates: []string{"pseries-*", "pseries"}}
	empty := store.Cluster{Name: "new"}
	withType := func(c store.Cluster, t string) store.Cluster { c.CPUType = t; return c }
	withMachine := func(c store.Cluster, m string) store.Cluster { c.EmulatedMachine = m; return c }
	noFlags := hostFacts{Arch: arch.X86_64, Machines: x86.Machines}
	oldQEMU := p8
	oldQEMU.Machines = []string{"pseries-2.12", "pseries"}

	type want struct {
		OK             bool
		Code           string
		Missing        []string
		Best           string
		ClusterArch    arch.Arch
		ClusterCPU     string
		ClusterMachine string
		ClusterChanged bool
		MessageHas     string
	}
	tests := []struct {
		name    string
		host    hostFacts
		cluster store.Cluster
		want    want
	}{
		{"POWER8 sets the CPU type of a power cluster", p8, power,
			want{OK: true, Best: "IBM POWER8", ClusterArch: arch.PPC64, ClusterCPU: "IBM POWER8", ClusterMachine: "pseries-7.2", ClusterChanged: true,
				MessageHas: ""}},
		{"POWER8 sets everything of an empty cluster", p8, empty,
			want{OK: true, Best: "IBM POWER8", ClusterArch: arch.PPC64, ClusterCPU: "IBM POWER8", ClusterMachine: "pseries-7.2", ClusterChanged: true}},
		{"x86_64 refused by a power cluster", x86, power,
			want{Code: "ARCHITECTURE_INCOMPATIBLE_WITH_CLUSTER", Best: "Secure Intel Cascadelake Server Family", ClusterArch: arch.PPC64,
				MessageHas: "Host h has architecture x86_64 and cannot join cluster power which has architecture ppc64"}},
		{"POWER8 refused by a POWER9 cluster, naming model_POWER9", p8, withType(power, "IBM POWER9"),
			want{Code: "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER", Missing: []string{"model_POWER9"}, Best: "IBM POWER8", ClusterArch: arch.PPC64,
				ClusterCPU: "IBM POWER9", MessageHas: "Missing CPU features: model_POWER9"}},
		{"POWER9 admitted to a POWER8 cluster", p9, withType(power, "IBM POWER8"),
			want{OK: true, Best: "IBM POWER9", ClusterArch: arch.PPC64, ClusterCPU: "IBM POWER8", ClusterMachine: "pseries-7.2", ClusterChanged: true}},
		{"no CPU type matches no flags", noFlags, empty,
			want{Code: "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER", MessageHas: "reported no CPU flags"}},
		{"the cluster's machine is offered", p9, withMachine(withType(power, "IBM POWER8"), "pseries-7.2"),
			want{OK: true, Best: "IBM POWER9", ClusterArch: arch.PPC64, ClusterCPU: "IBM POWER8", ClusterMachine: "pseries-7.2"}},
		{"the cluster's machine is not offered", oldQEMU, withMachine(withType(power, "IBM POWER8"), "pseries-7.2"),
			want{Code: api.CodeEmulatedMachines, Best: "IBM POWER8", ClusterArch: arch.PPC64, ClusterCPU: "IBM POWER8", ClusterMachine: "pseries-7.2",
				MessageHas: "The cluster current emulated machine is pseries-7.2"}},
		{"no candidate is offered by the first host", x86, store.Cluster{Name: "odd", EmulatedMachineCandidates: []string{"virt-*"}},
			want{Code: api.CodeEmulatedMachines, Best: "Secure Intel Cascadelake Server Family", MessageHas: "candidate emulated machines are virt-*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := admit("h", tc.host, tc.cluster)
			got := want{OK: a.OK, Code: a.Code, Missing: a.Missing, Best: a.Best.Name, ClusterArch: a.Cluster.Arch,
				ClusterCPU: a.Cluster.CPUType, ClusterMachine: a.Cluster.EmulatedMachine, ClusterChanged: a.ClusterChanged,
				MessageHas: tc.want.MessageHas}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("admit (-want +got):\n%s", diff)
			}
			if !strings.Contains(a.Message, tc.want.MessageHas) {
				t.Errorf("message %q lacks %q", a.Message, tc.want.MessageHas)
			}
			if !a.OK && a.ClusterChanged {
				t.Errorf("a refused host changed the cluster")
			}
		})
	}
}

func TestFactsFromReport(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want hostFacts
		err  bool
	}{
		{"effective arch wins", `{"arch":"x86_64","effectiveArch":"ppc64le","cpu":{"model":"POWER8","flags":["powernv","model_POWER8"]},"virt":{"emulatedMachines":["pseries"]}}`,
			hostFacts{Arch: arch.PPC64LE, CPUModel: "POWER8", Flags: []string{"powernv", "model_POWER8"}, Machines: []string{"pseries"}}, false},
		{"alias", `{"arch":"ppc64el","cpu":{},"virt":{}}`, hostFacts{Arch: arch.PPC64LE}, false},
		{"unknown arch kept", `{"arch":"mips","cpu":{},"virt":{}}`, hostFacts{Arch: arch.Arch("mips")}, false},
		{"not JSON", `{"arch":`, hostFacts{}, true},
		{"wrong type", `{"cpu":{"flags":"powernv"}}`, hostFacts{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := factsFromReport([]byte(tc.doc))
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); !tc.err && diff != "" {
				t.Errorf("facts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAdmitTCGHostByVendor: a host whose own KVM cannot run guests (its
// report says virtualization tcg, it presents no other machine) is
// admitted by its CPU's vendor: an AMD machine sets an AMD type and is
// refused by an Intel cluster; a profile host keeps the strict rules.
func TestAdmitTCGHostByVendor(t *testing.T) {
	report := func(mut func(r map[string]any)) hostFacts {
		r := map[string]any{
			"arch": "x86_64", "effectiveArch": "x86_64", "fakeKvm": true,
			"cpu": map[string]any{"model": "AMD EPYC", "vendor": "AuthenticAMD",
				"flags": []string{"fpu", "sse2", "nx", "lm", "aes", "model_qemu64", "model_Opteron_G2", "model_Westmere", "model_Nehalem"}},
			"virt": map[string]any{"kvm": false, "kvmReason": "/dev/kvm is absent", "virtualization": "tcg",
				"emulatedMachines": []string{"pc-q35-7.2", "q35", "pc-i440fx-7.2", "pc"}},
		}
		if mut != nil {
			mut(r)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		f, err := factsFromReport(b)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	amd := report(nil)
	if !amd.Emulated || amd.Vendor != "AuthenticAMD" {
		t.Fatalf("facts %+v", amd)
	}
	a := admit("x86_64-a", amd, store.Cluster{Name: "x86_64"})
	if !a.OK || a.Cluster.CPUType != "AMD Opteron G4" || a.Cluster.Arch != arch.X86_64 || !strings.Contains(a.ClusterChange, "runs guests under TCG") {
		t.Errorf("first AMD host: %+v", a)
	}
	a = admit("x86_64-a", amd, store.Cluster{Name: "x86_64", Arch: arch.X86_64, CPUType: "Intel Cascadelake Server Family"})
	if a.OK || a.Code != api.CodeCPUTypeIncompatible || !strings.Contains(a.Message, "AMD") {
		t.Errorf("AMD host into an Intel cluster: %+v", a)
	}
	// The same report from a profile (it imitates a KVM host): strict.
	prof := report(func(r map[string]any) { r["profile"] = "x" })
	if prof.Emulated {
		t.Errorf("a profile host is taken for an emulated one")
	}
	if a := admit("p", prof, store.Cluster{Name: "x86_64"}); a.OK {
		t.Errorf("a profile host without a vendor marker admitted: %+v", a)
	}
}
