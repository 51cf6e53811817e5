package domclean

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"polyvirt/internal/libvirtconn"
)

// A daemon that cannot be reached is tried again for unavailableFor, then
// the error says libvirt is unavailable.
func TestRemoveTriesAgainWhileUnavailable(t *testing.T) {
	old := unavailableFor
	unavailableFor = 700 * time.Millisecond
	t.Cleanup(func() { unavailableFor = old })
	uri := "qemu+unix:///system?socket=" + filepath.Join(t.TempDir(), "no-daemon-sock")
	start := time.Now()
	n, err := Remove(uri, "pv-none-")
	if !errors.Is(err, libvirtconn.ErrUnavailable) || n != 0 {
		t.Fatalf("Remove without a daemon: %d, %v; want 0 and ErrUnavailable", n, err)
	}
	if waited := time.Since(start); waited < unavailableFor {
		t.Errorf("gave up after %s, before %s", waited, unavailableFor)
	}
}
