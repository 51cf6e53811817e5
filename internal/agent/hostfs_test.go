package agent

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/libvirtconn"
)

// TestProfileHostStatisticsAreTheProfiles: an agent presenting a profile
// reads its statistics and what its capabilities depend on through the
// profile's root (issue 12, item 8): the S822L's 20 online threads and
// 256 GiB, not this machine's.
func TestProfileHostStatisticsAreTheProfiles(t *testing.T) {
	cfg := Config{HostID: "unit-power8", DataDir: t.TempDir(), Profile: "s822l-power8e", LibvirtURI: "qemu+unix:///system?socket=/nonexistent"}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeConn()
	a.conn.dial = func(string, time.Duration) (libvirtconn.AgentConn, error) { return f, nil }
	a.stats.sample(context.Background(), a)
	st, err := a.stats.current()
	if err != nil {
		t.Fatal(err)
	}
	if st.Host.CPUs != 20 || st.Host.MemTotalMiB != 256*1024 || st.Host.Load1 != 0 {
		t.Errorf("host statistics %+v, want the profile's 20 CPUs and 262144 MiB", st.Host)
	}
	fp := a.capsFingerprint()
	if !strings.HasPrefix(fp, "0,8,16,24,32,40,48,56,64,72,80,88,96,104,112,120,128,136,144,152|268435456|") {
		t.Errorf("fingerprint %q: not the profile's online CPUs and memory", fp)
	}
}
