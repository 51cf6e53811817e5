package caps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"time"

	"polyvirt/internal/api/hostreport"
	"polyvirt/internal/arch"
	"polyvirt/internal/archspec"
	"polyvirt/internal/hostinfo"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/profiles"
	"polyvirt/internal/virtcaps"
)

// LibvirtNone is the --libvirt value that skips libvirt altogether.
const LibvirtNone = "none"

// maxDocBytes bounds a captured libvirt document read from a file.
const maxDocBytes = 16 << 20

// Options say where a report is read from.
type Options struct {
	// Root is the filesystem root of the host; "" is the live host "/".
	Root string
	// Arch overrides the architecture recognised from the data.
	Arch arch.Arch
	// LibvirtURI names the daemon to ask ("" is the default
	// qemu:///system, LibvirtNone skips libvirt). With a Root, a Profile or
	// captured documents, the daemon is asked only when LibvirtURI is set.
	LibvirtURI string
	// CapsFile and DomCapsFiles are captured libvirt documents.
	CapsFile     string
	DomCapsFiles []string
	// FakeArch, when set, makes the host a fake-KVM host of that effective
	// architecture.
	FakeArch arch.Arch
	// FakeKVM runs the host's guests under TCG as its own architecture
	// (fake-KVM mode without another architecture or a profile).
	FakeKVM bool
	// Profile names a built-in host profile.
	Profile string
	// Timeout bounds the libvirt conversation (0: 10 s).
	Timeout time.Duration
}

// Result is a report with what it was built from.
type Result struct {
	Report *hostreport.Report
	// Host and Libvirt are the inputs (Libvirt nil when not asked).
	Host    *hostinfo.Host
	Libvirt *virtcaps.Live
	// HostLibvirt are the libvirt documents that describe the host's own
	// hardware (its NUMA cells): Libvirt, or a profile's own documents
	// when a daemon emulates the profile.
	HostLibvirt *virtcaps.Live
}

