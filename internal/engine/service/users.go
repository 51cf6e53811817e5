package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// Users are the engine's users, their roles and their API tokens.
type Users struct{ e *engine }

// apiTokenPrefix starts every API token.
const apiTokenPrefix = "pvt1."

// NewAPIToken makes a user's API token and the hash to store.
func NewAPIToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = apiTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, store.HashToken(token), nil
}

// Authenticate finds the user of an API token (UNAUTHENTICATED when none
// has it).
// A token's user is remembered for tokenCacheTTL (tokenCache).
func (s *Users) Authenticate(ctx context.Context, token string) (store.User, error) {
	hash := store.HashToken(token)
	c := &s.e.tokens
	now := time.Now()
	if u, ok := c.get(hash, now); ok {
		return u, nil
	}
	gen := c.gen.Load()
	u, err := s.e.st.GetUserByTokenHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, fail(api.CodeUnauthenticated, "invalid API token (revoked, or from another engine?)")
	}
	if err != nil {
		return store.User{}, coded(err)
	}
	c.put(hash, u, now, gen)
	return u, nil
}

func userView(u store.User) engineapi.User {
	return engineapi.User{ID: u.ID, Name: u.Name, Role: string(u.Role), Version: u.Version, Created: u.Created, Updated: u.Updated}
}

// Whoami is the caller.
func (s *Users) Whoami(ctx context.Context) (engineapi.User, error) {
	u := CallerFrom(ctx)
	if u == nil {
		return engineapi.User{}, fail(api.CodeUnauthenticated, "no user: the engine itself asks")
	}
	return userView(*u), nil
}

// List lists the users.
func (s *Users) List(ctx context.Context) ([]engineapi.User, error) {
	us, err := s.e.st.ListUsers(ctx)
	if err != nil {
		return nil, coded(err)
	}
	out := make([]engineapi.User, 0, len(us))
	for _, u := range us {
		out = append(out, userView(u))
	}
	return out, nil
}

func (e *engine) findUser(ctx context.Context, ref string) (store.User, error) {
	u, err := e.st.GetUserByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if u2, err2 := e.st.GetUser(ctx, ref); err2 == nil {
			return u2, nil
		}
		return u, fail(api.CodeNotFound, "user %q does not exist", ref)
	}
	return u, err
}

// Get shows a user (name or ID).
func (s *Users) Get(ctx context.Context, ref string) (engineapi.User, error) {
	u, err := s.e.findUser(ctx, ref)
	if err != nil {
		return engineapi.User{}, coded(err)
	}
	return userView(u), nil
}

// Create adds a user (readonly unless a role is given); its API token is
// in the answer, and only there.
func (s *Users) Create(ctx context.Context, req engineapi.UserRequest) (engineapi.UserToken, error) {
	e := s.e
	if err := store.ValidName(req.Name); err != nil {
		return engineapi.UserToken{}, invalidField("name", "%v", err)
	}
	if req.Role == "" {
		req.Role = string(store.RoleReadOnly)
	}
	if !store.Role(req.Role).Valid() {
		return engineapi.UserToken{}, invalidField("role", "role %q: want admin, vm-manager, readonly or metrics", req.Role)
	}
	token, hash, err := NewAPIToken()
	if err != nil {
		return engineapi.UserToken{}, coded(err)
	}
	u := store.User{Name: req.Name, Role: store.Role(req.Role), TokenHash: hash}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, &u); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.add", ObjectKind: "user", ObjectID: u.ID, ObjectName: u.Name,
			Message: fmt.Sprintf("User %s was added with the %s role by %s.", u.Name, u.Role, userName(ctx))})
	})
	if err != nil {
		return engineapi.UserToken{}, coded(err)
	}
	return engineapi.UserToken{User: userView(u), Token: token}, nil
}

// Delete removes a user; no user removes itself, and the last
// administrator stays.
func (s *Users) Delete(ctx context.Context, ref string) error {
	e := s.e
	u, err := e.findUser(ctx, ref)
	if err != nil {
		return coded(err)
	}
	if me := CallerFrom(ctx); me != nil && me.ID == u.ID {
		return fail(api.CodeInUse, "user %s cannot remove itself", u.Name)
	}
	defer e.tokens.changed()
	return coded(e.st.InTx(ctx, func(tx store.Tx) error {
		if u.Role == store.RoleAdmin {
			all, err := tx.ListUsers(ctx)
			if err != nil {
				return err
			}
			admins := 0
			for _, x := range all {
				if x.Role == store.RoleAdmin {
					admins++
				}
			}
			if admins <= 1 {
				return fail(api.CodeInUse, "user %s is the last administrator", u.Name)
			}
		}
		if err := tx.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.remove", ObjectKind: "user", ObjectID: u.ID, ObjectName: u.Name,
			Message: fmt.Sprintf("User %s was removed by %s.", u.Name, userName(ctx))})
	}))
}

// RotateToken gives a user a new API token; the old one stops working.
func (s *Users) RotateToken(ctx context.Context, ref string) (engineapi.UserToken, error) {
	e := s.e
	u, err := e.findUser(ctx, ref)
	if err != nil {
		return engineapi.UserToken{}, coded(err)
	}
	token, hash, err := NewAPIToken()
	if err != nil {
		return engineapi.UserToken{}, coded(err)
	}
	u.TokenHash = hash
	defer e.tokens.changed()
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpdateUser(ctx, &u); err != nil {
			return err
		}
		return e.appendEvent(ctx, tx, store.Event{Action: "user.token", ObjectKind: "user", ObjectID: u.ID, ObjectName: u.Name,
			Message: fmt.Sprintf("User %s was given a new API token by %s.", u.Name, userName(ctx))})
	})
	if err != nil {
		return engineapi.UserToken{}, coded(err)
	}
	return engineapi.UserToken{User: userView(u), Token: token}, nil
}
