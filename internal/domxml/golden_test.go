package domxml

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/arch"
	"polyvirt/internal/vmspec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenCase renders testdata/<in>.yaml (or a file elsewhere) with options
// into testdata/<name>.xml.
type goldenCase struct {
	name     string
	in       string
	opts     Options
	vopts    vmspec.Options
	hostCaps string
}

var goldenCases = []goldenCase{
	{name: "x86_64-q35", in: "testdata/x86_64-q35.yaml"},
	{name: "x86_64-pc", in: "testdata/x86_64-pc.yaml"},
	{name: "x86_64-efi-headless", in: "testdata/x86_64-efi-headless.yaml"},
	{name: "x86_64-minimal", in: "testdata/x86_64-minimal.yaml"},
	{name: "ppc64le-default", in: "testdata/ppc64le-default.yaml"},
	{name: "ppc64le-kernel-boot", in: "testdata/ppc64le-kernel-boot.yaml"},
	{name: "ppc64le-scsi", in: "testdata/ppc64le-scsi.yaml"},
	{name: "ppc64le-minimal", in: "testdata/ppc64le-minimal.yaml"},
	{name: "ppc64-power7", in: "testdata/ppc64-power7.yaml"},
	{name: "aarch64-virt", in: "testdata/aarch64-virt.yaml"},
	{name: "s390x-ccw", in: "testdata/s390x-ccw.yaml"},
	// Fake KVM: a POWER VM on an x86_64 host keeps pseries; host-model
	// becomes the TCG model, POWER9 is kept, memory is capped.
	{name: "fake-ppc64le-default-on-x86_64", in: "testdata/ppc64le-default.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 512}},
	{name: "fake-ppc64le-scsi-on-x86_64", in: "testdata/ppc64le-scsi.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 1000}},
	{name: "fake-ppc64le-kernel-boot-on-x86_64", in: "testdata/ppc64le-kernel-boot.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.X86_64}},
	// An x86_64 VM on a POWER host is rewritten for pseries.
	{name: "fake-x86_64-q35-on-ppc64le", in: "testdata/x86_64-q35.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.PPC64LE, MemoryCapMiB: 1000}},
	{name: "fake-x86_64-pc-on-ppc64le", in: "testdata/x86_64-pc.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.PPC64LE}},
	{name: "fake-x86_64-minimal-on-ppc64le", in: "testdata/x86_64-minimal.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.PPC64LE}},
	{name: "fake-x86_64-q35-on-x86_64", in: "testdata/x86_64-q35.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.X86_64}},
	{name: "fake-aarch64-on-x86_64", in: "testdata/aarch64-virt.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 512}},
	// The examples the README uses.
	{name: "example-ppc64le-debian-installer", in: "../../examples/ppc64le-debian-installer.yaml"},
	{name: "example-ppc64le-disk", in: "../../examples/ppc64le-disk.yaml"},
	{name: "example-x86_64-server", in: "../../examples/x86_64-server.yaml"},
	{name: "example-x86_64-debian-installer", in: "../../examples/x86_64-debian-installer.yaml"},
	{name: "example-ppc64le-debian-installer-fake-on-x86_64", in: "../../examples/ppc64le-debian-installer.yaml",
		opts: Options{FakeKVM: true, HostArch: arch.X86_64, MemoryCapMiB: 768}},
	// A host report that says TCG only turns fake KVM on by itself.
	{name: "hostcaps-tcg-ppc64le-kernel-boot", in: "testdata/ppc64le-kernel-boot.yaml",
		hostCaps: "../vmspec/testdata/hostcaps-x86_64-tcg.json"},
	{name: "hostcaps-power9-ppc64le-scsi", in: "testdata/ppc64le-scsi.yaml",
		hostCaps: "../vmspec/testdata/hostcaps-power9-kvm.json"},
}

func (c goldenCase) render(t *testing.T) string {
	t.Helper()
	vm, err := vmspec.DecodeFile(c.in)
	if err != nil {
		t.Fatalf("%s: %v", c.in, err)
	}
	vopts := c.vopts
	if c.hostCaps != "" {
		h, err := vmspec.LoadHostCaps(c.hostCaps)
		if err != nil {
			t.Fatal(err)
		}
		vopts.Host = h
	}
	v, err := vmspec.Validate(vm, vopts)
	if err != nil {
		t.Fatalf("%s: %v", c.in, err)
	}
	out, err := Render(v, c.opts)
	if err != nil {
		t.Fatalf("%s: %v", c.in, err)
	}
	return out + "\n"
}

func TestGolden(t *testing.T) {
	var files []string
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			got := c.render(t)
			path := filepath.Join("testdata", c.name+".xml")
			files = append(files, path)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs (-golden +got; go test -update rewrites it):\n%s", path, diff)
			}
			checkWellFormed(t, got)
		})
	}
	validateSchema(t, files...)
}

// debianSchema is where Debian's libvirt0 package installs libvirt's
// domain schema.
const debianSchema = "/usr/share/libvirt/schemas/domain.rng"

// schemaPath finds libvirt's domain schema: in the shared corpus beside the
// module root (../shared/corpus/schemas/domain.rng), else the one libvirt
// installed (Debian: /usr/share/libvirt/schemas/domain.rng). It tells
// where it looked when neither exists.
func schemaPath(t *testing.T) (string, []string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var tried []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			tried = append(tried, filepath.Join(d, "..", "shared", "corpus", "schemas", "domain.rng"), debianSchema)
			break
		}
		if filepath.Dir(d) == d {
			t.Fatal("no go.mod above " + dir)
		}
	}
	for _, p := range tried {
		if _, err := os.Stat(p); err == nil {
			return p, tried
		}
	}
	return "", tried
}

// validateSchema runs xmllint --relaxng over the files in one go. Without
// the schema or xmllint it skips with the reason, or fails when the
// project's test command asks for every real component
// (POLYVIRT_REQUIRE_LIBVIRT=1: scripts/test.sh installs both).
func validateSchema(t *testing.T, files ...string) {
	t.Helper()
	if len(files) == 0 {
		t.Fatal("no files to validate")
	}
	absent := t.Skipf
	if os.Getenv("POLYVIRT_REQUIRE_LIBVIRT") == "1" {
		absent = t.Fatalf
	}
	rng, tried := schemaPath(t)
	if rng == "" {
		absent("libvirt's domain schema is absent (looked at %s; Debian: package libvirt0): domain XML not checked against it", strings.Join(tried, ", "))
	}
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		absent("xmllint is not installed (Debian: libxml2-utils): domain XML not checked against the schema")
	}
	args := append([]string{"--noout", "--relaxng", rng}, files...)
	var out bytes.Buffer
	cmd := exec.Command(xmllint, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	text := out.String()
	for _, f := range files {
		if !strings.Contains(text, f+" validates") {
			t.Errorf("%s does not pass libvirt's schema", f)
		}
	}
	if err != nil || t.Failed() {
		t.Errorf("xmllint: %v\n%s", err, text)
	}
}
