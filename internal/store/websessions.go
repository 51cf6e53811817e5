package store

import (
	"context"
	"time"
)

// WebSession is a signed-in web UI session. Its identifier is the value of
// the browser's session cookie; only its hash (HashToken) is stored.
type WebSession struct {
	// IDHash is HashToken of the cookie's value.
	IDHash string `json:"-"`
	UserID string `json:"userId"`
	// CSRFToken is the token the UI sends with every request that changes
	// something (a random value, only useful with the cookie).
	CSRFToken string    `json:"-"`
	Created   time.Time `json:"created"`
	// LastSeen is when the session was last used (written at most about
	// once a minute).
	LastSeen time.Time `json:"lastSeen"`
	// Expires is when the session ends unless it is used again (idle
	// expiry, bounded by the session's absolute lifetime).
	Expires time.Time `json:"expires"`
}

// ConsoleTicket is a short-lived, one-use permission for one user to open
// one VM's console (the graphical console's websocket). Only its hash is
// stored.
type ConsoleTicket struct {
	Hash    string    `json:"-"`
	UserID  string    `json:"userId"`
	VMID    string    `json:"vmId"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

const maxHashLen = 128

// SetUserPassword implements Queries.
func (q *queries) SetUserPassword(ctx context.Context, userID, hash string) error {
	const op = "set password"
	obj := describe("user", "", userID)
	if len(hash) > 512 {
		return invalid(op, obj, "password", "hash longer than 512 characters: store the hash, not the password")
	}
	d := q.s.d
	return q.write(ctx, op, func(w *queries) error {
		if ok, err := w.exists(ctx, op, obj, `SELECT 1 FROM users WHERE id = ?`+d.forUpdate, userID); err != nil {
			return err
		} else if !ok {
			return notFound(op, obj)
		}
		if _, err := w.exec(ctx, op, obj, `DELETE FROM user_passwords WHERE user_id = ?`, userID); err != nil {
			return err
		}
		if hash == "" {
			return nil
		}
		_, err := w.exec(ctx, op, obj, `INSERT INTO user_passwords (user_id, hash, updated_at) VALUES (?, ?, ?)`,
			userID, hash, d.ts(now()))
		return err
	})
}

// GetUserPassword implements Queries.
func (q *queries) GetUserPassword(ctx context.Context, userID string) (string, error) {
	var hash string
	err := q.read("get", func() error {
		return q.one(ctx, "get", describe("password of user", "", userID), func(r rowScanner) error { return r.Scan(&hash) },
			`SELECT p.hash FROM user_passwords p JOIN users u ON u.id = p.user_id WHERE p.user_id = ?`, userID)
	})
	return hash, err
}

func checkSession(op string, s *WebSession) error {
	const obj = "web session"
	switch {
	case s.IDHash == "" || len(s.IDHash) > maxHashLen:
		return invalid(op, obj, "idHash", "want the hash of the session's identifier")
	case s.UserID == "":
		return invalid(op, obj, "userId", "is empty")
	case s.CSRFToken == "" || len(s.CSRFToken) > maxHashLen:
		return invalid(op, obj, "csrfToken", "want a token of 1 to %d characters", maxHashLen)
	case s.Expires.IsZero():
		return invalid(op, obj, "expires", "is not set")
	}
	return nil
}

// CreateWebSession implements Queries.
func (q *queries) CreateWebSession(ctx context.Context, in *WebSession) error {
	const op = "create"
	const obj = "web session"
	s := *in
	if err := checkSession(op, &s); err != nil {
		return err
	}
	t := now()
	s.Created, s.LastSeen = t, t
	s.Expires = s.Expires.UTC().Truncate(time.Microsecond)
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		if ok, err := w.exists(ctx, op, obj, `SELECT 1 FROM users WHERE id = ?`, s.UserID); err != nil {
			return err
		} else if !ok {
			return newErr(ErrNotFound, op, obj, "userId", "user "+s.UserID+" does not exist")
		}
		// The sessions that ended go when a new one starts.
		if _, err := w.exec(ctx, op, obj, `DELETE FROM web_sessions WHERE expires_at < ?`, d.ts(t)); err != nil {
			return err
		}
		_, err := w.exec(ctx, op, obj, `INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, s.IDHash, s.UserID, s.CSRFToken, d.ts(s.Created), d.ts(s.LastSeen), d.ts(s.Expires))
		return err
	})
	if err == nil {
		*in = s
	}
	return err
}

