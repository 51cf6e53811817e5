package store

import (
	"context"

	"github.com/google/uuid"
)

const userCols = `id, name, role, token_hash, version, created_at, updated_at`

func scanUser(u *User) func(rowScanner) error {
	return func(r rowScanner) error {
		var role string
		err := r.Scan(&u.ID, &u.Name, &role, nstr{&u.TokenHash}, &u.Version, tcol{&u.Created}, tcol{&u.Updated})
		u.Role = Role(role)
		return err
	}
}

func checkUser(op string, u *User) error {
	obj := describe("user", u.Name, u.ID)
	if err := ValidName(u.Name); err != nil {
		return invalid(op, obj, "name", "%s", err)
	}
	if !u.Role.Valid() {
		return invalid(op, obj, "role", "role %q is not admin, vm-manager, readonly or metrics", u.Role)
	}
	if len(u.TokenHash) > 128 {
		return invalid(op, obj, "tokenHash", "longer than 128 characters: store the hash, not the token")
	}
	return nil
}

// CreateUser implements Queries.
func (q *queries) CreateUser(ctx context.Context, u *User) error {
	const op = "create"
	c := *u
	if c.ID == "" {
		c.ID = uuid.NewString()
	} else if err := validID(c.ID); err != nil {
		return invalid(op, describe("user", c.Name, ""), "id", "%s", err)
	}
	if err := checkUser(op, &c); err != nil {
		return err
	}
	c.Version, c.Created = 1, now()
	c.Updated = c.Created
	d := q.s.d
	err := q.write(ctx, op, func(w *queries) error {
		_, err := w.exec(ctx, op, describe("user", c.Name, ""),
			`INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, string(c.Role), str(c.TokenHash), c.Version, d.ts(c.Created), d.ts(c.Updated))
		return err
	})
	if err == nil {
		*u = c
	}
	return err
}

func (q *queries) getUser(ctx context.Context, object, where string, arg any) (User, error) {
	var u User
	err := q.read("get", func() error {
		return q.one(ctx, "get", object, scanUser(&u), `SELECT `+userCols+` FROM users WHERE `+where, arg)
	})
	return u, err
}

// GetUser implements Queries.
func (q *queries) GetUser(ctx context.Context, id string) (User, error) {
	return q.getUser(ctx, describe("user", "", id), "id = ?", id)
}

// GetUserByName implements Queries.
func (q *queries) GetUserByName(ctx context.Context, name string) (User, error) {
	return q.getUser(ctx, describe("user", name, ""), "name = ?", name)
}

// GetUserByTokenHash implements Queries.
func (q *queries) GetUserByTokenHash(ctx context.Context, hash string) (User, error) {
	if hash == "" {
		return User{}, notFound("get", "user with this token")
	}
	return q.getUser(ctx, "user with this token", "token_hash = ?", hash)
}

// ListUsers implements Queries.
func (q *queries) ListUsers(ctx context.Context) ([]User, error) {
	out := []User{}
	err := q.read("list", func() error {
		return q.many(ctx, "list", "users", func(r rowScanner) error {
			var u User
			if err := scanUser(&u)(r); err != nil {
				return err
			}
			out = append(out, u)
			return nil
		}, `SELECT `+userCols+` FROM users ORDER BY name`)
	})
	return out, err
}

// UpdateUser implements Queries.
func (q *queries) UpdateUser(ctx context.Context, u *User) error {
	const op = "update"
	c := *u
	if err := checkUser(op, &c); err != nil {
		return err
	}
	obj := describe("user", c.Name, c.ID)
	c.Updated = now()
	err := q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj,
			`UPDATE users SET name = ?, role = ?, token_hash = ?, version = version + 1, updated_at = ?
			 WHERE id = ? AND version = ?`,
			c.Name, string(c.Role), str(c.TokenHash), q.s.d.ts(c.Updated), c.ID, c.Version)
		if err != nil {
			return err
		}
		if n == 0 {
			return w.afterUpdate(ctx, op, obj, "users", c.ID, c.Version)
		}
		return nil
	})
	if err == nil {
		c.Version++
		*u = c
	}
	return err
}

// DeleteUser implements Queries.
func (q *queries) DeleteUser(ctx context.Context, id string) error {
	const op = "delete"
	obj := describe("user", "", id)
	return q.write(ctx, op, func(w *queries) error {
		n, err := w.exec(ctx, op, obj, `DELETE FROM users WHERE id = ?`, id)
		if err == nil && n == 0 {
			return notFound(op, obj)
		}
		if err == nil {
			err = w.deleteUserWebRows(ctx, op, obj, id)
		}
		return err
	})
}