// Collect reads the host and asks libvirt as opts say, and builds the
// report. Missing pieces end up in Report.Unavailable; only unusable
// options (an unknown profile, an unreadable captured document) are errors.
func Collect(ctx context.Context, opts Options) (*Result, error) {
	var root fs.FS
	source := "live"
	var prof *profiles.Profile
	switch {
	case opts.Profile != "" && opts.Root != "":
		return nil, errors.New("--profile and --root both name the host; give one")
	case opts.Profile != "":
		p, err := profiles.Get(opts.Profile)
		if err != nil {
			return nil, err
		}
		prof, root, source = p, p.Root, "profile:"+p.Name
	case opts.Root != "":
		st, err := os.Stat(opts.Root)
		if err != nil {
			return nil, fmt.Errorf("--root: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("--root %s: not a directory", opts.Root)
		}
		root, source = os.DirFS(opts.Root), "root:"+opts.Root
	default:
		root = os.DirFS("/")
	}

	hopts := hostinfo.Options{Arch: opts.Arch}
	host, err := hostinfo.Read(root, hopts)
	if err != nil {
		return nil, err
	}
	// The architecture is what the host's files say (hostinfo), or the
	// profile's: never the running binary's. A host that says nothing
	// reports it unknown (Unavailable says why).

	in := Input{Host: host, FakeArch: opts.FakeArch, FakeKVM: opts.FakeKVM, Source: source}
	if prof != nil {
		in.Profile = prof.Name
	}
	live, lerr := libvirtFacts(ctx, opts, prof, source, tcgUnlessKVM(host, opts.FakeArch, opts.FakeKVM || prof != nil))
	if prof != nil && opts.LibvirtURI != "" && opts.LibvirtURI != LibvirtNone {
		// A profile host asks a daemon for what the local QEMU emulates,
		// but its CPU is the profile's: read its models from the profile's
		// own documents (a POWER8 is not a POWER10 because TCG is).
		own, err := libvirtFacts(ctx, Options{}, prof, source, "")
		if err != nil {
			return nil, err
		}
		in.CPUSource = own
	}
	switch {
	case lerr != nil && !errors.Is(lerr, libvirtconn.ErrUnavailable):
		return nil, lerr
	case lerr != nil:
		in.LibvirtError = lerr.Error()
	default:
		in.Libvirt = live
		if live == nil && opts.LibvirtURI == LibvirtNone {
			in.LibvirtError = "libvirt skipped (--libvirt none)"
		}
	}
	own := in.CPUSource
	if own == nil {
		own = in.Libvirt
	}
	return &Result{Report: Build(in), Host: host, Libvirt: live, HostLibvirt: own}, nil
}

// libvirtFacts returns what libvirt says, from the source opts choose. A
// daemon that cannot be reached is an error wrapping ErrUnavailable.
//
// domainType, when set, is the domain type to ask domcapabilities for
// ("qemu" where KVM cannot run guests).
func libvirtFacts(ctx context.Context, opts Options, prof *profiles.Profile, source, domainType string) (*virtcaps.Live, error) {
	if opts.LibvirtURI == LibvirtNone {
		return nil, nil
	}
	captured := opts.CapsFile != "" || len(opts.DomCapsFiles) > 0
	if opts.LibvirtURI == "" && captured {
		return fromFiles(opts.CapsFile, opts.DomCapsFiles)
	}
	if opts.LibvirtURI == "" && prof != nil {
		docs := make([][]byte, 0, len(prof.DomainCapabilities))
		for _, a := range sortedArches(prof.DomainCapabilities) {
			docs = append(docs, prof.DomainCapabilities[a])
		}
		live, err := virtcaps.FromDocuments(prof.Capabilities, docs)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", prof.Name, err)
		}
		live.LibvirtVersion, live.QEMUVersion = prof.LibvirtVersion, prof.QEMUVersion
		return live, nil
	}
	if opts.LibvirtURI == "" && source != "live" {
		return nil, fmt.Errorf("%w: not asked for a captured host (name a daemon with --libvirt URI)", libvirtconn.ErrUnavailable)
	}
	uri := opts.LibvirtURI
	if uri == "" {
		uri = libvirtconn.DefaultURI
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := libvirtconn.Dial(uri, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	live, err := virtcaps.Gather(ctx, conn, virtcaps.GatherOptions{DomainType: domainType})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", libvirtconn.ErrUnavailable, err)
	}
	return live, nil
}

func fromFiles(capsFile string, domFiles []string) (*virtcaps.Live, error) {
	var capsDoc []byte
	if capsFile != "" {
		b, err := readLimited(capsFile)
		if err != nil {
			return nil, fmt.Errorf("--libvirt-caps: %w", err)
		}
		capsDoc = b
	}
	docs := make([][]byte, 0, len(domFiles))
	for _, f := range domFiles {
		b, err := readLimited(f)
		if err != nil {
			return nil, fmt.Errorf("--libvirt-domcaps: %w", err)
		}
		docs = append(docs, b)
	}
	live, err := virtcaps.FromDocuments(capsDoc, docs)
	var de *virtcaps.DocumentError
	if errors.As(err, &de) {
		name := capsFile
		if de.Index >= 0 {
			name = domFiles[de.Index]
		}
		return nil, fmt.Errorf("%s: %w", name, de.Err)
	}
	return live, err
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDocBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxDocBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB, refusing", path, maxDocBytes>>20)
	}
	return b, nil
}

func sortedArches[V any](m map[arch.Arch]V) []arch.Arch {
	out := make([]arch.Arch, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// tcgUnlessKVM returns "qemu" when guests cannot use KVM here (the CPU
// lacks what the architecture needs, /dev/kvm is absent, or the host is a
// fake-KVM host), and "" to let libvirt's preference stand.
func tcgUnlessKVM(h *hostinfo.Host, fake arch.Arch, fakeKVM bool) string {
	spec, err := archspec.For(h.Arch)
	if err != nil || fake != arch.Unknown || fakeKVM {
		return "qemu"
	}
	if ok, _ := spec.KVMUsable(h.KVMDevice, h.CPU.Flags); !ok {
		return "qemu"
	}
	return ""
}
