package store

import (
	"testing"
	"time"
)

// TestLeaderPingTimeout: a leadership's ping waits five check intervals,
// never less than 10 s, and always longer than an interval (a slow answer
// under load is not a lost lock).
func TestLeaderPingTimeout(t *testing.T) {
	for _, c := range []struct{ interval, want time.Duration }{
		{200 * time.Millisecond, 10 * time.Second},
		{2 * time.Second, 10 * time.Second},
		{5 * time.Second, 25 * time.Second},
	} {
		if got := leaderPingTimeout(c.interval); got != c.want || got <= c.interval {
			t.Errorf("leaderPingTimeout(%s) = %s, want %s", c.interval, got, c.want)
		}
	}
}
