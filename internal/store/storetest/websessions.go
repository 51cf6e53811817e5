package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"polyvirt/internal/store"
)

// testPasswords: a user's password hash is set, read, replaced and
// removed; it goes with the user.
func testPasswords(t *testing.T, s store.Store) {
	u := store.User{Name: "alice", Role: store.RoleAdmin}
	must(t, "create user", s.CreateUser(ctx, &u))
	_, err := s.GetUserPassword(ctx, u.ID)
	wantErr(t, "no password yet", err, store.ErrNotFound, "")
	for _, h := range []string{"$argon2id$first", "$argon2id$second"} {
		must(t, "set "+h, s.SetUserPassword(ctx, u.ID, h))
		got, err := s.GetUserPassword(ctx, u.ID)
		must(t, "get", err)
		if got != h {
			t.Errorf("password hash %q; want %q", got, h)
		}
	}
	must(t, "remove", s.SetUserPassword(ctx, u.ID, ""))
	_, err = s.GetUserPassword(ctx, u.ID)
	wantErr(t, "removed password", err, store.ErrNotFound, "")
	wantErr(t, "unknown user", s.SetUserPassword(ctx, "no-such-user", "$x"), store.ErrNotFound, "")
	must(t, "set again", s.SetUserPassword(ctx, u.ID, "$argon2id$third"))
	must(t, "delete user", s.DeleteUser(ctx, u.ID))
	_, err = s.GetUserPassword(ctx, u.ID)
	wantErr(t, "password of a removed user", err, store.ErrNotFound, "")
}

// testWebSessions: sessions are created, found by their hash, touched,
// ended one by one or all of a user's, and expire.
func testWebSessions(t *testing.T, s store.Store) {
	u := store.User{Name: "alice", Role: store.RoleReadOnly}
	must(t, "create user", s.CreateUser(ctx, &u))
	_, h1, _ := store.NewToken()
	_, h2, _ := store.NewToken()
	in := store.WebSession{IDHash: h1, UserID: u.ID, CSRFToken: "csrf-1", Expires: time.Now().Add(time.Hour)}
	must(t, "create", s.CreateWebSession(ctx, &in))
	if in.Created.IsZero() || in.LastSeen != in.Created {
		t.Errorf("created session not filled in: %+v", in)
	}
	got, err := s.GetWebSession(ctx, h1)
	must(t, "get", err)
	if diff := cmp.Diff(in, got, cmpopts.IgnoreUnexported(store.WebSession{})); diff != "" || got.IDHash != h1 || got.CSRFToken != "csrf-1" {
		t.Errorf("get (-created +got):\n%s (hash %q, csrf %q)", diff, got.IDHash, got.CSRFToken)
	}
	_, err = s.GetWebSession(ctx, h2)
	wantErr(t, "unknown session", err, store.ErrNotFound, "")
	_, err = s.GetWebSession(ctx, "")
	wantErr(t, "empty hash", err, store.ErrNotFound, "")
	wantErr(t, "session of nobody", s.CreateWebSession(ctx, &store.WebSession{IDHash: h2, UserID: "nobody", CSRFToken: "x", Expires: time.Now().Add(time.Hour)}),
		store.ErrNotFound, "userId")
	wantErr(t, "no csrf token", s.CreateWebSession(ctx, &store.WebSession{IDHash: h2, UserID: u.ID, Expires: time.Now().Add(time.Hour)}),
		store.ErrInvalid, "csrfToken")
	wantErr(t, "duplicate", s.CreateWebSession(ctx, &store.WebSession{IDHash: h1, UserID: u.ID, CSRFToken: "y", Expires: time.Now().Add(time.Hour)}),
		store.ErrConflict, "")

	seen := time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)
	must(t, "touch", s.TouchWebSession(ctx, h1, seen, seen.Add(2*time.Hour)))
	got, err = s.GetWebSession(ctx, h1)
	must(t, "get touched", err)
	if !got.LastSeen.Equal(seen) || !got.Expires.Equal(seen.Add(2*time.Hour)) {
		t.Errorf("touched session seen %v expires %v; want %v and %v", got.LastSeen, got.Expires, seen, seen.Add(2*time.Hour))
	}
	wantErr(t, "touch unknown", s.TouchWebSession(ctx, h2, seen, seen), store.ErrNotFound, "")

	// An ended session is refused, and removed when a new one starts.
	must(t, "end it", s.TouchWebSession(ctx, h1, seen, time.Now().Add(-time.Second)))
	_, err = s.GetWebSession(ctx, h1)
	wantErr(t, "expired", err, store.ErrExpired, "")
	must(t, "create second", s.CreateWebSession(ctx, &store.WebSession{IDHash: h2, UserID: u.ID, CSRFToken: "csrf-2", Expires: time.Now().Add(time.Hour)}))
	wantErr(t, "expired one removed", s.DeleteWebSession(ctx, h1), store.ErrNotFound, "")

	must(t, "sign out", s.DeleteWebSession(ctx, h2))
	_, err = s.GetWebSession(ctx, h2)
	wantErr(t, "signed out", err, store.ErrNotFound, "")

	// All of a user's sessions end at once; a removed user's go with it.
	for i := 0; i < 3; i++ {
		_, h, _ := store.NewToken()
		must(t, "create", s.CreateWebSession(ctx, &store.WebSession{IDHash: h, UserID: u.ID, CSRFToken: "c", Expires: time.Now().Add(time.Hour)}))
	}
	n, err := s.DeleteUserWebSessions(ctx, u.ID)
	must(t, "delete the user's sessions", err)
	if n != 3 {
		t.Errorf("deleted %d sessions; want 3", n)
	}
	_, h3, _ := store.NewToken()
	must(t, "create", s.CreateWebSession(ctx, &store.WebSession{IDHash: h3, UserID: u.ID, CSRFToken: "c", Expires: time.Now().Add(time.Hour)}))
	must(t, "delete user", s.DeleteUser(ctx, u.ID))
	_, err = s.GetWebSession(ctx, h3)
	wantErr(t, "session of a removed user", err, store.ErrNotFound, "")
}

