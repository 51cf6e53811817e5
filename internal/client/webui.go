package client

import (
	"context"

	"polyvirt/internal/api/engineapi"
)

// SetPassword sets a user's web UI password (an admin: anyone's; other
// users: their own).
func (c *Client) SetPassword(ctx context.Context, name, password string) error {
	return c.Do(ctx, "PUT", "/users/"+esc(name)+"/password", nil, engineapi.PasswordRequest{Password: password}, nil)
}

// Session describes the caller: its user and the routes it may call.
func (c *Client) Session(ctx context.Context) (engineapi.Session, error) {
	var out engineapi.Session
	err := c.Do(ctx, "GET", "/session", nil, nil, &out)
	return out, err
}
