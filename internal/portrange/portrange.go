// Package portrange reads the range of ports Linux gives to outgoing
// connections and to listeners on port 0 (the ephemeral range), so that
// ports chosen to be bound later — a lab's, a libvirt daemon's migration
// block — can be kept out of it.
package portrange

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// EphemeralFile is where Linux says which ports are ephemeral.
const EphemeralFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Linux's default ephemeral range, for a machine whose file cannot be read.
const (
	DefaultLow  = 32768
	DefaultHigh = 60999
)

// Read returns the ephemeral range file gives ("32768\t60999\n").
func Read(file string) (low, high int, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, err
	}
	return Parse(string(b))
}

// Parse reads a range as the file holds it: two port numbers, the first
// not above the second. An error names what is wrong.
func Parse(s string) (low, high int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("ephemeral port range %q: want two port numbers, got %d fields", s, len(f))
	}
	for i, name := range []string{"low", "high"} {
		n, err := strconv.Atoi(f[i])
		if err != nil || n < 1 || n > 65535 {
			return 0, 0, fmt.Errorf("ephemeral port range %q: the %s port %q is not a port number (1-65535)", s, name, f[i])
		}
		if i == 0 {
			low = n
		} else {
			high = n
		}
	}
	if low > high {
		return 0, 0, fmt.Errorf("ephemeral port range %q: low port %d above high port %d", s, low, high)
	}
	return low, high, nil
}
