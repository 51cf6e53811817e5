package storage

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestUploadFileWrites writes data in pieces of every alignment — at odd
// offsets (a resume), from unaligned memory, two at a time — on a file
// system with direct I/O (the test's directory) and, where there is one,
// on tmpfs (without): the file holds the data byte for byte.
func TestUploadFileWrites(t *testing.T) {
	dirs := map[string]string{"temp": t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "polyvirt-uploadfile-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dirs["tmpfs"] = d
		}
	}
	data := make([]byte, 5*uploadBuffer+777)
	rand.NewChaCha8([32]byte{7}).Read(data)
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			part := filepath.Join(dir, "part")
			if err := os.WriteFile(part, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := openUploadFile(part)
			if err != nil {
				t.Fatal(err)
			}
			if name == "temp" && f.direct == nil {
				t.Logf("no direct I/O in %s: the page cache path only", dir)
			}
			// Pieces: odd sizes first, then aligned chunks, some from
			// unaligned memory, written two at a time.
			rnd := rand.New(rand.NewPCG(1, 2))
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			sem := make(chan struct{}, 2)
			for off := 0; off < len(data); {
				n := uploadBuffer
				switch {
				case off < 3*directAlign:
					n = 1 + rnd.IntN(2*directAlign)
				case rnd.IntN(3) == 0:
					n = 1 + rnd.IntN(uploadBuffer)
				}
				n = min(n, len(data)-off)
				piece := data[off : off+n]
				if rnd.IntN(2) == 0 {
					// The same bytes from memory at an odd address.
					b := make([]byte, n+1)
					copy(b[1:], piece)
					piece = b[1:]
				} else {
					b := alignedBuffer(n)
					copy(b, piece)
					piece = b
				}
				wg.Add(1)
				sem <- struct{}{}
				go func(piece []byte, off int64) {
					defer wg.Done()
					defer func() { <-sem }()
					if err := f.WriteAt(piece, off); err != nil {
						errs <- err
					}
				}(piece, int64(off))
				off += n
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(part)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("the file has %d bytes, not the %d written (or not the same)", len(got), len(data))
			}
		})
	}
}