// testConsoleTickets: a ticket is taken once; an expired one is refused.
func testConsoleTickets(t *testing.T, s store.Store) {
	_, h1, _ := store.NewToken()
	in := store.ConsoleTicket{Hash: h1, UserID: "u1", VMID: "vm1", Kind: "vnc", Expires: time.Now().Add(time.Minute)}
	must(t, "create", s.CreateConsoleTicket(ctx, &in))
	got, err := s.TakeConsoleTicket(ctx, h1)
	must(t, "take", err)
	if diff := cmp.Diff(in, got); diff != "" || got.Hash != h1 {
		t.Errorf("take (-created +got):\n%s", diff)
	}
	_, err = s.TakeConsoleTicket(ctx, h1)
	wantErr(t, "take twice", err, store.ErrNotFound, "")
	_, err = s.TakeConsoleTicket(ctx, "")
	wantErr(t, "empty", err, store.ErrNotFound, "")
	wantErr(t, "no vm", s.CreateConsoleTicket(ctx, &store.ConsoleTicket{Hash: h1, UserID: "u", Kind: "vnc", Expires: time.Now()}), store.ErrInvalid, "vmId")

	_, h2, _ := store.NewToken()
	must(t, "create expired", s.CreateConsoleTicket(ctx, &store.ConsoleTicket{Hash: h2, UserID: "u1", VMID: "vm1", Kind: "vnc", Expires: time.Now().Add(-time.Second)}))
	_, err = s.TakeConsoleTicket(ctx, h2)
	wantErr(t, "expired", err, store.ErrExpired, "")
	_, err = s.TakeConsoleTicket(ctx, h2)
	wantErr(t, "expired, again", err, store.ErrNotFound, "")

	// Of concurrent takers, one wins.
	_, h3, _ := store.NewToken()
	must(t, "create", s.CreateConsoleTicket(ctx, &store.ConsoleTicket{Hash: h3, UserID: "u1", VMID: "vm1", Kind: "vnc", Expires: time.Now().Add(time.Minute)}))
	const n = 8
	var wins, lost atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.TakeConsoleTicket(ctx, h3)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrNotFound):
				lost.Add(1)
			default:
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if wins.Load() != 1 || lost.Load() != n-1 {
		t.Errorf("%d takers won, %d lost; want 1 and %d", wins.Load(), lost.Load(), n-1)
	}
}
