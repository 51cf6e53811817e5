// Command chattyinit is the /init of an initramfs the end-to-end tests
// boot to get a guest that prints on its serial console without end:
// numbered lines ("polyvirt-chatter 00000042 ..."), as fast as the console
// takes them, so that a test sees whether the guest still runs (its counter
// goes on) and whether its console output ever stalls.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	pad := strings.Repeat(".", 48)
	for i := 0; ; i++ {
		// A write error (no console) must not end init: the kernel would
		// panic.
		fmt.Fprintf(os.Stdout, "polyvirt-chatter %08d %s\n", i, pad)
	}
}
