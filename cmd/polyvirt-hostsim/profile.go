package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// serveProfiled serves until ctx ends; with a file, Go's CPU profile of
// the process meanwhile goes there (the simulator's own cost: it shares
// the machine with the engine it measures).
func serveProfiled(ctx context.Context, file string) error {
	stop, err := startProfile(file)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return stop()
}

// startProfile starts Go's CPU profile of the process into file (none
// when file is empty); stop ends it and closes the file.
func startProfile(file string) (stop func() error, err error) {
	if file == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
