package service

import (
	"fmt"
	"testing"
	"time"

	"polyvirt/internal/store"
)

// TestTokenCache: a token's user is served from memory within the TTL,
// not after it, not after a change of users made here (nor when it was
// read before that change), and the memory stays bounded.
func TestTokenCache(t *testing.T) {
	var c tokenCache
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	u := store.User{ID: "u1", Name: "viewer", Role: store.RoleReadOnly}
	if _, ok := c.get("h1", t0); ok {
		t.Fatal("an empty cache answers")
	}
	c.put("h1", u, t0, c.gen.Load())
	for _, tc := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"at once", t0, true},
		{"just within the TTL", t0.Add(tokenCacheTTL - time.Millisecond), true},
		{"at the TTL", t0.Add(tokenCacheTTL), false},
		{"before it was read (clock stepped back)", t0.Add(-time.Second), false},
	} {
		got, ok := c.get("h1", tc.at)
		if ok != tc.want || (ok && got != u) {
			t.Errorf("%s: %+v %v, want found=%v", tc.name, got, ok, tc.want)
		}
	}
	if _, ok := c.get("other", t0); ok {
		t.Error("another token's hash answers")
	}
	// A change of users here forgets every token.
	c.changed()
	if _, ok := c.get("h1", t0); ok {
		t.Error("a token read before a change of users is still served")
	}
	// A read that began before the change is not served after it.
	before := c.gen.Load()
	c.changed()
	c.put("h2", u, t0, before)
	if _, ok := c.get("h2", t0); ok {
		t.Error("a user read before a change of users, remembered after it, is served")
	}
	// Bounded: past tokenCacheMax the expired ones go, then all.
	gen := c.gen.Load()
	for i := range tokenCacheMax + 10 {
		c.put(fmt.Sprintf("t%d", i), u, t0, gen)
	}
	if n := len(c.m); n > tokenCacheMax {
		t.Errorf("%d tokens remembered, want at most %d", n, tokenCacheMax)
	}
	c.put("late", u, t0.Add(tokenCacheTTL), gen)
	if _, ok := c.get("late", t0.Add(tokenCacheTTL)); !ok {
		t.Error("the token just remembered is not served")
	}
}
