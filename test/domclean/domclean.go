// Package domclean removes the libvirt domains a test made: every domain
// whose name starts with the test's prefix is destroyed when it runs and
// undefined with its storage metadata and NVRAM.
package domclean

import (
	"context"
	"errors"
	"strings"
	"time"

	"polyvirt/internal/libvirtconn"
)

// unavailableFor is how long Remove tries again while the daemon cannot be
// reached: scripts/lib.sh starts the machine's libvirtd again a second
// after it ends (a crash of libvirtd 9.0), and a test that ended then must
// still not leave its domains behind.
var unavailableFor = 20 * time.Second

// Remove destroys and undefines the domains of the libvirt at uri whose
// names start with prefix, and returns how many there were. It tries again
// for unavailableFor while the daemon cannot be reached.
func Remove(uri, prefix string) (int, error) {
	deadline := time.Now().Add(unavailableFor)
	for {
		n, err := removeOnce(uri, prefix)
		if !errors.Is(err, libvirtconn.ErrUnavailable) || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func removeOnce(uri, prefix string) (int, error) {
	c, err := libvirtconn.DialDomains(uri, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	doms, err := c.ListDomains(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, d := range doms {
		if !strings.HasPrefix(d.Name, prefix) {
			continue
		}
		if st, err := c.DomainState(ctx, d); err == nil && st != libvirtconn.StateShutoff {
			if err := c.DestroyDomain(ctx, d); err != nil && !errors.Is(err, libvirtconn.ErrNoDomain) {
				errs = append(errs, err)
			}
		}
		if err := c.UndefineDomain(ctx, d, libvirtconn.UndefineAll); err != nil && !errors.Is(err, libvirtconn.ErrNoDomain) {
			errs = append(errs, err)
		}
		n++
	}
	return n, errors.Join(errs...)
}
