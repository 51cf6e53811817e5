package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
)

// VMFilter selects VMs.
type VMFilter struct {
	Cluster string
	Host    string
	States  []string
}

// VMs lists VMs.
func (c *Client) VMs(ctx context.Context, f VMFilter) ([]engineapi.VM, error) {
	q := url.Values{}
	if f.Cluster != "" {
		q.Set("cluster", f.Cluster)
	}
	if f.Host != "" {
		q.Set("host", f.Host)
	}
	if len(f.States) > 0 {
		q.Set("state", strings.Join(f.States, ","))
	}
	var out []engineapi.VM
	err := c.Do(ctx, "GET", "/vms", q, nil, &out)
	return out, err
}

// VM shows a VM (by name or ID).
func (c *Client) VM(ctx context.Context, ref string) (engineapi.VM, error) {
	var out engineapi.VM
	err := c.Do(ctx, "GET", "/vms/"+esc(ref), nil, nil, &out)
	return out, err
}

// CreateVM creates a VM.
func (c *Client) CreateVM(ctx context.Context, req engineapi.VMRequest) (engineapi.VM, error) {
	var out engineapi.VM
	err := c.Do(ctx, "POST", "/vms", nil, req, &out)
	return out, err
}

// UpdateVM changes a VM.
func (c *Client) UpdateVM(ctx context.Context, ref string, upd engineapi.VMUpdate) (engineapi.VM, error) {
	var out engineapi.VM
	err := c.Do(ctx, "PATCH", "/vms/"+esc(ref), nil, upd, &out)
	return out, err
}

// DeleteVM removes a VM; force destroys a running one first.
func (c *Client) DeleteVM(ctx context.Context, ref string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return c.Do(ctx, "DELETE", "/vms/"+esc(ref), q, nil, nil)
}

// VMAction runs a lifecycle action: start, shutdown, destroy, reboot,
// pause or resume.
func (c *Client) VMAction(ctx context.Context, ref, action, reason string) (engineapi.VMAction, error) {
	var out engineapi.VMAction
	err := c.Do(ctx, "POST", "/vms/"+esc(ref)+"/"+esc(action), nil, engineapi.VMActionRequest{Reason: reason}, &out)
	return out, err
}

// VMActionWith runs a lifecycle action with its whole request (a
// shutdown's time-out and force).
func (c *Client) VMActionWith(ctx context.Context, ref, action string, req engineapi.VMActionRequest) (engineapi.VMAction, error) {
	var out engineapi.VMAction
	err := c.Do(ctx, "POST", "/vms/"+esc(ref)+"/"+esc(action), nil, req, &out)
	return out, err
}

// ShutdownVM asks a VM's guest to power off. With force the engine has the
// VM powered off when the guest is not down within timeout (0: the
// cluster's shutdown time-out), as oVirt does; without force it only asks.
func (c *Client) ShutdownVM(ctx context.Context, ref string, timeout time.Duration, force bool, reason string) (engineapi.VMAction, error) {
	req := engineapi.VMActionRequest{Reason: reason, Force: &force}
	if force && timeout > 0 {
		req.TimeoutSeconds = int((timeout + time.Second - 1) / time.Second)
	}
	return c.VMActionWith(ctx, ref, "shutdown", req)
}

// Screenshot returns a PNG of a running VM's display.
func (c *Client) Screenshot(ctx context.Context, ref string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/vms/"+esc(ref)+"/screenshot", nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, api.FromAnswer(resp.StatusCode, b)
	}
	return b, nil
}

// Console opens the websocket of a running VM's serial console: binary
// messages carry its output (since the VM started, or from now on with
// fromEnd); what is written is typed into it (admins only).
func (c *Client) Console(ctx context.Context, ref string, fromEnd bool) (*websocket.Conn, error) {
	u := "wss://" + strings.TrimPrefix(c.base, "https://") + "/api/v1/vms/" + esc(ref) + "/console"
	if rest, ok := strings.CutPrefix(c.base, "http://"); ok {
		// The local socket: no TLS.
		u = "ws://" + rest + "/api/v1/vms/" + esc(ref) + "/console"
	}
	if fromEnd {
		u += "?from=end"
	}
	hdr := http.Header{}
	if c.token != "" {
		hdr.Set("Authorization", "Bearer "+c.token)
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: hdr})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var b []byte
			if resp.Body != nil {
				b, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			}
			return nil, api.FromAnswer(resp.StatusCode, b)
		}
		return nil, fmt.Errorf("console of VM %s: %w", ref, err)
	}
	ws.SetReadLimit(1 << 20)
	return ws, nil
}
