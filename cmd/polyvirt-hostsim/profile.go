package main

import (
	"context"
	"os"
	"runtime/pprof"
)

// serveProfiled serves until ctx ends; with a file, Go's CPU profile of
// the process meanwhile goes there (the simulator's own cost: it shares
// the machine with the engine it measures).
func serveProfiled(ctx context.Context, file string) error {
	if file == "" {
		<-ctx.Done()
		return nil
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	<-ctx.Done()
	pprof.StopCPUProfile()
	return f.Close()
}
