// Command testsummary reads `go test -json` on standard input and prints
// what go test prints without -json — each package's ok or FAIL line, the
// output of the tests that failed, build errors — then one summary line of
// the tests passed, failed and skipped, and each skipped test with its
// reason. It exits with status 1 when a test or a package failed, or when
// no test ran.
//
//	go test -json ./... | go run ./test/testsummary
package main

import (
	"fmt"
	"os"
)

func main() {
	s := newSummary(os.Stdout)
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if !s.finish() {
		os.Exit(1)
	}
}
