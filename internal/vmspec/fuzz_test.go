package vmspec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"polyvirt/internal/api"
	"polyvirt/internal/arch"
)

// FuzzDecode: decoding and validating any bytes never panics, refuses with
// Errors whose entries all have a code and a message, and an accepted
// definition is complete (its defaults are filled in).
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("../../examples/*.yaml")
	more, _ := filepath.Glob("../../examples/invalid/*.yaml")
	golden, _ := filepath.Glob("../domxml/testdata/*.yaml")
	for _, p := range append(append(seeds, more...), golden...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"name":"a","arch":"ppc64le","disks":[{"bus":"scsi"}]}`))
	f.Add([]byte("name: a\narch: x86_64\nmetadata: {k: \"v\\n\"}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vm, err := Decode(data)
		if err != nil {
			checkErrors(t, err)
			return
		}
		for _, opts := range []Options{{}, {Arch: arch.PPC64LE}} {
			v, err := Validate(vm, opts)
			if err != nil {
				checkErrors(t, err)
				continue
			}
			c := v.VM()
			if c.Arch == "" || c.CPU == nil || c.Memory == nil || c.Display == nil || c.USB == nil || c.Console == nil || c.RNG == nil {
				t.Fatalf("accepted definition not complete: %+v", c)
			}
			for _, d := range c.Disks {
				if d.Target == "" || d.Bus == "" {
					t.Fatalf("disk without target or bus: %+v", d)
				}
			}
		}
	})
}

func checkErrors(t *testing.T, err error) {
	t.Helper()
	var es api.Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error is not Errors: %v", err)
	}
	for _, e := range es {
		if e.Code == "" || e.Message == "" {
			t.Fatalf("violation without code or message: %+v", e)
		}
	}
}

// FuzzHostCaps: any report text is refused or gives a report that
// validation can use against any definition without panicking.
func FuzzHostCaps(f *testing.F) {
	f.Add([]byte(`{"arch":"x86_64","effectiveArch":"ppc64le","fakeKvm":true,"virt":{"domainType":"qemu","emulatedMachines":["pseries"],"cpuModels":["POWER8"],"guests":[{"arch":"ppc64le","machines":["pseries"]}]}}`))
	f.Add([]byte(`{"arch":""}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHostCaps(data)
		if err != nil {
			return
		}
		vm, err := Decode([]byte(`{"name": "f", "memory": {"sizeMiB": 512}, "display": {"type": "vnc"}}`))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = Validate(vm, Options{Host: h})
	})
}
