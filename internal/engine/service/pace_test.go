package service

import (
	"testing"
	"time"
)

// TestPaces: the monitoring's reloads and statistics flushes wait longer
// after work that took long, so that ten thousand hosts cannot keep the
// database busy with them all the time.
func TestPaces(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"reload, quick", reloadPause(10 * time.Millisecond), reloadSpacing},
		{"reload, 50ms", reloadPause(50 * time.Millisecond), 200 * time.Millisecond},
		{"reload, 300ms", reloadPause(300 * time.Millisecond), 1200 * time.Millisecond},
		{"flush, quick", flushPause(time.Second, 10*time.Millisecond), 990 * time.Millisecond},
		{"flush, a third", flushPause(time.Second, 333*time.Millisecond), 667 * time.Millisecond},
		{"flush, 1.4s", flushPause(time.Second, 1400*time.Millisecond), 2800 * time.Millisecond},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}
