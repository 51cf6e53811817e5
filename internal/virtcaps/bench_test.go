package virtcaps

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"polyvirt/internal/libvirtconn"
)

// benchCorpus runs parse on every corpus file of the matching kind.
func benchCorpus(b *testing.B, domcaps bool, parse func([]byte) error) {
	dir := requireCorpus(b)
	for _, rel := range corpusXMLFiles(b, dir) {
		if isDomCapsFile(rel) != domcaps {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(rel), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseCapabilities(b *testing.B) {
	benchCorpus(b, false, func(d []byte) error { _, err := ParseCapabilities(d); return err })
}

func BenchmarkParseDomainCapabilities(b *testing.B) {
	benchCorpus(b, true, func(d []byte) error { _, err := ParseDomainCapabilities(d); return err })
}

// BenchmarkGatherLive is one Gather on an open connection to the live
// daemon (capabilities, versions, one domcapabilities per guest arch).
func BenchmarkGatherLive(b *testing.B) {
	conn, err := libvirtconn.Dial(liveURI(), 5*time.Second)
	if err != nil {
		b.Skipf("libvirt unreachable: %v", err)
	}
	defer conn.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Gather(context.Background(), conn, GatherOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDialGatherLive adds the connection set-up, as a `polyvirt caps`
// process pays it.
func BenchmarkDialGatherLive(b *testing.B) {
	if conn, err := libvirtconn.Dial(liveURI(), 5*time.Second); err != nil {
		b.Skipf("libvirt unreachable: %v", err)
	} else {
		conn.Close()
	}
	b.ReportAllocs()
	for b.Loop() {
		conn, err := libvirtconn.Dial(liveURI(), 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Gather(context.Background(), conn, GatherOptions{}); err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
}
