package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// BenchmarkWriteUpload is the host side of an upload of 256 MiB of raw
// data from memory: the checksum, the writes into the pool (handed to the
// disk as they come), the final fsync and the checks — what a network
// transfer adds comes on top.
func BenchmarkWriteUpload(b *testing.B) {
	h, p := testHost(b)
	data := make([]byte, 256<<20)
	rand.NewChaCha8([32]byte{}).Read(data)
	s := sha256.Sum256(data)
	sum := hex.EncodeToString(s[:])
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := UploadRequest{Pool: p, Name: "bench.raw", Format: "raw", SizeBytes: int64(len(data)), SHA256: sum}
		if _, err := h.BeginUpload(req); err != nil {
			b.Fatal(err)
		}
		st, err := h.WriteUpload(ctx, p, req.Name, 0, bytes.NewReader(data))
		if err != nil || !st.Done {
			b.Fatalf("%+v %v", st, err)
		}
		b.StopTimer()
		if err := h.Delete(p, req.Name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