// GetWebSession implements Queries.
func (q *queries) GetWebSession(ctx context.Context, idHash string) (WebSession, error) {
	const op = "get"
	const obj = "web session"
	var s WebSession
	if idHash == "" {
		return s, notFound(op, obj)
	}
	err := q.read(op, func() error {
		return q.one(ctx, op, obj, func(r rowScanner) error {
			return r.Scan(&s.IDHash, &s.UserID, &s.CSRFToken, tcol{&s.Created}, tcol{&s.LastSeen}, tcol{&s.Expires})
		}, `SELECT s.id_hash, s.user_id, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at
			FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?`, idHash)
	})
	if err != nil {
		return WebSession{}, err
	}
	if !s.Expires.After(now()) {
		return WebSession{}, newErr(ErrExpired, op, obj, "", "ended at "+s.Expires.Format(time.RFC3339)+": sign in again")
	}
	return s, nil
}

// TouchWebSession implements Queries.
func (q *queries) TouchWebSession(ctx context.Context, idHash string, seen, expires time.Time) error {
	const op = "touch"
	const obj = "web session"
	d := q.s.d
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `UPDATE web_sessions SET last_seen_at = ?, expires_at = ? WHERE id_hash = ?`,
			d.ts(seen), d.ts(expires), idHash)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

// DeleteWebSession implements Queries.
func (q *queries) DeleteWebSession(ctx context.Context, idHash string) error {
	const op = "delete"
	const obj = "web session"
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `DELETE FROM web_sessions WHERE id_hash = ?`, idHash)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		return err
	})
}

// DeleteUserWebSessions implements Queries.
func (q *queries) DeleteUserWebSessions(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := q.write(ctx, "delete", func(w *queries) error {
		var err error
		n, err = w.exec(ctx, "delete", describe("web sessions of user", "", userID), `DELETE FROM web_sessions WHERE user_id = ?`, userID)
		return err
	})
	return n, err
}

// CreateConsoleTicket implements Queries.
func (q *queries) CreateConsoleTicket(ctx context.Context, in *ConsoleTicket) error {
	const op = "create"
	const obj = "console ticket"
	c := *in
	switch {
	case c.Hash == "" || len(c.Hash) > maxHashLen:
		return invalid(op, obj, "hash", "want the hash of the ticket")
	case c.UserID == "":
		return invalid(op, obj, "userId", "is empty")
	case c.VMID == "":
		return invalid(op, obj, "vmId", "is empty")
	case c.Kind == "" || len(c.Kind) > 32:
		return invalid(op, obj, "kind", "want a console kind (vnc)")
	case c.Expires.IsZero():
		return invalid(op, obj, "expires", "is not set")
	}
	c.Created = now()
	c.Expires = c.Expires.UTC().Truncate(time.Microsecond)
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		if _, err := w.exec(ctx, op, obj, `DELETE FROM console_tickets WHERE expires_at < ?`, d.ts(c.Created)); err != nil {
			return err
		}
		_, err := w.exec(ctx, op, obj, `INSERT INTO console_tickets (ticket_hash, user_id, vm_id, kind, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, c.Hash, c.UserID, c.VMID, c.Kind, d.ts(c.Created), d.ts(c.Expires))
		return err
	})
	if err == nil {
		*in = c
	}
	return err
}

// TakeConsoleTicket implements Queries.
func (q *queries) TakeConsoleTicket(ctx context.Context, hash string) (ConsoleTicket, error) {
	const op = "take"
	const obj = "console ticket"
	var c ConsoleTicket
	if hash == "" {
		return c, notFound(op, obj)
	}
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		if err := w.one(ctx, op, obj, func(r rowScanner) error {
			return r.Scan(&c.Hash, &c.UserID, &c.VMID, &c.Kind, tcol{&c.Created}, tcol{&c.Expires})
		}, `SELECT ticket_hash, user_id, vm_id, kind, created_at, expires_at FROM console_tickets WHERE ticket_hash = ?`+d.forUpdate, hash); err != nil {
			return err
		}
		// One use: of two concurrent takers, one deletes the row.
		n, err := w.exec(ctx, op, obj, `DELETE FROM console_tickets WHERE ticket_hash = ?`, hash)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound(op, obj)
		}
		return nil
	})
	if err != nil {
		return ConsoleTicket{}, err
	}
	if !c.Expires.After(now()) {
		return ConsoleTicket{}, newErr(ErrExpired, op, obj, "", "expired at "+c.Expires.Format(time.RFC3339)+": ask for a new one")
	}
	return c, nil
}

// deleteUserWebRows removes a removed user's password, sessions and
// tickets (no foreign keys do it: see the migration).
func (q *queries) deleteUserWebRows(ctx context.Context, op, obj, userID string) error {
	for _, table := range []string{"user_passwords", "web_sessions", "console_tickets"} {
		if _, err := q.exec(ctx, op, obj, `DELETE FROM `+table+` WHERE user_id = ?`, userID); err != nil {
			return err
		}
	}
	return nil
}
